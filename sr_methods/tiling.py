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
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from iqa.errors import SrbenchError

__all__ = ["BLENDS", "check_tile_options", "tile_starts", "tiled_upscale"]

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
                  out_dtype: torch.dtype | None = None) -> torch.Tensor:
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

    def run(y0: int, x0: int) -> torch.Tensor:
        y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
        sr = fn(lr[:, :, y0:y1, x0:x1].to(device))
        want = (b, (y1 - y0) * scale, (x1 - x0) * scale)
        if not isinstance(sr, torch.Tensor) or sr.ndim != 4 or (sr.shape[0], sr.shape[2], sr.shape[3]) != want:
            got = tuple(sr.shape) if isinstance(sr, torch.Tensor) else type(sr).__name__
            raise SrbenchError(f"tile function returned {got} for a {y1 - y0}x{x1 - x0} tile at scale {scale}")
        return sr

    sr0 = run(ys[0], xs[0])  # its channel count and dtype shape the output
    out = torch.zeros(b, sr0.shape[1], h * scale, w * scale, dtype=out_dtype or sr0.dtype, device=lr.device)
    first: torch.Tensor | None = sr0
    del sr0
    wsum = torch.zeros(1, 1, h * scale, w * scale, dtype=out.dtype, device=lr.device) if blend == "feather" else None
    for iy, y0 in enumerate(ys):
        y1 = min(y0 + tile, h)
        for ix, x0 in enumerate(xs):
            x1 = min(x0 + tile, w)
            if first is not None:  # the (0, 0) tile, already computed
                sr, first = first, None
            else:
                sr = run(y0, x0)
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
