"""IODA's diversity masks: instance masks on the target LR crop and occlusion of the inputs.

Instance masks (the paper: SAM label maps). No SAM here, so the regions come from an option:

- ``slic``: SLIC superpixels of scikit-image (``n_segments`` regions, compactness 10);
- ``felzenszwalb``: Felzenszwalb-Huttenlocher graph segmentation (scale 100, sigma 0.8);
- ``grid``: a ``g x g`` grid of cells (the paper's ablation);
- ``box``: one random axis-aligned box with sides in ``[1/4, 3/4]`` of the crop (the paper's
  ablation); the "labels" are the box and the rest.

From a label map, the labels covering at least ``min_fraction`` of the crop (the official code:
1,000 pixels of a 128-pixel crop, 6.1 %) are candidates, and a random subset of 1..N of them is
merged into the mask. When no label is large enough the mask is the whole crop (the official code
crashes there). The SR-size mask is the LR mask repeated ``scale`` times per axis (nearest); the
official code resizes it bilinearly and then tests for equality with 1, which loses the borders.

Occlusion (p = 0.5 per pair): the LR crop is cut into ``cell``-pixel cells (32 in the paper) and
each is zeroed with probability 0.5; the same cells are zeroed in the source and the target
input (they are the networks' inputs, so the two domains see the same holes).
All randomness comes from a ``numpy.random.Generator`` handed in by the caller.
"""

from __future__ import annotations

import numpy as np
import torch

from iqa.errors import SrbenchError

INSTANCES = ("slic", "felzenszwalb", "grid", "box")

__all__ = ["INSTANCES", "instance_labels", "instance_mask", "occlusion_mask", "upsample_mask"]


def instance_labels(img: torch.Tensor, kind: str, rng: np.random.Generator, *, n_segments: int = 16,
                    grid: int = 4) -> np.ndarray:
    """An ``(h, w)`` integer label map of the ``(3, h, w)`` image ``img`` in ``[0, 1]``."""
    h, w = img.shape[-2:]
    if kind == "slic":
        from skimage.segmentation import slic

        arr = img.detach().permute(1, 2, 0).cpu().double().numpy()
        return slic(arr, n_segments=n_segments, compactness=10.0, start_label=0, channel_axis=-1)
    if kind == "felzenszwalb":
        from skimage.segmentation import felzenszwalb

        arr = img.detach().permute(1, 2, 0).cpu().double().numpy()
        return felzenszwalb(arr, scale=100, sigma=0.8, min_size=max(1, h * w // 200))
    if kind == "grid":
        rows = np.minimum(np.arange(h) * grid // h, grid - 1)
        cols = np.minimum(np.arange(w) * grid // w, grid - 1)
        return rows[:, None] * grid + cols[None, :]
    if kind == "box":
        bh, bw = (max(1, int(round(s * rng.uniform(0.25, 0.75)))) for s in (h, w))
        t, l = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        labels = np.zeros((h, w), dtype=np.int64)
        labels[t:t + bh, l:l + bw] = 1
        return labels
    raise SrbenchError(f"unknown instance masks {kind!r}: use one of {', '.join(INSTANCES)}")


def instance_mask(labels: np.ndarray, rng: np.random.Generator, min_fraction: float = 1000 / 128 ** 2
                  ) -> torch.Tensor:
    """A ``(h, w)`` float mask: a random subset (1..N) of the labels covering ``min_fraction`` of
    the map, merged; the whole map when none does."""
    ids, counts = np.unique(labels, return_counts=True)
    big = ids[counts >= min_fraction * labels.size]
    if len(big) == 0:
        return torch.ones(labels.shape, dtype=torch.float32)
    n = int(rng.integers(1, len(big) + 1))
    chosen = rng.choice(big, size=n, replace=False)
    return torch.from_numpy(np.isin(labels, chosen).astype(np.float32))


def occlusion_mask(h: int, w: int, rng: np.random.Generator, *, cell: int = 32, p_apply: float = 0.5,
                   p_cell: float = 0.5) -> torch.Tensor:
    """An ``(h, w)`` float keep-mask: all ones with probability ``1 - p_apply``; otherwise each
    ``cell x cell`` block is zeroed with probability ``p_cell``."""
    if rng.random() >= p_apply:
        return torch.ones(h, w)
    gh, gw = -(-h // cell), -(-w // cell)
    keep = torch.from_numpy((rng.random((gh, gw)) >= p_cell).astype(np.float32))
    return keep.repeat_interleave(cell, 0).repeat_interleave(cell, 1)[:h, :w]


def upsample_mask(mask: torch.Tensor, scale: int) -> torch.Tensor:
    """The SR-size mask: each LR pixel repeated ``scale x scale`` times (exact, no interpolation)."""
    return mask.repeat_interleave(scale, -2).repeat_interleave(scale, -1)
