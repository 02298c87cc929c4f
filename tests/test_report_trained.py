"""The report's Trained methods section: rows from the checkpoint records in run manifests."""

from __future__ import annotations

from bench.report.trained import trained_html, trained_markdown, trained_rows


def _manifest():
    probe = {"val_rho_blur": 0.947, "val_rho_noise": 0.9561, "val_rho_jpeg": None, "samples": 48}
    return {"weights": {
        "esrgan-thick-x4": {"sha256": "ab" * 32},  # a catalogue network: no training record
        "deplsr-x": {"method": "deplsr", "arch": "deplsr", "base": {"asset": "esrgan-thick-x4"},
                     "validation": {"val_psnr": 24.456, "val_ssim": 0.61234, "val_lpips": 0.5, "images": 8},
                     "backbone_record": {"adaptor": {"sha256": "c" * 64, "probe": probe}}},
        "sfd": {"method": "sfd-sr-vgg16", "arch": "rrdn", "parent": {"asset": "esrgan-thick-x4"},
                "validation": {"val_psnr": 26.786, "images": 8}},
    }}


def test_rows_hold_each_trained_checkpoints_own_figures():
    header, rows = trained_rows([_manifest(), _manifest()])  # a label in two runs: once
    assert [r[0] for r in rows] == ["deplsr-x", "sfd"]
    assert header[-3:] == ["rho blur", "rho noise", "rho JPEG"]
    dep, sfd = (dict(zip(header, r)) for r in rows)
    assert dep["PSNR-Y"] == "24.46" and dep["SSIM-Y"] == "0.6123" and dep["DISTS"] == "–"
    assert dep["from"] == "esrgan-thick-x4; adaptor cccccccccccc"
    assert (dep["rho blur"], dep["rho noise"], dep["rho JPEG"]) == ("0.947", "0.956", "–")
    assert sfd["rho blur"] == "–" and sfd["from"] == "esrgan-thick-x4"
    assert "## Trained methods" in trained_markdown([_manifest()]) and "Trained methods" in trained_html([_manifest()])


def test_no_trained_method_no_section():
    assert trained_rows([{"weights": {"bicubic": None}}])[1] == []
    assert trained_markdown([{}]) == "" and trained_html([{}]) == ""


def test_a_label_running_one_checkpoint_per_scale_gets_a_row_per_checkpoint_with_text_validation():
    def run(scale: int, sha: str, psnr: float) -> dict:
        val = {"val_psnr": psnr, "images": 8, "val_heldout_psnr_caption": 24.624, "val_heldout_psnr_empty": 24.626,
               "val_heldout_psnr_mismatched": 24.623}
        return {"weights": {"clip-sr-cap45": {"method": "clip-sr", "arch": "clip-sr", "scale": scale,
                                              "validation": val, "weights": {"sha256": sha}}}}

    header, rows = trained_rows([run(4, "a" * 64, 24.58), run(8, "b" * 64, 22.18), run(4, "a" * 64, 24.58)])
    assert [r[0] for r in rows] == ["clip-sr-cap45 (x4)", "clip-sr-cap45 (x8)"]
    assert header[-3:] == ["held-out PSNR-Y, own caption", "empty caption", "another's caption"]
    assert rows[0][-3:] == ["24.624", "24.626", "24.623"] and rows[1][header.index("PSNR-Y")] == "22.18"
