"""Any checkpoint spandrel recognises, as an ``SRMethod``.

``create_method("spandrel:/models/4x_foo.pth")`` loads a file; catalogue entries such as
``"craft-x4"`` name a file, its sha256 and its licence (see ``sr_methods.weights``).

Loading is safe by construction: the file's size is checked (``$SRBENCH_MAX_WEIGHTS_GB``, default
8 GiB, see ``iqa.assets.max_weights_bytes``), its sha256 taken once per process (a catalogue
network's must match the catalogue's before anything is deserialised; a ``spandrel:PATH`` file's is
recorded), and it is deserialised with ``torch.load(..., map_location="cpu", weights_only=True,
mmap=True)`` (``.pth``/``.pt``/``.ckpt``/``.bin``) or safetensors (``.safetensors``), both memory-mapped
rather than read whole; a pickle that would import anything but tensors and containers is refused.
Only then is the state dict given to ``spandrel.ModelLoader().load_from_state_dict``.
(spandrel's own ``load_from_file`` uses an allow-list unpickler rather than ``weights_only``, and
for ``.pt`` files tries ``torch.jit.load`` first; srbench does not rely on either.)

Inference: fp32 by default (``half=True`` runs fp16 on CUDA), under ``torch.inference_mode()``.
The input is padded (symmetric mirroring, edge included, like the official test scripts) to the model's
``size_requirements`` and the output is cropped back to ``h*scale x w*scale``. RGB input is
converted to the model's channels (1: BT.601 luma; 4: opaque alpha added) and back (a gray
output is repeated over RGB). ``tile=N`` runs the model on overlapping ``N x N`` LR tiles
(``sr_methods.tiling``), bounding memory whatever the image size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from iqa.assets import load_state_dict
from iqa.assets import one_line as _one_line
from iqa.errors import MissingAssetError, SrbenchError
from iqa.registry import Entry

from .base import SRMethod
from .tiling import check_tile_options, tiled_upscale
from .weights import mismatch_advice, resolve_weights

__all__ = ["SpandrelMethod", "build_from_path", "build_named", "load_state_dict", "pad_to"]

DEFAULT_OVERLAP = 16  # LR pixels of overlap between tiles, unless the tile is smaller than 32

# BT.601 luma (full range, as PIL's "L" conversion) for single-channel models
_LUMA = (0.299, 0.587, 0.114)


def _describe(state_dict: dict[str, Any], path: Path) -> Any:
    import spandrel

    try:
        desc = spandrel.ModelLoader().load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError:
        raise SrbenchError(f"spandrel does not recognise the architecture of {path} "
                           f"(spandrel {spandrel.__version__})") from None
    except Exception as e:  # a recognised architecture whose tensors do not fit
        raise SrbenchError(f"spandrel failed to build a model from {path}: {_one_line(f'{type(e).__name__}: {e}')}") from None
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise SrbenchError(f"{path} holds a {desc.architecture.name} model of purpose {desc.purpose!r}, "
                           "not an image-to-image model")
    return desc


def pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad ``x (B, C, h, w)`` at the bottom/right to ``height x width`` by symmetric mirroring (the
    edge row/column included, as the official SwinIR/HAT/CRAFT test scripts pad with ``flip``),
    repeated as often as needed."""
    h, w = x.shape[-2:]
    if height < h or width < w:
        raise SrbenchError(f"cannot pad {h}x{w} to the smaller {height}x{width}")
    while x.shape[-2] < height:
        x = torch.cat([x, torch.flip(x, [-2])], dim=-2)
    while x.shape[-1] < width:
        x = torch.cat([x, torch.flip(x, [-1])], dim=-1)
    return x[..., :height, :width]


