"""Checkpoints written by ``srbench train`` and the SR method that runs them.

A checkpoint is one ``.safetensors`` file (tensors in float16 unless a recipe keeps float32) whose
metadata holds the record of how it was made (format ``srbench-sr-1``)::

    method         the method's name ("sfd-sr-vgg16", "rrdn-x16")
    arch           a name in ARCHS (the network's builder) and arch_options (its keyword arguments)
    scale          the network's scale
    base           for a network that extends a catalogue network (a new stage on the x8 RRDN): the
                   asset it builds on and that asset's sha256; the file then holds only the new layers
    config         the training config (every field) and the recipe's options
    images         [relative path, sha256] of every training image
    held_out       [relative path, sha256] of training-set images kept out for validation (if any)
    parent         {"path", "sha256"} of the checkpoint training started from (--init), or null
    backbone       provenance of a guidance backbone (name, sha256), or null
    wall_seconds   training wall time, device, torch version
    validation     figures on the validation set at the end (PSNR-Y, LPIPS, DISTS, SFD-IQA ...)

Loading reads safetensors only (never a pickle) and checks the base asset's sha256; ``srbench run
--methods NAME:PATH`` (e.g. ``sfd-sr-vgg16:runs/sfd/model.safetensors``) runs a checkpoint under
its method's name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from iqa.errors import SrbenchError

from .base import SRMethod

FORMAT = "srbench-sr-1"
_KEYS = ("method", "arch", "arch_options", "scale", "base", "config", "images", "parent", "backbone",
         "wall_seconds", "validation", "held_out")

# arch name -> "module:callable" building the network from arch_options (imported only when used)
ARCHS: dict[str, str] = {
    "rrdbnet": "sr_methods.sfd.nets:RRDBNet",
    "rrdn": "sr_methods.sfd.nets:rrdn_from_config",
    "rrdn-x2-stage": "sr_methods.rrdn_stage:build_stage_network",
    "cdasr": "sr_methods.cdasr.nets:build_cdasr_network",
    "deplsr-adaptor": "sr_methods.deplsr.adaptor:build_adaptor",
    "deplsr": "sr_methods.deplsr.nets:build_deplsr_network",
    "clip-sr": "sr_methods.clipsr.nets:build_clipsr_network",
    "clip-sr-align": "sr_methods.clipsr.image:build_aligner",
}


def build_arch(arch: str, options: dict[str, Any]) -> nn.Module:
    import importlib

    if arch not in ARCHS:
        raise SrbenchError(f"unknown network architecture {arch!r} in a checkpoint (known: {', '.join(ARCHS)})")
    module, _, attr = ARCHS[arch].partition(":")
    builder: Callable[..., nn.Module] = getattr(importlib.import_module(module), attr)
    return builder(**options)


def save_checkpoint(tensors: dict[str, torch.Tensor], record: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``tensors`` with ``record`` (the keys above) as a reproducible ``.safetensors`` file."""
    from iqa.assets import write_safetensors

    missing = [k for k in ("method", "arch", "arch_options", "scale") if k not in record]
    if missing:
        raise SrbenchError(f"checkpoint record lacks {missing}")
    meta = {"format": FORMAT, **{k: json.dumps(record.get(k), sort_keys=True, default=str) for k in _KEYS
                                 if k != "held_out" or record.get(k)}}
    return write_safetensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, meta, path)


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The record of a checkpoint, from its metadata alone (no tensor is read); anything else is a
    one-line error naming the file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise SrbenchError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # noqa: BLE001 - safetensors raises several kinds for a bad header
        raise SrbenchError(f"{path}: not a safetensors checkpoint ({' '.join(str(e).split())[:160]})") from None
    if meta.get("format") != FORMAT:
        raise SrbenchError(f"{path}: not an srbench SR checkpoint (metadata format {meta.get('format')!r}, "
                           f"expected {FORMAT!r}); spandrel checkpoints run as spandrel:PATH")
    return {k: json.loads(meta[k]) for k in _KEYS if k in meta}


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """``(tensors, record, sha256 of the file)``."""
    from iqa.assets import load_state_dict

    record = read_record(path)
    tensors, sha = load_state_dict(path)
    return tensors, record, sha


