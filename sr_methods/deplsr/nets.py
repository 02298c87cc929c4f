"""DePLSR's SR networks: the :class:`FusionBlock` that injects the adaptor's priors into image
features, :class:`RealDAT` (the paper's network: DAT with a FusionBlock before each residual group)
and :class:`FusedRRDN` (the lighter body that ships: FusionBlocks inserted into idealo's RRDN).

The priors come from the degradation adaptor (``adaptor.AdaptorOutput``): the content embedding
``content (B, D)`` and the 5 fine degradation embeddings ``fine (B, 5, D)`` (``D`` = 512 for CLIP
ViT-B-32 and for the VGG16 variant). The global degradation embedding is not used by the SR network
(as in the official code). Every network here computes ``forward(x, content, fine)`` with ``x``
RGB ``(B, 3, h, w)`` in ``[0, 1]`` and returns ``(B, 3, h*s, w*s)``, not clamped.

FusionBlock (written from the facts of issue 14; the choices they leave open are marked *choice*)
--------------------------------------------------------------------------------------------------
``dim`` = C, the host's feature width (180 in DAT, ``G0`` = 64 in esrgan-thick), ``prior_dim`` = D,
``N`` = 5 fine tokens, ``L`` = H*W image tokens::

    1. prior tokens   pc = MLPc(content)[:, None]               (B, 1, C)   MLP = Linear(D, C)-ReLU-Linear(C, C)-ReLU
                      pf = MLPf(fine)                           (B, N, C)   (one MLP for content, one shared by the 5 fine)
                      p  = cat[pc, pf] over tokens              (B, 1+N, C)
    2. image tokens   xn = LN_x(x)                              (B, L, C)   (x: (B, C, H, W) flattened, or tokens as given)
    3. prior update   p  = p + Attn_p(q=LN_p(p), kv=xn)         (B, 1+N, C) the prior tokens attend to the image features
    4. pairs          q_i = LN_q(cat[p_0, p_i]) over channels   (B, N, 2C)  pair i = (content, fine degradation i)
    5. image update   x  = x + Attn_x(q=xn, kv=q)              (B, L, C)   the image features attend to the 5 pairs
    6. MLP            x  = x + MLP_x(LN_m(x))                   (B, L, C)   Linear(C, rC)-GELU-Linear(rC, C)

- *choice, pairing*: the content token is concatenated with each fine token along the channel axis,
  giving ``N`` pair tokens of width ``2C``, read directly by ``Attn_x``'s key/value projections
  (``2C -> C``; this is the "pair projection back to C", folded into K and V). A pair then is one
  key that says "this content under this degradation"; concatenating along the token axis instead
  would give the image 1 + N independent keys and lose the pairing the facts describe.
- *choice, attention*: multi-head scaled dot-product attention with ``heads`` heads, biased Q, KV
  and output projections, no positional information (the 6 prior tokens attend globally over all
  ``L`` image tokens; ``L`` queries attend to 5 keys: both cost O(L), no window needed).
- *choice, normalisation*: pre-norm LayerNorm everywhere (``LN_x``, ``LN_p``, ``LN_q`` over the
  ``2C`` pair, ``LN_m``); ``LN_x(x)`` is computed once and serves as the keys/values of step 3 and
  the queries of step 5 (``x`` does not change in between).
- *choice, residuals*: steps 3, 5 and 6 are residual; the MLP is the usual transformer MLP on the
  image tokens with hidden width ``mlp_ratio * C`` (default 2; the facts give no width).
- *zero init*: the output projections of both image-side residual branches (``Attn_x.out`` and
  ``MLP_x``'s last Linear) start at zero, weight and bias, so an untrained block is the identity on
  ``x`` (exactly: ``x + 0``) and inserting it leaves the host network unchanged. At init only those
  two layers receive gradients; the rest start learning after the first step (ControlNet-style).

Parameters of one block: ``2 (D C + C + C^2 + C)`` (prior MLPs) ``+ 4 C^2 + 4 C`` (``Attn_p``)
``+ C^2 + 2 (2C) C + C^2 + 4 C`` (``Attn_x``) ``+ 2 r C^2 + r C + C`` (MLP) ``+ 2C + 2C + 4C + 2C``
(LayerNorms). At C = 180, D = 512, heads 6, r = 2: 707,220 (r = 1: 642,240); at C = 64
(esrgan-thick), D = 512, heads 4, r = 2: 132,672.

RealDAT at the paper's config (x4; spandrel DAT: ``embed_dim=180, depth=[6]*6, num_heads=[6]*6,
split_size=[8, 32], expansion_factor=4, resi_connection="1conv", upsampler="pixelshuffle",
img_range=1``): DAT 14,802,051 + 6 x 707,220 = **19,045,371** parameters, vs the paper's 18.06 M
(+5.5 %). The DAT part is DAT-x4's own count (14.80 M); the gap (about 0.99 M, 164 k per block) is in
the FusionBlock widths the facts do not give (its MLP width, the pair projection, whether the prior
MLPs are per block): ``mlp_ratio=1`` gives 18,655,491 (+3.3 %). ``paper_realdat(mlp_ratio=...)``
builds either.

The ablation "DePLSR without the degradation tokens" (``tokens="zero"`` on either network): the
same body, the fine embeddings replaced by zeros before the FusionBlocks; the content embedding
stays. (The zeroed tokens still pass through ``MLPf``, so they become one learned constant token per
block that carries no information about the image's degradation.) At init both settings compute
exactly the host network.

spandrel (MIT) provides DAT; it is imported only when a DAT is built or wrapped (nothing heavy at
import). Nothing here is taken from the official DePLSR code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from iqa.errors import SrbenchError, UnknownNameError

from ..rrdn import RRDN, depth_to_space

__all__ = ["BODIES", "N_FINE", "PAPER_DAT", "TOKEN_MODES", "CrossAttention", "DePLSRNet", "FusedRRDN", "FusionBlock", "RealDAT",
           "build_deplsr_network", "load_host",
           "build_dat", "count_parameters", "paper_realdat"]

N_FINE = 5
TOKEN_MODES = ("fine", "zero")
# spandrel DAT's constructor arguments for the paper's RealDAT body (DAT's own x4 config)
PAPER_DAT: dict[str, Any] = {"embed_dim": 180, "depth": [6] * 6, "num_heads": [6] * 6, "split_size": [8, 32],
                             "expansion_factor": 4.0, "img_size": 64, "in_chans": 3, "img_range": 1.0,
                             "resi_connection": "1conv", "upsampler": "pixelshuffle", "upscale": 4}


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters of ``module`` (its module tree; only ``requires_grad`` ones if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _check_tokens_mode(tokens: str) -> str:
    if tokens not in TOKEN_MODES:
        raise UnknownNameError("tokens mode", str(tokens), list(TOKEN_MODES))
    return tokens


def _check_positive(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise SrbenchError(f"{name} must be an int >= 1, got {v!r}")
    return v


class CrossAttention(nn.Module):
    """Multi-head attention of ``q (B, Nq, dim)`` over ``context (B, Nk, ctx_dim)`` -> ``(B, Nq, dim)``.

    Q: ``Linear(dim, dim)``; K, V: ``Linear(ctx_dim, 2 dim)``; output: ``Linear(dim, dim)``
    (zero-initialised when ``zero_out``)."""

    def __init__(self, dim: int, ctx_dim: int, heads: int, *, zero_out: bool = False):
        super().__init__()
        if dim % heads:
            raise SrbenchError(f"CrossAttention: dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(ctx_dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        if zero_out:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, q: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, nq, c = q.shape
        nk, h = context.shape[1], self.heads
        qh = self.q(q).view(b, nq, h, c // h).transpose(1, 2)                     # (B, h, Nq, c/h)
        k, v = self.kv(context).view(b, nk, 2, h, c // h).permute(2, 0, 3, 1, 4)  # 2 x (B, h, Nk, c/h)
        o = F.scaled_dot_product_attention(qh, k, v)                              # (B, h, Nq, c/h)
        return self.out(o.transpose(1, 2).reshape(b, nq, c))


def _prior_mlp(prior_dim: int, dim: int) -> nn.Sequential:
    """Linear(D, C)-ReLU-Linear(C, C)-ReLU: a prior embedding ``(..., D)`` -> a token ``(..., C)``."""
    return nn.Sequential(nn.Linear(prior_dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim), nn.ReLU(inplace=True))


class FusionBlock(nn.Module):
    """Fuses DePLSR's priors into image features (steps and choices: see the module docstring).

    ``forward(x, content, fine)``: ``x`` image features ``(B, C, H, W)`` or tokens ``(B, L, C)``,
    ``content (B, D)``, ``fine (B, N, D)`` -> ``x`` updated, in the layout it came in. An untrained
    block returns ``x`` exactly (zero-initialised output projections)."""

    def __init__(self, dim: int, prior_dim: int = 512, heads: int = 6, mlp_ratio: float = 2.0):
        super().__init__()
        _check_positive("FusionBlock dim", dim)
        _check_positive("FusionBlock prior_dim", prior_dim)
        _check_positive("FusionBlock heads", heads)
        if dim % heads:
            raise SrbenchError(f"FusionBlock: dim {dim} is not a multiple of heads {heads}")
        if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float)) or not mlp_ratio > 0:
            raise SrbenchError(f"FusionBlock mlp_ratio must be a number > 0, got {mlp_ratio!r}")
        self.dim, self.prior_dim = dim, prior_dim
        hidden = max(1, round(dim * mlp_ratio))
        self.content_mlp = _prior_mlp(prior_dim, dim)
        self.fine_mlp = _prior_mlp(prior_dim, dim)
        self.norm_x = nn.LayerNorm(dim)
        self.norm_p = nn.LayerNorm(dim)
        self.attn_p = CrossAttention(dim, dim, heads)
        self.norm_pair = nn.LayerNorm(2 * dim)
        self.attn_x = CrossAttention(dim, 2 * dim, heads, zero_out=True)
        self.norm_m = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def check(self, x: torch.Tensor, content: torch.Tensor, fine: torch.Tensor) -> None:
        """Raise a one-line ``SrbenchError`` unless the shapes fit (see the class docstring)."""
        def shape(t: Any) -> str:
            return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__

        if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
            raise SrbenchError(f"FusionBlock: x must be (B, C, H, W) or (B, L, C), got {shape(x)}")
        c = x.shape[1] if x.dim() == 4 else x.shape[2]
        if c != self.dim:
            raise SrbenchError(f"FusionBlock: x has {c} channels, the block has dim {self.dim} (x {shape(x)})")
        b, d = x.shape[0], self.prior_dim
        if not isinstance(content, torch.Tensor) or content.dim() != 2 or tuple(content.shape) != (b, d):
            raise SrbenchError(f"FusionBlock: content must be (B, D) = ({b}, {d}), got {shape(content)}")
        if (not isinstance(fine, torch.Tensor) or fine.dim() != 3 or fine.shape[0] != b or fine.shape[2] != d
                or fine.shape[1] < 1):
            raise SrbenchError(f"FusionBlock: fine must be (B, N, D) = ({b}, N, {d}), got {shape(fine)}")

    def priors(self, content: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """Step 1: the prior tokens ``(B, 1 + N, C)``, content first."""
        return torch.cat([self.content_mlp(content)[:, None], self.fine_mlp(fine)], dim=1)

    def forward(self, x: torch.Tensor, content: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        self.check(x, content, fine)
        spatial = x.dim() == 4
        if spatial:
            b, c, h, w = x.shape
            x = x.flatten(2).transpose(1, 2)                                  # (B, L, C)
        content, fine = content.to(x.dtype), fine.to(x.dtype)
        p = self.priors(content, fine)                                        # (B, 1+N, C)
        xn = self.norm_x(x)                                                   # (B, L, C)
        p = p + self.attn_p(self.norm_p(p), xn)                               # prior tokens attend to the image
        n = p.shape[1] - 1
        pairs = torch.cat([p[:, :1].expand(-1, n, -1), p[:, 1:]], dim=-1)     # (B, N, 2C)
        x = x + self.attn_x(xn, self.norm_pair(pairs))                        # the image attends to the pairs
        x = x + self.mlp(self.norm_m(x))
        return x.transpose(1, 2).reshape(b, c, h, w) if spatial else x


def _fine_tokens(fine: torch.Tensor, tokens: str) -> torch.Tensor:
    """The fine embeddings as the network sees them: as given (``"fine"``) or zeros (``"zero"``)."""
    return torch.zeros_like(fine) if tokens == "zero" and isinstance(fine, torch.Tensor) else fine


# -- RealDAT ---------------------------------------------------------------------------------------------

def build_dat(**kwargs: Any) -> nn.Module:
    """A spandrel ``DAT`` (MIT) built with ``PAPER_DAT`` updated by ``kwargs`` (spandrel's names)."""
    from spandrel.architectures.DAT import DAT

    cfg = {**PAPER_DAT, **kwargs}
    try:
        return DAT(**cfg)
    except TypeError as e:
        raise SrbenchError(f"bad DAT arguments: {' '.join(str(e).split())}") from None


class RealDAT(nn.Module):
    """DePLSR's RealDAT: a spandrel ``DAT`` (``self.dat``, its state-dict keys under ``dat.``) with a
    :class:`FusionBlock` (``self.fusions[i]``) before each residual group ``dat.layers[i]``.

    ``forward(x, content, fine)``: ``x (B, 3, h, w)`` in ``[0, 1]``, ``content (B, D)``,
    ``fine (B, 5, D)`` -> ``(B, 3, h*s, w*s)``: DAT's computation (mean shift, ``conv_first``,
    ``before_RG``, the groups, ``norm``, ``conv_after_body`` + skip, upsampler) with the fusions
    applied to the ``(B, h*w, 180)`` tokens before each group. With untrained fusions the output is
    exactly the DAT's. ``heads``: per fusion block (an int for all; None: each group's DAT heads).
    ``tokens="zero"``: the ablation without degradation tokens (module docstring)."""

    def __init__(self, dat: nn.Module, *, prior_dim: int = 512, heads: int | Sequence[int] | None = None,
                 mlp_ratio: float = 2.0, tokens: str = "fine"):
        super().__init__()
        if not all(hasattr(dat, a) for a in ("layers", "before_RG", "conv_first", "upsampler", "embed_dim")):
            raise SrbenchError(f"RealDAT needs a spandrel DAT, got {type(dat).__name__}")
        n = len(dat.layers)
        if heads is None:
            heads = [int(getattr(layer.blocks[0].attn, "num_heads", 6)) for layer in dat.layers]
        elif isinstance(heads, int):
            heads = [heads] * n
        heads = list(heads)
        if len(heads) != n:
            raise SrbenchError(f"RealDAT: {len(heads)} heads given for {n} residual groups")
        self.dat = dat
        self.fusions = nn.ModuleList([FusionBlock(int(dat.embed_dim), prior_dim, h, mlp_ratio) for h in heads])
        self.tokens = _check_tokens_mode(tokens)

    @property
    def scale(self) -> int:
        return int(self.dat.upscale)

    def forward_features(self, x: torch.Tensor, content: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """DAT's ``forward_features`` with the fusions: ``(B, 180, h, w) -> (B, 180, h, w)``."""
        d = self.dat
        b, c, h, w = x.shape
        x = d.before_RG(x)                                                    # (B, h*w, C), LayerNorm'd
        for fusion, layer in zip(self.fusions, d.layers):
            x = layer(fusion(x, content, fine), [h, w])
        return d.norm(x).transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor, content: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise SrbenchError(f"RealDAT: x must be (B, 3, h, w), got "
                               f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        self.fusions[0].check(x.new_empty(x.shape[0], 1, self.fusions[0].dim), content, fine)
        fine = _fine_tokens(fine, self.tokens)
        d = self.dat
        d.mean = d.mean.type_as(x)
        x = (x - d.mean) * d.img_range
        x = d.conv_first(x)
        x = d.conv_after_body(self.forward_features(x, content, fine)) + x
        if d.upsampler == "pixelshuffle":
            x = d.conv_last(d.upsample(d.conv_before_upsample(x)))
        elif d.upsampler == "pixelshuffledirect":
            x = d.upsample(x)
        else:
            raise SrbenchError(f"RealDAT: unsupported DAT upsampler {d.upsampler!r}")
        return x / d.img_range + d.mean


def paper_realdat(*, scale: int = 4, prior_dim: int = 512, mlp_ratio: float = 2.0, tokens: str = "fine",
                  **dat_kwargs: Any) -> RealDAT:
    """RealDAT at the paper's config (``PAPER_DAT``, ``upscale=scale``; more spandrel DAT arguments
    in ``dat_kwargs``). 19,045,371 parameters at x4 with ``mlp_ratio=2`` (module docstring)."""
    return RealDAT(build_dat(upscale=scale, **dat_kwargs), prior_dim=prior_dim, mlp_ratio=mlp_ratio, tokens=tokens)


# -- FusedRRDN -------------------------------------------------------------------------------------------

class _FrozenBase(nn.Module):
    """A frozen RRDN: always in eval mode, no parameter requires a gradient."""

    def __init__(self, rrdn: RRDN):
        super().__init__()
        self.rrdn = rrdn
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> _FrozenBase:
        return super().train(False)


class FusedRRDN(nn.Module):
    """The lighter DePLSR body that ships: idealo's RRDN (esrgan-thick, a constructed :class:`RRDN`)
    with a :class:`FusionBlock` on its ``G0``-channel LR features before each RRDB listed in ``at``
    (default: all ``T``)::

        f0 = pre_blocks(x);  h = f0
        for i, rrdb in enumerate(rrdbs):  h = rrdb(fusion_i(h, content, fine) if i in at else h)
        out = sr(depth_to_space(pre_shuffle(post_blocks(h) + f0)))

    ``forward(x, content, fine)``: ``x (B, 3, h, w)`` in ``[0, 1]``, ``content (B, D)``,
    ``fine (B, 5, D)`` -> ``(B, 3, h*s, w*s)``, not clamped. Untrained, it computes the RRDN exactly.

    ``train_base=False`` (default): the RRDN is frozen and held outside the module tree (as in
    ``sr_methods.cdasr.nets``): ``parameters()`` and ``state_dict()`` are the fusions alone (132,672
    parameters per block at ``G0`` = 64, ``heads`` 4; ``.to()`` moves the base too). With
    ``train_base=True`` the RRDN is the submodule ``base`` and trains with the fusions. On
    esrgan-thick-x4 (``C=4, D=3, G=32, G0=64, T=10``, 7,260,740 parameters): 1,326,720 fusion
    parameters (2.7 MB in fp16) frozen-base, 8,587,460 (17.2 MB in fp16) with ``train_base``; either
    fits the 20 MB limit of the shipped checkpoint.
    ``tokens="zero"``: the ablation without degradation tokens (module docstring)."""

    def __init__(self, rrdn: RRDN, *, prior_dim: int = 512, heads: int = 4, mlp_ratio: float = 2.0,
                 at: Sequence[int] | None = None, train_base: bool = False, tokens: str = "fine"):
        super().__init__()
        if not isinstance(rrdn, RRDN):
            raise SrbenchError(f"FusedRRDN needs an RRDN, got {type(rrdn).__name__}")
        t = rrdn.config.T
        at = tuple(range(t)) if at is None else tuple(sorted(set(at)))
        bad = [i for i in at if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < t]
        if bad or not at:
            raise SrbenchError(f"FusedRRDN: at must list RRDB indices in [0, {t}), got {at!r}")
        self.at = at
        self.train_base = bool(train_base)
        if self.train_base:
            self.base = rrdn
        else:
            self._frozen = [_FrozenBase(rrdn)]  # a list: not a submodule, not in state_dict
        self.fusions = nn.ModuleDict({str(i): FusionBlock(rrdn.config.G0, prior_dim, heads, mlp_ratio) for i in at})
        self.tokens = _check_tokens_mode(tokens)

    @property
    def rrdn(self) -> RRDN:
        return self.base if self.train_base else self._frozen[0].rrdn

    @property
    def scale(self) -> int:
        return int(self.rrdn.config.scale)

    def _apply(self, fn: Any, *args: Any, **kw: Any) -> FusedRRDN:  # .to(), .half(): the frozen base too
        if not self.train_base:
            self._frozen[0]._apply(fn, *args, **kw)
        return super()._apply(fn, *args, **kw)

    def forward(self, x: torch.Tensor, content: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        r = self.rrdn
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != r.config.in_channels:
            raise SrbenchError(f"FusedRRDN: x must be (B, {r.config.in_channels}, h, w), got "
                               f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        first = self.fusions[str(self.at[0])]
        first.check(x.new_empty(x.shape[0], 1, first.dim), content, fine)
        fine = _fine_tokens(fine, self.tokens)
        f0 = r.pre_blocks(x)
        h = f0
        for i, rrdb in enumerate(r.rrdbs):
            if str(i) in self.fusions:
                h = self.fusions[str(i)](h, content, fine)
            h = rrdb(h)
        g = r.post_blocks(h) + f0
        return r.sr(depth_to_space(r.pre_shuffle(g), r.config.scale))


# -- the whole network -------------------------------------------------------------------------------------

class DePLSRNet(nn.Module):
    """DePLSR end to end (checkpoint arch ``deplsr``): the degradation adaptor (``adaptor``, frozen
    while the SR body trains) gives the priors of the LR, the SR body (``body``: a `FusedRRDN` or a
    `RealDAT`) uses them.

    ``forward(x, priors=None)``: ``x (B, 3, h, w)`` in ``[0, 1]`` -> ``(B, 3, h*s, w*s)``;
    ``priors`` = ``(content, fine)`` from `priors` (pass them to run tiles of one image under the
    whole image's priors). The adaptor resizes its input to its backbone's size itself.
    ``base_record``: the host network the body was built on (asset name and sha256), if any."""

    def __init__(self, adaptor: nn.Module, body: nn.Module, *, base_record: dict[str, Any] | None = None):
        super().__init__()
        if not isinstance(body, (FusedRRDN, RealDAT)):
            raise SrbenchError(f"DePLSRNet: body must be a FusedRRDN or a RealDAT, got {type(body).__name__}")
        self.adaptor, self.body = adaptor, body
        self.base_record = dict(base_record or {})
        self.adaptor.requires_grad_(False)

    @property
    def scale(self) -> int:
        return self.body.scale

    def base_sha256(self) -> str | None:
        return self.base_record.get("sha256")

    def priors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(content (B, D), fine (B, 5, D))`` of LR ``x``, float32, without gradient (the adaptor
        is frozen and the LR is data)."""
        was = self.adaptor.training
        self.adaptor.eval()
        try:
            with torch.no_grad():
                out = self.adaptor(x.float())
        finally:
            self.adaptor.train(was)
        return out.content.float(), out.fine.float()

    def forward(self, x: torch.Tensor, priors: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        content, fine = self.priors(x) if priors is None else priors
        return self.body(x, content, fine)


def load_host(base: str = "esrgan-thick-x4", base_path: str | None = None) -> tuple[RRDN, dict[str, Any]]:
    """``(RRDN, record)``: the catalogue RRDN asset ``base`` (``esrgan-thick-xN``) or the converted
    RRDN ``.safetensors`` file ``base_path``."""
    from pathlib import Path

    from ..rrdn import load_rrdn

    if base_path:
        p = Path(base_path).expanduser()
        if not p.is_file():
            raise SrbenchError(f"DePLSR host network not found: {p}")
        model, sha, _ = load_rrdn(p)
        return model, {"name": None, "path": str(p.resolve()), "sha256": sha}
    if not str(base).startswith("esrgan-thick-x"):
        raise SrbenchError(f"the DePLSR host must be an esrgan-thick-xN asset (or base_path=FILE), got {base!r}")
    from iqa.assets import ASSETS

    from ..catalogue import register_assets

    register_assets()
    path = ASSETS.require(base)
    model, sha, _ = load_rrdn(path, ASSETS.get(base).sha256, fix=f"run `srbench assets fetch {base} --force`")
    return model, {"name": base, "asset": base, "sha256": sha}


BODIES = ("fused-rrdn", "realdat")


def build_deplsr_network(*, adaptor: dict[str, Any], body: str = "fused-rrdn", scale: int = 4,
                         base: str = "esrgan-thick-x4", base_path: str | None = None, base_sha256: str | None = None,
                         heads: int | None = 4, mlp_ratio: float = 2.0, at: Sequence[int] | None = None,
                         train_base: bool = False, tokens: str = "fine",
                         dat: dict[str, Any] | None = None) -> DePLSRNet:
    """The DePLSR network (the builder of checkpoint arch ``deplsr``), untrained: ``adaptor`` are
    the ``arch_options`` of a ``deplsr-adaptor`` checkpoint (`adaptor.build_adaptor`); ``body``
    ``"fused-rrdn"`` (FusionBlocks in the host RRDN ``base``, whose sha256 must be ``base_sha256``
    when given) or ``"realdat"`` (the paper's RealDAT at ``scale``, ``dat`` overriding
    `PAPER_DAT`, randomly initialised)."""
    from .adaptor import build_adaptor

    ad = build_adaptor(**adaptor)
    d = int(ad.embed_dim)
    if body == "fused-rrdn":
        rrdn, record = load_host(base, base_path)
        if base_sha256 and record["sha256"] != base_sha256:
            raise SrbenchError(f"the DePLSR host {base_path or base} has sha256 {record['sha256']}, the fusions were "
                               f"trained on {base_sha256}")
        if int(rrdn.config.scale) != int(scale):
            raise SrbenchError(f"the DePLSR host {base_path or base} is x{rrdn.config.scale}, not x{scale}")
        net = FusedRRDN(rrdn, prior_dim=d, heads=int(heads or 4), mlp_ratio=mlp_ratio, at=at, train_base=train_base,
                        tokens=tokens)
        return DePLSRNet(ad, net, base_record=record)
    if body == "realdat":
        net = RealDAT(build_dat(upscale=int(scale), **(dat or {})), prior_dim=d, heads=heads, mlp_ratio=mlp_ratio,
                      tokens=tokens)
        return DePLSRNet(ad, net)
    raise UnknownNameError("DePLSR body", body, list(BODIES))
