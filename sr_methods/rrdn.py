"""idealo's RRDN ("ESRGAN-thick" in UpscalerJS) in PyTorch, and an ``SRMethod`` that runs it.

Architecture (as in the Keras graph that UpscalerJS ships; all convolutions ``k x k``, stride 1,
Keras ``"same"`` padding, with bias, no activation unless stated)::

    x (in_channels, [0, 1])
    f0  = pre_blocks(x)                                   in_channels -> G0
    h   = f0
    T times (RRDB):  r = h
        D times (RDB):  y = r ; feats = y
            C times:    feats = concat(feats, relu(conv(feats)))       (G0 + c*G) -> G
            r = y + beta * lff(feats)                                  (G0 + C*G) -> G0
        h = h + beta * r                       (the RRDB input plus beta times its last RDB's output)
    g   = post_blocks(h) + f0                                   G0 -> G0   (global residual)
    p   = depth_to_space(pre_shuffle(g), scale)      G0 -> out_channels*scale^2 -> out_channels
    out = sr(p)                                   out_channels -> out_channels, at HR

``beta`` is 0.2. Keras ``"same"`` padding for stride 1 pads ``(k-1)//2`` before and the rest after
(symmetric for odd ``k``). ``depth_to_space`` is TensorFlow's (``"DCR"`` order: output pixel
``(h*r + i, w*r + j)``, channel ``c`` reads input channel ``(i*r + j)*C_out + c``), which differs
from ``torch.nn.functional.pixel_shuffle`` (``"CRD"``: input channel ``c*r*r + i*r + j``); it is
implemented explicitly by :func:`depth_to_space`, so the converted weights are the TF weights with
only the kernel layout changed (HWIO -> OIHW).

The model maps RGB in ``[0, 1]`` to RGB nominally in ``[0, 1]`` (UpscalerJS declares
``inputRange`` and ``outputRange`` ``[0, 1]``: pixels are divided by 255 before, and the output is
clipped to ``[0, 1]`` and multiplied by 255 after; no mean subtraction). ``RRDN.forward`` returns
the raw graph output; ``RRDNMethod`` clamps.

Weights come from ``sr_methods.converters.tfjs.convert_file`` (a ``.safetensors`` file whose
metadata holds the config); loading reads safetensors only, never a pickle.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from iqa.assets import load_state_dict
from iqa.errors import MissingAssetError, SrbenchError
from iqa.registry import Entry

from .base import SRMethod
from .tiling import check_tile_options, tiled_upscale
from .weights import load_exact_state, mismatch_advice, resolve_weights

__all__ = ["RRDN", "RRDNConfig", "RRDNMethod", "build_from_path", "build_named", "depth_to_space",
           "keras_same_padding", "load_rrdn", "read_safetensors_metadata"]

METADATA_FORMAT = "srbench-rrdn/1"  # the "format" key of the safetensors metadata


@dataclass(frozen=True)
class RRDNConfig:
    """Hyper-parameters of an RRDN, with idealo's names.

    ``C``: conv layers per RDB; ``D``: RDBs per RRDB; ``T``: RRDBs; ``G``: growth (channels of
    each RDB conv); ``G0``: feature channels; ``scale``: upscaling factor; ``kernel_size``: of
    every convolution; ``beta``: residual scaling.
    """

    C: int
    D: int
    G: int
    G0: int
    T: int
    scale: int
    in_channels: int = 3
    out_channels: int = 3
    kernel_size: int = 3
    beta: float = 0.2

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "beta":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise SrbenchError(f"RRDN config: beta must be a finite number, got {v!r}")
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SrbenchError(f"RRDN config: {f.name} must be an int >= 1, got {v!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RRDNConfig:
        if not isinstance(d, dict):
            raise SrbenchError(f"RRDN config must be a dict, got {type(d).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise SrbenchError(f"RRDN config: unknown keys {unknown} (known: {', '.join(known)})")
        missing = [k for k in ("C", "D", "G", "G0", "T", "scale") if k not in d]
        if missing:
            raise SrbenchError(f"RRDN config: missing keys {missing}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], beta: float = 0.2) -> RRDNConfig:
        """Infer the config from the tensors of an ``RRDN.state_dict()`` (``beta`` is not stored in it)."""
        def count(fmt: str) -> int:
            n = 0
            while fmt.format(n) in sd:
                n += 1
            return n

        need = ("pre_blocks.weight", "pre_shuffle.weight", "sr.weight", "rrdbs.0.rdbs.0.convs.0.weight")
        missing = [k for k in need if k not in sd]
        if missing:
            raise SrbenchError(f"not an RRDN state dict: missing {', '.join(missing)}")
        pre, shuf, sr = sd["pre_blocks.weight"], sd["pre_shuffle.weight"], sd["sr.weight"]
        out_ch = int(sr.shape[0])
        r = math.isqrt(int(shuf.shape[0]) // out_ch) if shuf.shape[0] % out_ch == 0 else 0
        if r < 1 or r * r * out_ch != shuf.shape[0]:
            raise SrbenchError(f"not an RRDN state dict: pre_shuffle has {shuf.shape[0]} output channels, "
                               f"not {out_ch} * scale^2")
        return cls(C=count("rrdbs.0.rdbs.0.convs.{}.weight"), D=count("rrdbs.0.rdbs.{}.lff.weight"),
                   G=int(sd["rrdbs.0.rdbs.0.convs.0.weight"].shape[0]), G0=int(pre.shape[0]),
                   T=count("rrdbs.{}.rdbs.0.lff.weight"), scale=r, in_channels=int(pre.shape[1]),
                   out_channels=out_ch, kernel_size=int(pre.shape[-1]), beta=beta)


def keras_same_padding(kernel_size: int) -> tuple[int, int]:
    """``(before, after)`` padding of Keras/TF ``padding="same"`` for stride 1, dilation 1."""
    total = kernel_size - 1
    return total // 2, total - total // 2


def depth_to_space(x: torch.Tensor, r: int) -> torch.Tensor:
    """TensorFlow's ``depth_to_space`` (DCR order) for NCHW tensors:
    ``(B, r*r*C, H, W) -> (B, C, H*r, W*r)`` with ``out[b, c, h*r+i, w*r+j] = x[b, (i*r+j)*C + c, h, w]``.
    """
    b, ch, h, w = x.shape
    if ch % (r * r):
        raise SrbenchError(f"depth_to_space: {ch} channels is not a multiple of {r}*{r}")
    c = ch // (r * r)
    return x.view(b, r, r, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, c, h * r, w * r)


class _Conv(nn.Conv2d):
    """A stride-1 convolution with Keras ``"same"`` padding (asymmetric for even kernels)."""

    def __init__(self, cin: int, cout: int, k: int):
        before, after = keras_same_padding(k)
        super().__init__(cin, cout, k, padding=before if before == after else 0)
        self._pad = None if before == after else (before, after, before, after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pad is not None:
            x = F.pad(x, self._pad)
        return super().forward(x)


class _RDB(nn.Module):
    def __init__(self, cfg: RRDNConfig):
        super().__init__()
        k = cfg.kernel_size
        self.convs = nn.ModuleList([_Conv(cfg.G0 + c * cfg.G, cfg.G, k) for c in range(cfg.C)])
        self.lff = _Conv(cfg.G0 + cfg.C * cfg.G, cfg.G0, k)
        self.beta = cfg.beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = x
        for conv in self.convs:
            feats = torch.cat([feats, F.relu(conv(feats))], dim=1)
        return x + self.lff(feats) * self.beta


class _RRDB(nn.Module):
    def __init__(self, cfg: RRDNConfig):
        super().__init__()
        self.rdbs = nn.ModuleList([_RDB(cfg) for _ in range(cfg.D)])
        self.beta = cfg.beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = x
        for rdb in self.rdbs:
            r = rdb(r)
        return x + r * self.beta


class RRDN(nn.Module):
    """idealo's RRDN: ``(B, in_channels, H, W)`` float -> ``(B, out_channels, H*scale, W*scale)``,
    the exact computation of the Keras graph (see the module docstring); output not clamped."""

    def __init__(self, config: RRDNConfig | dict[str, Any]):
        super().__init__()
        cfg = config if isinstance(config, RRDNConfig) else RRDNConfig.from_dict(config)
        self.config = cfg
        k = cfg.kernel_size
        self.pre_blocks = _Conv(cfg.in_channels, cfg.G0, k)
        self.rrdbs = nn.ModuleList([_RRDB(cfg) for _ in range(cfg.T)])
        self.post_blocks = _Conv(cfg.G0, cfg.G0, k)
        self.pre_shuffle = _Conv(cfg.G0, cfg.out_channels * cfg.scale ** 2, k)
        self.sr = _Conv(cfg.out_channels, cfg.out_channels, k)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f0 = self.pre_blocks(x)
        h = f0
        for rrdb in self.rrdbs:
            h = rrdb(h)
        g = self.post_blocks(h) + f0
        return self.sr(depth_to_space(self.pre_shuffle(g), self.config.scale))


# ------------------------------------------------------------------------------------------ loading

def read_safetensors_metadata(data: bytes, path: str | os.PathLike[str] = "<bytes>") -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's bytes (8-byte little-endian header length, JSON header)."""
    if len(data) < 8:
        raise SrbenchError(f"cannot load {path} as safetensors: file too short")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise SrbenchError(f"cannot load {path} as safetensors: header length {n} exceeds the file")
    try:
        header = json.loads(data[8:8 + n])
    except ValueError as e:
        raise SrbenchError(f"cannot load {path} as safetensors: bad header ({e})") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return dict(meta) if isinstance(meta, dict) else {}


