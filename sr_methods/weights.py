"""Finding, downloading and verifying the weight files of named networks.

Deliberately small, so that a full asset manager can replace it: one function,
``resolve_weights``, turns a catalogue entry's file name and sha256 into a verified local path.

Search order for file ``F``:

1. the ``weights=`` option: a file, or a folder holding ``F``;
2. ``$SRBENCH_WEIGHTS/F``;
3. ``<srbench cache>/weights/F`` (``$SRBENCH_CACHE``, default ``~/.cache/srbench``);
   then ``<srbench cache>/assets/F``, where ``srbench assets fetch`` puts converted files;
4. if the entry has a URL: download into the cache folder (temporary file, sha256 check, rename).

Nothing is downloaded at import or for entries without a URL. A sha256 mismatch is always an error,
raised before the file is deserialised. Hashes are taken once per process
(:func:`iqa.assets.file_sha256`: a method built again, or a family of networks sharing files, does
not read its weights twice).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from iqa.assets import cache_root, file_sha256, sha256_bytes, sha256_file
from iqa.errors import MissingAssetError, SrbenchError

__all__ = ["cache_dir", "mismatch_advice", "resolve_weights", "sha256_bytes", "sha256_file", "verify_sha256"]

ENV_WEIGHTS = "SRBENCH_WEIGHTS"
ENV_CACHE = "SRBENCH_CACHE"


def cache_dir() -> Path:
    """``<srbench cache>/weights`` (see ``iqa.assets.cache_root``); not created here."""
    return cache_root() / "weights"


def mismatch_advice(name: str | None = None) -> str:
    """How to replace a weights file whose sha256 is wrong."""
    fetch = f"run `srbench assets fetch {name} --force`, " if name else ""
    return f"corrupt or different file; delete it, {fetch}or pass the right file with weights="


def verify_sha256(path: str | os.PathLike[str], expected: str, actual: str | None = None, *,
                  name: str | None = None) -> None:
    """Raise a one-line ``SrbenchError`` unless the file's sha256 (hashed once per process) is ``expected``."""
    actual = actual or file_sha256(path)
    if actual.lower() != expected.lower():
        raise SrbenchError(f"sha256 mismatch for {path}: expected {expected.lower()}, got {actual}"
                           f" ({mismatch_advice(name)})")


def _candidates(file: str, weights: str | os.PathLike[str] | None) -> list[Path]:
    out: list[Path] = []
    if weights is not None:
        p = Path(weights).expanduser()
        out.append(p / file if p.is_dir() else p)
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        out.append(Path(env).expanduser() / file)
    out.append(cache_dir() / file)
    out.append(cache_root() / "assets" / file)  # where `srbench assets fetch` puts it
    return out


def _download(url: str, dest: Path, sha256: str) -> Path:
    import torch.hub

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        torch.hub.download_url_to_file(url, str(tmp), progress=False)
        verify_sha256(tmp, sha256)
        os.replace(tmp, dest)
    except SrbenchError:
        raise
    except Exception as e:  # network errors, HTTP errors, disk full: one line, naming the URL
        reason = " ".join(str(e).split()) or type(e).__name__
        raise MissingAssetError(f"could not download {dest.name} from {url} to {dest.parent}: {reason}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def resolve_weights(file: str, sha256: str, *, url: str | None = None,
                    weights: str | os.PathLike[str] | None = None, name: str | None = None) -> tuple[Path, str]:
    """Return ``(path, sha256)`` of the verified local weight file ``file`` (search order above)."""
    label = f" for {name!r}" if name else ""
    if weights is not None:
        # an explicit choice is final: never fall through to other folders
        path = _candidates(file, weights)[0]
        if not path.is_file():
            raise MissingAssetError(f"weights file{label} not found: {path} (option weights=)")
        verify_sha256(path, sha256, name=name)
        return path, sha256.lower()
    tried = _candidates(file, None)
    for path in tried:
        if path.is_file():
            verify_sha256(path, sha256, name=name)
            return path, sha256.lower()
    if url:
        return _download(url, cache_dir() / file, sha256), sha256.lower()
    folders = ", ".join(str(p.parent) for p in tried)
    raise MissingAssetError(
        f"weights file {file}{label} not found (searched: {folders}); run `srbench assets fetch {name or file}`, "
        f"pass weights=PATH, or put the file in ${ENV_WEIGHTS}")


def load_exact_state(net: Any, state: dict[str, Any], source: Any, what: str) -> None:
    """Load ``state`` into ``net`` (as float32) only if it fits exactly: the same tensor names and
    shapes; otherwise one line naming ``source``, what it should fit (``what``) and the first
    missing, unexpected or misshapen tensors."""
    want = net.state_dict()
    missing, unexpected = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing or unexpected:
        raise SrbenchError(f"{source} does not fit {what}: "
                           f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                           f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    for k, v in want.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise SrbenchError(f"{source}: tensor {k} has shape {tuple(state[k].shape)}, {what} needs {tuple(v.shape)}")
    net.load_state_dict({k: v.float() for k, v in state.items()})
