"""Opt-in timings of PSNR-Y + SSIM-Y (run with ``python -m pytest -m perf tests/perf -p no:cacheprovider``).

Urban100 x4: the 100 HR images (about 1024x768) against the bicubic upscale of their MATLAB LR
images, preloaded (decoding excluded), with BasicSR's settings (Y channel, uint8 images, border of 4
shaved). Three implementations on the same images: ours (``iqa.fr`` modules, protocol ``basicsr``),
BasicSR's numpy ``calculate_psnr``/``calculate_ssim``, and pyiqa's ``psnry``/``ssim`` (with
``crop_border=4``; pyiqa's SSIM takes seconds per image on CPU, so it runs on the first
``PYIQA_IMAGES`` images only). ``test_speed_ratio`` times all three in one run, interleaved image
by image so that a busy machine slows all of them alike, prints ms/image and asserts that ours is
at least ``MIN_RATIO`` times faster than each.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("pytest_benchmark")

from iqa.fr import PSNR, SSIM

pytestmark = pytest.mark.perf

SCALE = 4
PYIQA_IMAGES = 10
MIN_RATIO = 5.0


def _read(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)[None].contiguous()


def _upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """uint8 (1, 3, h, w) -> uint8 upscaled: MATLAB bicubic when iqa.resize exists, else torch bicubic."""
    try:
        from iqa.resize import imresize
    except ImportError:
        up = F.interpolate(lr.float(), scale_factor=scale, mode="bicubic", align_corners=False)
        return up.round().clamp(0, 255).to(torch.uint8)
    return imresize(lr, scale)


@pytest.fixture(scope="module")
def urban100(shared_data: Path) -> list[dict]:
    hr_dir = shared_data / "urban100" / "HR"
    lr_dir = shared_data / "urban100" / "LR_bicubic_matlab" / f"X{SCALE}"
    pairs = []
    for path in sorted(hr_dir.glob("*.png")):
        hr = _read(path)
        sr = _upscale(_read(lr_dir / path.name), SCALE)
        assert sr.shape == hr.shape, path.name
        pairs.append({
            # our inputs: float RGB in [0, 1], NCHW-contiguous (see test_speed_ratio for channels-last)
            "sr": (sr.float() / 255).contiguous(), "hr": (hr.float() / 255).contiguous(),
            # BasicSR's inputs: uint8 HWC BGR, as its cv2-based loaders give them
            "sr_bgr": np.ascontiguousarray(sr[0].permute(1, 2, 0).numpy()[..., ::-1]),
            "hr_bgr": np.ascontiguousarray(hr[0].permute(1, 2, 0).numpy()[..., ::-1]),
        })
    if not pairs:
        pytest.skip(f"no images in {hr_dir}")
    return pairs


def _ours():
    psnr_m, ssim_m = PSNR(protocol="basicsr"), SSIM(protocol="basicsr")

    def run(p):
        return psnr_m(p["sr"], p["hr"], scale=SCALE), ssim_m(p["sr"], p["hr"], scale=SCALE)
    return run


def _basicsr():
    try:
        from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"basicsr is not importable ({e})")

    def run(p):
        return (calculate_psnr(p["sr_bgr"], p["hr_bgr"], SCALE, input_order="HWC", test_y_channel=True),
                calculate_ssim(p["sr_bgr"], p["hr_bgr"], SCALE, input_order="HWC", test_y_channel=True))
    return run


def _pyiqa():
    pyiqa = pytest.importorskip("pyiqa")
    psnr_m = pyiqa.create_metric("psnry", as_loss=False, device="cpu", crop_border=SCALE)
    ssim_m = pyiqa.create_metric("ssim", as_loss=False, device="cpu", crop_border=SCALE)

    def run(p):
        with torch.no_grad():
            return psnr_m(p["sr"], p["hr"]), ssim_m(p["sr"], p["hr"])
    return run


def _loop(run, pairs):
    for p in pairs:
        run(p)


def test_bench_ours(benchmark, urban100):
    run = _ours()
    benchmark.pedantic(_loop, args=(run, urban100), rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["images"] = len(urban100)


def test_bench_basicsr(benchmark, urban100):
    run = _basicsr()
    benchmark.pedantic(_loop, args=(run, urban100), rounds=1, iterations=1)
    benchmark.extra_info["images"] = len(urban100)


def test_bench_pyiqa(benchmark, urban100):
    run = _pyiqa()
    pairs = urban100[:PYIQA_IMAGES]
    benchmark.pedantic(_loop, args=(run, pairs), rounds=1, iterations=1)
    benchmark.extra_info["images"] = len(pairs)


def test_speed_ratio(urban100, capsys):
    impls = {"ours": _ours(), "basicsr": _basicsr(), "pyiqa": _pyiqa()}
    for run in impls.values():  # warm-up (first-call allocations, lazy imports)
        run(urban100[0])
    times: dict[str, list[float]] = {k: [] for k in impls}
    for i, p in enumerate(urban100):
        for name, run in impls.items():
            if name == "pyiqa" and i >= PYIQA_IMAGES:
                continue
            t0 = time.perf_counter()
            run(p)
            times[name].append(time.perf_counter() - t0)

    def ms(name: str, n: int | None = None) -> float:
        v = times[name][:n]
        return 1000.0 * sum(v) / len(v)

    # informational: the same images as channels-last tensors (what torch.from_numpy(hwc).permute
    # gives, e.g. bench.run.io); base.check_images then costs more (min/max copy such tensors)
    run = impls["ours"]
    cl = [{"sr": p["sr"].contiguous(memory_format=torch.channels_last),
           "hr": p["hr"].contiguous(memory_format=torch.channels_last)} for p in urban100[:PYIQA_IMAGES * 2]]
    run(cl[0])
    t0 = time.perf_counter()
    for p in cl:
        run(p)
    cl_ms = 1000.0 * (time.perf_counter() - t0) / len(cl)

    ours_all, ours_sub = ms("ours"), ms("ours", PYIQA_IMAGES)
    ratio_basicsr = ms("basicsr") / ours_all
    ratio_pyiqa = ms("pyiqa") / ours_sub
    with capsys.disabled():
        print(f"\nPSNR-Y + SSIM-Y, Urban100 x4, torch threads {torch.get_num_threads()}:"
              f"\n  ours    {ours_all:8.1f} ms/image ({len(times['ours'])} images)"
              f"\n  BasicSR {ms('basicsr'):8.1f} ms/image ({len(times['basicsr'])} images) -> {ratio_basicsr:.1f}x"
              f"\n  pyiqa   {ms('pyiqa'):8.1f} ms/image ({len(times['pyiqa'])} images; ours on them "
              f"{ours_sub:.1f} ms) -> {ratio_pyiqa:.1f}x"
              f"\n  ours, channels-last inputs {cl_ms:.1f} ms/image ({len(cl)} images)")
    assert ratio_basicsr >= MIN_RATIO, f"only {ratio_basicsr:.2f}x faster than BasicSR"
    assert ratio_pyiqa >= MIN_RATIO, f"only {ratio_pyiqa:.2f}x faster than pyiqa"
