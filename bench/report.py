"""Leaderboards from run folders: methods x (dataset, scale), mean score per metric.

Cells that did not produce numbers are shown by what happened to them (``unsupported``,
``unavailable``, ``missing``, ``failed``), never left blank and never given a number. A cell where
some images failed shows the mean over the images that worked, marked with ``*`` and counted in
the notes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import iqa
from iqa.errors import SrbenchError

from .store import load_manifest, load_scores

_LABEL = {"unsupported": "unsupported", "unavailable": "unavailable", "missing": "missing data", "error": "failed"}


def _direction(metric: str) -> str:
    try:
        return "higher is better" if iqa.metric_info(metric).higher_better else "lower is better"
    except SrbenchError:
        return ""


def _fmt(metric: str, value: float) -> str:
    return f"{value:.2f}" if metric == "psnr" else f"{value:.4f}"


def leaderboards(df: pd.DataFrame, method_order: list[str] | None = None,
                 dataset_order: list[str] | None = None, metric_order: list[str] | None = None
                 ) -> dict[str, pd.DataFrame]:
    """One table of strings per metric: index method (in ``method_order``, e.g. the spec's, then
    any others), columns 'dataset xN'."""
    if df.empty:
        raise SrbenchError("the run has no score rows yet")
    df = df.copy()
    df["column"] = df["dataset"] + " x" + df["scale"].astype(str)
    rank = {d: i for i, d in enumerate(dict.fromkeys(dataset_order or []))}
    keyed = df[["dataset", "scale", "column"]].drop_duplicates()
    keyed = keyed.assign(rank=keyed["dataset"].map(lambda d: rank.get(d, len(rank))))
    columns = list(keyed.sort_values(["rank", "dataset", "scale"], kind="stable")["column"])
    methods = [m for m in dict.fromkeys(method_order or []) if m in set(df["method"])]
    methods += [m for m in dict.fromkeys(df["method"]) if m not in methods]
    present = [m for m in dict.fromkeys(df["metric"]) if m != "*"]
    metrics = [m for m in dict.fromkeys(metric_order or []) if m in present]
    metrics += [m for m in present if m not in metrics]
    tables = {}
    for metric in metrics:
        table = pd.DataFrame("", index=methods, columns=columns)
        for (method, column), cell in df.groupby(["method", "column"], sort=False):
            rows = cell[(cell["metric"] == metric) | (cell["metric"] == "*")]
            ok = rows[rows["status"] == "ok"]
            bad = rows[rows["status"] != "ok"]
            if len(ok):
                text = _fmt(metric, ok["value"].mean())
                table.loc[method, column] = text + ("*" if len(bad) else "")
            elif len(bad):
                table.loc[method, column] = _LABEL.get(bad["status"].iloc[0], bad["status"].iloc[0])
            else:
                table.loc[method, column] = "not run"
        tables[metric] = table.replace("", "not run")
    return tables


def notes(df: pd.DataFrame) -> list[str]:
    out = []
    bad = df[df["status"] != "ok"]
    for (ds, deg, method, status), g in bad.groupby(["dataset", "degradation", "method", "status"], sort=False):
        images = g["image"].nunique()
        first = g["message"].iloc[0]
        what = f"{images} image(s) failed" if status == "error" else status
        out.append(f"{ds} {deg} {method}: {what}: {first}")
    return out


def to_markdown(table: pd.DataFrame) -> str:
    cols = ["method", *table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for method, row in table.iterrows():
        lines.append("| " + " | ".join([str(method), *map(str, row.tolist())]) + " |")
    return "\n".join(lines)


def render(runs: list[Path], out_dir: Path | None = None) -> str:
    """Markdown leaderboard of one or more runs; with ``out_dir`` also writes leaderboard.md and CSVs."""
    df = pd.concat([load_scores(run) for run in runs], ignore_index=True)
    manifest = load_manifest(runs[0])
    specs = [load_manifest(run).get("spec", {}) for run in runs]
    tables = leaderboards(df, [m["label"] for s in specs for m in s.get("methods", [])],
                          [d for s in specs for d in s.get("datasets", [])],
                          [m for s in specs for m in s.get("metrics", [])])
    parts = ["# srbench leaderboard", ""]
    protocol = ", ".join(sorted(df["protocol"].unique()))
    parts.append(f"Protocol: {protocol}. Runs: {', '.join(str(r) for r in runs)}.")
    parts.append("Mean over images; `*` = some images failed (see notes).")
    parts.append("")
    for metric, table in tables.items():
        parts += [f"## {metric.upper()} ({_direction(metric)})", "", to_markdown(table), ""]
    n = notes(df)
    if n:
        parts += ["## Notes", "", *[f"- {x}" for x in n], ""]
    if manifest:
        v = manifest.get("versions", {})
        parts += ["## Provenance", "",
                  f"- device: {manifest.get('device')}",
                  f"- git: {manifest.get('git_sha')}",
                  f"- versions: {', '.join(f'{k} {val}' for k, val in v.items())}", ""]
    text = "\n".join(parts)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "leaderboard.md").write_text(text)
        for metric, table in tables.items():
            table.rename_axis("method").to_csv(out_dir / f"leaderboard_{metric}.csv")
        df.to_csv(out_dir / "scores.csv", index=False)
    return text
