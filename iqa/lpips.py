"""LPIPS v0.1 (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", CVPR 2018), written from the paper's definition.

For images in ``[0, 1]``: scale to ``[-1, 1]``, normalise each channel with the ScalingLayer
constants (shift ``(-0.030, -0.088, -0.188)``, scale ``(0.458, 0.448, 0.450)``), run an ImageNet
backbone and take five ReLU outputs (AlexNet ``relu1..relu5``; VGG16 ``relu1_2, relu2_2, relu3_3,
relu4_3, relu5_3``). Each tap is unit-normalised along channels, ``f / (||f||_2 + 1e-10)``; the
squared difference of the two images' taps goes through a learnt 1x1 linear layer (no bias, one
output), is averaged over space, and the five layer values are summed. Lower is better; 0 for
identical images.

The linear layers ("v0.1") are the files shipped in the ``lpips`` PyPI package
(``lpips/weights/v0.1/{alex,vgg}.pth``), read as data (the package is not imported). The ImageNet
backbone comes from torchvision's checkpoint or the converted asset, found by :mod:`iqa.weights`
(never downloaded). Both files are verified against their known sha256 before use (hashed once
per process) and recorded, with their paths, in ``provenance()``.

:class:`LPIPSMetric` is the constructor (takes objects: a backbone state dict or module and the
linear-layer state dict); :func:`LPIPS` and :func:`LPIPS_VGG` are the catalogue factories (take
paths and find files).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import metric_info
from .base import Metric, quantize_uint8
from .errors import SrbenchError
from .protocols import DEFAULT_PROTOCOL, Protocol, get_protocol
from .weights import build_backbone, load_package_file, resolve_backbone_record

__all__ = ["LPIPS", "LPIPS_VGG", "LPIPSMetric", "load_lin_record", "load_lin_weights"]

_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10

# indices in torchvision's `features` after which the tap (a ReLU output) is taken
_TAPS = {"alexnet": (1, 4, 7, 9, 11), "vgg16": (3, 8, 15, 22, 29)}
_CHANNELS = {"alexnet": (64, 192, 384, 256, 256), "vgg16": (64, 128, 256, 512, 512)}
_LIN_FILES = {"alexnet": "weights/v0.1/alex.pth", "vgg16": "weights/v0.1/vgg.pth"}
_METRIC_NAMES = {"alexnet": "lpips", "vgg16": "lpips-vgg"}


def _reject_options(metric: str, options: Mapping[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SrbenchError(f"unknown option(s) for metric {metric!r}: {', '.join(unknown)} "
                           f"(known options: {', '.join(known)})")


def _lin_tensors(arch: str, lin: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    """The five ``(1, C, 1, 1)`` weights ``lin{k}.model.*.weight`` of an LPIPS state dict."""
    out = []
    for k, c in enumerate(_CHANNELS[arch]):
        keys = [key for key in lin if key.startswith(f"lin{k}.") and key.endswith("weight")]
        if len(keys) != 1:
            raise SrbenchError(f"LPIPS linear weights need one 'lin{k}.*weight' tensor, found {keys or 'none'}")
        w = lin[keys[0]]
        if w.numel() != c:
            raise SrbenchError(f"LPIPS linear weight {keys[0]!r} has shape {tuple(w.shape)}, expected (1, {c}, 1, 1)")
        out.append(w.detach().to(torch.float32).reshape(1, c, 1, 1).clone())
    return out


def load_lin_weights(arch: str, path: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """The LPIPS v0.1 linear layers of ``arch``: from ``path``, else from the installed ``lpips``
    (verified against its known sha256)."""
    return load_lin_record(arch, path)[0]


def load_lin_record(arch: str, path: str | os.PathLike[str] | None = None
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """:func:`load_lin_weights` and the file record (path, sha256, verified) of the file read."""
    if arch not in _LIN_FILES:
        raise SrbenchError(f"LPIPS has no linear weights for backbone {arch!r} (known: {', '.join(_LIN_FILES)})")
    return load_package_file("lpips", _LIN_FILES[arch], path)


class LPIPSMetric(Metric):
    """LPIPS v0.1 on a given backbone: ``forward(x, ref)`` -> ``(B,)`` float32, lower is better.

    ``arch`` is "alexnet" or "vgg16"; ``backbone`` a torchvision state dict (or a module) of that
    architecture; ``lin`` the LPIPS state dict of the five linear layers. Inputs are RGB in
    ``[0, 1]``; the protocol's uint8 rounding applies, its border shave and Y channel do not.
    """

    def __init__(
        self,
        arch: str,
        backbone: Mapping[str, torch.Tensor] | nn.Module,
        lin: Mapping[str, torch.Tensor],
        protocol: str | Protocol = DEFAULT_PROTOCOL,
    ):
        super().__init__()
        if arch not in _TAPS:
            raise SrbenchError(f"LPIPS backbone must be one of {', '.join(_TAPS)}, got {arch!r}")
        self.arch = arch
        self.info = metric_info(_METRIC_NAMES[arch])
        self.protocol = get_protocol(protocol)
        taps = _TAPS[arch]
        self.features = build_backbone(arch, backbone)[: taps[-1] + 1]
        self._taps = frozenset(taps)
        for k, w in enumerate(_lin_tensors(arch, lin)):
            self.register_buffer(f"lin{k}", w)
        # [0, 1] -> [-1, 1] -> (v - shift) / scale, folded into one affine map x * a + b
        shift = torch.tensor(_SHIFT).view(1, 3, 1, 1)
        scale = torch.tensor(_SCALE).view(1, 3, 1, 1)
        self.register_buffer("in_mul", 2.0 / scale)
        self.register_buffer("in_add", (-1.0 - shift) / scale)
        self.eval()

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five unit-normalised feature maps of ``(B, 3, H, W)`` images in ``[0, 1]``."""
        h = torch.addcmul(self.in_add, x, self.in_mul)
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self._taps:
                norm = h.square().sum(dim=1, keepdim=True).sqrt()
                out.append(h / (norm + _EPS))
        return out

    def score(self, x: torch.Tensor, ref: torch.Tensor | None, *, scale: int, gray: bool = False) -> torch.Tensor:
        if ref is None:
            raise SrbenchError(f"metric {self.info.name!r} is full-reference: pass ref")
        if self.protocol.quantize:
            x, ref = quantize_uint8(x), quantize_uint8(ref)
        n = x.shape[0]
        feats = self.taps(torch.cat([x, ref]).to(self.in_mul.dtype))
        total = x.new_zeros(n, dtype=torch.float32)
        for k, f in enumerate(feats):
            d = (f[:n] - f[n:]).square()
            total = total + F.conv2d(d, getattr(self, f"lin{k}")).mean(dim=(1, 2, 3))
        return total


