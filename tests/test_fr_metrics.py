"""PSNR and SSIM (iqa.fr): parity with BasicSR on real SR data, protocol behaviour, input checks.

The reference is BasicSR's own ``basicsr.metrics.psnr_ssim.calculate_psnr`` / ``calculate_ssim``
(``input_order='HWC'``, BGR uint8 images as BasicSR reads them) on the HR images against a bicubic
upscale of the MATLAB-bicubic LR images. Tolerances: 1e-4 dB for PSNR, 1e-5 for SSIM.
"""

from __future__ import annotations

import functools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import iqa
from iqa.color import rgb_to_y
from iqa.errors import SrbenchError, UnknownNameError
from iqa.fr import PSNR, SSIM, gaussian_kernel, psnr, rgb_to_y255, ssim

PSNR_TOL = 1e-4  # dB, against BasicSR
SSIM_TOL = 1e-5  # against BasicSR
URBAN_FAST = 20  # Urban100 images in the normal suite; the rest run under `slow`



# --- data ------------------------------------------------------------------------------------

def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def _bicubic_up(lr: np.ndarray, scale: int) -> np.ndarray:
    """HWC uint8 RGB -> upscaled by ``scale`` with torch bicubic, rounded to uint8."""
    t = torch.from_numpy(lr).permute(2, 0, 1)[None].to(torch.float32)
    up = F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)
    return up.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].to(torch.float32) / 255.0


def _dirs(root: str, dataset: str, scale: int) -> tuple[Path, Path]:
    base = Path(root) / dataset
    return base / ("HR" if dataset == "urban100" else f"HR_mod{scale}"), base / "LR_bicubic_matlab" / f"X{scale}"


@functools.lru_cache(maxsize=8)
def _pair(root: str, dataset: str, scale: int, name: str) -> tuple[str, np.ndarray, np.ndarray]:
    hr_dir, lr_dir = _dirs(root, dataset, scale)
    hr = _read_rgb(hr_dir / name)
    sr = _bicubic_up(_read_rgb(lr_dir / name), scale)
    assert sr.shape == hr.shape, (name, sr.shape, hr.shape)
    return name, sr, hr


def _pairs(root: str, dataset: str, scale: int, start: int = 0, stop: int | None = None):
    """(name, SR uint8 RGB, HR uint8 RGB) for the images ``start:stop`` of ``dataset`` at ``scale``."""
    hr_dir, _ = _dirs(root, dataset, scale)
    names = sorted(p.name for p in hr_dir.glob("*.png"))[start:stop]
    if not names:
        pytest.skip(f"no images in {hr_dir}")
    return [_pair(root, dataset, scale, n) for n in names]


@pytest.fixture(scope="module")
def basicsr_metrics():
    try:
        from basicsr.metrics import psnr_ssim
    except Exception as e:  # noqa: BLE001 - any import failure means: no reference
        pytest.skip(f"basicsr is not importable ({type(e).__name__}: {e})")
    return psnr_ssim


def _check_parity(psnr_ssim, pairs, scale: int, *, rgb_ssim: bool = True) -> tuple[float, float]:
    """Max |ours - BasicSR| over ``pairs`` for PSNR and SSIM, Y and RGB; asserts the tolerances."""
    psnr_m, ssim_m = PSNR(protocol="basicsr"), SSIM(protocol="basicsr")
    worst_p = worst_s = 0.0
    for name, sr, hr in pairs:
        sr_bgr, hr_bgr = sr[..., ::-1], hr[..., ::-1]  # BasicSR reads images with cv2: BGR
        x, ref = _to_tensor(sr), _to_tensor(hr)
        for y in (True, False):
            ref_p = psnr_ssim.calculate_psnr(sr_bgr, hr_bgr, scale, input_order="HWC", test_y_channel=y)
            ours_p = psnr(x, ref, crop_border=scale, y_channel=y).item()
            assert abs(ours_p - ref_p) < PSNR_TOL, (name, y, ours_p, ref_p)
            worst_p = max(worst_p, abs(ours_p - ref_p))
            if y or rgb_ssim:
                ref_s = psnr_ssim.calculate_ssim(sr_bgr, hr_bgr, scale, input_order="HWC", test_y_channel=y)
                ours_s = ssim(x, ref, crop_border=scale, y_channel=y).item()
                assert abs(ours_s - ref_s) < SSIM_TOL, (name, y, ours_s, ref_s)
                worst_s = max(worst_s, abs(ours_s - ref_s))
            if y:  # the default protocol is BasicSR's convention
                assert abs(psnr_m(x, ref, scale=scale).item() - ref_p) < PSNR_TOL, name
                assert abs(ssim_m(x, ref, scale=scale).item() - ref_s) < SSIM_TOL, name
    return worst_p, worst_s


