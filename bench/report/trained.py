"""The report's *Trained methods* section: for every method of the runs that runs an ``srbench
train`` checkpoint, what the checkpoint says about itself (its record, in the run manifest's
``weights``): the recipe, the architecture, what it was trained from, and its validation figures
on the held-out Kodak24 crops; for DePLSR also its degradation adaptor's rank correlations (the
Kodak24 degradation probe of `bench.train.deplsr`: Spearman rho between the true blur sigma, noise
level and JPEG quality and the values the fine degradation embeddings predict); for CLIP-SR its
PSNR-Y on the held-out captioned training images with their own, the empty and another image's
caption. A label that ran several checkpoints (one per scale in per-scale run folders) gets a row
for each. These are the training's own figures, not the run's scores."""

from __future__ import annotations

from typing import Any

__all__ = ["trained_rows", "trained_markdown", "trained_html"]

INTRO = ("What each trained checkpoint records about itself: validation on held-out Kodak24 crops (the training "
         "degradation's LR, chosen before any test image was scored); for DePLSR, its degradation adaptor's "
         "Spearman rank correlation between true and predicted blur sigma, noise level and JPEG quality; for "
         "text-guided methods (CLIP-SR), PSNR-Y on the held-out captioned training images with their own caption, the "
         "empty caption and another image's caption.")
_VAL = (("val_psnr", "PSNR-Y", 2), ("val_ssim", "SSIM-Y", 4), ("val_lpips", "LPIPS", 4), ("val_dists", "DISTS", 4))
_RHO = (("val_rho_blur", "rho blur"), ("val_rho_noise", "rho noise"), ("val_rho_jpeg", "rho JPEG"))
_HELD = (("val_heldout_psnr_caption", "held-out PSNR-Y, own caption"), ("val_heldout_psnr_empty", "empty caption"),
         ("val_heldout_psnr_mismatched", "another's caption"))


def _fmt(v: Any, d: int) -> str:
    return f"{v:.{d}f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


def trained_rows(manifests: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)``: one row per trained method label and checkpoint (a label that ran
    several checkpoints, e.g. one per scale in per-scale run folders, is shown with the scale)."""
    found: dict[tuple[str, Any], dict[str, Any]] = {}  # (label, checkpoint sha256): one label may run
    for m in manifests:                                 # several checkpoints (one per scale, per run folder)
        for label, prov in (m.get("weights") or {}).items():
            if isinstance(prov, dict) and isinstance(prov.get("validation"), dict):
                found.setdefault((label, (prov.get("weights") or {}).get("sha256")), prov)
    several = {lab for lab, _ in found if sum(1 for other, _ in found if other == lab) > 1}
    seen = {(f"{lab} (x{p.get('scale')})" if lab in several else lab): p for (lab, _), p in found.items()}
    has_probe = any(((p.get("backbone_record") or {}).get("adaptor") or {}).get("probe") for p in seen.values())
    header = ["method", "recipe", "architecture", "from", "Kodak24 crops", *(n for _, n, _ in _VAL)]
    header += [n for _, n in _RHO] if has_probe else []
    has_text = any("val_heldout_psnr_caption" in p["validation"] for p in seen.values())
    header += [n for _, n in _HELD] if has_text else []
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
        if has_text:
            row += [_fmt(val.get(k), 3) for k, _ in _HELD]
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
