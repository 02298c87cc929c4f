"""Degradations: how an LR image is made from an HR image.

Every degradation has a short readable key:

- ``x2``, ``x3``, ``x4``, ``x8``, ``x16`` (any ``xN``): the HR image is cropped to a multiple of
  N (``modcrop``, bottom/right) and shrunk with MATLAB-compatible bicubic ``imresize(HR, 1/N)``
  (MATLAB's uint8 path, bit-exact with the benchmark LR files).
- ``real-xN``: real LR/HR pairs (RealSR); nothing synthetic happens, the LR file is read as is.

Random degradations (noise, JPEG) draw from a generator seeded by `derive_seed`, so every
method sees the identical LR image of a given (run seed, image, degradation).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import torch

from iqa.errors import SrbenchError


def derive_seed(run_seed: int, image_id: str, degradation: str) -> int:
    """A 63-bit seed from sha256 of (run seed, image id, degradation key): stable across runs and machines."""
    digest = hashlib.sha256(f"{run_seed}\x00{image_id}\x00{degradation}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class ImageTooSmallError(SrbenchError):
    pass


@dataclass(frozen=True)
class Degradation:
    key: str
    scale: int
    real: bool = False

    def apply(self, hr: torch.Tensor, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``hr (B, 3, H, W)`` -> ``(hr_cropped, lr)``; for real pairs use the LR file instead."""
        from iqa.resize import imresize, modcrop

        if self.real:
            raise SrbenchError(f"degradation {self.key!r} uses real LR files; it cannot synthesise LR")
        h, w = hr.shape[-2:]
        if h < self.scale or w < self.scale:
            raise ImageTooSmallError(f"image of {w}x{h} pixels is smaller than the scale x{self.scale} allows")
        hr = modcrop(hr, self.scale)
        return hr, imresize(hr, 1.0 / self.scale, kernel="cubic", mode="matlab")


_KEY = re.compile(r"(real-)?x(\d+)")


def parse_degradation(key: str | int) -> Degradation:
    if isinstance(key, int):
        key = f"x{key}"
    match = _KEY.fullmatch(str(key).strip().lower())
    if not match or int(match.group(2)) < 1:
        raise SrbenchError(f"unknown degradation {key!r}: use xN (bicubic, e.g. x4) or real-xN (real pairs)")
    return Degradation(match.group(0), int(match.group(2)), real=bool(match.group(1)))
