"""Frozen semantic backbones for SFD: multi-level feature maps, the final image embedding and (for
CLIP) a text encoder that takes learnable context embeddings.

One interface, :class:`SemanticBackbone`:

- ``forward(x, levels) -> (features, embedding)``: ``x`` is RGB in ``[0, 1]``, ``(B, 3, H, W)``
  (normalised inside); ``features[level]`` is a ``(B, C, h, w)`` map; ``embedding`` is ``(B, D)``.
- ``native_size``: the input size the backbone was trained at (CLIP: its ``image_size``; VGG16:
  224), which SFD uses as its patch size.
- ``text_width``/``encode_context(ctx, words)`` (CLIP only): the text transformer run on
  ``[SOS] ctx_1 .. ctx_n word-tokens . [EOS]`` with learnable ``ctx`` (CoOp), returning ``(K, D)``.

Implementations:

- :class:`ClipBackbone`: any open_clip model (ViT: the tokens after transformer blocks
  ``block<i>`` without the class token, reshaped to the patch grid; ResNet: stages
  ``layer1..layer4``). Inputs of another size than ``native_size`` are accepted for ViTs by
  bicubic interpolation of the positional embedding (the grid must be whole patches: the input is
  cropped to a multiple of the patch size).
- :class:`VGG16Backbone`: torchvision's ImageNet VGG16 ``features`` (asset ``vgg16``), levels
  ``relu1_2 .. relu5_3``; its embedding is the global average of ``relu5_3`` (512-d). It has no text
  encoder: SFD pairs it with two learnable anchor vectors in that space instead of prompts.

Both are frozen (``requires_grad=False``, eval mode); gradients still flow to the *input*, as the
SFD SR method needs when it trains a generator against these features.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import SrbenchError

__all__ = ["ClipBackbone", "SemanticBackbone", "VGG16Backbone", "build_backbone", "build_trained_backbone"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class SemanticBackbone(nn.Module):
    name: str = "?"
    levels: tuple[str, ...] = ()
    default_levels: tuple[str, ...] = ()
    native_size: int = 224
    embed_dim: int = 0
    text_width: int | None = None  # None: no text encoder

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def _check_levels(self, levels) -> tuple[str, ...]:
        levels = tuple(levels or self.default_levels)
        bad = [lv for lv in levels if lv not in self.levels]
        if bad:
            raise SrbenchError(f"backbone {self.name} has no feature level(s) {bad} (known: {', '.join(self.levels)})")
        return levels

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def channels(self, levels=None) -> dict[str, int]:
        """Channels of each level (one probe at the native size)."""
        levels = self._check_levels(levels)
        p = next(self.parameters())
        with torch.no_grad():
            feats, _ = self(torch.zeros(1, 3, self.native_size, self.native_size, device=p.device), levels)
        return {k: v.shape[1] for k, v in feats.items()}

    def forward(self, x: torch.Tensor, levels=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        raise NotImplementedError

    def encode_context(self, ctx: torch.Tensor, words: list[str]) -> torch.Tensor:
        raise SrbenchError(f"backbone {self.name} has no text encoder")

    @property
    def spec(self) -> str:
        """The name `build_backbone` rebuilds this backbone from."""
        return self.name

    def provenance(self) -> dict[str, Any]:
        return {"backbone": self.name}

    def train(self, mode: bool = True):  # always frozen
        return super().train(False)


# -- CLIP ------------------------------------------------------------------------------------------------

class ClipBackbone(SemanticBackbone):
    """An open_clip model (see ``iqa.clip.load_clip``) as a semantic backbone."""

    def __init__(self, clip: Any):
        super().__init__(clip.mean, clip.std)
        self.clip = clip
        self.model = clip.model
        self.name = clip.name
        self.native_size = clip.image_size
        visual = self.model.visual
        self.is_vit = hasattr(visual, "transformer") and hasattr(visual, "class_embedding")
        if self.is_vit:
            n = len(visual.transformer.resblocks)
            self.levels = tuple(f"block{i}" for i in range(1, n + 1))
            # middle semantics: the blocks at 1/2 and 3/4 of the depth (block6, block9 of ViT-B)
            self.default_levels = tuple(dict.fromkeys((f"block{max(1, n // 2)}", f"block{max(1, (3 * n) // 4)}")))
            patch = visual.conv1.kernel_size
            self.patch = int(patch[0] if isinstance(patch, tuple) else patch)
        elif hasattr(visual, "layer4"):
            self.levels = ("layer1", "layer2", "layer3", "layer4")
            self.default_levels = ("layer2", "layer3")
            self.patch = 32
        else:
            raise SrbenchError(f"open_clip model {self.name}: unsupported visual tower {type(visual).__name__}")
        with torch.no_grad():
            self.embed_dim = int(self.model.encode_image(torch.zeros(1, 3, self.native_size, self.native_size)).shape[-1])
        self.text_width = int(self.model.token_embedding.weight.shape[1]) if hasattr(self.model, "token_embedding") else None
        self.model.eval().requires_grad_(False)

    @property
    def spec(self) -> str:
        return f"clip:{self.name}" + (f"/{self.clip.pretrained}" if self.clip.pretrained else "")

    def provenance(self) -> dict[str, Any]:
        return {"backbone": f"clip:{self.name}", **self.clip.provenance()}

    def _pos_embed(self, gh: int, gw: int) -> torch.Tensor:
        pos = self.model.visual.positional_embedding
        n = pos.shape[0] - 1
        g = int(round(math.sqrt(n)))
        if (gh, gw) == (g, g):
            return pos
        grid = pos[1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid.float(), size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(gh * gw, -1).to(pos.dtype)])

    def forward(self, x: torch.Tensor, levels=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        levels = self._check_levels(levels)
        x = self.normalize(x)
        v = self.model.visual
        if not self.is_vit:
            return self._forward_resnet(x, levels)
        h, w = (x.shape[-2] // self.patch) * self.patch, (x.shape[-1] // self.patch) * self.patch
        if h < self.patch or w < self.patch:
            raise SrbenchError(f"input {tuple(x.shape[-2:])} is smaller than one {self.patch}-pixel patch")
        x = x[..., :h, :w]
        gh, gw = h // self.patch, w // self.patch
        t = v.conv1(x.to(v.conv1.weight.dtype)).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(t.dtype).view(1, 1, -1).expand(t.shape[0], 1, -1)
        t = torch.cat([cls, t], dim=1) + self._pos_embed(gh, gw).to(t.dtype)
        t = v.patch_dropout(t)
        t = v.ln_pre(t)
        batch_first = getattr(v.transformer, "batch_first", True)
        if not batch_first:
            t = t.transpose(0, 1)
        wanted = {int(lv[5:]): lv for lv in levels}
        feats = {}
        for i, block in enumerate(v.transformer.resblocks, start=1):
            t = block(t)
            if i in wanted:
                tok = t if batch_first else t.transpose(0, 1)
                feats[wanted[i]] = tok[:, 1:].transpose(1, 2).reshape(tok.shape[0], -1, gh, gw).float()
        if not batch_first:
            t = t.transpose(0, 1)
        pooled, _ = v._pool(t)
        if v.proj is not None:
            pooled = pooled @ v.proj
        return feats, pooled.float()

    def _forward_resnet(self, x: torch.Tensor, levels) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        v = self.model.visual
        x = x.to(v.conv1.weight.dtype)
        x = v.act1(v.bn1(v.conv1(x)))
        x = v.act2(v.bn2(v.conv2(x)))
        x = v.avgpool(v.act3(v.bn3(v.conv3(x))))
        feats = {}
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(v, name)(x)
            if name in levels:
                feats[name] = x.float()
        if x.shape[-2:] != (self.native_size // 32, self.native_size // 32):
            x = F.interpolate(x, size=(self.native_size // 32,) * 2, mode="bilinear", align_corners=False)
        return feats, v.attnpool(x).float()

    def encode_context(self, ctx: torch.Tensor, words: list[str]) -> torch.Tensor:
        """Text features ``(K, D)`` of ``[SOS] ctx word_k . [EOS]`` for each of ``words``; ``ctx`` is
        ``(n_ctx, text_width)`` (shared) or ``(K, n_ctx, text_width)`` (one context per word)."""
        m = self.model
        if self.text_width is None:
            raise SrbenchError(f"backbone {self.name} has no text encoder")
        n_ctx = ctx.shape[-2]
        prompts = [" ".join(["X"] * n_ctx) + f" {w}." for w in words]
        tokens = self.clip.tokenizer(prompts).to(ctx.device)
        if tokens.shape[1] < n_ctx + 3:
            raise SrbenchError(f"{n_ctx} context tokens do not fit the context length {tokens.shape[1]}")
        emb = m.token_embedding(tokens).to(ctx.dtype)
        ctx = ctx.unsqueeze(0).expand(len(words), -1, -1) if ctx.ndim == 2 else ctx
        x = torch.cat([emb[:, :1], ctx, emb[:, 1 + n_ctx:]], dim=1)
        x = x + m.positional_embedding.to(x.dtype)
        x = m.transformer(x, attn_mask=m.attn_mask)
        x = m.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        proj = m.text_projection
        return (proj(x) if isinstance(proj, nn.Linear) else x @ proj).float()


# -- VGG16 -----------------------------------------------------------------------------------------------

_VGG_LEVELS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}


class VGG16Backbone(SemanticBackbone):
    """ImageNet VGG16 ``features`` (weights: ``iqa.weights`` lookup / asset ``vgg16``)."""

    name = "vgg16"
    levels = tuple(_VGG_LEVELS)
    default_levels = ("relu3_3", "relu4_3")
    native_size = 224
    embed_dim = 512

    def __init__(self, weights: str | os.PathLike[str] | None = None, net: nn.Module | None = None):
        super().__init__(_IMAGENET_MEAN, _IMAGENET_STD)
        from .weights import build_backbone as build_features, load_backbone

        self.weights = self.sha256 = None
        self.verified = False
        if net is None:
            # found by name: verified against the known sha256; given as a path: recorded
            sd, record = load_backbone("vgg16", weights)
            self.weights, self.sha256, self.verified = record["path"], record["sha256"], record["verified"]
            net = build_features("vgg16", sd)
        self.net = net.eval().requires_grad_(False)

    def provenance(self) -> dict[str, Any]:
        return {"backbone": "vgg16", "weights": self.weights, "sha256": self.sha256}

    def forward(self, x: torch.Tensor, levels=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        levels = self._check_levels(levels)
        x = self.normalize(x)
        feats = {}
        last = _VGG_LEVELS["relu5_3"]
        wanted = {_VGG_LEVELS[lv]: lv for lv in levels}
        for i, layer in enumerate(self.net):
            x = layer(x)
            if i in wanted:
                feats[wanted[i]] = x
            if i == last:
                break
        return feats, x.mean(dim=(2, 3))


def build_backbone(name: str = "vgg16", *, pretrained: str | None = "openai",
                   weights: str | os.PathLike[str] | None = None, device: Any = None) -> SemanticBackbone:
    """``"vgg16"``, or an open_clip model (``"clip:ViT-B-16"``, ``"ViT-B-16"``, a config JSON path)."""
    if name.lower() == "vgg16":
        bb: SemanticBackbone = VGG16Backbone(weights)
    else:
        from .clip import load_clip

        clip_name = name[5:] if name.lower().startswith("clip:") else name
        if "/" in clip_name and not clip_name.lower().endswith(".json"):
            clip_name, pretrained = clip_name.split("/", 1)
        bb = ClipBackbone(load_clip(clip_name, pretrained, weights=weights))
    return bb.to(device) if device is not None else bb


def build_trained_backbone(name: str, weights: str | os.PathLike[str] | None = None, sha256: str | None = None, *,
                           what: str = "the backbone") -> SemanticBackbone:
    """The frozen backbone a trained module was trained on: `build_backbone` (an open_clip config
    JSON has no pretrained tag), refused with one line when ``sha256`` is given and its weights file
    has another (``what`` names the module in the message)."""
    kw: dict[str, Any] = {"weights": os.fspath(weights) if weights else None}
    if name.lower().endswith(".json"):
        kw["pretrained"] = None
    bb = build_backbone(name, **kw)
    got = bb.provenance().get("sha256")
    if sha256 and got != sha256:
        raise SrbenchError(f"{what} {name} has sha256 {got}; it was trained on {sha256}")
    return bb
