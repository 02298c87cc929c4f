"""Leaderboard tables: bootstrap intervals, best marks, paired differences, circularity, formats,
and run comparison."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.report import leaderboard as R
from bench.report.compare import compare_markdown, compare_runs
from bench.report.stats import bootstrap_ci, bootstrap_mean, paired_difference, unpaired_difference


def rows(method, dataset, scale, metric, values, status="ok", message=""):
    return [{"dataset": dataset, "degradation": f"x{scale}", "scale": scale, "method": method, "image": f"img{i}",
             "metric": metric, "value": v, "protocol": "basicsr", "status": status, "message": message}
            for i, v in enumerate(values)]


def frame(*parts) -> pd.DataFrame:
    return pd.DataFrame([r for p in parts for r in p])


# -- statistics ---------------------------------------------------------------------------------------

def test_bootstrap_interval_agrees_with_scipy_and_the_normal_approximation():
    from scipy import stats

    x = np.random.default_rng(1).normal(30.0, 2.0, size=100)
    lo, hi = bootstrap_ci(x, n_boot=20000)
    ref = stats.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95,
                          random_state=np.random.default_rng(7)).confidence_interval
    se = x.std(ddof=1) / math.sqrt(x.size)
    # independent resamples: the end points agree within Monte-Carlo error (a tenth of a standard error)
    assert abs(lo - ref.low) < 0.1 * se and abs(hi - ref.high) < 0.1 * se
    assert abs(lo - (x.mean() - 1.96 * se)) < 0.15 * se and abs(hi - (x.mean() + 1.96 * se)) < 0.15 * se
    assert bootstrap_ci(x) == bootstrap_ci(x)  # seeded
    assert bootstrap_ci([3.0]) == (3.0, 3.0) and all(math.isnan(v) for v in bootstrap_ci([]))
    assert bootstrap_mean([1.0, float("nan"), 3.0]).n == 2


def test_paired_difference_finds_a_small_consistent_gain_that_unpaired_misses():
    rng = np.random.default_rng(0)
    base = rng.normal(28, 3, 50)
    a = {f"i{k}": v + 0.1 + rng.normal(0, 0.02) for k, v in enumerate(base)}
    b = {f"i{k}": v for k, v in enumerate(base)}
    paired = paired_difference(a, b)
    assert paired.excludes_zero and abs(paired.mean - 0.1) < 0.01 and paired.n == 50
    unpaired = unpaired_difference(list(a.values()), list(b.values()))
    assert not unpaired.excludes_zero and abs(unpaired.mean - paired.mean) < 1e-12
    assert paired_difference({"x": 1.0}, {"y": 1.0}) is None


# -- leaderboards ---------------------------------------------------------------------------------------

@pytest.fixture()
def scores():
    rng = np.random.default_rng(3)
    base = rng.normal(28, 2, 6)
    return frame(
        rows("bicubic", "set5", 2, "psnr", base), rows("bicubic", "set5", 4, "psnr", base - 3),
        rows("good", "set5", 2, "psnr", base + 1), rows("good", "set5", 4, "psnr", base - 3 + 0.5),
        rows("x4only", "set5", 4, "psnr", base - 2),
        [{"dataset": "set5", "degradation": "x2", "scale": 2, "method": "x4only", "image": "*", "metric": "*",
          "value": math.nan, "protocol": "basicsr", "status": "unsupported", "message": "x4only supports x4, not x2"}],
        rows("flaky", "set5", 2, "psnr", base[:4] + 0.2),
        [{"dataset": "set5", "degradation": "x2", "scale": 2, "method": "flaky", "image": "img5", "metric": "*",
          "value": math.nan, "protocol": "basicsr", "status": "error", "message": "img5.png: truncated"}],
        rows("bicubic", "set5", 2, "lpips", rng.uniform(0.2, 0.3, 6)),
        rows("clipguided", "set5", 2, "lpips", rng.uniform(0.1, 0.2, 6)),
    )


def test_cells_means_intervals_best_and_statuses(scores):
    lbs = R.build_leaderboards(scores, [{"spec": {"methods": [{"label": m} for m in
                                                              ("bicubic", "good", "x4only", "flaky", "clipguided")],
                                                  "datasets": ["set5"], "metrics": ["psnr", "lpips"]}}])
    psnr, lpips = lbs
    assert [lb.metric for lb in lbs] == ["psnr", "lpips"] and psnr.direction == "higher is better"
    x2, x4 = ("set5", "x2", 2), ("set5", "x4", 4)
    good = psnr.cell("good", x2)
    vals = scores[(scores.method == "good") & (scores.scale == 2)]["value"]
    assert good.interval.mean == pytest.approx(vals.mean()) and good.best and good.status == "ok"
    assert (good.interval.lo, good.interval.hi) == pytest.approx(bootstrap_ci(vals.to_numpy()))
    assert psnr.cell("x4only", x2).status == "unsupported" and not psnr.cell("x4only", x2).has_value
    assert psnr.cell("x4only", x4).best  # base - 2 beats base - 2.5 and base - 3
    flaky = psnr.cell("flaky", x2)
    assert flaky.status == "partial" and flaky.n_failed == 1 and flaky.interval.n == 4
    assert psnr.cell("clipguided", x2).status == "not run"
    # paired difference against bicubic: +1 exactly on every image (zero-width interval)
    assert good.vs_ref.mean == pytest.approx(1.0) and good.vs_ref.excludes_zero
    assert R.verdict(psnr, good.vs_ref) == "better" and psnr.cell("bicubic", x2).vs_ref is None
    assert lpips.direction == "lower is better" and lpips.cell("clipguided", x2).best
    assert R.verdict(lpips, lpips.cell("clipguided", x2).vs_ref) == "better"


def test_circularity_flag_when_method_and_metric_share_a_backbone(scores):
    manifests = [{"weights": {"clipguided": {"backbone": "AlexNet"}, "bicubic": {"backbone": None}}, "spec": {}}]
    lpips = [lb for lb in R.build_leaderboards(scores, manifests) if lb.metric == "lpips"][0]
    assert lpips.cell("clipguided", ("set5", "x2", 2)).circular
    assert not lpips.cell("bicubic", ("set5", "x2", 2)).circular
    assert "†" in R.to_markdown(lpips) and r"$^{\dagger}$" in R.to_latex(lpips)
    psnr = R.build_leaderboards(scores, manifests)[0]
    assert not any(c.circular for c in psnr.cells.values())  # PSNR has no backbone
    assert R._norm_backbone("clip:ViT-B-16/openai") == R._norm_backbone("vit_b_16") == "vit-b-16"


def test_markdown_latex_and_csv(scores):
    psnr = R.build_leaderboards(scores)[0]
    md = R.to_markdown(psnr)
    assert "| x4only | unsupported |" in md and "**" in md and md.split("| flaky |")[1].split("|")[0].strip().endswith("]*")
    tex = R.to_latex(psnr)
    assert tex.count(r"\toprule") == 1 and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\multicolumn{2}{c}{set5}" in tex and r"\textit{unsupported}" in tex and r"\textbf{" in tex
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    assert all(line.count("&") == 2 for line in body.strip().splitlines())  # method + 2 columns
    assert R.tex_escape("a_b&c%<d>") == r"a\_b\&c\%\textless{}d\textgreater{}"
    long = R.to_csv_long([psnr])
    row = long[(long.method == "good") & (long.scale == 2)].iloc[0]
    assert row["best"] and row["significant"] and row["n_images"] == 6 and row["diff_vs_reference"] == pytest.approx(1)
    un = long[(long.method == "x4only") & (long.scale == 2)].iloc[0]
    assert un["status"] == "unsupported" and math.isnan(un["mean"])


# -- real runs ----------------------------------------------------------------------------------------

def _run(tmp_path, name, methods, scales=(2, 4)):
    from bench.run.runner import Runner
    from bench.run.spec import MethodSpec, RunSpec

    spec = RunSpec(("demo",), scales, tuple(MethodSpec(m, m) for m in methods), ("psnr", "ssim"))
    Runner(spec, tmp_path / name, echo=lambda s: None, progress=False).run()
    return tmp_path / name


def test_report_and_compare_from_real_runs(tmp_path):
    old = _run(tmp_path, "old", ("bicubic", "nearest"))
    new = _run(tmp_path, "new", ("bicubic", "nearest", "lanczos"))
    text = R.render([old], tmp_path / "rep")
    assert "## PSNR (higher is better)" in text and "Paired difference against bicubic" in text
    assert "nearest" in text and "## Provenance" in text and "git " in text
    for f in ("leaderboard.md", "leaderboard.tex", "leaderboard.csv", "scores.csv", "leaderboard_psnr.csv"):
        assert (tmp_path / "rep" / f).is_file(), f
    cmp = compare_runs(old, new)
    same = cmp[(cmp.method == "bicubic") & (cmp.metric == "psnr")]
    assert len(same) == 2 and (same["delta"] == 0).all() and (same["change"] == "same").all()
    added = cmp[cmp.method == "lanczos"]
    assert set(added["change"]) == {"absent -> ok"} or set(added["old_status"]) == {"absent"}
    md = compare_markdown(cmp, old, new)
    assert "| demo | x2 | lanczos | absent |" in md


def test_perception_axes_are_nr_metrics_and_lower_is_better_fr_metrics():
    # the report draws PSNR against each of these (NR metrics in either direction)
    assert [m for m in ("psnr", "ssim", "lpips", "dists", "niqe", "sfd-iqa-vgg16", "no-such-metric")
            if R._perceptual(m)] == ["lpips", "dists", "niqe", "sfd-iqa-vgg16"]
