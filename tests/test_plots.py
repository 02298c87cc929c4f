"""Leaderboard figures (bench.report.plots) on small synthetic score and timing frames."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.report import plots

SCRIPT = "<script>alert(1)</script>"
METHODS = ("bicubic", "nearest", "realesrgan-x4plus")
N_IMAGES = 6
SAFE_FILE = re.compile(r"^[A-Za-z0-9._+-]+$")


def make_scores(datasets=("set5", "set14"), n_images=N_IMAGES, seed=0) -> pd.DataFrame:
    """3 scales x 3 methods x 3 metrics; realesrgan-x4plus is unsupported at x2 and x8; one image
    of nearest at x8 failed (an error row instead of metric rows)."""
    rng = np.random.default_rng(seed)
    rows = []

    def row(ds, scale, method, image, metric, value, status="ok", message=""):
        rows.append({"dataset": ds, "degradation": f"x{scale}", "scale": scale, "method": method, "image": image,
                     "metric": metric, "value": value, "protocol": "basicsr", "status": status, "message": message})

    for ds in datasets:
        for scale in (2, 4, 8):
            for k, method in enumerate(METHODS):
                if method == "realesrgan-x4plus" and scale != 4:
                    row(ds, scale, method, "*", "*", math.nan, "unsupported", f"{method} supports x4, not x{scale}")
                    continue
                for i in range(n_images):
                    image = f"img{i:02d}"
                    if method == "nearest" and scale == 8 and i == n_images - 1:
                        row(ds, scale, method, image, "*", math.nan, "error", "img05.png: cannot read image")
                        continue
                    row(ds, scale, method, image, "psnr", 34 - 3 * math.log2(scale) - k + rng.normal(0, 1.5))
                    row(ds, scale, method, image, "ssim", 0.95 - 0.08 * math.log2(scale) + rng.normal(0, 0.03))
                    row(ds, scale, method, image, "lpips", 0.05 * scale + 0.02 * k + abs(rng.normal(0, 0.02)))
    df = pd.DataFrame(rows)
    df["scale"] = df["scale"].astype("int64")
    return df


def make_timings(devices=("cpu",)) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for dev in devices:
        for method, base in (("bicubic", 0.02), ("nearest", 0.005), ("realesrgan-x4plus", 3.0)):
            for i in range(7):
                mp = float(rng.choice([0.25, 0.5, 1.0]))
                rows.append({"dataset": "set5", "degradation": "x4", "method": method, "image": f"img{i:02d}",
                             "seconds": base * mp * (1 + 0.3 * rng.random()) * (0.5 if dev != "cpu" else 1),
                             "megapixels": mp, "device": dev})
    return pd.DataFrame(rows)


def direct_bootstrap(values: np.ndarray, n_boot=2000, seed=0, level=0.95) -> tuple[float, float]:
    """The percentile bootstrap of the mean written out: resample, average, take the quantiles."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@pytest.fixture
def captured(monkeypatch):
    """What each figure shows, read from the live matplotlib objects before save_figure closes them."""
    seen = []
    original = plots.save_figure

    def spy(fig, out_dir, stem, **kw):
        axes = []
        for ax in fig.axes:
            bars = {}
            for c in ax.containers:
                if type(c).__name__ == "ErrorbarContainer" and c.lines[0] is not None:
                    line, _, barcols = c.lines
                    segs = [np.asarray(s) for s in barcols[0].get_segments()] if barcols else []
                    bars[c.get_label()] = {"x": np.asarray(line.get_xdata(), float),
                                           "y": np.asarray(line.get_ydata(), float), "segments": segs}
            axes.append({"xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(), "title": ax.get_title(),
                         "errorbars": bars, "xticklabels": [t.get_text() for t in ax.get_xticklabels()],
                         "yticklabels": [t.get_text() for t in ax.get_yticklabels()],
                         "bar_widths": [p.get_width() for p in ax.patches if type(p).__name__ == "Rectangle"],
                         "xscale": ax.get_xscale()})
        seen.append({"stem": stem, "axes": axes})
        return original(fig, out_dir, stem, **kw)

    monkeypatch.setattr(plots, "save_figure", spy)
    return seen


def svg_texts(path) -> list[str]:
    root = ET.parse(path).getroot()  # raises on invalid XML
    return ["".join(el.itertext()) for el in root.iter() if el.tag.endswith("}text") or el.tag == "text"]


