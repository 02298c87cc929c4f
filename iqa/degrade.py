"""Image degradations as pure tensor functions: blur kernels, noise, JPEG, the Real-ESRGAN
second-order pipeline, and the classic BD / DN degradations.

Images are ``float32`` RGB tensors ``(B, 3, H, W)`` in ``[0, 1]``. A degradation is a pure
function of (image, seed): the same seed gives bit-identical output on the same machine and torch
build (CPU). Every random number comes from ONE ``torch.Generator`` on the CPU (scalar parameters
through ``torch.rand``, noise fields through ``torch.randn`` / ``torch.poisson``), whatever device
the image is on; no global RNG (``random``, ``numpy``, ``torch.manual_seed``) is touched.

Keys (``parse``): ``realesrgan-xN``, ``bdn-xN``, ``dn-xN``. Each object has ``.key``, ``.scale``,
``.apply(hr, seed) -> (hr_cropped, lr)``, ``.apply_with_params(hr, seed) -> (hr_cropped, lr,
params)`` and ``.sample_params(seed)``. The HR is first cropped at the bottom/right to a multiple
of ``N`` (``modcrop``); the LR is exactly ``(H // N, W // N)`` and lies on the uint8 grid
(``k / 255``). ``xN`` (MATLAB bicubic) and ``real-xN`` belong to ``bench``'s degradations:
``parse`` returns ``None`` for them and raises for anything else it does not know.

Seeds: ``seed`` is an int (image ``i`` of the batch uses ``torch.Generator().manual_seed((seed
+ i) % 2**64)``, so image 0 of a batch equals the same image alone with the same seed), a
sequence of ints (one per image), or a CPU ``torch.Generator`` (shared by the images in order:
image 0's parameters, then its noise, then image 1's ...).

Real-ESRGAN (``realesrgan-xN``)
-------------------------------
Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data",
ICCVW 2021. The settings are those of the published ``options/train_realesrgan_x4plus.yml`` (the
released RealESRGAN_x4plus; the x2plus options are the same) together with the fixed choices of
its dataset and model code:

============================  =====================================  =====================================
setting                       first stage                            second stage
============================  =====================================  =====================================
blur applied                  always                                 prob 0.8 (``second_blur_prob``)
kernel size                   odd, uniform in {7, 9, ..., 21}        same
sinc kernel instead           prob 0.1, omega_c ~ U[pi/3, pi] if     prob 0.1, same omega_c rule
                              size < 13 else U[pi/5, pi]
kernel kinds                  iso, aniso, generalized_iso,           same kinds and probabilities
                              generalized_aniso, plateau_iso,
                              plateau_aniso with probs
                              0.45, 0.25, 0.12, 0.03, 0.12, 0.03
sigma_x, sigma_y              U[0.2, 3]                              U[0.2, 1.5]
rotation theta (aniso)        U[-pi, pi]                             U[-pi, pi]
beta, generalized             [0.5, 4]: U[0.5, 1] or U[1, 4],        same
                              each with prob 0.5
beta, plateau                 [1, 2]: U[1, 1] (= 1) or U[1, 2],      same
                              each with prob 0.5
resize up / down / keep       probs 0.2 / 0.7 / 0.1;                 probs 0.3 / 0.4 / 0.3;
                              up U[1, 1.5], down U[0.15, 1]          up U[1, 1.2], down U[0.3, 1]
resize target                 ``scale_factor`` of the current image  size ``int(H / N * s)``, ``int(W / N * s)``
resize mode                   uniform among area, bilinear, bicubic  same
Gaussian noise                prob 0.5, sigma U[1, 30] / 255         prob 0.5, sigma U[1, 25] / 255
Poisson noise (otherwise)     scale U[0.05, 3]                       scale U[0.05, 2.5]
gray noise                    prob 0.4                               prob 0.4
JPEG                          quality U[30, 95]                      (in the final step)
============================  =====================================  =====================================

Final step: with prob 0.5 ``[resize to (H/N, W/N) with a random mode, sinc filter] -> JPEG``,
otherwise ``JPEG -> [resize, sinc filter]``; the final sinc filter is used with prob 0.8
(``final_sinc_prob``; size uniform in {7, ..., 21}, omega_c ~ U[pi/3, pi]), otherwise identity;
JPEG quality U[30, 95] (``jpeg_range2``). The result is clamped and rounded,
``clamp(round(x * 255), 0, 255) / 255``. Values are clamped to ``[0, 1]`` after each noise step and
before each JPEG step.

How the published code is followed (facts, not code, carry over):

- kernels: ``exp(-0.5 q)``, ``exp(-0.5 q^beta)``, ``1 / (1 + q^beta)`` with ``q = v^T Sigma^-1 v``,
  ``Sigma = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T``, ``v = (column offset, row offset)``;
  sinc ``omega_c J1(omega_c r) / (2 pi r)``, centre ``omega_c^2 / (4 pi)``; all normalised to sum 1.
  Blur is a correlation (all these kernels are point-symmetric, so it is also a convolution) with
  reflect padding (``filter2D``). Where the image is too small for reflect padding (a side <=
  ``size // 2``, which the published 256-pixel training patches never reach) it pads by replicating.
- resizing uses ``torch.nn.functional.interpolate`` (``align_corners=False``, no antialiasing), as
  published; a size that would round to 0 is raised to 1 pixel.
- Gaussian noise: ``randn * sigma`` per channel, or one ``randn`` field shared by the three
  channels for gray noise. Poisson noise: the image rounded to the uint8 grid, ``vals = 2 **
  ceil(log2(#distinct values))``, noise ``= (Poisson(img * vals) / vals - img) * scale``; gray
  Poisson noise is drawn on ``0.2989 R + 0.587 G + 0.114 B`` and shared by the channels.
- Every random choice is drawn from this module's generator, so the stream of numbers is not the
  published code's (which mixes ``random``, ``numpy`` and torch); the distributions are.

Deliberate differences, documented:

- JPEG is a pure-torch baseline JPEG round trip (``jpeg``): JFIF YCbCr, 4:2:0 chroma by 2x2
  averaging, 8x8 orthonormal DCT, quantisation by the IJG tables at the given quality (libjpeg's
  ``quality -> scale`` formula, accepting a float quality), rounding, inverse DCT, chroma repeated
  back (nearest), edges padded to a multiple of 16 by replication. The published pipeline uses
  DiffJPEG (``differentiable=False``), which divides by ``table * factor`` unrounded and pads with
  zeros; here the quantisation tables are the integer ones real JPEG files carry. No entropy coding
  (lossless, so irrelevant) and no libjpeg build dependence.
- USM sharpening of the HR before degrading (``gt_usm`` in the published model, a training-target
  choice, not part of the paper's degradation model) is off by default; ``usm_input=True`` in
  ``RealESRGANSettings`` turns it on (``usm_sharpen``: weight 0.5, 51x51 Gaussian of sigma 8,
  threshold 10).
- Batches: the published model shares one resize / mode / order per batch; here every image of a
  batch draws all its parameters itself.

BD and DN (``bdn-xN``, ``dn-xN``)
---------------------------------
``bdn-xN``: MATLAB ``imfilter(HR, fspecial('gaussian', 7, 1.6), 'replicate')`` then MATLAB-exact
bicubic ``imresize(., 1/N)`` (``iqa.resize``), uint8 path, as the issue specifies. Note: RDN's own
test-data script (``Prepare_TestData_HR_LR.m``, the BD tables of RDN/RCAN/...) subsamples the
blurred image instead (``'nearest'``; kernel 7 at x3) -- ``BlurDown(scale, downsample="nearest")``
reproduces that at odd scales. ``dn-xN``: MATLAB bicubic ``imresize(HR, 1/N)`` on the uint8 levels,
plus Gaussian noise of sigma 30 on the 0-255 scale, rounded half away from zero and saturated to
uint8 (MATLAB's ``uint8()``), as RDN's ``imresize_DN``; the noise is drawn from the seeded
generator (MATLAB's ``randn('seed', 0)`` stream is not reproduced).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from .errors import SrbenchError, UnknownNameError

__all__ = [
    "FAMILIES",
    "KERNEL_KINDS",
    "REALESRGAN_X4PLUS",
    "RESIZE_MODES",
    "BDParams",
    "BlurDown",
    "DNParams",
    "DownNoise",
    "FinalParams",
    "FinalSettings",
    "ImageTooSmallError",
    "KernelParams",
    "RealESRGAN",
    "RealESRGANParams",
    "RealESRGANSettings",
    "StageParams",
    "StageSettings",
    "add_gaussian_noise",
    "add_poisson_noise",
    "blur",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "jpeg",
    "make_generator",
    "matlab_gaussian_kernel",
    "parse",
    "plateau_kernel",
    "resize",
    "sample_realesrgan_params",
    "sinc_kernel",
    "usm_sharpen",
]

KERNEL_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = ("area", "bilinear", "bicubic")
_ODD_SIZES = tuple(range(7, 22, 2))
_GRAY = (0.2989, 0.587, 0.114)  # the luma weights of the published gray Poisson noise


class ImageTooSmallError(SrbenchError):
    """The image is smaller than the scale allows."""


# ---------------------------------------------------------------------------------------------
# checks and seeds
# ---------------------------------------------------------------------------------------------

def _check_real(name: str, v: object, *, positive: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise SrbenchError(f"{name} must be a finite number, got {v!r}")
    if positive and float(v) <= 0:
        raise SrbenchError(f"{name} must be > 0, got {v!r}")
    return float(v)


def _check_odd_size(size: object, name: str = "kernel size") -> int:
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1 or size % 2 == 0:
        raise SrbenchError(f"{name} must be an odd int >= 1, got {size!r}")
    return int(size)


def _check_scale(scale: object) -> int:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise SrbenchError(f"scale must be an int >= 1, got {scale!r}")
    return int(scale)


def _check_images(x: object, name: str = "hr", *, in_range: bool = True) -> torch.Tensor:
    """``x`` is a float ``(B, 3, H, W)`` tensor with values in ``[0, 1]`` (only finite if not ``in_range``)."""
    if not isinstance(x, torch.Tensor):
        raise SrbenchError(f"{name} must be a torch.Tensor (B, 3, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise SrbenchError(f"{name} must have shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise SrbenchError(f"{name} must be float in [0, 1], got dtype {x.dtype}")
    if x.shape[0] < 1 or x.shape[-1] < 1 or x.shape[-2] < 1:
        raise SrbenchError(f"{name} must hold at least one pixel, got shape {tuple(x.shape)}")
    lo, hi = float(x.min()), float(x.max())
    if not in_range:
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise SrbenchError(f"{name} must hold finite values, got values in [{lo:.4g}, {hi:.4g}]")
        return x
    if not (lo >= -1e-6 and hi <= 1 + 1e-6):  # also catches NaN
        raise SrbenchError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return x


def _check_hr(hr: object, scale: int) -> torch.Tensor:
    hr = _check_images(hr)
    h, w = int(hr.shape[-2]), int(hr.shape[-1])
    if h < scale or w < scale:
        raise ImageTooSmallError(f"image of {w}x{h} pixels is smaller than the scale x{scale} allows")
    return hr[..., : h - h % scale, : w - w % scale]


def _check_seed_int(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
        raise SrbenchError(f"seed must be an int in [0, 2**64), got {seed!r}")
    return int(seed)


def make_generator(seed: int | torch.Generator) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (a generator is returned as it is)."""
    if isinstance(seed, torch.Generator):
        if seed.device.type != "cpu":
            raise SrbenchError(f"the generator must be a CPU torch.Generator, got one on {seed.device}")
        return seed
    return torch.Generator(device="cpu").manual_seed(_check_seed_int(seed))


