"""The report's few-shot adaptation section (the protocol of `bench.run.adapt`).

Two tables, built from the cells' records and their per-image scores:

- what each adaptation did: dataset, degradation, method, ``k``, the images adapted on, steps,
  seed, wall time, the number of images scored and the adapted weights' sha256;
- the gain, per metric: the adapted method minus its unadapted reference (``<label>
  (unadapted)``, scored on the same images), and minus the base network when the runs scored it
  under its catalogue name (IODA's ``base`` option, CDASR's catalogue ``base``), paired over the
  images both scored, with the 95 % paired bootstrap interval; better/worse when the interval
  excludes 0 in the metric's direction, n.s. otherwise; a cell with one scored image shows its
  difference alone (no interval from one image).

Adaptation is a fixed number of steps; nothing is selected on the scored images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report.stats import LEVEL, Interval, paired_difference

__all__ = ["AdaptEntry", "adaptation_entries", "gain_rows", "adaptation_markdown", "adaptation_html"]


@dataclass(frozen=True)
class AdaptEntry:
    dataset: str
    degradation: str
    method: str
    record: dict[str, Any]


def adaptation_entries(runs: list[Path]) -> list[AdaptEntry]:
    """The adapted cells of ``runs`` (not their references), in the order found."""
    from bench.run.store import load_cells

    out = []
    for run in runs:
        for c in load_cells(run):
            rec = c.get("adaptation")
            if isinstance(rec, dict) and "reference_of" not in rec:
                out.append(AdaptEntry(str(c.get("dataset")), str(c.get("degradation")), str(c.get("method")), rec))
    return out


def _values(df: pd.DataFrame, e: AdaptEntry, method: str, metric: str) -> dict[str, float]:
    g = df[(df["dataset"] == e.dataset) & (df["degradation"] == e.degradation) & (df["method"] == method)
           & (df["metric"] == metric) & (df["status"] == "ok") & df["value"].notna()]
    return dict(zip(g["image"], g["value"].astype(float)))


def _verdict(iv: Interval, higher: bool | None) -> str:
    from bench.report.leaderboard import interval_verdict

    return "one image" if iv.n < 2 else interval_verdict(iv, higher)


def gain_rows(df: pd.DataFrame, entries: list[AdaptEntry], metrics: list[str], seed: int = 0) -> list[dict[str, Any]]:
    """One row per (entry, metric, comparison): adapted mean, the other's mean on the same images,
    the paired difference and its interval."""
    from bench.report.leaderboard import _metric_meta

    methods = set(df["method"])
    rows = []
    for e in entries:
        against = [e.record.get("reference")]
        base = e.record.get("base")
        if base and base in methods:
            against.append(base)
        for metric in metrics:
            a = _values(df, e, e.method, metric)
            for other in filter(None, against):
                b = _values(df, e, other, metric)
                iv = paired_difference(a, b, seed=seed)
                if iv is None:
                    continue
                common = sorted(a.keys() & b.keys())
                rows.append({"dataset": e.dataset, "degradation": e.degradation, "method": e.method, "metric": metric,
                             "against": other, "n": iv.n, "adapted": sum(a[k] for k in common) / len(common),
                             "other": sum(b[k] for k in common) / len(common), "delta": iv.mean, "lo": iv.lo,
                             "hi": iv.hi, "verdict": _verdict(iv, _metric_meta(metric)[0])})
    return rows


def record_table(entries: list[AdaptEntry]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "degradation", "method", "k", "adapted on", "steps", "seed", "seconds", "scored",
              "weights sha256"]
    rows = []
    for e in entries:
        r = e.record
        err = r.get("error")
        rows.append([e.dataset, e.degradation, e.method, str(r.get("k", "")), ", ".join(r.get("shots", [])),
                     str(r.get("steps", "")), str(r.get("seed", "")),
                     "failed" if err else f"{r.get('seconds', float('nan')):.1f}", str(r.get("scored", "")),
                     err if err else str(r.get("sha256", ""))[:16]])
    return header, rows


def gain_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One line per (cell, comparison), one column per metric: ``difference [interval] verdict``
    (``difference (1 image)`` where one image gives no interval)."""
    from bench.report.leaderboard import NumFormat, default_decimals

    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    lines: dict[tuple, dict[str, str]] = {}
    for r in rows:
        f = NumFormat(default_decimals([r["adapted"], r["other"]]) + 1)  # signed, never "-0.000"
        text = f(r["delta"], True)
        text += " (1 image)" if r["n"] < 2 else f" [{f(r['lo'], True)}, {f(r['hi'], True)}] {r['verdict']}"
        lines.setdefault((r["dataset"], r["degradation"], r["method"], r["against"], r["n"]), {})[r["metric"]] = text
    header = ["dataset", "degradation", "method", "vs", "n", *metrics]
    return header, [[d, g, m, vs, str(n), *(cells.get(k, "") for k in metrics)]
                    for (d, g, m, vs, n), cells in lines.items()]


INTRO = ("Few-shot adaptation: each method adapted on k LR images of the cell (drawn by the seed; no HR image "
         "of the target set is read), a fixed number of steps (nothing selected on the scored images), then "
         "scored on the remaining images next to its unadapted self and, where the run has it, its base network.")


def adaptation_markdown(entries: list[AdaptEntry], rows: list[dict[str, Any]]) -> str:
    from bench.report.leaderboard import md_escape

    def table(header: list[str], body: list[list[str]]) -> list[str]:
        return ["| " + " | ".join(map(md_escape, header)) + " |", "|" + "---|" * len(header),
                *["| " + " | ".join(map(md_escape, r)) + " |" for r in body]]

    parts = ["## Few-shot adaptation", "", md_escape(INTRO), "", *table(*record_table(entries)), ""]
    if rows:
        parts += [md_escape(f"Gain = adapted minus the other (per metric), paired over the same n images, with its "
                            f"{int(LEVEL * 100)} % bootstrap interval; better/worse = the interval excludes 0 in the "
                            "metric's direction, n.s. = it does not."), "", *table(*gain_table(rows)), ""]
    return "\n".join(parts)


def adaptation_html(entries: list[AdaptEntry], rows: list[dict[str, Any]]) -> str:
    from bench.report.html import section_html, subsection_html, table_html, text_html

    header, body = record_table(entries)
    parts = [text_html(INTRO), subsection_html("Adaptations", table_html(header, body, sortable=False))]
    if rows:
        header, body = gain_table(rows)
        parts.append(subsection_html("Gain", table_html(header, body, sortable=False)))
    return section_html("Few-shot adaptation", *parts)