def load_network(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any], str]:
    """The network of a checkpoint (float32, eval mode), its record and the file's sha256.

    A network with a ``base`` builds the base itself (from its asset, whose sha256 must be the
    recorded one) and takes only its own layers from the file."""
    tensors, record, sha = read_checkpoint(path)
    net = build_arch(record["arch"], dict(record["arch_options"]))
    own = {k: v.float() for k, v in tensors.items()}
    state = net.state_dict()
    unknown = sorted(set(own) - set(state))
    if unknown:
        raise SrbenchError(f"{path}: tensors {unknown[:3]} do not belong to a {record['arch']} network")
    absent = sorted(set(state) - set(own))
    frozen = set(getattr(net, "frozen_keys", lambda: set())())
    if set(absent) - frozen:
        raise SrbenchError(f"{path}: missing tensors {sorted(set(absent) - frozen)[:3]} for {record['arch']}")
    base = record.get("base")
    if base and hasattr(net, "base_sha256") and net.base_sha256() != base.get("sha256"):
        raise SrbenchError(f"{path} extends {base.get('asset')} with sha256 {base.get('sha256')}, but the file "
                           f"found has {net.base_sha256()}; `srbench assets fetch {base.get('asset')} --force`")
    net.load_state_dict({**state, **own}, strict=True)
    return net.eval().requires_grad_(False), record, sha


class TrainedMethod(SRMethod):
    """Runs a network from an ``srbench train`` checkpoint at its scale, in tiles when asked."""

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None, tile: int | None = None,
                 tile_overlap: int | None = None, tile_blend: str = "crop", missing_caption: str = "unsupported",
                 text: str = "caption"):
        super().__init__()
        from .base import MISSING_CAPTION_MODES
        from .tiling import check_tile_options

        self.path = Path(path)
        self.net, self.record, self.sha256 = load_network(self.path)
        self.name = name or self.record["method"]
        self.scales = (int(self.record["scale"]),)
        self.backbone = (self.record.get("backbone") or {}).get("backbone")
        self.tile, self.tile_overlap = check_tile_options(tile, tile_overlap, tile_blend)
        self.tile_blend = tile_blend
        self.verified = False  # True once checked against a known sha256 (a shipped checkpoint)
        # a network conditioned on a caption (CLIP-SR): the runner gives it one per image; text="empty"
        # is the "no text" ablation: the empty caption's embedding always, and no caption asked for
        if text not in ("caption", "empty") or (text == "empty" and not hasattr(self.net, "encode_text")):
            raise SrbenchError(f"text must be \"caption\" or \"empty\" (text-guided networks only), got {text!r}")
        self.text = text
        self.text_guided = hasattr(self.net, "encode_text") and text == "caption"
        if missing_caption not in MISSING_CAPTION_MODES:
            raise SrbenchError(f"missing_caption must be one of {', '.join(MISSING_CAPTION_MODES)}, got "
                               f"{missing_caption!r}")
        self.missing_caption = missing_caption

    def _upscale(self, lr: torch.Tensor, scale: int, texts: list[str] | None = None) -> torch.Tensor:
        from .tiling import tiled_upscale

        x = lr.to(self.device, torch.float32)
        net = self.net
        if hasattr(net, "priors"):  # conditioned on the whole image's priors (DePLSR): one set for every tile
            priors = net.priors(x)
            net = lambda t: self.net(t, priors)  # noqa: E731
        if self.text_guided:  # one sentence embedding per image, shared by its tiles
            sent = self.net.encode_text(texts).to(self.device)  # (B, D): tiles keep the batch
            net = lambda t: self.net(t, sent)  # noqa: E731
        if self.tile:  # tiles batch only through a plain network (no per-image priors or sentence)
            return tiled_upscale(net, x, scale, self.tile, self.tile_overlap, blend=self.tile_blend,
                                 batchable=net is self.net)
        return net(x)

    def to(self, device: Any) -> "TrainedMethod":
        super().to(device)
        self.net.to(self.device)
        return self

    def provenance(self) -> dict[str, Any]:
        from iqa.assets import file_record

        rec = {k: self.record.get(k) for k in ("method", "arch", "arch_options", "scale", "base", "parent",
                                               "validation")}
        # "backbone" stays the backbone's name (the report's circularity flag reads it); its record
        # (weights file, sha256) goes under "backbone_record"
        return {**super().provenance(), **rec, "backbone_record": self.record.get("backbone"),
                "weights": file_record(self.path, self.sha256, verified=self.verified),
                **({"text": self.text} if hasattr(self.net, "encode_text") else {})}


