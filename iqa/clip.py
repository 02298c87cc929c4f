"""CLIP models from open_clip, found offline first.

``load_clip(name, pretrained, weights=None)`` returns a frozen open_clip model with its
normalisation and tokenizer. ``name`` is any open_clip model name (``ViT-B-16``, ``RN50``, ...) or
the path of an open_clip model config JSON (custom or tiny models); ``pretrained`` is an open_clip
tag (``openai``, ``laion2b_s34b_b88k``, ...) or ``None`` for random weights.

Where the weights come from, in order:

1. ``weights=PATH``: a local file (``.safetensors``, a ``weights_only`` state dict, or one of
   OpenAI's TorchScript releases, accepted only when its sha256 is the published one);
2. ``$SRBENCH_WEIGHTS`` and the asset cache folder, under the file names
   :func:`weight_file_names` lists (e.g. ``ViT-B-16.pt``, ``ViT-B-16-openai.safetensors``);
3. open_clip's own caches (the Hugging Face hub cache, ``~/.cache/clip``);
4. online (unless ``SRBENCH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``): open_clip's pretrained registry
   downloads it (``srbench assets fetch clip:ViT-B-16/openai`` does the same ahead of time);
5. otherwise a one-line ``MissingAssetError`` saying which file to place where.

A file found by name is verified before use when its sha256 is known: OpenAI's releases
(:data:`OPENAI_SHA256`) and files in the Hugging Face hub cache (whose blobs are named by their
sha256). Other files (``weights=PATH``, a converted file in ``$SRBENCH_WEIGHTS``) have no known hash:
theirs is recorded in ``provenance()`` (``verified`` false). Hashes are taken once per process.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .assets import ASSETS, check_weights_size, file_sha256, load_state_dict, one_line, verify_file
from .assets import sha256_file  # noqa: F401  (kept importable from here, as before)
from .errors import MissingAssetError, SrbenchError

__all__ = ["OPENAI_SHA256", "ClipModel", "clip_ref", "fetch_clip", "find_clip_weights", "load_clip",
           "parse_clip_ref", "weight_file_names"]

# sha256 of OpenAI's TorchScript releases (the hash is also the folder of their download URL)
OPENAI_SHA256 = {
    ("ViT-B-16", "openai"): "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
    ("ViT-B-32", "openai"): "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
    ("RN50", "openai"): "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
}


def clip_ref(name: str, tag: str) -> str:
    """The name ``srbench assets fetch|path`` takes for an open_clip model: ``clip:NAME/TAG``."""
    return f"clip:{name}/{tag}"


def parse_clip_ref(ref: str) -> tuple[str, str]:
    body = ref[len("clip:"):] if ref.startswith("clip:") else ref
    name, sep, tag = body.partition("/")
    if not sep or not name or not tag:
        raise SrbenchError(f"a CLIP model is named clip:NAME/TAG, e.g. clip:ViT-B-16/openai (got {ref!r})")
    return name, tag


def fetch_clip(name: str, tag: str) -> Path:
    """Download ``name``/``tag`` through open_clip's pretrained registry into open_clip's own cache
    (or return the local file when there is one already)."""
    import open_clip

    try:
        return find_clip_weights(name, tag, download=False)
    except MissingAssetError:
        if not _pretrained_cfg(name, tag):
            raise
    try:
        return Path(open_clip.download_pretrained(_pretrained_cfg(name, tag)))
    except Exception as e:
        raise MissingAssetError(f"could not download CLIP {name} ({tag}) through open_clip: {one_line(e, 200)}") from None


@dataclass
class ClipModel:
    """A frozen open_clip model and what it takes to feed it."""

    model: nn.Module
    name: str
    pretrained: str | None
    weights: str | None
    sha256: str | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    tokenizer: Any
    verified: bool = False  # whether ``sha256`` was checked against a known value

    def provenance(self) -> dict[str, Any]:
        return {"clip": self.name, "pretrained": self.pretrained, "weights": self.weights, "sha256": self.sha256,
                "verified": self.verified}


def _unreachable(url: str, timeout: float = 5.0) -> str:
    """``""`` when a TCP connection to ``url``'s host opens within ``timeout`` seconds, else the
    reason, as a parenthesised message suffix."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname:
        return ""
    try:
        socket.create_connection((parts.hostname, parts.port or (80 if parts.scheme == "http" else 443)),
                                 timeout=timeout).close()
        return ""
    except OSError as e:
        return f" ({parts.hostname} unreachable: {one_line(e, 100)})"


