"""Evaluation of no-reference metrics: iqa.correlation and bench.nr.eval (``srbench iqa eval``).

Toy NR metrics with known behaviour stand in for the real ones (NIQE's asset is missing in
tests): the variance of the Laplacian (sharpness: more blur -> lower), its negation declared
lower-is-better, and a constant."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import scipy.stats as st
import torch

import iqa
from bench.nr.eval import (DISTORTIONS, add_eval_parser, apply_distortion, center_crop, cmd_eval,
                            evaluate_on_database, evaluate_opinion_free, gaussian_blur, jpeg_roundtrip)
from iqa.base import Metric, MetricInfo
from iqa.correlation import correlations, fit_logistic, krcc, logistic, orient, plcc, plcc_logistic, srcc
from iqa.errors import SrbenchError


class LapVar(Metric):
    """Sharpness: variance of the Laplacian of the luma (higher is better)."""

    info = MetricInfo("lapvar", "nr", True, (0.0, math.inf), "variance of the Laplacian")

    def __init__(self, protocol=None):
        super().__init__()

    def score(self, x, ref=None, *, scale=1, gray=False):
        g = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
        k = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=x.dtype, device=x.device).view(1, 1, 3, 3)
        return torch.nn.functional.conv2d(g, k).flatten(1).var(dim=1).double()


class Blurriness(LapVar):
    """The same ordering, declared lower-is-better: orientation must make it agree."""

    info = MetricInfo("blurriness", "nr", False, (-math.inf, 0.0), "minus the Laplacian variance")

    def score(self, x, ref=None, *, scale=1, gray=False):
        return -super().score(x, scale=scale)


class Constant(Metric):
    info = MetricInfo("constant", "nr", True, (0.0, 1.0), "always 0.5")

    def __init__(self, protocol=None):
        super().__init__()

    def score(self, x, ref=None, *, scale=1, gray=False):
        return torch.full((x.shape[0],), 0.5, dtype=torch.float64)


def quiet(lines):
    return lines.append


# ---------------------------------------------------------------------------------------------
# iqa.correlation


def test_coefficients_match_scipy_with_ties_and_nan():
    rng = np.random.default_rng(3)
    x = rng.normal(size=300)
    y = 0.6 * x + rng.normal(size=300)
    x[::5] = np.round(x[::5])  # ties
    y[::7] = np.round(y[::7])
    assert srcc(x, y) == pytest.approx(st.spearmanr(x, y).statistic, abs=1e-12)
    assert krcc(x, y) == pytest.approx(st.kendalltau(x, y).statistic, abs=1e-12)
    assert plcc(x, y) == pytest.approx(st.pearsonr(x, y).statistic, abs=1e-12)
    xn, yn = x.copy(), y.copy()
    xn[3], yn[10], xn[20] = np.nan, np.nan, np.inf  # pairs with NaN/inf are dropped
    keep = np.isfinite(xn) & np.isfinite(yn)
    assert srcc(xn, yn) == pytest.approx(st.spearmanr(x[keep], y[keep]).statistic, abs=1e-12)
    assert krcc(xn, yn) == pytest.approx(st.kendalltau(x[keep], y[keep]).statistic, abs=1e-12)
    assert plcc(xn, yn) == pytest.approx(st.pearsonr(x[keep], y[keep]).statistic, abs=1e-12)
    c = correlations(xn, yn, n_boot=50)
    assert c["n"] == 297 and c["n_dropped"] == 3
    with pytest.raises(SrbenchError, match="same length"):
        srcc([1, 2, 3], [1, 2])


def test_undefined_correlations_are_nan_not_errors():
    for f in (srcc, krcc, plcc, plcc_logistic):
        assert math.isnan(f(np.ones(10), np.arange(10)))
        assert math.isnan(f([1.0], [2.0]))
    c = correlations(np.full(20, 3.0), np.arange(20), n_boot=100)
    assert all(math.isnan(c[k]) for k in ("srcc", "srcc_lo", "krcc", "plcc", "plcc_logistic"))
    assert "constant scores" in c["note"]
    assert orient([1.0, 2.0], False).tolist() == [-1.0, -2.0] and orient([1.0, 2.0], True).tolist() == [1.0, 2.0]
    assert srcc(orient([3, 2, 1], False), [1, 2, 3]) == pytest.approx(1.0)


def test_logistic_fit_recovers_known_parameters():
    rng = np.random.default_rng(0)
    b = (4.5, 1.2, 0.3, 0.6)
    x = rng.uniform(-2.5, 3.0, 600)
    y = logistic(x, *b) + rng.normal(scale=0.03, size=x.size)
    fit = fit_logistic(x, y)
    assert fit.ok and fit.message == ""
    assert fit.params[0] == pytest.approx(b[0], rel=0.02) and fit.params[1] == pytest.approx(b[1], rel=0.05)
    assert fit.params[2] == pytest.approx(b[2], abs=0.03) and abs(fit.params[3]) == pytest.approx(b[3], rel=0.05)
    assert fit.plcc > plcc(x, y) and fit.plcc == pytest.approx(plcc(fit.predict(x), y), abs=1e-12)
    # a decreasing relation keeps its sign, as SRCC does
    assert plcc_logistic(-x, y) == pytest.approx(-fit.plcc, abs=1e-6)


def test_logistic_fit_failure_falls_back_to_raw_plcc_and_says_so():
    fit = fit_logistic([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert not fit.ok and fit.params is None and "at least 5 pairs" in fit.message
    assert fit.plcc == pytest.approx(st.pearsonr([1, 2, 3], [1, 3, 2]).statistic)
    c = correlations([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0], n_boot=20)
    assert c["logistic_ok"] is False and "at least 5 pairs" in c["note"] and c["plcc_logistic"] == c["plcc"]


def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_n():
    rng = np.random.default_rng(1)
    widths = []
    for n in (40, 640):
        x = rng.normal(size=n)
        y = x + rng.normal(size=n)
        c = correlations(x, y, n_boot=300, seed=0)
        for k in ("srcc", "krcc", "plcc", "plcc_logistic"):
            assert c[f"{k}_lo"] <= c[k] <= c[f"{k}_hi"], (k, c)
        widths.append(c["srcc_hi"] - c["srcc_lo"])
        assert c == correlations(x, y, n_boot=300, seed=0) or c["note"]  # seeded: reproducible
    assert widths[1] < widths[0] / 2


# ---------------------------------------------------------------------------------------------
# graded distortions are what the module table says


def _photo(h=64, w=64):
    import skimage.data

    img = skimage.data.astronaut()[100:100 + h, 180:180 + w]
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0


def test_distortion_levels_are_applied_as_documented():
    x = _photo()
    assert DISTORTIONS["jpeg"][2] == (90, 70, 50, 30, 10) and DISTORTIONS["downup"][2] == (2, 3, 4, 8, 16)
    for kind, (_, _, levels) in DISTORTIONS.items():
        for level in levels:
            y = apply_distortion(x, kind, level, seed=1)
            assert y.shape == x.shape and torch.equal(y, (y * 255).round() / 255)  # on the uint8 grid
    # JPEG: lower quality, fewer bytes, and the pixels change
    sizes = [jpeg_roundtrip(x, q)[1] for q in DISTORTIONS["jpeg"][2]]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 5
    assert not torch.equal(apply_distortion(x, "jpeg", 90), apply_distortion(x, "jpeg", 10))
    # noise: the measured std (on mid-grey, where nothing clips) is the level in 8-bit units
    grey = torch.full((1, 3, 96, 96), 128 / 255)
    for std in DISTORTIONS["noise"][2]:
        measured = float(((apply_distortion(grey, "noise", std, seed=7) - grey) * 255).std())
        assert measured == pytest.approx(std, rel=0.08, abs=0.35)
    assert torch.equal(apply_distortion(x, "noise", 10, seed=3), apply_distortion(x, "noise", 10, seed=3))
    # blur: the spread of a blurred impulse is sigma
    impulse = torch.zeros(1, 1, 41, 41)
    impulse[0, 0, 20, 20] = 1.0
    for sigma in DISTORTIONS["blur"][2][1:]:
        psf = gaussian_blur(impulse, sigma)[0, 0]
        col = psf.sum(dim=0).double()
        t = torch.arange(41, dtype=torch.float64) - 20
        assert float(col.sum()) == pytest.approx(1.0, abs=1e-5)
        assert math.sqrt(float((col * t * t).sum())) == pytest.approx(sigma, rel=0.03)
    # down-up: larger factors lose more
    err = [float((apply_distortion(x, "downup", f) - x).abs().mean()) for f in DISTORTIONS["downup"][2]]
    assert err == sorted(err)


def test_center_crop_is_central_and_a_multiple_of_16():
    x = torch.arange(300 * 200, dtype=torch.float32).view(1, 1, 300, 200)
    c = center_crop(x, 100)
    assert c.shape[-2:] == (96, 96) and float(c[0, 0, 0, 0]) == float(x[0, 0, 100, 50])
    assert center_crop(x, 256).shape[-2:] == (256, 192)  # the 200-px side is kept whole, trimmed to 192


# ---------------------------------------------------------------------------------------------
# the opinion-free evaluation on real photographs (scikit-image's; the shared benchmark images too)


@pytest.fixture(scope="module")
def opinion_free(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    datasets = ["demo"] + (["urban100"] if (SHARED_DATA / "urban100" / "HR").is_dir() else [])
    out = tmp_path_factory.mktemp("iqa-eval")
    lines: list[str] = []
    res = evaluate_opinion_free([LapVar(), Blurriness(), Constant()], datasets=datasets, data_root=SHARED_DATA,
                                images_per_dataset=2 if len(datasets) == 1 else 1, crop=64, scales=(2, 4),
                                out=out, device="cpu", n_boot=100, progress=False, plots=False, log=lines.append)
    return res, out, lines  # figures are checked through the command line (test_cli_opinion_free_...)


def test_blur_ranking_is_plus_one_after_orientation(opinion_free):
    res, _, _ = opinion_free
    t = res.table.set_index("metric")
    s = res.distortion_srcc
    for name in ("lapvar", "blurriness"):  # higher-is-better and lower-is-better versions agree
        blur = s[(s["metric"] == name) & (s["distortion"] == "blur")]["srcc"]
        assert len(blur) == 2 and (blur == 1.0).all()
        assert t.loc[name, "blur_srcc"] == 1.0 and t.loc[name, "blur_lo"] == 1.0
        # the Laplacian variance rises with noise: the evaluation must expose that as -1
        assert t.loc[name, "noise_srcc"] == -1.0
    assert t.loc["lapvar", "overall_srcc"] == pytest.approx(t.loc["blurriness", "overall_srcc"])
    assert t.loc["lapvar", "higher_better"] and not t.loc["blurriness", "higher_better"]


def test_constant_metric_is_reported_as_undefined(opinion_free):
    res, _, _ = opinion_free
    r = res.table.set_index("metric").loc["constant"]
    assert all(math.isnan(r[f"{k}_srcc"]) for k in DISTORTIONS) and math.isnan(r["overall_srcc"])
    assert r["blur_n_undefined"] == 2 and "constant scores" in r["note"]
    assert math.isnan(r["vs_lpips_srcc"]) and "constant" in r["vs_lpips_note"]
    row = next(line for line in res.markdown.splitlines() if line.startswith("| constant"))
    assert "n/a (2 n/a)" in row


def test_sr_outputs_get_fr_scores_with_a_loud_substitution(opinion_free):
    res, out, lines = opinion_free
    # tests have no ImageNet weights: LPIPS and DISTS are replaced by SSIM and PSNR, loudly
    assert res.fr_used == {"lpips": "ssim", "dists": "psnr"}
    assert any(line.startswith("WARNING: LPIPS unavailable") and "substituted by SSIM" in line for line in lines)
    assert any("DISTS unavailable" in n and "substituted by PSNR" in n for n in res.notes)
    assert "vs SSIM (for LPIPS)" in res.markdown and "substituted by SSIM" in (out / "index.md").read_text()
    sr = res.sr_scores
    assert len(sr) == 2 * 4 * 2  # images x methods x scales
    assert set(sr["method"]) == {"bicubic", "nearest", "bilinear", "lanczos"} and set(sr["scale"]) == {2, 4}
    assert sr[["fr:ssim", "fr:psnr", "nr:lapvar"]].notna().all().all()
    # x2 outputs are closer to the HR image than x4 outputs
    assert sr[sr["scale"] == 2]["fr:psnr"].mean() > sr[sr["scale"] == 4]["fr:psnr"].mean()
    # one PSNR recomputed by hand for the bicubic x2 output of the first image
    from bench.run.datasets import Dataset
    from bench.run.degradations import parse_degradation
    from bench.run.io import read_image

    first = sr.iloc[0]
    item = next(it for it in Dataset(first["dataset"], None).items(4) if it.id == first["image"])
    hr, lr = parse_degradation(2).apply(center_crop(read_image(item.hr)[None], 64))
    out_img = iqa.quantize_uint8(__import__("sr_methods").create_method("bicubic").upscale(lr, 2))
    row = sr[(sr["image"] == first["image"]) & (sr["method"] == "bicubic") & (sr["scale"] == 2)].iloc[0]
    assert row["fr:psnr"] == pytest.approx(float(iqa.create_metric("psnr")(out_img, hr, scale=2)), abs=1e-9)
    t = res.table.set_index("metric")
    assert -1.0 <= t.loc["lapvar", "vs_lpips_srcc"] <= 1.0 and t.loc["lapvar", "vs_lpips_metric"] == "ssim"
    assert t.loc["lapvar", "vs_lpips_srcc"] == pytest.approx(t.loc["blurriness", "vs_lpips_srcc"])


def test_paired_differences_from_a_reference_metric(opinion_free):
    from bench.nr.eval import _differences, _paired_srcc_difference
    from iqa.correlation import srcc

    res, out, _ = opinion_free
    assert res.reference is None and res.differences is None  # no niqe evaluated, none named
    nr = [type("M", (), {"label": n, "higher_better": hb})() for n, hb in (("lapvar", True), ("blurriness", False),
                                                                            ("constant", True))]
    d = _differences(nr, "blurriness", res.distortion_srcc, res.sr_scores, res.fr_used, 200, 0).set_index("metric")
    assert list(d.index) == ["lapvar", "constant"]
    # the same rankings (one metric is a monotone transform of the other): zero difference, n.s.
    assert d.loc["lapvar", "overall_diff"] == pytest.approx(0.0, abs=1e-12)
    assert d.loc["lapvar", "overall_verdict"] == "n.s." and d.loc["constant", "overall_verdict"] == "n/a"
    # (b) by hand: a metric equal to the FR score against one that is its reverse: +2, better
    fr = np.arange(20.0)
    est, lo, hi, n = _paired_srcc_difference(fr.copy(), -fr, fr, 200, 0)
    assert (est, lo, hi, n) == (2.0, 2.0, 2.0, 20)
    noisy = fr + np.random.default_rng(1).normal(0, 5, 20)
    est, lo, hi, _ = _paired_srcc_difference(noisy, fr.copy(), fr, 500, 0)
    assert est == pytest.approx(srcc(noisy, fr) - 1.0) and lo < est < hi < 0


def test_reference_option_writes_the_difference_table(tmp_path):
    res = evaluate_opinion_free([LapVar(), Blurriness()], datasets=["demo"], images_per_dataset=2, crop=32,
                                scales=(2,), out=tmp_path, n_boot=50, progress=False, plots=False,
                                log=lambda s: None, reference="blurriness")
    assert res.reference == "blurriness" and list(res.differences["metric"]) == ["lapvar"]
    assert "Difference from blurriness" in res.markdown and "| lapvar | +0.000 [" in res.markdown
    assert (tmp_path / "differences.csv").is_file()
    with pytest.raises(SrbenchError, match="reference metric 'niqe' is not among the evaluated metrics"):
        evaluate_opinion_free([LapVar()], datasets=["demo"], images_per_dataset=1, crop=32, scales=(2,), out=None,
                              n_boot=10, progress=False, plots=False, log=lambda s: None, reference="niqe")


def test_report_files(opinion_free):
    res, out, _ = opinion_free
    for name in ("table.md", "table.csv", "index.md", "distortion_scores.csv", "distortion_srcc.csv", "sr_scores.csv"):
        assert (out / name).is_file(), name
    index = (out / "index.md").read_text()
    assert "| Gaussian blur (sigma (px)) | `blur` | 0.5 | 1 | 2 | 3 | 4 |" in index
    assert "| JPEG (quality) | `jpeg` | 90 | 70 | 50 | 30 | 10 |" in index and res.markdown in index
    import pandas as pd

    assert list(pd.read_csv(out / "table.csv")["metric"]) == ["lapvar", "blurriness", "constant"]


def test_bad_image_file_is_skipped_with_one_line(tmp_path, monkeypatch):
    from PIL import Image

    from tests.helpers import photo, write_manifest

    write_manifest(tmp_path / "manifests", "toyset", '[layout]\nhr = "HR/*"\n')
    monkeypatch.setenv("SRBENCH_MANIFESTS", str(tmp_path / "manifests"))
    hr = tmp_path / "data" / "toyset" / "HR"
    hr.mkdir(parents=True)
    Image.fromarray(photo(48, 48, 0)).save(hr / "a.png")
    (hr / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # truncated
    lines: list[str] = []
    res = evaluate_opinion_free([LapVar()], datasets=["toyset", "manga109"], data_root=tmp_path / "data", crop=32,
                                scales=(2,), fr_metrics=("psnr",), methods=["craft-x4"], out=None, device="cpu",
                                n_boot=20, progress=False, log=lines.append)
    bad = [line for line in lines if "b.png" in line]
    assert len(bad) == 1 and bad[0].startswith("skipped: ") and "cannot read image" in bad[0]
    assert any(line.startswith("WARNING: method 'craft-x4' cannot be built, skipped") for line in lines)
    assert any(line.startswith("WARNING: dataset 'manga109' unavailable, skipped") for line in lines)
    assert set(res.distortion_scores["image"]) == {"a"} and len(res.sr_scores) == 4
    with pytest.raises(SrbenchError, match="unknown dataset 'nosuchdata'"):
        evaluate_opinion_free([LapVar()], datasets=["nosuchdata"], out=None, progress=False, log=lines.append)


def test_metric_checks(monkeypatch):
    from iqa.catalogue import METRICS
    from iqa.errors import MissingAssetError
    from iqa.registry import Entry

    with pytest.raises(SrbenchError, match="'psnr' is full-reference"):
        evaluate_opinion_free(["psnr"], datasets=["demo"], out=None, progress=False)
    with pytest.raises(SrbenchError, match="did you mean 'niqe'"):
        evaluate_opinion_free(["niqee"], datasets=["demo"], out=None, progress=False)

    def needs_asset(protocol=None):  # like NIQE without its pristine-model asset (cheaper to build)
        raise MissingAssetError("asset 'toy-params' is missing: run `srbench assets fetch toy-params`")

    monkeypatch.setitem(METRICS._entries, "toy-nr", Entry("toy-nr", needs_asset, {
        "kind": "nr", "higher_better": False, "range": (0.0, math.inf)}))
    lines: list[str] = []
    with pytest.raises(SrbenchError, match="no metric to evaluate .*toy-params"):
        evaluate_opinion_free(["toy-nr"], datasets=["demo"], out=None, progress=False, log=lines.append)
    assert lines and lines[0].startswith("WARNING: metric 'toy-nr' is unavailable and skipped")


# ---------------------------------------------------------------------------------------------
# against opinion scores: a fake KonIQ-10k whose MOS falls with blur, and a CSIQ-style DMOS


def _fake_koniq(root, n=6, corrupt=None):
    from PIL import Image

    from bench.run.io import to_uint8

    x = _photo(48, 48)
    (root / "1024x768").mkdir(parents=True)
    rows = ["image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore"]
    for i in range(n):
        y = gaussian_blur(x, 0.3 + 0.5 * i) if i else x
        Image.fromarray(to_uint8(y[0])).save(root / "1024x768" / f"{i}.png")
        rows.append(f"{i}.png,0,0,0,0,0,0,{4.5 - 0.5 * i},0.5,{80 - 10 * i}")
    if corrupt is not None:
        (root / "1024x768" / f"{corrupt}.png").write_bytes(b"not an image")
    (root / "koniq10k_scores_and_distributions.csv").write_text("\n".join(rows) + "\n")
    return root


def test_database_evaluation_orients_and_skips_bad_files(tmp_path):
    root = _fake_koniq(tmp_path / "koniq", n=7, corrupt=3)
    lines: list[str] = []
    t = evaluate_on_database([LapVar(), Blurriness(), Constant()], "koniq10k", root, out=tmp_path / "out",
                             device="cpu", n_boot=100, progress=False, log=lines.append).set_index("metric")
    assert t.loc["lapvar", "srcc"] == 1.0 and t.loc["blurriness", "srcc"] == 1.0
    assert t.loc["lapvar", "krcc"] == pytest.approx(1.0)
    assert t.loc["lapvar", "n"] == 6 and t.loc["lapvar", "n_skipped"] == 1
    assert math.isnan(t.loc["constant", "srcc"]) and "constant scores" in t.loc["constant", "note"]
    bad = [line for line in lines if "3.png" in line]
    assert len(bad) == 1 and bad[0].startswith("skipped: ") and "cannot read image" in bad[0]
    md = (tmp_path / "out" / "koniq10k_correlations.md").read_text()
    assert "| lapvar | 6 | 1.000" in md and "1 file(s) skipped" in md
    scores = (tmp_path / "out" / "koniq10k_scores.csv").read_text().splitlines()
    assert scores[0] == "image,mos,score:lapvar,score:blurriness,score:constant" and len(scores) == 8


def test_dmos_databases_are_flipped(tmp_path):
    """CSIQ's DMOS is lower-is-better: a sharpness metric must still correlate at +1."""
    from PIL import Image

    from bench.run.io import to_uint8

    root = tmp_path / "CSIQ"
    x = _photo(48, 48)
    rows = [["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"]]
    for lev in range(1, 6):
        p = root / "dst_imgs" / "blur" / f"1600.BLUR.{lev}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_uint8(gaussian_blur(x, 0.4 * lev)[0])).save(p)
        rows.append([1600, 5, "blur", lev, 0.1, 0.15 * lev])
    import csv

    with open(root / "csiq.DMOS.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    t = evaluate_on_database([LapVar()], "csiq", root, n_boot=50, progress=False, log=quiet([]))
    assert t.iloc[0]["srcc"] == 1.0 and t.iloc[0]["n"] == 5


# ---------------------------------------------------------------------------------------------
# the command line handler


def _parser():
    p = argparse.ArgumentParser(prog="srbench")
    sub = p.add_subparsers(dest="command", required=True)
    iqa_p = sub.add_parser("iqa")
    isub = iqa_p.add_subparsers(dest="iqa_command", required=True)
    add_eval_parser(isub)
    return p


@pytest.fixture
def lapvar_registered(monkeypatch):
    from iqa.catalogue import METRICS
    from iqa.registry import Entry

    monkeypatch.setitem(METRICS._entries, "lapvar", Entry("lapvar", LapVar, {
        "kind": "nr", "higher_better": True, "range": (0.0, math.inf), "description": "test: Laplacian variance"}))


def test_cli_opinion_free_writes_table_and_plots(tmp_path, lapvar_registered, capsys):
    from PIL import Image

    out = tmp_path / "report"
    args = _parser().parse_args(["iqa", "eval", "lapvar", "--datasets", "demo", "--images-per-dataset", "1",
                                 "--crop", "48", "--scales", "x2", "--fr-metrics", "psnr", "--out", str(out),
                                 "--device", "cpu", "--n-boot", "50", "--no-progress"])
    assert args.func is cmd_eval and not args.opinion_free and args.dataset is None
    assert args.func(args) == 0
    stdout = capsys.readouterr().out
    assert "| lapvar (higher is better) | 1.000" in stdout and f"written to {out}/" in stdout
    for name in ("index.md", "table.md", "table.csv", "levels_lapvar.svg", "sr_lapvar_vs_psnr.svg"):
        assert (out / name).is_file(), name
    for name in ("levels_lapvar.png", "sr_lapvar_vs_psnr.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.width > 300, name
    index = (out / "index.md").read_text()
    assert "![levels_lapvar](levels_lapvar.png)" in index and "![sr_lapvar_vs_psnr](sr_lapvar_vs_psnr.png)" in index


def test_cli_database_mode(tmp_path, lapvar_registered, capsys):
    root = _fake_koniq(tmp_path / "koniq")
    args = _parser().parse_args(["iqa", "eval", "lapvar", "--dataset", "koniq10k", "--root", str(root),
                                 "--score", "MOS_zscore", "--out", str(tmp_path / "o"), "--device", "cpu",
                                 "--n-boot", "50", "--no-progress"])
    assert cmd_eval(args) == 0
    assert "| lapvar | 6 | 1.000" in capsys.readouterr().out
    assert (tmp_path / "o" / "koniq10k_correlations.csv").is_file()


def test_cli_errors(tmp_path, lapvar_registered, capsys):
    p = _parser()
    with pytest.raises(SystemExit) as e:
        p.parse_args(["iqa", "eval", "lapvar", "--dataset", "csiq", "--opinion-free"])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SrbenchError, match="go with --dataset NAME"):
        cmd_eval(p.parse_args(["iqa", "eval", "lapvar", "--root", str(tmp_path)]))
    with pytest.raises(SrbenchError, match=r"nowhere: folder not found") as ei:
        cmd_eval(p.parse_args(["iqa", "eval", "lapvar", "--dataset", "tid2013", "--root", str(tmp_path / "nowhere"),
                               "--no-progress"]))
    assert "\n" not in str(ei.value)


def test_an_unavailable_metric_is_named_in_the_report_notes():
    from bench.nr.eval import resolve_nr_metrics

    notes, lines = [], []
    out = resolve_nr_metrics(["niqe", "piqe"], "cpu", lines.append, notes)  # niqe: no asset in tests
    assert [m.label for m in out] == ["piqe"]
    assert notes and notes[0].startswith("metric 'niqe' is unavailable and skipped") and lines
