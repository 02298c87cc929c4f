"""CLIP-SR's networks (Hu, Liu, Zheng, Liu, IEEE TMM; built on GALIP), written from the facts of
issue 15 and the paper. Where the facts leave a choice it is marked *choice* below.

Generator (:class:`CLIPSRGenerator`), ``forward(lr, cond)`` with ``lr (B, 3, h, w)`` in ``[0, 1]`` and
``cond (B, cond_dim)`` the (projected) sentence embedding; returns ``(B, 3, h*s, w*s)``, not clamped::

    f0 = PReLU(conv3x3(lr))                          C0 @ h        (the head)
    f1 = PReLU(conv3x3/2(f0)), f2 = ..., f3 = ...     C1 @ h/2, C2 @ h/4, C3 @ h/8   (the pyramid)
    f3 = f3 + GB_a2(GB_a1(Adapter(f3, cond)))         the prompt predictor's branch (see below)
    x = GB3(f3);  x = up(x) + f2;  x = GB2(x);  x = up(x) + f1;  x = GB1(x);  x = up(x) + f0;  x = GB0(x)
    x = conv3x3(x) + f0                               conv body plus the residual from the head
    x = [PReLU(PixelShuffle2(conv3x3(x, 4 C0)))] x log2(s);  out = conv3x3(x, 3)

- The paper's widths are ``channels = (256, 512, 512, 512)`` ("3 -> 256 @64, 512 @32, 512 @16, 512
  @8" for its 64-px LR); the CPU presets use narrower ones.
- A G_Block (:class:`GBlock`) = shortcut (1x1 conv when the width changes) + [DFBLK, conv3x3, DFBLK,
  conv3x3]. A DFBLK (:class:`DFBlock`, the TIFBlock) = Affine, LeakyReLU 0.2, Affine, LeakyReLU 0.2;
  each :class:`Affine` is ``gamma(c) * x + beta(c)`` with ``gamma``, ``beta`` MLPs
  ``cond_dim -> C -> C`` (ReLU between) whose last layer starts at weight 0 and bias 1 (gamma) / 0
  (beta): an untrained DFBLK is the identity modulation followed by the two LeakyReLUs.
- x8 and x16 (the paper reports them; the released code hard-codes x4): the same network with
  three and four pixel-shuffle stages (LR 32 and 16 px for a 256-px HR).
- *choice, resolution*: the released code resizes the LR (nearest) to 64x64, a no-op on its 64-px
  training LR that would distort any other input; here the network works at the LR's own size
  (fully convolutional; the input is padded by reflection to a multiple of 8 and the output cropped).
- *choice*: 3x3 stride-2 convolutions in the pyramid, nearest x2 upsampling in the decoder, a linear
  output (no tanh; the image range is ``[0, 1]`` and the caller clamps).

Prompt predictor (:class:`PromptAdapter`, the official CLIP_Adapter): ``n`` prompt tokens
predicted from the sentence embedding by ``Linear(cond_dim, n * W)`` are injected into blocks
``1..n`` of a frozen transformer of width ``W`` (CLIP ViT: blocks 1..8, W = 768), which reads the
bottleneck ``f3`` as tokens. *As the paper describes it*: its output passes two G_Blocks and is fused
into the bottleneck. **Difference from the released code**: there the adapter's output is
overwritten and those two G_Blocks never run (dead code), so the released model has no prompt
predictor at all. ``adapter=None`` builds the ablation without it (the released model's actual
wiring).

- *choice, tokens*: ``f3`` -> 3x3 conv to ``W`` (its receptive field gives the tokens their
  position) -> LayerNorm -> the blocks; block ``i`` sees the image tokens plus prompt ``i`` appended,
  which is dropped after the block (deep prompts, one per block) -> 1x1 conv back to ``C3``.
- The frozen transformer (:class:`FrozenTokenBlocks`): with real CLIP, the visual tower's residual
  blocks 1..8; offline, the 6 layers of the frozen MiniLM sentence encoder (the only pretrained
  transformer available here; it was trained on text, so this is a stand-in, labelled ``minilm``).

Discriminator (:class:`CLIPSRDiscriminator`) on frozen backbone features (``ImageSide``): three
token maps (CLIP ViT-B/32 blocks 1, 4, 8 at 224 px: 768 x 7 x 7; offline VGG16 relu3_3, relu4_3,
relu5_3 at 112 px, pooled to 7 x 7 and projected by 1x1 convs to the width); ``out = f_1; out =
DB(out) + beta * f_4; out = DB(out) + beta * f_8; out = DB_main(out)`` to 512 x 7 x 7 (D_Blocks:
shortcut + gamma * [conv3x3, LReLU, conv3x3, LReLU], gamma and beta learnable and zero at init);
then concatenated with the tiled sentence embedding, conv 4x4 -> LReLU -> conv 4x4 -> one logit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from iqa.errors import SrbenchError

__all__ = [
    "PAPER_CHANNELS",
    "SCALES",
    "Affine",
    "CLIPSRDiscriminator",
    "CLIPSRGenerator",
    "CLIPSRNet",
    "DBlock",
    "DFBlock",
    "FrozenTokenBlocks",
    "GBlock",
    "PromptAdapter",
    "build_clipsr_network",
    "count_parameters",
    "text_encoder_sha256",
    "token_blocks",
]

PAPER_CHANNELS = (256, 512, 512, 512)
SCALES = (4, 8, 16)


def conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1)


class Affine(nn.Module):
    """``gamma(c)[:, :, None, None] * x + beta(c)[:, :, None, None]``; identity at init."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()

        def mlp() -> nn.Sequential:
            return nn.Sequential(nn.Linear(cond_dim, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels))

        self.gamma, self.beta = mlp(), mlp()
        for m, bias in ((self.gamma, 1.0), (self.beta, 0.0)):
            nn.init.zeros_(m[2].weight)
            nn.init.constant_(m[2].bias, bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.gamma(c)[:, :, None, None] * x + self.beta(c)[:, :, None, None]


class DFBlock(nn.Module):
    """DFBLK (TIFBlock): Affine, LeakyReLU 0.2, Affine, LeakyReLU 0.2."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.affine1, self.affine2 = Affine(cond_dim, channels), Affine(cond_dim, channels)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.affine1(x, c), 0.2)
        return F.leaky_relu(self.affine2(x, c), 0.2)


class GBlock(nn.Module):
    """shortcut(x) + conv(DFBLK(conv(DFBLK(x, c)), c))."""

    def __init__(self, cond_dim: int, cin: int, cout: int):
        super().__init__()
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.fuse1, self.c1 = DFBlock(cond_dim, cin), conv3(cin, cout)
        self.fuse2, self.c2 = DFBlock(cond_dim, cout), conv3(cout, cout)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.c2(self.fuse2(self.c1(self.fuse1(x, c)), c))


class FrozenTokenBlocks:
    """A frozen transformer seen as ``n`` blocks of width ``width``: ``run(i, tokens)`` applies block
    ``i`` (0-based) to ``(B, N, width)`` tokens. Not an ``nn.Module`` on purpose: its weights belong
    to a frozen encoder and never enter a checkpoint or an optimiser."""

    def __init__(self, blocks: Sequence[Callable[[torch.Tensor], torch.Tensor]], width: int, name: str):
        self.blocks, self.width, self.name = list(blocks), int(width), name

    def __len__(self) -> int:
        return len(self.blocks)

    def run(self, i: int, t: torch.Tensor) -> torch.Tensor:
        return self.blocks[i](t)


class PromptAdapter(nn.Module):
    """The prompt predictor: bottleneck features through ``n_prompts`` frozen transformer blocks, each
    with its own prompt token predicted from the condition (see the module doc)."""

    def __init__(self, blocks: FrozenTokenBlocks, channels: int, cond_dim: int, n_prompts: int = 8):
        super().__init__()
        if not 1 <= n_prompts <= len(blocks):
            raise SrbenchError(f"the prompt predictor needs 1..{len(blocks)} prompts for {blocks.name} "
                               f"({len(blocks)} blocks), got {n_prompts}")
        w = blocks.width
        self.n_prompts, self.width = int(n_prompts), w
        self.inp, self.norm = conv3(channels, w), nn.LayerNorm(w)
        self.prompts = nn.Linear(cond_dim, n_prompts * w)
        self.out = nn.Conv2d(w, channels, 1)
        self._blocks = [blocks]

    @property
    def blocks(self) -> FrozenTokenBlocks:
        return self._blocks[0]

    def forward(self, f: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        b, _, h, w = f.shape
        t = self.norm(self.inp(f).flatten(2).transpose(1, 2))
        p = self.prompts(c).view(b, self.n_prompts, self.width).to(t.dtype)
        for i in range(self.n_prompts):
            t = self.blocks.run(i, torch.cat([t, p[:, i:i + 1]], dim=1))[:, :-1]
        return self.out(t.transpose(1, 2).reshape(b, self.width, h, w))


class CLIPSRGenerator(nn.Module):
    """The CLIP-SR generator at ``scale`` (4, 8 or 16); see the module doc."""

    def __init__(self, scale: int = 4, *, channels: Sequence[int] = PAPER_CHANNELS, cond_dim: int = 512,
                 adapter: FrozenTokenBlocks | None = None, n_prompts: int = 8):
        super().__init__()
        if scale not in SCALES:
            raise SrbenchError(f"CLIP-SR is built for x4, x8 and x16, not x{scale}")
        if len(channels) != 4 or any(int(c) < 1 for c in channels):
            raise SrbenchError(f"channels must be four widths (head and three pyramid levels), got {list(channels)}")
        c0, c1, c2, c3 = (int(c) for c in channels)
        self.scale, self.channels, self.cond_dim = scale, (c0, c1, c2, c3), cond_dim
        self.head = nn.Sequential(conv3(3, c0), nn.PReLU(c0))
        self.down = nn.ModuleList(nn.Sequential(conv3(a, b, 2), nn.PReLU(b)) for a, b in ((c0, c1), (c1, c2), (c2, c3)))
        self.adapter = PromptAdapter(adapter, c3, cond_dim, n_prompts) if adapter is not None else None
        self.adapter_blocks = nn.ModuleList([GBlock(cond_dim, c3, c3), GBlock(cond_dim, c3, c3)]) if adapter else None
        self.blocks = nn.ModuleList([GBlock(cond_dim, c3, c2), GBlock(cond_dim, c2, c1), GBlock(cond_dim, c1, c0),
                                     GBlock(cond_dim, c0, c0)])
        self.body = conv3(c0, c0)
        n_up = int(math.log2(scale))
        self.up = nn.ModuleList(nn.Sequential(conv3(c0, 4 * c0), nn.PixelShuffle(2), nn.PReLU(c0)) for _ in range(n_up))
        self.tail = conv3(c0, 3)

    def forward(self, lr: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise SrbenchError(f"CLIP-SR generator: lr must be (B, 3, h, w), got {tuple(lr.shape)}")
        if cond.dim() != 2 or cond.shape != (lr.shape[0], self.cond_dim):
            raise SrbenchError(f"CLIP-SR generator: cond must be ({lr.shape[0]}, {self.cond_dim}), got {tuple(cond.shape)}")
        h, w = lr.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        x = F.pad(lr, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate") if ph or pw else lr
        f0 = self.head(x)
        feats = [f0]
        for d in self.down:
            feats.append(d(feats[-1]))
        f3 = feats[3]
        if self.adapter is not None:
            a = self.adapter(f3, cond)
            for blk in self.adapter_blocks:
                a = blk(a, cond)
            f3 = f3 + a
        x = self.blocks[0](f3, cond)
        for level, blk in ((2, self.blocks[1]), (1, self.blocks[2]), (0, self.blocks[3])):
            x = F.interpolate(x, size=feats[level].shape[-2:], mode="nearest") + feats[level]
            x = blk(x, cond)
        x = self.body(x) + f0
        for up in self.up:
            x = up(x)
        out = self.tail(x)
        return out[..., : h * self.scale, : w * self.scale]


class DBlock(nn.Module):
    """shortcut(x) + gamma * [conv3x3, LReLU, conv3x3, LReLU](x) (+ beta * feat); gamma, beta start at 0."""

    def __init__(self, cin: int, cout: int, feat: bool = True):
        super().__init__()
        self.conv_r = nn.Sequential(conv3(cin, cout), nn.LeakyReLU(0.2), conv3(cout, cout), nn.LeakyReLU(0.2))
        self.conv_s = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.beta = nn.Parameter(torch.zeros(1)) if feat else None

    def forward(self, x: torch.Tensor, feat: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv_s(x) + self.gamma * self.conv_r(x)
        if self.beta is not None and feat is not None:
            out = out + self.beta * feat
        return out


class CLIPSRDiscriminator(nn.Module):
    """Logits ``(B,)`` of three ``(B, C_i, 7, 7)`` backbone feature maps and the sentence embedding
    ``(B, text_dim)``; see the module doc. ``in_channels`` are the maps' widths (1x1 stems project
    any that differ from ``width``)."""

    def __init__(self, in_channels: Sequence[int] = (768, 768, 768), *, width: int = 768, out: int = 512,
                 text_dim: int = 512, hidden: int = 128, grid: int = 7):
        super().__init__()
        if len(in_channels) < 1:
            raise SrbenchError("the discriminator needs at least one feature map")
        self.in_channels, self.grid, self.text_dim = tuple(int(c) for c in in_channels), grid, text_dim
        self.stems = nn.ModuleList(nn.Identity() if c == width else nn.Conv2d(c, width, 1) for c in self.in_channels)
        self.blocks = nn.ModuleList(DBlock(width, width) for _ in self.in_channels[1:])
        self.main = DBlock(width, out, feat=False)
        k = (grid + 2) // 2  # two valid k x k convolutions take the grid to 1 x 1 (7 -> 4 -> 1)
        self.head = nn.Sequential(nn.Conv2d(out + text_dim, hidden, k), nn.LeakyReLU(0.2), nn.Conv2d(hidden, 1, grid - k + 1))

    def forward(self, feats: Sequence[torch.Tensor], sent: torch.Tensor) -> torch.Tensor:
        if len(feats) != len(self.stems):
            raise SrbenchError(f"the discriminator takes {len(self.stems)} feature maps, got {len(feats)}")
        maps = [s(f) for s, f in zip(self.stems, feats)]
        x = maps[0]
        for blk, f in zip(self.blocks, maps[1:]):
            x = blk(x, f)
        x = self.main(x)
        s = sent[:, :, None, None].expand(-1, -1, *x.shape[-2:]).to(x.dtype)
        return self.head(torch.cat([x, s], dim=1)).flatten()


def count_parameters(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# -- the network of a checkpoint ----------------------------------------------------------------------------

def token_blocks(encoder: nn.Module) -> FrozenTokenBlocks:
    """The frozen transformer the prompt predictor runs in, taken from the sentence encoder's model:
    an open_clip model's visual residual blocks (real CLIP: ViT-B/32's 12, width 768), or the BERT
    layers of the MiniLM encoder (6, width 384; the offline stand-in)."""
    model = getattr(encoder, "model", None)
    visual = getattr(model, "visual", None)
    if visual is not None and hasattr(visual, "transformer"):
        tr = visual.transformer
        batch_first = getattr(tr, "batch_first", True)

        def clip_block(block: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
            def run(t: torch.Tensor) -> torch.Tensor:
                return block(t) if batch_first else block(t.transpose(0, 1)).transpose(0, 1)
            return run

        width = int(visual.conv1.out_channels)
        return FrozenTokenBlocks([clip_block(b) for b in tr.resblocks], width, f"{encoder.name} visual blocks")
    bert = getattr(encoder, "bert", None)
    if bert is not None:
        def bert_block(layer: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
            def run(t: torch.Tensor) -> torch.Tensor:
                return layer(t, torch.ones(t.shape[0], 1, 1, t.shape[1], dtype=torch.bool, device=t.device))
            return run

        return FrozenTokenBlocks([bert_block(layer) for layer in bert.encoder.layer], bert.config.hidden_size,
                                 f"{encoder.name} layers")
    raise SrbenchError(f"sentence encoder {getattr(encoder, 'name', type(encoder).__name__)} has no transformer "
                       "for the prompt predictor")


class CLIPSRNet(nn.Module):
    """The network of a ``clip-sr`` checkpoint: the frozen sentence encoder (held outside the state:
    its weights come from its asset), ``text_proj`` (the sentence embedding to the conditioning
    width: a Linear, or the identity when the widths agree, as with CLIP's 512) and the generator.

    ``encode_text(texts) -> (B, dim)`` (no gradient); ``forward(lr, sent=None)`` with ``sent`` the
    sentence embeddings (``None``: the empty caption's, for every image)."""

    def __init__(self, encoder: nn.Module, generator: CLIPSRGenerator):
        super().__init__()
        self._frozen = [encoder]
        self.text_proj = nn.Linear(encoder.dim, generator.cond_dim) if encoder.dim != generator.cond_dim else nn.Identity()
        self.generator = generator
        self.scale = generator.scale
        self._empty: dict[torch.device, torch.Tensor] = {}

    @property
    def encoder(self) -> nn.Module:
        return self._frozen[0]

    def _apply(self, fn, *args, **kw):  # .to(): the frozen encoder too
        self._frozen[0]._apply(fn, *args, **kw)
        self._empty = {}
        return super()._apply(fn, *args, **kw)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.encoder.encode(list(texts))

    def empty(self, n: int, device: torch.device) -> torch.Tensor:
        if device not in self._empty:
            self._empty[device] = self.encode_text([""]).to(device)
        return self._empty[device].expand(n, -1)

    def forward(self, lr: torch.Tensor, sent: torch.Tensor | None = None) -> torch.Tensor:
        if sent is None:
            sent = self.empty(lr.shape[0], lr.device)
        if sent.shape[0] == 1 and lr.shape[0] > 1:
            sent = sent.expand(lr.shape[0], -1)
        return self.generator(lr, self.text_proj(sent.to(lr.dtype)))


def text_encoder_sha256(encoder: nn.Module) -> str | None:
    """The sha256 of a sentence encoder's weights file (MiniLM's, or the CLIP model's)."""
    prov = encoder.provenance()
    return (prov.get("weights") or {}).get("sha256") or (prov.get("clip") or {}).get("sha256")


def build_clipsr_network(*, scale: int = 4, channels: Sequence[int] = PAPER_CHANNELS, cond_dim: int = 512,
                         text: str = "minilm", text_weights: str | None = None, text_sha256: str | None = None,
                         prompt_predictor: bool = True, n_prompts: int | None = None,
                         encoder: nn.Module | None = None) -> CLIPSRNet:
    """The CLIP-SR network (builder of checkpoint arch ``clip-sr``), untrained: the sentence encoder
    ``text`` (``"minilm"``; ``"clip:MODEL/TAG"`` or an open_clip config JSON with ``text_weights``),
    refused when ``text_sha256`` is given and its weights have another; ``prompt_predictor`` false
    builds the ablation without it; ``n_prompts`` defaults to min(8, the transformer's blocks).
    ``encoder`` passes an encoder object instead of building one (tests)."""
    from .text import build_sentence_encoder

    if encoder is None:
        encoder = build_sentence_encoder(text, weights=text_weights or None)
    got = text_encoder_sha256(encoder)
    if text_sha256 and got != text_sha256:
        raise SrbenchError(f"the sentence encoder {text} has sha256 {got}; this network was trained on {text_sha256}")
    blocks = token_blocks(encoder) if prompt_predictor else None
    n = int(n_prompts) if n_prompts else (min(8, len(blocks)) if blocks is not None else 0)
    gen = CLIPSRGenerator(scale, channels=channels, cond_dim=cond_dim, adapter=blocks, n_prompts=n or 8)
    return CLIPSRNet(encoder, gen)
