"""Leaderboards from run folders: methods x (dataset, scale) per metric, with 95 % bootstrap
confidence intervals over images, the best cell per column marked, paired differences against a
reference method, circularity flags and a provenance footer; as Markdown, CSV, LaTeX and HTML.

Cells that did not produce numbers are shown by what happened to them (``unsupported``,
``unavailable``, ``missing data``, ``failed``, ``not run``), never left blank and never given a
number. A cell where some images failed shows the mean over the images that worked, marked ``*``
and counted in the notes. An infinite score (PSNR of an output identical to its reference) is
never dropped: the cell's mean is ``inf``, the cell says on how many of its images, and a note
names them (`bench.report.stats` explains the arithmetic).

Order: methods, datasets and metrics follow the run spec (the first run's order first); columns
are the datasets in that order, each over its scales in increasing order. Figures and notes use
the same order as the tables.

Numbers (one rule for every format, applied per column, so a column prints its values alike):

- The starting precision comes from the size of the metric's values in the whole table: 2
  decimals when the largest magnitude is 10 or more (PSNR in dB), 3 from 1 up, 4 below 1 (SSIM,
  LPIPS, probabilities).
- Decimals are added (up to 2 more) until every two means of the column that differ print
  differently and no non-zero mean prints as zero.
- When that is not enough and the column holds values below ``10**-decimals`` (scores that
  saturate near 0, such as SFD-IQA probabilities at x8/x16), the column switches to scientific
  notation (``1.2e-06``) with as many significant digits as it takes to tell the means apart;
  otherwise it keeps adding decimals (values that differ only far behind the point, or
  probabilities saturating near 1; their log-odds variant, e.g. ``sfd-iqa-vgg16-logit``, reads
  better there). Means that agree to 9 significant digits count as equal (float noise). Intervals use the
  column's format; a paired-difference column chooses its own format from its differences the
  same way.

Best marker (bold in Markdown/LaTeX, a star in HTML): the best mean of a column in the metric's
direction, only when it is the only one with that printed value: a tie at the printed precision,
all values equal, a column with fewer than two values or a metric of unknown direction get no
marker. Paired differences say ``better``/``worse`` only when their interval excludes 0,
``same`` when every image scored identically (difference 0, interval [0, 0]) and ``n.s.``
otherwise.

Circularity: a method guided by a backbone (e.g. a CLIP model) scored by a metric built on the same
backbone is marked ``†`` (HTML: ⚠); the legend for it appears only when some cell is circular.

Text that reaches Markdown cells, notes and headings is HTML-escaped (and ``|`` escaped), so a
method called ``<script>`` stays text; every CSV goes through `bench.run.io.write_csv` (formula-like
text neutralised).
"""

from __future__ import annotations

import html as _html
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

import iqa
from iqa.errors import SrbenchError

from bench.report.stats import LEVEL, N_BOOT, Interval, bootstrap_mean, paired_difference
from bench.run.store import load_manifest, load_scores, load_timings

__all__ = ["CellStat", "Leaderboard", "NumFormat", "Report", "build", "build_leaderboards", "choose_format",
           "default_decimals", "load_runs", "markdown", "md_escape", "ordered_scores", "render", "to_csv_long",
           "to_latex", "to_markdown", "vs_reference_markdown", "write_report", "write_tables"]

_LABEL = {"unsupported": "unsupported", "unavailable": "unavailable", "missing": "missing data", "error": "failed"}
DEFAULT_REFERENCE = "bicubic"
MAX_DECIMALS = 12
MAX_EXTRA_DECIMALS = 2
MAX_SIGNIFICANT = 12


# -- numbers ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NumFormat:
    """How the numbers of one column print: ``decimals`` digits after the point, in fixed or (with
    ``scientific``) in scientific notation (``decimals + 1`` significant digits)."""

    decimals: int = 4
    scientific: bool = False

    def __call__(self, x: float | None, signed: bool = False) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "n/a"
        x = float(x)
        if math.isinf(x):
            return ("+inf" if signed else "inf") if x > 0 else "-inf"
        text = format(x, f"{'+' if signed else ''}.{self.decimals}{'e' if self.scientific else 'f'}")
        if _is_zero_text(text):  # no "-0.00"
            text = format(0.0, f"{'+' if signed else ''}.{self.decimals}{'e' if self.scientific else 'f'}")
        return text

    def tex(self, x: float | None, signed: bool = False) -> str:
        text = self(x, signed)
        if text.lstrip("+-") == "inf":
            return f"${text[:-3]}\\infty$"
        if self.scientific and "e" in text:
            mantissa, exp = text.split("e")
            return f"${mantissa}\\times 10^{{{int(exp)}}}$"
        return text

    @property
    def rule(self) -> str:
        if self.scientific:
            return f"scientific notation, {self.decimals + 1} significant digits"
        return f"{self.decimals} decimals"


def _is_zero_text(text: str) -> bool:
    mantissa = text.lstrip("+-").split("e")[0]
    return set(mantissa) <= {"0", "."}


def default_decimals(values) -> int:
    """The starting precision for a table's values (module doc): 2 decimals from magnitude 10 up,
    3 from 1, 4 below."""
    finite = [abs(float(v)) for v in values if v is not None and math.isfinite(float(v))]
    big = max(finite, default=0.0)
    return 2 if big >= 10 else (3 if big >= 1 else 4)


