"""Evaluation protocol presets for full-reference scores.

A protocol fixes the conventions that make PSNR/SSIM numbers comparable between papers. Its name
is recorded in every score row.

- ``basicsr`` (default): the SR community convention (BasicSR ``calculate_psnr``/``calculate_ssim``
  with ``test_y_channel=True, crop_border=scale``): SR output rounded to uint8, PSNR and SSIM on the
  BT.601 Y channel (MATLAB ``rgb2ycbcr``), a border of ``scale`` pixels shaved.
- ``pyiqa``: pyiqa's own ``psnry`` and ``ssim`` metrics with their defaults (Y channel, no border
  shave, float images), computed by calling pyiqa.
- ``rgb-noshave``: SR output rounded to uint8, PSNR and SSIM over the three RGB channels, no shave.
- ``basicsr-b2``: ``basicsr`` with a border of 2 pixels at every scale, the convention of DePLSR's
  published test log (``crop_border: 2`` at x4). The metrics ``psnr-b2`` / ``ssim-b2`` score it
  inside a run of any protocol (PSNR/SSIM with ``crop_border=2``), so one run shows both shaves.

LPIPS/DISTS and no-reference metrics always see the RGB image, whole; only the uint8 rounding of
the protocol applies to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UnknownNameError


@dataclass(frozen=True)
class Protocol:
    name: str
    y_channel: bool
    shave_scale: bool  # shave a border of `scale` pixels
    quantize: bool  # round SR images to uint8 before scoring
    backend: str  # "srbench" (our implementation) or "pyiqa"
    description: str
    border: int | None = None  # a fixed border at every scale (overrides shave_scale)

    def crop_border(self, scale: int) -> int:
        if self.border is not None:
            return self.border
        return scale if self.shave_scale else 0


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("basicsr", True, True, True, "srbench", "Y channel (BT.601), border = scale, uint8 outputs"),
        Protocol("pyiqa", True, False, False, "pyiqa", "pyiqa psnry/ssim defaults: Y channel, no shave, float"),
        Protocol("rgb-noshave", False, False, True, "srbench", "RGB channels, no shave, uint8 outputs"),
        Protocol("basicsr-b2", True, True, True, "srbench",
                 "Y channel (BT.601), border = 2 px at every scale (DePLSR's test log), uint8 outputs", border=2),
    )
}

DEFAULT_PROTOCOL = "basicsr"


def get_protocol(name: str | Protocol) -> Protocol:
    if isinstance(name, Protocol):
        return name
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UnknownNameError("protocol", name, list(PROTOCOLS)) from None