def check_files(infos, min_w=300, min_h=200):
    for info in infos:
        assert info.png.is_file() and info.svg.is_file()
        assert info.png.suffix == ".png" and info.svg.suffix == ".svg" and info.png.stem == info.svg.stem
        assert SAFE_FILE.match(info.png.name) and SAFE_FILE.match(info.svg.name)
        with Image.open(info.png) as im:
            im.verify()
        with Image.open(info.png) as im:
            assert im.format == "PNG" and im.width >= min_w and im.height >= min_h
            assert im.width <= 3000 and im.height <= 3000
        svg_texts(info.svg)
        assert info.title and info.caption


def test_quality_vs_scale_files_labels_captions_and_bootstrap_error_bars(tmp_path, captured):
    scores = make_scores()
    infos = plots.quality_vs_scale(scores, "psnr", tmp_path)
    assert len(infos) == 2  # one per dataset
    check_files(infos, min_w=600, min_h=400)
    assert [c["stem"].split("_")[-1] for c in captured] == ["set5", "set14"]
    for info, cap in zip(infos, captured):
        ds = info.title.split(":")[0]
        texts = " ".join(svg_texts(info.svg))
        for m in METHODS:
            assert m in texts  # legend entries stay text in the SVG
        for tick in ("x2", "x4", "x8"):
            assert tick in texts
        ax = cap["axes"][0]
        assert ax["xscale"] == "log" and ax["xticklabels"] == ["x2", "x4", "x8"]
        assert "PSNR" in ax["ylabel"] and "(higher is better)" in ax["ylabel"]
        # the unsupported cells and the failed image are named in the caption
        assert "realesrgan-x4plus: unsupported at x2, x8" in info.caption
        assert "nearest: 1 image(s) failed at x8" in info.caption
        assert "95%" in info.caption and "bootstrap" in info.caption
        # every drawn point and error bar equals the mean and a direct bootstrap of the images' values
        bars = ax["errorbars"]
        assert set(bars) == set(METHODS)
        for method, eb in bars.items():
            finite = np.isfinite(eb["y"])
            scales = [int(round(2 ** round(math.log2(x)))) for x in eb["x"]]
            drawn = {s: y for s, y, f in zip(scales, eb["y"], finite) if f}
            assert sorted(drawn) == ([4] if method == "realesrgan-x4plus" else [2, 4, 8])
            segs = [s for s in eb["segments"] if s.size and np.all(np.isfinite(s))]
            assert len(segs) == len(drawn)
            for seg, (scale, y) in zip(segs, sorted(drawn.items())):
                v = scores[(scores["dataset"] == ds) & (scores["method"] == method) & (scores["scale"] == scale)
                           & (scores["metric"] == "psnr") & (scores["status"] == "ok")]["value"].to_numpy()
                assert v.size == (N_IMAGES - 1 if (method, scale) == ("nearest", 8) else N_IMAGES)
                assert y == pytest.approx(v.mean(), abs=1e-12)
                lo, hi = direct_bootstrap(v)
                assert sorted(seg[:, 1]) == pytest.approx([lo, hi], abs=1e-12)
                assert lo < v.mean() < hi
        # the returned numbers are the drawn ones
        data = info.data.set_index(["series", "scale"])
        assert data.loc[("bicubic", 4), "mean"] == pytest.approx(bars["bicubic"]["y"][1])
        assert plots.bootstrap_ci(np.array([1.0, 2.0, 4.0])) == pytest.approx(direct_bootstrap(np.array([1.0, 2, 4])))


def test_odd_dataset_name_gives_safe_files_and_escaped_svg(tmp_path, captured):
    scores = make_scores(datasets=(SCRIPT,), n_images=4)
    infos = (plots.quality_vs_scale(scores, "lpips", tmp_path) + plots.perception_distortion(scores, tmp_path)
             + plots.distributions(scores[scores["scale"] == 4], "psnr", tmp_path))
    assert len(infos) == 3
    check_files(infos)
    for info in infos:
        for p in (info.png, info.svg):
            assert p.parent == tmp_path and "<" not in p.name and "/" not in p.name[:-4]
        raw = info.svg.read_text()
        assert "<script" not in raw.lower()  # the name is XML-escaped text, never markup
        root = ET.parse(info.svg).getroot()
        assert not [el for el in root.iter() if el.tag.lower().endswith("script")]
        assert any(SCRIPT in t for t in svg_texts(info.svg))  # shown literally
        assert SCRIPT in info.caption  # plain text: the HTML writer escapes it
    # two names that clean to the same text still get different files
    twin = make_scores(datasets=("a/b", "a_b"), n_images=3)
    names = [i.png.name for i in plots.quality_vs_scale(twin, "ssim", tmp_path / "twin")]
    assert len(set(names)) == 2 and all(SAFE_FILE.match(n) for n in names)


