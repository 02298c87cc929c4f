"""The few-shot adaptation protocol (bench.run.adapt): the draw, LR-only adaptation, the kept
adapted weights, the unadapted reference on the same images, and the spec/CLI forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tests.helpers import paired_manifest, photo, tiny_clip, tiny_spandrel_checkpoint, tiny_train_root
from PIL import Image

from bench.run.adapt import AdaptSpec, pick_shots, reference_label
from bench.run.runner import Runner
from bench.run.spec import MethodSpec, RunSpec
from bench.run.store import load_cells, load_scores
from iqa.errors import SrbenchError

LABEL = "ioda-tiny"
REF = reference_label(LABEL)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A tiny spandrel x4 network, a tiny CLIP backbone and a data root with train/ (source data)."""
    root = tmp_path_factory.mktemp("adapt")
    config, weights = tiny_clip(root / "clip")
    return {"net": tiny_spandrel_checkpoint(root / "tiny.pth", scale=4), "config": config, "weights": weights,
            "train": tiny_train_root(root / "data", 64, 48)}


def _pairs(tmp_path, monkeypatch, n=4, garbage_hr=False) -> Path:
    folder = paired_manifest(tmp_path, monkeypatch, "adapt-pairs", [4], 4, data="pairs")
    for i in range(n):
        hr = photo(48, 40, seed=i)
        if garbage_hr:
            (folder / f"im{i}_HR.png").write_bytes(b"not an image: reading me raises")
        else:
            Image.fromarray(hr).save(folder / f"im{i}_HR.png")
        Image.fromarray(hr[::4, ::4]).save(folder / f"im{i}_LR4.png")
    return tmp_path / "pairs"


def _spec(parts, data: Path, datasets=("adapt-pairs",), shots=1, steps=2, **kw) -> RunSpec:
    ioda = MethodSpec("ioda", LABEL, {"base": f"spandrel:{parts['net']}", "backbone": str(parts["config"]),
                                      "backbone_weights": str(parts["weights"]), "crop": 8, "instances": "grid",
                                      "lr": 1e-3}, AdaptSpec(shots, steps, 0))
    return RunSpec(datasets=datasets, scales=(4,), methods=(MethodSpec("bicubic", "bicubic"), ioda),
                   metrics=("psnr",), data_root=f"{data}:{parts['train']}", device="cpu", **kw)


def _run(spec: RunSpec, out: Path) -> list[str]:
    lines: list[str] = []
    Runner(spec, out, echo=lines.append, progress=False, fetch=False).run()
    return lines


def _images(df: pd.DataFrame, method: str) -> set[str]:
    return set(df.loc[df["method"] == method, "image"])


def test_shots_are_drawn_by_seed_whatever_the_order():
    ids = [f"im{i}" for i in range(10)]
    a = pick_shots(ids, 3, 0, "urban100", "x8")
    assert a == pick_shots(list(reversed(ids)), 3, 0, "urban100", "x8") and len(set(a)) == 3 and a == sorted(a)
    assert a != pick_shots(ids, 3, 1, "urban100", "x8") or a != pick_shots(ids, 3, 0, "urban100", "x16")
    with pytest.raises(SrbenchError, match="leave no image of d x4 to score"):
        pick_shots(["a", "b"], 2, 0, "d", "x4")


def test_adapt_spec_is_checked():
    assert AdaptSpec.parse({"shots": 5, "steps": 10}) == AdaptSpec(5, 10, 0)
    for bad, msg in (({"shots": 0, "steps": 1}, "shots must be an integer >= 1"), ({"steps": 1}, "missing"),
                     ({"shots": 1, "steps": 1, "lr": 2}, "unknown keys"), (3, "must be a table")):
        with pytest.raises(SrbenchError, match=msg):
            AdaptSpec.parse(bad)
    m = MethodSpec.parse({"name": "ioda", "base": "craft-x4", "adapt": {"shots": 1, "steps": 3}})
    assert m.adapt == AdaptSpec(1, 3, 0) and m.options == {"base": "craft-x4"}
    assert m.to_dict()["adapt"] == {"shots": 1, "steps": 3, "seed": 0} and "adapt" not in MethodSpec("a", "a").to_dict()


