"""DePLSR's degradation adaptor: an LQ image -> a content embedding, a global degradation embedding
and 5 fine degradation embeddings, plus the "text" side they are trained against.

Two variants behind one interface (:class:`DegradationAdaptor`), both built from an
``iqa.semantic`` backbone object (constructors take objects; factories come with the recipes):

- :class:`ClipDegradationAdaptor` (``deplsr-clip:<model>``, the paper's; DA-CLIP style): a frozen
  open_clip ViT plus a trainable deep copy of its visual tower. After copy block ``i`` a
  zero-initialised ``Linear(width, width)`` maps the copy's tokens to a control that is added to the
  frozen stream right after frozen block ``i``. (The official code, as DA-CLIP, runs the copy first
  and pops the controls from the end, so frozen block 1 receives the copy's *last* block; here each
  depth receives its own depth, the natural pairing. With zero controls both are the frozen model.)
  Content embedding: the frozen stream's pooled + projected output (controls added); degradation
  embedding: the copy's pooled + projected output; fine: ``Linear(D, 5 D)`` of the degradation
  embedding. Text side: the frozen CLIP text tower on the captions and the degradation texts.
- :class:`VGGDegradationAdaptor` (``deplsr-vgg16-param``, offline, no CLIP weights needed): the
  frozen VGG16 gives the content embedding (global average of ``relu5_3``, 512-d). Degradations
  are low-level statistics that ``relu5_3`` mostly discards, so the trainable encoder reads the
  early maps (``relu1_2``, ``relu2_2``, ``relu3_3``): per level a 1x1 conv to ``width``, ReLU, a
  3x3 stride-2 conv, ReLU, then the per-channel mean and standard deviation over space (the
  standard deviation measures texture energy: noise raises it, blur lowers it), concatenated over
  levels, then an MLP to the global degradation embedding and ``Linear(D, 5 D)`` to the fine ones.
  Text side: no text model; a degradation's "text" is its parameter vector
  (``DePLSRParams.vectors()``, one normalised row per slot) through a learned MLP per slot (fine)
  and one over all slots (full). It has no caption encoder, so it trains without the
  content-vs-caption term (``losses.adaptor_loss`` renormalises the weights).

Both own a learnable SigLIP ``logit_scale`` and ``logit_bias`` initialised as in the SigLIP paper
(``log 10`` and ``-10``; the official code uses its CLIP model's scale). The frozen backbone is held
outside the module tree: ``state_dict`` / ``parameters()`` hold the trainable parts only, so
checkpoints stay small; ``.to()`` moves the backbone too.

Input: RGB ``(B, 3, h, w)`` float in ``[0, 1]`` of any size: resized bilinearly (no antialias,
as the official code) to the backbone's ``native_size``. The official code feeds the LR to CLIP
*without* CLIP's mean/std normalisation (a quirk); here the backbone normalises
(``normalise=False`` on the CLIP variant reproduces the quirk).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from iqa.errors import SrbenchError
from iqa.semantic import ClipBackbone, SemanticBackbone, VGG16Backbone

from .degradations import PARAM_WIDTH, SLOTS, DePLSRParams

__all__ = ["N_FINE", "AdaptorOutput", "ClipDegradationAdaptor", "DegradationAdaptor", "ParamTextEncoder",
           "VGGDegradationAdaptor", "build_adaptor"]

N_FINE = len(SLOTS)
_VGG_CHANNELS = {"relu1_2": 64, "relu2_2": 128, "relu3_3": 256, "relu4_3": 512, "relu5_3": 512}


@dataclass
class AdaptorOutput:
    """``content``, ``degradation``: ``(B, D)``; ``fine``: ``(B, 5, D)`` (slots of ``SLOTS``);
    ``features``: the requested backbone levels, ``(B, C, h, w)`` each (CLIP: with controls added)."""

    content: torch.Tensor
    degradation: torch.Tensor
    fine: torch.Tensor
    features: dict[str, torch.Tensor]


class DegradationAdaptor(nn.Module):
    """Shared interface: ``forward(x, levels=()) -> AdaptorOutput``, ``encode_degradations(params)
    -> (full (N, D), fine (N, 5, D))``, ``encode_captions(texts) -> (N, D)`` (where
    ``has_captions``), ``logit_scale`` / ``logit_bias``, ``name``."""

    name: str = "?"
    has_captions: bool = False

    def __init__(self, backbone: SemanticBackbone):
        super().__init__()
        self._frozen = [backbone.eval().requires_grad_(False)]  # a list: not a submodule, not in state_dict
        self.embed_dim = int(backbone.embed_dim)
        self.native_size = int(backbone.native_size)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.logit_bias = nn.Parameter(torch.tensor(-10.0))

    @property
    def backbone(self) -> SemanticBackbone:
        return self._frozen[0]

    def _apply(self, fn: Any, *args: Any, **kw: Any) -> DegradationAdaptor:  # .to(), .half(): the backbone too
        self.backbone._apply(fn, *args, **kw)
        return super()._apply(fn, *args, **kw)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Check ``x (B, 3, h, w)`` in ``[0, 1]`` and resize it (bilinear) to ``native_size``."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point() \
                or x.shape[0] < 1:
            raise SrbenchError(f"x must be a float tensor (B, 3, h, w), got {getattr(x, 'shape', type(x).__name__)}")
        if x.numel() and not (float(x.min()) >= 0 and float(x.max()) <= 1):
            raise SrbenchError(f"x must lie in [0, 1], got values in [{float(x.min()):.4g}, {float(x.max()):.4g}]")
        s = self.native_size
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x.float(), size=(s, s), mode="bilinear", align_corners=False)
        return x.float()

    def forward(self, x: torch.Tensor, levels: Sequence[str] = ()) -> AdaptorOutput:
        raise NotImplementedError

    def encode_degradations(self, params: Sequence[DePLSRParams]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def encode_captions(self, texts: Sequence[str]) -> torch.Tensor:
        raise SrbenchError(f"adaptor {self.name} has no caption encoder")


def _check_params(params: Sequence[DePLSRParams]) -> list[DePLSRParams]:
    params = list(params)
    if not params or not all(isinstance(p, DePLSRParams) for p in params):
        raise SrbenchError(f"params must be a non-empty sequence of DePLSRParams, got {params!r:.80}")
    return params


# -- CLIP ------------------------------------------------------------------------------------------------

def _vit_tokens(visual: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Patch + class tokens of a normalised ``x (B, 3, S, S)`` at the native size, after ``ln_pre``:
    ``(B, 1 + n, width)`` (the same operations as ``ClipBackbone.forward``)."""
    t = visual.conv1(x.to(visual.conv1.weight.dtype)).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(t.dtype).view(1, 1, -1).expand(t.shape[0], 1, -1)
    t = torch.cat([cls, t], dim=1) + visual.positional_embedding.to(t.dtype)
    return visual.ln_pre(visual.patch_dropout(t))


