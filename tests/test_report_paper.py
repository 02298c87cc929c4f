"""A report a reviewer pastes into a paper (issue 11, part 6): numbers that show differences, no best
marker among ties, ``same`` for identical scores, infinite scores counted, the spec order in
figures as in tables, legends only for marks that occur, and text that stays text in every format
(Markdown, CSV)."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from bench.report import leaderboard as R
from bench.report.compare import compare_markdown, compare_runs, write_compare_csv
from bench.report.stats import bootstrap_ci, bootstrap_mean, paired_difference, unpaired_difference

FORMULA = '=HYPERLINK("http://evil.example/x","click")'
AT = "@cmd|' /C calc'!A0"
SCRIPT = "<script>alert(1)</script>"
PIPE = "a|b"


def rows(method, dataset, scale, metric, values, status="ok", message=""):
    return [{"dataset": dataset, "degradation": f"x{scale}", "scale": scale, "method": method, "image": f"img{i}",
             "metric": metric, "value": float(v), "protocol": "basicsr", "status": status, "message": message,
             "cause": "" if status == "ok" else ("setup" if status == "unavailable" else "input")}
            for i, v in enumerate(values)]


def frame(*parts) -> pd.DataFrame:
    return pd.DataFrame([r for p in parts for r in p])


def spec(methods, datasets=("set5",), metrics=("psnr",)):
    return [{"spec": {"methods": [{"label": m, "name": m} for m in methods], "datasets": list(datasets),
                      "metrics": list(metrics)}}]


def write_run(root, df: pd.DataFrame, manifest_spec: dict):
    """A run folder holding exactly ``df`` (one finished cell per dataset/degradation/method)."""
    from bench.run.store import Cell

    root.mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"spec": manifest_spec, "protocol": {"name": "basicsr"}}))
    for (ds, deg, method), g in df.groupby(["dataset", "degradation", "method"], sort=False):
        cell = Cell(root, ds, deg, method)
        cell.start("test")
        cell.write_part(g.to_dict("records"), [])
        cell.finish("test", {})
    return root


def body_cells(md: str, header_start: str) -> list[list[str]]:
    """The cells of the Markdown table whose header row starts with ``header_start`` (split on
    unescaped ``|``)."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    out = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        out.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return out


# -- numbers that show differences -------------------------------------------------------------------

def test_values_that_differ_print_differently_and_saturated_ones_are_not_zero():
    rng = np.random.default_rng(0)
    base = np.array([33.0, 34.0, 33.5, 34.5, 33.3, 33.7])  # mean 33.6667
    sfd = 10.0 ** rng.uniform(-8.2, -7.8, 6)  # SFD-IQA probabilities at x16: all near 0
    df = frame(rows("bicubic", "set5", 2, "psnr", base + 0.0045), rows("lanczos", "set5", 2, "psnr", base + 0.0074),
               rows("bicubic", "set5", 16, "sfd-iqa-vgg16", sfd), rows("lanczos", "set5", 16, "sfd-iqa-vgg16", sfd * 1.6),
               rows("bicubic", "set5", 2, "sfd-iqa-vgg16", rng.uniform(0.5, 0.9, 6)),
               rows("lanczos", "set5", 2, "sfd-iqa-vgg16", rng.uniform(0.5, 0.9, 6)))
    psnr, sfd_lb = R.build_leaderboards(df, spec(("bicubic", "lanczos"), metrics=("psnr", "sfd-iqa-vgg16")))
    x2, x16 = ("set5", "x2", 2), ("set5", "x16", 16)
    md = R.to_markdown(psnr)
    assert "| bicubic | 33.671 [" in md and "| lanczos | **33.674** [" in md
    assert "0.0000" not in R.to_markdown(sfd_lb)  # the x16 column no longer prints 0.0000 [0.0000, 0.0000]
    # PSNR means 0.003 dB apart: 2 decimals would print both as 33.67
    a, b = (psnr.cell(m, x2).fmt(psnr.cell(m, x2).interval.mean) for m in ("bicubic", "lanczos"))
    assert (a, b) == ("33.671", "33.674")
    for m in ("bicubic", "lanczos"):
        c = sfd_lb.cell(m, x16)
        text = c.fmt(c.interval.mean)
        assert "e-0" in text and float(text) == pytest.approx(c.interval.mean, rel=0.06)
        assert c.fmt(c.interval.lo) != c.fmt(0.0)
    assert sfd_lb.formats[x16].scientific and not sfd_lb.formats[x2].scientific  # per column
    assert R.to_latex(sfd_lb).count(r"\times 10^{-8}") >= 2
    # the rule, directly
    assert R.choose_format([33.6712, 33.6749], 2)(33.6712) == "33.671"
    assert R.choose_format([0.9303, 0.9364], 4) == R.NumFormat(4)  # nothing to change
    assert R.choose_format([1.2e-6, 1.3e-6], 4)(1.25e-6).endswith("e-06")
    assert R.choose_format([0.999990, 0.999995], 4)(0.999995) == "0.999995"  # near 1: more decimals
    assert R.default_decimals([33.6, 28.1]) == 2 and R.default_decimals([5.1]) == 3 and R.default_decimals([0.9]) == 4
    fmt = R.NumFormat(2)
    assert fmt(-0.001) == "0.00" and fmt(-0.001, True) == "+0.00" and fmt(math.inf) == "inf" and fmt(math.nan) == "n/a"


