"""PSNR and SSIM as the SR community computes them (BasicSR / MATLAB conventions).

Functional form: :func:`psnr` and :func:`ssim` take float RGB tensors ``(B, 3, H, W)`` in ``[0, 1]``
and return ``(B,)`` float64 scores on the input's device, one per image. Module form: :class:`PSNR`
and :class:`SSIM` (``iqa.base.Metric``) apply an evaluation :class:`~iqa.protocols.Protocol`
(uint8 rounding, Y or RGB, border shave, or pyiqa's own implementation).

Semantics are those of BasicSR's ``calculate_psnr`` / ``calculate_ssim`` (``input_order='HWC'``)
on uint8 images, on the 0..255 scale:

- Y channel: ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for R, G, B in ``[0, 1]`` (ITU-R BT.601,
  MATLAB ``rgb2ycbcr``; ``iqa.color.rgb_to_y`` times 255), not rounded.
- ``crop_border`` pixels are removed on each of the four sides before anything else.
- PSNR ``= 10 log10(255^2 / MSE)``, MSE over the cropped image (over the three channels for RGB),
  computed in float64; ``+inf`` when the two images are identical (MSE = 0).
- SSIM (Wang et al. 2004): 11x11 Gaussian window with sigma 1.5 (the outer product of the
  normalised 1-D kernel, as ``cv2.getGaussianKernel``), statistics over the 'valid' region only (no
  padding: the map is ``(H - 10) x (W - 10)``), ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``,
  score = mean of the SSIM map; for RGB, the mean of the three per-channel SSIMs. No clipping of
  negative contrast terms (pyiqa clips them; BasicSR and the reference MATLAB code do not).

Implementation notes (CPU speed is a requirement: ~8x BasicSR's numpy code on 2 cores, see
tests/perf/test_fr_speed.py):

- The Gaussian window is separable, so SSIM filters with an 11-tap horizontal then an 11-tap
  vertical pass, written as shifted-slice multiply-adds (on CPU ~10x faster than ``conv2d`` with
  a 1x11 kernel). The four filtered maps (x, y, x^2 + y^2, xy; the two variances are only needed
  as a sum) are stacked so that each tap is one operation for all four.
- Everything after the input (uint8 rounding, Y, the maps, both passes, the SSIM map) runs in row
  tiles of the SSIM map (plus their 10-row halo), so intermediates stay in cache; PSNR likewise
  in row chunks.
- Modules reuse their scratch buffers between calls (fresh multi-megabyte CPU tensors cost page
  faults, more than the arithmetic); the functional forms allocate.
- SSIM runs in float32 after subtracting a constant (the mean of the reference tile) from both
  images: variances and covariance do not change under a common shift, and the shift removes
  most of the cancellation in ``E[x^2] - E[x]^2``. Against BasicSR's float64 code on Set5, Set14
  and Urban100 the largest difference is 1.4e-6 (2.3e-6 when the tiling is varied; the parity
  tests allow 1e-5). Images with large flat areas far from the tile mean are the worst case
  (float32 rounding in flat regions is systematic, not random). float64 SSIM (about 2x slower)
  is ``precision=torch.float64`` in the functional form and ``precision="float64"`` in the module.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import torch

from . import metric_info
from .base import Metric, check_pair, quantize_uint8
from .errors import SrbenchError
from .protocols import DEFAULT_PROTOCOL, Protocol, get_protocol

__all__ = ["PSNR", "SSIM", "gaussian_kernel", "gray_levels", "psnr", "rgb_to_y255", "ssim"]

# BT.601 luma weights for R, G, B in [0, 1] giving Y on the 0..255 scale (the constants of
# iqa.color.rgb_to_y, times 255; the offset 16 is added separately).
_Y255 = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

_WIN = 11  # SSIM window size
_SIGMA = 1.5  # SSIM window standard deviation
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2
_PRECISIONS = {"float32": torch.float32, "float64": torch.float64}


def gaussian_kernel(size: int = _WIN, sigma: float = _SIGMA, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The normalised 1-D Gaussian ``exp(-(i - c)^2 / (2 sigma^2)) / sum``, ``i = 0..size-1``."""
    i = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(i * i) / (2.0 * sigma * sigma))
    return (g / g.sum()).to(dtype)


