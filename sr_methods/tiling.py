"""Tiled inference: run an upscaler on overlapping LR tiles and stitch the results.

``tiled_upscale(fn, lr, scale, tile, overlap)`` cuts ``lr (B, C, H, W)`` into tiles of at most
``tile x tile`` LR pixels that overlap by at least ``overlap`` LR pixels, calls ``fn`` on one tile
at a time and writes each result into the ``(B, C', H*scale, W*scale)`` output, so peak memory in
``fn`` is bounded by the tile size whatever the image size.

Tile origins are multiples of ``align`` (a model's ``multiple_of``, e.g. the window size of a
window-attention network): each tile then sees the same window partition as the whole image, and
only the last tile of a row/column is short, padded at the image border exactly as the whole
image would be. ``fn`` must accept any tile size (pad for its own size requirements).

Blending (``blend``):

- ``"crop"`` (default): every output pixel comes from exactly one tile, the one whose centre it is
  closest to; the overlap is split in its middle, so each tile keeps ``overlap/2`` pixels of
  context that are thrown away. For any operation whose receptive field is within
  ``overlap/2`` LR pixels (e.g. nearest/bicubic upscaling, a small CNN) the output is
  bit-identical to untiled inference.
- ``"feather"``: overlapping tiles are averaged with linear ramps across the overlap (weights sum
  to one), which hides any seam between tiles that disagree, at the cost of using predictions made
  close to tile edges.

``fn`` is called with tiles on ``device`` (default: ``lr``'s device); its results are moved to the
device and dtype of the output (``lr``'s device, ``out_dtype`` or the tile result's dtype).

Tile batches: a caller whose ``fn`` treats every batch row alone (``batchable=True``) lets up to
``tile_batch`` consecutive tiles of one size (row-major order) go through ``fn`` in one call,
concatenated along the batch. Its default is `tile_batching`'s value (1: one tile per call, the
exact order; ``srbench run --batch N`` sets N). The stitching order is the same, so only the
network's own batch-size-dependent arithmetic can move an output, by float noise.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from iqa.errors import SrbenchError

__all__ = ["BLENDS", "check_tile_options", "tile_batching", "tile_starts", "tiled_upscale"]

_TILE_BATCH: contextvars.ContextVar[int] = contextvars.ContextVar("srbench_tile_batch", default=1)


@contextmanager
def tile_batching(n: int) -> Iterator[None]:
    """Within the block, batchable tiled methods send up to ``n`` same-size tiles per call."""
    token = _TILE_BATCH.set(max(1, int(n)))
    try:
        yield
    finally:
        _TILE_BATCH.reset(token)

BLENDS = ("crop", "feather")


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)``; consecutive tiles overlap
    by at least ``overlap`` and every start is a multiple of ``align``. The last tile may be short.
    """
    if length <= tile:
        return [0]
    step = (tile - overlap) // align * align
    if step < 1:
        raise SrbenchError(f"tile {tile} with overlap {overlap} leaves no step that is a multiple of {align}")
    starts = list(range(0, length - tile, step))
    # the largest start below length - tile, plus one step, reaches the end; being on the grid,
    # this last tile may be shorter than `tile`
    starts.append(starts[-1] + step)
    return starts