def _header_bytes(path: Path) -> bytes:
    """The length prefix and JSON header of a safetensors file (not its tensors)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            return head + f.read(min(n, 100 << 20))
    except OSError as e:
        raise SrbenchError(f"cannot read {path}: {' '.join(str(e.strerror or e).split())}") from None


def load_rrdn(path: str | os.PathLike[str], expected: str | None = None,
              fix: str = "delete it and fetch it again") -> tuple[RRDN, str, dict[str, str]]:
    """Load a converted ``.safetensors`` RRDN: ``(model in eval mode on CPU, sha256 of the file, metadata)``.

    With ``expected`` the file's sha256 must be it, checked before the file is deserialised.

    The config comes from the metadata's ``"config"`` (JSON) when present, else it is inferred from
    the tensor shapes (``beta`` 0.2); either way the tensors must fit it exactly.
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise SrbenchError(f"cannot load {path}: RRDN weights must be a .safetensors file "
                           "(convert a TF.js model with sr_methods.converters.tfjs.convert_file)")
    # size limit, sha256 once per process (checked against ``expected`` first), memory-mapped read
    sd, digest = load_state_dict(path, expected, fix=fix)
    meta = read_safetensors_metadata(_header_bytes(path), path)
    if "config" in meta:
        try:
            cfg = RRDNConfig.from_dict(json.loads(meta["config"]))
        except ValueError as e:
            raise SrbenchError(f"{path}: bad RRDN config in the safetensors metadata ({e})") from None
    else:
        cfg = RRDNConfig.from_state_dict(sd)
    model = RRDN(cfg)
    load_exact_state(model, sd, path, f"an RRDN with config {cfg.to_dict()}")
    return model.eval(), digest, meta