def _generators(seed: object, n: int) -> list[torch.Generator]:
    """One generator per image: ``seed + i`` for an int, one per int of a sequence, or one shared generator."""
    if isinstance(seed, torch.Generator):
        return [make_generator(seed)] * n
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        s = _check_seed_int(seed)
        return [make_generator((s + i) % 2**64) for i in range(n)]
    if isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)):
        if len(seed) != n:
            raise SrbenchError(f"seed holds {len(seed)} seeds for a batch of {n} images")
        return [make_generator(_check_seed_int(s)) for s in seed]
    raise SrbenchError(f"seed must be an int, a sequence of ints or a torch.Generator, got {seed!r}")


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _pick(g: torch.Generator, items: Sequence[Any], probs: Sequence[float] | None = None) -> Any:
    """One item, uniformly or with ``probs`` (one uniform draw)."""
    u = float(torch.rand((), generator=g, dtype=torch.float64))
    if probs is None:
        return items[min(int(u * len(items)), len(items) - 1)]
    total, acc = float(sum(probs)), 0.0
    for item, p in zip(items, probs):
        acc += p / total
        if u < acc:
            return item
    return items[-1]


def _to_grid(x: torch.Tensor) -> torch.Tensor:
    """Clamp and round to the uint8 grid, ``clamp(round(x*255), 0, 255) / 255`` in float32."""
    return torch.clamp((x.float() * 255.0).round(), 0, 255) / 255.0


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------

