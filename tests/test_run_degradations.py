"""Degradations in the harness: families crossed with scales, full keys, one LR per (image, key)."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.run.degradations import degradation_keys, derive_seed, parse_degradation
from bench.run.runner import Runner
from bench.run.spec import MethodSpec, RunSpec
from bench.run.store import load_scores
from iqa.errors import SrbenchError


def test_families_cross_scales_and_keys_are_kept():
    assert degradation_keys((), (2, 4), False) == ["x2", "x4"]
    assert degradation_keys((), (4,), True) == ["real-x4"]
    assert degradation_keys(("bicubic", "realesrgan", "dn-x8", "x2"), (2, 4), False) == \
        ["x2", "x4", "realesrgan-x2", "realesrgan-x4", "dn-x8"]
    s = RunSpec.from_dict({"datasets": ["demo"], "methods": ["bicubic"], "degradations": ["realesrgan-x4", "x16"]})
    assert s.scales == () and s.degradations == ("realesrgan-x4", "x16")


@pytest.mark.parametrize("degs, scales, what", [
    (("realesrgn",), (4,), "did you mean 'realesrgan'"),
    (("realesrgan-x4x",), (4,), "unknown degradation"),
    (("realesrgan",), (), "needs at least one entry in 'scales'"),
    (("bdn", "bdn"), (4,), "degradation 'bdn' is given twice"),
])
def test_bad_degradations_are_one_line_errors(degs, scales, what):
    with pytest.raises(SrbenchError, match=what):
        RunSpec(datasets=("demo",), scales=scales, methods=(MethodSpec("bicubic", "bicubic"),), degradations=degs)


def test_a_run_with_realesrgan_bdn_and_dn(tmp_path):
    s = RunSpec(datasets=("demo",), scales=(4,), limit=2, metrics=("psnr",),
                methods=(MethodSpec("bicubic", "bicubic"), MethodSpec("nearest", "nearest")),
                degradations=("bicubic", "realesrgan", "bdn", "dn"))
    Runner(s, tmp_path / "a", echo=lambda _: None, progress=False).run()
    Runner(s, tmp_path / "b", echo=lambda _: None, progress=False).run()
    a, b = load_scores(tmp_path / "a"), load_scores(tmp_path / "b")
    pd.testing.assert_frame_equal(a, b)  # seeded: the same table twice
    assert set(a["degradation"]) == {"x4", "realesrgan-x4", "bdn-x4", "dn-x4"} and (a["status"] == "ok").all()
    assert set(a["scale"]) == {4}
    psnr = a[a.method == "bicubic"].groupby("degradation")["value"].mean()
    assert psnr["x4"] > psnr["bdn-x4"] and psnr["x4"] > psnr["dn-x4"] and psnr["x4"] > psnr["realesrgan-x4"]
    # one LR per (image, key), from the seed rule, shared by every method
    from bench.run.datasets import Dataset
    from bench.run.io import read_image

    item = sorted(Dataset("demo").items(4), key=lambda it: it.id)[0]
    deg = parse_degradation("realesrgan-x4")
    _, lr = deg.apply(read_image(item.hr)[None], seed=derive_seed(0, item.id, deg.key))
    from iqa.base import quantize_uint8

    cached = read_image(tmp_path / "a" / "lr" / "demo" / "realesrgan-x4" / f"{item.id}.png")[None]
    assert (quantize_uint8(lr) - cached).abs().max() < 1e-6