def _ownership(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """For ``"crop"``: the LR interval each tile writes; neighbours split their overlap in its middle."""
    ends = [min(s + tile, length) for s in starts]
    bounds = [0] + [(starts[i + 1] + ends[i]) // 2 for i in range(len(starts) - 1)] + [length]
    return [(bounds[i], bounds[i + 1]) for i in range(len(starts))]


def _ramp(starts: list[int], tile: int, length: int, i: int, scale: int, dtype: torch.dtype,
          device: torch.device) -> torch.Tensor:
    """For ``"feather"``: the 1D HR weight of tile ``i``: a linear ramp over each overlap with a neighbour."""
    s, e = starts[i], min(starts[i] + tile, length)
    n = (e - s) * scale
    w = torch.ones(n, dtype=torch.float64)
    if i > 0:
        ov = (min(starts[i - 1] + tile, length) - s) * scale  # overlap with the previous tile
        if ov > 0:
            w[:ov] = (torch.arange(ov, dtype=torch.float64) + 0.5) / ov
    if i + 1 < len(starts):
        ov = (e - starts[i + 1]) * scale  # overlap with the next tile
        if ov > 0:
            w[n - ov:] = torch.minimum(w[n - ov:], 1.0 - (torch.arange(ov, dtype=torch.float64) + 0.5) / ov)
    return w.to(device=device, dtype=dtype)


def tiled_upscale(fn: Callable[[torch.Tensor], torch.Tensor], lr: torch.Tensor, scale: int, tile: int,
                  overlap: int = 16, *, align: int = 1, blend: str = "crop", device: torch.device | str | None = None,
                  out_dtype: torch.dtype | None = None, batchable: bool = False,
                  tile_batch: int | None = None) -> torch.Tensor:
    """Apply ``fn: (B, C, h, w) -> (B, C', h*scale, w*scale)`` tile by tile (see the module docstring).

    ``tile``, ``overlap``: tile size and minimum overlap in LR pixels (``0 <= overlap < tile``);
    ``align``: tile origins are multiples of it (``tile`` is rounded up to a multiple of it).
    """
    if lr.ndim != 4:
        raise SrbenchError(f"lr must have shape (B, C, H, W), got {tuple(lr.shape)}")
    for label, v, lo in (("tile", tile, 1), ("overlap", overlap, 0), ("align", align, 1), ("scale", scale, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise SrbenchError(f"{label} must be an int >= {lo}, got {v!r}")
    if blend not in BLENDS:
        raise SrbenchError(f"blend must be one of {', '.join(map(repr, BLENDS))}, got {blend!r}")
    tile = -(-tile // align) * align
    if overlap >= tile:
        raise SrbenchError(f"overlap ({overlap}) must be smaller than the tile ({tile} LR pixels)")
    device = torch.device(device) if device is not None else lr.device
    b, _, h, w = lr.shape
    ys, xs = tile_starts(h, tile, overlap, align), tile_starts(w, tile, overlap, align)

    own_y, own_x = _ownership(ys, tile, h), _ownership(xs, tile, w)
    k = max(1, (tile_batch if tile_batch is not None else _TILE_BATCH.get()) if batchable else 1)

    def run(boxes: list[tuple[int, int, int, int, int, int]]) -> list[torch.Tensor]:
        """``fn`` on tiles of one size, ``len(boxes)`` at once; one result per tile."""
        _, _, y0, y1, x0, x1 = boxes[0]
        x = lr[:, :, y0:y1, x0:x1] if len(boxes) == 1 else torch.cat([lr[:, :, a:c, d:e] for _, _, a, c, d, e in boxes])
        sr = fn(x.to(device))
        want = (b * len(boxes), (y1 - y0) * scale, (x1 - x0) * scale)
        if not isinstance(sr, torch.Tensor) or sr.ndim != 4 or (sr.shape[0], sr.shape[2], sr.shape[3]) != want:
            got = tuple(sr.shape) if isinstance(sr, torch.Tensor) else type(sr).__name__
            raise SrbenchError(f"tile function returned {got} for a {y1 - y0}x{x1 - x0} tile at scale {scale}")
        return list(sr.split(b)) if len(boxes) > 1 else [sr]

    # row-major tiles, in runs of at most k consecutive tiles of one size
    boxes = [(iy, ix, y0, min(y0 + tile, h), x0, min(x0 + tile, w)) for iy, y0 in enumerate(ys)
             for ix, x0 in enumerate(xs)]
    groups: list[list[tuple[int, int, int, int, int, int]]] = []
    for box in boxes:
        g = groups[-1] if groups else None
        if g and len(g) < k and (g[0][3] - g[0][2], g[0][5] - g[0][4]) == (box[3] - box[2], box[5] - box[4]):
            g.append(box)
        else:
            groups.append([box])
    first = run(groups[0])  # its channel count and dtype shape the output
    out = torch.zeros(b, first[0].shape[1], h * scale, w * scale, dtype=out_dtype or first[0].dtype, device=lr.device)
    wsum = torch.zeros(1, 1, h * scale, w * scale, dtype=out.dtype, device=lr.device) if blend == "feather" else None
    for gi, group in enumerate(groups):
        results, first = (first, None) if gi == 0 else (run(group), None)
        for (iy, ix, y0, y1, x0, x1), sr in zip(group, results):
            sr = sr.to(device=out.device, dtype=out.dtype)
            if wsum is None:
                (a, c), (d, e) = own_y[iy], own_x[ix]
                out[:, :, a * scale:c * scale, d * scale:e * scale] = \
                    sr[:, :, (a - y0) * scale:(c - y0) * scale, (d - x0) * scale:(e - x0) * scale]
            else:
                wy = _ramp(ys, tile, h, iy, scale, out.dtype, out.device)
                wx = _ramp(xs, tile, w, ix, scale, out.dtype, out.device)
                wt = wy[:, None] * wx[None, :]
                out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] += sr * wt
                wsum[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] += wt
            del sr
        del results
    if wsum is not None:
        out /= wsum
    return out


def check_tile_options(tile: object, tile_overlap: object, tile_blend: object, *, align: int = 1,
                       minimum: int = 1, default_overlap: int = 16) -> tuple[int | None, int | None]:
    """Validate a network method's tiling options; returns ``(tile, overlap)`` with the tile rounded
    up to ``align`` (and at least ``minimum``) and the overlap defaulting to ``default_overlap`` LR
    pixels, at most half the tile. ``(None, None)`` when tiling is off."""
    from iqa.errors import SrbenchError

    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
        raise SrbenchError(f"tile must be None or a positive int (LR pixels), got {tile!r}")
    if tile_overlap is not None and (isinstance(tile_overlap, bool) or not isinstance(tile_overlap, int)
                                     or tile_overlap < 0):
        raise SrbenchError(f"tile_overlap must be None or an int >= 0 (LR pixels), got {tile_overlap!r}")
    if tile_blend not in BLENDS:
        raise SrbenchError(f"tile_blend must be one of {', '.join(map(repr, BLENDS))}, got {tile_blend!r}")
    if tile is None:
        return None, tile_overlap
    tile = max(-(-tile // align) * align, minimum)
    if tile_overlap is None:
        tile_overlap = min(default_overlap, tile // 2)
    if tile_overlap >= tile:
        raise SrbenchError(f"tile_overlap ({tile_overlap}) must be smaller than the tile ({tile} LR pixels)")
    return tile, tile_overlap
