"""Tests for ``iqa.degrade``: kernels, noise, JPEG, the Real-ESRGAN pipeline, BD/DN, the key parser.

Independent evidence: moments and spectra of the kernels, values of BasicSR's published kernel
functions, Pillow's libjpeg for the JPEG round trip, and BD/DN recomputed here from their
definitions with ``iqa.resize.imresize``.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from iqa import degrade as D
from iqa.errors import SrbenchError, UnknownNameError
from iqa.resize import imresize
from tests.helpers import photo


def _img(h: int = 67, w: int = 83, seed: int = 0) -> torch.Tensor:
    """A real photograph crop as ``(1, 3, h, w)`` float32 on the uint8 grid."""
    return torch.from_numpy(photo(h, w, seed)).permute(2, 0, 1)[None].float() / 255


def _moments(k: torch.Tensor) -> tuple[float, float, float]:
    """Second moments (var_x along columns, var_y along rows, cov_xy) of a kernel."""
    k = k.double()
    n = k.shape[-1]
    ax = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    return float((k * x * x).sum()), float((k * y * y).sum()), float((k * x * y).sum())


def _on_grid(x: torch.Tensor) -> bool:
    return bool(((x * 255 - (x * 255).round()).abs() < 1e-4).all()) and float(x.min()) >= 0 and float(x.max()) <= 1


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("build", [
    lambda: D.gaussian_kernel(21, 3.0, 1.0, 0.4),
    lambda: D.gaussian_kernel(7, 0.2),
    lambda: D.generalized_gaussian_kernel(13, 2.0, 0.7, -1.1, beta=0.5),
    lambda: D.generalized_gaussian_kernel(9, 1.0, beta=4.0),
    lambda: D.plateau_kernel(15, 1.5, 0.4, 2.5, beta=2.0),
    lambda: D.plateau_kernel(11, 2.0, beta=1.0),
    lambda: D.sinc_kernel(21, math.pi / 5),
    lambda: D.sinc_kernel(7, math.pi),
])
def test_kernels_sum_to_one_and_are_point_symmetric(build):
    k = build()
    assert k.dtype == torch.float32 and k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert abs(float(k.double().sum()) - 1) < 1e-6
    assert torch.allclose(k, k.flip(0, 1), atol=1e-7)  # v -> -v leaves v^T S^-1 v (and r) unchanged


def test_isotropic_kernels_are_fully_symmetric():
    for k in (D.gaussian_kernel(11, 1.7), D.generalized_gaussian_kernel(11, 1.7, beta=2.5),
              D.plateau_kernel(11, 1.7, beta=1.5), D.sinc_kernel(11, 1.3)):
        assert torch.allclose(k, k.T, atol=1e-7) and torch.allclose(k, k.flip(0), atol=1e-7)
        assert int(k.argmax()) == (11 * 11) // 2  # the peak is the centre


def test_gaussian_matches_the_closed_form():
    k = D.gaussian_kernel(9, 1.3).double()
    ax = torch.arange(9, dtype=torch.float64) - 4
    g = torch.exp(-ax**2 / (2 * 1.3**2))
    ref = torch.outer(g, g) / torch.outer(g, g).sum()
    assert torch.allclose(k, ref, atol=1e-7)


def test_anisotropic_rotation():
    k0 = D.gaussian_kernel(21, 3.0, 1.0, 0.0)
    vx, vy, cxy = _moments(k0)
    assert vx > 4 * vy and abs(cxy) < 1e-6  # sigma_x acts along the columns (x) at theta = 0
    k90 = D.gaussian_kernel(21, 3.0, 1.0, math.pi / 2)
    assert torch.allclose(k90, k0.T, atol=1e-7)  # a quarter turn swaps the axes
    k45 = D.gaussian_kernel(21, 3.0, 1.0, math.pi / 4)
    assert torch.allclose(k45, k45.T, atol=1e-7)
    _, _, c45 = _moments(k45)
    assert c45 > 1.0  # rotating x towards +y: mass along the x = y diagonal
    _, _, cm45 = _moments(D.gaussian_kernel(21, 3.0, 1.0, -math.pi / 4))
    assert cm45 < -1.0
    # swapping the sigmas equals a quarter turn
    assert torch.allclose(D.gaussian_kernel(21, 1.0, 3.0, 0.0), k90, atol=1e-7)


def test_generalized_with_beta_one_is_the_gaussian_and_beta_shapes_the_tails():
    g = D.gaussian_kernel(15, 2.0, 1.2, 0.6)
    assert torch.allclose(D.generalized_gaussian_kernel(15, 2.0, 1.2, 0.6, beta=1.0), g, atol=1e-7)
    # beta > 1: flatter top and lighter tails than the Gaussian; beta < 1: sharper peak, heavier tails
    ks = [D.generalized_gaussian_kernel(15, 2.0, beta=0.5), D.gaussian_kernel(15, 2.0),
          D.generalized_gaussian_kernel(15, 2.0, beta=4.0)]
    near = [float(k[7, 8] / k[7, 7]) for k in ks]
    far = [float(k[7, 13] / k[7, 7]) for k in ks]
    assert near[0] < near[1] < near[2] and far[0] > far[1] > far[2]
    p = D.plateau_kernel(15, 2.0, beta=2.0)
    row = p[7, 7:]
    assert bool((row[1:] <= row[:-1]).all())  # decreasing away from the centre


def test_sinc_cut_off_in_the_spectrum():
    n = 256
    f = torch.fft.fftfreq(n, dtype=torch.float64) * 2 * math.pi
    fy, fx = torch.meshgrid(f, f, indexing="ij")
    r = torch.sqrt(fx**2 + fy**2)
    for wc in (math.pi / 2, math.pi / 4):
        spec = torch.fft.fft2(D.sinc_kernel(21, wc).double(), s=(n, n)).abs()
        assert float(spec[r < 0.7 * wc].min()) > 0.8  # pass band
        assert float(spec[(r > 1.3 * wc) & (r < math.pi)].max()) < 0.15  # stop band
        assert abs(float(spec[(r - wc).abs() < 0.05].mean()) - 0.5) < 0.1  # half amplitude at omega_c


def test_sinc_padding_and_centre_value():
    k = D.sinc_kernel(7, 1.0, pad_to=21)
    assert k.shape == (21, 21) and float(k[:7].abs().sum()) == 0 and float(k[:, -7:].abs().sum()) == 0
    inner = k[7:14, 7:14]
    assert torch.equal(inner, D.sinc_kernel(7, 1.0))
    # unnormalised centre omega^2/(4 pi) vs the value at r = 1, omega J1(omega)/(2 pi)
    from scipy.special import j1

    assert abs(float(inner[3, 3] / inner[3, 4]) - (1.0 / (4 * math.pi)) / (j1(1.0) / (2 * math.pi))) < 1e-5


# values of BasicSR 1.4.2's published kernel functions (basicsr.data.degradations: bivariate_Gaussian,
# bivariate_generalized_Gaussian, bivariate_plateau with isotropic=False, and circular_lowpass_kernel),
# size 9, sigma_x 2.5, sigma_y 0.8, theta 0.7, beta 0.6 (generalized) / 1.7 (plateau), omega_c 1.1,
# at these (row, column) positions; kept as numbers so that the test needs no BasicSR import (~5 s)
_BASICSR_AT = [(4, 4), (4, 5), (3, 5), (5, 3), (1, 6), (0, 0), (8, 2)]
_BASICSR = {
    "gaussian": [0.08160712072, 0.05631079466, 0.01728121198, 0.01728121198, 3.551227842e-06, 0.005358384296,
                 2.883002391e-08],
    "generalized": [0.04944058472, 0.03254801753, 0.01843220824, 0.01843220824, 0.002401319556, 0.01240809173,
                    0.001077786699],
    "plateau": [0.09889520699, 0.06172430583, 0.0125799664, 0.0125799664, 0.0005993246561, 0.005249146069,
                0.0003089099263],
    "sinc": [0.09611085791, 0.08228878757, 0.06982548631, 0.06982548631, -0.00257131138, -0.007026980776,
             -0.01240416858],
}


def test_kernels_match_basicsr_published_values():
    ours = {
        "gaussian": D.gaussian_kernel(9, 2.5, 0.8, 0.7),
        "generalized": D.generalized_gaussian_kernel(9, 2.5, 0.8, 0.7, beta=0.6),
        "plateau": D.plateau_kernel(9, 2.5, 0.8, 0.7, beta=1.7),
        "sinc": D.sinc_kernel(9, 1.1),
    }
    for name, k in ours.items():
        got = [float(k[i, j]) for i, j in _BASICSR_AT]
        np.testing.assert_allclose(got, _BASICSR[name], rtol=1e-6, atol=1e-9, err_msg=name)


# ---------------------------------------------------------------------------------------------
# image operations
# ---------------------------------------------------------------------------------------------

def test_blur_identity_and_constant_images():
    x = _img(20, 24)
    delta = torch.zeros(5, 5)
    delta[2, 2] = 1
    assert torch.equal(D.blur(x, delta), x)
    grey = torch.full((2, 3, 9, 9), 0.25)
    assert torch.allclose(D.blur(grey, D.gaussian_kernel(21, 2.0)), grey, atol=1e-6)  # replicate fallback
    per_image = torch.stack([delta, D.gaussian_kernel(5, 1.0)])
    out = D.blur(torch.cat([x, x]), per_image)
    assert torch.equal(out[0], x[0]) and not torch.equal(out[1], x[0])


def test_gaussian_noise_std_and_gray():
    x = torch.full((1, 3, 64, 64), 0.5)
    n = D.add_gaussian_noise(x, 0.05, generator=1) - x
    assert abs(float(n.std()) - 0.05) < 0.003
    assert not torch.equal(n[0, 0], n[0, 1])
    g = D.add_gaussian_noise(x, 0.05, gray=True, generator=1) - x
    assert torch.equal(g[0, 0], g[0, 1]) and torch.equal(g[0, 0], g[0, 2])


def test_poisson_noise_scale_and_gray():
    # all 256 levels present -> vals = 256: on the grey part the noise is Poisson(256 q) / 256 - q
    x = torch.full((1, 3, 64, 64), 128 / 255)
    x[0, :, :4] = (torch.arange(256, dtype=torch.float32) / 255).view(4, 64)
    n = (D.add_poisson_noise(x, 1.0, generator=0) - x)[..., 8:, :]
    assert abs(float(n.std()) - math.sqrt(128 / 255 / 256)) < 0.003
    assert abs(float(n.mean())) < 0.002
    half = (D.add_poisson_noise(x, 0.5, generator=0) - x)[..., 8:, :]
    assert torch.allclose(half, n * 0.5, atol=1e-6)  # the same draws, scaled
    one_level = torch.full((1, 3, 64, 64), 128 / 255)  # vals = 1: Poisson(q) - q, clamped to {0, 1}
    assert set((D.add_poisson_noise(one_level, 1.0, generator=0) * 255).round().unique().tolist()) == {0.0, 255.0}
    g = D.add_poisson_noise(_img(32, 32), 2.0, gray=True, generator=3) - _img(32, 32)
    inside = (_img(32, 32) > 0.1) & (_img(32, 32) < 0.9)
    assert torch.allclose(g[0, 0][inside.all(1)[0]], g[0, 1][inside.all(1)[0]], atol=1e-6)


def test_jpeg_is_close_to_pillow_libjpeg():
    img = photo(128, 128, 3)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255

    def psnr(a, b):
        return 10 * math.log10(1 / float(((a - b) ** 2).mean()))

    prev = None
    for q in (30, 60, 95):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=q)
        ref = torch.from_numpy(np.array(Image.open(buf))).permute(2, 0, 1)[None].float() / 255
        ours = D.jpeg(x, q)
        assert ours.shape == x.shape and float(ours.min()) >= 0 and float(ours.max()) <= 1
        assert psnr(ours, ref) > 38  # same quantisation as libjpeg; only chroma up-sampling and rounding differ
        assert abs(psnr(ours, x) - psnr(ref, x)) < 1.5
        assert prev is None or psnr(ours, x) > prev  # higher quality, less distortion
        prev = psnr(ours, x)
    odd = _img(13, 29)
    out = D.jpeg(torch.cat([odd, odd]), [30.5, 90.0])  # odd sizes, float quality, one per image
    assert out.shape == (2, 3, 13, 29) and not torch.equal(out[0], out[1])
    assert torch.equal(D.jpeg(odd, 50), D.jpeg(odd, 50))


def test_usm_sharpen():
    flat = torch.full((1, 3, 40, 40), 0.3)
    assert torch.allclose(D.usm_sharpen(flat), flat, atol=1e-6)
    edge = torch.zeros(1, 3, 40, 40)
    edge[..., 20:] = 0.6
    out = D.usm_sharpen(edge)
    assert float(out[..., 21].mean()) > 0.6 and float(out[..., 18].mean()) == 0  # overshoot, clamped at 0


# ---------------------------------------------------------------------------------------------
# Real-ESRGAN
# ---------------------------------------------------------------------------------------------

def _in(v: float, lo: float, hi: float) -> bool:
    return lo - 1e-12 <= v <= hi + 1e-12


def _check_kernel(k: D.KernelParams, sigma_hi: float, kinds: Counter) -> None:
    assert k.size in range(7, 22, 2)
    kinds[k.kind] += 1
    if k.kind == "sinc":
        assert _in(k.omega_c, math.pi / 3 if k.size < 13 else math.pi / 5, math.pi)
        return
    assert k.kind in D.KERNEL_KINDS
    assert _in(k.sigma_x, 0.2, sigma_hi) and _in(k.sigma_y, 0.2, sigma_hi)
    if k.kind.endswith("aniso"):
        assert _in(k.theta, -math.pi, math.pi)
    else:
        assert k.sigma_x == k.sigma_y and k.theta == 0.0
    if k.kind.startswith("generalized"):
        assert _in(k.beta, 0.5, 4.0)
    elif k.kind.startswith("plateau"):
        assert _in(k.beta, 1.0, 2.0)
    else:
        assert k.beta is None


def test_realesrgan_parameter_ranges_and_frequencies():
    n = 300
    deg = D.RealESRGAN(4)
    g = torch.Generator().manual_seed(2021)
    kinds: Counter = Counter()
    c: Counter = Counter()
    plateau_betas = []
    for _ in range(n):
        p = deg.sample_params(g)
        for st, sig_hi, probs, (r_lo, r_hi), noise_hi, pois_hi in [
                (p.stage1, 3.0, "1", (0.15, 1.5), 30, 3.0), (p.stage2, 1.5, "2", (0.3, 1.2), 25, 2.5)]:
            if st.kernel is None:
                c[f"noblur{probs}"] += 1
            else:
                _check_kernel(st.kernel, sig_hi, kinds)
                if st.kernel.kind.startswith("plateau"):
                    plateau_betas.append(st.kernel.beta)
            c[f"{st.resize}{probs}"] += 1
            assert {"up": _in(st.resize_scale, 1, r_hi), "down": _in(st.resize_scale, r_lo, 1),
                    "keep": st.resize_scale == 1}[st.resize]
            assert st.resize_mode in ("area", "bilinear", "bicubic")
            c[st.resize_mode] += 1
            c[f"{st.noise}{probs}"] += 1
            assert _in(st.noise_level, 1, noise_hi) if st.noise == "gaussian" else _in(st.noise_level, 0.05, pois_hi)
            c[f"gray{probs}"] += st.gray_noise
        assert p.stage1.kernel is not None and _in(p.stage1.jpeg_quality, 30, 95) and p.stage2.jpeg_quality is None
        f = p.final
        c["resize_first"] += f.resize_first
        assert f.resize_mode in ("area", "bilinear", "bicubic") and _in(f.jpeg_quality, 30, 95)
        if f.sinc is not None:
            c["final_sinc"] += 1
            assert f.sinc.kind == "sinc" and f.sinc.size in range(7, 22, 2) and _in(f.sinc.omega_c, math.pi / 3, math.pi)

    def near(count: float, total: float, p: float, tol: float) -> None:
        assert abs(count / total - p) < tol, (count, total, p)

    near(c["noblur2"], n, 0.2, 0.07)
    for probs, (up, down, keep) in (("1", (0.2, 0.7, 0.1)), ("2", (0.3, 0.4, 0.3))):
        near(c[f"up{probs}"], n, up, 0.08)
        near(c[f"down{probs}"], n, down, 0.08)
        near(c[f"keep{probs}"], n, keep, 0.08)
        near(c[f"gaussian{probs}"], n, 0.5, 0.09)
        near(c[f"gray{probs}"], n, 0.4, 0.09)
    for mode in ("area", "bilinear", "bicubic"):
        near(c[mode], 2 * n, 1 / 3, 0.07)
    near(c["resize_first"], n, 0.5, 0.09)
    near(c["final_sinc"], n, 0.8, 0.07)
    blurs = sum(kinds.values())
    near(kinds["sinc"], blurs, 0.1, 0.04)
    non_sinc = blurs - kinds["sinc"]
    for kind, prob in zip(D.KERNEL_KINDS, (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)):
        near(kinds[kind], non_sinc, prob, 0.06)
    # the published beta rule for plateau kernels ([1, 2]): U[1, 1] = 1 or U[1, 2], each with prob 0.5
    near(sum(b == 1.0 for b in plateau_betas), len(plateau_betas), 0.5, 0.2)


def test_realesrgan_is_deterministic_per_seed():
    x = _img()
    deg = D.parse("realesrgan-x4")
    _, lr = deg.apply(x, 11)
    assert torch.equal(lr, deg.apply(x, 11)[1])
    assert not torch.equal(lr, deg.apply(x, 12)[1])
    assert torch.equal(lr, deg.apply(x, torch.Generator().manual_seed(11))[1])
    _, lr2, params = deg.apply_with_params(x, 11)
    assert torch.equal(lr2, lr) and params == [deg.sample_params(11)]
    assert isinstance(params[0].as_dict()["stage1"]["kernel"], dict)


def test_realesrgan_batches_and_seed_forms():
    x = torch.cat([_img(40, 44, 0), _img(40, 44, 1)])
    deg = D.RealESRGAN(2)
    _, lr = deg.apply(x, 5)
    assert torch.equal(lr[0:1], deg.apply(x[0:1], 5)[1])  # image i uses seed + i
    assert torch.equal(lr[1:2], deg.apply(x[1:2], 6)[1])
    _, lr_seq = deg.apply(x, [9, 4])
    assert torch.equal(lr_seq[1:2], deg.apply(x[1:2], 4)[1])


@pytest.mark.parametrize("scale", [2, 4, 8, 16])
def test_realesrgan_shapes_and_grid(scale):
    x = _img(67, 83, scale)  # odd sizes, cropped to a multiple of the scale
    deg = D.parse(f"realesrgan-x{scale}")
    assert deg.key == f"realesrgan-x{scale}" and deg.scale == scale
    for seed in range(2):
        hr, lr = deg.apply(x, seed)
        assert hr.shape == (1, 3, 67 - 67 % scale, 83 - 83 % scale) and torch.equal(hr, x[..., : hr.shape[2], : hr.shape[3]])
        assert lr.shape == (1, 3, 67 // scale, 83 // scale) and lr.dtype == torch.float32
        assert _on_grid(lr)


def test_realesrgan_tiny_image_and_usm_option():
    tiny = _img(16, 17)
    assert D.RealESRGAN(16).apply(tiny, 0)[1].shape == (1, 3, 1, 1)
    sharp = D.RealESRGAN(4, D.RealESRGANSettings(name="realesrgan-usm", usm_input=True))
    assert sharp.key == "realesrgan-usm-x4"
    x = _img(32, 32)
    assert not torch.equal(sharp.apply(x, [1])[1], D.RealESRGAN(4).apply(x, [1])[1])
    with pytest.raises(SrbenchError, match="name of their own"):
        D.RealESRGAN(4, D.RealESRGANSettings(usm_input=True))


# ---------------------------------------------------------------------------------------------
# BD and DN
# ---------------------------------------------------------------------------------------------

def _explicit_blur(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    k = torch.from_numpy(g / g.sum())
    p = size // 2
    xp = F.pad(x.double(), (p, p, p, p), mode="replicate")
    return F.conv2d(xp.reshape(-1, 1, *xp.shape[-2:]), k[None, None]).reshape(x.shape)


def test_bdn_equals_explicit_gaussian_then_matlab_bicubic():
    x = _img(67, 83, 5)
    for scale in (2, 3, 4):
        hr, lr = D.parse(f"bdn-x{scale}").apply(x)
        ref = imresize(_explicit_blur(hr, 7, 1.6).clamp(0, 1), 1 / scale, kernel="cubic", mode="matlab").float()
        assert hr.shape[-2] % scale == 0 and lr.shape == (1, 3, 67 // scale, 83 // scale)
        assert torch.equal(lr, ref) and _on_grid(lr)
    # RDN's BD script: blur, then take every third pixel starting at the second
    _, lr3 = D.BlurDown(3, downsample="nearest").apply(x)
    blurred = _explicit_blur(x[..., :66, :81], 7, 1.6)
    assert torch.equal(lr3, ((blurred * 255).round() / 255).float()[..., 1::3, 1::3])
    assert D.parse("bdn-x4").sample_params(0) == D.BDParams(7, 1.6, "bicubic")


def test_dn_noise_level_and_reproducibility():
    grey = torch.full((1, 3, 128, 128), 128 / 255)
    deg = D.parse("dn-x2")
    _, lr = deg.apply(grey, 3)
    assert lr.shape == (1, 3, 64, 64) and _on_grid(lr)
    assert abs(float((lr - 128 / 255).std()) * 255 - 30) < 1.0
    assert abs(float((lr - 128 / 255).mean()) * 255) < 1.0
    assert torch.equal(lr, deg.apply(grey, 3)[1]) and not torch.equal(lr, deg.apply(grey, 4)[1])
    # the noise sits on MATLAB's bicubic LR, rounded half away from zero
    x = _img(40, 48)
    _, lr = deg.apply(x, 0)
    clean = imresize(x, 0.5, kernel="cubic", mode="matlab").double() * 255
    noise = torch.randn((3, 20, 24), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(lr, (torch.floor(clean.round() + 30 * noise + 0.5).clamp(0, 255) / 255).float())


# ---------------------------------------------------------------------------------------------
# keys and errors
# ---------------------------------------------------------------------------------------------

def test_parse_keys():
    assert isinstance(D.parse("realesrgan-x4"), D.RealESRGAN)
    assert D.parse(" BDN-X3 ") == D.BlurDown(3)
    assert D.parse("dn-x8") == D.DownNoise(8)
    assert D.parse("x4") is None and D.parse("real-x2") is None  # bench's own keys
    assert D.BlurDown(3, downsample="nearest").key == "bdn-x3:downsample=nearest"
    assert D.DownNoise(4, sigma=15).key == "dn-x4:sigma=15"


@pytest.mark.parametrize("call, match", [
    (lambda: D.parse("bdx-x4"), "did you mean 'bdn-x4'"),
    (lambda: D.parse("realesrgan"), "unknown degradation"),
    (lambda: D.parse(4), "must be a string"),
    (lambda: D.parse("realesrgan-x0"), "scale must be >= 1"),
    (lambda: D.RealESRGAN(0), "scale must be an int >= 1"),
    (lambda: D.BlurDown(2.5), "scale must be an int >= 1"),
    (lambda: D.RealESRGAN(4).apply(torch.rand(3, 32, 32)), r"shape \(B, 3, H, W\), got \(3, 32, 32\)"),
    (lambda: D.RealESRGAN(4).apply(torch.rand(1, 1, 32, 32)), r"got \(1, 1, 32, 32\)"),
    (lambda: D.DownNoise(4).apply(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)), "dtype torch.uint8"),
    (lambda: D.BlurDown(4).apply(torch.full((1, 3, 32, 32), 2.0)), r"values in \[2, 2\]"),
    (lambda: D.RealESRGAN(4).apply([[0.5]]), "got list"),
    (lambda: D.RealESRGAN(8).apply(torch.rand(1, 3, 7, 32)), "smaller than the scale x8"),
    (lambda: D.RealESRGAN(4).apply(torch.rand(1, 3, 8, 8), -1), "seed must be an int"),
    (lambda: D.RealESRGAN(4).apply(torch.rand(2, 3, 8, 8), [1]), "1 seeds for a batch of 2"),
    (lambda: D.gaussian_kernel(8, 1.0), "odd int"),
    (lambda: D.gaussian_kernel(7, 0.0), "sigma_x must be > 0"),
    (lambda: D.sinc_kernel(7, float("nan")), "finite"),
    (lambda: D.jpeg(torch.rand(1, 3, 8, 8), 101), r"quality must lie in \[1, 100\]"),
    (lambda: D.resize(torch.rand(1, 3, 8, 8), "lanczos", size=(4, 4)), "unknown resize mode"),
])
def test_errors_are_one_line(call, match):
    with pytest.raises(SrbenchError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_unknown_key_is_a_key_error_with_suggestions():
    with pytest.raises(UnknownNameError) as info:
        D.parse("realesrgan_x4")
    assert "realesrgan-x4" in str(info.value)


def test_import_stays_light():
    code = ("import sys, iqa; print('iqa.degrade' in sys.modules); import iqa.degrade; "
            "print([m for m in ('scipy', 'cv2', 'torchvision', 'basicsr') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "[]"]
