"""Leaderboard figures: quality vs scale, perception-distortion, per-image distributions, throughput.

Every function takes the tidy frames of `bench.run.store` (``load_scores`` / ``load_timings``; several
runs may be concatenated) and an output folder, writes one PNG and one SVG per figure and returns
a list of `FigureInfo` (paths, a plain-text title and caption, and the plotted numbers as a
DataFrame). Nothing to plot gives ``[]``, never an exception.

- Figures are drawn on `matplotlib.figure.Figure` objects rendered by the Agg (PNG) and SVG
  backends: pyplot and its global state are never touched, nothing is shown.
- Output is reproducible: the SVG ids come from a fixed hash salt, the SVG carries no date, text
  stays text (``svg.fonttype = none``, so labels can be searched), random jitter is seeded.
- File names are built from `bench.run.store.safe_name` parts; when a part had to be changed (odd
  characters such as ``<script>`` or ``/``) a short hash of the original names is appended, so
  two different names never share a file.
- Labels drawn in figures are literal: ``$`` is escaped (no mathtext), a leading ``_`` does not
  hide a legend entry. Titles and captions are returned as plain text; whoever puts them in HTML
  or LaTeX escapes them.
- Metric directions come from `iqa.metric_info`; an unknown metric is taken as higher-is-better
  and its axis label says so with a ``?``.
- Confidence intervals: 95 % percentile bootstrap of the mean over images (2000 resamples,
  seed 0), `bench.report.stats.bootstrap_ci`.
- Order: datasets, scales and methods appear in the order of the input frame (the report passes
  its scores in table order, `bench.report.leaderboard.ordered_scores`), so figures and tables agree; a
  method keeps its colour across the figures of a dataset.
- Infinite scores (PSNR of an output identical to its reference) cannot be drawn: they are left
  out of points and means, and the caption counts them per method and scale; nothing is dropped
  silently.
- Perception-distortion labels never overlap each other, the points or the corner note: each
  label takes the nearest free place around its point (a thin leader line joins the two when the
  label had to move away), see `place_labels`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from iqa.errors import SrbenchError

from bench.report.stats import bootstrap_ci as _stats_bootstrap_ci  # one bootstrap for tables and figures
from bench.run.store import safe_name

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["FigureInfo", "bootstrap_ci", "cell_summary", "distribution_panels", "distributions", "metric_direction",
           "perception_distortion", "place_labels", "quality_vs_scale", "safe_stem", "save_figure", "throughput"]

DPI = 120
N_BOOT = 2000
LEVEL = 0.95
SEED = 0
SVG_SALT = "srbench"
_STATUS_TEXT = {"unsupported": "unsupported", "unavailable": "unavailable", "missing": "missing data",
                "error": "failed", "not run": "not run"}
_UNITS = {"psnr": "dB"}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")


@dataclass
class FigureInfo:
    """One written figure: its PNG and SVG files, a plain-text title and caption (not escaped), the
    numbers it shows (``data``, a DataFrame; ``None`` when not applicable) and the dataset it is
    about (``None`` for figures over several)."""

    png: Path
    svg: Path
    title: str
    caption: str
    data: Any = None
    dataset: str | None = None


# ---------------------------------------------------------------------------------------------
# helpers

def bootstrap_ci(values, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval ``(lo, hi)`` of the mean of ``values`` (NaN/inf dropped):
    ``n_boot`` resamples with replacement drawn by ``numpy.random.default_rng(seed)``, the
    ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of their means. One value (or all equal)
    gives ``(v, v)``; none gives ``(nan, nan)``. Delegates to `bench.report.stats.bootstrap_ci`."""
    return _stats_bootstrap_ci(values, n_boot=n_boot, level=level, seed=seed)


def metric_direction(metric: str) -> tuple[bool, str]:
    """``(higher_better, text)``; an unknown metric is taken as higher-is-better, with a ``?``."""
    import iqa

    try:
        hb = bool(iqa.metric_info(metric).higher_better)
    except SrbenchError:
        return True, "higher is better?"
    return hb, "higher is better" if hb else "lower is better"


