"""What changed between two runs: per cell and metric, the old and new mean, the difference and its
95 % bootstrap interval (paired over the images both runs scored; unpaired when they share none),
and cells whose status changed (e.g. ``unavailable`` -> ``ok``).

``srbench report --compare OLD NEW`` writes it as Markdown, CSV (`write_compare_csv`: formula-like
text neutralised) and HTML. Numbers print by the report's rule (`bench.report.leaderboard.choose_format`, per
metric), so two means that differ print differently; a change is ``same`` only when every image
scored identically.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.report.leaderboard import _LABEL, NumFormat, _metric_meta, choose_format, default_decimals, load_runs, md_escape
from bench.report.stats import LEVEL, paired_difference, unpaired_difference

__all__ = ["compare_markdown", "compare_runs", "metric_formats", "summary", "write_compare_csv"]

_KEYS = ["dataset", "degradation", "scale", "method"]


def _status(rows: pd.DataFrame | None, metric: str) -> tuple[str, dict]:
    if rows is None or rows.empty:
        return "absent", {}
    r = rows[(rows["metric"] == metric) | (rows["metric"] == "*")]
    ok = r[r["status"] == "ok"]
    if len(ok):
        return ("partial" if (r["status"] != "ok").any() else "ok"), dict(zip(ok["image"], ok["value"].astype(float)))
    if len(r):
        s = str(r["status"].iloc[0])
        return _LABEL.get(s, s), {}
    return "absent", {}


def compare_runs(old: Path, new: Path, seed: int = 0) -> pd.DataFrame:
    """One row per (dataset, degradation, scale, method, metric) present in either run."""
    a, _, _, _ = load_runs([Path(old)])
    b, _, _, _ = load_runs([Path(new)])
    metrics = [m for m in dict.fromkeys([*a["metric"], *b["metric"]]) if m != "*"]
    ga = {k: g for k, g in a.groupby(_KEYS, sort=False)}
    gb = {k: g for k, g in b.groupby(_KEYS, sort=False)}
    rows = []
    for key in dict.fromkeys([*ga, *gb]):
        for metric in metrics:
            sa, va = _status(ga.get(key), metric)
            sb, vb = _status(gb.get(key), metric)
            if sa == "absent" and sb == "absent":
                continue
            higher, _ = _metric_meta(metric)
            row = dict(zip(_KEYS, key), metric=metric, old_status=sa, new_status=sb,
                       old_mean=sum(va.values()) / len(va) if va else math.nan,
                       new_mean=sum(vb.values()) / len(vb) if vb else math.nan,
                       delta=math.nan, ci_lo=math.nan, ci_hi=math.nan, n_common=len(va.keys() & vb.keys()),
                       paired=False, change="")
            if va and vb:
                paired = bool(va.keys() & vb.keys())
                iv = paired_difference(vb, va, seed=seed) if paired else unpaired_difference(
                    list(vb.values()), list(va.values()), seed=seed)
                row.update(delta=iv.mean, ci_lo=iv.lo, ci_hi=iv.hi, paired=paired)
                if iv.excludes_zero and higher is not None:
                    row["change"] = "better" if (iv.mean > 0) == higher else "worse"
                elif iv.mean == 0 and iv.lo == 0 and iv.hi == 0:
                    row["change"] = "same"
                else:
                    row["change"] = "n.s."
                if set(va) != set(vb):
                    row["change"] += f" (images: {len(va)} -> {len(vb)})"
                if iv.n_inf:
                    row["change"] += f" ({iv.n_inf} image(s) with an infinite score left out of the delta)"
            elif sa != sb:
                row["change"] = f"{sa} -> {sb}"
            else:
                row["change"] = sa
            rows.append(row)
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> str:
    """``Summary: 12 same, 3 better, 1 n.s., 2 absent -> ok.``"""
    if df.empty:
        return "Summary: no cells in either run."
    counts = df["change"].str.replace(r" \(.*\)$", "", regex=True).value_counts()
    return "Summary (cells x metrics): " + ", ".join(f"{n} {k}" for k, n in counts.items()) + "."


def write_compare_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write the comparison as CSV through `bench.run.io.write_csv` (text a spreadsheet would run as a
    formula, such as a method called ``=HYPERLINK(...)``, gets a leading quote)."""
    from bench.run.io import write_csv

    write_csv(df, path)


def metric_formats(g: pd.DataFrame) -> tuple[NumFormat, NumFormat]:
    """The (means, deltas) formats of one metric's rows of `compare_runs` (the report's rule)."""
    means = [*g["old_mean"], *g["new_mean"]]
    start = default_decimals(means)
    return choose_format(means, start), choose_format(g["delta"], start)


def compare_markdown(df: pd.DataFrame, old: Path, new: Path) -> str:
    lines = ["# srbench comparison", "", md_escape(f"Old: {old}. New: {new}."),
             (f"Delta = new - old, mean over images with its {int(LEVEL * 100)} % bootstrap interval (paired over "
              "the images both runs scored); better/worse = the interval excludes 0 (in the metric's direction); "
              "n.s. = it does not; same = identical on every image."), ""]
    if df.empty:
        return "\n".join(lines + ["No cells in either run."])
    lines.append(summary(df))
    lines.append("")
    for metric, g in df.groupby("metric", sort=False):
        fmt, dfmt = metric_formats(g)
        lines += [f"## {md_escape(metric.upper())}", "", "| dataset | scale | method | old | new | delta [interval] | change |",
                  "|---|---|---|---|---|---|---|"]
        for r in g.itertuples(index=False):
            old_t = fmt(r.old_mean) if not math.isnan(r.old_mean) else r.old_status
            new_t = fmt(r.new_mean) if not math.isnan(r.new_mean) else r.new_status
            d = ("" if math.isnan(r.delta) else
                 f"{dfmt(r.delta, True)} [{dfmt(r.ci_lo, True)}, {dfmt(r.ci_hi, True)}]")
            cells = [r.dataset, r.degradation, r.method, old_t, new_t, d or "-", r.change]
            lines.append("| " + " | ".join(md_escape(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)
