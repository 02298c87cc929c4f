"""Local assets shared by every package: the cache folder, sha256 hashing, and safe loading of
weight files (a pickle that would run code is refused).

This is the base that metrics and methods share; neither downloads anything by itself.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from .errors import MissingAssetError, SrbenchError

__all__ = ["SUFFIXES", "cache_root", "load_state_dict", "one_line", "sha256_bytes", "sha256_file"]


def cache_root() -> Path:
    """``$SRBENCH_CACHE``, else ``$XDG_CACHE_HOME/srbench``, else ``~/.cache/srbench`` (not created)."""
    if os.environ.get("SRBENCH_CACHE"):
        return Path(os.environ["SRBENCH_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "srbench"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
SUFFIXES = (*PICKLE_SUFFIXES, ".safetensors")

def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _unpickling_reason(message: str) -> str:
    """The informative sentence of torch's multi-paragraph ``weights_only`` error."""
    for pattern in (r"Trying to load unsupported GLOBAL [^\n]*", r"Unsupported global: [^\n]*",
                    r"Unsupported operand [^\n]*", r"WeightsUnpickler error: [^\n]+"):
        m = re.search(pattern, message)
        if m:
            return one_line(m.group(0).rstrip(". "))
    return one_line(message.splitlines()[0] if message else "unreadable pickle")


def load_state_dict(path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """Read ``path`` once and return ``(state_dict, sha256 of its bytes)``; never runs pickled code."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SrbenchError(f"cannot load {path}: unsupported weights file type {suffix or '(none)'!r} "
                           f"(supported: {', '.join(SUFFIXES)})")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MissingAssetError(f"weights file not found: {path}") from None
    except OSError as e:
        raise SrbenchError(f"cannot read weights file {path}: {one_line(e.strerror or str(e))}") from None
    digest = sha256_bytes(data)
    if suffix == ".safetensors":
        from safetensors.torch import load as load_safetensors

        try:
            obj: Any = load_safetensors(data)
        except Exception as e:
            raise SrbenchError(f"cannot load {path} as safetensors: {one_line(e)}") from None
    else:
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            if "Unsupported operand" in str(e):  # not a pickle at all: garbage, not a threat
                raise SrbenchError(f"cannot load {path} as a PyTorch checkpoint: the file is not a checkpoint "
                                   f"({_unpickling_reason(str(e))})") from None
            raise SrbenchError(f"refused to load {path}: not a plain tensor checkpoint, loading it could run code "
                               f"({_unpickling_reason(str(e))})") from None
        except RuntimeError as e:
            if "TorchScript" in str(e):
                raise SrbenchError(f"refused to load {path}: a TorchScript archive, not a state dict "
                                   "(save model.state_dict() as .pth or .safetensors)") from None
            raise SrbenchError(f"cannot load {path} as a PyTorch checkpoint: {one_line(e)}") from None
        except Exception as e:
            raise SrbenchError(f"cannot load {path} as a PyTorch checkpoint: {one_line(e)}") from None
    if not isinstance(obj, dict):
        raise SrbenchError(f"cannot load {path}: expected a state dict, found a {type(obj).__name__}")
    return obj, digest