def test_no_best_marker_among_ties():
    same = [30.0, 31.0, 32.0, 33.0]
    df = frame(rows("bicubic", "set5", 2, "psnr", same), rows("twin", "set5", 2, "psnr", same),
               rows("worse", "set5", 2, "psnr", [v - 1 for v in same]),
               rows("bicubic", "set5", 4, "psnr", same), rows("twin", "set5", 4, "psnr", [v - 0.5 for v in same]),
               rows("bicubic", "set5", 8, "psnr", same))  # a column with one value
    psnr = R.build_leaderboards(df, spec(("bicubic", "twin", "worse")))[0]
    x2, x4, x8 = ("set5", "x2", 2), ("set5", "x4", 4), ("set5", "x8", 8)
    assert not any(psnr.cell(m, x2).best for m in psnr.methods)  # bicubic and twin tie for best
    assert psnr.cell("bicubic", x4).best and not psnr.cell("twin", x4).best  # a clear winner keeps its mark
    assert not psnr.cell("bicubic", x8).best  # nothing to beat
    assert "**" not in R.to_markdown(psnr).split("| twin |")[0].split("| bicubic |")[1].split("|")[0]
    long = R.to_csv_long([psnr])
    assert not long[long["scale"] == 2]["best"].any()
    # equal at the printed precision is equal: two means 1e-13 apart are one value
    df2 = frame(rows("bicubic", "set5", 2, "psnr", same), rows("twin", "set5", 2, "psnr", [v + 1e-13 for v in same]))
    assert not any(c.best for c in R.build_leaderboards(df2, spec(("bicubic", "twin")))[0].cells.values())


