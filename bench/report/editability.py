"""The report's *Editability* section: ``editability.json`` of the run folders (written by
``srbench editability``, `bench.run.editability`): for each text-guided method, dataset and scale,
how far the output moves toward a contrasting caption in the judge's eyes, how much it changes
(LPIPS between the two outputs), and whether outputs agree with their own caption better than with
another image's (the match margin), each a mean with its 95 % bootstrap interval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["load_editability", "editability_rows", "editability_markdown", "editability_html"]

INTRO = ("Text steering of the text-guided methods. Move: how much the judge's preference shifts toward a contrasting "
         "caption (colour, person, object and face-attribute words swapped; positive = toward the new caption) when "
         "the method is given it instead of the true one. LPIPS: the change between the two outputs. Match: the "
         "judge's similarity of each output to its own caption minus to another image's caption (positive = the "
         "output agrees with its caption; any faithful SR output does, the picture carries its content). Match gain: "
         "that margin minus the same margin of the output made with the empty caption, i.e. what the text adds. "
         "Means with 95 % bootstrap intervals. The judge is named per row; a method "
         "trained with that judge's text-image cosine is graded by what it was trained on.")


def load_editability(runs: list[Path]) -> list[dict[str, Any]]:
    """Every result of the runs' ``editability.json`` files (the last run wins for a method, dataset
    and scale); a malformed file is skipped with its name in the ``notes`` of the caller."""
    found: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        path = Path(run) / "editability.json"
        if path.is_file():
            for r in json.loads(path.read_text()):
                found[(r["method"], r["dataset"], r["scale"])] = r
    return list(found.values())


def _iv(s: dict[str, Any] | None, d: int = 4) -> str:
    if not s or s.get("mean") is None:
        return "–"
    return f"{s['mean']:+.{d}f} [{s['lo']:+.{d}f}, {s['hi']:+.{d}f}] (n={s['n']})"


def editability_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["method", "dataset", "scale", "move toward the swapped caption", "LPIPS between outputs",
              "match: own - other caption", "match gain over the empty caption", "judge"]
    rows = []
    for r in sorted(results, key=lambda r: (r["dataset"], r["scale"], r["method"])):
        lp = r.get("lpips")
        rows.append([r["method"], r["dataset"], f"x{r['scale']}", _iv(r.get("move")),
                     f"{lp['mean']:.4f} [{lp['lo']:.4f}, {lp['hi']:.4f}]" if lp else "–", _iv(r.get("match")),
                     _iv(r.get("match_gain")),
                     str((r.get("judge") or {}).get("judge", "?"))])
    return header, rows


def editability_markdown(results: list[dict[str, Any]]) -> str:
    from bench.report.leaderboard import md_section

    header, rows = editability_rows(results)
    return md_section("Editability", INTRO, header, rows) if rows else ""


def editability_html(results: list[dict[str, Any]]) -> str:
    from bench.report.html import section_html, table_html, text_html

    header, rows = editability_rows(results)
    return section_html("Editability", text_html(INTRO), table_html(header, rows, sortable=False)) if rows else ""