def _offline() -> bool:
    return any(os.environ.get(k, "") not in ("", "0") for k in ("SRBENCH_OFFLINE", "HF_HUB_OFFLINE"))


def _pretrained_cfg(name: str, tag: str) -> dict[str, Any]:
    import open_clip

    return open_clip.get_pretrained_cfg(name, tag) or {}


def weight_file_names(name: str, tag: str) -> list[str]:
    """File names looked for in ``$SRBENCH_WEIGHTS`` and the asset cache."""
    names = []
    url = _pretrained_cfg(name, tag).get("url")
    if url:
        names.append(url.rsplit("/", 1)[-1])
    names += [f"{name}-{tag}{ext}" for ext in (".safetensors", ".pt", ".bin", ".pth")]
    return list(dict.fromkeys(names))


def _open_clip_caches(name: str, tag: str) -> list[Path]:
    """Where open_clip's own downloads of ``name``/``tag`` would be (they may not exist)."""
    cfg = _pretrained_cfg(name, tag)
    found = []
    hub = cfg.get("hf_hub", "")
    if hub:  # "org/model/" (default file names) or "org/model/file"
        repo_id, _, filename = hub.rstrip("/").rpartition("/") if not hub.endswith("/") else (hub.rstrip("/"), "", "")
        files = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover
            files = []
        for f in files:
            hit = try_to_load_from_cache(repo_id, f)
            if isinstance(hit, str):
                found.append(Path(hit))
    if cfg.get("url"):
        found.append(Path.home() / ".cache" / "clip" / cfg["url"].rsplit("/", 1)[-1])
    return found


def find_clip_weights(name: str, tag: str, weights: str | os.PathLike[str] | None = None, *,
                      download: bool = True) -> Path:
    """The local weights file of open_clip model ``name`` / ``tag`` (search order in the module
    docstring); downloads through open_clip only when online and ``download``."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise MissingAssetError(f"CLIP weights file not found: {path} (option weights=)")
        return path
    names = weight_file_names(name, tag)
    folders = [Path(os.environ["SRBENCH_WEIGHTS"]).expanduser()] if os.environ.get("SRBENCH_WEIGHTS") else []
    folders.append(ASSETS.cache)
    for folder in folders:
        for n in names:
            if (folder / n).is_file():
                return folder / n
    for path in _open_clip_caches(name, tag):
        if path.is_file():
            return path
    cfg = _pretrained_cfg(name, tag)
    source = cfg.get("url") or (f"https://huggingface.co/{cfg['hf_hub']}" if cfg.get("hf_hub") else None)
    if download and not _offline() and cfg:
        import open_clip

        hub = os.environ.get("HF_ENDPOINT", "https://huggingface.co") if cfg.get("hf_hub") else cfg.get("url", "")
        reason = _unreachable(hub)  # fail in seconds, not after a minute of the hub client's retries
        if not reason:
            try:
                return Path(open_clip.download_pretrained(cfg))
            except Exception as e:  # no network, hub error: fall through to the message below
                reason = f" (download failed: {one_line(e, 160)})"
    else:
        reason = " (offline)" if cfg and download else ""
    if not cfg:
        import open_clip

        tags = open_clip.list_pretrained_tags_by_model(name) if name in open_clip.list_models() else []
        raise MissingAssetError(f"open_clip has no pretrained weights {tag!r} for {name!r}"
                                f" (known tags: {', '.join(tags) or 'none'}); pass weights=PATH")
    raise MissingAssetError(
        f"CLIP weights for {name} ({tag}) not found{reason}: place {names[0]} (from {source}) in {folders[-1]}"
        f"{' or ' + str(folders[0]) if len(folders) > 1 else ''}, or pass weights=PATH; where the internet is "
        f"reachable, `srbench assets fetch {clip_ref(name, tag)}` downloads it")


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/code/__torch__.py") or "/code/" in n for n in z.namelist())


def expected_sha256(name: str, tag: str | None, path: Path) -> str | None:
    """The known sha256 of a CLIP weights file found by name, or ``None``: OpenAI's release for its
    own file name, or the blob name of a Hugging Face hub cache entry (the hub names LFS blobs by
    their sha256)."""
    real = path.resolve()
    if real.parent.name == "blobs" and re.fullmatch(r"[0-9a-f]{64}", real.name):
        return real.name
    url = _pretrained_cfg(name, tag).get("url", "") if tag else ""
    if url and path.name == url.rsplit("/", 1)[-1]:
        return OPENAI_SHA256.get((name, tag)) or next(
            (seg for seg in url.split("/") if re.fullmatch(r"[0-9a-f]{64}", seg)), None)
    return None


def _clip_state_dict(path: Path, expected: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """A state dict from ``path``; OpenAI's TorchScript releases only when their sha256 is known.
    With ``expected``, the file's sha256 must be it (checked before anything is deserialised)."""
    fix = "delete it and let open_clip download it again, or pass weights=PATH to use other weights on purpose"
    if path.suffix.lower() == ".pt" and _is_torchscript(path):
        check_weights_size(path)
        digest = verify_file(path, expected, fix=fix) if expected else file_sha256(path)
        if digest not in OPENAI_SHA256.values():
            raise SrbenchError(f"refused to load {path}: a TorchScript archive that is not one of OpenAI's published "
                               f"CLIP files (sha256 {digest}); save model.state_dict() as .safetensors or .pt")
        sd = torch.jit.load(str(path), map_location="cpu").state_dict()
        return {k: v for k, v in sd.items() if k not in ("input_resolution", "context_length", "vocab_size")}, digest
    sd, digest = load_state_dict(path, expected, fix=fix)
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if sd and next(iter(sd)).startswith("module."):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd, digest


