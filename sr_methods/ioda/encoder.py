"""The frozen image encoder ``E(x, m)`` of IODA's loss: a semantic backbone's embedding pooled over
a mask.

The paper feeds the mask to Alpha-CLIP as its alpha channel. No Alpha-CLIP exists in srbench (and
no CLIP weights offline), so the mask enters by *masked pooling*: the backbone's last feature map
is averaged with the mask (area-resized to the map) as weights, and a full image uses a mask of
ones, so masked and full embeddings live in one space.

- VGG16 (``iqa.semantic.VGG16Backbone``, offline): the ``relu5_3`` map (512 channels, stride 16);
  with a mask of ones this is exactly the backbone's own embedding (its global average).
- CLIP ViT (``iqa.semantic.ClipBackbone``): the last block's patch tokens through ``ln_post`` and
  the projection, i.e. each patch mapped into the image-embedding space, then pooled.
- CLIP ResNet: the ``layer4`` map.

Every input is resized to ``size`` (the backbone's native size, 224) first, bicubic with
antialiasing, as CLIP's preprocessing does, so an LR crop and its SR output are embedded alike.
The mask is resized with the image (nearest) and then area-averaged onto the feature grid. The
images go in as they are, in ``[0, 1]`` (not the official code's ``[0.5, 1]`` remapping of SR).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from iqa.errors import SrbenchError

__all__ = ["MaskedEncoder"]


class MaskedEncoder(nn.Module):
    """``E(x, mask) -> (B, D)``: ``x`` RGB ``(B, 3, H, W)`` in ``[0, 1]``, ``mask`` ``(B, H, W)``
    (or None: the whole image). Frozen; gradients flow to ``x``."""

    def __init__(self, backbone: nn.Module, size: int | None = None):
        super().__init__()
        from iqa.semantic import ClipBackbone, VGG16Backbone

        self.backbone = backbone.eval().requires_grad_(False)
        self.size = int(size or backbone.native_size)
        if isinstance(backbone, VGG16Backbone):
            self.kind = "vgg16"
        elif isinstance(backbone, ClipBackbone):
            self.kind = "clip-vit" if backbone.is_vit else "clip-resnet"
        else:
            raise SrbenchError(f"IODA's encoder needs a VGG16 or CLIP backbone, got {type(backbone).__name__}")

    def train(self, mode: bool = True) -> "MaskedEncoder":  # always frozen
        return super().train(False)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)``: the map that is pooled, in the embedding's space."""
        bb = self.backbone
        if self.kind == "vgg16":
            return bb(x, ("relu5_3",))[0]["relu5_3"]
        if self.kind == "clip-resnet":
            return bb(x, ("layer4",))[0]["layer4"]
        last = bb.levels[-1]
        fmap = bb(x, (last,))[0][last]  # (B, width, gh, gw)
        v = bb.model.visual
        tok = v.ln_post(fmap.flatten(2).transpose(1, 2).to(v.ln_post.weight.dtype))
        if v.proj is not None:
            tok = tok @ v.proj
        return tok.float().transpose(1, 2).reshape(fmap.shape[0], -1, *fmap.shape[-2:])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise SrbenchError(f"the encoder takes (B, 3, H, W) images, got {tuple(x.shape)}")
        if mask is not None and (mask.ndim != 3 or mask.shape[0] != x.shape[0] or mask.shape[-2:] != x.shape[-2:]):
            raise SrbenchError(f"the mask must be (B, H, W) = {(x.shape[0], *x.shape[-2:])}, got {tuple(mask.shape)}")
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False, antialias=True)
            if mask is not None:
                mask = F.interpolate(mask[:, None].float(), size=(self.size, self.size), mode="nearest")[:, 0]
        fmap = self.feature_map(x)
        if mask is None:
            return fmap.mean(dim=(2, 3))
        weights = F.adaptive_avg_pool2d(mask[:, None].to(fmap), fmap.shape[-2:])
        total = weights.sum(dim=(2, 3))
        if bool((total <= 0).any()):
            raise SrbenchError("an empty mask: the encoder needs at least one pixel to pool")
        return (fmap * weights).sum(dim=(2, 3)) / total
