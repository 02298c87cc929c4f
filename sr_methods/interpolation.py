"""Interpolation baselines: nearest, bilinear, bicubic and Lanczos-3 upscaling.

All four call ``iqa.resize.imresize`` (MATLAB's ``imresize``) with the kernels ``box``,
``triangle``, ``cubic`` and ``lanczos3``. ``mode="matlab"`` (default) is MATLAB's uint8 path: the
input is mapped to the 256 uint8 levels, each pass is rounded, and the output lies on the
``k/255`` grid, so ``bicubic`` reproduces the published "Bicubic" rows of SR tables.
``mode="float"`` is MATLAB's double path (no rounding; the output is clamped to ``[0, 1]``).
"""

from __future__ import annotations

from typing import Any

import torch

from iqa.errors import SrbenchError
from iqa.registry import Entry

from .base import SRMethod

__all__ = ["MODES", "InterpolationMethod", "build"]

MODES = ("matlab", "float")


class InterpolationMethod(SRMethod):
    """Upscaling by MATLAB ``imresize`` with ``kernel``; any integer scale."""

    scales = None
    backbone = None

    def __init__(self, name: str, kernel: str, mode: str = "matlab"):
        super().__init__()
        if mode not in MODES:
            raise SrbenchError(f"mode of method {name!r} must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        self.name, self.kernel, self.mode = name, kernel, mode

    def _upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        from iqa.resize import imresize

        return imresize(lr.to(self.device), scale, kernel=self.kernel, mode=self.mode)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "kind": "interpolation", "kernel": self.kernel, "mode": self.mode,
                "implementation": "iqa.resize.imresize"}


def build(*, entry: Entry, mode: str = "matlab") -> InterpolationMethod:
    """Factory for the catalogue: the kernel comes from the entry, ``mode`` from the user."""
    return InterpolationMethod(entry.name, entry.meta["kernel"], mode=mode)