def _model_name(name: str) -> str:
    """An open_clip model name; a JSON config path is registered with open_clip first."""
    import open_clip

    if name.lower().endswith(".json"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise SrbenchError(f"open_clip model config not found: {path}")
        open_clip.add_model_config(path)
        return path.stem
    if name not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(name, open_clip.list_models(), n=1)
        raise SrbenchError(f"unknown open_clip model {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    return name


def load_clip(name: str = "ViT-B-16", pretrained: str | None = "openai", *,
              weights: str | os.PathLike[str] | None = None, device: Any = None) -> ClipModel:
    """A frozen, eval-mode open_clip model (see the module docstring for where weights come from)."""
    import open_clip

    model_name = _model_name(name)
    cfg = _pretrained_cfg(model_name, pretrained) if pretrained else {}
    path = find_clip_weights(model_name, pretrained or "", weights) if (weights is not None or pretrained) else None
    logging.disable(logging.WARNING)  # open_clip warns "initialized randomly": we load the weights below
    try:
        model = open_clip.create_model(model_name, pretrained=None, load_weights=False,
                                       force_quick_gelu=bool(cfg.get("quick_gelu", False)))
    finally:
        logging.disable(logging.NOTSET)
    digest, verified = None, False
    if path is not None:
        expected = expected_sha256(model_name, pretrained, path) if weights is None else None
        sd, digest = _clip_state_dict(path, expected)
        verified = expected is not None or digest in OPENAI_SHA256.values()
        # TorchScript archives also hold non-persistent buffers (the causal attention mask)
        buffers = {n for n, _ in model.named_buffers()} - set(model.state_dict())
        sd = {k: v for k, v in sd.items() if k not in buffers}
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise SrbenchError(f"{path} does not fit open_clip model {model_name}: {one_line(e, 200)}") from None
    model = model.float().eval().requires_grad_(False)
    if device is not None:
        model = model.to(device)
    pp = getattr(model.visual, "preprocess_cfg", {}) or {}
    mean = tuple(cfg.get("mean") or pp.get("mean") or open_clip.OPENAI_DATASET_MEAN)
    std = tuple(cfg.get("std") or pp.get("std") or open_clip.OPENAI_DATASET_STD)
    size = model.visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    return ClipModel(model, model_name, pretrained, str(path) if path else None, digest, mean, std, size,
                     open_clip.get_tokenizer(model_name), verified)