def choose_format(values, decimals: int = 4) -> NumFormat:
    """The format of one column whose means are ``values`` (non-finite ones ignored), starting
    from ``decimals``: the rule of the module doc."""
    finite = sorted({float(v) for v in values if v is not None and math.isfinite(float(v))})
    distinct: list[float] = []
    for v in finite:  # values that agree to 9 significant digits are one value (float noise)
        if not distinct or v - distinct[-1] > 1e-9 * max(abs(v), abs(distinct[-1])):
            distinct.append(v)

    def shows(f: NumFormat) -> bool:
        texts = [f(v) for v in distinct]
        if len(set(texts)) < len(texts):
            return False
        return not any(_is_zero_text(t) for v, t in zip(distinct, texts) if v != 0)

    fixed = next((d for d in range(decimals, MAX_DECIMALS + 1) if shows(NumFormat(d))), MAX_DECIMALS)
    if fixed <= decimals + MAX_EXTRA_DECIMALS:
        return NumFormat(fixed)
    nonzero = [abs(v) for v in distinct if v != 0]
    if nonzero and min(nonzero) < 10.0 ** -decimals:
        p = next((p for p in range(1, MAX_SIGNIFICANT) if shows(NumFormat(p, True))), MAX_SIGNIFICANT - 1)
        return NumFormat(p, True)
    return NumFormat(fixed)


# -- the model --------------------------------------------------------------------------------------

@dataclass
class CellStat:
    """One (method, column) of one metric."""

    status: str  # "ok", "partial" (some images failed), or a label of _LABEL, or "not run"
    interval: Interval | None = None
    n_failed: int = 0
    message: str = ""
    best: bool = False
    circular: bool = False
    vs_ref: Interval | None = None  # paired difference method - reference over the same images
    fmt: NumFormat = field(default_factory=NumFormat)  # the column's format
    ref_fmt: NumFormat = field(default_factory=NumFormat)  # the format of the column's paired differences

    @property
    def has_value(self) -> bool:
        return self.interval is not None and self.status in ("ok", "partial")

    @property
    def n_inf(self) -> int:
        return self.interval.n_inf if self.interval is not None else 0


@dataclass
class Leaderboard:
    metric: str
    higher_better: bool | None
    methods: list[str]
    columns: list[tuple[str, str, int]]  # (dataset, degradation, scale)
    cells: dict[tuple[str, tuple[str, str, int]], CellStat]
    reference: str | None = None
    backbone: str | None = None
    formats: dict[tuple[str, str, int], NumFormat] = field(default_factory=dict)

    @property
    def direction(self) -> str:
        return {True: "higher is better", False: "lower is better", None: "direction unknown"}[self.higher_better]

    @staticmethod
    def column_label(col: tuple[str, str, int]) -> str:
        return f"{col[0]} {col[1]}"

    def cell(self, method: str, col: tuple[str, str, int]) -> CellStat:
        return self.cells[(method, col)]

    def groups(self) -> list[tuple[str, list[tuple[str, str, int]]]]:
        """The columns by dataset, in order: ``[(dataset, [columns])]``."""
        out: list[tuple[str, list]] = []
        for col in self.columns:
            if out and out[-1][0] == col[0]:
                out[-1][1].append(col)
            else:
                out.append((col[0], [col]))
        return out

    @property
    def any_circular(self) -> bool:
        return any(c.circular for c in self.cells.values())

    @property
    def any_partial(self) -> bool:
        return any(c.status == "partial" for c in self.cells.values())

    @property
    def any_scientific(self) -> bool:
        return any(f.scientific for f in self.formats.values())


@dataclass
class Report:
    runs: list[Path]
    scores: pd.DataFrame
    timings: pd.DataFrame
    manifests: list[dict[str, Any]]
    leaderboards: list[Leaderboard]
    notes: list[str] = field(default_factory=list)
    reference: str | None = None
    adaptation: list[Any] = field(default_factory=list)  # bench.report.adaptation.AdaptEntry of adapted cells
    adaptation_gains: list[dict[str, Any]] = field(default_factory=list)

    @property
    def any_circular(self) -> bool:
        return any(lb.any_circular for lb in self.leaderboards)


def _metric_meta(metric: str) -> tuple[bool | None, str | None]:
    try:
        info = iqa.metric_info(metric)
        return info.higher_better, info.backbone
    except SrbenchError:
        return None, None


def _perceptual(metric: str) -> bool:
    """Whether ``metric`` is a perception axis for the perception-distortion plane: a no-reference
    metric (either direction: NIQE, SFD-IQA) or a lower-is-better full-reference one (LPIPS, DISTS)."""
    try:
        info = iqa.metric_info(metric)
    except SrbenchError:
        return False
    return info.kind == "nr" or not info.higher_better


def _norm_backbone(name: str | None) -> str | None:
    """``clip:ViT-B-16/openai`` / ``ViT-B-16`` / ``vit-b-16`` -> ``vit-b-16``."""
    if not name:
        return None
    name = str(name).lower()
    if name.startswith("clip:"):
        name = name[5:]
    return name.split("/")[0].replace("_", "-")


def load_runs(runs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]], list[str]]:
    """Scores, timings and manifests of ``runs``. A cell present in several runs is taken from the
    last run that has it (and a note says so)."""
    frames, times, manifests, notes = [], [], [], []
    for i, run in enumerate(runs):
        m = load_manifest(run)
        if not m:
            raise SrbenchError(f"{run}: not an srbench run folder (no manifest.json)")
        s = load_scores(run)
        frames.append(s.assign(run=i))
        times.append(load_timings(run).assign(run=i))
        manifests.append(m)
    df = pd.concat(frames, ignore_index=True)
    if df.empty:
        raise SrbenchError("the run has no score rows yet")
    keys = ["dataset", "degradation", "method"]
    owner = df.groupby(keys)["run"].transform("max")
    shadowed = df.loc[df["run"] != owner, keys].assign(owner=owner[df["run"] != owner]).drop_duplicates()
    for ds, deg, method, last in shadowed.itertuples(index=False):
        notes.append(f"{ds} {deg} {method}: in several runs; the one in {runs[int(last)]} is used")
    df = df[df["run"] == owner].reset_index(drop=True)
    t = pd.concat(times, ignore_index=True)
    if len(t):
        tkeys = t.groupby(keys)["run"].transform("max")
        t = t[t["run"] == tkeys].reset_index(drop=True)
    return df, t, manifests, notes


