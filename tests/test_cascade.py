"""cascade:A+B: stages run one after the other at their fixed scales, with the product scale."""

from __future__ import annotations

import pytest
import torch

import sr_methods
from iqa.errors import SrbenchError, UnknownNameError
from tests.helpers import tiny_spandrel_checkpoint


def test_cascade_equals_its_stages_run_by_hand(tmp_path):
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny_x4.pth", scale=4)
    name = f"cascade:spandrel:{ckpt}-x4+bicubic-x2"
    m = sr_methods.create_method(name)
    assert m.scales == (8,) and sr_methods.method_info(name)["scales"] == (8,)
    lr = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    first = sr_methods.create_method(f"spandrel:{ckpt}").upscale(lr, 4)
    want = sr_methods.create_method("bicubic").upscale(first, 2)
    got = m.upscale(lr, 8)
    assert got.shape == (2, 3, 72, 56) and torch.equal(got, want)
    # the stages' weights are in the provenance, so a changed checkpoint reruns the cascade's cells
    from bench.run.runner import sha256_values
    from iqa.assets import sha256_file

    assert sha256_file(ckpt) in sha256_values(m.provenance())


def test_single_scale_catalogue_names_need_no_suffix():
    info = sr_methods.method_info("cascade:esrgan-thick-x4+esrgan-thick-x4")
    assert info["scales"] == (16,) and info["assets"] == ("esrgan-thick-x4",) and info["kind"] == "cascade"
    assert sr_methods.method_info("cascade:esrgan-thick-x8+bicubic-x2")["scales"] == (16,)


@pytest.mark.parametrize("name, what", [
    ("cascade:bicubic", "two or more methods"),
    ("cascade:bicubic++nearest-x2", "two or more methods"),
    ("cascade:bicubic+nearest-x2", "runs at several scales; name one as bicubic-xN"),
    ("cascade:esrgan-thick-x5+bicubic-x2", "supports x2, x3, x4, x8"),
    ("cascade:cascade:bicubic-x2+bicubic-x2", "cannot nest"),
])
def test_bad_cascades_are_one_line_errors(name, what):
    with pytest.raises(SrbenchError, match=what):
        sr_methods.method_info(name)


def test_unknown_stage_gets_a_suggestion():
    with pytest.raises(UnknownNameError, match="did you mean 'bicubic'"):
        sr_methods.create_method("cascade:bicubc-x2+nearest-x2")
    with pytest.raises(SrbenchError, match="unknown option"):
        sr_methods.create_method("cascade:bicubic-x2+nearest-x2", tile=64)


def test_cascade_runs_in_the_harness_at_x16(tmp_path):
    from bench.run.runner import Runner
    from bench.run.spec import MethodSpec, RunSpec
    from bench.run.store import load_scores

    s = RunSpec(datasets=("demo",), scales=(8, 16), metrics=("psnr",), limit=2,
                methods=(MethodSpec("cascade:bicubic-x4+bicubic-x4", "bicubic-x4x4"), MethodSpec("bicubic", "bicubic")))
    lines: list[str] = []
    Runner(s, tmp_path / "r", echo=lines.append, progress=False).run()
    df = load_scores(tmp_path / "r")
    casc = df[df["method"] == "bicubic-x4x4"]
    assert set(casc[casc["degradation"] == "x8"]["status"]) == {"unsupported"}
    ok = casc[casc["degradation"] == "x16"]
    assert len(ok) == 2 and (ok["status"] == "ok").all()
    one = df[(df["method"] == "bicubic") & (df["degradation"] == "x16")].set_index("image")["value"]
    assert (ok.set_index("image")["value"] != one).all()  # two x4 steps are not one x16 step
