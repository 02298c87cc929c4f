"""Leaderboards from run folders: methods x (dataset, scale) per metric, with 95 % bootstrap
confidence intervals over images, the best cell per column marked, paired differences against a
reference method, circularity flags and a provenance footer; as Markdown, CSV, LaTeX and HTML.

Cells that did not produce numbers are shown by what happened to them (``unsupported``,
``unavailable``, ``missing data``, ``failed``, ``not run``), never left blank and never given a
number. A cell where some images failed shows the mean over the images that worked, marked ``*``
and counted in the notes.

Circularity: a method guided by a backbone (e.g. a CLIP model) scored by a metric built on the same
backbone is marked ``†``: a gain there may be metric hacking, not quality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

import iqa
from iqa.errors import SrbenchError

from .stats import LEVEL, N_BOOT, Interval, bootstrap_mean, paired_difference
from .store import load_manifest, load_scores, load_timings

__all__ = ["CellStat", "Leaderboard", "Report", "build", "build_leaderboards", "load_runs", "markdown", "render",
           "to_csv_long", "to_latex", "to_markdown", "vs_reference_markdown", "write_report", "write_tables"]

_LABEL = {"unsupported": "unsupported", "unavailable": "unavailable", "missing": "missing data", "error": "failed"}
DEFAULT_REFERENCE = "bicubic"


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

    @property
    def has_value(self) -> bool:
        return self.interval is not None and self.status in ("ok", "partial")


@dataclass
class Leaderboard:
    metric: str
    higher_better: bool | None
    methods: list[str]
    columns: list[tuple[str, str, int]]  # (dataset, degradation, scale)
    cells: dict[tuple[str, tuple[str, str, int]], CellStat]
    reference: str | None = None
    backbone: str | None = None

    @property
    def direction(self) -> str:
        return {True: "higher is better", False: "lower is better", None: "direction unknown"}[self.higher_better]

    @staticmethod
    def column_label(col: tuple[str, str, int]) -> str:
        return f"{col[0]} {col[1]}"

    def cell(self, method: str, col: tuple[str, str, int]) -> CellStat:
        return self.cells[(method, col)]


@dataclass
class Report:
    runs: list[Path]
    scores: pd.DataFrame
    timings: pd.DataFrame
    manifests: list[dict[str, Any]]
    leaderboards: list[Leaderboard]
    notes: list[str] = field(default_factory=list)
    reference: str | None = None


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


def build_leaderboards(df: pd.DataFrame, manifests: list[dict[str, Any]] | None = None,
                       reference: str | None = DEFAULT_REFERENCE, seed: int = 0) -> list[Leaderboard]:
    """One `Leaderboard` per metric, in the runs' spec order (methods, datasets, metrics)."""
    manifests = manifests or []
    specs = [m.get("spec", {}) for m in manifests]
    methods = _order(df["method"], [m["label"] for s in specs for m in s.get("methods", [])])
    ds_rank = {d: i for i, d in enumerate(_order(df["dataset"], [d for s in specs for d in s.get("datasets", [])]))}
    cols = df[["dataset", "degradation", "scale"]].drop_duplicates()
    columns = sorted((tuple(c) for c in cols.itertuples(index=False)),
                     key=lambda c: (ds_rank[c[0]], int(c[2]), c[1]))
    columns = [(str(d), str(g), int(s)) for d, g, s in columns]
    present = [m for m in dict.fromkeys(df["metric"]) if m != "*"]
    metrics = _order(present, [m for s in specs for m in s.get("metrics", [])])
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
                    ok = g[(g["metric"] == metric) & (g["status"] == "ok")]
                    per_image[(method, col)] = dict(zip(ok["image"], ok["value"].astype(float)))
        for col in columns:
            vals = [cells[(m, col)].interval.mean for m in methods if cells[(m, col)].has_value]
            if vals and higher is not None:
                best = max(vals) if higher else min(vals)
                for m in methods:
                    c = cells[(m, col)]
                    c.best = c.has_value and c.interval.mean == best
            if reference is not None and (reference, col) in per_image:
                for m in methods:
                    if m != reference and (m, col) in per_image:
                        cells[(m, col)].vs_ref = paired_difference(per_image[(m, col)], per_image[(reference, col)],
                                                                   seed=seed)
        out.append(Leaderboard(metric, higher, methods, columns, cells, reference, mb))
    return out


