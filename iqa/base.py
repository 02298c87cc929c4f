"""The metric contract.

Images are float32 RGB tensors ``(B, 3, H, W)`` in ``[0, 1]``. A metric returns one score per
image, a tensor of shape ``(B,)``, on the input's device; it never averages over the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .errors import SrbenchError


@dataclass(frozen=True)
class MetricInfo:
    name: str
    kind: str  # "fr" (full-reference) or "nr" (no-reference)
    higher_better: bool
    range: tuple[float, float]  # (low, high); float("inf") where unbounded
    description: str = ""
    backbone: str | None = None  # e.g. "alexnet", "vgg16", "ViT-B-16": used for circularity flags


def check_images(x: object, name: str = "x") -> torch.Tensor:
    """Raise a one-line error unless ``x`` is a float ``(B, 3, H, W)`` tensor in ``[0, 1]``."""
    if not isinstance(x, torch.Tensor):
        raise SrbenchError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise SrbenchError(f"{name} must have shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise SrbenchError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}")
    if x.numel():
        # one pass, no copy for channels-last tensors (min()/max() would copy them)
        lo_t, hi_t = torch.aminmax(x.permute(0, 2, 3, 1) if x.stride(1) < x.stride(-1) else x)
        lo, hi = float(lo_t), float(hi_t)
    if x.numel() and (lo < -1e-6 or hi > 1 + 1e-6):
        raise SrbenchError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return x


def check_pair(x: torch.Tensor, ref: torch.Tensor) -> None:
    check_images(x, "x")
    check_images(ref, "ref")
    if x.shape != ref.shape:
        raise SrbenchError(f"x and ref must have the same shape, got {tuple(x.shape)} and {tuple(ref.shape)}")


def quantize_uint8(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest of the 256 uint8 levels, staying in float ``[0, 1]``.

    The SR convention (BasicSR ``tensor2img``, saved PNG outputs) scores images after this step.
    """
    return (x.clamp(0, 1) * 255.0).round() / 255.0


class Metric(torch.nn.Module):
    """Base class: subclasses set ``info`` and implement ``score``.

    ``forward(x, ref=None, scale=1, gray=False)`` checks the inputs and returns ``(B,)`` scores.
    ``scale`` is the SR factor of the images, used by protocols that shave a border of ``scale``
    pixels. ``gray=True`` says the batch comes from single-channel (grayscale) files: metrics that
    score luminance then score the gray level itself, as MATLAB's evaluation applies ``rgb2ycbcr``
    only to 3-channel images; other metrics ignore it.
    """

    info: MetricInfo
    # role -> iqa.assets.file_record of each file the metric loaded ("backbone", "lin", ...); set by
    # the factories that load files, reported by provenance()
    weight_files: dict[str, dict[str, Any]] = {}

    def forward(self, x: torch.Tensor, ref: torch.Tensor | None = None, *, scale: int = 1,
                gray: bool = False) -> torch.Tensor:
        if self.info.kind == "fr":
            if ref is None:
                raise SrbenchError(f"metric {self.info.name!r} is full-reference: pass ref")
            check_pair(x, ref)
        else:
            check_images(x, "x")
        if not isinstance(scale, int) or scale < 1:
            raise SrbenchError(f"scale must be a positive int, got {scale!r}")
        return self.score(x, ref, scale=scale, gray=bool(gray))

    def score(self, x: torch.Tensor, ref: torch.Tensor | None, *, scale: int, gray: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def provenance(self) -> dict[str, Any]:
        """What a run records about this metric's trained parameters: ``{"files": {role: record}}``
        with the path and ``sha256`` of every file it loaded (``weight_files``), so that a changed
        file changes the run's fingerprint; ``{}`` when nothing was loaded from a file."""
        return {"files": {k: dict(v) for k, v in self.weight_files.items()}} if self.weight_files else {}


def tile_boxes(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """``(top, left, tile_h, tile_w)`` of the tiles covering an image: ``ceil(H / tile) x
    ceil(W / tile)`` tiles of ``min(tile, H) x min(tile, W)``, evenly spaced from the top-left
    corner to the bottom-right one (neighbours overlap by less than a tile; none when the size
    divides). One tiling rule for every metric that scores large images by tiles."""
    def starts(length: int, size: int) -> list[int]:
        n = max(1, math.ceil(length / size))
        return [0] if n == 1 else [round(i * (length - size) / (n - 1)) for i in range(n)]

    th, tw = min(tile, height), min(tile, width)
    return [(top, left, th, tw) for top in starts(height, th) for left in starts(width, tw)]
