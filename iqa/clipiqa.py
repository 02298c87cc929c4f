"""CLIP-IQA (Wang, Chan and Loy, "Exploring CLIP for Assessing the Look and Feel of Images",
AAAI 2023), written from the paper on open_clip models.

What it computes: the image and an antonym prompt pair (default ``"Good photo."`` /
``"Bad photo."``) are embedded with CLIP; with the cosine similarities ``s_good``, ``s_bad`` of
the unit-normalised embeddings, the score is the softmax probability of the first prompt,
``exp(100 s_good) / (exp(100 s_good) + exp(100 s_bad))`` (logit scale 100, CLIP's trained
maximum). **Higher is better**, range 0..1. This is the zero-shot CLIP-IQA (no prompt learning,
not CLIP-IQA+).

How the image reaches the model (option ``mode``); the image is normalised with the model's
mean/std, never padded:

- ``"native"``: the whole image at its own size, as CLIP-IQA does: only for ResNet backbones
  (``RN50``, ...), whose attention pooling then runs without its positional embedding (which
  exists for one input size only), as in the paper. Needs at least 32x32 pixels.
- ``"crops"`` (the default for ViTs, whose positional embedding fixes the input size): the image
  is resized (bicubic, antialiased) so that its shorter side is the model's input size
  (``image_size``, 224 for ViT-B-16), keeping its aspect ratio; the longer side is covered by
  ``ceil(long / size)`` square crops, evenly spaced from one end to the other (neighbours overlap
  by less than one crop), and the crops' probabilities are averaged.
- ``"center"``: CLIP's own preprocessing: shorter side resized to ``size``, one centre crop.
- ``"squash"``: the whole image resized to ``size x size`` (aspect ratio not kept).
- ``"auto"`` (default): ``native`` for ResNet backbones, ``crops`` otherwise.

Options: ``clip`` (open_clip model name or model-config JSON path, default ``"ViT-B-16"``),
``pretrained`` (open_clip tag, default ``"openai"``), ``weights`` (a local weights file; see
:mod:`iqa.clip` for where weights are looked up; offline without them the error says which file
to put where), ``prompts`` (the ``(positive, negative)`` pair), ``mode`` (above).
``info.backbone`` is the CLIP model name, so a benchmark can flag CLIP-guided SR methods scored
by a CLIP metric of the same backbone.

Calibration: the score is a deterministic function of the CLIP weights; the tests check it against
a direct computation with the model's ``encode_image``/``encode_text``. With ``clip="RN50"``,
``mode="native"`` it is the paper's configuration (pyiqa's ``clipiqa`` uses it too); the default
ViT-B-16 with crops is our choice and its numbers are not the paper's.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .base import Metric, MetricInfo, quantize_uint8
from .errors import SrbenchError
from .protocols import DEFAULT_PROTOCOL, Protocol, get_protocol

__all__ = ["CLIPIQA", "DEFAULT_PROMPTS", "MODES", "crop_starts"]

DEFAULT_PROMPTS = ("Good photo.", "Bad photo.")
MODES = ("auto", "native", "crops", "center", "squash")
LOGIT_SCALE = 100.0


def crop_starts(length: int, size: int) -> list[int]:
    """Start offsets of ``ceil(length / size)`` crops of ``size`` evenly spaced over ``length``
    (first at 0, last ending at ``length``); ``[0]`` when ``length <= size``."""
    n = max(1, math.ceil(length / size))
    if n == 1:
        return [0]
    return [round(i * (length - size) / (n - 1)) for i in range(n)]


def _is_resnet(visual: torch.nn.Module) -> bool:
    return hasattr(visual, "attnpool") and hasattr(visual, "stem") and hasattr(visual, "layer4")


def _attnpool_without_position(pool: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """open_clip's ``AttentionPool2d`` on a feature map of any size, without the positional
    embedding (CLIP-IQA's change): query = the mean token, keys/values = mean + all positions."""
    b, c, h, w = x.shape
    tokens = x.reshape(b, c, h * w).permute(2, 0, 1)  # (HW, B, C)
    tokens = torch.cat([tokens.mean(dim=0, keepdim=True), tokens], dim=0)
    out, _ = F.multi_head_attention_forward(
        query=tokens[:1], key=tokens, value=tokens, embed_dim_to_check=c, num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None, in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0, out_proj_weight=pool.c_proj.weight,
        out_proj_bias=pool.c_proj.bias, use_separate_proj_weight=True, training=False, need_weights=False)
    return out[0]


class CLIPIQA(Metric):
    """CLIP-IQA on an open_clip model; higher is better, 0..1 (the module docstring has the details:
    what it computes, the options, the input modes and the calibration)."""

    info = MetricInfo("clipiqa", "nr", True, (0.0, 1.0),
                      "CLIP-IQA zero-shot: P('Good photo.' vs 'Bad photo.'), open_clip backbone", "ViT-B-16")

    def __init__(self, protocol: str | Protocol = DEFAULT_PROTOCOL, clip: str = "ViT-B-16",
                 pretrained: str | None = "openai", weights: str | os.PathLike[str] | None = None,
                 prompts: Sequence[str] = DEFAULT_PROMPTS, mode: str = "auto", **options: Any):
        super().__init__()
        if options:
            raise SrbenchError(f"unknown option(s) for metric 'clipiqa': {', '.join(sorted(options))} "
                               "(known options: clip, pretrained, weights, prompts, mode)")
        if isinstance(prompts, str) or len(prompts) != 2 or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise SrbenchError(f"clipiqa prompts must be a (positive, negative) pair of texts, got {prompts!r}")
        if mode not in MODES:
            raise SrbenchError(f"clipiqa mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not pretrained and weights is None:
            raise SrbenchError("clipiqa needs trained CLIP weights: give pretrained=TAG or weights=PATH")
        from .clip import load_clip

        cm = load_clip(clip, pretrained or None, weights=weights)
        self.protocol = get_protocol(protocol)
        self.clip_model = cm.model
        self._clip_provenance = cm.provenance()  # a method of the metric reports it (the runner calls provenance())
        self.prompts = (str(prompts[0]), str(prompts[1]))
        self.size = cm.image_size
        resnet = _is_resnet(cm.model.visual)
        self.mode = ("native" if resnet else "crops") if mode == "auto" else mode
        if self.mode == "native" and not resnet:
            raise SrbenchError(f"clipiqa mode 'native' needs a ResNet CLIP backbone (RN50, ...); {cm.name} has a "
                               "fixed input size: use mode 'crops', 'center' or 'squash'")
        self.min_size = 32 if self.mode == "native" else 1
        self.tileable = True
        self.info = MetricInfo("clipiqa", "nr", True, (0.0, 1.0),
                               f"CLIP-IQA zero-shot ({cm.name}, {self.mode}): P({self.prompts[0]!r} vs "
                               f"{self.prompts[1]!r})", cm.name)
        self.register_buffer("mean", torch.tensor(cm.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cm.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        with torch.no_grad():
            text = cm.model.encode_text(cm.tokenizer(list(self.prompts)))
        self.register_buffer("text", F.normalize(text.float(), dim=-1), persistent=False)

    def provenance(self) -> dict[str, Any]:
        """The CLIP weights file (path, ``sha256``, whether it was verified), the prompts and the mode."""
        return {**self._clip_provenance, "prompts": list(self.prompts), "mode": self.mode}

    # -- views of the image ------------------------------------------------------------------------
    def _resize(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        if (h, w) == tuple(x.shape[-2:]):
            return x
        return F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)

    def views(self, x: torch.Tensor) -> torch.Tensor:
        """The model inputs for images ``x`` ``(B, 3, H, W)``: ``(B, V, 3, h, w)`` in ``[0, 1]``."""
        h, w = x.shape[-2:]
        s = self.size
        if self.mode == "native":
            return x[:, None]
        if self.mode == "squash":
            return self._resize(x, s, s)[:, None]
        short = min(h, w)
        nh, nw = (s, max(s, round(w * s / short))) if h <= w else (max(s, round(h * s / short)), s)
        r = self._resize(x, nh, nw)
        if self.mode == "center":
            top, left = (nh - s) // 2, (nw - s) // 2
            return r[:, None, :, top:top + s, left:left + s]
        boxes = [(top, left) for top in crop_starts(nh, s) for left in crop_starts(nw, s)]
        return torch.stack([r[:, :, t:t + s, c:c + s] for t, c in boxes], dim=1)

    def image_features(self, v: torch.Tensor) -> torch.Tensor:
        """Unit-normalised CLIP embeddings of normalised model inputs ``v`` ``(N, 3, h, w)``."""
        visual = self.clip_model.visual
        if self.mode == "native":
            f = visual.stem(v)
            f = visual.layer4(visual.layer3(visual.layer2(visual.layer1(f))))
            f = _attnpool_without_position(visual.attnpool, f)
        else:
            f = self.clip_model.encode_image(v)
        return F.normalize(f.float(), dim=-1)

    def score(self, x: torch.Tensor, ref: Any = None, *, scale: int, gray: bool = False) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < self.min_size or w < self.min_size:
            raise SrbenchError(f"image of {w}x{h} pixels is too small for clipiqa in mode {self.mode!r} "
                               f"(needs at least {self.min_size}x{self.min_size})")
        if self.protocol.quantize:
            x = quantize_uint8(x)
        with torch.no_grad():
            v = self.views(x.float())
            b, n = v.shape[:2]
            v = (v.reshape(b * n, *v.shape[2:]) - self.mean) / self.std
            logits = LOGIT_SCALE * self.image_features(v) @ self.text.t()
            prob = logits.softmax(dim=-1)[:, 0].reshape(b, n)
        return prob.mean(dim=1).to(torch.float64)