def test_adaptation_never_reads_target_hr(tmp_path, monkeypatch, parts):
    """HR files that raise on any read: the method still adapts (on exactly the LR files), and only
    the scoring of each image fails, as an input error row."""
    from sr_methods.ioda.method import IODAMethod

    data = _pairs(tmp_path, monkeypatch, garbage_hr=True)
    seen = []
    real = IODAMethod.adapt

    def spy(self, lr_images, **kw):
        seen.append([x.clone() for x in lr_images])
        return real(self, lr_images, **kw)

    monkeypatch.setattr(IODAMethod, "adapt", spy)
    _run(_spec(parts, data), tmp_path / "run")
    cells = {c["method"]: c for c in load_cells(tmp_path / "run")}
    rec = cells[LABEL]["adaptation"]
    assert "error" not in rec and rec["steps"] == 2 and len(rec["shots"]) == 1
    (shot,) = rec["shots"]
    lr_file = data / "adapt-pairs" / "Test" / "4" / f"{shot}_LR4.png"
    want = torch.from_numpy(np.array(Image.open(lr_file))).permute(2, 0, 1).float() / 255
    assert len(seen) == 1 and torch.equal(seen[0][0][0], want)
    df = load_scores(tmp_path / "run")
    rows = df[df["method"] == LABEL]
    assert set(rows["status"]) == {"error"} and set(rows["cause"]) == {"input"} and shot not in set(rows["image"])
    assert (tmp_path / "run" / rec["weights"]).is_file()


def test_reference_scores_the_same_images_and_the_record_is_complete(tmp_path, monkeypatch, parts):
    data = _pairs(tmp_path, monkeypatch)
    lines = _run(_spec(parts, data), tmp_path / "run")
    df = load_scores(tmp_path / "run")
    cells = {c["method"]: c for c in load_cells(tmp_path / "run")}
    rec = cells[LABEL]["adaptation"]
    rest = {f"im{i}" for i in range(4)} - set(rec["shots"])
    assert _images(df, LABEL) == _images(df, REF) == rest and _images(df, "bicubic") == rest | set(rec["shots"])
    assert cells[REF]["adaptation"]["reference_of"] == LABEL and cells[REF]["adaptation"]["shots"] == rec["shots"]
    from iqa.assets import sha256_file

    assert rec["sha256"] == sha256_file(tmp_path / "run" / rec["weights"]) and rec["seconds"] > 0
    assert rec["source"]["sets"] == ["t91"] and rec["source"]["images"] == 3 and rec["scored"] == 3
    assert set(df["status"]) == {"ok"} and any("adapting on" in line for line in lines)
    psnr = df[df["metric"] == "psnr"].pivot(index="image", columns="method", values="value")
    assert (psnr[LABEL] != psnr[REF]).any()  # the adapted network is another network
    # the report: the record, and the gain over the same images (against the reference; the base,
    # a spandrel file, is not in the run)
    from bench.report.leaderboard import build, markdown

    rep = build([tmp_path / "run"])
    assert rep.leaderboards[0].methods == ["bicubic", LABEL, REF]
    (gain,) = rep.adaptation_gains
    diff = (psnr[LABEL] - psnr[REF]).dropna()
    assert gain["against"] == REF and gain["n"] == 3 and gain["delta"] == pytest.approx(float(diff.mean()), abs=1e-12)
    assert gain["lo"] <= gain["delta"] <= gain["hi"]
    text = markdown(rep)
    assert "## Few-shot adaptation" in text and rec["sha256"][:16] in text and ", ".join(rec["shots"]) in text
    assert any("scored on the images left after the adaptation draw" in n for n in rep.notes)
    from bench.report.leaderboard import write_report

    write_report([tmp_path / "run"], tmp_path / "report", plots=False, echo=lambda s: None)
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Few-shot adaptation" in page and rec["sha256"][:16] in page