def _cell(g: pd.DataFrame | None, metric: str, seed: int) -> CellStat:
    if g is None:
        return CellStat("not run")
    rows = g[(g["metric"] == metric) | (g["metric"] == "*")]
    ok = rows[rows["status"] == "ok"]
    bad = rows[rows["status"] != "ok"]
    if len(ok):
        n_failed = bad["image"].nunique() if len(bad) else 0
        return CellStat("partial" if n_failed else "ok", bootstrap_mean(ok["value"].to_numpy(), seed=seed), n_failed,
                        str(bad["message"].iloc[0]) if len(bad) else "")
    if len(bad):
        status = str(bad["status"].iloc[0])
        return CellStat(_LABEL.get(status, status), None, bad["image"].nunique() if status == "error" else 0,
                        str(bad["message"].iloc[0]))
    return CellStat("not run")


def notes(df: pd.DataFrame) -> list[str]:
    out = []
    bad = df[df["status"] != "ok"]
    for (ds, deg, method, status), g in bad.groupby(["dataset", "degradation", "method", "status"], sort=False):
        images = g["image"].nunique()
        first = g["message"].iloc[0]
        what = f"{images} image(s) failed" if status == "error" else status
        out.append(f"{ds} {deg} {method}: {what}: {first}")
    return out


# -- text formats -----------------------------------------------------------------------------------

def _digits(metric: str) -> int:
    return 2 if metric in ("psnr",) or metric.startswith("psnr") else 4


def _num(metric: str, x: float, signed: bool = False) -> str:
    d = _digits(metric)
    return f"{x:+.{d}f}" if signed else f"{x:.{d}f}"


def cell_text(lb: Leaderboard, c: CellStat, *, ci: bool = True, bold: tuple[str, str] = ("**", "**")) -> str:
    if not c.has_value:
        return c.status
    iv = c.interval
    text = _num(lb.metric, iv.mean)
    if c.best:
        text = f"{bold[0]}{text}{bold[1]}"
    if ci and iv.n > 1:
        text += f" [{_num(lb.metric, iv.lo)}, {_num(lb.metric, iv.hi)}]"
    if c.status == "partial":
        text += "*"
    if c.circular:
        text += " †"
    return text


def verdict(lb: Leaderboard, iv: Interval) -> str:
    """``better`` / ``worse`` (the interval of the difference excludes 0) or ``n.s.``."""
    if not iv.excludes_zero or lb.higher_better is None:
        return "n.s."
    return "better" if (iv.mean > 0) == lb.higher_better else "worse"