def metric_label(metric: str) -> str:
    """Axis label: ``PSNR [dB] (higher is better)``; unknown metrics end in ``?``."""
    unit = _UNITS.get(metric)
    return f"{metric.upper()}{f' [{unit}]' if unit else ''} ({metric_direction(metric)[1]})"


def safe_stem(*parts: str) -> str:
    """A file stem from name parts: `safe_name` of each (at most 48 characters), joined by ``_``,
    plus ``-`` and 8 hex digits of sha256 of the original parts when any part had to change."""
    cleaned = [safe_name(str(p))[:48] for p in parts]
    stem = "_".join(cleaned)
    if any(c != str(p) for c, p in zip(cleaned, parts)):
        stem += "-" + hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:8]
    return stem


def _txt(s: object) -> str:
    """Text drawn literally by matplotlib: no mathtext, no hidden ``_`` legend labels."""
    s = str(s).replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def _rc() -> dict[str, Any]:
    return {"svg.hashsalt": SVG_SALT, "svg.fonttype": "none", "font.size": 9, "axes.titlesize": 10,
            "legend.fontsize": 8, "figure.dpi": DPI, "savefig.dpi": DPI, "axes.grid": True, "grid.alpha": 0.3}


@contextlib.contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(_rc()):
        yield


def _figure(w: float, h: float) -> "Figure":
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=DPI, layout="constrained")


