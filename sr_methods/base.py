"""The SR method contract.

An SR method maps a batch of low-resolution images to high-resolution ones:
``upscale(lr, scale)`` takes a float ``(B, 3, h, w)`` RGB tensor in ``[0, 1]`` and returns a
float32 ``(B, 3, h*scale, w*scale)`` tensor in ``[0, 1]`` (clamped) on the same device as ``lr``.
The method runs on its own device (``to(device)``); inputs on another device are moved there and
the result is moved back.
"""

from __future__ import annotations

from typing import Any

import torch

from iqa.base import check_images
from iqa.errors import SrbenchError

__all__ = ["SRMethod", "UnsupportedScaleError", "check_scale", "format_scales"]


class UnsupportedScaleError(SrbenchError):
    """``upscale`` was asked for a scale the method cannot produce."""

    def __init__(self, method: str, scale: object, scales: tuple[int, ...] | None):
        self.method, self.scale, self.scales = method, scale, scales
        super().__init__(f"method {method!r} does not support scale {scale!r} (supported scales: {format_scales(scales)})")


def format_scales(scales: tuple[int, ...] | None) -> str:
    return "any integer >= 1" if scales is None else ", ".join(str(s) for s in scales)


def check_scale(method: str, scale: object, scales: tuple[int, ...] | None) -> int:
    """Return ``scale`` if ``method`` supports it; raise a one-line error otherwise."""
    if isinstance(scale, bool) or not isinstance(scale, int):
        raise SrbenchError(f"scale must be an int, got {scale!r} ({type(scale).__name__}) for method {method!r}")
    if scale < 1 or (scales is not None and scale not in scales):
        raise UnsupportedScaleError(method, scale, scales)
    return scale


class SRMethod:
    """Base class: subclasses set ``name``/``scales`` and implement ``_upscale``.

    - ``name``: the method's name as it appears in score rows.
    - ``scales``: the supported integer scales, or ``None`` for any integer scale ``>= 1``.
    - ``backbone``: the guidance backbone (e.g. ``"ViT-B-16"``) for CLIP-guided methods, else ``None``;
      used to flag circular evaluations (a metric on the same backbone).

    ``upscale`` checks its inputs, runs ``_upscale`` under ``torch.inference_mode()`` and checks,
    clamps and converts the result, so subclasses only compute.
    """

    name: str = "?"
    scales: tuple[int, ...] | None = None
    backbone: str | None = None

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    def supports(self, scale: int) -> bool:
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            return False
        return self.scales is None or scale in self.scales

    def upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        """``(B, 3, h, w)`` float in ``[0, 1]`` -> float32 ``(B, 3, h*scale, w*scale)`` in ``[0, 1]``."""
        check_scale(self.name, scale, self.scales)
        check_images(lr, "lr")
        b, _, h, w = lr.shape
        if h < 1 or w < 1:
            raise SrbenchError(f"lr must have H, W >= 1, got shape {tuple(lr.shape)}")
        with torch.inference_mode():
            sr = self._upscale(lr, scale)
        want = (b, 3, h * scale, w * scale)
        if not isinstance(sr, torch.Tensor) or tuple(sr.shape) != want:
            got = tuple(sr.shape) if isinstance(sr, torch.Tensor) else type(sr).__name__
            raise SrbenchError(f"method {self.name!r} returned {got} for scale {scale}, expected {want}")
        # outside inference mode these ops return ordinary tensors, usable in autograd afterwards
        sr = sr.to(device=lr.device, dtype=torch.float32).clamp(0.0, 1.0)
        return sr.clone() if sr.is_inference() else sr

    def _upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        raise NotImplementedError

    def to(self, device: Any) -> SRMethod:
        self.device = torch.device(device)
        return self

    def provenance(self) -> dict[str, Any]:
        """What the run manifest records about this method (weights, sha256, architecture, ...)."""
        return {"name": self.name, "scales": list(self.scales) if self.scales is not None else None,
                "backbone": self.backbone}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, scales={format_scales(self.scales)!r}, device={str(self.device)!r})"