def test_identical_scores_are_same_and_tiny_significant_differences_print_non_zero():
    rng = np.random.default_rng(1)
    ref = 10.0 ** rng.uniform(-8, -7, 8)
    df = frame(rows("bicubic", "set5", 16, "sfd-iqa-vgg16", ref), rows("copy", "set5", 16, "sfd-iqa-vgg16", ref),
               rows("up", "set5", 16, "sfd-iqa-vgg16", ref + 3e-9 * (1 + 0.1 * rng.random(8))))
    lb = R.build_leaderboards(df, spec(("bicubic", "copy", "up"), metrics=("sfd-iqa-vgg16",)))[0]
    col = ("set5", "x16", 16)
    copy, up = lb.cell("copy", col), lb.cell("up", col)
    assert (copy.vs_ref.mean, copy.vs_ref.lo, copy.vs_ref.hi) == (0, 0, 0)
    assert R.verdict(lb, copy.vs_ref) == "same" and R.ref_text(lb, "copy", col) == "same (identical on 8 images)"
    assert R.verdict(lb, up.vs_ref) == "better"
    text = R.ref_text(lb, "up", col)
    assert text.endswith("better") and "+0.0000" not in text and re.match(r"\+3\.\d+e-09 \[", text), text
    long = R.to_csv_long([lb])
    assert list(long.set_index("method").loc[["copy", "up"], "verdict"]) == ["same", "better"]
    assert "same (identical on 8 images)" in R.vs_reference_markdown(lb)


# -- infinite scores ---------------------------------------------------------------------------------

def test_infinite_scores_are_reported_and_counted_never_dropped():
    inf = math.inf
    assert bootstrap_mean([1.0, inf, 3.0]) .mean == inf and bootstrap_mean([1.0, inf, 3.0]).n_inf == 1
    assert bootstrap_mean([1.0, inf, 3.0]).n == 3 and bootstrap_ci([2.0, inf]) == (inf, inf)
    assert math.isnan(bootstrap_mean([inf, -inf]).mean) and bootstrap_mean([1.0, math.nan]).n_inf == 0
    pd_ = paired_difference({"a": inf, "b": 2.0, "c": 3.0}, {"a": 30.0, "b": 1.0, "c": 1.0})
    assert pd_.n == 2 and pd_.n_inf == 1 and pd_.mean == pytest.approx(1.5)
    assert unpaired_difference([inf, 1.0], [2.0]).mean == inf
    values = [inf, 35.0, inf, 31.0, 33.0]
    df = frame(rows("bicubic", "set5", 2, "psnr", [30.0, 31.0, 29.0, 28.0, 30.5]),
               rows("identity", "set5", 2, "psnr", values))
    psnr = R.build_leaderboards(df, spec(("bicubic", "identity")))[0]
    c = psnr.cell("identity", ("set5", "x2", 2))
    assert c.interval.mean == inf and c.interval.n == 5 and c.n_inf == 2 and c.best
    assert "| identity | **inf** [2 of 5 images inf] |" in R.to_markdown(psnr)  # the best, too
    assert c.vs_ref.n == 3 and c.vs_ref.n_inf == 2 and "2 inf image(s) left out" in R.ref_text(psnr, "identity",
                                                                                               ("set5", "x2", 2))
    long = R.to_csv_long([psnr]).set_index("method")
    assert long.loc["identity", "mean"] == inf and long.loc["identity", "n_inf"] == 2
    assert long.loc["identity", "n_images"] == 5 and long.loc["identity", "diff_n_inf_left_out"] == 2
    assert "(2/5 inf)" in R.to_latex(psnr) and r"$\infty$" in R.to_latex(psnr)
    notes = R.notes(df)
    assert notes == [("set5 x2 identity: PSNR is inf on 2 of 5 images (img0, img2); the mean is shown as inf, "
                      "and paired differences leave those images out")]
    # failed images (NaN) stay out of the mean and are counted as failures, as before
    df_err = frame(rows("bicubic", "set5", 2, "psnr", [30.0, 31.0]),
                   rows("bicubic", "set5", 2, "psnr", [math.nan], status="error", message="bad.png: truncated"))
    df_err.loc[2, "image"] = "img9"
    cell = R.build_leaderboards(df_err, spec(("bicubic",)))[0].cell("bicubic", ("set5", "x2", 2))
    assert cell.status == "partial" and cell.n_failed == 1 and cell.interval.n == 2 and cell.n_inf == 0


# -- order, legends ------------------------------------------------------------------------------------

