"""The SR method contract.

An SR method maps a batch of low-resolution images to high-resolution ones:
``upscale(lr, scale)`` takes a float ``(B, 3, h, w)`` RGB tensor in ``[0, 1]`` and returns a
float32 ``(B, 3, h*scale, w*scale)`` tensor in ``[0, 1]`` (clamped) on the same device as ``lr``.
The method runs on its own device (``to(device)``); inputs on another device are moved there and
the result is moved back.

Text-guided methods (``text_guided = True``) also take a caption per image:
``upscale(lr, scale, text=...)`` with ``text`` one ``str`` (used for every image of the batch) or a
sequence of ``B`` strings (one per image, in batch order); their ``_upscale(lr, scale, texts)``
receives a list of ``B`` strings. With ``text=None`` a text-guided method follows its
``missing_caption`` setting: ``"unsupported"`` (the default) raises `MissingCaptionError`,
``"empty"`` runs it with the empty prompt ``""`` for each image. A text of the wrong kind or a
sequence of the wrong length is a one-line `SrbenchError`. Methods that are not text-guided
ignore ``text``: their ``_upscale(lr, scale)`` is called as it always was, so they never see it.
The benchmark runner gives each image the caption chosen from its dataset (or an override) and
records it in the score rows (see `bench.run.runner`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from iqa.base import check_images
from iqa.errors import SrbenchError

__all__ = ["MISSING_CAPTION_MODES", "MissingCaptionError", "SRMethod", "UnsupportedScaleError", "check_scale",
           "format_scales"]

# what a text-guided method does with an image that has no caption (``SRMethod.missing_caption``)
MISSING_CAPTION_MODES = ("unsupported", "empty")


class UnsupportedScaleError(SrbenchError):
    """``upscale`` was asked for a scale the method cannot produce."""

    def __init__(self, method: str, scale: object, scales: tuple[int, ...] | None):
        self.method, self.scale, self.scales = method, scale, scales
        super().__init__(f"method {method!r} does not support scale {scale!r} (supported scales: {format_scales(scales)})")


class MissingCaptionError(SrbenchError):
    """A text-guided method was asked to upscale without a caption (and ``missing_caption`` is not
    ``"empty"``)."""

    def __init__(self, method: str):
        self.method = method
        super().__init__(f"method {method!r} is text-guided and got no caption; give text=... or the option "
                         f"missing_caption=\"empty\" (runs it with the empty prompt)")


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_scales(scales: tuple[int, ...] | None) -> str:
    return "any integer >= 1" if scales is None else ", ".join(str(s) for s in scales)


def check_scale(method: str, scale: object, scales: tuple[int, ...] | None) -> int:
    """Return ``scale`` if ``method`` supports it; raise a one-line error otherwise."""
    if isinstance(scale, bool) or not isinstance(scale, int):
        raise SrbenchError(f"scale must be an int, got {scale!r} ({type(scale).__name__}) for method {method!r}")
    if scale < 1 or (scales is not None and scale not in scales):
        raise UnsupportedScaleError(method, scale, scales)
    return scale


class SRMethod:
    """Base class: subclasses set ``name``/``scales`` and implement ``_upscale``.

    - ``name``: the method's name as it appears in score rows.
    - ``scales``: the supported integer scales, or ``None`` for any integer scale ``>= 1``.
    - ``backbone``: the guidance backbone (e.g. ``"ViT-B-16"``) for CLIP-guided methods, else ``None``;
      used to flag circular evaluations (a metric on the same backbone).
    - ``text_guided``: ``True`` for methods that take a caption per image (``_upscale(lr, scale, texts)``).
    - ``missing_caption``: what a text-guided method does without a caption: ``"unsupported"``
      (`MissingCaptionError`; the runner records the image as ``unsupported``) or ``"empty"`` (the
      empty prompt). A factory may expose it as an option and set it on the instance.
    - ``batchable``: whether images of one size may share a call (``srbench run --batch``); ``False``
      for a method whose output for one image depends on the others of its batch.

    ``upscale`` checks its inputs, runs ``_upscale`` under ``torch.inference_mode()`` and checks,
    clamps and converts the result, so subclasses only compute.
    """

    name: str = "?"
    scales: tuple[int, ...] | None = None
    backbone: str | None = None
    text_guided: bool = False
    missing_caption: str = "unsupported"
    batchable: bool = True

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    def supports(self, scale: int) -> bool:
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            return False
        return self.scales is None or scale in self.scales

    def upscale(self, lr: torch.Tensor, scale: int, text: str | Sequence[str] | None = None) -> torch.Tensor:
        """``(B, 3, h, w)`` float in ``[0, 1]`` -> float32 ``(B, 3, h*scale, w*scale)`` in ``[0, 1]``.

        ``text``: for text-guided methods, one caption for the whole batch or ``B`` captions (see
        the module doc); ignored by the others."""
        check_scale(self.name, scale, self.scales)
        check_images(lr, "lr")
        b, _, h, w = lr.shape
        if h < 1 or w < 1:
            raise SrbenchError(f"lr must have H, W >= 1, got shape {tuple(lr.shape)}")
        texts = self.prompts(text, b) if self.text_guided else None
        with torch.inference_mode():
            sr = self._upscale(lr, scale) if texts is None else self._upscale(lr, scale, texts)
        want = (b, 3, h * scale, w * scale)
        if not isinstance(sr, torch.Tensor) or tuple(sr.shape) != want:
            got = tuple(sr.shape) if isinstance(sr, torch.Tensor) else type(sr).__name__
            raise SrbenchError(f"method {self.name!r} returned {got} for scale {scale}, expected {want}")
        # outside inference mode these ops return ordinary tensors, usable in autograd afterwards
        sr = sr.to(device=lr.device, dtype=torch.float32).clamp(0.0, 1.0)
        return sr.clone() if sr.is_inference() else sr

    def prompts(self, text: str | Sequence[str] | None, batch: int) -> list[str]:
        """The ``batch`` captions a text-guided method gets for ``text`` (see the module doc):
        ``None`` -> ``[""] * batch`` with ``missing_caption = "empty"``, else `MissingCaptionError`;
        a ``str`` -> that text for every image; a sequence -> its ``batch`` strings."""
        if self.missing_caption not in MISSING_CAPTION_MODES:
            raise SrbenchError(f"method {self.name!r}: missing_caption must be one of "
                               f"{', '.join(map(repr, MISSING_CAPTION_MODES))}, got {_short(self.missing_caption)}")
        if text is None:
            if self.missing_caption == "empty":
                return [""] * batch
            raise MissingCaptionError(self.name)
        if isinstance(text, str):
            return [text] * batch
        if not isinstance(text, Sequence) or isinstance(text, (bytes, bytearray)):
            raise SrbenchError(f"method {self.name!r}: text must be None, a str or a sequence of {batch} str, "
                               f"got {_short(text)} ({type(text).__name__})")
        texts = list(text)
        if len(texts) != batch:
            raise SrbenchError(f"method {self.name!r}: got {len(texts)} text(s) for a batch of {batch} image(s); "
                               f"give one str for the whole batch or one per image")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise SrbenchError(f"method {self.name!r}: text[{i}] must be a str, got {_short(t)} "
                                   f"({type(t).__name__})")
        return texts

    def _upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        """The computation. Text-guided methods define ``_upscale(lr, scale, texts)`` instead and
        get ``texts``, a list of ``B`` strings."""
        raise NotImplementedError

    def to(self, device: Any) -> SRMethod:
        self.device = torch.device(device)
        return self

    def provenance(self) -> dict[str, Any]:
        """What the run manifest records about this method (weights, sha256, architecture, ...)."""
        rec = {"name": self.name, "scales": list(self.scales) if self.scales is not None else None,
               "backbone": self.backbone}
        if self.text_guided:  # only then: the records of other methods stay as they were
            rec.update(text_guided=True, missing_caption=self.missing_caption)
        return rec

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, scales={format_scales(self.scales)!r}, device={str(self.device)!r})"
