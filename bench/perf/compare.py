"""The regression gate of ``srbench perf --compare BASELINE.json CURRENT.json --max-slowdown 5%``.

Entries are matched by (kind, name, inputs, scale, batch, precision). An entry is a **regression**
when its median time grew by more than ``max_slowdown`` *and* beyond the measured spread: the
current run's fastest pass is slower than the baseline's slowest (the two ranges do not overlap).
Symmetrically an entry is **faster** when it shrank by more than the threshold beyond the spread;
everything else is ``same``. Entries present on one side only, or that failed, are listed and do
not pass silently: a baseline entry missing from the current run counts as a failure.

Outputs: a plain table (stdout), optionally JUnit XML (one test case per entry, a ``<failure>``
for each regression or missing entry) and a GitHub step-summary Markdown table (``--markdown``, or
appended to ``$GITHUB_STEP_SUMMARY`` when that is set). The exit status is 1 on any failure.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from iqa.errors import SrbenchError


@dataclass
class Verdict:
    key: tuple
    status: str  # regression, faster, same, missing, new, error
    base_ms: float | None
    cur_ms: float | None
    change: float | None  # cur / base - 1
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("regression", "missing", "error")

    @property
    def label(self) -> str:
        kind, name, inputs, scale, batch, precision = self.key
        return f"{kind} {name} {inputs} x{scale} b{batch} {precision}"


def parse_threshold(text: str | float) -> float:
    """``"5%"`` or ``0.05`` -> 0.05."""
    try:
        v = float(str(text).strip().rstrip("%")) / (100.0 if str(text).strip().endswith("%") else 1.0)
    except ValueError:
        raise SrbenchError(f"--max-slowdown must be like 5% or 0.05, got {text!r}") from None
    if not 0 <= v < 10:
        raise SrbenchError(f"--max-slowdown must be a fraction >= 0 (e.g. 5%), got {text!r}")
    return v


def _entries(doc: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    return {(r["kind"], r["name"], r["inputs"], r["scale"], r["batch"], r["precision"]): r for r in doc["results"]}


def compare(base: dict[str, Any], cur: dict[str, Any], max_slowdown: float) -> list[Verdict]:
    b, c = _entries(base), _entries(cur)
    out = []
    for key in list(b) + [k for k in c if k not in b]:
        rb, rc = b.get(key), c.get(key)
        if rc is None:
            out.append(Verdict(key, "missing", rb.get("median_s", math.nan) * 1000, None, None,
                               "in the baseline, not in the current run"))
            continue
        if rb is None:
            out.append(Verdict(key, "new", None, rc.get("median_s", math.nan) * 1000, None, "not in the baseline"))
            continue
        if rc.get("error") or rb.get("error"):
            out.append(Verdict(key, "error", None, None, None, rc.get("error") or f"baseline: {rb.get('error')}"))
            continue
        change = rc["median_s"] / rb["median_s"] - 1.0
        if change > max_slowdown and rc["min_s"] > rb["max_s"]:
            status = "regression"
        elif change < -max_slowdown and rc["max_s"] < rb["min_s"]:
            status = "faster"
        else:
            status = "same"
        detail = ("beyond the threshold but within the measured spread" if status == "same"
                  and abs(change) > max_slowdown else "")
        out.append(Verdict(key, status, rb["median_s"] * 1000, rc["median_s"] * 1000, change, detail))
    return out


def _fmt(v: float | None, d: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"


def table(verdicts: list[Verdict]) -> str:
    lines = [f"{'entry':<58} {'base ms':>10} {'now ms':>10} {'change':>8}  status"]
    for v in verdicts:
        ch = "–" if v.change is None else f"{100 * v.change:+.1f}%"
        lines.append(f"{v.label:<58} {_fmt(v.base_ms):>10} {_fmt(v.cur_ms):>10} {ch:>8}  {v.status}"
                     + (f" ({v.detail})" if v.detail else ""))
    return "\n".join(lines)


def markdown(verdicts: list[Verdict], threshold: float) -> str:
    bad = sum(v.failed for v in verdicts)
    head = (f"### srbench perf: {'**' + str(bad) + ' failing**' if bad else 'no regression'} "
            f"(threshold {100 * threshold:.1f} % beyond the measured spread)")
    rows = ["| entry | baseline ms | current ms | change | status |", "|---|---|---|---|---|"]
    for v in verdicts:
        ch = "–" if v.change is None else f"{100 * v.change:+.1f} %"
        mark = {"regression": "❌ regression", "missing": "❌ missing", "error": "❌ error", "faster": "✅ faster"}
        rows.append(f"| {v.label.replace('|', '/')} | {_fmt(v.base_ms)} | {_fmt(v.cur_ms)} | {ch} | "
                    f"{mark.get(v.status, v.status)} |")
    return "\n".join([head, "", *rows, ""])


def junit(verdicts: list[Verdict]) -> str:
    fails = sum(v.failed for v in verdicts)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuite name="srbench-perf" tests="{len(verdicts)}" failures="{fails}">']
    for v in verdicts:
        secs = (v.cur_ms or 0.0) / 1000
        case = f'  <testcase classname="srbench.perf" name={quoteattr(v.label)} time="{secs:.6f}"'
        if v.failed:
            msg = f"{v.status}: base {_fmt(v.base_ms)} ms, now {_fmt(v.cur_ms)} ms" + (f"; {v.detail}" if v.detail else "")
            out += [case + ">", f"    <failure message={quoteattr(msg)}>{escape(msg)}</failure>", "  </testcase>"]
        else:
            out.append(case + "/>")
    out.append("</testsuite>")
    return "\n".join(out) + "\n"


def run_compare(base_path, cur_path, max_slowdown: str | float, *, junit_path=None, markdown_path=None,
                echo=print) -> int:
    from bench.perf.throughput import load

    threshold = parse_threshold(max_slowdown)
    base, cur = load(base_path), load(cur_path)
    bm, cm = base.get("machine", {}), cur.get("machine", {})
    if (bm.get("gpu"), bm.get("cpu")) != (cm.get("gpu"), cm.get("cpu")):
        echo(f"!! the two files come from different machines ({bm.get('gpu') or bm.get('cpu')} vs "
             f"{cm.get('gpu') or cm.get('cpu')}): the comparison says little")
    verdicts = compare(base, cur, threshold)
    echo(table(verdicts))
    if junit_path:
        Path(junit_path).write_text(junit(verdicts))
    md = markdown(verdicts, threshold)
    if markdown_path:
        Path(markdown_path).write_text(md)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as f:
            f.write(md)
    bad = [v for v in verdicts if v.failed]
    echo(f"{len(bad)} failing of {len(verdicts)} (threshold {100 * threshold:.1f} % beyond the measured spread)")
    return 1 if bad else 0