def _offsets(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column (x) and row (y) offsets from the centre of a ``size x size`` grid, float64."""
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return xx, yy


def _quadratic_form(size: int, sigma_x: float, sigma_y: float | None, theta: float) -> torch.Tensor:
    """``q = v^T Sigma^-1 v`` on the grid, ``Sigma = R diag(sx^2, sy^2) R^T``, ``v = (x, y)``."""
    size = _check_odd_size(size)
    sx = _check_real("sigma_x", sigma_x)
    sy = sx if sigma_y is None else _check_real("sigma_y", sigma_y)
    t = _check_real("theta", theta, positive=False)
    c, s = math.cos(t), math.sin(t)
    a = c * c / sx**2 + s * s / sy**2
    b = c * s * (1 / sx**2 - 1 / sy**2)
    d = s * s / sx**2 + c * c / sy**2
    x, y = _offsets(size)
    return a * x * x + 2 * b * x * y + d * y * y


def _normalised(k: torch.Tensor) -> torch.Tensor:
    return (k / k.sum()).float()


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> torch.Tensor:
    """Anisotropic Gaussian ``exp(-0.5 v^T Sigma^-1 v)``, ``(size, size)`` float32 summing to 1.

    ``sigma_x`` acts along the columns (x, the last dim) and ``sigma_y`` along the rows at
    ``theta = 0``; ``theta`` (radians) rotates the x axis towards +y (down the rows).
    ``sigma_y=None`` is the isotropic kernel.
    """
    return _normalised(torch.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, theta)))


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                                beta: float = 1.0) -> torch.Tensor:
    """Generalized Gaussian ``exp(-0.5 (v^T Sigma^-1 v)^beta)``; ``beta=1`` is the Gaussian."""
    beta = _check_real("beta", beta)
    return _normalised(torch.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, theta) ** beta))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                   beta: float = 1.0) -> torch.Tensor:
    """Plateau-shaped kernel ``1 / (1 + (v^T Sigma^-1 v)^beta)``, normalised to sum 1."""
    beta = _check_real("beta", beta)
    return _normalised(1.0 / (1.0 + _quadratic_form(size, sigma_x, sigma_y, theta) ** beta))


def sinc_kernel(size: int, omega_c: float, pad_to: int | None = None) -> torch.Tensor:
    """2-D circular low-pass (jinc) kernel, cut-off ``omega_c`` (radians per pixel), sum 1.

    ``omega_c J1(omega_c r) / (2 pi r)`` with the centre value ``omega_c^2 / (4 pi)``, zero-padded
    to ``pad_to x pad_to`` if given (odd, >= size).
    """
    # scipy's J1 is double-accurate; torch.special.bessel_j1 is off by up to 5e-7 below 8
    from scipy.special import j1

    size = _check_odd_size(size)
    wc = _check_real("omega_c", omega_c)
    x, y = _offsets(size)
    r = torch.sqrt(x * x + y * y)
    centre = r == 0
    r_safe = torch.where(centre, torch.ones_like(r), r)
    k = wc * torch.from_numpy(j1(wc * r_safe.numpy())) / (2 * math.pi * r_safe)
    k = torch.where(centre, torch.full_like(r, wc * wc / (4 * math.pi)), k)
    k = _normalised(k)
    if pad_to is not None:
        pad_to = _check_odd_size(pad_to, "pad_to")
        if pad_to < size:
            raise SrbenchError(f"pad_to must be >= the kernel size {size}, got {pad_to}")
        p = (pad_to - size) // 2
        k = F.pad(k, (p, p, p, p))
    return k


def matlab_gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """MATLAB ``fspecial('gaussian', size, sigma)`` in float64 (any size >= 1, odd or even)."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise SrbenchError(f"kernel size must be an int >= 1, got {size!r}")
    sigma = _check_real("sigma", sigma)
    ax = torch.arange(int(size), dtype=torch.float64) - (int(size) - 1) / 2
    h = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma * sigma))
    h = torch.where(h < torch.finfo(torch.float64).eps * h.max(), torch.zeros_like(h), h)
    return h / h.sum()