class RRDNMethod(SRMethod):
    """An ``RRDN`` behind the ``SRMethod`` contract: RGB ``[0, 1]`` in, clamped ``[0, 1]`` out, fp32.

    ``upscale`` runs ``_upscale`` under ``torch.inference_mode()`` (see ``SRMethod``). ``tile=N``
    runs on overlapping ``N x N`` LR tiles (``sr_methods.tiling``); the receptive field of an RRDN
    is large (about ``(T*D*(C+1) + 3)`` LR pixels of radius), so tiled output differs slightly from
    whole-image output near tile seams.
    """

    backbone = None

    def __init__(self, model: RRDN, name: str = "rrdn", *, weights: str | None = None, sha256: str | None = None,
                 tile: int | None = None, tile_overlap: int | None = None, tile_blend: str = "crop",
                 extra: dict[str, Any] | None = None):
        super().__init__()
        if not isinstance(model, RRDN):
            raise SrbenchError(f"model must be an RRDN, got {type(model).__name__}")
        cfg = model.config
        if cfg.in_channels != 3 or cfg.out_channels != 3:
            raise SrbenchError(f"{name}: RRDNMethod needs an RGB model, got channels {cfg.in_channels} -> "
                               f"{cfg.out_channels}")
        _, tile_overlap = check_tile_options(tile, tile_overlap, tile_blend)
        self.model = model.eval()
        self.name = name
        self.scales = (cfg.scale,)
        self.weights, self.sha256 = weights, sha256
        self.tile, self.tile_overlap, self.tile_blend = tile, tile_overlap, tile_blend
        self.extra = dict(extra or {})

    def to(self, device: Any) -> RRDNMethod:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(x.to(device=self.device, dtype=torch.float32)).clamp_(0.0, 1.0)

    def _upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        if self.tile is None:
            return self._run(lr)
        return tiled_upscale(self._run, lr, scale, self.tile, self.tile_overlap, blend=self.tile_blend,
                             device=self.device, out_dtype=torch.float32, batchable=True)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "kind": "rrdn", "architecture": "RRDN", "weights": self.weights,
                "sha256": self.sha256, "config": self.model.config.to_dict(),
                "params": sum(p.numel() for p in self.model.parameters()), "dtype": "float32",
                "tile": self.tile, "tile_overlap": self.tile_overlap if self.tile else None,
                "tile_blend": self.tile_blend if self.tile else None, **self.extra}