# --- parity with BasicSR on real data ----------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("dataset", ["set5", "set14"])
def test_parity_basicsr_set5_set14(shared_data, basicsr_metrics, dataset, scale):
    pairs = _pairs(str(shared_data), dataset, scale)
    worst_p, worst_s = _check_parity(basicsr_metrics, pairs, scale)
    print(f"{dataset} x{scale}: max |dPSNR| {worst_p:.2e} dB, max |dSSIM| {worst_s:.2e}")


def test_border_2_metrics_and_protocol_match_basicsr_crop_border_2(shared_data, basicsr_metrics):
    # DePLSR's published x4 figures shave 2 px: psnr-b2 / ssim-b2 (in a run of any protocol) and the
    # protocol basicsr-b2 give BasicSR's calculate_psnr/ssim(crop_border=2, test_y_channel=True)
    pairs = _pairs(str(shared_data), "set5", 4)
    for name, sr, hr in pairs:
        x, ref = _to_tensor(sr), _to_tensor(hr)
        for metric, fn in (("psnr", basicsr_metrics.calculate_psnr), ("ssim", basicsr_metrics.calculate_ssim)):
            expected = fn(sr[..., ::-1], hr[..., ::-1], 2, input_order="HWC", test_y_channel=True)
            tol = PSNR_TOL if metric == "psnr" else SSIM_TOL
            assert abs(iqa.create_metric(f"{metric}-b2")(x, ref, scale=4).item() - expected) < tol, name
            assert abs(iqa.create_metric(metric, protocol="basicsr-b2")(x, ref, scale=4).item() - expected) < tol
            shave4 = iqa.create_metric(metric)(x, ref, scale=4).item()
            assert shave4 != pytest.approx(expected, abs=tol)  # the shave matters
    with pytest.raises(SrbenchError, match="crop_border"):
        iqa.create_metric("psnr", crop_border=-1)


def test_parity_basicsr_urban100_first(shared_data, basicsr_metrics):
    pairs = _pairs(str(shared_data), "urban100", 4, 0, URBAN_FAST)
    worst_p, worst_s = _check_parity(basicsr_metrics, pairs, 4)
    print(f"urban100 x4 (first {len(pairs)}): max |dPSNR| {worst_p:.2e} dB, max |dSSIM| {worst_s:.2e}")


@pytest.mark.slow
def test_parity_basicsr_urban100_rest(shared_data, basicsr_metrics):
    # Y and RGB PSNR and Y SSIM on the other 80 images (RGB SSIM, 3x the cost, only on the first 20)
    pairs = _pairs(str(shared_data), "urban100", 4, URBAN_FAST)
    worst_p, worst_s = _check_parity(basicsr_metrics, pairs, 4, rgb_ssim=False)
    print(f"urban100 x4 (other {len(pairs)}): max |dPSNR| {worst_p:.2e} dB, max |dSSIM| {worst_s:.2e}")


# Published "Bicubic" rows of the SR literature (MATLAB imresize upscale, Y channel, border =
# scale; e.g. the EDSR and RCAN papers). MATLAB rounds Y to uint8 before scoring and BasicSR does
# not, which accounts for the small gap (<= 0.015 dB, <= 0.0007 SSIM here; Urban100 x4 gives
# 23.141 / 0.6581 against the published 23.14 / 0.6577).
LITERATURE = {("set5", 2): (33.66, 0.9299), ("set5", 3): (30.39, 0.8682), ("set5", 4): (28.42, 0.8104)}