def _method_backbones(manifests: list[dict[str, Any]]) -> dict[str, str]:
    out = {}
    for m in manifests:
        for label, prov in (m.get("weights") or {}).items():
            if isinstance(prov, dict) and prov.get("backbone"):
                out[label] = _norm_backbone(prov["backbone"])
        for ms in (m.get("spec") or {}).get("methods", []):
            if ms.get("label") not in out and ms.get("name"):
                try:
                    import sr_methods

                    bb = sr_methods.method_info(ms["name"]).get("backbone")
                except SrbenchError:
                    bb = None
                if bb:
                    out[ms["label"]] = _norm_backbone(bb)
    return out


def _order(values, preferred) -> list:
    seen = [v for v in dict.fromkeys(preferred) if v in set(values)]
    return seen + [v for v in dict.fromkeys(values) if v not in seen]


def _spec_order(df: pd.DataFrame, manifests: list[dict[str, Any]]) -> tuple[list, list, list]:
    """``(methods, datasets, metrics)`` of ``df`` in the runs' spec order (then order of appearance)."""
    specs = [m.get("spec", {}) for m in manifests]
    from bench.run.adapt import reference_label

    labels = [lab for s in specs for m in s.get("methods", []) if "label" in m
              for lab in ([m["label"], reference_label(m["label"])] if m.get("adapt") else [m["label"]])]
    methods = _order(df["method"], labels)
    datasets = _order(df["dataset"], [d for s in specs for d in s.get("datasets", [])])
    present = [m for m in dict.fromkeys(df["metric"]) if m != "*"]
    metrics = _order(present, [m for s in specs for m in s.get("metrics", [])])
    return methods, datasets, metrics


