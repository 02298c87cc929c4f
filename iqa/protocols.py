"""Evaluation protocol presets for full-reference scores.

A protocol fixes the conventions that make PSNR/SSIM numbers comparable between papers. Its name
is recorded in every score row.

- ``basicsr`` (default): the SR community convention (BasicSR ``calculate_psnr``/``calculate_ssim``
  with ``test_y_channel=True, crop_border=scale``): SR output rounded to uint8, PSNR and SSIM on the
  BT.601 Y channel (MATLAB ``rgb2ycbcr``), a border of ``scale`` pixels shaved.
- ``pyiqa``: pyiqa's own ``psnry`` and ``ssim`` metrics with their defaults (Y channel, no border
  shave, float images), computed by calling pyiqa.
- ``rgb-noshave``: SR output rounded to uint8, PSNR and SSIM over the three RGB channels, no shave.

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

    def crop_border(self, scale: int) -> int:
        return scale if self.shave_scale else 0


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("basicsr", True, True, True, "srbench", "Y channel (BT.601), border = scale, uint8 outputs"),
        Protocol("pyiqa", True, False, False, "pyiqa", "pyiqa psnry/ssim defaults: Y channel, no shave, float"),
        Protocol("rgb-noshave", False, False, True, "srbench", "RGB channels, no shave, uint8 outputs"),
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
