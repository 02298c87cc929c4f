"""The report's *Trained methods* section: for every method of the runs that runs an ``srbench
train`` checkpoint, what the checkpoint says about itself (its record, in the run manifest's
``weights``): the recipe, the architecture, what it was trained from, and its validation figures
on the held-out Kodak24 crops; for DePLSR also its degradation adaptor's rank correlations (the
Kodak24 degradation probe of `bench.train.deplsr`: Spearman rho between the true blur sigma, noise
level and JPEG quality and the values the fine degradation embeddings predict). These are the
training's own figures, not the run's scores."""

from __future__ import annotations

from typing import Any

__all__ = ["trained_rows", "trained_markdown", "trained_html"]

INTRO = ("What each trained checkpoint records about itself: validation on held-out Kodak24 crops (the training "
         "degradation's LR, chosen before any test image was scored) and, for DePLSR, its degradation adaptor's "
         "Spearman rank correlation between true and predicted blur sigma, noise level and JPEG quality.")
_VAL = (("val_psnr", "PSNR-Y", 2), ("val_ssim", "SSIM-Y", 4), ("val_lpips", "LPIPS", 4), ("val_dists", "DISTS", 4))
_RHO = (("val_rho_blur", "rho blur"), ("val_rho_noise", "rho noise"), ("val_rho_jpeg", "rho JPEG"))


def _fmt(v: Any, d: int) -> str:
    return f"{v:.{d}f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


def trained_rows(manifests: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)``: one row per trained method label (first manifest that has it)."""
    seen: dict[str, dict[str, Any]] = {}
    for m in manifests:
        for label, prov in (m.get("weights") or {}).items():
            if isinstance(prov, dict) and isinstance(prov.get("validation"), dict) and label not in seen:
                seen[label] = prov
    has_probe = any(((p.get("backbone_record") or {}).get("adaptor") or {}).get("probe") for p in seen.values())
    header = ["method", "recipe", "architecture", "from", "Kodak24 crops", *(n for _, n, _ in _VAL)]
    header += [n for _, n in _RHO] if has_probe else []
    rows = []
    for label, p in seen.items():
        val = p["validation"]
        start = p.get("base") or p.get("parent") or {}
        origin = start.get("asset") or start.get("name") or start.get("path") or "–"
        ad = (p.get("backbone_record") or {}).get("adaptor") or {}
        if ad:
            origin += f"; adaptor {str(ad.get('sha256', ''))[:12]}"
        row = [label, str(p.get("method") or "–"), str(p.get("arch") or "–"), str(origin),
               str(val.get("images", "–")), *(_fmt(val.get(k), d) for k, _, d in _VAL)]
        if has_probe:
            probe = ad.get("probe") or {}
            row += [_fmt(probe.get(k), 3) for k, _ in _RHO]
        rows.append(row)
    return header, rows


def trained_markdown(manifests: list[dict[str, Any]]) -> str:
    from bench.report.leaderboard import md_section

    header, rows = trained_rows(manifests)
    return md_section("Trained methods", INTRO, header, rows) if rows else ""


def trained_html(manifests: list[dict[str, Any]]) -> str:
    from bench.report.html import section_html, table_html, text_html

    header, rows = trained_rows(manifests)
    return section_html("Trained methods", text_html(INTRO), table_html(header, rows, sortable=False)) if rows else ""