def ordered_scores(df: pd.DataFrame, manifests: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """``df`` sorted as the tables are: dataset (spec order), scale, degradation, method (spec
    order), metric (spec order), image. Figures and notes drawn from it follow the tables."""
    if df.empty:
        return df
    methods, datasets, metrics = _spec_order(df, manifests or [])
    rank = {"dataset": {d: i for i, d in enumerate(datasets)}, "method": {m: i for i, m in enumerate(methods)},
            "metric": {m: i for i, m in enumerate(metrics)}}
    keys = df.assign(_d=df["dataset"].map(rank["dataset"]), _m=df["method"].map(rank["method"]),
                     _k=df["metric"].map(rank["metric"]).fillna(-1), _s=df["scale"].astype("int64"))
    keys = keys.sort_values(["_d", "_s", "degradation", "_m", "_k", "image"], kind="stable")
    return df.loc[keys.index].reset_index(drop=True)


def _ordered_timings(t: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Timing rows in the order of the (ordered) score rows: method first, then dataset."""
    if t is None or t.empty or not {"dataset", "method"} <= set(t.columns):
        return t
    methods = {m: i for i, m in enumerate(dict.fromkeys(scores["method"]))}
    datasets = {d: i for i, d in enumerate(dict.fromkeys(scores["dataset"]))}
    keys = t.assign(_m=t["method"].map(methods).fillna(len(methods)), _d=t["dataset"].map(datasets).fillna(len(datasets)))
    return t.loc[keys.sort_values(["_m", "_d"], kind="stable").index].reset_index(drop=True)


def _mark_best(cells: dict, methods: list[str], col, higher: bool | None, fmt: NumFormat) -> None:
    """Mark the best cell of ``col`` unless the best printed value is shared (module doc)."""
    have = [m for m in methods if cells[(m, col)].has_value and not math.isnan(cells[(m, col)].interval.mean)]
    if higher is None or len(have) < 2:
        return
    mean = {m: cells[(m, col)].interval.mean for m in have}
    top = (max if higher else min)(have, key=lambda m: mean[m])
    text = fmt(mean[top])
    if sum(fmt(mean[m]) == text for m in have) == 1:
        cells[(top, col)].best = True


def build_leaderboards(df: pd.DataFrame, manifests: list[dict[str, Any]] | None = None,
                       reference: str | None = DEFAULT_REFERENCE, seed: int = 0) -> list[Leaderboard]:
    """One `Leaderboard` per metric, in the runs' spec order (methods, datasets, metrics)."""
    manifests = manifests or []
    methods, datasets, metrics = _spec_order(df, manifests)
    ds_rank = {d: i for i, d in enumerate(datasets)}
    cols = df[["dataset", "degradation", "scale"]].drop_duplicates()
    columns = sorted((tuple(c) for c in cols.itertuples(index=False)),
                     key=lambda c: (ds_rank[c[0]], int(c[2]), c[1]))
    columns = [(str(d), str(g), int(s)) for d, g, s in columns]
    if reference is not None and reference not in methods:
        reference = None
    backbones = _method_backbones(manifests)
    groups = {key: g for key, g in df.groupby(["method", "dataset", "degradation"], sort=False)}
    out = []
    for metric in metrics:
        higher, mb = _metric_meta(metric)
        mb = _norm_backbone(mb)
        cells: dict = {}
        per_image: dict = {}
        for method in methods:
            for col in columns:
                g = groups.get((method, col[0], col[1]))
                cells[(method, col)] = stat = _cell(g, metric, seed)
                stat.circular = bool(mb) and backbones.get(method) == mb
                if g is not None and stat.has_value:
                    ok = g[(g["metric"] == metric) & (g["status"] == "ok") & g["value"].notna()]
                    per_image[(method, col)] = dict(zip(ok["image"], ok["value"].astype(float)))
        start = default_decimals(c.interval.mean for c in cells.values() if c.has_value)
        formats = {}
        for col in columns:
            fmt = formats[col] = choose_format([cells[(m, col)].interval.mean for m in methods
                                                if cells[(m, col)].has_value], start)
            if reference is not None and (reference, col) in per_image:
                for m in methods:
                    if m != reference and (m, col) in per_image:
                        cells[(m, col)].vs_ref = paired_difference(per_image[(m, col)], per_image[(reference, col)],
                                                                   seed=seed)
            diffs = [cells[(m, col)].vs_ref.mean for m in methods if cells[(m, col)].vs_ref is not None]
            ref_fmt = choose_format(diffs, start)
            for m in methods:
                cells[(m, col)].fmt, cells[(m, col)].ref_fmt = fmt, ref_fmt
            _mark_best(cells, methods, col, higher, fmt)
        out.append(Leaderboard(metric, higher, methods, columns, cells, reference, mb, formats))
    return out


def _cell(g: pd.DataFrame | None, metric: str, seed: int) -> CellStat:
    if g is None:
        return CellStat("not run")
    rows = g[(g["metric"] == metric) | (g["metric"] == "*")]
    has = (rows["status"] == "ok") & rows["value"].notna()  # an "ok" row without a value counts as failed
    ok, bad = rows[has], rows[~has]
    if len(ok):
        n_failed = bad["image"].nunique() if len(bad) else 0
        message = (str(bad["message"].iloc[0]) or "no value") if len(bad) else ""
        return CellStat("partial" if n_failed else "ok", bootstrap_mean(ok["value"].to_numpy(), seed=seed), n_failed,
                        message)
    if len(bad):
        status = str(bad["status"].iloc[0])
        status = "error" if status == "ok" else status
        return CellStat(_LABEL.get(status, status), None, bad["image"].nunique() if status == "error" else 0,
                        str(bad["message"].iloc[0]))
    return CellStat("not run")


def _cells_text(cells: list[tuple[str, str, str]]) -> str:
    """``bicubic, lanczos on set5 x2, x4; set14 x2`` for a list of (dataset, degradation, method)."""
    by_col: dict[tuple[str, str], list[str]] = {}
    for ds, deg, method in cells:
        by_col.setdefault((ds, deg), []).append(method)
    by_methods: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for col, ms in by_col.items():
        by_methods.setdefault(tuple(dict.fromkeys(ms)), []).append(col)
    parts = []
    for ms, cols in by_methods.items():
        per_ds: dict[str, list[str]] = {}
        for ds, deg in cols:
            per_ds.setdefault(ds, []).append(deg)
        where = "; ".join(f"{ds} {', '.join(degs)}" for ds, degs in per_ds.items())
        parts.append(f"{', '.join(ms)} on {where}")
    return " | ".join(parts)


def notes(df: pd.DataFrame) -> list[str]:
    """One line per kind of problem, in the order of ``df`` (see `ordered_scores`): cells with the
    same status and message are named together; infinite scores are counted per cell."""
    out = []
    bad = df[df["status"] != "ok"]
    # failed images: one line per cell (their messages name files); other statuses (a metric
    # unavailable, a scale unsupported): one line per message, naming every cell it concerns
    keys = ["dataset", "degradation", "method", "status"]
    per_image = bad["status"] == "error"
    found = []
    for part, by in ((bad[per_image], keys), (bad[~per_image], [*keys, "message"])):
        for key, g in part.groupby(by, sort=False):
            found.append((g.index.min(), str(key[3]), str(g["message"].iloc[0]),
                          (str(key[0]), str(key[1]), str(key[2]), int(g["image"].nunique()))))
    grouped: dict[tuple[str, str], list[tuple[str, str, str, int]]] = {}
    for _, status, message, cell in sorted(found, key=lambda f: f[0]):  # in the order of the rows
        grouped.setdefault((status, message), []).append(cell)
    for (status, message), cells in grouped.items():
        if len(cells) == 1:
            ds, deg, method, n = cells[0]
            what = f"{n} image(s) failed" if status == "error" else _LABEL.get(status, status)
            out.append(f"{ds} {deg} {method}: {what}: {message}")
            continue
        if status == "error":
            what = f"{sum(c[3] for c in cells)} image(s) failed in {len(cells)} cells"
        else:
            what = f"{_LABEL.get(status, status)} in {len(cells)} cells"
        out.append(f"{what} ({_cells_text([c[:3] for c in cells])}): {message}")
    ok = df[(df["status"] == "ok") & df["value"].notna()]
    values = ok["value"].astype("float64")
    inf = ok[values.abs() == math.inf]
    if len(inf):
        totals = ok.groupby(["dataset", "degradation", "method", "metric"], sort=False)["image"].nunique()
        for (ds, deg, method, metric), g in inf.groupby(["dataset", "degradation", "method", "metric"], sort=False):
            images = list(dict.fromkeys(g["image"].astype(str)))
            signs = sorted({"inf" if v > 0 else "-inf" for v in g["value"]})
            shown = ", ".join(images[:3]) + (f" and {len(images) - 3} more" if len(images) > 3 else "")
            out.append(f"{ds} {deg} {method}: {metric.upper()} is {' or '.join(signs)} on {len(images)} of "
                       f"{totals[(ds, deg, method, metric)]} images ({shown}); the mean is shown as "
                       f"{'nan' if len(signs) > 1 else signs[0]}, and paired differences leave those images out")
    return out


# -- text formats -----------------------------------------------------------------------------------

def _interval_text(c: CellStat) -> str | None:
    """``[lo, hi]``, the count of infinite values, or None (one image)."""
    iv = c.interval
    if c.n_inf:
        return f"{c.n_inf} of {iv.n} images {c.fmt(iv.mean)}" if math.isinf(iv.mean) else \
            f"{c.n_inf} of {iv.n} images infinite"
    if iv.n > 1:
        return f"[{c.fmt(iv.lo)}, {c.fmt(iv.hi)}]"
    return None


def cell_text(lb: Leaderboard, c: CellStat, *, ci: bool = True, bold: tuple[str, str] = ("**", "**")) -> str:
    if not c.has_value:
        return c.status
    iv = c.interval
    text = c.fmt(iv.mean)
    if c.best:
        text = f"{bold[0]}{text}{bold[1]}"
    extra = _interval_text(c)
    if extra and (ci or c.n_inf):
        text += f" [{extra}]" if c.n_inf else f" {extra}"
    if c.status == "partial":
        text += "*"
    if c.circular:
        text += " †"
    return text


def verdict(lb: Leaderboard, iv: Interval) -> str:
    """`interval_verdict` in the direction of ``lb``'s metric."""
    return interval_verdict(iv, lb.higher_better)


def interval_verdict(iv: Interval, higher_better: bool | None) -> str:
    """``same`` (every image scored identically: difference 0, interval [0, 0]), ``better`` /
    ``worse`` (the interval of the difference excludes 0, in the metric's direction) or ``n.s.``."""
    if iv.mean == 0 and iv.lo == 0 and iv.hi == 0:
        return "same"
    if not iv.excludes_zero or higher_better is None:
        return "n.s."
    return "better" if (iv.mean > 0) == higher_better else "worse"


def _ref_parts(lb: Leaderboard, method: str, col) -> tuple[str, str | None]:
    """``(difference and verdict, interval)`` of a cell of the paired table."""
    c = lb.cell(method, col)
    if method == lb.reference:
        return ("reference" if c.has_value else c.status), None
    if not c.has_value:
        return c.status, None
    if c.vs_ref is None:
        return "no reference", None
    iv, f = c.vs_ref, c.ref_fmt
    word = verdict(lb, iv)
    left = f"; {iv.n_inf} inf image(s) left out" if iv.n_inf else ""
    if word == "same":
        return "same", f"identical on {iv.n} images{left}"
    return f"{f(iv.mean, True)} {word}", f"[{f(iv.lo, True)}, {f(iv.hi, True)}]{left}"


def ref_text(lb: Leaderboard, method: str, col) -> str:
    main, sub = _ref_parts(lb, method, col)
    if sub is None:
        return main
    if main == "same":
        return f"same ({sub})"
    value, word = main.rsplit(" ", 1)
    return f"{value} {sub} {word}"


def md_escape(text: object) -> str:
    """Text for a Markdown table cell or line: HTML-escaped (no raw tags), ``|`` escaped (no broken
    tables), on one line."""
    return _html.escape(str(text), quote=False).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def md_section(title: str, intro: str, header: list[str], rows: list[list[str]]) -> str:
    """A Markdown report section: ``## title``, the intro paragraph and the table (escaped)."""
    return "\n".join([f"## {title}", "", md_escape(intro), "", _md_table(header, rows), ""])


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(map(md_escape, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(md_escape, r)) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(lb: Leaderboard, ci: bool = True) -> str:
    header = ["method", *map(lb.column_label, lb.columns)]
    rows = [[m, *(cell_text(lb, lb.cell(m, c), ci=ci) for c in lb.columns)] for m in lb.methods]
    return _md_table(header, rows)


def vs_reference_markdown(lb: Leaderboard) -> str:
    header = ["method", *map(lb.column_label, lb.columns)]
    rows = [[m, *(ref_text(lb, m, c) for c in lb.columns)] for m in lb.methods]
    return _md_table(header, rows)


def to_csv_long(lbs: list[Leaderboard]) -> pd.DataFrame:
    """One row per (metric, method, column): status, mean, interval, n (images with a value),
    n_inf (of those, infinite), best, difference against the reference and its interval (with the
    images left out of it for an infinite value), verdict, circularity."""
    rows = []
    for lb in lbs:
        for m in lb.methods:
            for col in lb.columns:
                c = lb.cell(m, col)
                iv, d = c.interval, c.vs_ref
                rows.append({
                    "metric": lb.metric, "direction": lb.direction, "method": m, "dataset": col[0],
                    "degradation": col[1], "scale": col[2], "status": c.status,
                    "mean": iv.mean if c.has_value else math.nan, "ci_lo": iv.lo if c.has_value else math.nan,
                    "ci_hi": iv.hi if c.has_value else math.nan, "n_images": iv.n if c.has_value else 0,
                    "n_inf": c.n_inf if c.has_value else 0,
                    "n_failed": c.n_failed, "best": c.best, "reference": lb.reference,
                    "diff_vs_reference": d.mean if d else math.nan, "diff_ci_lo": d.lo if d else math.nan,
                    "diff_ci_hi": d.hi if d else math.nan, "diff_n_inf_left_out": d.n_inf if d else 0,
                    "significant": bool(d and d.excludes_zero), "verdict": verdict(lb, d) if d else "",
                    "circular": c.circular, "message": c.message})
    return pd.DataFrame(rows)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(lb: Leaderboard, ci: bool = True, label: str | None = None) -> str:
    """A booktabs table (``\\usepackage{booktabs}``): datasets as spanning headers over their
    scales, best per column in bold, intervals in small type, unsupported/failed cells in italics."""
    groups = lb.groups()
    ncols = len(lb.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\begin{{tabular}}{{l{'c' * ncols}}}", r"\toprule"]
    head = ["Method"] + [rf"\multicolumn{{{len(cs)}}}{{c}}{{{tex_escape(d)}}}" for d, cs in groups]
    lines.append(" & ".join(head) + r" \\")
    start = 2
    rules = []
    for _, cs in groups:
        rules.append(rf"\cmidrule(lr){{{start}-{start + len(cs) - 1}}}")
        start += len(cs)
    lines.append(" ".join(rules))
    lines.append(" & ".join([""] + [tex_escape(c[1]).replace("x", r"$\times$", 1) if c[1].startswith("x")
                                    else tex_escape(c[1]) for c in lb.columns]) + r" \\")
    lines.append(r"\midrule")
    for m in lb.methods:
        cells = [tex_escape(m)]
        for col in lb.columns:
            c = lb.cell(m, col)
            if not c.has_value:
                cells.append(rf"\textit{{{tex_escape(c.status)}}}")
                continue
            iv, f = c.interval, c.fmt
            t = f.tex(iv.mean)
            t = rf"\textbf{{{t}}}" if c.best else t
            if c.n_inf:
                t += rf"\,{{\scriptsize({c.n_inf}/{iv.n} inf)}}"
            elif ci and iv.n > 1:
                t += rf"\,{{\scriptsize[{f.tex(iv.lo)}, {f.tex(iv.hi)}]}}"
            if c.status == "partial":
                t += r"$^{*}$"
            if c.circular:
                t += r"$^{\dagger}$"
            cells.append(t)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    arrow = r"$\uparrow$" if lb.higher_better else (r"$\downarrow$" if lb.higher_better is False else "")
    caption = (f"{tex_escape(lb.metric.upper())} {arrow} ({lb.direction}); mean over images with the "
               f"{int(LEVEL * 100)}\\% bootstrap confidence interval in brackets; best per column in bold "
               "(none where the best value is tied).")
    if lb.any_circular:
        caption += r" $^{\dagger}$: the method is guided by the metric's own backbone."
    if lb.any_partial:
        caption += r" $^{*}$: some images failed."
    lines.append(rf"\caption{{{caption}}}")
    lines.append(rf"\label{{{label or 'tab:' + lb.metric}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


# -- provenance ------------------------------------------------------------------------------------

def weight_hashes(manifest: dict[str, Any]) -> dict[str, str]:
    """``label -> sha256`` (family members as ``label/xN``) of the networks and of the metric
    checkpoints (such as SFD-IQA's) in a run."""
    def sha(prov: dict[str, Any]) -> str | None:  # a trained network keeps its file's under "weights"
        weights = prov.get("weights")
        return prov.get("sha256") or (weights.get("sha256") if isinstance(weights, dict) else None)

    out = {}
    for label, prov in [*(manifest.get("weights") or {}).items(), *(manifest.get("metric_weights") or {}).items()]:
        if not isinstance(prov, dict):
            continue
        if sha(prov):
            out[label] = sha(prov)
        for key, member in (prov.get("members") or {}).items():
            if isinstance(member, dict) and sha(member):
                out[f"{label}/{key}"] = sha(member)
    return out


def provenance_lines(runs: list[Path], manifests: list[dict[str, Any]]) -> list[str]:
    lines = []
    for run, m in zip(runs, manifests):
        sessions = m.get("sessions") or []
        finished = [s.get("finished") for s in sessions if s.get("finished")]
        protocol = m.get("protocol", {})
        lines.append(f"run {run}: protocol {protocol.get('name')} ({protocol.get('description', '')}); "
                     f"device {m.get('device')}; git {m.get('git_sha')}; created {m.get('created')}"
                     + (f", last finished {finished[-1]}" if finished else ", not finished"))
        limit = (m.get("spec") or {}).get("limit")
        if limit:
            lines.append(f"run {run}: only the first {limit} images (sorted by id) of each dataset were scored")
        versions = m.get("versions", {})
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        hashes = weight_hashes(m)
        if hashes:
            lines.append("weights sha256: " + "; ".join(f"{k} {v}" for k, v in hashes.items()))
    lines.append(f"statistics: mean over images, {int(LEVEL * 100)} % percentile bootstrap interval, "
                 f"{N_BOOT} resamples, seed 0; report generated {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    return lines


# -- the report --------------------------------------------------------------------------------------

def build(runs: list[Path], reference: str | None = DEFAULT_REFERENCE) -> Report:
    runs = [Path(r) for r in runs]
    df, timings, manifests, dup_notes = load_runs(runs)
    df = ordered_scores(df, manifests)
    timings = _ordered_timings(timings, df)
    lbs = build_leaderboards(df, manifests, reference)
    ref = lbs[0].reference if lbs else None
    from bench.report.adaptation import adaptation_entries, gain_rows

    entries = adaptation_entries(runs)
    first = {k: i for i, k in reversed(list(enumerate(zip(df["dataset"], df["degradation"], df["method"]))))}
    entries.sort(key=lambda e: first.get((e.dataset, e.degradation, e.method), len(first)))  # the tables' order
    gains = gain_rows(df, entries, [lb.metric for lb in lbs]) if entries else []
    adapt_notes = [f"adapted methods and their '(unadapted)' references are scored on the images left after the "
                   f"adaptation draw ({', '.join(sorted({e.method for e in entries}))}), other methods on every "
                   f"image: compare them in the few-shot adaptation section, paired over the same images"] \
        if entries else []
    return Report(runs, df, timings, manifests, lbs, dup_notes + notes(df) + adapt_notes, ref, entries, gains)


def _legend(rep: Report) -> str:
    """What the marks mean, naming only the marks that occur."""
    parts = [(f"Mean over images [{int(LEVEL * 100)} % bootstrap interval]; **bold** = best in the column "
              "(none where the best value is tied at the printed precision)")]
    if any(lb.any_partial for lb in rep.leaderboards):
        parts.append("`*` = some images failed (see notes)")
    if rep.any_circular:
        parts.append("`†` = method guided by the metric's own backbone (a gain may be metric hacking)")
    if any(lb.any_scientific for lb in rep.leaderboards):
        parts.append("columns of values near 0 are in scientific notation")
    return "; ".join(parts) + "."


def markdown(rep: Report, with_reference: bool = True) -> str:
    parts = ["# srbench leaderboard", ""]
    protocol = ", ".join(sorted(rep.scores["protocol"].dropna().astype(str).unique()))
    parts.append(md_escape(f"Protocol: {protocol}. Runs: {', '.join(str(r) for r in rep.runs)}."))
    parts.append(_legend(rep))
    parts.append("")
    for lb in rep.leaderboards:
        parts += [f"## {md_escape(lb.metric.upper())} ({lb.direction})", "", to_markdown(lb), ""]
        if with_reference and lb.reference and len(lb.methods) > 1:
            parts += [md_escape(f"Paired difference against {lb.reference} over the same images "
                                f"[{int(LEVEL * 100)} % bootstrap interval]; better/worse = the interval excludes 0, "
                                "n.s. = it does not, same = identical scores on every image."), "",
                      vs_reference_markdown(lb), ""]
    if rep.adaptation:
        from bench.report.adaptation import adaptation_markdown

        parts += [adaptation_markdown(rep.adaptation, rep.adaptation_gains), ""]
    from bench.report.editability import editability_markdown, load_editability
    from bench.report.trained import trained_markdown

    if section := trained_markdown(rep.manifests):
        parts += [section]
    if section := editability_markdown(load_editability(rep.runs)):
        parts += [section]
    if rep.notes:
        parts += ["## Notes", "", *[f"- {md_escape(x)}" for x in rep.notes], ""]
    parts += ["## Provenance", "", *[f"- {md_escape(x)}" for x in provenance_lines(rep.runs, rep.manifests)], ""]
    return "\n".join(parts)


def render(runs: list[Path], out_dir: Path | None = None, reference: str | None = DEFAULT_REFERENCE,
           with_reference: bool = True) -> str:
    """The Markdown leaderboard of ``runs``; with ``out_dir`` also its table files (Markdown,
    LaTeX, CSV)."""
    rep = build(runs, reference)
    text = markdown(rep, with_reference)
    if out_dir is not None:
        write_tables(rep, Path(out_dir), text)
    return text


def write_tables(rep: Report, out: Path, md: str | None = None) -> list[Path]:
    """leaderboard.md, leaderboard.tex, leaderboard.csv (long form), scores.csv (every row) and
    leaderboard_<metric>.csv (as printed) in ``out``. Every CSV goes through
    `bench.run.io.write_csv`: text a spreadsheet would run as a formula is neutralised."""
    from bench.run.io import write_csv
    from bench.run.store import safe_name

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "leaderboard.md", out / "leaderboard.tex", out / "leaderboard.csv", out / "scores.csv"]
    written[0].write_text(md if md is not None else markdown(rep))
    written[1].write_text("% srbench leaderboard; needs \\usepackage{booktabs}\n\n"
                          + "\n\n".join(to_latex(lb) for lb in rep.leaderboards) + "\n")
    write_csv(to_csv_long(rep.leaderboards), written[2])
    write_csv(rep.scores.drop(columns=["run"], errors="ignore"), written[3])
    for lb in rep.leaderboards:
        header = ["method", *map(lb.column_label, lb.columns)]
        rows = [[m, *(cell_text(lb, lb.cell(m, c), ci=False, bold=("", "")) for c in lb.columns)] for m in lb.methods]
        path = out / f"leaderboard_{safe_name(lb.metric)}.csv"
        write_csv(pd.DataFrame(rows, columns=header), path)
        written.append(path)
    return written


# -- HTML ------------------------------------------------------------------------------------------

def _html_cell(lb: Leaderboard, m: str, col) -> Any:
    from bench.report.html import Cell

    c = lb.cell(m, col)
    if not c.has_value:
        cls = {"failed": "failed", "unsupported": "unsupported", "unavailable": "unavailable",
               "missing data": "missing"}.get(c.status, "missing")
        return Cell(c.status, None, (cls,), c.message or None)
    classes = (("best",) if c.best else ()) + (("circular",) if c.circular else ())
    title = []
    if c.circular:
        title.append(f"{m} is guided by {lb.backbone}, the backbone of {lb.metric}: possible metric hacking")
    if c.status == "partial":
        title.append(f"{c.n_failed} image(s) failed: {c.message}")
    iv = c.interval
    title.append(f"n = {iv.n} images" + (f", {c.n_inf} of them infinite" if c.n_inf else ""))
    text = c.fmt(iv.mean) + ("*" if c.status == "partial" else "")
    sub = _interval_text(c) or "1 image"
    return Cell(text, iv.mean, classes, "; ".join(title), sub=sub)


def _html_ref_cell(lb: Leaderboard, m: str, col) -> Any:
    from bench.report.html import Cell

    c = lb.cell(m, col)
    main, sub = _ref_parts(lb, m, col)
    if c.vs_ref is None:
        return Cell(main, None, () if c.has_value else ("unsupported",))
    classes = ("significant",) if verdict(lb, c.vs_ref) in ("better", "worse") else ()
    return Cell(main, c.vs_ref.mean, classes, f"paired over {c.vs_ref.n} images", sub=sub)


def _caption(lb: Leaderboard) -> str:
    text = (f"{lb.metric.upper()} ({lb.direction}): mean over images, {int(LEVEL * 100)} % bootstrap interval "
            "below; \u2605 best, none where tied")
    if lb.any_partial:
        text += "; * some images failed (see the notes)"
    if lb.any_circular:
        text += "; \u26a0 method guided by the metric's own backbone (hover for why)"
    if lb.any_scientific:
        text += "; values near 0 in scientific notation"
    return text


def leaderboard_html(lb: Leaderboard) -> str:
    """The metric's table (datasets as column groups over their scales), then, folded, the paired
    differences against the reference and the LaTeX of the table."""
    from bench.report.html import details_html, pre_html, table_html

    header = ["method", *(c[1] for c in lb.columns)]
    groups = [(d, len(cs)) for d, cs in lb.groups()]
    parts = [table_html(header, [[m, *(_html_cell(lb, m, c) for c in lb.columns)] for m in lb.methods],
                        caption=_caption(lb), table_id=f"lb-{lb.metric}", groups=groups)]
    if lb.reference and len(lb.methods) > 1:
        ref = table_html(header, [[m, *(_html_ref_cell(lb, m, c) for c in lb.columns)] for m in lb.methods],
                         caption=f"{lb.metric.upper()}: paired difference against {lb.reference} over the same "
                                 f"images, {int(LEVEL * 100)} % bootstrap interval below; better/worse = the "
                                 "interval excludes 0, n.s. = it does not, same = identical on every image",
                         table_id=f"ref-{lb.metric}", groups=groups)
        parts.append(details_html(f"Paired differences against {lb.reference}", ref, classes=("paired",)))
    parts.append(details_html("LaTeX (booktabs) of this table", pre_html(to_latex(lb)), classes=("latex",)))
    return "\n".join(parts)


# the figure kinds of a report, in page order, with the number of columns they are laid out in
FIGURE_KINDS = {"Quality against scale": 2, "Perception-distortion plane": 2, "Per-image distributions": 1,
                "Visual comparisons": 1, "Throughput": 1}


def _figures(rep: Report, out: Path, echo) -> list[tuple[str, Any]]:
    """``(kind, FigureInfo)`` of every plot and comparison grid, in table order; a failing plot is
    reported, never fatal."""
    from . import grids, plots

    figs = out / "figures"
    scores = rep.scores.drop(columns=["run"])
    metrics = [lb.metric for lb in rep.leaderboards]
    jobs = [("Quality against scale", lambda m=m: plots.quality_vs_scale(scores, m, figs)) for m in metrics]
    jobs += [("Perception-distortion plane", lambda x=x: plots.perception_distortion(scores, figs, x=x, y="psnr"))
             for x in metrics if x != "psnr" and _perceptual(x)]
    jobs += [("Per-image distributions", lambda m=m: plots.distribution_panels(scores, m, figs)) for m in metrics]
    for i, run in enumerate(rep.runs):
        part = scores[rep.scores["run"] == i]
        metric = "psnr" if "psnr" in metrics else metrics[0]
        n_cells = len(part[["dataset", "degradation"]].drop_duplicates())
        jobs.append(("Visual comparisons", lambda run=run, part=part, metric=metric, n=n_cells:
                     grids.comparison_grids(run, part, figs, metric=metric, max_grids=max(1, min(n, 12)))))
    jobs.append(("Throughput", lambda: plots.throughput(rep.timings.drop(columns=["run"], errors="ignore"), figs)))
    found: list[tuple[str, Any]] = []
    for kind, job in jobs:
        try:
            found += [(kind, f) for f in job()]
        except Exception as e:  # a plot must never cost the tables
            echo(f"!! {kind.lower()}: {type(e).__name__}: {' '.join(str(e).split())[:300]}")
    return found


def _footer(rep: Report) -> str:
    text = "Generated by srbench. Click a column header to sort; again to reverse. \u2605 best in the column"
    if rep.any_circular:
        text += ", \u26a0 method guided by the metric's own backbone (hover for why)"
    return text + ", dotted underline: significant paired difference."


def write_report(runs: list[Path], out: Path, *, reference: str | None = DEFAULT_REFERENCE, plots: bool = True,
                 html: bool = True, echo=print) -> Report:
    """Everything of ``srbench report``: tables (Markdown, LaTeX, CSV), figures (PNG + SVG) and a
    self-contained ``index.html`` in ``out``.

    The page: the leaderboards (one subsection per metric, paired differences and LaTeX folded
    under each table), then one section per dataset, in table order, with its figures in grids
    (quality against scale, perception-distortion, per-image distributions, visual comparisons),
    then throughput, notes and provenance; the table of contents links every (sub)section."""
    from bench.report.html import figure_grid_html, figure_html, section_html, subsection_html, text_html, write_page

    rep = build(runs, reference)
    out = Path(out)
    write_tables(rep, out)
    found = _figures(rep, out, echo) if plots else []
    if html:
        intro = (f"Protocol: {', '.join(sorted(rep.scores['protocol'].dropna().astype(str).unique()))}. "
                 f"Mean over images with the {int(LEVEL * 100)} % bootstrap interval below it; all tables are also in "
                 "leaderboard.md, leaderboard.tex and leaderboard.csv.")
        body = [section_html("Leaderboards", text_html(intro),
                             *(subsection_html(f"{lb.metric.upper()} ({lb.direction})", leaderboard_html(lb))
                               for lb in rep.leaderboards))]
        if rep.adaptation:
            from bench.report.adaptation import adaptation_html

            body.append(adaptation_html(rep.adaptation, rep.adaptation_gains))
        from bench.report.editability import editability_html, load_editability
        from bench.report.trained import trained_html

        if section := trained_html(rep.manifests):
            body.append(section)
        if section := editability_html(load_editability(rep.runs)):
            body.append(section)

        def grid(kind: str, infos: list) -> str:
            return figure_grid_html(*(figure_html(f.png, f.caption, svg_path=f.svg) for f in infos),
                                    columns=FIGURE_KINDS[kind])

        datasets = list(dict.fromkeys(rep.scores["dataset"].astype(str)))
        counts = rep.scores[rep.scores["image"] != "*"].groupby("dataset")["image"].nunique()
        for ds in datasets:
            subs = []
            for kind in FIGURE_KINDS:
                infos = [f for k, f in found if k == kind and getattr(f, "dataset", None) == ds]
                if infos:
                    subs.append(subsection_html(kind, grid(kind, infos)))
            if subs:
                n = int(counts.get(ds, 0))
                body.append(section_html(f"Figures: {ds}" + (f" ({n} images)" if n else ""), *subs))
        rest = [f for k, f in found if getattr(f, "dataset", None) not in datasets]
        for kind in FIGURE_KINDS:
            infos = [f for k, f in found if k == kind and f in rest]
            if infos:
                body.append(section_html(kind, grid(kind, infos)))
        if rep.notes:
            body.append(section_html("Notes", *(text_html(n) for n in rep.notes)))
        body.append(section_html("Provenance", *(text_html(x) for x in provenance_lines(rep.runs, rep.manifests))))
        write_page(out / "index.html", "srbench leaderboard", body,
                   subtitle=f"runs: {', '.join(str(r) for r in rep.runs)}", footer=_footer(rep))
    return rep
