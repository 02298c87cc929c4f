"""DePLSR's degradation sampler: ``degrade(hr, generator) -> (lq, params)``, with texts.

The adaptor learns from LQ images whose degradation is described in words ("blur with
sigma:1.2", ...). What is sampled (the ranges are the official training options; every random
number comes from the given CPU ``torch.Generator``, nothing global):

- **blur** (both stages): ``sigma`` from ``arange(0, 3, 0.1)`` (``0.0``: no blur); the kernel is
  isotropic with prob 0.5, else anisotropic with ``sigma_x = sigma``, ``sigma_y = sigma * U[0.5, 1]``
  and ``theta ~ U[0, pi)``; size ``2 * ceil(3 * sigma) + 1``. Both stages use the same ``sigma`` and
  draw their kernel shape (iso/aniso, minor sigma, theta) each, as the official code does. The
  official code also makes an "anisotropic" kernel with two equal sigmas (so it is isotropic in
  effect); here the minor sigma is smaller, and the text says "anisotropic blur". No stage-level
  sinc kernel is drawn: the text "blur with sigma" would describe it wrongly.
- **noise** (both stages, same kind and level, fresh noise fields): Gaussian with prob 0.5,
  ``sigma ~ U[0, 30]`` on the 0-255 scale, else Poisson with ``scale ~ U[0, 3]``; colour noise.
- **JPEG** (once, after stage 2): quality ``U[30, 95]`` (``jpeg_prob`` 1.0 as published).
- **ringing** (final): the sinc (jinc) filter with prob 0.2, size in ``{7, ..., 21}``,
  ``omega_c ~ U[pi/3, pi]``.
- **resize** (final): bicubic ``F.interpolate`` (no antialias, as published) to ``lq_size x lq_size``
  (224 by default; ``None`` keeps the size). The scale is the HR crop's: a recipe varies it by
  varying the crop size.

Continuous values are rounded to one decimal *before* use, so the numbers in the texts are exactly
the ones applied. The official pipeline's bug is not reproduced: its second stage restarts from the
clean image, discarding the first blur and noise; here stage 2 continues from stage 1's output.

Texts: ``params.texts()`` returns 5 fine texts in the fixed order of ``SLOTS``:

====  =========  ==============================================  ==========================
slot  name       present                                         absent
====  =========  ==============================================  ==========================
0     blur       ``blur with sigma:1.2`` /                       ``no blur``
                 ``anisotropic blur with sigma:1.2`` (any stage
                 anisotropic)
1     noise      ``gaussian noise with sigma:12.3`` /            ``no noise`` (level 0.0)
                 ``poisson noise with scale:1.5``
2     jpeg       ``jpeg with quality factor:55.0``               ``no jpeg compression``
3     resize     ``bicubic resize with scale:0.50`` (or          ``no resize``
                 ``scale:0.50,0.40`` for unequal H/W scales)
4     ringing    ``ringing and overshoot artifacts``             ``no ringing artifacts``
====  =========  ==============================================  ==========================

``full_text()`` joins the texts of the degradations present with ``", "`` ("no degradation" when
none is); the official code concatenates them without a separator. ``vectors()`` gives each slot's
parameters as a normalised ``(5, PARAM_WIDTH)`` vector (the parametric "text" of the offline
adaptor), ``targets()`` the numbers a rank-correlation check predicts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from iqa.degrade import (
    add_gaussian_noise,
    add_poisson_noise,
    blur,
    gaussian_kernel,
    jpeg,
    resize,
    sinc_kernel,
)
from iqa.errors import SrbenchError

__all__ = ["DEPLSR", "PARAM_WIDTH", "SLOTS", "BlurParams", "DePLSRParams", "DePLSRSettings", "SincParams",
           "StageParams", "apply_stage", "degrade", "degrade_with_params", "sample_params"]

SLOTS = ("blur", "noise", "jpeg", "resize", "ringing")
PARAM_WIDTH = 4


@dataclass(frozen=True)
class DePLSRSettings:
    """The sampler's ranges (defaults: the official training options, 224-px LQ)."""

    sigma_grid: tuple[float, float, float] = (0.0, 3.0, 0.1)  # arange(start, stop, step)
    iso_prob: float = 0.5
    minor_ratio: tuple[float, float] = (0.5, 1.0)  # anisotropic: sigma_y = sigma_x * U[lo, hi]
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (0.0, 30.0)  # Gaussian sigma, 0-255 scale
    poisson_scale_range: tuple[float, float] = (0.0, 3.0)
    jpeg_prob: float = 1.0
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    sinc_prob: float = 0.2
    sinc_sizes: tuple[int, ...] = tuple(range(7, 22, 2))
    omega_range: tuple[float, float] = (math.pi / 3, math.pi)
    second_stage: bool = True
    lq_size: int | None = 224


DEPLSR = DePLSRSettings()


