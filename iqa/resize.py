"""MATLAB-compatible ``imresize`` in torch, bit-exact with MATLAB's uint8 path.

The standard SR benchmark LR images (Set5, Set14, Urban100, ... ``LR_bicubic``) were made with
MATLAB ``imresize(HR, 1/scale, 'bicubic')`` on **uint8** images, in a MATLAB release whose
``imresize`` replicated edge pixels. Reproducing those files bit for bit takes two rules on top
of MATLAB's kernel and contribution formulas; ``mode="matlab"`` (the default) applies both:

(a) **uint8 intermediate.** MATLAB resizes one dimension at a time, and for a uint8 image each
    pass returns uint8: the weighted sums (done in double) are rounded half away from zero and
    saturated to ``[0, 255]`` *after the first pass as well as after the second*. A float port
    that rounds only once at the end disagrees on a share of the pixels by one level.
(b) **clamped edge indices.** The release that produced the benchmark files clamped
    out-of-range tap indices to ``[1, in_len]`` (edge pixel replicated) instead of mirroring
    them (``aux = [1..L, L..1]``, as later releases do). This changes the border rows and
    columns.

With both rules the output matches the benchmark LR files on 100 % of the pixels; a float port
without them gets 85-89 %. Float input is first mapped to the 256 uint8 levels (``x*255``
rounded half away from zero, as MATLAB's ``im2uint8``), so a float ``[0, 1]`` image and the same
image as uint8 give the same result; float output is then ``level / 255`` in the input's float
dtype, exactly on the ``k/255`` grid.

``mode="float"`` is MATLAB's double path: no rounding anywhere (float32 arithmetic, float64 for
float64 input), mirrored edges, and no clipping (cubic and Lanczos kernels may overshoot
``[0, 1]`` slightly; clamp if needed). ``edge="clamp"|"symmetric"`` overrides the edge rule of
either mode.

MATLAB's formulas, for one dimension of length ``in_len`` resized to ``out_len`` by ``scale``:
kernel ``k`` of support ``width``; when shrinking with antialiasing the kernel is stretched,
``h(t) = scale * k(scale * t)`` and ``width / scale``; output pixel ``x`` (1-based) maps to
``u = x/scale + 0.5*(1 - 1/scale)``; taps ``left + 0 .. P-1`` with ``left = floor(u - width/2)``
and ``P = ceil(width) + 2``; weights ``h(u - tap)`` normalised to sum 1 per output pixel; tap
columns that are zero for every output pixel are dropped. The dimension with the smaller scale
is resized first (rows first on a tie). Output size ``ceil(in * scale)``; with ``size=`` the
scale of each dimension is ``out / in``.

Implementation: per dimension, MATLAB's (weights, indices) table is built once in float64 and
cached; the image is resized by gathering whole rows per tap (columns through a transpose) and
accumulating tap by tap, in float64 in matlab mode, so each output pixel is the same sequence of
double multiplies and adds as in MATLAB's loop (clamped duplicate taps stay separate terms, no
dense matrix whose merged weights or BLAS summation order could move a sum across a .5 tie).
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable

import torch

from .errors import SrbenchError, UnknownNameError

__all__ = ["EDGES", "KERNELS", "MODES", "imresize", "modcrop"]

_EPS = 2.220446049250313e-16  # MATLAB's eps, used in its Lanczos definitions


def _cubic(t: torch.Tensor) -> torch.Tensor:
    # Keys cubic convolution, a = -0.5
    a = t.abs()
    a2 = a * a
    a3 = a2 * a
    return (1.5 * a3 - 2.5 * a2 + 1) * (a <= 1) + (-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * ((a > 1) & (a <= 2))


def _triangle(t: torch.Tensor) -> torch.Tensor:
    return (t + 1) * ((t >= -1) & (t < 0)) + (1 - t) * ((t >= 0) & (t <= 1))


def _box(t: torch.Tensor) -> torch.Tensor:
    return ((t >= -0.5) & (t < 0.5)).to(t.dtype)


def _lanczos2(t: torch.Tensor) -> torch.Tensor:
    pt = math.pi * t
    return (torch.sin(pt) * torch.sin(pt / 2) + _EPS) / (math.pi ** 2 * t * t / 2 + _EPS) * (t.abs() < 2)


def _lanczos3(t: torch.Tensor) -> torch.Tensor:
    pt = math.pi * t
    return (torch.sin(pt) * torch.sin(pt / 3) + _EPS) / (math.pi ** 2 * t * t / 3 + _EPS) * (t.abs() < 3)


# name -> (kernel function, support width)
KERNELS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], float]] = {
    "cubic": (_cubic, 4.0),
    "triangle": (_triangle, 2.0),
    "box": (_box, 1.0),
    "lanczos2": (_lanczos2, 4.0),
    "lanczos3": (_lanczos3, 6.0),
}
# MATLAB's method names
_ALIASES = {"bicubic": "cubic", "bilinear": "triangle", "nearest": "box"}
MODES = ("matlab", "float")
EDGES = ("clamp", "symmetric")


@functools.lru_cache(maxsize=256)
def _contributions(in_len: int, out_len: int, scale: float, kernel: str, antialias: bool,
                   edge: str) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB's ``contributions``: float64 weights ``(out_len, P)`` and 0-based indices ``(out_len, P)``."""
    fn, width = KERNELS[kernel]
    if scale < 1 and antialias:
        def h(t: torch.Tensor) -> torch.Tensor:
            return scale * fn(scale * t)
        width = width / scale
    else:
        h = fn
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    ind = left[:, None] + torch.arange(taps, dtype=torch.float64)
    w = h(u[:, None] - ind)
    total = w[:, 0].clone()
    for j in range(1, taps):  # summed left to right, as MATLAB's sum(weights, 2)
        total += w[:, j]
    w = w / total[:, None]
    idx = ind.to(torch.int64) - 1  # 0-based
    if edge == "clamp":
        idx = idx.clamp(0, in_len - 1)
    else:  # symmetric: aux = [1..L, L..1]
        m = idx % (2 * in_len)
        idx = torch.where(m < in_len, m, 2 * in_len - 1 - m)
    keep = (w != 0).any(dim=0)
    return w[:, keep].contiguous(), idx[:, keep].contiguous()


