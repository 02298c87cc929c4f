"""DISTS (Ding et al., "Image Quality Assessment: Unifying Structure and Texture Similarity",
TPAMI 2020), written from the paper's definition.

Representation: the image itself (stage 0, 3 channels, in ``[0, 1]``) and the five VGG16 stages
``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3`` (64, 128, 256, 512, 512 channels) computed on the
ImageNet-normalised image, with every max pooling replaced by L2 pooling: ``sqrt(g * x^2)`` where
``g`` is the normalised 3x3 Hanning window (outer product of ``(0.5, 1, 0.5)``), stride 2,
padding 1 (``1e-12`` is added under the square root).

For each channel ``j`` of stage ``i`` with global spatial statistics (means ``mx, my``, variances
``vx, vy``, covariance ``cxy = E[xy] - mx my``):

    l_ij = (2 mx my + c1) / (mx^2 + my^2 + c1),    s_ij = (2 cxy + c2) / (vx + vy + c2)

    DISTS = 1 - sum_ij (alpha_ij l_ij + beta_ij s_ij),   c1 = c2 = 1e-6

with ``alpha, beta >= 0`` (1475 values each) normalised so that ``sum(alpha) + sum(beta) = 1``.
The learnt alpha/beta are the ``weights.pt`` shipped in the ``DISTS_pytorch`` PyPI package
(tensors ``(1, 1475, 1, 1)``; they already sum to 1, the normalisation is applied anyway), read
as data without importing the package. The VGG16 ImageNet weights come from torchvision's
checkpoint ``vgg16-397923af.pth`` (or the converted asset), found by :mod:`iqa.weights` (never
downloaded). Both files are verified against their known sha256 before use (hashed once per
process) and recorded, with their paths, in ``provenance()``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import metric_info
from .base import Metric, quantize_uint8
from .errors import SrbenchError
from .lpips import _reject_options
from .protocols import DEFAULT_PROTOCOL, Protocol, get_protocol
from .weights import build_backbone, load_package_file, resolve_backbone_record

__all__ = ["DISTS", "DISTSMetric", "L2Pool", "load_alpha_beta", "load_alpha_beta_record"]

_CHANNELS = (3, 64, 128, 256, 512, 512)
_C1 = 1e-6
_C2 = 1e-6
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
# VGG16 `features` index ranges of the five stages; the max pool before stages 2..5 (indices 4,
# 9, 16, 23) is replaced by L2 pooling, the last one (30) is not used.
_STAGES = ((0, 4), (5, 9), (10, 16), (17, 23), (24, 30))


class L2Pool(nn.Module):
    """``sqrt(hann3x3 * x^2 + 1e-12)`` per channel, stride 2, padding 1 (DISTS' anti-aliased pooling)."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.hann_window(5, periodic=False, dtype=torch.float64)[1:-1]  # (0.5, 1, 0.5)
        g = a[:, None] * a[None, :]
        g = (g / g.sum()).to(torch.float32)
        self.channels = channels
        self.register_buffer("filter", g.expand(channels, 1, 3, 3).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x.square(), self.filter, stride=2, padding=1, groups=self.channels)
        return (out + 1e-12).sqrt()


def load_alpha_beta(path: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """DISTS' learnt ``alpha``/``beta``: from ``path``, else the installed ``DISTS_pytorch``'s file
    (verified against its known sha256)."""
    return load_alpha_beta_record(path)[0]


def load_alpha_beta_record(path: str | os.PathLike[str] | None = None
                           ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """:func:`load_alpha_beta` and the file record (path, sha256, verified) of the file read."""
    # the package also installs a copy at sys.prefix (setup.py data_files)
    return load_package_file("DISTS_pytorch", "weights.pt", path, fallback=Path(sys.prefix) / "weights.pt")


def _alpha_beta(weights: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    n = sum(_CHANNELS)
    out = []
    for key in ("alpha", "beta"):
        if key not in weights:
            raise SrbenchError(f"DISTS weights need an {key!r} tensor, got keys {sorted(weights)}")
        t = weights[key].detach().to(torch.float32).reshape(-1)
        if t.numel() != n:
            raise SrbenchError(f"DISTS {key!r} must have {n} values, got shape {tuple(weights[key].shape)}")
        out.append(t)
    alpha, beta = out
    total = alpha.sum() + beta.sum()
    return alpha / total, beta / total


class DISTSMetric(Metric):
    """DISTS on a given VGG16 backbone: ``forward(x, ref)`` -> ``(B,)`` float32, lower is better.

    ``backbone`` is a torchvision VGG16 state dict (or module); ``alpha_beta`` a mapping with the
    ``alpha`` and ``beta`` tensors (1475 values each). Inputs are RGB in ``[0, 1]``; the
    protocol's uint8 rounding applies, its border shave and Y channel do not.
    """

    def __init__(
        self,
        backbone: Mapping[str, torch.Tensor] | nn.Module,
        alpha_beta: Mapping[str, torch.Tensor],
        protocol: str | Protocol = DEFAULT_PROTOCOL,
    ):
        super().__init__()
        self.info = metric_info("dists")
        self.protocol = get_protocol(protocol)
        vgg = build_backbone("vgg16", backbone)
        stages = []
        for i, (lo, hi) in enumerate(_STAGES):
            layers: list[nn.Module] = [] if i == 0 else [L2Pool(_CHANNELS[i])]
            layers += [vgg[j] for j in range(lo, hi)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        alpha, beta = _alpha_beta(alpha_beta)
        self.register_buffer("alpha", alpha)
        self.register_buffer("beta", beta)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))
        for prm in self.parameters():
            prm.requires_grad_(False)
        self.eval()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six representations of ``(B, 3, H, W)`` images in ``[0, 1]`` (the image first)."""
        out = [x]
        h = (x - self.mean) / self.std
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def score(self, x: torch.Tensor, ref: torch.Tensor | None, *, scale: int, gray: bool = False) -> torch.Tensor:
        if ref is None:
            raise SrbenchError("metric 'dists' is full-reference: pass ref")
        if self.protocol.quantize:
            x, ref = quantize_uint8(x), quantize_uint8(ref)
        n = x.shape[0]
        feats = self.features(torch.cat([x, ref]).to(self.mean.dtype))
        alphas = torch.split(self.alpha, _CHANNELS)
        betas = torch.split(self.beta, _CHANNELS)
        similarity = x.new_zeros(n, dtype=torch.float32)
        for f, alpha, beta in zip(feats, alphas, betas):
            fx, fy = f[:n], f[n:]
            mx = fx.mean(dim=(2, 3))
            my = fy.mean(dim=(2, 3))
            vx = (fx - mx[..., None, None]).square().mean(dim=(2, 3))
            vy = (fy - my[..., None, None]).square().mean(dim=(2, 3))
            cxy = (fx * fy).mean(dim=(2, 3)) - mx * my
            lum = (2 * mx * my + _C1) / (mx.square() + my.square() + _C1)
            struct = (2 * cxy + _C2) / (vx + vy + _C2)
            similarity = similarity + (lum * alpha).sum(dim=1) + (struct * beta).sum(dim=1)
        return 1.0 - similarity


def DISTS(protocol: str | Protocol = DEFAULT_PROTOCOL, **options: Any) -> DISTSMetric:
    """Catalogue factory of ``dists``.

    Options: ``backbone_weights`` (path of torchvision's ``vgg16-397923af.pth``; default: looked up
    in ``$SRBENCH_WEIGHTS`` and the torch hub cache, never downloaded), ``dists_weights`` (path of
    DISTS' alpha/beta file; default: ``weights.pt`` of the installed ``DISTS_pytorch``), or objects
    instead of paths: ``backbone`` (state dict or module), ``alpha_beta`` (mapping).
    """
    _reject_options("dists", options, ("alpha_beta", "backbone", "backbone_weights", "dists_weights"))
    if options.get("alpha_beta") is not None and options.get("dists_weights") is not None:
        raise SrbenchError("pass either alpha_beta (a mapping) or dists_weights (a path), not both")
    backbone, backbone_record = resolve_backbone_record("vgg16", options.get("backbone"),
                                                        options.get("backbone_weights"))
    alpha_beta = options.get("alpha_beta")
    if alpha_beta is None:
        alpha_beta, ab_record = load_alpha_beta_record(options.get("dists_weights"))
    else:
        ab_record = {"path": None, "sha256": None, "given": "object"}
    metric = DISTSMetric(backbone, alpha_beta, protocol=protocol)
    metric.weight_files = {"backbone": backbone_record, "alpha_beta": ab_record}
    return metric
