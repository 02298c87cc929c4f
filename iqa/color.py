"""Colour conversions used by the SR evaluation protocols."""

from __future__ import annotations

import torch

# ITU-R BT.601 luma with the studio-range offset, as MATLAB's rgb2ycbcr: for R, G, B in [0, 1],
# Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255, so Y lies in [16/255, 235/255].
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in ``[0, 1]`` -> ``(B, 1, H, W)`` Y in ``[16/255, 235/255]``."""
    w = torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x * w).sum(dim=1, keepdim=True) + 16.0) / 255.0