def test_resume_after_kill_keeps_the_adapted_weights(tmp_path, monkeypatch, parts):
    """Killed while scoring the adapted method: the rerun loads the kept weights (no adaptation) and
    ends with the scores of an uninterrupted run."""
    from bench.run import runner as runner_mod
    from sr_methods.ioda.method import IODAMethod

    data = _pairs(tmp_path, monkeypatch)
    _run(_spec(parts, data), tmp_path / "whole")
    real = runner_mod.Runner._run_cell

    def killed(self, cell, fp, ds, deg, items, method, dev, metrics, bad, ctx, extra=None):
        if ctx["method"] == LABEL:
            raise KeyboardInterrupt
        return real(self, cell, fp, ds, deg, items, method, dev, metrics, bad, ctx, extra)

    with monkeypatch.context() as m:
        m.setattr(runner_mod.Runner, "_run_cell", killed)
        with pytest.raises(KeyboardInterrupt):
            _run(_spec(parts, data), tmp_path / "killed")
    assert list((tmp_path / "killed" / "adapted").rglob("*.safetensors"))

    def never(self, *a, **kw):
        raise AssertionError("adapted again")

    monkeypatch.setattr(IODAMethod, "adapt", never)
    lines = _run(_spec(parts, data), tmp_path / "killed")
    assert any("not adapting again" in line for line in lines)
    cols = ["method", "image", "metric", "value"]
    a = load_scores(tmp_path / "whole")[cols].sort_values(cols[:3]).reset_index(drop=True)
    b = load_scores(tmp_path / "killed")[cols].sort_values(cols[:3]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    # a finished run reruns nothing at all
    lines = _run(_spec(parts, data), tmp_path / "killed")
    assert sum("(cached)" in line for line in lines) == 3


def test_synthetic_lr_comes_from_the_run_cache(tmp_path, monkeypatch, parts):
    from bench.run.io import read_image
    from sr_methods.ioda.method import IODAMethod

    seen = []
    real = IODAMethod.adapt

    def spy(self, lr_images, **kw):
        seen.append(lr_images[0].clone())
        return real(self, lr_images, **kw)

    monkeypatch.setattr(IODAMethod, "adapt", spy)
    _run(_spec(parts, tmp_path, datasets=("demo",), limit=3), tmp_path / "run")
    (shot,) = next(c for c in load_cells(tmp_path / "run") if c["method"] == LABEL)["adaptation"]["shots"]
    cached = read_image(tmp_path / "run" / "lr" / "demo" / "x4" / f"{shot}.png").unsqueeze(0)
    assert torch.equal(seen[0], cached)


def test_too_many_shots_is_unsupported_and_non_adaptive_methods_refuse(tmp_path, monkeypatch, parts):
    from bench.run.runner import validate_names

    data = _pairs(tmp_path, monkeypatch, n=2)
    _run(_spec(parts, data, shots=2), tmp_path / "run")
    df = load_scores(tmp_path / "run")
    for label in (LABEL, REF):
        rows = df[df["method"] == label]
        assert set(rows["status"]) == {"unsupported"} and "leave no image" in rows["message"].iloc[0]
    bad = RunSpec(datasets=("demo",), scales=(4,), methods=(MethodSpec("bicubic", "bicubic", {}, AdaptSpec(1, 1)),))
    with pytest.raises(SrbenchError, match="'bicubic' cannot adapt"):
        validate_names(bad)


def test_cli_adapt_flags_apply_to_the_methods_that_adapt():
    from bench.cli import _csv, _spec_from_args, build_parser

    assert _csv("bicubic,ioda[base=craft-x4,crop=64], x") == ["bicubic", "ioda[base=craft-x4,crop=64]", "x"]
    args = build_parser().parse_args(["run", "--datasets", "demo", "--scales", "4", "--methods",
                                      "bicubic,ioda[base=craft-x4,crop=48]", "--adapt-shots", "1",
                                      "--adapt-steps", "5"])
    spec = _spec_from_args(args)
    assert [m.adapt for m in spec.methods] == [None, AdaptSpec(1, 5, 0)]
    for argv, msg in ((["--adapt-shots", "1"], "go together"), (["--adapt-shots", "1", "--adapt-steps", "2"],
                                                               "none of the methods")):
        args = build_parser().parse_args(["run", "--datasets", "demo", "--scales", "4", "--methods", "bicubic",
                                          *argv])
        with pytest.raises(SrbenchError, match=msg):
            _spec_from_args(args)
    assert json.loads(json.dumps(spec.to_dict()))["methods"][1]["adapt"] == {"shots": 1, "steps": 5, "seed": 0}


def test_gain_table_has_one_column_per_metric_and_no_interval_from_one_image():
    from bench.report.adaptation import gain_table

    rows = [{"dataset": "d", "degradation": "x4", "method": "m", "against": "m (unadapted)", "n": n, "metric": metric,
             "adapted": 30.0, "other": 29.9, "delta": 0.1, "lo": 0.05, "hi": 0.15, "verdict": "better"}
            for n, metric in ((5, "psnr"), (5, "ssim"), (1, "lpips"))]
    header, body = gain_table(rows)
    assert header == ["dataset", "degradation", "method", "vs", "n", "psnr", "ssim", "lpips"]
    assert body[0][:6] == ["d", "x4", "m", "m (unadapted)", "5", "+0.100 [+0.050, +0.150] better"]
    assert body[1][-1] == "+0.100 (1 image)" and body[1][5:7] == ["", ""] and len(body) == 2


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).parents[1] / "examples" / "adapt").glob("*.toml")))
def test_the_example_adaptation_specs_are_valid(name):
    from bench.run.runner import validate_names

    spec = RunSpec.from_toml(Path(__file__).parents[1] / "examples" / "adapt" / f"{name}.toml")
    assert any(m.adapt is not None for m in spec.methods)
    validate_names(spec)  # names, options, adapt on adaptive methods only (datasets may be absent here)


def test_signed_differences_never_print_minus_zero():
    from bench.report.leaderboard import NumFormat

    assert [NumFormat(3)(v, True) for v in (-0.0001, -0.0006, 0.0, 0.2, -1.5)] == ["+0.000", "-0.001", "+0.000",
                                                                                "+0.200", "-1.500"]