def test_same_input_gives_identical_files(tmp_path):
    scores = make_scores(datasets=("set5",))
    a = plots.quality_vs_scale(scores, "psnr", tmp_path / "a")
    b = plots.quality_vs_scale(scores.copy(), "psnr", tmp_path / "b")
    assert len(a) == len(b) == 1
    for x, y in zip(a, b):
        assert x.svg.read_bytes() == y.svg.read_bytes()
        assert x.png.read_bytes() == y.png.read_bytes()
        assert x.caption == y.caption
    assert b"<dc:date>" not in a[0].svg.read_bytes()


def test_perception_distortion_points_corner_and_nr_metric(tmp_path, captured):
    scores = make_scores(datasets=("set5",))
    infos = plots.perception_distortion(scores, tmp_path)  # x = lpips, y = psnr
    assert len(infos) == 1
    check_files(infos)
    info = infos[0]
    assert "best corner is top-left" in info.caption
    assert "realesrgan-x4plus: unsupported at x2, x8" in info.caption
    ax = captured[0]["axes"][0]
    assert "LPIPS" in ax["xlabel"] and "lower is better" in ax["xlabel"]
    assert "PSNR" in ax["ylabel"] and "higher is better" in ax["ylabel"]
    pts = info.data
    assert len(pts) == 3 + 3 + 1  # one point per (method, scale) with numbers
    r = pts[(pts["series"] == "nearest") & (pts["scale"] == 8)].iloc[0]
    ok = scores[(scores["method"] == "nearest") & (scores["scale"] == 8) & (scores["status"] == "ok")]
    assert r["lpips_mean"] == pytest.approx(ok[ok["metric"] == "lpips"]["value"].mean())
    assert r["psnr_mean"] == pytest.approx(ok[ok["metric"] == "psnr"]["value"].mean())
    texts = " ".join(svg_texts(info.svg))
    assert all(m in texts for m in METHODS) and "best corner" in texts
    # the other corners, a no-reference metric as x, an unknown metric, a missing one
    assert "bottom-right" in plots.perception_distortion(scores, tmp_path / "b", x="ssim", y="lpips")[0].caption
    nr = scores[scores["metric"] == "lpips"].assign(metric="niqe")
    nr_info = plots.perception_distortion(pd.concat([scores, nr]), tmp_path / "c", x="niqe", y="ssim")
    assert len(nr_info) == 1 and "top-left" in nr_info[0].caption
    foo = scores[scores["metric"] == "ssim"].assign(metric="foo")
    plots.perception_distortion(pd.concat([scores, foo]), tmp_path / "d", x="foo", y="psnr")
    assert "?" in captured[-1]["axes"][0]["xlabel"]
    assert plots.perception_distortion(scores, tmp_path / "e", x="dists") == []


def test_distributions_per_dataset_and_scale(tmp_path, captured):
    scores = make_scores(datasets=("set5",), n_images=5)
    infos = plots.distributions(scores, "ssim", tmp_path)
    assert [i.title.split(":")[0] for i in infos] == ["set5 x2", "set5 x4", "set5 x8"]
    check_files(infos)
    by_scale = {int(i.title.split(":")[0].split()[1][1:]): (i, c) for i, c in zip(infos, captured)}
    info4, cap4 = by_scale[4]
    assert cap4["axes"][0]["xticklabels"] == list(METHODS)
    assert "SSIM" in cap4["axes"][0]["ylabel"] and "(higher is better)" in cap4["axes"][0]["ylabel"]
    info2, cap2 = by_scale[2]
    assert cap2["axes"][0]["xticklabels"] == ["bicubic", "nearest"]
    assert "realesrgan-x4plus: unsupported at x2" in info2.caption
    assert "1 image(s) failed at x8" in by_scale[8][0].caption
    # the plotted per-image values are the ok values of the cell
    d = info4.data
    want = scores[(scores["scale"] == 4) & (scores["metric"] == "ssim")]
    assert sorted(d["value"]) == pytest.approx(sorted(want["value"]))
    assert "realesrgan-x4plus" in " ".join(svg_texts(info4.svg))