def ref_text(lb: Leaderboard, method: str, col) -> str:
    c = lb.cell(method, col)
    if method == lb.reference:
        return "reference" if c.has_value else c.status
    if not c.has_value:
        return c.status
    if c.vs_ref is None:
        return "no reference"
    iv = c.vs_ref
    return f"{_num(lb.metric, iv.mean, True)} [{_num(lb.metric, iv.lo, True)}, {_num(lb.metric, iv.hi, True)}] {verdict(lb, iv)}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def clean(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(clean, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(clean, r)) + " |" for r in rows]
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
    """One row per (metric, method, column): status, mean, interval, n, best, difference against
    the reference and its interval, significance, circularity."""
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
                    "n_failed": c.n_failed, "best": c.best, "reference": lb.reference,
                    "diff_vs_reference": d.mean if d else math.nan, "diff_ci_lo": d.lo if d else math.nan,
                    "diff_ci_hi": d.hi if d else math.nan, "significant": bool(d and d.excludes_zero),
                    "circular": c.circular, "message": c.message})
    return pd.DataFrame(rows)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(lb: Leaderboard, ci: bool = True, label: str | None = None) -> str:
    """A booktabs table (``\\usepackage{booktabs}``): datasets as spanning headers over their
    scales, best per column in bold, intervals in small type, unsupported/failed cells in italics."""
    groups: list[tuple[str, list]] = []
    for col in lb.columns:
        if groups and groups[-1][0] == col[0]:
            groups[-1][1].append(col)
        else:
            groups.append((col[0], [col]))
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
            iv = c.interval
            t = _num(lb.metric, iv.mean)
            t = rf"\textbf{{{t}}}" if c.best else t
            if ci and iv.n > 1:
                t += rf"\,{{\scriptsize[{_num(lb.metric, iv.lo)}, {_num(lb.metric, iv.hi)}]}}"
            if c.status == "partial":
                t += r"$^{*}$"
            if c.circular:
                t += r"$^{\dagger}$"
            cells.append(t)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    arrow = r"$\uparrow$" if lb.higher_better else (r"$\downarrow$" if lb.higher_better is False else "")
    caption = (f"{tex_escape(lb.metric.upper())} {arrow} ({lb.direction}); mean over images with the "
               f"{int(LEVEL * 100)}\\% bootstrap confidence interval in brackets; best per column in bold.")
    if any(c.circular for c in lb.cells.values()):
        caption += r" $^{\dagger}$: the method is guided by the metric's own backbone."
    if any(c.status == "partial" for c in lb.cells.values()):
        caption += r" $^{*}$: some images failed."
    lines.append(rf"\caption{{{caption}}}")
    lines.append(rf"\label{{{label or 'tab:' + lb.metric}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


# -- provenance ------------------------------------------------------------------------------------

def weight_hashes(manifest: dict[str, Any]) -> dict[str, str]:
    """``label -> sha256`` (family members as ``label/xN``) of the networks and of the metric
    checkpoints (such as SFD-IQA's) in a run."""
    out = {}
    for label, prov in [*(manifest.get("weights") or {}).items(), *(manifest.get("metric_weights") or {}).items()]:
        if not isinstance(prov, dict):
            continue
        if prov.get("sha256"):
            out[label] = prov["sha256"]
        for key, member in (prov.get("members") or {}).items():
            if isinstance(member, dict) and member.get("sha256"):
                out[f"{label}/{key}"] = member["sha256"]
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
    lbs = build_leaderboards(df, manifests, reference)
    ref = lbs[0].reference if lbs else None
    return Report(runs, df, timings, manifests, lbs, dup_notes + notes(df), ref)


def markdown(rep: Report, with_reference: bool = True) -> str:
    parts = ["# srbench leaderboard", ""]
    protocol = ", ".join(sorted(rep.scores["protocol"].dropna().unique()))
    parts.append(f"Protocol: {protocol}. Runs: {', '.join(str(r) for r in rep.runs)}.")
    parts.append(f"Mean over images [{int(LEVEL * 100)} % bootstrap interval]; **bold** = best in the column; "
                 "`*` = some images failed (see notes); `†` = method guided by the metric's own backbone.")
    parts.append("")
    for lb in rep.leaderboards:
        parts += [f"## {lb.metric.upper()} ({lb.direction})", "", to_markdown(lb), ""]
        if with_reference and lb.reference and len(lb.methods) > 1:
            parts += [f"Paired difference against {lb.reference} over the same images "
                      f"[{int(LEVEL * 100)} % bootstrap interval]; better/worse = the interval excludes 0, "
                      "n.s. = it does not.", "", vs_reference_markdown(lb), ""]
    if rep.notes:
        parts += ["## Notes", "", *[f"- {x}" for x in rep.notes], ""]
    parts += ["## Provenance", "", *[f"- {x}" for x in provenance_lines(rep.runs, rep.manifests)], ""]
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
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "leaderboard.md", out / "leaderboard.tex", out / "leaderboard.csv", out / "scores.csv"]
    written[0].write_text(md if md is not None else markdown(rep))
    written[1].write_text("% srbench leaderboard; needs \\usepackage{booktabs}\n\n"
                          + "\n\n".join(to_latex(lb) for lb in rep.leaderboards) + "\n")
    to_csv_long(rep.leaderboards).to_csv(written[2], index=False)
    rep.scores.drop(columns=["run"]).to_csv(written[3], index=False)
    for lb in rep.leaderboards:
        header = ["method", *map(lb.column_label, lb.columns)]
        rows = [[m, *(cell_text(lb, lb.cell(m, c), ci=False, bold=("", "")) for c in lb.columns)] for m in lb.methods]
        path = out / f"leaderboard_{lb.metric}.csv"
        pd.DataFrame(rows, columns=header).to_csv(path, index=False)
        written.append(path)
    return written


# -- HTML ------------------------------------------------------------------------------------------

def _html_cell(lb: Leaderboard, m: str, col) -> Any:
    from .html import Cell

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
    title.append(f"n = {iv.n} images")
    return Cell(cell_text(lb, c, bold=("", "")), iv.mean, classes, "; ".join(title))