_DEVICE_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _weights(in_len: int, out_len: int, scale: float, kernel: str, antialias: bool, edge: str,
             device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    key = (in_len, out_len, scale, kernel, antialias, edge, device, dtype)
    hit = _DEVICE_CACHE.get(key)
    if hit is None:
        w, idx = _contributions(in_len, out_len, scale, kernel, antialias, edge)
        # tap-major (P, out_len), so that each tap's weights and indices are contiguous
        hit = (w.to(device=device, dtype=dtype).t().contiguous(), idx.to(device).t().contiguous())
        if len(_DEVICE_CACHE) >= 256:
            _DEVICE_CACHE.clear()
        _DEVICE_CACHE[key] = hit
    return hit


# On CPU every tensor operation below is kept under torch's intra-op grain size (32768 elements),
# so it runs on the calling thread: block after block stays in cache, and a busy machine does not
# stall on OpenMP thread hand-offs (which cost more than the arithmetic here). On other devices
# each operation covers the whole batch.
_GRAIN = 32768


def _block_len(n_items: int, per_item: int, device: torch.device) -> int:
    if device.type != "cpu":
        return n_items
    return max(1, min(n_items, _GRAIN // max(1, per_item)))


def _map_rows(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``fn`` (elementwise) applied to ``x (N, H, W)`` block of rows by block of rows."""
    n, h, w = x.shape
    step = _block_len(h, n * w, x.device)
    if step >= h:
        return fn(x)
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    for i in range(0, h, step):
        out[:, i : i + step] = fn(x[:, i : i + step])
    return out


def _transpose(x: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` -> contiguous ``(N, W, H)``, copied in blocks of columns."""
    n, h, w = x.shape
    step = _block_len(w, n * h, x.device)
    if step >= w:
        return x.transpose(1, 2).contiguous()
    out = torch.empty((n, w, h), dtype=x.dtype, device=x.device)
    for j in range(0, w, step):
        out[:, j : j + step] = x[:, :, j : j + step].transpose(1, 2)
    return out


def _value_range(x: torch.Tensor) -> tuple[float, float]:
    """(min, max) of ``x (N, H, W)``, NaN if any value is NaN; reduced block by block."""
    n, h, w = x.shape
    step = _block_len(h, n * w, x.device)
    parts = [torch.stack(torch.aminmax(x[:, i : i + step])) for i in range(0, h, step)]
    both = torch.stack(parts) if len(parts) > 1 else parts[0][None]
    return float(both[:, 0].min()), float(both[:, 1].max())


def _resize_rows(x: torch.Tensor, w: torch.Tensor, idx: torch.Tensor,
                 post: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
    """Resize dim 1 of ``x (N, L, W)`` with the taps ``w``, ``idx`` ``(P, out_len)``.

    For each output pixel the taps are summed in order, each a multiply then an add (no fused
    multiply-add, and taps clamped onto the same input pixel stay separate terms), as MATLAB's
    loop does. ``post`` (in place) is applied to each finished block of rows.
    """
    n_taps, out_len = idx.shape
    step = _block_len(out_len, x.shape[0] * x.shape[2], x.device)
    res = None if step >= out_len else torch.empty((x.shape[0], out_len, x.shape[2]), dtype=x.dtype, device=x.device)
    for i in range(0, out_len, step):
        wi, ii = w[:, i : i + step, None], idx[:, i : i + step]
        acc = x.index_select(1, ii[0]).mul_(wi[0])
        if x.requires_grad and torch.is_grad_enabled():  # float mode inside a graph: no out=
            for k in range(1, n_taps):
                acc = acc + x.index_select(1, ii[k]) * wi[k]
        else:
            buf = torch.empty_like(acc)
            for k in range(1, n_taps):
                torch.index_select(x, 1, ii[k], out=buf)
                acc.add_(buf.mul_(wi[k]))
        if post is not None:
            acc = post(acc)
        if res is None:
            return acc
        res[:, i : i + step] = acc
    assert res is not None
    return res


def _resize_dim(x: torch.Tensor, dim: int, w: torch.Tensor, idx: torch.Tensor,
                post: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
    """Resize dim ``dim`` (1: rows, 2: columns) of ``x (N, H, W)``; columns go through a transpose
    (gathering whole contiguous rows is many times faster than gathering along the last dim)."""
    if dim == 1:
        return _resize_rows(x, w, idx, post)
    return _transpose(_resize_rows(_transpose(x), w, idx, post))


_ROUNDER = 6755399441055744.0  # 1.5 * 2**52: (v + R) - R rounds a double |v| < 2**51 to an integer


def _to_levels(v: torch.Tensor) -> torch.Tensor:
    """Float64 ``v`` rounded half away from zero and saturated to [0, 255], as MATLAB's conversion
    to uint8 (a new tensor).

    ``(v + R) - R`` rounds half to even exactly (IEEE round to nearest); ties ``k + 0.5`` that went
    down (``v - r`` is exact) are moved up. Negative values saturate to 0 whichever way they round.
    Not ``torch.round``: its float64 kernel is slow on small blocks when the machine is busy, and
    ``floor(v + 0.5)`` is wrong for ``v = 0.5 - 2**-54``.
    """
    r = v + _ROUNDER
    r -= _ROUNDER
    tie = torch.sub(v, r).eq_(0.5)  # stays float: 1.0 where a tie was rounded down to even
    return r.add_(tie).clamp_(0, 255)


def _check_scale(scale: object) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale <= 0:
        raise SrbenchError(f"scale must be a positive finite number, got {scale!r}")
    return float(scale)


def _check_size(size: object) -> tuple[int, int]:
    ok = isinstance(size, (tuple, list)) and len(size) == 2 and all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    if not ok:
        raise SrbenchError(f"size must be (out_h, out_w), two positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def imresize(x: torch.Tensor, scale: float | None = None, *, size: tuple[int, int] | None = None,
             kernel: str = "cubic", mode: str = "matlab", antialias: bool | None = None,
             edge: str | None = None) -> torch.Tensor:
    """Resize like MATLAB's ``imresize``; bit-exact with its uint8 path in ``mode="matlab"``.

    ``x``: ``(B, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` tensor, uint8 or float in ``[0, 1]``; the
    result has the same rank and lies on ``x``'s device. Give exactly one of ``scale`` (output
    ``ceil(H*scale) x ceil(W*scale)``) and ``size=(out_h, out_w)``.

    ``kernel``: ``"cubic"`` (default), ``"triangle"``, ``"box"``, ``"lanczos2"``, ``"lanczos3"``
    (MATLAB's ``"bicubic"``, ``"bilinear"``, ``"nearest"`` are accepted as aliases).
    ``antialias``: stretch the kernel when shrinking (MATLAB's ``'Antialiasing'``); the default
    ``None`` means on, except for ``"box"``/``"nearest"``, which is MATLAB's ``'nearest'``
    (antialiasing off). ``kernel="box", antialias=True`` is MATLAB's ``'box'`` (area average).

    ``mode="matlab"`` (default): MATLAB's uint8 path (see the module docstring): uint8 in, uint8
    out; float in, float out on the ``k/255`` grid (same dtype). ``mode="float"``: MATLAB's double
    path, no rounding or clipping, float32 output (float64 for float64 input; uint8 input is
    divided by 255 first). ``edge``: ``"clamp"`` (default in matlab mode) or ``"symmetric"``
    (default in float mode).
    """
    if not isinstance(x, torch.Tensor):
        raise SrbenchError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in (2, 3, 4):
        raise SrbenchError(f"x must have shape (B, C, H, W), (C, H, W) or (H, W), got {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise SrbenchError(f"x must be uint8 or float in [0, 1], got dtype {x.dtype}")
    if x.shape[-1] < 1 or x.shape[-2] < 1:
        raise SrbenchError(f"x must have H, W >= 1, got shape {tuple(x.shape)}")
    if not isinstance(kernel, str):
        raise SrbenchError(f"kernel must be a string, got {kernel!r}")
    name = _ALIASES.get(kernel.lower(), kernel.lower())
    if name not in KERNELS:
        raise UnknownNameError("kernel", kernel, [*KERNELS, *_ALIASES])
    if mode not in MODES:
        raise UnknownNameError("mode", str(mode), list(MODES))
    if edge is None:
        edge = "clamp" if mode == "matlab" else "symmetric"
    elif edge not in EDGES:
        raise UnknownNameError("edge", str(edge), list(EDGES))
    if antialias is None:
        antialias = name != "box"
    elif not isinstance(antialias, bool):
        raise SrbenchError(f"antialias must be True, False or None, got {antialias!r}")

    in_h, in_w = int(x.shape[-2]), int(x.shape[-1])
    if (scale is None) == (size is None):
        raise SrbenchError(f"give exactly one of scale and size, got scale={scale!r}, size={size!r}")
    if scale is not None:
        s = _check_scale(scale)
        scales = (s, s)
        out = (math.ceil(in_h * s), math.ceil(in_w * s))
    else:
        out = _check_size(size)
        scales = (out[0] / in_h, out[1] / in_w)

    for d in (0, 1):  # a kernel stretched over far more than the image would only eat memory
        taps = math.ceil(KERNELS[name][1] / scales[d]) if antialias and scales[d] < 1 else 0
        if taps * out[d] > 2**22:
            raise SrbenchError(f"scale {scales[d]:.3g} is too small for a {(in_h, in_w)[d]}-pixel side "
                               f"with antialiasing ({taps} taps per pixel)")

    if x.is_floating_point() and x.numel():
        lo, hi = _value_range(x.detach().reshape(-1, in_h, in_w))
        if not (lo >= -1e-6 and hi <= 1 + 1e-6):  # also catches NaN
            raise SrbenchError(f"float x must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")

    lead = x.shape[:-2]
    v = x.reshape(-1, in_h, in_w)
    if mode == "matlab":
        cdtype = torch.float64
        if x.dtype == torch.uint8:
            v = _map_rows(lambda b: b.to(cdtype), v, cdtype)
        else:  # levels: x*255 (in float64) rounded half away from zero, as MATLAB's im2uint8
            v = _map_rows(lambda b: _to_levels(b.to(cdtype) * 255.0), v, cdtype)
        post = _to_levels
    else:
        cdtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        if x.dtype == torch.uint8:
            v = _map_rows(lambda b: b.to(cdtype) / 255.0, v, cdtype)
        else:
            v = v.to(cdtype)
        post = None

    # the dimension with the smaller scale first; a stable sort, so rows first on a tie
    for d in sorted((0, 1), key=lambda d: scales[d]):
        w, idx = _weights((in_h, in_w)[d], out[d], scales[d], name, antialias, edge, v.device, cdtype)
        v = _resize_dim(v, d + 1, w, idx, post)

    if mode == "matlab":
        if x.dtype == torch.uint8:
            v = _map_rows(lambda b: b.to(torch.uint8), v, torch.uint8)
        else:  # level / 255 in x's dtype: the same numbers as imresize(uint8 image).to(dtype) / 255
            v = _map_rows(lambda b: b.to(x.dtype) / 255.0, v, x.dtype)
    return v.reshape(*lead, out[0], out[1])


def modcrop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop ``x (..., H, W)`` at the bottom/right so that H and W are multiples of ``scale``."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise SrbenchError(f"modcrop scale must be a positive int, got {scale!r}")
    if not hasattr(x, "shape") or len(x.shape) < 2:
        raise SrbenchError(f"modcrop needs an array of shape (..., H, W), got {getattr(x, 'shape', type(x).__name__)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    return x[..., : h - h % scale, : w - w % scale]
