"""Degradations: how an LR image is made from an HR image.

Every degradation has a short readable key:

- ``x2``, ``x3``, ``x4``, ``x8``, ``x16`` (any ``xN``): the HR image is cropped to a multiple of
  N (``modcrop``, bottom/right) and shrunk with MATLAB-compatible bicubic ``imresize(HR, 1/N)``
  (MATLAB's uint8 path, bit-exact with the benchmark LR files).
- ``real-xN``: real LR/HR pairs (RealSR); nothing synthetic happens, the LR file is read as is.
- ``realesrgan-xN``: the Real-ESRGAN second-order degradation with its published settings;
  ``bdn-xN``: Gaussian blur (7 x 7, sigma 1.6) then bicubic; ``dn-xN``: bicubic then Gaussian
  noise of sigma 30 (see `iqa.degrade` for each one's parameters and sources).

A run names degradations by family (``bicubic``: ``xN``, or ``real-xN`` on a paired dataset;
``realesrgan``, ``bdn``, ``dn``), crossed with the run's scales, or by full key (``realesrgan-x4``).
Random degradations draw from a generator seeded by `derive_seed` (run seed, image id, key), so
every method sees the identical LR image of a given (run seed, image, degradation).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

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
    impl: Any = field(default=None, compare=False, repr=False)  # an iqa.degrade object (realesrgan, bdn, dn)

    def apply(self, hr: torch.Tensor, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``hr (B, 3, H, W)`` -> ``(hr_cropped, lr)``; for real pairs use the LR file instead."""
        from iqa.resize import imresize, modcrop

        if self.real:
            raise SrbenchError(f"degradation {self.key!r} uses real LR files; it cannot synthesise LR")
        h, w = hr.shape[-2:]
        if h < self.scale or w < self.scale:
            raise ImageTooSmallError(f"image of {w}x{h} pixels is smaller than the scale x{self.scale} allows")
        if self.impl is not None:
            return self.impl.apply(hr, seed=seed)
        hr = modcrop(hr, self.scale)
        return hr, imresize(hr, 1.0 / self.scale, kernel="cubic", mode="matlab")

    def for_image(self, hr: torch.Tensor, run_seed: int, image_id: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hr_cropped, lr)`` of one image as a run makes it: seeded by ``derive_seed(run_seed,
        image_id, key)`` and the LR on the uint8 grid (what the run's LR PNG holds)."""
        from iqa.base import quantize_uint8

        hr, lr = self.apply(hr, seed=derive_seed(run_seed, image_id, self.key))
        return hr, quantize_uint8(lr)


_KEY = re.compile(r"(real-)?x(\d+)")
FAMILIES = ("bicubic", "realesrgan", "bdn", "dn")  # "bicubic": xN, or real-xN on a paired dataset


def parse_degradation(key: str | int) -> Degradation:
    if isinstance(key, int):
        key = f"x{key}"
    text = str(key).strip().lower()
    match = _KEY.fullmatch(text)
    if match:
        if int(match.group(2)) < 1:
            raise SrbenchError(f"degradation {key!r}: the scale must be >= 1")
        return Degradation(match.group(0), int(match.group(2)), real=bool(match.group(1)))
    from iqa import degrade

    impl = degrade.parse(text)  # realesrgan-xN, bdn-xN, dn-xN; others: "did you mean"
    return Degradation(impl.key, impl.scale, impl=impl)


def is_family(name: str) -> bool:
    return name.strip().lower() in FAMILIES


def degradation_keys(entries: tuple[str, ...], scales: tuple[int, ...], paired: bool) -> list[str]:
    """The degradation keys of a dataset: each family crossed with ``scales`` (``bicubic`` is
    ``real-xN`` on a paired dataset), then each full key as given; no key twice."""
    keys: list[str] = []
    for e in entries or ("bicubic",):
        e = e.strip().lower()
        if e == "bicubic":
            keys += [f"real-x{s}" if paired else f"x{s}" for s in scales]
        elif e in FAMILIES:
            keys += [f"{e}-x{s}" for s in scales]
        else:
            keys.append(parse_degradation(e).key)
    return list(dict.fromkeys(keys))