def _html_ref_cell(lb: Leaderboard, m: str, col) -> Any:
    from .html import Cell

    c = lb.cell(m, col)
    text = ref_text(lb, m, col)
    if c.vs_ref is None:
        return Cell(text, None, () if c.has_value else ("unsupported",))
    classes = ("significant",) if c.vs_ref.excludes_zero else ()
    return Cell(text, c.vs_ref.mean, classes, f"paired over {c.vs_ref.n} images")


def leaderboard_html(lb: Leaderboard) -> str:
    from .html import table_html

    header = ["method", *map(lb.column_label, lb.columns)]
    table = table_html(header, [[m, *(_html_cell(lb, m, c) for c in lb.columns)] for m in lb.methods],
                       caption=f"{lb.metric.upper()} ({lb.direction}): mean over images [{int(LEVEL * 100)} % "
                               "bootstrap interval]; ★ best in the column; ⚠ method guided by the metric's backbone",
                       table_id=f"lb-{lb.metric}")
    if not lb.reference or len(lb.methods) < 2:
        return table
    ref = table_html(header, [[m, *(_html_ref_cell(lb, m, c) for c in lb.columns)] for m in lb.methods],
                     caption=f"{lb.metric.upper()}: paired difference against {lb.reference} over the same images "
                             f"[{int(LEVEL * 100)} % bootstrap interval]; better/worse = the interval excludes 0",
                     table_id=f"ref-{lb.metric}")
    return table + ref


def _figures(rep: Report, out: Path, echo) -> dict[str, list]:
    """Plots and comparison grids, by section; a failing plot is reported, never fatal."""
    from . import grids, plots

    figs = out / "figures"
    sections: dict[str, list] = {"Quality against scale": [], "Perception-distortion plane": [],
                                 "Per-image distributions": [], "Visual comparisons": [], "Throughput": []}
    scores = rep.scores.drop(columns=["run"])
    metrics = [lb.metric for lb in rep.leaderboards]
    jobs = [("Quality against scale", lambda m=m: plots.quality_vs_scale(scores, m, figs)) for m in metrics]
    jobs += [("Perception-distortion plane", lambda x=x: plots.perception_distortion(scores, figs, x=x, y="psnr"))
             for x in metrics if x != "psnr" and _perceptual(x)]
    jobs += [("Per-image distributions", lambda m=m: plots.distributions(scores, m, figs)) for m in metrics]
    for i, run in enumerate(rep.runs):
        part = scores[rep.scores["run"] == i]
        metric = "psnr" if "psnr" in metrics else metrics[0]
        jobs.append(("Visual comparisons", lambda run=run, part=part, metric=metric:
                     grids.comparison_grids(run, part, figs, metric=metric)))
    jobs.append(("Throughput", lambda: plots.throughput(rep.timings.drop(columns=["run"], errors="ignore"), figs)))
    for section, job in jobs:
        try:
            sections[section] += job()
        except Exception as e:  # a plot must never cost the tables
            echo(f"!! {section.lower()}: {type(e).__name__}: {' '.join(str(e).split())[:300]}")
    return sections


def write_report(runs: list[Path], out: Path, *, reference: str | None = DEFAULT_REFERENCE, plots: bool = True,
                 html: bool = True, echo=print) -> Report:
    """Everything of ``srbench report``: tables (Markdown, LaTeX, CSV), figures (PNG + SVG) and a
    self-contained ``index.html`` in ``out``."""
    from .html import figure_html, pre_html, section_html, text_html, write_page

    rep = build(runs, reference)
    out = Path(out)
    write_tables(rep, out)
    sections = _figures(rep, out, echo) if plots else {}
    if html:
        body = [section_html(f"{lb.metric.upper()} ({lb.direction})", leaderboard_html(lb))
                for lb in rep.leaderboards]
        for name, figs in sections.items():
            if figs:
                body.append(section_html(name, *(figure_html(f.png, f.caption, svg_path=f.svg) for f in figs)))
        if rep.notes:
            body.append(section_html("Notes", *(text_html(n) for n in rep.notes)))
        latex = (out / "leaderboard.tex").read_text()
        body.append(section_html("LaTeX", text_html("booktabs tables, as in leaderboard.tex"), pre_html(latex)))
        body.append(section_html("Provenance", *(text_html(x) for x in provenance_lines(rep.runs, rep.manifests))))
        write_page(out / "index.html", "srbench leaderboard", body,
                   subtitle=f"runs: {', '.join(str(r) for r in rep.runs)}")
    return rep