def _build(arch: str, protocol: str | Protocol, options: dict[str, Any]) -> LPIPSMetric:
    _reject_options(_METRIC_NAMES[arch], options, ("backbone", "backbone_weights", "lin", "lin_weights"))
    if options.get("lin") is not None and options.get("lin_weights") is not None:
        raise SrbenchError("pass either lin (a state dict) or lin_weights (a path), not both")
    backbone, backbone_record = resolve_backbone_record(arch, options.get("backbone"), options.get("backbone_weights"))
    lin = options.get("lin")
    if lin is None:
        lin, lin_record = load_lin_record(arch, options.get("lin_weights"))
    else:
        lin_record = {"path": None, "sha256": None, "given": "object"}
    metric = LPIPSMetric(arch, backbone, lin, protocol=protocol)
    metric.weight_files = {"backbone": backbone_record, "lin": lin_record}
    return metric


def LPIPS(protocol: str | Protocol = DEFAULT_PROTOCOL, **options: Any) -> LPIPSMetric:
    """Catalogue factory of ``lpips`` (AlexNet backbone).

    Options: ``backbone_weights`` (path of torchvision's ``alexnet-owt-7be5be79.pth``; default:
    looked up in ``$SRBENCH_WEIGHTS`` and the torch hub cache, never downloaded), ``lin_weights``
    (path of the LPIPS linear layers; default: ``alex.pth`` of the installed ``lpips`` package),
    or objects instead of paths: ``backbone`` (state dict or module), ``lin`` (state dict).
    """
    return _build("alexnet", protocol, options)


def LPIPS_VGG(protocol: str | Protocol = DEFAULT_PROTOCOL, **options: Any) -> LPIPSMetric:
    """Catalogue factory of ``lpips-vgg`` (VGG16 backbone, ``vgg16-397923af.pth``); options as :func:`LPIPS`."""
    return _build("vgg16", protocol, options)