@dataclass(frozen=True)
class BlurParams:
    """One stage's blur kernel: ``sigma`` (the text's), its shape and ``size = 2 ceil(3 sigma) + 1``."""

    sigma: float
    isotropic: bool
    sigma_minor: float  # = sigma when isotropic
    theta: float  # radians; 0 when isotropic
    size: int

    def kernel(self) -> torch.Tensor:
        """The ``(size, size)`` float32 kernel (``iqa.degrade.gaussian_kernel``)."""
        if self.isotropic:
            return gaussian_kernel(self.size, self.sigma)
        return gaussian_kernel(self.size, self.sigma, self.sigma_minor, self.theta)


@dataclass(frozen=True)
class StageParams:
    """One stage: blur (None: ``sigma`` 0) then noise (``"gaussian"``: sigma on the 0-255 scale,
    ``"poisson"``: scale; level 0.0 means no noise)."""

    blur: BlurParams | None
    noise: str
    noise_level: float


@dataclass(frozen=True)
class SincParams:
    size: int
    omega_c: float


@dataclass(frozen=True)
class DePLSRParams:
    """Everything one image drew (see the module docstring for the texts)."""

    stages: tuple[StageParams, ...]
    jpeg_quality: float | None  # None: no JPEG
    sinc: SincParams | None  # None: no ringing filter
    in_size: tuple[int, int]  # (H, W) before the final resize
    out_size: tuple[int, int]  # (H, W) of the LQ

    @property
    def blur_sigma(self) -> float:
        return self.stages[0].blur.sigma if self.stages[0].blur is not None else 0.0

    @property
    def resize_scale(self) -> tuple[float, float]:
        return self.out_size[0] / self.in_size[0], self.out_size[1] / self.in_size[1]

    def texts(self) -> list[str]:
        """The 5 fine texts in the order of ``SLOTS``."""
        s0 = self.stages[0]
        if self.blur_sigma > 0:
            aniso = any(st.blur is not None and not st.blur.isotropic for st in self.stages)
            blur_t = f"{'anisotropic ' if aniso else ''}blur with sigma:{self.blur_sigma:.1f}"
        else:
            blur_t = "no blur"
        if s0.noise_level <= 0:
            noise_t = "no noise"
        elif s0.noise == "gaussian":
            noise_t = f"gaussian noise with sigma:{s0.noise_level:.1f}"
        else:
            noise_t = f"poisson noise with scale:{s0.noise_level:.1f}"
        jpeg_t = "no jpeg compression" if self.jpeg_quality is None else f"jpeg with quality factor:{self.jpeg_quality:.1f}"
        sh, sw = self.resize_scale
        if self.in_size == self.out_size:
            resize_t = "no resize"
        elif f"{sh:.2f}" == f"{sw:.2f}":
            resize_t = f"bicubic resize with scale:{sh:.2f}"
        else:
            resize_t = f"bicubic resize with scale:{sh:.2f},{sw:.2f}"
        ring_t = "ringing and overshoot artifacts" if self.sinc is not None else "no ringing artifacts"
        return [blur_t, noise_t, jpeg_t, resize_t, ring_t]

    def present(self) -> list[bool]:
        """Which of the 5 slots hold a degradation."""
        return [self.blur_sigma > 0, self.stages[0].noise_level > 0, self.jpeg_quality is not None,
                self.in_size != self.out_size, self.sinc is not None]

    def full_text(self) -> str:
        """The texts of the degradations present joined with ``", "`` (``"no degradation"`` if none)."""
        parts = [t for t, p in zip(self.texts(), self.present()) if p]
        return ", ".join(parts) if parts else "no degradation"

    def vectors(self) -> torch.Tensor:
        """``(5, PARAM_WIDTH)`` float32: each slot's parameters, normalised to about ``[0, 1]`` (zeros
        pad; the first entry is 1 where the degradation is present)."""
        s0 = self.stages[0]
        n_aniso = sum(st.blur is not None and not st.blur.isotropic for st in self.stages)
        minor = [st.blur.sigma_minor / st.blur.sigma for st in self.stages if st.blur is not None]
        gauss = s0.noise == "gaussian"
        sh, sw = self.resize_scale
        on = [float(p) for p in self.present()]
        rows = [
            [on[0], self.blur_sigma / 3.0, n_aniso / len(self.stages), sum(minor) / len(minor) if minor else 1.0],
            [on[1], float(gauss), s0.noise_level / 30.0 if gauss else 0.0, 0.0 if gauss else s0.noise_level / 3.0],
            [on[2], (self.jpeg_quality or 0.0) / 100.0, 0.0, 0.0],
            [on[3], math.log2(sh) / 4.0, math.log2(sw) / 4.0, 0.0],
            [on[4], self.sinc.omega_c / math.pi if self.sinc else 0.0, self.sinc.size / 21.0 if self.sinc else 0.0, 0.0],
        ]
        return torch.tensor(rows, dtype=torch.float32)

    def targets(self) -> dict[str, float]:
        """The numbers a rank-correlation check predicts from the fine embeddings: ``blur_sigma``,
        ``gaussian_sigma`` / ``poisson_scale`` (NaN for the other noise kind), ``jpeg_quality`` (NaN
        without JPEG)."""
        s0 = self.stages[0]
        return {"blur_sigma": self.blur_sigma,
                "gaussian_sigma": s0.noise_level if s0.noise == "gaussian" else math.nan,
                "poisson_scale": s0.noise_level if s0.noise == "poisson" else math.nan,
                "jpeg_quality": self.jpeg_quality if self.jpeg_quality is not None else math.nan}

    def as_dict(self) -> dict:
        """A JSON-ready dict (for logs)."""
        return dataclasses.asdict(self)