# ---------------------------------------------------------------------------------------------
# image operations
# ---------------------------------------------------------------------------------------------

def blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Filter ``x (B, C, H, W)`` with ``kernel`` ``(k, k)`` (one for all) or ``(B, k, k)``, odd ``k``.

    Correlation with reflect padding of ``k // 2`` (replicate where a side is too short to
    reflect), as the published ``filter2D``; the output has ``x``'s size and dtype.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise SrbenchError(f"x must be a float tensor (B, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(kernel, torch.Tensor):
        raise SrbenchError(f"kernel must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.ndim == 2:
        kernel = kernel.expand(x.shape[0], *kernel.shape)
    if kernel.ndim != 3 or kernel.shape[0] != x.shape[0] or kernel.shape[1] != kernel.shape[2] \
            or kernel.shape[1] % 2 == 0:
        raise SrbenchError(f"kernel must be (k, k) or (B, k, k) with odd k for a batch of {x.shape[0]}, "
                           f"got {tuple(kernel.shape)}")
    b, c, h, w = x.shape
    p = kernel.shape[-1] // 2
    mode = "reflect" if p < min(h, w) else "replicate"
    xp = F.pad(x.reshape(1, b * c, h, w), (p, p, p, p), mode=mode) if p else x.reshape(1, b * c, h, w)
    weight = kernel.to(x).repeat_interleave(c, dim=0).unsqueeze(1)
    return F.conv2d(xp, weight, groups=b * c).reshape(b, c, h, w)


def resize(x: torch.Tensor, mode: str, *, size: tuple[int, int] | None = None,
           scale_factor: float | None = None) -> torch.Tensor:
    """``F.interpolate`` as the published pipeline calls it (no antialias, ``align_corners=False``).

    Give ``size`` or ``scale_factor`` (``scale_factor`` wins); a side that would be 0 pixels becomes 1.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise SrbenchError(f"x must be a float tensor (B, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    if mode not in RESIZE_MODES:
        raise UnknownNameError("resize mode", str(mode), list(RESIZE_MODES))
    kw: dict[str, Any] = {} if mode == "area" else {"align_corners": False}
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if scale_factor is not None:
        s = _check_real("scale_factor", scale_factor)
        if int(h * s) >= 1 and int(w * s) >= 1:
            return F.interpolate(x, scale_factor=s, mode=mode, **kw)
        size = (int(h * s), int(w * s))
    if size is None:
        raise SrbenchError("resize needs size or scale_factor")
    size = (max(1, int(size[0])), max(1, int(size[1])))
    return F.interpolate(x, size=size, mode=mode, **kw)


def add_gaussian_noise(x: torch.Tensor, sigma: float, *, gray: bool = False,
                       generator: torch.Generator | int = 0) -> torch.Tensor:
    """``clamp(x + sigma * N(0, 1), 0, 1)``; ``sigma`` in image units (``[0, 1]`` scale).

    ``gray``: one noise field per image shared by its channels. Noise is drawn on the CPU from
    ``generator`` in float32, image by image.
    """
    x = _check_images(x, "x", in_range=False)
    g = make_generator(generator)
    sigma = _check_real("sigma", sigma, positive=False)
    b, c, h, w = x.shape
    noise = torch.randn((b, 1 if gray else c, h, w), generator=g, dtype=torch.float32) * sigma
    return torch.clamp(x + noise.to(x).expand_as(x), 0, 1)


def _poisson_field(img: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Poisson noise of ``img (B, C, H, W)`` (CPU, on the uint8 grid), per image scaled by its level count."""
    out = torch.empty_like(img)
    for i in range(img.shape[0]):
        levels = int(torch.unique(img[i]).numel())
        vals = 2.0 ** math.ceil(math.log2(max(levels, 1)))
        out[i] = torch.poisson(img[i] * vals, generator=g) / vals - img[i]
    return out


def add_poisson_noise(x: torch.Tensor, scale: float, *, gray: bool = False,
                      generator: torch.Generator | int = 0) -> torch.Tensor:
    """``clamp(x + scale * poisson_noise, 0, 1)`` as the published pipeline defines it.

    The noise is ``Poisson(q * vals) / vals - q`` with ``q`` the image rounded to the uint8 grid and
    ``vals = 2 ** ceil(log2(#distinct levels))``; ``gray`` draws it on the luma
    ``0.2989 R + 0.587 G + 0.114 B`` and shares it across channels. Drawn on the CPU.
    """
    x = _check_images(x, "x", in_range=False)
    g = make_generator(generator)
    scale = _check_real("scale", scale, positive=False)
    src = x.detach().float().cpu()
    if gray:
        wts = torch.tensor(_GRAY, dtype=torch.float32).view(1, 3, 1, 1)
        src = (src * wts).sum(1, keepdim=True)
    q = _to_grid(src)
    noise = _poisson_field(q, g)
    return torch.clamp(x + (noise * scale).to(x).expand_as(x), 0, 1)


# JPEG (ITU-T T.81 Annex K) base quantisation tables
_JPEG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
_JPEG_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32))