def _two_datasets() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    parts = []
    for ds, n in (("set5", 5), ("set14", 14)):
        for scale in (2, 4):
            for k, m in enumerate(("bicubic", "lanczos")):
                parts.append(rows(m, ds, scale, "psnr", 33 - 2 * scale + k + rng.normal(0, 1, n)))
                parts.append(rows(m, ds, scale, "lpips", 0.1 * scale - 0.01 * k + rng.uniform(0, 0.05, n)))
    df = frame(*parts)
    return df.sort_values(["dataset", "scale", "method"], kind="stable").reset_index(drop=True)  # set14 first


def test_figures_notes_and_tables_follow_the_spec_order(tmp_path):
    df = _two_datasets()
    assert df["dataset"].iloc[0] == "set14"  # what load_scores gives: sorted by name
    run = write_run(tmp_path / "run", df, {"datasets": ["set5", "set14"], "metrics": ["psnr", "lpips"],
                                           "methods": [{"label": "lanczos", "name": "lanczos"},
                                                       {"label": "bicubic", "name": "bicubic"}]})
    rep = R.write_report([run], tmp_path / "rep", echo=lambda s: None)
    lb = rep.leaderboards[0]
    assert [c[0] for c in lb.columns] == ["set5", "set5", "set14", "set14"] and lb.methods == ["lanczos", "bicubic"]
    page = (tmp_path / "rep" / "index.html").read_text()
    captions = re.findall(r"<figcaption>(set5|set14)\b", page)
    assert captions and captions.index("set14") > 0
    assert captions == sorted(captions, key=["set5", "set14"].index)  # every set5 figure before any set14 one
    sections = re.findall(r'<section class="report-section" id="[^"]+"><h2>([^<]+)</h2>', page)
    assert sections[:3] == ["Leaderboards", "Figures: set5 (5 images)", "Figures: set14 (14 images)"]
    # the box plots: one figure per dataset and metric, the scales side by side, not one per scale
    dists = sorted(p.name for p in (tmp_path / "rep" / "figures").glob("dists_*.png"))
    assert dists == ["dists_lpips_set14.png", "dists_lpips_set5.png", "dists_psnr_set14.png", "dists_psnr_set5.png"]
    # the page is navigable: a table of contents with the datasets' figure kinds under them
    toc = page.split('<nav class="toc"')[1].split("</nav>")[0]
    assert toc.count('<ul class="sub">') == 3 and "Per-image distributions" in toc
    assert toc.index("Figures: set5") < toc.index("Figures: set14")


def test_circularity_legend_only_when_some_method_is_circular(tmp_path):
    df = _two_datasets()
    run = write_run(tmp_path / "plain", df, {"datasets": ["set5", "set14"]})
    rep = R.write_report([run], tmp_path / "rep", plots=False, echo=lambda s: None)
    md = (tmp_path / "rep" / "leaderboard.md").read_text()
    page = (tmp_path / "rep" / "index.html").read_text()
    tex = (tmp_path / "rep" / "leaderboard.tex").read_text()
    assert "†" not in md and "backbone" not in md and "dagger" not in tex
    body = page.split("</style>")[1]
    assert "\u26a0" not in body and "backbone" not in body
    assert not rep.any_circular
    # the same scores with a method guided by LPIPS's own backbone: the legend appears
    circ = write_run(tmp_path / "circ", df, {"datasets": ["set5", "set14"]})
    manifest = json.loads((circ / "manifest.json").read_text())
    manifest["weights"] = {"lanczos": {"backbone": "AlexNet"}}
    (circ / "manifest.json").write_text(json.dumps(manifest))
    rep = R.write_report([circ], tmp_path / "rep2", plots=False, echo=lambda s: None)
    assert rep.any_circular
    assert "`†` = method guided" in (tmp_path / "rep2" / "leaderboard.md").read_text()
    page = (tmp_path / "rep2" / "index.html").read_text().split("</style>")[1]
    assert "\u26a0 method guided" in page and "dagger" in (tmp_path / "rep2" / "leaderboard.tex").read_text()