def build_from_path(path: str | os.PathLike[str], *, name: str | None = None, tile: int | None = None,
                    tile_overlap: int | None = None, tile_blend: str = "crop") -> RRDNMethod:
    """An ``RRDNMethod`` from a converted ``.safetensors`` file; named ``rrdn:<file stem>`` by default."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingAssetError(f"weights file not found: {p}")
    model, digest, meta = load_rrdn(p)
    extra = {k: meta[k] for k in ("source", "source_sha256") if k in meta}
    return RRDNMethod(model, name or f"rrdn:{p.stem}", weights=str(p.resolve()), sha256=digest, tile=tile,
                      tile_overlap=tile_overlap, tile_blend=tile_blend, extra=extra)


def build_named(*, entry: Entry, weights: str | os.PathLike[str] | None = None, tile: int | None = None,
                tile_overlap: int | None = None, tile_blend: str = "crop") -> RRDNMethod:
    """Catalogue factory: entry meta ``file``, ``sha256`` (of the converted ``.safetensors``),
    optional ``url``, ``scales``, ``licence``; the file is found and verified by ``resolve_weights``."""
    m = entry.meta
    path, expected = resolve_weights(m["file"], m["sha256"], url=m.get("url"), weights=weights, name=entry.name)
    model, digest, meta = load_rrdn(path, expected, fix=mismatch_advice(entry.name))
    if m.get("scales") and model.config.scale not in m["scales"]:
        raise SrbenchError(f"{entry.name}: {path} is a x{model.config.scale} model, "
                           f"the catalogue says scales {m['scales']}")
    extra = {"licence": m.get("licence"), "url": m.get("url"),
             **{k: meta[k] for k in ("source", "source_sha256") if k in meta}}
    return RRDNMethod(model, entry.name, weights=str(Path(path).resolve()), sha256=digest, tile=tile,
                      tile_overlap=tile_overlap, tile_blend=tile_blend, extra=extra)