def gray_levels(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` -> the BT.601 luma with weights normalised to sum 1 (no offset), repeated over
    three channels: for a gray image (R = G = B) this is the image itself."""
    w = torch.tensor(_Y255, dtype=torch.float64) / sum(_Y255)
    y = x[:, 0:1] * float(w[0]) + x[:, 1:2] * float(w[1]) + x[:, 2:3] * float(w[2])
    return y.clamp_(0, 1).expand(-1, 3, -1, -1).contiguous()


def rgb_to_y255(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in ``[0, 1]`` -> ``(B, 1, H, W)`` BT.601 Y on the 0..255 scale (16..235)."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return (r * _Y255[0]).add_(g, alpha=_Y255[1]).add_(b, alpha=_Y255[2]).add_(_Y_OFFSET)


class _Workspace:
    """Scratch tensors reused from call to call (CPU only).

    On CPU a fresh multi-megabyte tensor is fresh memory from the OS, and touching it costs a
    page fault per 4 KiB: for a 1024x768 image that costs more than the arithmetic. A module keeps
    one workspace: one flat buffer per role, grown when a larger image comes and otherwise reused
    (as a view of the needed shape) whatever the image size. The functional forms use a disabled
    one (plain allocations). CUDA has a caching allocator and never reuses here.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bufs: dict[str, torch.Tensor] = {}

    def get(self, role: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        if not self.enabled or device.type != "cpu":
            return torch.empty(shape, dtype=dtype, device=device)
        n = math.prod(shape)
        flat = self._bufs.get(role)
        if flat is None or flat.numel() < n or flat.dtype != dtype or flat.device != device:
            flat = self._bufs[role] = torch.empty(n, dtype=dtype, device=device)
        return flat[:n].view(shape)

    def clear(self) -> None:
        self._bufs.clear()


def _check_border(crop_border: object, x: torch.Tensor, ref: torch.Tensor, min_size: int) -> int:
    if x.device != ref.device:
        raise SrbenchError(f"x and ref must be on the same device, got {x.device} and {ref.device}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise SrbenchError(f"crop_border must be a non-negative int, got {crop_border!r}")
    h, w = x.shape[-2:]
    if h - 2 * crop_border < min_size or w - 2 * crop_border < min_size:
        raise SrbenchError(
            f"images of size {h}x{w} with crop_border={crop_border} leave less than {min_size}x{min_size} pixels"
        )
    return crop_border


def _crop(x: torch.Tensor, c: int) -> torch.Tensor:
    if c == 0:
        return x
    return x[..., c:x.shape[-2] - c, c:x.shape[-1] - c]


def _chunk_rows(n_planes: int, width: int, device: torch.device) -> int:
    """Rows processed at a time: ~2^19 values per plane stack on CPU (measured best on 1024x768
    images: smaller tiles stay in cache but cost more operations), 2^24 elsewhere (GPUs want
    few large kernels)."""
    target = 2**19 if device.type == "cpu" else 2**24
    return max(32, target // max(n_planes * width, 1))


def _scaled(ws: _Workspace, role: str, v: torch.Tensor, quantize: bool, y_channel: bool, dtype: torch.dtype,
            out: torch.Tensor | None = None) -> torch.Tensor:
    """The RGB block ``v`` (a view of the input, ``[0, 1]``) on the 0..255 scale, rounded to integers
    when ``quantize``: as three contiguous planes, or as the BT.601 Y plane (with its offset 16).

    ``round(255 x)`` equals ``255 * quantize_uint8(x)`` for inputs that passed ``check_images``
    (within 1e-6 of ``[0, 1]``), so no clamp is needed. Channels-last input (images made from
    HWC arrays) is converted by a plain copy, the fastest way to change the layout.
    """
    shape = tuple(v.shape)
    lv = out if (out is not None and not y_channel) else ws.get(role, shape, dtype, v.device)
    if v.dtype == dtype and v.stride(1) > v.stride(-1):  # NCHW-like input: scale while copying
        torch.mul(v, 255.0, out=lv)
    else:
        lv.copy_(v).mul_(255.0)
    if quantize:
        lv.round_()
    if not y_channel:
        return lv
    w = [c / 255.0 for c in _Y255]
    y = out if out is not None else ws.get(role + "_y", (shape[0], 1, *shape[2:]), dtype, v.device)
    torch.mul(lv[:, 0:1], w[0], out=y).add_(lv[:, 1:2], alpha=w[1]).add_(lv[:, 2:3], alpha=w[2])
    return y.add_(_Y_OFFSET)


def psnr(x: torch.Tensor, ref: torch.Tensor, *, crop_border: int = 0, y_channel: bool = True) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, one per image: ``(B, 3, H, W)`` x2 -> ``(B,)`` float64.

    ``10 log10(255^2 / MSE)`` on the 0..255 scale, MSE over the image with ``crop_border`` pixels
    removed on each side, on the BT.601 Y channel (``y_channel=True``) or over the three RGB
    channels. Returns ``+inf`` for identical images. Equal to BasicSR's ``calculate_psnr`` on the
    same uint8 images; x and ref are used as given (round them first for the uint8 convention).
    """
    check_pair(x, ref)
    c = _check_border(crop_border, x, ref, 1)
    return _psnr(_Workspace(enabled=False), x, ref, c, bool(y_channel), quantize=False)


def _psnr(ws: _Workspace, x: torch.Tensor, ref: torch.Tensor, c: int, y_channel: bool, quantize: bool) -> torch.Tensor:
    # In row chunks that stay in cache. The Y offset cancels in the difference, so the Y
    # difference is a weighted sum of the RGB differences. The differences are float32 (exact for
    # integer levels; otherwise a relative error below 2^-24, i.e. < 1e-6 dB); weighting,
    # squares and sums are float64.
    x, ref = _crop(x, c), _crop(ref, c)
    batch, _, height, width = x.shape
    rows = _chunk_rows(3 * batch, width, x.device)
    w = [k / 255.0 for k in _Y255]
    total = torch.zeros(batch, dtype=torch.float64, device=x.device)
    for r0 in range(0, height, rows):
        r1 = min(r0 + rows, height)
        d = _scaled(ws, "a", x[..., r0:r1, :], quantize, False, torch.float32)
        d.sub_(_scaled(ws, "b", ref[..., r0:r1, :], quantize, False, torch.float32))
        if y_channel:
            e = ws.get("d64", (batch, 1, r1 - r0, width), torch.float64, x.device)
            e.copy_(d[:, 0:1]).mul_(w[0]).add_(d[:, 1:2], alpha=w[1]).add_(d[:, 2:3], alpha=w[2])
        else:
            e = ws.get("d64", tuple(d.shape), torch.float64, x.device).copy_(d)
        total += e.square_().sum(dim=(1, 2, 3))
    mse = total / ((1 if y_channel else 3) * height * width)
    return 10.0 * torch.log10((255.0 * 255.0) / mse)  # mse == 0 -> +inf


def _filter_valid(m: torch.Tensor, g: list[float], h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of the last two dims of ``m`` with the 1-D kernel ``g``.

    ``h`` (rows of ``m``, columns - k + 1) and ``v`` (rows - k + 1, columns - k + 1) are the
    output buffers of the horizontal and the vertical pass; returns ``v``.
    """
    k = len(g)
    w = m.shape[-1] - k + 1
    torch.mul(m[..., 0:w], g[0], out=h)
    for i in range(1, k):
        h.add_(m[..., i:i + w], alpha=g[i])
    n = h.shape[-2] - k + 1
    torch.mul(h[..., 0:n, :], g[0], out=v)
    for i in range(1, k):
        v.add_(h[..., i:i + n, :], alpha=g[i])
    return v


def ssim(
    x: torch.Tensor,
    ref: torch.Tensor,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    precision: torch.dtype = torch.float32,
    tile_rows: int | None = None,
) -> torch.Tensor:
    """Structural similarity, one per image: ``(B, 3, H, W)`` x2 -> ``(B,)`` float64.

    BasicSR ``calculate_ssim`` semantics on the 0..255 scale: 11x11 Gaussian window (sigma 1.5),
    valid region only, ``C1 = (0.01*255)^2``, ``C2 = (0.03*255)^2``; on the BT.601 Y channel, or
    the mean of the three per-channel SSIMs. ``crop_border`` pixels are removed on each side
    first; the cropped image must be at least 11x11. Identical images give exactly 1.
    ``precision`` is the working dtype of the filtering (float32 is within 1e-6 of the float64
    result on natural images and ~3x faster on CPU); ``tile_rows`` (default: automatic) is the
    number of SSIM-map rows computed at a time, which bounds the working memory.
    """
    check_pair(x, ref)
    c = _check_border(crop_border, x, ref, _WIN)
    if precision not in (torch.float32, torch.float64):
        raise SrbenchError(f"precision must be torch.float32 or torch.float64, got {precision!r}")
    if tile_rows is not None and (isinstance(tile_rows, bool) or not isinstance(tile_rows, int) or tile_rows < 1):
        raise SrbenchError(f"tile_rows must be a positive int or None, got {tile_rows!r}")
    return _ssim(_Workspace(enabled=False), x, ref, c, bool(y_channel), False, precision, tile_rows)


def _ssim(ws: _Workspace, x: torch.Tensor, ref: torch.Tensor, c: int, y_channel: bool, quantize: bool,
          dtype: torch.dtype = torch.float32, tile_rows: int | None = None) -> torch.Tensor:
    """Mean SSIM, computed in row tiles of the SSIM map (each with its 10-row halo) that stay in cache."""
    x, ref = _crop(x, c), _crop(ref, c)
    device = x.device
    batch, _, height, width = x.shape
    planes = 1 if y_channel else 3
    out_rows, out_cols = height - _WIN + 1, width - _WIN + 1
    rows = min(tile_rows or _chunk_rows(batch * planes, width, device), out_rows)
    g = gaussian_kernel(_WIN, _SIGMA, torch.float64).tolist()
    maps_buf = ws.get("maps", (4, batch, planes, rows + _WIN - 1, width), dtype, device)
    h_buf = ws.get("h", (4, batch, planes, rows + _WIN - 1, out_cols), dtype, device)
    v_buf = ws.get("v", (4, batch, planes, rows, out_cols), dtype, device)
    t_buf = ws.get("t", (2, batch, planes, rows, out_cols), dtype, device)
    total = torch.zeros((batch, planes), dtype=torch.float64, device=device)
    for r0 in range(0, out_rows, rows):
        n = min(rows, out_rows - r0)
        maps = maps_buf[..., :n + _WIN - 1, :]
        v, t = v_buf[..., :n, :], t_buf[..., :n, :]
        sa = _scaled(ws, "a", x[..., r0:r0 + n + _WIN - 1, :], quantize, y_channel, dtype, out=maps[0])
        sb = _scaled(ws, "b", ref[..., r0:r0 + n + _WIN - 1, :], quantize, y_channel, dtype, out=maps[1])
        # A common shift of both images (here the mean of the reference tile) leaves variances and
        # covariance unchanged and keeps the squared terms small: less cancellation in float32
        # in E[x^2] - E[x]^2. The luminance term gets the shift back.
        shift = sb.mean(dim=(-2, -1), keepdim=True)
        sa.sub_(shift)
        sb.sub_(shift)
        torch.mul(sa, sa, out=maps[2]).addcmul_(sb, sb)
        torch.mul(sa, sb, out=maps[3])
        f = _filter_valid(maps, g, h_buf[..., :n + _WIN - 1, :], v)
        mu1, mu2, sum_sq, prod = f[0], f[1], f[2], f[3]  # of the shifted images
        m12 = torch.mul(mu1, mu2, out=t[0])
        q = torch.mul(mu1, mu1, out=t[1]).addcmul_(mu2, mu2)
        # contrast-structure (2 cov + C2) / (var1 + var2 + C2); the two are computed with the same
        # operations, so that identical images give exactly 1
        num_cs = prod.mul_(2.0).add_(_C2).add_(m12, alpha=-2.0)
        den_cs = sum_sq.add_(_C2).sub_(q)
        # luminance (2 mu1 mu2 + C1) / (mu1^2 + mu2^2 + C1) of the unshifted means m + c:
        # 2 (mu1 + c)(mu2 + c) = 2 mu1 mu2 + s and (mu1 + c)^2 + (mu2 + c)^2 = q + s with
        # s = 2 c (mu1 + mu2) + 2 c^2
        s = mu1.add_(mu2).mul_(2.0 * shift).add_(2.0 * shift * shift + _C1)
        num_l = mu2.copy_(s).add_(m12, alpha=2.0)
        den_l = s.add_(q)
        total += num_l.mul_(num_cs).div_(den_l.mul_(den_cs)).sum(dim=(-2, -1), dtype=torch.float64)
    return (total / (out_rows * out_cols)).mean(dim=1)


def _reject_options(metric: str, options: dict[str, Any], known: tuple[str, ...] = ()) -> None:
    """Raise for any option (the caller passes only the ones it does not know)."""
    if options:
        names = ", ".join(sorted(options))
        allowed = ", ".join(known) if known else "none"
        raise SrbenchError(f"unknown option(s) for metric {metric!r}: {names} (known options: {allowed})")


class _PixelMetric(Metric):
    """Shared protocol handling of PSNR and SSIM."""

    _name: str
    _pyiqa_names: tuple[str, str]  # (Y-channel name, RGB name) in pyiqa
    _min_size: int  # smallest image side left after the border shave

    _options: tuple[str, ...] = ()  # names of the options the metric accepts

    def __init__(self, protocol: str | Protocol = DEFAULT_PROTOCOL, *, crop_border: int | None = None,
                 **options: Any):
        super().__init__()
        _reject_options(self._name, {k: v for k, v in options.items() if k not in self._options},
                        ("crop_border", *self._options))
        self._init_options(**options)
        self.protocol = get_protocol(protocol)
        if crop_border is not None and (isinstance(crop_border, bool) or not isinstance(crop_border, int)
                                        or crop_border < 0):
            raise SrbenchError(f"{self._name} option crop_border must be an integer >= 0, got {crop_border!r}")
        self.crop_border = crop_border  # None: the protocol's border
        if self.protocol.backend not in ("srbench", "pyiqa"):
            raise SrbenchError(f"unknown backend {self.protocol.backend!r} in protocol {self.protocol.name!r}")
        self._pyiqa: dict[str, Any] = {}  # (name, border, device) -> pyiqa metric, built on first use
        # scratch buffers reused between calls (CPU); a concurrent call uses fresh ones
        self._ws = _Workspace()
        self._ws_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # picklable / deep-copyable: scratch state is not copied
        state = super().__getstate__()
        state = {k: v for k, v in state.items() if k not in ("_ws", "_ws_lock", "_pyiqa")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._pyiqa = {}
        self._ws = _Workspace()
        self._ws_lock = threading.Lock()

    def score(self, x: torch.Tensor, ref: torch.Tensor | None, *, scale: int, gray: bool = False) -> torch.Tensor:
        if ref is None:
            raise SrbenchError(f"metric {self._name!r} is full-reference: pass ref")
        p = self.protocol
        border = p.crop_border(scale) if self.crop_border is None else self.crop_border
        if p.backend == "pyiqa":
            if p.quantize:
                x, ref = quantize_uint8(x), quantize_uint8(ref)
            return self._score_pyiqa(x, ref, border)
        c = _check_border(border, x, ref, self._min_size)
        y_channel = p.y_channel
        if gray and y_channel:
            # MATLAB scores single-channel images on their gray level (no rgb2ycbcr): the luma with
            # weights summing to 1 and no offset, which is the gray value itself for R = G = B,
            # then the RGB path on three equal planes (their mean PSNR/SSIM is the plane's).
            x, ref, y_channel = gray_levels(x), gray_levels(ref), False
        if not self._ws_lock.acquire(blocking=False):
            return self._compute(_Workspace(enabled=False), x, ref, c, y_channel, p.quantize)
        try:
            return self._compute(self._ws, x, ref, c, y_channel, p.quantize)
        finally:
            self._ws_lock.release()

    def _init_options(self) -> None:
        pass

    def _compute(self, ws: _Workspace, x: torch.Tensor, ref: torch.Tensor, c: int, y_channel: bool,
                 quantize: bool) -> torch.Tensor:
        raise NotImplementedError

    def _score_pyiqa(self, x: torch.Tensor, ref: torch.Tensor, border: int) -> torch.Tensor:
        name = self._pyiqa_names[0] if self.protocol.y_channel else self._pyiqa_names[1]
        key = f"{name}/{border}/{x.device}"
        metric = self._pyiqa.get(key)
        if metric is None:
            try:
                import pyiqa
            except ImportError as e:  # pragma: no cover - pyiqa is a dependency
                raise SrbenchError(f"protocol {self.protocol.name!r} needs pyiqa, which is not importable ({e})") from None
            opts = {"crop_border": border} if border else {}
            metric = pyiqa.create_metric(name, as_loss=False, device=x.device, **opts)
            self._pyiqa[key] = metric
        with torch.no_grad():
            out = metric(x, ref)
        return out.reshape(-1).to(torch.float64)


class PSNR(_PixelMetric):
    """PSNR in dB under an evaluation protocol; ``forward(x, ref, scale=s)`` -> ``(B,)`` float64.

    Protocol ``basicsr`` (default): both images rounded to uint8 levels, BT.601 Y channel, a border
    of ``scale`` pixels shaved: equal to BasicSR ``calculate_psnr(..., crop_border=scale,
    test_y_channel=True)`` on the saved uint8 images. ``rgb-noshave``: uint8, RGB, no shave.
    Identical images give ``+inf``.

    Protocol ``pyiqa`` calls ``pyiqa.create_metric('psnry')`` (``'psnr'`` for an RGB protocol),
    whose defaults differ: the Y channel is the YIQ luma ``0.299 R + 0.587 G + 0.114 B`` (no
    studio-range offset or scaling) on the 0..1 scale, ``10 log10(1 / (MSE + 1e-8))`` (so at most
    80 dB, never inf), float32, no border shave, no uint8 rounding.
    """

    info = metric_info("psnr")
    _name = "psnr"
    _pyiqa_names = ("psnry", "psnr")
    _min_size = 1

    def _compute(self, ws: _Workspace, x: torch.Tensor, ref: torch.Tensor, c: int, y_channel: bool,
                 quantize: bool) -> torch.Tensor:
        return _psnr(ws, x, ref, c, y_channel, quantize)


class SSIM(_PixelMetric):
    """SSIM under an evaluation protocol; ``forward(x, ref, scale=s)`` -> ``(B,)`` float64.

    Protocol ``basicsr`` (default): both images rounded to uint8 levels, BT.601 Y channel, a border
    of ``scale`` pixels shaved: equal to BasicSR ``calculate_ssim(..., crop_border=scale,
    test_y_channel=True)``. ``rgb-noshave``: uint8, mean of the per-channel SSIMs, no shave.

    Protocol ``pyiqa`` calls ``pyiqa.create_metric('ssim')`` (``'ssimc'`` for an RGB protocol),
    whose defaults differ: the Y channel is the YIQ luma ``0.299 R + 0.587 G + 0.114 B`` times 255,
    rounded to integers; 11x11 Gaussian window (sigma 1.5), valid region, float64; the
    contrast-structure map is clipped at 0 (``relu``); no downsampling, no border shave.

    Option ``precision``: ``"float32"`` (default; within ~2e-6 of the float64 result on real
    images, about 2x faster on CPU) or ``"float64"``.
    """

    info = metric_info("ssim")
    _name = "ssim"
    _pyiqa_names = ("ssim", "ssimc")
    _min_size = _WIN
    _options = ("precision",)
    def _init_options(self, precision: str = "float32") -> None:  # type: ignore[override]
        if precision not in _PRECISIONS:
            raise SrbenchError(f"ssim option precision must be 'float32' or 'float64', got {precision!r}")
        self.precision = _PRECISIONS[precision]

    def _compute(self, ws: _Workspace, x: torch.Tensor, ref: torch.Tensor, c: int, y_channel: bool,
                 quantize: bool) -> torch.Tensor:
        return _ssim(ws, x, ref, c, y_channel, quantize, self.precision)