def _colors(names: list[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def save_figure(fig: "Figure", out_dir: str | Path, stem: str, *, title: str = "", caption: str = "",
                data: Any = None, dataset: str | None = None) -> FigureInfo:
    """Write ``fig`` as ``<stem>.png`` (120 dpi) and ``<stem>.svg`` in ``out_dir`` (reproducibly:
    fixed SVG hash salt, no date, text kept as text) and release it. A ``stem`` that is not a safe
    file name already is passed through `safe_stem`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = str(stem)
    if safe_name(stem) != stem or len(stem) > 160:  # names made by safe_stem pass unchanged
        stem = safe_stem(stem)
    png, svg = out / f"{stem}.png", out / f"{stem}.svg"
    try:
        with _style():
            fig.savefig(png, format="png", dpi=DPI, metadata={"Software": None})
            fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    finally:
        if "matplotlib.pyplot" in sys.modules:  # a figure made with pyplot by a caller is released too
            sys.modules["matplotlib.pyplot"].close(fig)
        fig.clear()
    return FigureInfo(png, svg, title, caption, data, None if dataset is None else str(dataset))


def _series(df: "pd.DataFrame") -> "pd.DataFrame":
    """Add the column ``series``: the method label, plus ``[protocol]`` when a dataset mixes protocols."""
    df = df.copy()
    multi = df.groupby("dataset")["protocol"].transform("nunique") > 1
    df["series"] = df["method"].astype(str)
    df.loc[multi, "series"] = df.loc[multi, "method"].astype(str) + " [" + df.loc[multi, "protocol"].astype(str) + "]"
    return df


def _ok_values(df: "pd.DataFrame", metric: str) -> "pd.DataFrame":
    """Ok rows of ``metric`` averaged per (dataset, degradation, scale, series, image): duplicates
    from concatenated runs count once."""
    ok = df[(df["metric"] == metric) & (df["status"] == "ok") & np.isfinite(df["value"].astype("float64"))]
    keys = ["dataset", "degradation", "scale", "series", "image"]
    return ok.groupby(keys, sort=False, as_index=False)["value"].mean()


def _num(v: float) -> str:
    """A short number for annotations: 9600, 83.3, 0.417."""
    if not np.isfinite(v):
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _scale_text(scales: list[int]) -> str:
    return ", ".join(f"x{s}" for s in scales)


def _gaps(df: "pd.DataFrame", metric: str) -> list[str]:
    """Plain-text notes on the cells of ``df`` (one dataset) without ``metric`` numbers, per series:
    ``"m: unsupported at x2, x8"``, on cells where some images failed, and on infinite scores
    (which cannot be drawn)."""
    rows = df[(df["metric"] == metric) | (df["metric"] == "*")]
    scales = sorted(df["scale"].unique())
    notes = []
    for series in dict.fromkeys(df["series"]):
        mine = rows[rows["series"] == series]
        reasons: dict[str, list[int]] = {}
        partial = []
        infinite = []
        for scale in scales:
            cell = mine[mine["scale"] == scale]
            scored = cell[(cell["status"] == "ok") & (cell["metric"] == metric)]
            values = scored["value"].astype("float64")
            ok = scored[np.isfinite(values)]
            inf = scored[np.isinf(values)]
            if len(inf):
                infinite.append(f"{inf['image'].nunique()} image(s) scored {'inf' if (inf['value'] > 0).all() else '+-inf'}"
                                f" at x{scale}")
            if len(ok) == 0 and len(inf) == 0:
                bad = cell[cell["status"] != "ok"]
                status = "not run"
                for s in ("unsupported", "unavailable", "missing", "error"):
                    if (bad["status"] == s).any():
                        status = s
                        break
                if len(cell) and status == "not run":
                    status = "error"  # rows but no finite value
                reasons.setdefault(_STATUS_TEXT.get(status, status), []).append(int(scale))
            else:
                failed = set(cell.loc[cell["status"] != "ok", "image"]) - set(scored["image"]) - {"*"}
                if failed:
                    partial.append(f"{len(failed)} image(s) failed at x{scale}")
        if reasons:
            parts = "; ".join(f"{why} at {_scale_text(sc)}" for why, sc in reasons.items())
            notes.append(f"{series}: {parts}")
        if partial:
            notes.append(f"{series}: {', '.join(partial)} (mean over the images that worked)")
        if infinite:
            notes.append(f"{series}: {', '.join(infinite)} (not drawn: the mean is infinite)")
    return notes


def _degradation_text(df: "pd.DataFrame") -> str:
    real = sorted(d for d in df["degradation"].unique() if str(d).startswith("real-"))
    return " (real LR/HR pairs)" if real else ""


# ---------------------------------------------------------------------------------------------
# quality vs scale

def cell_summary(scores: "pd.DataFrame", metric: str, *, n_boot: int = N_BOOT, seed: int = SEED,
                 level: float = LEVEL) -> "pd.DataFrame":
    """Mean of ``metric`` over the ok images of each (dataset, degradation, scale, series) with its
    bootstrap interval: columns dataset, degradation, scale, series, n, mean, ci_lo, ci_hi."""
    import pandas as pd

    cols = ["dataset", "degradation", "scale", "series", "n", "mean", "ci_lo", "ci_hi"]
    if scores is None or len(scores) == 0:
        return pd.DataFrame(columns=cols)
    vals = _ok_values(_series(scores), metric)
    out = []
    for (ds, deg, scale, series), g in vals.groupby(["dataset", "degradation", "scale", "series"], sort=False):
        v = g["value"].to_numpy(np.float64)
        lo, hi = bootstrap_ci(v, n_boot=n_boot, seed=seed, level=level)
        out.append((ds, deg, int(scale), series, int(v.size), float(v.mean()), lo, hi))
    return pd.DataFrame(out, columns=cols)


def quality_vs_scale(scores: "pd.DataFrame", metric: str, out_dir: str | Path) -> list[FigureInfo]:
    """One figure per dataset: mean ``metric`` over ok images against the scale (log2 axis,
    ticks ``x2``, ``x4``, ...), one line per method with 95 % bootstrap intervals as error bars.
    Cells without numbers are left out of the lines and named in the caption."""
    if scores is None or len(scores) == 0:
        return []
    df = _series(scores)
    summary = cell_summary(scores, metric)
    if summary.empty:
        return []
    infos = []
    for ds in dict.fromkeys(df["dataset"]):
        s = summary[summary["dataset"] == ds]
        if s.empty:
            continue
        d = df[df["dataset"] == ds]
        scales = sorted(int(x) for x in d["scale"].unique())
        series = list(dict.fromkeys(d["series"]))
        colors = _colors(series)
        with _style():
            fig = _figure(7.0, 4.4)
            ax = fig.add_subplot()
            n_ser = len(series)
            for i, name in enumerate(series):
                rows = s[s["series"] == name].groupby("scale", as_index=False).agg(
                    mean=("mean", "mean"), ci_lo=("ci_lo", "min"), ci_hi=("ci_hi", "max"))
                if rows.empty:
                    continue
                by_scale = rows.set_index("scale")
                y = np.array([by_scale["mean"].get(sc, np.nan) for sc in scales], dtype=np.float64)
                lo = np.array([by_scale["ci_lo"].get(sc, np.nan) for sc in scales], dtype=np.float64)
                hi = np.array([by_scale["ci_hi"].get(sc, np.nan) for sc in scales], dtype=np.float64)
                dodge = 2.0 ** (0.035 * (i - (n_ser - 1) / 2.0))  # side by side, so bars do not hide each other
                x = np.asarray(scales, dtype=np.float64) * dodge
                yerr = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
                ax.errorbar(x, y, yerr=yerr, marker=_MARKERS[i % len(_MARKERS)], markersize=5, capsize=3,
                            linewidth=1.4, color=colors[name], label=_txt(name))
            ax.set_xscale("log", base=2)
            ax.set_xticks(scales)
            ax.set_xticklabels([f"x{sc}" for sc in scales])
            ax.minorticks_off()
            if len(scales) == 1:
                ax.set_xlim(scales[0] / 1.5, scales[0] * 1.5)
            else:
                ax.set_xlim(scales[0] / 2 ** 0.3, scales[-1] * 2 ** 0.3)
            ax.set_xlabel("scale" + _txt(_degradation_text(d)))
            ax.set_ylabel(_txt(metric_label(metric)))
            title = f"{ds}: {metric.upper()} vs scale"
            ax.set_title(_txt(title))
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        protocols = ", ".join(sorted(map(str, d["protocol"].dropna().unique())))
        caption = (f"{ds}: mean {metric.upper()} ({metric_direction(metric)[1]}) over the images at each scale, "
                   f"one line per method; error bars: {round(LEVEL * 100)}% percentile bootstrap interval of "
                   f"the mean over images ({N_BOOT} resamples, seed {SEED}). Protocol: {protocols}.")
        gaps = _gaps(d, metric)
        if gaps:
            caption += " No numbers or partial: " + "; ".join(gaps) + "."
        data = s.reset_index(drop=True)
        infos.append(save_figure(fig, out_dir, safe_stem("quality", metric, ds), title=title, caption=caption,
                                 data=data, dataset=ds))
    return infos


# ---------------------------------------------------------------------------------------------
# perception-distortion

def _corner(x: str, y: str) -> str:
    xh, _ = metric_direction(x)
    yh, _ = metric_direction(y)
    return f"{'top' if yh else 'bottom'}-{'right' if xh else 'left'}"


def perception_distortion(scores: "pd.DataFrame", out_dir: str | Path, x: str = "lpips",
                          y: str = "psnr") -> list[FigureInfo]:
    """One figure per dataset: one point per (method, scale), the means of ``x`` and ``y`` over the
    images where both are ok; colour = method, marker and annotation = scale. ``[]`` when either
    metric has no ok values. ``x`` may be any metric, no-reference ones (``niqe``) included."""
    if scores is None or len(scores) == 0:
        return []
    df = _series(scores)
    vx, vy = _ok_values(df, x), _ok_values(df, y)
    if vx.empty or vy.empty:
        return []
    keys = ["dataset", "degradation", "scale", "series", "image"]
    both = vx.merge(vy, on=keys, suffixes=("_x", "_y"))
    if both.empty:
        return []
    pts = both.groupby(["dataset", "degradation", "scale", "series"], sort=False).agg(
        x=("value_x", "mean"), y=("value_y", "mean"), n=("image", "nunique")).reset_index()
    corner = _corner(x, y)
    infos = []
    for ds in dict.fromkeys(df["dataset"]):
        p = pts[pts["dataset"] == ds]
        if p.empty:
            continue
        d = df[df["dataset"] == ds]
        series = list(dict.fromkeys(d["series"]))
        scales = sorted(int(s) for s in d["scale"].unique())
        colors = _colors(series)
        markers = {sc: _MARKERS[i % len(_MARKERS)] for i, sc in enumerate(scales)}
        with _style():
            from matplotlib.lines import Line2D

            fig = _figure(7.0, 4.8)
            ax = fig.add_subplot()
            for _, r in p.iterrows():
                ax.scatter([r["x"]], [r["y"]], color=colors[r["series"]], marker=markers[int(r["scale"])], s=42,
                           edgecolors="black", linewidths=0.4, zorder=3)
            for name in series:  # connect a method's scales, thin, in scale order
                q = p[p["series"] == name].sort_values("scale")
                if len(q) > 1:
                    ax.plot(q["x"], q["y"], color=colors[name], linewidth=0.8, alpha=0.5, zorder=2)
            handles = [Line2D([], [], color=colors[n], marker="o", linestyle="", label=_txt(n))
                       for n in series if (p["series"] == n).any()]
            handles += [Line2D([], [], color="gray", marker=markers[sc], linestyle="", label=f"x{sc}")
                        for sc in scales if (p["scale"] == sc).any()]
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
            ax.set_xlabel(_txt(metric_label(x)))
            ax.set_ylabel(_txt(metric_label(y)))
            vert, horiz = corner.split("-")
            note = ax.text(0.98 if horiz == "right" else 0.02, 0.97 if vert == "top" else 0.03, "best corner",
                           transform=ax.transAxes, ha=horiz, va=vert, fontsize=8, style="italic", color="dimgray")
            ax.margins(0.12)
            place_labels(ax, list(zip(p["x"], p["y"])), [f"x{int(sc)}" for sc in p["scale"]],
                         [colors[n] for n in p["series"]], obstacles=[note])
            title = f"{ds}: {y.upper()} vs {x.upper()}"
            ax.set_title(_txt(title))
        caption = (f"{ds}: perception-distortion plane; each point is one method at one scale (colour: method, "
                   f"marker and label: scale), the mean over the images where both {x.upper()} "
                   f"({metric_direction(x)[1]}) and {y.upper()} ({metric_direction(y)[1]}) were computed. "
                   f"The best corner is {corner}.")
        gaps = list(dict.fromkeys(_gaps(d, x) + _gaps(d, y)))
        if gaps:
            caption += " No numbers or partial: " + "; ".join(gaps) + "."
        infos.append(save_figure(fig, out_dir, safe_stem("pd", x, y, ds), title=title, caption=caption,
                                 data=p.reset_index(drop=True).rename(columns={"x": f"{x}_mean", "y": f"{y}_mean"}),
                                 dataset=ds))
    return infos


def place_labels(ax, points: list[tuple[float, float]], labels: list[str], colors: list[Any], *,
                 obstacles: list[Any] = (), marker_px: float = 6.0, fontsize: float = 7.0) -> list[Any]:
    """Annotate each point of ``ax`` (data coordinates) with its label so that no two labels
    overlap, no label covers a point or one of the ``obstacles`` (text artists), and every label
    stays inside the axes. Each label takes, in order, the first free candidate place on rings of
    growing distance around its point (8 directions per ring, nearest first); when none is free,
    the place that overlaps least. A label placed away from its point is joined to it by a thin
    leader line. Deterministic; the axes limits are frozen first. Returns the annotations."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox

    fig = ax.figure
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    ax.autoscale_view()
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    fig.draw_without_rendering()  # lay the figure out: the pixel positions below are final
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    pts = ax.transData.transform(np.asarray(points, dtype=np.float64).reshape(-1, 2)) if points else np.zeros((0, 2))
    to_pt = 72.0 / fig.dpi
    pad = 1.5
    blocked = [Bbox.from_extents(px - marker_px, py - marker_px, px + marker_px, py + marker_px) for px, py in pts]
    blocked += [o.get_window_extent(renderer) for o in obstacles]
    placed: list[Any] = []
    out = []
    angles = [45, 0, 90, 135, 180, 315, 270, 225]
    for (px, py), (x, y), label, color in zip(pts, points, labels, colors):
        probe = ax.annotate(label, (0, 0), xycoords="figure pixels", fontsize=fontsize, ha="center", va="center")
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width + 2 * pad, ext.height + 2 * pad
        best = None
        for ring in range(8):
            gap = marker_px + 1.0 + ring * 0.6 * max(h, 6.0)
            for a in angles:
                c, s_ = math.cos(math.radians(a)), math.sin(math.radians(a))
                cx, cy = px + c * (gap + w / 2), py + s_ * (gap + h / 2)
                box = Bbox.from_extents(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1)
                overlap = sum(_overlap(box, b) for b in blocked + placed) + (0.0 if inside else w * h)
                if best is None or overlap < best[0]:
                    best = (overlap, box, ring)
                if overlap == 0:
                    break
            if best[0] == 0:
                break
        _, box, ring = best
        placed.append(box)
        cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
        arrow = {"arrowstyle": "-", "color": color, "linewidth": 0.6, "shrinkA": 0, "shrinkB": marker_px / 2,
                 "alpha": 0.8} if ring > 0 else None
        out.append(ax.annotate(label, (float(x), float(y)), xycoords="data",
                               xytext=((cx - px) * to_pt, (cy - py) * to_pt), textcoords="offset points",
                               ha="center", va="center", fontsize=fontsize, color=color, zorder=4,
                               arrowprops=arrow, annotation_clip=False))
    return out


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


# ---------------------------------------------------------------------------------------------
# per-image distributions

def distributions(scores: "pd.DataFrame", metric: str, out_dir: str | Path) -> list[FigureInfo]:
    """One figure per (dataset, scale): box plot of the per-image ``metric`` of each method with the
    images as (seeded, jittered) points and the mean as a white triangle."""
    if scores is None or len(scores) == 0:
        return []
    df = _series(scores)
    vals = _ok_values(df, metric)
    if vals.empty:
        return []
    infos = []
    for (ds, deg), d in df.groupby(["dataset", "degradation"], sort=False):
        v = vals[(vals["dataset"] == ds) & (vals["degradation"] == deg)]
        if v.empty:
            continue
        scale = int(d["scale"].iloc[0])
        series = [s for s in dict.fromkeys(d["series"]) if (v["series"] == s).any()]
        colors = _colors(list(dict.fromkeys(df.loc[df["dataset"] == ds, "series"])))
        arrays = [v.loc[v["series"] == s, "value"].to_numpy(np.float64) for s in series]
        rng = np.random.default_rng(SEED)
        with _style():
            fig = _figure(max(4.5, 0.9 * len(series) + 2.5), 4.4)
            ax = fig.add_subplot()
            _box_panel(ax, arrays, series, colors, rng, rotate=len(series) > 3, point=9, mean=36)
            ax.set_ylabel(_txt(metric_label(metric)))
            title = f"{ds} {deg}: per-image {metric.upper()}"
            ax.set_title(_txt(title))
        counts = ", ".join(f"{s} {a.size}" for s, a in zip(series, arrays))
        caption = (f"{ds} {deg}: per-image {metric.upper()} ({metric_direction(metric)[1]}) of each method; "
                   f"box: quartiles and median, whiskers: the furthest image within 1.5 IQR, points: the images "
                   f"(jittered sideways), white triangle: the mean. Images per method: {counts}.")
        gaps = _gaps(d, metric)
        if gaps:
            caption += " No numbers or partial: " + "; ".join(gaps) + "."
        infos.append(save_figure(fig, out_dir, safe_stem("dist", metric, ds, str(deg)), title=title, caption=caption,
                                 data=v.reset_index(drop=True).assign(scale=scale), dataset=ds))
    return infos


def _box_panel(ax: Any, arrays: list, series: list, colors: dict, rng: np.random.Generator, *, rotate: bool,
               point: float, mean: float) -> None:
    """One box plot per series on ``ax``: the box (quartiles, median, whiskers at 1.5 IQR) in the
    series' colour, the images as points jittered sideways by ``rng``, the mean as a white triangle."""
    pos = np.arange(1, len(series) + 1)
    bp = ax.boxplot(arrays, positions=pos, widths=0.55, showfliers=False, patch_artist=True,
                    medianprops={"color": "black"})
    for patch, s in zip(bp["boxes"], series):
        patch.set_facecolor(colors[s])
        patch.set_alpha(0.35)
    for p_, a, s in zip(pos, arrays, series):
        jitter = rng.uniform(-0.16, 0.16, size=a.size)
        ax.scatter(p_ + jitter, a, s=point, color=colors[s], edgecolors="none", alpha=0.85, zorder=3)
        ax.scatter([p_], [a.mean()], marker="^", s=mean, color="white", edgecolors="black", zorder=4)
    ax.set_xticks(pos)
    ax.set_xticklabels([_txt(s) for s in series], rotation=30 if rotate else 0, ha="right" if rotate else "center")
    ax.set_xlim(0.4, len(series) + 0.6)


def distribution_panels(scores: "pd.DataFrame", metric: str, out_dir: str | Path, *,
                        panels_per_row: int = 4) -> list[FigureInfo]:
    """One figure per dataset with one panel per degradation (scale), side by side: the box plot of
    the per-image ``metric`` of each method, the images as (seeded, jittered) points and the mean
    as a white triangle; the same content as `distributions`, a row instead of a column of
    figures. Each panel keeps its own value axis (scales differ a lot)."""
    if scores is None or len(scores) == 0:
        return []
    df = _series(scores)
    vals = _ok_values(df, metric)
    if vals.empty:
        return []
    infos = []
    for ds in dict.fromkeys(df["dataset"]):
        d = df[df["dataset"] == ds]
        v = vals[vals["dataset"] == ds]
        if v.empty:
            continue
        degs = [deg for deg in dict.fromkeys(d.sort_values("scale", kind="stable")["degradation"])
                if (v["degradation"] == deg).any()]
        series_all = list(dict.fromkeys(d["series"]))
        colors = _colors(series_all)
        ncols = min(len(degs), max(1, int(panels_per_row)))
        nrows = math.ceil(len(degs) / ncols)
        longest = max(len(str(s)) for s in series_all)
        rotate = len(series_all) > 3 or longest > 10
        rng = np.random.default_rng(SEED)
        with _style():
            fig = _figure(max(4.5, 2.7 * ncols + 0.6), (3.3 if rotate else 2.9) * nrows + 0.3)
            axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
            counts = []
            for ax, deg in zip(axes, degs):
                cell = v[v["degradation"] == deg]
                series = [s for s in series_all if (cell["series"] == s).any()]
                arrays = [cell.loc[cell["series"] == s, "value"].to_numpy(np.float64) for s in series]
                _box_panel(ax, arrays, series, colors, rng, rotate=rotate, point=8, mean=30)
                ax.set_title(_txt(str(deg)))
                counts.append(f"{deg}: " + ", ".join(f"{s} {a.size}" for s, a in zip(series, arrays)))
            for ax in axes[len(degs):]:
                ax.set_axis_off()
            axes[0].set_ylabel(_txt(metric_label(metric)))
            title = f"{ds}: per-image {metric.upper()}"
            fig.suptitle(_txt(title))
        caption = (f"{ds}: per-image {metric.upper()} ({metric_direction(metric)[1]}) of each method, one panel per "
                   f"scale (own value axis); box: quartiles and median, whiskers: the furthest image within 1.5 IQR, "
                   f"points: the images (jittered sideways), white triangle: the mean. Images per method: "
                   + "; ".join(counts) + ".")
        gaps = _gaps(d, metric)
        if gaps:
            caption += " No numbers or partial: " + "; ".join(gaps) + "."
        infos.append(save_figure(fig, out_dir, safe_stem("dists", metric, ds), title=title, caption=caption,
                                 data=v.reset_index(drop=True), dataset=ds))
    return infos


# ---------------------------------------------------------------------------------------------
# throughput

def throughput(timings: "pd.DataFrame", out_dir: str | Path) -> list[FigureInfo]:
    """One figure, two panels of horizontal bars per (method, device): images per second and
    milliseconds per megapixel of SR output, the median over images with the interquartile range
    as error bars. ``[]`` without usable timings."""
    import pandas as pd

    if timings is None or len(timings) == 0:
        return []
    t = timings.copy()
    t["seconds"] = pd.to_numeric(t["seconds"], errors="coerce")
    t["megapixels"] = pd.to_numeric(t["megapixels"], errors="coerce")
    t = t[np.isfinite(t["seconds"]) & (t["seconds"] > 0)]
    if t.empty:
        return []
    t["device"] = t["device"].fillna("?").astype(str) if "device" in t else "?"
    multi_dev = t["device"].nunique() > 1
    t["series"] = t["method"].astype(str) + ((" [" + t["device"] + "]") if multi_dev else "")
    rows = []
    for (method, device, series), g in t.groupby(["method", "device", "series"], sort=False):
        ips = 1.0 / g["seconds"].to_numpy(np.float64)
        mp = g["megapixels"].to_numpy(np.float64)
        good = np.isfinite(mp) & (mp > 0)
        msmp = 1000.0 * g["seconds"].to_numpy(np.float64)[good] / mp[good]
        q_ips = np.percentile(ips, [25, 50, 75])
        q_ms = np.percentile(msmp, [25, 50, 75]) if msmp.size else np.full(3, np.nan)
        rows.append({"method": method, "device": device, "series": series, "n": int(len(g)),
                     "ips_q25": q_ips[0], "ips_median": q_ips[1], "ips_q75": q_ips[2],
                     "ms_per_mp_q25": q_ms[0], "ms_per_mp_median": q_ms[1], "ms_per_mp_q75": q_ms[2]})
    data = pd.DataFrame(rows)
    colors = _colors(list(dict.fromkeys(data["method"])))
    n = len(data)
    with _style():
        fig = _figure(9.0, max(2.2, 0.38 * n + 1.4))
        axes = fig.subplots(1, 2, sharey=True)
        ypos = np.arange(n)
        for ax, key, label in ((axes[0], "ips", "images per second (higher is better)"),
                               (axes[1], "ms_per_mp", "ms per megapixel of output (lower is better)")):
            med = data[f"{key}_median"].to_numpy(np.float64)
            lo = np.clip(med - data[f"{key}_q25"].to_numpy(np.float64), 0, None)
            hi = np.clip(data[f"{key}_q75"].to_numpy(np.float64) - med, 0, None)
            finite = med[np.isfinite(med) & (med > 0)]
            log = finite.size > 1 and finite.max() / finite.min() > 50
            ax.barh(ypos, np.nan_to_num(med), xerr=np.vstack([np.nan_to_num(lo), np.nan_to_num(hi)]),
                    color=[colors[m] for m in data["method"]], alpha=0.8, capsize=3, height=0.6,
                    error_kw={"elinewidth": 1})
            for yy, val, top in zip(ypos, med, med + hi):
                if np.isfinite(val):
                    ax.annotate(_num(val), (top if np.isfinite(top) else val, yy), textcoords="offset points",
                                xytext=(6, 0), va="center", fontsize=7)
            if log:
                ax.set_xscale("log")
            ax.margins(x=0.18)
            ax.set_xlabel(label)
            ax.grid(axis="y", visible=False)
        axes[0].set_yticks(ypos)
        axes[0].set_yticklabels([_txt(s) for s in data["series"]])
        axes[0].invert_yaxis()
        title = "Throughput per method"
        fig.suptitle(title)
    datasets = ", ".join(dict.fromkeys(map(str, timings["dataset"].dropna()))) if "dataset" in timings else "?"
    devices = ", ".join(sorted(t["device"].unique()))
    caption = (f"Speed of the SR step alone (method.upscale on an LR image already in memory, per image): "
               f"median over images of images per second (left) and milliseconds per megapixel of SR output "
               f"(right), error bars: interquartile range; pooled over the datasets and scales timed "
               f"({datasets}); device(s): {devices}. Images per method: "
               + ", ".join(f"{s} {k}" for s, k in zip(data["series"], data["n"])) + ".")
    return [save_figure(fig, out_dir, "throughput", title=title, caption=caption, data=data)]