def _quant_table(base: Sequence[int], quality: float) -> torch.Tensor:
    """libjpeg's table at ``quality`` (float accepted): ``clamp(floor((T * s + 50) / 100), 1, 255)``."""
    q = min(max(quality, 1.0), 100.0)
    s = math.floor(5000.0 / q) if q < 50 else 200.0 - 2.0 * q
    t = torch.tensor(base, dtype=torch.float64).view(8, 8)
    return torch.clamp(torch.floor((t * s + 50.0) / 100.0), 1, 255)


def _dct_matrix() -> torch.Tensor:
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * 0.5
    d[0] = math.sqrt(1 / 8)
    return d


def _dct_quantise(p: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """8x8 block DCT of ``p (B, C, H, W)`` (H, W multiples of 8), quantised with ``tables (B, 8, 8)``, back.

    A block flattened row-major is transformed by ``kron(D, D)`` (64 x 64), D the orthonormal DCT-II.
    """
    b, c, h, w = p.shape
    d = _dct_matrix()
    dd = torch.kron(d, d).to(p)
    blocks = p.reshape(b, c, h // 8, 8, w // 8, 8).transpose(3, 4).reshape(b, -1, 64)
    t = tables.to(p).reshape(b, 1, 64)
    coef = torch.round((blocks @ dd.T) / t) * t
    return (coef @ dd).reshape(b, c, h // 8, w // 8, 8, 8).transpose(3, 4).reshape(b, c, h, w)


def jpeg(x: torch.Tensor, quality: float | Sequence[float]) -> torch.Tensor:
    """Baseline JPEG round trip of ``x (B, 3, H, W)`` in pure torch (see the module docstring).

    ``quality`` in ``[1, 100]``, one for all images or one per image (floats allowed). The input
    (finite values) is clamped to ``[0, 1]``; the output is float32 in ``[0, 1]`` (not rounded to the uint8 grid).
    """
    x = _check_images(x, "x", in_range=False)
    b, _, h, w = x.shape
    qs = [quality] * b if isinstance(quality, numbers.Real) else list(quality)
    if len(qs) != b:
        raise SrbenchError(f"quality holds {len(qs)} values for a batch of {b} images")
    qs = [_check_real("JPEG quality", q) for q in qs]
    if not all(1 <= q <= 100 for q in qs):
        raise SrbenchError(f"JPEG quality must lie in [1, 100], got {qs}")
    v = F.pad(x.clamp(0, 1).float() * 255.0, (0, (-w) % 16, 0, (-h) % 16), mode="replicate")
    r, g, bl = v.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * bl - 128.0  # level-shifted luma
    cb = -0.168736 * r - 0.331264 * g + 0.5 * bl  # chroma minus its 128 offset
    cr = 0.5 * r - 0.418688 * g - 0.081312 * bl
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)
    luma_t = torch.stack([_quant_table(_JPEG_LUMA, q) for q in qs])
    chroma_t = torch.stack([_quant_table(_JPEG_CHROMA, q) for q in qs])
    y = _dct_quantise(y.unsqueeze(1), luma_t)[:, 0] + 128.0
    chroma = _dct_quantise(chroma, chroma_t).repeat_interleave(2, -2).repeat_interleave(2, -1)
    cb, cr = chroma[:, 0], chroma[:, 1]
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    return torch.clamp(out[..., :h, :w], 0, 255) / 255.0


def usm_sharpen(x: torch.Tensor, weight: float = 0.5, radius: int = 50, threshold: float = 10) -> torch.Tensor:
    """Unsharp masking as the published ``USMSharp``: ``K = clamp(x + weight (x - blur(x)))``, blended
    with ``x`` through the blurred mask ``|x - blur(x)| * 255 > threshold``. The blur is a Gaussian of
    size ``radius`` (made odd) and OpenCV's default sigma for that size (8 for 51)."""
    x = _check_images(x, "x")
    size = int(radius) + (1 - int(radius) % 2)
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g1 = torch.exp(-ax * ax / (2 * sigma * sigma))
    g1 = g1 / g1.sum()
    k = (g1[:, None] * g1[None, :]).float()
    xf = x.float()
    residual = xf - blur(xf, k)
    soft = blur((residual.abs() * 255 > threshold).float(), k)
    sharp = torch.clamp(xf + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * xf


# ---------------------------------------------------------------------------------------------
# Real-ESRGAN: settings, parameters, sampling, pipeline
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StageSettings:
    """The ranges of one degradation stage (defaults: the published first stage)."""

    blur_prob: float = 1.0
    kernel_sizes: tuple[int, ...] = _ODD_SIZES
    kernel_kinds: tuple[str, ...] = KERNEL_KINDS
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    sigma_range: tuple[float, float] = (0.2, 3.0)
    rotation_range: tuple[float, float] = (-math.pi, math.pi)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)  # sigma on the 0-255 scale
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] | None = (30.0, 95.0)  # None: no JPEG at the end of the stage


@dataclass(frozen=True)
class FinalSettings:
    resize_first_prob: float = 0.5  # [resize + sinc] -> JPEG, else JPEG -> [resize + sinc]
    sinc_prob: float = 0.8
    sinc_sizes: tuple[int, ...] = _ODD_SIZES
    omega_range: tuple[float, float] = (math.pi / 3, math.pi)
    jpeg_range: tuple[float, float] = (30.0, 95.0)


@dataclass(frozen=True)
class RealESRGANSettings:
    """All ranges of the pipeline; the default instance ``REALESRGAN_X4PLUS`` is the published one."""

    name: str = "realesrgan"
    stage1: StageSettings = field(default_factory=StageSettings)
    stage2: StageSettings = field(default_factory=lambda: StageSettings(
        blur_prob=0.8, sigma_range=(0.2, 1.5), resize_probs=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2),
        noise_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5), jpeg_range=None))
    final: FinalSettings = field(default_factory=FinalSettings)
    resize_modes: tuple[str, ...] = RESIZE_MODES
    usm_input: bool = False


