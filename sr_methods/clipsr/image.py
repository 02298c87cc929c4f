"""CLIP-SR's image side: the frozen features its discriminator reads and the image embedding its
text-image cosine compares with the sentence embedding.

- Real CLIP (:class:`ImageSide` on an ``iqa.semantic.ClipBackbone``): the image resized to the
  model's native size (224 for ViT-B/32), the token maps of blocks 1, 4 and 8 (768 x 7 x 7 for
  ViT-B/32) and CLIP's own image embedding, in the space of CLIP's text embeddings.
- Offline (VGG16, labelled ``vgg16``): the image resized to 112 px, so that ``relu5_3`` is a 7 x 7
  map like ViT-B/32's; ``relu3_3`` (28 x 28) and ``relu4_3`` (14 x 14) are average-pooled to 7 x 7. VGG16
  has no text space, so the image embedding is :class:`VGGTextAligner`: a small head trained
  (``srbench train clip-sr-align``) to map VGG16 features to the sentence encoder's space on the
  captioned training images. Without an aligner there is no image embedding and the cosine term is
  left out (said by the recipe, never filled in).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from iqa.errors import SrbenchError

__all__ = ["CLIP_LEVELS", "VGG_LEVELS", "ImageSide", "VGGTextAligner", "build_aligner"]

CLIP_LEVELS = ("block1", "block4", "block8")
VGG_LEVELS = ("relu3_3", "relu4_3", "relu5_3")
VGG_SIZE = 112


class VGGTextAligner(nn.Module):
    """VGG16 features -> a unit vector in the sentence encoder's space: the per-channel mean and
    standard deviation of ``levels`` -> Linear -> GELU -> Linear (``text_dim``) -> L2 norm."""

    def __init__(self, text_dim: int = 384, *, levels: Sequence[str] = ("relu4_3", "relu5_3"),
                 channels: Sequence[int] = (512, 512), hidden: int = 512):
        super().__init__()
        if len(levels) != len(channels):
            raise SrbenchError(f"aligner: {len(levels)} levels but {len(channels)} channel counts")
        self.levels, self.text_dim = tuple(levels), int(text_dim)
        self.mlp = nn.Sequential(nn.Linear(2 * sum(channels), hidden), nn.GELU(), nn.Linear(hidden, text_dim))
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1 / 0.07), CLIP's initial temperature

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        v = torch.cat([t for lv in self.levels for t in (feats[lv].mean(dim=(2, 3)), feats[lv].std(dim=(2, 3)))], 1)
        return F.normalize(self.mlp(v.float()), dim=-1)


class ImageSide(nn.Module):
    """Frozen: ``forward(x) -> (maps, embedding)`` with ``maps`` the discriminator's ``grid x grid``
    feature maps (a list, one per level) and ``embedding (B, D)`` unit vectors in the text space
    (None when there is none). Gradients flow to ``x``."""

    def __init__(self, backbone: nn.Module, *, levels: Sequence[str] | None = None, size: int | None = None,
                 aligner: VGGTextAligner | None = None, grid: int = 7):
        super().__init__()
        self.is_clip = getattr(backbone, "name", "") != "vgg16"
        self.levels = tuple(levels or (CLIP_LEVELS if self.is_clip else VGG_LEVELS))
        self.size = int(size or (backbone.native_size if self.is_clip else VGG_SIZE))
        self.grid = grid
        self._frozen = [backbone.eval().requires_grad_(False)]
        self.aligner = aligner.eval().requires_grad_(False) if aligner is not None else None
        if self.is_clip and aligner is not None:
            raise SrbenchError("a CLIP image side has its own image embedding: no aligner")
        self.channels = [int(c) for c in backbone.channels(self.levels).values()]

    @property
    def backbone(self) -> nn.Module:
        return self._frozen[0]

    def _apply(self, fn, *args, **kw):  # .to(): the backbone too
        self._frozen[0]._apply(fn, *args, **kw)
        return super()._apply(fn, *args, **kw)

    def train(self, mode: bool = True) -> ImageSide:  # always frozen
        return super().train(False)

    @property
    def has_embedding(self) -> bool:
        return self.is_clip or self.aligner is not None

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False, antialias=True)

    def features(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The backbone's raw features (every level the maps and the aligner need) and its embedding."""
        want = tuple(dict.fromkeys(self.levels + (self.aligner.levels if self.aligner is not None else ())))
        return self.backbone(self.resize(x), want)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        maps, emb, _ = self.run(x)
        return maps, emb

    def run(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None, dict[str, torch.Tensor]]:
        """``(maps, embedding, the backbone's raw features by level)`` in one pass."""
        feats, emb = self.features(x)
        maps = [f if f.shape[-1] == self.grid and f.shape[-2] == self.grid else F.adaptive_avg_pool2d(f, self.grid)
                for f in (feats[lv] for lv in self.levels)]
        if self.is_clip:
            return maps, F.normalize(emb.float(), dim=-1), feats
        return maps, self.aligner(feats) if self.aligner is not None else None, feats


def build_aligner(*, text_dim: int = 384, levels: Sequence[str] = ("relu4_3", "relu5_3"),
                  channels: Sequence[int] = (512, 512), hidden: int = 512, **_record: object) -> VGGTextAligner:
    """The builder of checkpoint arch ``clip-sr-align`` (other ``arch_options`` keys, such as the
    backbone, image size and sentence encoder it was trained with, are records, not build options)."""
    return VGGTextAligner(text_dim, levels=levels, channels=channels, hidden=hidden)