def split_name(name: str) -> tuple[str, str] | None:
    """``"sfd-sr-vgg16:runs/x/model.safetensors"`` -> ``(method, path)``; None for other names."""
    method, sep, path = name.partition(":")
    if not sep or method.lower() in ("spandrel", "cascade") or not method or not path.strip():
        return None
    return method, path


def info(name: str) -> dict[str, Any]:
    """`sr_methods.method_info` for ``METHOD:PATH`` (reads the record, not the tensors)."""
    method, path = split_name(name)  # type: ignore[misc]
    rec = read_record(path)
    if rec.get("method") != method:
        raise SrbenchError(f"{path} is a {rec.get('method')!r} checkpoint, not {method!r}: run it as "
                           f"{rec.get('method')}:{path}")
    return {"name": method, "kind": "trained", "scales": (int(rec["scale"]),),
            "backbone": (rec.get("backbone") or {}).get("backbone"), "weights": path, "arch": rec.get("arch"),
            "assets": tuple(a for a in [(rec.get("base") or {}).get("asset")] if a),
            "options": ["tile", "tile_overlap", "tile_blend"] + (["missing_caption", "text"] if rec.get("arch") == "clip-sr"
                                                                 else []),
            "description": f"{method} trained by srbench ({rec.get('arch')}, x{rec['scale']})"}


def build(name: str, **options: Any) -> TrainedMethod:
    method, path = split_name(name)  # type: ignore[misc]
    info(name)
    return TrainedMethod(path, name=method, **options)


def shipped_file(file: str, sha256: str, *, fix: str = "reinstall srbench (or pass weights=PATH)") -> Path:
    """``sr_methods/data/<file>``, refused with one line (naming ``fix``) unless its sha256 is ``sha256``."""
    from iqa.assets import file_sha256

    path = Path(__file__).resolve().parent / "data" / file
    actual = file_sha256(path) if path.is_file() else None
    if actual != sha256:
        raise SrbenchError(f"{path}: the checkpoint shipped with srbench has sha256 {actual}, expected {sha256}; {fix}")
    return path


def build_shipped(*, entry: Any, weights: str | os.PathLike[str] | None = None, tile: int | None = None,
                  tile_overlap: int | None = None, tile_blend: str = "crop", **options: Any) -> TrainedMethod:
    """A catalogue method whose checkpoint ships in ``sr_methods/data`` (verified against the
    catalogue's sha256), or ``weights=PATH`` instead (recorded, not verified; a folder means its
    file of the catalogue's name, as for a family's members). The checkpoint's record must name the
    recipe that trained it: ``entry.meta["recipe"]`` (per-scale entries such as
    ``sfd-sr-vgg16-x4`` of recipe ``sfd-sr-vgg16``), else the entry's own name."""
    if weights:
        path = Path(weights)
        if path.is_dir():
            path = path / entry.meta["file"]
    else:
        path = shipped_file(entry.meta["file"], entry.meta["sha256"])
    method = TrainedMethod(path, name=entry.name, tile=tile, tile_overlap=tile_overlap, tile_blend=tile_blend,
                           **options)
    method.verified = not weights and method.sha256 == entry.meta["sha256"]
    recipe = entry.meta.get("recipe", entry.name)
    if method.record.get("method") != recipe:
        raise SrbenchError(f"{path} is a {method.record.get('method')!r} checkpoint, not {recipe!r}")
    if entry.meta.get("scales") and method.scales != tuple(entry.meta["scales"]):
        raise SrbenchError(f"{path} is an x{method.scales[0]} checkpoint; {entry.name} is "
                           f"x{'/x'.join(map(str, entry.meta['scales']))}")
    return method