def _literature_check(shared_data, dataset, scale):
    resize = pytest.importorskip("iqa.resize")
    hr_dir, lr_dir = _dirs(str(shared_data), dataset, scale)
    psnr_m, ssim_m = iqa.create_metric("psnr"), iqa.create_metric("ssim")
    p, s = [], []
    for path in sorted(hr_dir.glob("*.png")):
        hr = torch.from_numpy(_read_rgb(path)).permute(2, 0, 1)[None]
        lr = torch.from_numpy(_read_rgb(lr_dir / path.name)).permute(2, 0, 1)[None]
        sr = resize.imresize(lr, scale)
        p.append(psnr_m(sr.float() / 255, hr.float() / 255, scale=scale).item())
        s.append(ssim_m(sr.float() / 255, hr.float() / 255, scale=scale).item())
    want_p, want_s = LITERATURE[(dataset, scale)]
    assert np.mean(p) == pytest.approx(want_p, abs=0.02)
    assert np.mean(s) == pytest.approx(want_s, abs=0.001)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_baseline_matches_literature_set5(shared_data, scale):
    _literature_check(shared_data, "set5", scale)


# --- an independent float64 reference (for environments without BasicSR) ----------------------

def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Direct 11x11 windowed SSIM of two 2-D float64 arrays (0..255), valid region."""
    from numpy.lib.stride_tricks import sliding_window_view

    g = gaussian_kernel().numpy()
    win = np.outer(g, g)

    def filt(v: np.ndarray) -> np.ndarray:
        return np.einsum("ijkl,kl->ij", sliding_window_view(v, (11, 11)), win)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = filt(a), filt(b)
    s11 = filt(a * a) - mu1**2
    s22 = filt(b * b) - mu2**2
    s12 = filt(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(m.mean())


def test_ssim_matches_direct_reference():
    gen = torch.Generator().manual_seed(3)
    base = torch.rand(1, 3, 8, 10, generator=gen)
    x = F.interpolate(base, size=(40, 52), mode="bilinear", align_corners=False)  # smooth
    ref = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    x, ref = iqa.quantize_uint8(x), iqa.quantize_uint8(ref)
    ya = (rgb_to_y255(x.double()))[0, 0].numpy()
    yb = (rgb_to_y255(ref.double()))[0, 0].numpy()
    assert ssim(x, ref).item() == pytest.approx(_ssim_reference(ya, yb), abs=1e-6)
    per_channel = [_ssim_reference(255 * x[0, c].double().numpy(), 255 * ref[0, c].double().numpy()) for c in range(3)]
    assert ssim(x, ref, y_channel=False).item() == pytest.approx(np.mean(per_channel), abs=1e-6)
    mse = float(((ya - yb) ** 2).mean())
    assert psnr(x, ref).item() == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-6)


def test_y_matches_colour_module():
    x = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(rgb_to_y255(x), rgb_to_y(x) * 255.0, atol=1e-4)
    g = gaussian_kernel()
    assert g.shape == (11,) and g.sum().item() == pytest.approx(1.0) and g.argmax().item() == 5


# --- basic properties --------------------------------------------------------------------------

def _rand_pair(b=2, h=48, w=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = iqa.quantize_uint8(torch.rand(b, 3, h, w, generator=gen))
    ref = iqa.quantize_uint8((x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1))
    return x, ref


def test_identical_images():
    x, _ = _rand_pair()
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()
    assert torch.isinf(psnr(x, x, y_channel=False)).all()
    assert torch.equal(ssim(x, x), torch.ones(2, dtype=torch.float64))
    assert torch.equal(ssim(x, x, y_channel=False), torch.ones(2, dtype=torch.float64))
    for name in ("psnr", "ssim"):
        for proto in ("basicsr", "rgb-noshave"):
            out = iqa.create_metric(name, protocol=proto)(x, x, scale=4)
            assert out.shape == (2,)
            assert (torch.isinf(out) if name == "psnr" else out == 1).all()


def test_output_shape_dtype_and_range():
    x, ref = _rand_pair(b=3)
    for fn in (psnr, ssim):
        out = fn(x, ref, crop_border=2)
        assert out.shape == (3,) and out.dtype == torch.float64 and out.device == x.device
    assert (ssim(x, ref) <= 1).all() and (ssim(x, ref) >= -1).all()
    assert (psnr(x, ref) > 0).all()


def test_batch_equals_singles():
    x, ref = _rand_pair(b=4, h=37, w=45, seed=5)
    for fn in (psnr, ssim):
        for y in (True, False):
            batch = fn(x, ref, crop_border=3, y_channel=y)
            singles = torch.cat([fn(x[i:i + 1], ref[i:i + 1], crop_border=3, y_channel=y) for i in range(4)])
            torch.testing.assert_close(batch, singles, rtol=0, atol=1e-9)
    for name in ("psnr", "ssim"):
        m = iqa.create_metric(name)
        singles = torch.cat([m(x[i:i + 1], ref[i:i + 1], scale=2) for i in range(4)])
        torch.testing.assert_close(m(x, ref, scale=2), singles, rtol=0, atol=1e-9)


def test_ssim_tiling_and_precision_do_not_change_the_score():
    x, ref = _rand_pair(b=2, h=90, w=70, seed=7)
    full = ssim(x, ref, precision=torch.float64, tile_rows=1000)
    for rows in (1, 7, 32):
        torch.testing.assert_close(ssim(x, ref, tile_rows=rows), full, rtol=0, atol=1e-6)
        torch.testing.assert_close(ssim(x, ref, precision=torch.float64, tile_rows=rows), full, rtol=0, atol=1e-12)


def test_ssim_float32_close_to_float64_on_real_image(shared_data):
    (_, sr, hr), = _pairs(str(shared_data), "urban100", 4, 0, 1)
    x, ref = _to_tensor(sr), _to_tensor(hr)
    for y in (True, False):
        d = ssim(x, ref, crop_border=4, y_channel=y) - ssim(x, ref, crop_border=4, y_channel=y, precision=torch.float64)
        assert d.abs().item() < 1e-6


def test_module_reuses_buffers_correctly():
    # the module keeps scratch buffers between calls: sizes changing up and down, batch sizes
    # changing, and concurrent calls must all give the functional results
    import threading

    cases = [_rand_pair(b=b, h=h, w=w, seed=i) for i, (b, h, w) in enumerate([(1, 64, 80), (2, 30, 41), (3, 90, 70),
                                                                              (1, 64, 80)])]
    for name, fn in (("psnr", psnr), ("ssim", ssim)):
        m = iqa.create_metric(name)
        for x, ref in cases + cases[::-1]:
            torch.testing.assert_close(m(x, ref, scale=2), fn(x, ref, crop_border=2), rtol=0, atol=1e-6)
        results: list[tuple[int, torch.Tensor]] = []

        def work(i: int, m=m, results=results) -> None:
            for _ in range(5):
                results.append((i, m(*cases[i], scale=2)))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, out in results:
            torch.testing.assert_close(out, fn(*cases[i], crop_border=2), rtol=0, atol=1e-6)


def test_ssim_precision_option():
    x, ref = _rand_pair(b=2, h=60, w=50, seed=8)
    m64 = iqa.create_metric("ssim", precision="float64")
    expected = ssim(x, ref, crop_border=3, precision=torch.float64)
    torch.testing.assert_close(m64(x, ref, scale=3), expected, rtol=0, atol=1e-8)  # k/255 in float32 vs k
    torch.testing.assert_close(iqa.create_metric("ssim")(x, ref, scale=3), expected, rtol=0, atol=1e-6)
    with pytest.raises(SrbenchError, match="precision"):
        iqa.create_metric("ssim", precision="half")
    with pytest.raises(SrbenchError, match="unknown option"):
        iqa.create_metric("psnr", precision="float64")


def test_module_copy_and_pickle():
    import copy
    import pickle

    x, ref = _rand_pair()
    for name in ("psnr", "ssim"):
        m = iqa.create_metric(name)
        expected = m(x, ref, scale=2)
        for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
            torch.testing.assert_close(clone(x, ref, scale=2), expected, rtol=0, atol=0)


def test_channels_last_and_other_dtypes():
    x, ref = _rand_pair(b=2, h=50, w=44, seed=4)
    variants = [
        (x.contiguous(memory_format=torch.channels_last), ref),
        (x, ref.contiguous(memory_format=torch.channels_last)),
        (x.double(), ref.double()),
        (x.half(), ref),  # half has its own values: compare with the same values in float32
    ]
    for a, b in variants:
        expected_p = psnr(a.float().contiguous(), b.float().contiguous(), crop_border=2)
        expected_s = ssim(a.float().contiguous(), b.float().contiguous(), crop_border=2)
        torch.testing.assert_close(psnr(a, b, crop_border=2), expected_p, rtol=0, atol=1e-5)
        torch.testing.assert_close(ssim(a, b, crop_border=2), expected_s, rtol=0, atol=1e-6)
        q = ssim(iqa.quantize_uint8(a.float()), iqa.quantize_uint8(b.float()), crop_border=2)  # module rounds
        torch.testing.assert_close(iqa.create_metric("ssim")(a, b, scale=2), q, rtol=0, atol=1e-6)


def test_crop_border_removes_the_border():
    x, ref = _rand_pair(h=40, w=40)
    # a border-only difference is invisible after the shave
    y = ref.clone()
    y[..., :3, :] = 1 - y[..., :3, :]
    y[..., :, -3:] = 0
    assert torch.isinf(psnr(y, ref, crop_border=3)).all()
    assert (ssim(y, ref, crop_border=3) == 1).all()
    assert torch.isfinite(psnr(y, ref, crop_border=2)).all()
    torch.testing.assert_close(psnr(x, ref, crop_border=5), psnr(x[..., 5:-5, 5:-5], ref[..., 5:-5, 5:-5]))
    torch.testing.assert_close(ssim(x, ref, crop_border=5), ssim(x[..., 5:-5, 5:-5], ref[..., 5:-5, 5:-5]))


# --- input checks --------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [psnr, ssim])
def test_input_errors(fn):
    x, ref = _rand_pair()
    with pytest.raises(SrbenchError, match="shape"):
        fn(x[:, :1], ref[:, :1])
    with pytest.raises(SrbenchError, match="float"):
        fn((x * 255).to(torch.uint8), ref)
    with pytest.raises(SrbenchError, match=r"\[0, 1\]"):
        fn(x * 2, ref)
    with pytest.raises(SrbenchError, match="same shape"):
        fn(x, ref[..., :-1])
    with pytest.raises(SrbenchError, match="torch.Tensor"):
        fn(x.numpy(), ref)
    for bad in (-1, 1.5, True, 24):
        with pytest.raises(SrbenchError, match="crop_border"):
            fn(x, ref, crop_border=bad)


def test_ssim_needs_an_11x11_image():
    x, ref = _rand_pair(h=12, w=30)
    assert ssim(x, ref).shape == (2,)
    with pytest.raises(SrbenchError, match="11x11"):
        ssim(x, ref, crop_border=1)
    with pytest.raises(SrbenchError, match="precision"):
        ssim(x, ref, precision=torch.float16)
    with pytest.raises(SrbenchError, match="tile_rows"):
        ssim(x, ref, tile_rows=0)


def test_module_errors():
    x, ref = _rand_pair()
    m = PSNR()
    with pytest.raises(SrbenchError, match="full-reference"):
        m(x)
    with pytest.raises(SrbenchError, match="scale"):
        m(x, ref, scale=0)
    with pytest.raises(SrbenchError, match="unknown option"):
        PSNR(border=4)
    with pytest.raises(SrbenchError, match="crop_border must be"):
        PSNR(crop_border=True)
    with pytest.raises(SrbenchError, match="unknown option"):
        iqa.create_metric("ssim", window=7)
    with pytest.raises(UnknownNameError, match="did you mean"):
        SSIM(protocol="basicsrr")
    with pytest.raises(SrbenchError, match="leave less than"):
        SSIM()(x[..., :20, :20], ref[..., :20, :20], scale=5)


# --- protocols ----------------------------------------------------------------------------------

def test_info_matches_catalogue():
    assert PSNR.info == iqa.metric_info("psnr")
    assert SSIM.info == iqa.metric_info("ssim")
    assert isinstance(iqa.create_metric("psnr"), PSNR) and isinstance(iqa.create_metric("ssim"), SSIM)


def test_protocol_basicsr_quantizes_crops_and_uses_y():
    gen = torch.Generator().manual_seed(11)
    x = torch.rand(2, 3, 40, 36, generator=gen)  # not on the uint8 grid
    ref = iqa.quantize_uint8(torch.rand(2, 3, 40, 36, generator=gen))
    q = iqa.quantize_uint8(x)
    for name, fn in (("psnr", psnr), ("ssim", ssim)):
        m = iqa.create_metric(name, protocol="basicsr")
        expected = fn(q, ref, crop_border=3, y_channel=True)
        torch.testing.assert_close(m(x, ref, scale=3), expected, rtol=0, atol=1e-6)
        assert (m(x, ref, scale=3) - fn(x, ref, crop_border=3)).abs().max() > 1e-6  # rounding matters
        rgb = iqa.create_metric(name, protocol="rgb-noshave")
        torch.testing.assert_close(rgb(x, ref, scale=3), fn(q, ref, y_channel=False), rtol=0, atol=1e-6)


def test_protocol_quantizes_ref_too():
    x, ref = _rand_pair()
    off_grid = (ref + 0.4 / 255).clamp(0, 1)  # rounds back to ref
    for name in ("psnr", "ssim"):
        m = iqa.create_metric(name)
        torch.testing.assert_close(m(x, off_grid, scale=2), m(x, ref, scale=2), rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def pyiqa_module():
    try:
        import pyiqa
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"pyiqa is not importable ({type(e).__name__}: {e})")
    return pyiqa


def test_protocol_pyiqa_returns_pyiqa_numbers(pyiqa_module):
    x, ref = _rand_pair(b=2, h=64, w=48, seed=2)
    x = (x + 0.3 / 255).clamp(0, 1)  # off the uint8 grid: the pyiqa protocol does not round
    for ours_name, theirs_name in (("psnr", "psnry"), ("ssim", "ssim")):
        theirs = pyiqa_module.create_metric(theirs_name, as_loss=False, device="cpu")
        with torch.no_grad():
            expected = theirs(x, ref).reshape(-1).to(torch.float64)
        ours = iqa.create_metric(ours_name, protocol="pyiqa")(x, ref, scale=4)
        assert ours.shape == (2,)
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    # and they differ from the BasicSR convention (YIQ luma, no shave, no rounding)
    assert (iqa.create_metric("psnr", protocol="pyiqa")(x, ref) - psnr(x, ref)).abs().max() > 1e-3


def test_import_is_cheap():
    code = ("import sys, iqa.fr, iqa.lpips, iqa.dists, iqa.weights; "
            "bad = [m for m in ('pyiqa', 'lpips', 'DISTS_pytorch', 'basicsr', 'cv2') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# --- CUDA ----------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x, ref = _rand_pair(b=3, h=96, w=80, seed=9)
    xc, rc = x.cuda(), ref.cuda()
    for fn in (psnr, ssim):
        for y in (True, False):
            out = fn(xc, rc, crop_border=2, y_channel=y)
            assert out.device.type == "cuda"
            # float32 SSIM: other tiles, other rounding (same tolerance as the BasicSR parity)
            torch.testing.assert_close(out.cpu(), fn(x, ref, crop_border=2, y_channel=y), rtol=0, atol=1e-5)
    for name in ("psnr", "ssim"):
        m = iqa.create_metric(name, device="cuda")
        torch.testing.assert_close(m(xc, rc, scale=4).cpu(), iqa.create_metric(name)(x, ref, scale=4), rtol=0, atol=1e-5)
    assert torch.isinf(psnr(xc, xc)).all() and (ssim(xc, xc) == 1).all()


def test_single_channel_images_are_scored_on_their_gray_level():
    """MATLAB applies rgb2ycbcr only to 3-channel images: a grayscale file is scored on its gray
    values, not on 16 + 219/255 * gray (which would add 20 log10(255/219) = 1.32 dB)."""
    import math

    from iqa import create_metric

    g = torch.Generator().manual_seed(3)
    ref = torch.randint(0, 256, (1, 1, 40, 48), generator=g).double() / 255
    x = (ref + torch.randn(1, 1, 40, 48, generator=g, dtype=torch.float64) * 0.03).clamp(0, 1)
    x = (x * 255).round() / 255
    mse = float((((x - ref) * 255)[..., 4:-4, 4:-4] ** 2).mean())
    expected = 10 * math.log10(255**2 / mse)
    x3, ref3 = x.expand(-1, 3, -1, -1).float(), ref.expand(-1, 3, -1, -1).float()
    metric = create_metric("psnr")
    assert abs(float(metric(x3, ref3, scale=4, gray=True)[0]) - expected) < 1e-4
    as_colour = float(metric(x3, ref3, scale=4)[0])
    assert abs(as_colour - expected - 20 * math.log10(255 / 219)) < 0.05
    ssim_gray = float(create_metric("ssim")(x3, ref3, scale=4, gray=True)[0])
    ssim_plane = float(create_metric("ssim", protocol="rgb-noshave")(x3[..., 4:-4, 4:-4], ref3[..., 4:-4, 4:-4])[0])
    assert abs(ssim_gray - ssim_plane) < 1e-6