def _vit_embedding(visual: nn.Module, t: torch.Tensor) -> torch.Tensor:
    """Pooled and projected ``(B, D)`` float32 of the final tokens ``t (B, 1 + n, width)``."""
    pooled, _ = visual._pool(t)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return pooled.float()


class ClipDegradationAdaptor(DegradationAdaptor):
    """The DA-CLIP-style adaptor on a frozen open_clip ViT (module docstring)."""

    has_captions = True

    def __init__(self, backbone: ClipBackbone, *, normalise: bool = True):
        if not isinstance(backbone, ClipBackbone) or not backbone.is_vit:
            raise SrbenchError(f"the CLIP adaptor needs a ClipBackbone with a ViT visual tower, got "
                               f"{getattr(backbone, 'name', type(backbone).__name__)}")
        super().__init__(backbone)
        self.name = f"deplsr-clip:{backbone.name}"
        self.normalise = bool(normalise)
        visual = backbone.model.visual
        self.copy = copy.deepcopy(visual).requires_grad_(True)
        self.copy.patch_dropout = nn.Identity()  # the two streams must see the same tokens
        width = int(visual.conv1.out_channels)
        self.controls = nn.ModuleList(nn.Linear(width, width) for _ in visual.transformer.resblocks)
        for lin in self.controls:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.fine = nn.Linear(self.embed_dim, N_FINE * self.embed_dim)
        self.batch_first = getattr(visual.transformer, "batch_first", True)

    def forward(self, x: torch.Tensor, levels: Sequence[str] = ()) -> AdaptorOutput:
        """``x (B, 3, h, w)`` in ``[0, 1]`` -> `AdaptorOutput` (``features``: ``block<i>`` maps of the
        frozen stream, ``(B, width, g, g)``, as ``ClipBackbone`` gives them)."""
        bb = self.backbone
        levels = bb._check_levels(levels) if levels else ()
        x = self.prepare(x)
        x = bb.normalize(x) if self.normalise else x
        frozen = bb.model.visual
        tf, tc = _vit_tokens(frozen, x), _vit_tokens(self.copy, x)
        if not self.batch_first:
            tf, tc = tf.transpose(0, 1), tc.transpose(0, 1)
        wanted = {int(lv[5:]): lv for lv in levels}
        feats: dict[str, torch.Tensor] = {}
        blocks = zip(frozen.transformer.resblocks, self.copy.transformer.resblocks, self.controls)
        for i, (bf, bc, ctrl) in enumerate(blocks, start=1):
            tc = bc(tc)
            tf = bf(tf) + ctrl(tc)
            if i in wanted:
                tok = tf if self.batch_first else tf.transpose(0, 1)
                g = round(math.sqrt(tok.shape[1] - 1))
                feats[wanted[i]] = tok[:, 1:].transpose(1, 2).reshape(tok.shape[0], -1, g, g).float()
        if not self.batch_first:
            tf, tc = tf.transpose(0, 1), tc.transpose(0, 1)
        content = _vit_embedding(frozen, tf)
        degradation = _vit_embedding(self.copy, tc)
        fine = self.fine(degradation).view(-1, N_FINE, self.embed_dim)
        return AdaptorOutput(content, degradation, fine, feats)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """The frozen CLIP text tower on ``texts``: ``(N, D)`` float32, no gradient."""
        texts = list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise SrbenchError(f"texts must be a non-empty sequence of strings, got {texts!r:.80}")
        m = self.backbone.model
        with torch.no_grad():
            tokens = self.backbone.clip.tokenizer(texts).to(self.logit_scale.device)
            return m.encode_text(tokens).float()

    def encode_captions(self, texts: Sequence[str]) -> torch.Tensor:
        return self.encode_texts(texts)

    def encode_degradations(self, params: Sequence[DePLSRParams]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(full (N, D), fine (N, 5, D))``: the full degradation text and the 5 fine texts."""
        params = _check_params(params)
        full = self.encode_texts([p.full_text() for p in params])
        fine = self.encode_texts([t for p in params for t in p.texts()])
        return full, fine.view(len(params), N_FINE, -1)


# -- VGG16, parametric text ---------------------------------------------------------------------------

class ParamTextEncoder(nn.Module):
    """The offline "text" encoder: slot parameter vectors ``(N, 5, P)`` -> ``(full (N, D), fine (N, 5, D))``;
    one MLP ``P -> hidden -> D`` per slot, one ``5 P -> hidden -> D`` over all slots."""

    def __init__(self, embed_dim: int, hidden: int = 256, width: int = PARAM_WIDTH, slots: int = N_FINE):
        super().__init__()
        self.slots, self.width = slots, width

        def mlp(n_in: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, embed_dim))

        self.per_slot = nn.ModuleList(mlp(width) for _ in range(slots))
        self.full = mlp(slots * width)

    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if v.ndim != 3 or v.shape[1:] != (self.slots, self.width):
            raise SrbenchError(f"parameter vectors must be (N, {self.slots}, {self.width}), got {tuple(v.shape)}")
        fine = torch.stack([f(v[:, k]) for k, f in enumerate(self.per_slot)], dim=1)
        return self.full(v.flatten(1)), fine


class VGGDegradationAdaptor(DegradationAdaptor):
    """``deplsr-vgg16-param``: frozen VGG16 content, a light trainable conv head for degradations,
    a parametric text side (module docstring)."""

    name = "deplsr-vgg16-param"

    def __init__(self, backbone: VGG16Backbone, *, levels: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3"),
                 width: int = 64, text_hidden: int = 256):
        if not isinstance(backbone, VGG16Backbone):
            raise SrbenchError(f"the VGG adaptor needs a VGG16Backbone, got {type(backbone).__name__}")
        super().__init__(backbone)
        self.levels = backbone._check_levels(levels)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise SrbenchError(f"width must be an int >= 1, got {width!r}")
        self.heads = nn.ModuleDict({
            lv: nn.Sequential(nn.Conv2d(_VGG_CHANNELS[lv], width, 1), nn.ReLU(inplace=True),
                              nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True))
            for lv in self.levels})
        d = self.embed_dim
        self.mlp = nn.Sequential(nn.Linear(2 * width * len(self.levels), d), nn.ReLU(inplace=True), nn.Linear(d, d))
        self.fine = nn.Linear(d, N_FINE * d)
        self.text = ParamTextEncoder(d, text_hidden)

    def forward(self, x: torch.Tensor, levels: Sequence[str] = ()) -> AdaptorOutput:
        """``x (B, 3, h, w)`` in ``[0, 1]`` -> `AdaptorOutput`; the frozen VGG runs without gradient
        (the LQ is data), ``features`` are its requested levels."""
        bb = self.backbone
        extra = bb._check_levels(levels) if levels else ()
        x = self.prepare(x)
        with torch.no_grad():
            feats, content = bb(x, tuple(dict.fromkeys((*self.levels, *extra))))
        stats = []
        for lv in self.levels:
            h = self.heads[lv](feats[lv])
            stats += [h.mean(dim=(2, 3)), h.flatten(2).std(dim=2)]
        degradation = self.mlp(torch.cat(stats, dim=1))
        fine = self.fine(degradation).view(-1, N_FINE, self.embed_dim)
        return AdaptorOutput(content.float(), degradation, fine, {lv: feats[lv] for lv in extra})

    def encode_degradations(self, params: Sequence[DePLSRParams]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(full (N, D), fine (N, 5, D))`` from the parameter vectors (learned, with gradient)."""
        params = _check_params(params)
        v = torch.stack([p.vectors() for p in params]).to(self.logit_scale.device)
        return self.text(v)


def build_adaptor(*, backbone: str = "vgg16", backbone_weights: str | None = None, backbone_sha256: str | None = None,
                  levels: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3"), width: int = 64, text_hidden: int = 256,
                  normalise: bool = True) -> nn.Module:
    """The adaptor of checkpoint arch ``deplsr-adaptor`` (untrained; load the checkpoint's tensors into
    it): ``backbone`` ``"vgg16"`` -> `VGGDegradationAdaptor`, else a CLIP model -> `ClipDegradationAdaptor`.
    ``backbone_sha256`` (a checkpoint's record) must match the backbone file found."""
    from iqa.semantic import build_trained_backbone

    bb = build_trained_backbone(backbone, backbone_weights, backbone_sha256, what="the adaptor's backbone")
    if isinstance(bb, VGG16Backbone):
        return VGGDegradationAdaptor(bb, levels=tuple(levels), width=int(width), text_hidden=int(text_hidden))
    return ClipDegradationAdaptor(bb, normalise=bool(normalise))