REALESRGAN_X4PLUS = RealESRGANSettings()


@dataclass(frozen=True)
class KernelParams:
    """One blur kernel: ``kind`` in ``KERNEL_KINDS`` or ``"sinc"``; unused fields are None."""

    kind: str
    size: int
    sigma_x: float | None = None
    sigma_y: float | None = None
    theta: float | None = None
    beta: float | None = None
    omega_c: float | None = None

    def build(self) -> torch.Tensor:
        """The ``(size, size)`` float32 kernel."""
        if self.kind == "sinc":
            return sinc_kernel(self.size, self.omega_c)
        args = (self.size, self.sigma_x, self.sigma_y, self.theta)
        if self.kind in ("iso", "aniso"):
            return gaussian_kernel(*args)
        if self.kind.startswith("generalized"):
            return generalized_gaussian_kernel(*args, beta=self.beta)
        if self.kind.startswith("plateau"):
            return plateau_kernel(*args, beta=self.beta)
        raise UnknownNameError("kernel kind", self.kind, [*KERNEL_KINDS, "sinc"])


@dataclass(frozen=True)
class StageParams:
    """What one stage drew. ``noise_level``: Gaussian sigma on the 0-255 scale, or the Poisson scale."""

    kernel: KernelParams | None  # None: no blur in this stage
    resize: str  # "up", "down" or "keep"
    resize_scale: float
    resize_mode: str
    noise: str  # "gaussian" or "poisson"
    noise_level: float
    gray_noise: bool
    jpeg_quality: float | None  # None: no JPEG at the end of this stage


@dataclass(frozen=True)
class FinalParams:
    resize_first: bool  # True: [resize + sinc] -> JPEG; False: JPEG -> [resize + sinc]
    resize_mode: str
    sinc: KernelParams | None  # None: identity
    jpeg_quality: float


@dataclass(frozen=True)
class RealESRGANParams:
    stage1: StageParams
    stage2: StageParams
    final: FinalParams

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for logs)."""
        return dataclasses.asdict(self)


def _sample_beta(g: torch.Generator, lo: float, hi: float) -> float:
    """The published rule: with prob 0.5 U[lo, 1], else U[1, hi] (1 moved into [lo, hi] if outside)."""
    one = min(max(1.0, lo), hi)
    return _uniform(g, lo, one) if _uniform(g, 0, 1) < 0.5 else _uniform(g, one, hi)


def _sample_kernel(g: torch.Generator, st: StageSettings) -> KernelParams:
    size = int(_pick(g, st.kernel_sizes))
    if _uniform(g, 0, 1) < st.sinc_prob:
        lo = math.pi / 3 if size < 13 else math.pi / 5
        return KernelParams("sinc", size, omega_c=_uniform(g, lo, math.pi))
    kind = _pick(g, st.kernel_kinds, st.kernel_probs)
    sx = _uniform(g, *st.sigma_range)
    if kind.endswith("aniso"):
        sy, theta = _uniform(g, *st.sigma_range), _uniform(g, *st.rotation_range)
    else:
        sy, theta = sx, 0.0
    beta = None
    if kind.startswith("generalized"):
        beta = _sample_beta(g, *st.betag_range)
    elif kind.startswith("plateau"):
        beta = _sample_beta(g, *st.betap_range)
    return KernelParams(kind, size, sx, sy, theta, beta)


def _sample_stage(g: torch.Generator, st: StageSettings, modes: Sequence[str]) -> StageParams:
    kernel = _sample_kernel(g, st) if _uniform(g, 0, 1) < st.blur_prob else None
    updown = _pick(g, ("up", "down", "keep"), st.resize_probs)
    s = {"up": lambda: _uniform(g, 1.0, st.resize_range[1]),
         "down": lambda: _uniform(g, st.resize_range[0], 1.0), "keep": lambda: 1.0}[updown]()
    mode = _pick(g, modes)
    if _uniform(g, 0, 1) < st.gaussian_noise_prob:
        noise, level = "gaussian", _uniform(g, *st.noise_range)
    else:
        noise, level = "poisson", _uniform(g, *st.poisson_scale_range)
    gray = _uniform(g, 0, 1) < st.gray_noise_prob
    quality = _uniform(g, *st.jpeg_range) if st.jpeg_range is not None else None
    return StageParams(kernel, updown, s, mode, noise, level, gray, quality)


def _sample_final(g: torch.Generator, fs: FinalSettings, modes: Sequence[str]) -> FinalParams:
    first = _uniform(g, 0, 1) < fs.resize_first_prob
    mode = _pick(g, modes)
    sinc = None
    if _uniform(g, 0, 1) < fs.sinc_prob:
        size = int(_pick(g, fs.sinc_sizes))
        sinc = KernelParams("sinc", size, omega_c=_uniform(g, *fs.omega_range))
    return FinalParams(first, mode, sinc, _uniform(g, *fs.jpeg_range))


def sample_realesrgan_params(generator: torch.Generator | int,
                             settings: RealESRGANSettings = REALESRGAN_X4PLUS) -> RealESRGANParams:
    """Draw one image's parameters: stage 1, stage 2, final, in that order, from ``generator``."""
    g = make_generator(generator)
    return RealESRGANParams(_sample_stage(g, settings.stage1, settings.resize_modes),
                            _sample_stage(g, settings.stage2, settings.resize_modes),
                            _sample_final(g, settings.final, settings.resize_modes))