def test_notes_name_cells_with_the_same_problem_together():
    df = frame(*(rows(m, ds, s, "lpips", [math.nan], status="unavailable", message="alexnet weights not found")
                 for ds in ("set5", "set14") for s in (2, 4) for m in ("bicubic", "lanczos")),
               rows("bicubic", "set5", 2, "psnr", [math.nan], status="error", message="img0.png: truncated"),
               *(rows(m, "set5", 2, "sfd-iqa-vgg16", [math.nan], status="unavailable", message="vgg16 weights not found")
                 for m in ("bicubic", "lanczos")))
    assert R.notes(df) == [
        "unavailable in 8 cells (bicubic, lanczos on set5 x2, x4; set14 x2, x4): alexnet weights not found",
        "set5 x2 bicubic: 1 image(s) failed: img0.png: truncated",
        "unavailable in 2 cells (bicubic, lanczos on set5 x2): vgg16 weights not found"]  # not lost


# -- text stays text: Markdown and CSV ----------------------------------------------------------------

def _hostile_run(tmp_path):
    methods = ("bicubic", FORMULA, AT, SCRIPT, PIPE, "-neg")
    df = frame(*(rows(m, "set5", 2, "psnr", [30.0 + k, 31.0 + k, 29.0 + k]) for k, m in enumerate(methods)),
               rows(AT, "set5", 2, "psnr", [math.nan], status="error", message="=cmd() <b>x</b> | y"))
    df.loc[df.index[-1], "image"] = "=img9"
    return write_run(tmp_path / "run", df, {"datasets": ["set5"], "methods": [{"label": m, "name": "bicubic"}
                                                                              for m in methods]}), methods


def test_every_csv_neutralises_formulas(tmp_path):
    run, _ = _hostile_run(tmp_path)
    out = tmp_path / "rep"
    R.write_report([run], out, plots=False, html=False, echo=lambda s: None)
    files = sorted(out.glob("*.csv"))
    assert [f.name for f in files] == ["leaderboard.csv", "leaderboard_psnr.csv", "scores.csv"]
    seen = set()
    for f in files:
        with open(f, newline="") as fh:
            for row in csv.reader(fh):
                for value in row:
                    if value[:1] in ("=", "@", "+", "-"):
                        assert re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?|[+-]?inf", value), (f.name, value)
                    seen.add(value)
    assert "'" + FORMULA in seen and "'" + AT in seen and "'-neg" in seen and "'=img9" in seen
    # compare.csv: the function the CLI calls
    cmp = compare_runs(run, run)
    write_compare_csv(cmp, tmp_path / "compare.csv")
    text = (tmp_path / "compare.csv").read_text()
    assert "'" + FORMULA.replace('"', '""') in text and "\n=" not in text and ",=" not in text and ",@" not in text


def test_markdown_keeps_names_as_text(tmp_path):
    run, _ = _hostile_run(tmp_path)
    out = tmp_path / "rep"
    R.write_report([run], out, plots=False, html=False, echo=lambda s: None)
    md = (out / "leaderboard.md").read_text()
    assert "<script>" not in md and "<b>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    table = body_cells(md, "| method |")
    assert all(len(r) == len(table[0]) == 2 for r in table)  # "a|b" did not add a column
    assert [r[0] for r in table[2:]] == ["bicubic", FORMULA.replace("<", "&lt;"), AT.replace("|", "\\|"),
                                         "&lt;script&gt;alert(1)&lt;/script&gt;", "a\\|b", "-neg"]
    assert "=cmd() &lt;b&gt;x&lt;/b&gt; \\| y" in md  # the note too
    cmp = compare_markdown(compare_runs(run, run), run, run)
    assert "<script>" not in cmp and "&lt;script&gt;" in cmp and "| set5 | x2 | a\\|b |" in cmp