def test_throughput_medians_and_iqr(tmp_path, captured):
    t = make_timings(devices=("cpu", "cuda"))
    infos = plots.throughput(t, tmp_path)
    assert len(infos) == 1
    check_files(infos, min_w=600)
    info, cap = infos[0], captured[0]
    left, right = cap["axes"]
    assert "images per second" in left["xlabel"] and "higher is better" in left["xlabel"]
    assert "per megapixel" in right["xlabel"] and "lower is better" in right["xlabel"]
    labels = [f"{m} [{d}]" for d in ("cpu", "cuda") for m in ("bicubic", "nearest", "realesrgan-x4plus")]
    assert left["yticklabels"] == labels
    data = info.data.set_index("series")
    for label in labels:
        method, dev = label[:-1].split(" [")
        g = t[(t["method"] == method) & (t["device"] == dev)]
        ips = np.percentile(1 / g["seconds"], [25, 50, 75])
        ms = np.percentile(1000 * g["seconds"] / g["megapixels"], [25, 50, 75])
        row = data.loc[label]
        assert [row["ips_q25"], row["ips_median"], row["ips_q75"]] == pytest.approx(ips)
        assert [row["ms_per_mp_q25"], row["ms_per_mp_median"], row["ms_per_mp_q75"]] == pytest.approx(ms)
    assert left["bar_widths"] == pytest.approx(list(data["ips_median"]))
    assert right["bar_widths"] == pytest.approx(list(data["ms_per_mp_median"]))
    texts = " ".join(svg_texts(info.svg))
    assert "realesrgan-x4plus [cuda]" in texts and "interquartile" in info.caption


def test_empty_and_partial_inputs_give_no_figures(tmp_path):
    empty = make_scores().iloc[0:0]
    assert plots.quality_vs_scale(empty, "psnr", tmp_path) == []
    assert plots.perception_distortion(empty, tmp_path) == []
    assert plots.distributions(empty, "psnr", tmp_path) == []
    assert plots.throughput(make_timings().iloc[0:0], tmp_path) == []
    assert plots.throughput(make_timings().assign(seconds=float("nan")), tmp_path) == []
    failed = make_scores(datasets=("set5",)).assign(status="error", value=float("nan"))
    assert plots.quality_vs_scale(failed, "psnr", tmp_path) == []
    assert plots.distributions(failed, "psnr", tmp_path) == []
    assert plots.quality_vs_scale(make_scores(datasets=("set5",)), "dists", tmp_path) == []
    assert not list(tmp_path.iterdir())


def crowded_scores() -> pd.DataFrame:
    """Three methods that nearly coincide at x8 and x16 (as interpolation baselines do on the
    perception-distortion plane): their labels would sit on top of each other."""
    rng = np.random.default_rng(5)
    rows = []
    for scale in (2, 4, 8, 16):
        for k, method in enumerate(METHODS):
            spread = 1.0 if scale <= 4 else 0.002
            for i in range(4):
                for metric, value in (("psnr", 36 - 3 * math.log2(scale) - spread * k + rng.normal(0, 0.001)),
                                      ("lpips", 0.05 * scale + 0.01 * spread * k + rng.normal(0, 1e-5))):
                    rows.append({"dataset": "set5", "degradation": f"x{scale}", "scale": scale, "method": method,
                                 "image": f"img{i}", "metric": metric, "value": value, "protocol": "basicsr",
                                 "status": "ok", "message": ""})
    return pd.DataFrame(rows)


