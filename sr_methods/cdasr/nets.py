"""CDASR's networks: the domain-adaptive module (DAM) and a frozen RRDN base that carries it.

CDASR (Multimedia Systems 2025; no official code) conditions an SR network on a frozen image
embedding of its LR input. What srbench builds, and each choice where the paper is silent (every
one an argument of `build_cdasr_network`, the default first):

- **The embedding** ``f = E(rs(x)) / ||E(rs(x))||``: ``E`` is a frozen `iqa.semantic`
  backbone (``"vgg16"``: the 512-d global average of VGG16 ``relu5_3``, offline; or a CLIP model,
  the paper's, where its weights are); ``rs`` resizes the LR input ``x`` to the backbone's
  ``native_size`` (224; bicubic with antialias; ``embed_size``: another side, 0 = as it is). The
  LR image is data: no gradient flows into ``E`` or its input from the DAM path.
- **The DAM**: a two-layer MLP with ReLU (``D -> 1024 -> 512``), a spatial map by conv 3x3 (512
  -> C), ReLU, conv 3x3 (C -> C) of the 512-vector broadcast to the feature map's ``H x W``, and a
  fusion conv 3x3 (2C -> C) over ``[features, map]`` added to the features:
  ``g' = g + fusion(cat[g, map])``. The fusion conv starts at **zero**, so an untrained CDASR
  computes exactly what its base does.
- **Where it sits**: in the RRDN's LR feature space after the global residual
  (``g = post_blocks(h) + f0``), before ``pre_shuffle``; ``C`` is the RRDN's ``G0`` (64 for
  ``esrgan-thick``). At x16 the base is ``rrdn-x16`` (the x8 RRDN plus its learned x2 stage): the
  DAM sits in the x8 RRDN and the x2 stage follows unchanged.
- **Frozen**: the base (RRDN and stage) and the backbone never train; only the DAM does, and only
  its tensors are the network's ``state_dict`` (the frozen parts are held outside the module tree,
  so EMA, resume state and checkpoints hold the DAM alone, a few MB).

Shapes: images ``(B, 3, h, w)`` float in ``[0, 1]``; RRDN features ``(B, C, h, w)``; embedding
``(B, D)``; output ``(B, 3, h*s, w*s)``, not clamped (as `RRDN`; the SR method clamps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from iqa.errors import SrbenchError

__all__ = ["DAM", "CDASRNet", "Frozen", "build_cdasr_network", "embed"]


class DAM(nn.Module):
    """The domain-adaptive module: ``(g (B, C, H, W), f (B, D)) -> g' (B, C, H, W)``."""

    def __init__(self, embed_dim: int, channels: int, hidden: tuple[int, int] = (1024, 512)):
        super().__init__()
        h1, h2 = hidden
        self.mlp = nn.Sequential(nn.Linear(embed_dim, h1), nn.ReLU(inplace=True), nn.Linear(h1, h2))
        self.spatial = nn.Sequential(nn.Conv2d(h2, channels, 3, padding=1), nn.ReLU(inplace=True),
                                     nn.Conv2d(channels, channels, 3, padding=1))
        self.fusion = nn.Conv2d(2 * channels, channels, 3, padding=1)
        nn.init.zeros_(self.fusion.weight)
        nn.init.zeros_(self.fusion.bias)

    def spatial_map(self, f: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``f (B, D)`` -> the map ``(B, C, H, W)`` of the MLP's vector broadcast to ``size``."""
        v = self.mlp(f)
        return self.spatial(v[:, :, None, None].expand(-1, -1, *size))

    def forward(self, g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        m = self.spatial_map(f, (g.shape[-2], g.shape[-1]))
        return g + self.fusion(torch.cat([g, m], dim=1))


class Frozen(nn.Module):
    """The frozen parts: ``rrdn`` (an `RRDN`), ``stage`` (an x2 stage's `StagedRRDN` or None) and
    ``backbone`` (a `SemanticBackbone`); always in eval mode, no parameter requires a gradient."""

    def __init__(self, rrdn: nn.Module, stage: nn.Module | None, backbone: nn.Module):
        super().__init__()
        self.rrdn, self.stage, self.backbone = rrdn, stage, backbone
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> Frozen:
        return super().train(False)


def embed(backbone: nn.Module, x: torch.Tensor, size: int) -> torch.Tensor:
    """``E(rs(x))``: the backbone's embedding ``(B, D)`` of ``x (B, 3, h, w)`` resized (bicubic,
    antialias) to ``size x size`` (0: as it is); differentiable in ``x``, not normalised."""
    if size and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    return backbone(x)[1].float()


class CDASRNet(nn.Module):
    """A frozen RRDN base (x8, or x8 + x2 stage = x16) with a trainable `DAM` (see the module doc).

    ``forward(x, f=None)``: ``x (B, 3, h, w)`` -> ``(B, 3, h*s, w*s)``; ``f (B, D)`` is the unit
    embedding (computed from ``x`` when None: pass it to run tiles under one whole-image embedding).
    ``features(x)`` and ``tail(g, f)`` split the computation so that training computes the frozen
    RRDN body once per batch and only the DAM and what follows it per step.
    """

    def __init__(self, rrdn: nn.Module, backbone: nn.Module, *, stage: nn.Module | None = None,
                 embed_size: int = 224, hidden: tuple[int, int] = (1024, 512),
                 base_record: dict[str, Any] | None = None):
        super().__init__()
        if isinstance(embed_size, bool) or not isinstance(embed_size, int) or embed_size < 0:
            raise SrbenchError(f"embed_size must be an integer >= 0, got {embed_size!r}")
        self._frozen = [Frozen(rrdn, stage, backbone)]  # a list: not a submodule, not in state_dict
        self.embed_size = embed_size
        self.dam = DAM(int(backbone.embed_dim), int(rrdn.config.G0), tuple(hidden))
        self.scale = int(rrdn.config.scale) * (2 if stage is not None else 1)
        self.base_record = dict(base_record or {})

    @property
    def frozen(self) -> Frozen:
        return self._frozen[0]

    @property
    def backbone(self) -> nn.Module:
        return self.frozen.backbone

    def _apply(self, fn: Any, *args: Any, **kw: Any) -> CDASRNet:  # .to(), .half(): the frozen parts too
        self.frozen._apply(fn, *args, **kw)
        return super()._apply(fn, *args, **kw)

    def base_sha256(self) -> str | None:
        return self.base_record.get("sha256")

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The unit embedding ``f (B, D)`` of LR ``x``; no gradient (the LR is data)."""
        with torch.no_grad():
            return F.normalize(embed(self.backbone, x.float(), self.embed_size), dim=-1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen RRDN up to the global residual: ``(B, 3, h, w) -> g (B, C, h, w)``, no gradient."""
        r = self.frozen.rrdn
        with torch.no_grad():
            f0 = r.pre_blocks(x)
            h = f0
            for rrdb in r.rrdbs:
                h = rrdb(h)
            return r.post_blocks(h) + f0

    def tail(self, g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """The DAM on ``g``, then the RRDN's upsampler (and the x2 stage at x16): differentiable in
        the DAM's parameters."""
        from ..rrdn import depth_to_space

        r = self.frozen.rrdn
        y = r.sr(depth_to_space(r.pre_shuffle(self.dam(g, f)), r.config.scale))
        stage = self.frozen.stage
        return y if stage is None else stage.upsample_base(y.clamp(0, 1))

    def forward(self, x: torch.Tensor, f: torch.Tensor | None = None) -> torch.Tensor:
        return self.tail(self.features(x), self.embedding(x) if f is None else f)


# -- building ---------------------------------------------------------------------------------------------

def _load_base(base: str, base_path: str | None) -> tuple[nn.Module, nn.Module | None, dict[str, Any]]:
    """``(x8 RRDN, StagedRRDN or None, record)`` of a base: the catalogue network ``base``
    (``esrgan-thick-x8``: the asset; ``rrdn-x16``: its shipped checkpoint, itself on the asset) or
    the file ``base_path`` (a converted RRDN ``.safetensors``, or an srbench ``rrdn-x2-stage``
    checkpoint for x16)."""
    from ..rrdn import load_rrdn

    if base_path:
        p = Path(base_path).expanduser()
        if not p.is_file():
            raise SrbenchError(f"CDASR base file not found: {p}")
        from ..rrdn import _header_bytes, read_safetensors_metadata
        from ..trained import FORMAT, load_network

        if read_safetensors_metadata(_header_bytes(p), p).get("format") == FORMAT:
            net, rec, sha = load_network(p)
            if rec.get("arch") != "rrdn-x2-stage":
                raise SrbenchError(f"CDASR base {p} is a {rec.get('arch')} checkpoint; an x16 base must be an "
                                   "rrdn-x2-stage one (rrdn-x16)")
            return net.base, net, {"name": None, "path": str(p.resolve()), "sha256": sha}
        model, sha, _ = load_rrdn(p)
        return model, None, {"name": None, "path": str(p.resolve()), "sha256": sha}
    if base == "esrgan-thick-x8":
        from iqa.assets import ASSETS

        from ..catalogue import register_assets

        register_assets()
        path = ASSETS.require(base)
        model, sha, _ = load_rrdn(path, ASSETS.get(base).sha256, fix=f"run `srbench assets fetch {base} --force`")
        return model, None, {"name": base, "asset": base, "sha256": sha}
    if base == "rrdn-x16":
        import sr_methods

        m = sr_methods.create_method("rrdn-x16")
        return m.net.base, m.net, {"name": base, "sha256": m.sha256, "extends": m.record.get("base")}
    raise SrbenchError(f"CDASR base must be esrgan-thick-x8 or rrdn-x16 (or base_path=FILE), got {base!r}")


def build_cdasr_network(*, base: str = "esrgan-thick-x8", base_path: str | None = None,
                        backbone: str = "vgg16", backbone_weights: str | None = None, embed_size: int = 224,
                        hidden: tuple[int, int] | list[int] = (1024, 512), base_sha256: str | None = None,
                        backbone_sha256: str | None = None) -> CDASRNet:
    """The CDASR network (the builder of checkpoint arch ``cdasr``): base and backbone are loaded
    and, where ``base_sha256`` / ``backbone_sha256`` are given (a checkpoint's record), must be
    the files the DAM was trained on. ``backbone``: ``"vgg16"``, ``"clip:MODEL/PRETRAINED"`` or an
    open_clip config JSON (tests); ``backbone_weights``: its weights file (default: found by name)."""
    from iqa.semantic import build_trained_backbone

    rrdn, stage, record = _load_base(base, base_path)
    if base_sha256 and record["sha256"] != base_sha256:
        raise SrbenchError(f"the CDASR base {base_path or base} has sha256 {record['sha256']}, the DAM was trained "
                           f"on {base_sha256}")
    bb = build_trained_backbone(backbone, backbone_weights, backbone_sha256, what="the CDASR backbone")
    if len(tuple(hidden)) != 2:
        raise SrbenchError(f"hidden must be two widths (the MLP's), got {hidden!r}")
    return CDASRNet(rrdn, bb, stage=stage, embed_size=embed_size, hidden=tuple(int(h) for h in hidden),
                    base_record=record)