# -- sampling ------------------------------------------------------------------------------------------

def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _r1(v: float) -> float:
    return round(v, 1)


def _sample_blur(g: torch.Generator, sigma: float, st: DePLSRSettings) -> BlurParams | None:
    if sigma <= 0:
        return None
    size = 2 * math.ceil(3 * sigma) + 1
    if _u(g, 0, 1) < st.iso_prob:
        return BlurParams(sigma, True, sigma, 0.0, size)
    return BlurParams(sigma, False, sigma * _u(g, *st.minor_ratio), _u(g, 0, math.pi), size)


def sample_params(generator: torch.Generator, hr_size: tuple[int, int],
                  settings: DePLSRSettings = DEPLSR) -> DePLSRParams:
    """Draw one image's parameters from ``generator`` for an HR of ``hr_size = (H, W)``."""
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise SrbenchError(f"generator must be a CPU torch.Generator, got {generator!r}")
    g, st = generator, settings
    n_sigma = round((st.sigma_grid[1] - st.sigma_grid[0]) / st.sigma_grid[2])
    k = min(int(_u(g, 0, 1) * n_sigma), n_sigma - 1)
    sigma = _r1(st.sigma_grid[0] + k * st.sigma_grid[2])
    if _u(g, 0, 1) < st.gaussian_noise_prob:
        noise, level = "gaussian", _r1(_u(g, *st.noise_range))
    else:
        noise, level = "poisson", _r1(_u(g, *st.poisson_scale_range))
    stages = tuple(StageParams(_sample_blur(g, sigma, st), noise, level) for _ in range(2 if st.second_stage else 1))
    quality = _r1(_u(g, *st.jpeg_range)) if _u(g, 0, 1) < st.jpeg_prob else None
    sinc = None
    if _u(g, 0, 1) < st.sinc_prob:
        size = st.sinc_sizes[min(int(_u(g, 0, 1) * len(st.sinc_sizes)), len(st.sinc_sizes) - 1)]
        sinc = SincParams(int(size), _u(g, *st.omega_range))
    out = (st.lq_size, st.lq_size) if st.lq_size is not None else tuple(hr_size)
    return DePLSRParams(stages, quality, sinc, tuple(hr_size), out)


# -- applying ------------------------------------------------------------------------------------------

def apply_stage(x: torch.Tensor, stage: StageParams, generator: torch.Generator) -> torch.Tensor:
    """One stage on ``x (1, 3, H, W)``: blur, then noise (fields drawn from ``generator``), in [0, 1]."""
    if stage.blur is not None:
        x = blur(x, stage.blur.kernel())
    if stage.noise_level > 0:
        if stage.noise == "gaussian":
            return add_gaussian_noise(x, stage.noise_level / 255.0, generator=generator)
        return add_poisson_noise(x, stage.noise_level, generator=generator)
    return x.clamp(0, 1)


def degrade_with_params(hr: torch.Tensor, params: DePLSRParams, generator: torch.Generator) -> torch.Tensor:
    """The LQ of ``hr (1, 3, H, W)`` under ``params``: stage 1, stage 2 *on stage 1's output*, JPEG,
    ringing, resize to ``params.out_size``; clamped to ``[0, 1]`` (not rounded to the uint8 grid)."""
    out = hr.float()
    for stage in params.stages:
        out = apply_stage(out, stage, generator)
    if params.jpeg_quality is not None:
        out = jpeg(out.clamp(0, 1), params.jpeg_quality)
    if params.sinc is not None:
        out = blur(out, sinc_kernel(params.sinc.size, params.sinc.omega_c))
    if tuple(out.shape[-2:]) != params.out_size:
        out = resize(out, "bicubic", size=params.out_size)
    return out.clamp(0, 1)


def degrade(hr: torch.Tensor, generator: torch.Generator,
            settings: DePLSRSettings = DEPLSR) -> tuple[torch.Tensor, DePLSRParams]:
    """``hr (1, 3, H, W)`` float in ``[0, 1]`` -> ``(lq (1, 3, S, S), params)``; parameters are drawn
    first, then the noise fields, all from ``generator`` (same seed, same output)."""
    if not isinstance(hr, torch.Tensor) or hr.ndim != 4 or hr.shape[:2] != (1, 3) or not hr.is_floating_point():
        raise SrbenchError(f"hr must be a float tensor (1, 3, H, W), got {getattr(hr, 'shape', type(hr).__name__)}")
    lo, hi = float(hr.min()), float(hr.max())
    if not (lo >= 0 and hi <= 1):
        raise SrbenchError(f"hr must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    params = sample_params(generator, (int(hr.shape[-2]), int(hr.shape[-1])), settings)
    return degrade_with_params(hr, params, generator), params