def _noise(x: torch.Tensor, p: StageParams, g: torch.Generator) -> torch.Tensor:
    if p.noise == "gaussian":
        return add_gaussian_noise(x, p.noise_level / 255.0, gray=p.gray_noise, generator=g)
    return add_poisson_noise(x, p.noise_level, gray=p.gray_noise, generator=g)


def _stage(x: torch.Tensor, p: StageParams, g: torch.Generator, size: tuple[int, int] | None) -> torch.Tensor:
    if p.kernel is not None:
        x = blur(x, p.kernel.build())
    if size is None:
        x = resize(x, p.resize_mode, scale_factor=p.resize_scale)
    else:
        x = resize(x, p.resize_mode, size=size)
    return _noise(x, p, g)


def _realesrgan_one(hr: torch.Tensor, scale: int, p: RealESRGANParams, g: torch.Generator,
                    usm_input: bool) -> torch.Tensor:
    """LR of one image ``hr (1, 3, H, W)`` (H, W multiples of ``scale``) with the drawn parameters."""
    h, w = int(hr.shape[-2]), int(hr.shape[-1])
    out = hr.float()
    if usm_input:
        out = usm_sharpen(out)
    out = _stage(out, p.stage1, g, None)
    out = jpeg(torch.clamp(out, 0, 1), p.stage1.jpeg_quality)
    s2 = p.stage2.resize_scale
    out = _stage(out, p.stage2, g, (int(h / scale * s2), int(w / scale * s2)))

    def resize_sinc(t: torch.Tensor) -> torch.Tensor:
        t = resize(t, p.final.resize_mode, size=(h // scale, w // scale))
        return blur(t, p.final.sinc.build()) if p.final.sinc is not None else t

    if p.final.resize_first:
        out = jpeg(torch.clamp(resize_sinc(out), 0, 1), p.final.jpeg_quality)
    else:
        out = resize_sinc(jpeg(torch.clamp(out, 0, 1), p.final.jpeg_quality))
    return _to_grid(out)


# ---------------------------------------------------------------------------------------------
# degradation objects and the key parser
# ---------------------------------------------------------------------------------------------

class _Synthetic:
    """Shared interface: ``apply``; subclasses give ``family``, ``scale`` and ``apply_with_params``."""

    family: ClassVar[str]
    scale: int

    @property
    def key(self) -> str:
        return f"{self.family}-x{self.scale}"

    def apply(self, hr: torch.Tensor, seed: int | Sequence[int] | torch.Generator = 0
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """``hr (B, 3, H, W)`` float in ``[0, 1]`` -> ``(hr_cropped, lr)``; lr float32 on the uint8 grid,
        ``(B, 3, H // scale, W // scale)``; hr_cropped is ``hr`` cropped to a multiple of ``scale``."""
        hr_c, lr, _ = self.apply_with_params(hr, seed)
        return hr_c, lr

    def apply_with_params(self, hr: torch.Tensor, seed: Any = 0) -> tuple[torch.Tensor, torch.Tensor, list[Any]]:
        raise NotImplementedError


@dataclass(frozen=True)
class RealESRGAN(_Synthetic):
    """``realesrgan-xN``: the Real-ESRGAN second-order degradation (module docstring)."""

    scale: int
    settings: RealESRGANSettings = REALESRGAN_X4PLUS
    family: ClassVar[str] = "realesrgan"

    def __post_init__(self) -> None:
        _check_scale(self.scale)
        if not isinstance(self.settings, RealESRGANSettings):
            raise SrbenchError(f"settings must be a RealESRGANSettings, got {type(self.settings).__name__}")
        if self.settings != REALESRGAN_X4PLUS and self.settings.name == REALESRGAN_X4PLUS.name:
            raise SrbenchError("custom Real-ESRGAN settings need a name of their own (settings.name), "
                               "so that their key differs from the published 'realesrgan'")

    @property
    def key(self) -> str:
        return f"{self.settings.name}-x{self.scale}"

    def sample_params(self, seed: int | torch.Generator = 0) -> RealESRGANParams:
        """The parameters ``apply`` draws for image 0 with this ``seed`` (a generator is advanced)."""
        return sample_realesrgan_params(make_generator(seed), self.settings)

    def apply_with_params(self, hr: torch.Tensor, seed: int | Sequence[int] | torch.Generator = 0
                          ) -> tuple[torch.Tensor, torch.Tensor, list[RealESRGANParams]]:
        """Like ``apply``, plus the parameters drawn for each image."""
        hr_c = _check_hr(hr, self.scale)
        gens = _generators(seed, hr_c.shape[0])
        lrs, params = [], []
        for i, g in enumerate(gens):
            p = sample_realesrgan_params(g, self.settings)
            lrs.append(_realesrgan_one(hr_c[i:i + 1], self.scale, p, g, self.settings.usm_input))
            params.append(p)
        return hr_c, torch.cat(lrs), params


@dataclass(frozen=True)
class BDParams:
    kernel_size: int
    sigma: float
    downsample: str


@dataclass(frozen=True)
class BlurDown(_Synthetic):
    """``bdn-xN``: ``imfilter(HR, fspecial('gaussian', kernel_size, sigma), 'replicate')`` then MATLAB
    ``imresize(., 1/N)`` (``downsample="bicubic"``, default) or ``'nearest'`` (RDN's BD script).
    Deterministic: the seed is accepted and ignored."""

    scale: int
    sigma: float = 1.6
    kernel_size: int = 7
    downsample: str = "bicubic"
    family: ClassVar[str] = "bdn"

    def __post_init__(self) -> None:
        _check_scale(self.scale)
        matlab_gaussian_kernel(self.kernel_size, self.sigma)  # validates both
        if self.downsample not in ("bicubic", "nearest"):
            raise UnknownNameError("downsample", str(self.downsample), ["bicubic", "nearest"])

    @property
    def key(self) -> str:
        opts = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                if f.name != "scale" and getattr(self, f.name) != f.default]
        return super().key + (":" + ",".join(opts) if opts else "")

    def sample_params(self, seed: Any = 0) -> BDParams:
        return BDParams(self.kernel_size, self.sigma, self.downsample)

    def apply_with_params(self, hr: torch.Tensor, seed: Any = 0) -> tuple[torch.Tensor, torch.Tensor, list[BDParams]]:
        from .resize import imresize

        hr_c = _check_hr(hr, self.scale)
        _generators(seed, hr_c.shape[0])  # the same seed rules as the random degradations
        k = matlab_gaussian_kernel(self.kernel_size, self.sigma)
        before, after = (self.kernel_size - 1) // 2, self.kernel_size // 2  # MATLAB's centre
        b, c, h, w = hr_c.shape
        x = F.pad(hr_c.double().reshape(1, b * c, h, w), (before, after, before, after), mode="replicate")
        blurred = F.conv2d(x, k.to(x).expand(b * c, 1, *k.shape), groups=b * c).reshape(b, c, h, w).clamp(0, 1)
        lr = imresize(blurred, 1.0 / self.scale, kernel="cubic" if self.downsample == "bicubic" else "nearest",
                      mode="matlab")
        return hr_c, _to_grid(lr), [self.sample_params()] * b


@dataclass(frozen=True)
class DNParams:
    sigma: float


@dataclass(frozen=True)
class DownNoise(_Synthetic):
    """``dn-xN``: MATLAB bicubic ``imresize(HR, 1/N)`` (uint8 levels), plus ``sigma * N(0, 1)`` on the
    0-255 scale (float64, from the seeded generator), rounded half away from zero and saturated."""

    scale: int
    sigma: float = 30.0
    family: ClassVar[str] = "dn"

    def __post_init__(self) -> None:
        _check_scale(self.scale)
        _check_real("sigma", self.sigma, positive=False)

    @property
    def key(self) -> str:
        return super().key + (f":sigma={self.sigma}" if self.sigma != 30.0 else "")

    def sample_params(self, seed: Any = 0) -> DNParams:
        return DNParams(self.sigma)

    def apply_with_params(self, hr: torch.Tensor, seed: int | Sequence[int] | torch.Generator = 0
                          ) -> tuple[torch.Tensor, torch.Tensor, list[DNParams]]:
        from .resize import imresize

        hr_c = _check_hr(hr, self.scale)
        gens = _generators(seed, hr_c.shape[0])
        levels = (imresize(hr_c, 1.0 / self.scale, kernel="cubic", mode="matlab").double() * 255).round()
        noise = torch.stack([torch.randn(levels.shape[1:], generator=g, dtype=torch.float64) for g in gens])
        noisy = torch.floor(levels + self.sigma * noise.to(levels.device) + 0.5).clamp(0, 255)
        return hr_c, (noisy.float() / 255.0), [self.sample_params()] * hr_c.shape[0]


FAMILIES: dict[str, type[_Synthetic]] = {"realesrgan": RealESRGAN, "bdn": BlurDown, "dn": DownNoise}
_BENCH_KEY = re.compile(r"(real-)?x\d+")
_KEY = re.compile(r"([a-z][a-z0-9_]*(?:-[a-z][a-z0-9_]*)*)-x(\d+)")


def parse(key: str) -> RealESRGAN | BlurDown | DownNoise | None:
    """The degradation a key names: ``realesrgan-xN``, ``bdn-xN`` or ``dn-xN`` (published defaults).

    Returns ``None`` for ``xN`` and ``real-xN``, which ``bench``'s degradations own; raises
    ``SrbenchError`` (``UnknownNameError`` with a "did you mean") for anything else.
    """
    if not isinstance(key, str):
        raise SrbenchError(f"a degradation key must be a string, got {key!r}")
    k = key.strip().lower()
    if _BENCH_KEY.fullmatch(k):
        return None
    m = _KEY.fullmatch(k)
    if m and m.group(1) in FAMILIES:
        n = int(m.group(2))
        if n < 1:
            raise SrbenchError(f"degradation {key!r}: the scale must be >= 1")
        return FAMILIES[m.group(1)](n)  # type: ignore[return-value]
    n = m.group(2) if m else "4"
    raise UnknownNameError("degradation", key, [f"x{n}", f"real-x{n}", *(f"{f}-x{n}" for f in FAMILIES)])