def test_perception_distortion_labels_do_not_overlap(tmp_path, monkeypatch):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Annotation, Text

    seen = []
    original = plots.save_figure

    def spy(fig, out_dir, stem, **kw):
        if not isinstance(fig.canvas, FigureCanvasAgg):
            FigureCanvasAgg(fig)
        with plots._style():
            fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        labels = [t for t in ax.texts if isinstance(t, Annotation)]
        others = [t for t in ax.texts if not isinstance(t, Annotation)]  # the "best corner" note
        points = np.vstack([ax.transData.transform(c.get_offsets()) for c in ax.collections])
        # the text's own box (an annotation's extent includes its leader line)
        seen.append({"labels": [(t.get_text(), Text.get_window_extent(t, renderer)) for t in labels],
                     "others": [t.get_window_extent(renderer) for t in others], "points": points,
                     "frame": ax.get_window_extent(renderer)})
        return original(fig, out_dir, stem, **kw)

    monkeypatch.setattr(plots, "save_figure", spy)
    infos = plots.perception_distortion(crowded_scores(), tmp_path)
    assert len(infos) == 1 and len(seen) == 1
    fig = seen[0]
    boxes = [b for _, b in fig["labels"]]
    assert sorted(t for t, _ in fig["labels"]) == sorted(f"x{s}" for s in (2, 4, 8, 16) for _ in METHODS)

    def overlap(a, b) -> float:
        w, h = min(a.x1, b.x1) - max(a.x0, b.x0), min(a.y1, b.y1) - max(a.y0, b.y0)
        return w * h if w > 0.5 and h > 0.5 else 0.0

    clashes = [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if overlap(boxes[i], boxes[j])]
    assert clashes == [], [(fig["labels"][i][0], fig["labels"][j][0]) for i, j in clashes]
    assert not any(overlap(b, o) for b in boxes for o in fig["others"])  # nor the corner note
    for b in boxes:  # no label covers a marker's centre, and all stay inside the axes
        assert not any(b.x0 < x < b.x1 and b.y0 < y < b.y1 for x, y in fig["points"])
        f = fig["frame"]
        assert f.x0 - 0.5 <= b.x0 and b.x1 <= f.x1 + 0.5 and f.y0 - 0.5 <= b.y0 and b.y1 <= f.y1 + 0.5
    # deterministic
    again = plots.perception_distortion(crowded_scores(), tmp_path / "again")
    assert again[0].svg.read_bytes() == infos[0].svg.read_bytes()


def test_distribution_panels_one_figure_per_dataset_in_input_order(tmp_path, captured):
    scores = make_scores(datasets=("set5", "set14"), n_images=5)
    infos = plots.distribution_panels(scores, "psnr", tmp_path)
    assert [i.dataset for i in infos] == ["set5", "set14"]  # input order, not sorted by name
    check_files(infos, min_w=900)
    axes = captured[0]["axes"]
    assert [a["title"] for a in axes] == ["x2", "x4", "x8"]
    assert axes[0]["xticklabels"] == ["bicubic", "nearest"] and axes[1]["xticklabels"] == list(METHODS)
    assert "PSNR" in axes[0]["ylabel"] and "realesrgan-x4plus: unsupported at x2, x8" in infos[0].caption
    assert "x8: bicubic 5, nearest 4" in infos[0].caption and "1 image(s) failed at x8" in infos[0].caption
    v = infos[0].data
    want = scores[(scores["dataset"] == "set5") & (scores["metric"] == "psnr") & (scores["status"] == "ok")]
    assert sorted(v["value"]) == pytest.approx(sorted(want["value"]))
    # figures of every kind say which dataset they show, and follow the input order too
    rev = pd.concat([scores[scores["dataset"] == "set14"], scores[scores["dataset"] == "set5"]])
    assert [i.dataset for i in plots.quality_vs_scale(rev, "psnr", tmp_path / "q")] == ["set14", "set5"]
    assert [i.dataset for i in plots.perception_distortion(scores, tmp_path / "p")] == ["set5", "set14"]


def test_infinite_scores_are_named_in_captions(tmp_path):
    scores = make_scores(datasets=("set5",))
    hit = scores.index[(scores["method"] == "bicubic") & (scores["scale"] == 2) & (scores["metric"] == "psnr")][:2]
    scores.loc[hit, "value"] = math.inf
    for info in plots.quality_vs_scale(scores, "psnr", tmp_path) + plots.distributions(scores, "psnr", tmp_path)[:1]:
        assert "bicubic: 2 image(s) scored inf at x2 (not drawn: the mean is infinite)" in info.caption
    for info in plots.distribution_panels(scores, "psnr", tmp_path):
        assert "bicubic: 2 image(s) scored inf at x2 (not drawn: the mean is infinite)" in info.caption