def _required_size(req: Any, h: int, w: int) -> tuple[int, int]:
    """The smallest size ``>= (h, w)`` that meets spandrel's ``SizeRequirements``."""
    def up(n: int) -> int:
        n = max(n, req.minimum)
        return -(-n // req.multiple_of) * req.multiple_of

    th, tw = up(h), up(w)
    if req.square:
        th = tw = max(th, tw)
    return th, tw


class SpandrelMethod(SRMethod):
    """A spandrel ``ImageModelDescriptor`` behind the ``SRMethod`` contract."""

    backbone = None

    def __init__(self, descriptor: Any, name: str, *, weights: str | None = None, sha256: str | None = None,
                 tile: int | None = None, tile_overlap: int | None = None, tile_blend: str = "crop",
                 half: bool = False, extra: dict[str, Any] | None = None):
        super().__init__()
        req = descriptor.size_requirements
        self._tile, tile_overlap = check_tile_options(tile, tile_overlap, tile_blend, align=req.multiple_of,
                                                      minimum=req.minimum, default_overlap=DEFAULT_OVERLAP)
        if not isinstance(half, bool):
            raise SrbenchError(f"half must be True or False, got {half!r}")
        if half and not descriptor.supports_half:
            raise SrbenchError(f"{name}: architecture {descriptor.architecture.name} does not support half=True")
        if descriptor.input_channels not in (1, 3, 4) or descriptor.output_channels not in (1, 3, 4):
            raise SrbenchError(f"{name}: unsupported channels {descriptor.input_channels} -> "
                               f"{descriptor.output_channels} (RGB, gray or RGBA models only)")
        self.descriptor = descriptor
        self.name = name
        self.scales = (int(descriptor.scale),)
        self.weights, self.sha256 = weights, sha256
        self.tile, self.tile_overlap, self.tile_blend, self.half = tile, tile_overlap, tile_blend, half
        self.extra = dict(extra or {})
        descriptor.to(torch.device("cpu")).eval()

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16 if self.half and self.device.type == "cuda" else torch.float32

    def to(self, device: Any) -> SpandrelMethod:
        device = torch.device(device)
        self.descriptor.to(device)
        self.device = device
        try:
            self.descriptor.to(self.dtype)
        except Exception as e:  # spandrel's UnsupportedDtypeError
            raise SrbenchError(f"{self.name}: {_one_line(e)}") from None
        return self

    def _run(self, x: torch.Tensor, call: Any = None) -> torch.Tensor:
        """One (tile of an) image: ``(B, 3, h, w)`` RGB -> ``(B, 3, h*s, w*s)`` float32 on ``self.device``.
        ``call`` runs the network on the padded input (default: the descriptor, under inference mode;
        adaptation passes the bare network call so that gradients flow)."""
        d = self.descriptor
        x = x.to(device=self.device, dtype=self.dtype)
        if d.input_channels == 1:
            x = (x * x.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
        elif d.input_channels == 4:
            x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        h, w = x.shape[-2:]
        x = pad_to(x, *_required_size(d.size_requirements, h, w))
        y = (call or d)(x)[..., : h * d.scale, : w * d.scale]
        if y.shape[1] == 1:
            y = y.expand(-1, 3, -1, -1)
        return y[:, :3].float()

    def _upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        if self.half and self.device.type != "cuda":
            raise SrbenchError(f"{self.name}: half=True needs a CUDA device, the method is on {self.device}")
        if self.tile is None:
            return self._run(lr)
        return tiled_upscale(self._run, lr, scale, self._tile, self.tile_overlap,
                             align=self.descriptor.size_requirements.multiple_of, blend=self.tile_blend,
                             device=self.device, out_dtype=torch.float32, batchable=True)

    def provenance(self) -> dict[str, Any]:
        import spandrel

        d = self.descriptor
        req = d.size_requirements
        return {
            **super().provenance(),
            "kind": "spandrel",
            "weights": self.weights,
            "sha256": self.sha256,
            "architecture": d.architecture.name,
            "architecture_id": str(d.architecture.id),
            "params": sum(p.numel() for p in d.model.parameters()),
            "tags": list(d.tags),
            "channels": [d.input_channels, d.output_channels],
            "size_requirements": {"minimum": req.minimum, "multiple_of": req.multiple_of, "square": req.square},
            "dtype": str(self.dtype).removeprefix("torch."),
            "tile": self.tile, "tile_overlap": self.tile_overlap if self.tile else None,
            "tile_blend": self.tile_blend if self.tile else None,
            "spandrel": spandrel.__version__,
            **self.extra,
        }


def build_from_path(path: str | os.PathLike[str], *, tile: int | None = None, tile_overlap: int | None = None,
                    tile_blend: str = "crop", half: bool = False) -> SpandrelMethod:
    """``"spandrel:PATH"``: any checkpoint spandrel recognises; named ``spandrel:<file stem>``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingAssetError(f"weights file not found: {p}")
    state_dict, digest = load_state_dict(p)
    desc = _describe(state_dict, p)
    return SpandrelMethod(desc, f"spandrel:{p.stem}", weights=str(p.resolve()), sha256=digest, tile=tile,
                          tile_overlap=tile_overlap, tile_blend=tile_blend, half=half)


def build_named(*, entry: Entry, weights: str | os.PathLike[str] | None = None, tile: int | None = None,
                tile_overlap: int | None = None, tile_blend: str = "crop", half: bool = False) -> SpandrelMethod:
    """A catalogue network: find and verify its file (``sr_methods.weights``), then load it."""
    m = entry.meta
    path, expected = resolve_weights(m["file"], m["sha256"], url=m.get("url"), weights=weights, name=entry.name)
    state_dict, digest = load_state_dict(path, expected, fix=mismatch_advice(entry.name))
    desc = _describe(state_dict, path)
    arch = m.get("architecture")
    if arch and arch.lower() not in (desc.architecture.name.lower(), str(desc.architecture.id).lower()):
        raise SrbenchError(f"{entry.name}: {path} holds a {desc.architecture.name} model, the catalogue says {arch}")
    if m.get("scales") and desc.scale not in m["scales"]:
        raise SrbenchError(f"{entry.name}: {path} is a x{desc.scale} model, the catalogue says scales {m['scales']}")
    return SpandrelMethod(desc, entry.name, weights=str(path.resolve()), sha256=digest, tile=tile,
                          tile_overlap=tile_overlap, tile_blend=tile_blend, half=half,
                          extra={"licence": m.get("licence"), "url": m.get("url")})
