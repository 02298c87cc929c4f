"""CDASR's losses, each a function of tensors (testable on tiny inputs).

- `downscale`: SR ``(B, 3, H, W)`` -> ``(B, 3, H/s, W/s)`` by `iqa.resize.imresize` in float mode
  (MATLAB's bicubic with antialias, its double path without rounding): differentiable (it is a
  pair of weighted sums of gathered pixels), so no other resampler is needed.
- `semantic_loss`: ``mean_b (1 - cos(E(rs(a_b)), E(rs(b_b))))`` on the frozen backbone (``rs``: the
  resize to the embedding size, see `nets.embed`); gradients flow to ``a`` only.
- `adaptation_loss` (test-time adaptation and the meta-training inner loop; target LR only, the
  benchmark never gives a target HR): back-projection ``L1(down(clamp(SR)), LR)`` plus
  ``w_sem * semantic_loss(SR, LR)`` (semantic consistency against the only reference there is).
- `supervised_loss` (meta-training's query / outer loss, HR known):
  ``L1(SR, HR) + w_percep * VGG16 perceptual(SR, HR) + w_sem * semantic_loss(SR, HR)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from iqa.errors import SrbenchError

from .nets import embed

__all__ = ["adaptation_loss", "downscale", "semantic_loss", "supervised_loss"]


def downscale(sr: torch.Tensor, scale: int) -> torch.Tensor:
    """``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 3, ceil(H/scale), ceil(W/scale))``, differentiable."""
    from iqa.resize import imresize

    return imresize(sr, 1.0 / scale, kernel="cubic", mode="float").to(sr.dtype)


def semantic_loss(backbone: nn.Module, a: torch.Tensor, b: torch.Tensor, size: int,
                  b_embedding: torch.Tensor | None = None) -> torch.Tensor:
    """``mean(1 - cos(E(rs(a)), E(rs(b))))``, a scalar; ``b_embedding (B, D)`` instead of ``E(rs(b))``
    when the caller has it. ``b``'s embedding carries no gradient."""
    ea = embed(backbone, a, size)
    if b_embedding is None:
        with torch.no_grad():
            b_embedding = embed(backbone, b, size)
    return (1.0 - F.cosine_similarity(ea, b_embedding.detach().float(), dim=-1)).mean()


def adaptation_loss(sr: torch.Tensor, lr: torch.Tensor, scale: int, backbone: nn.Module, size: int,
                    w_sem: float, lr_embedding: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The LR-only loss: ``{"bp": L1(down(clamp(sr)), lr), "sem": ..., "total": bp + w_sem * sem}``;
    ``sr (B, 3, h*s, w*s)``, ``lr (B, 3, h, w)``."""
    if tuple(sr.shape[-2:]) != (lr.shape[-2] * scale, lr.shape[-1] * scale) or sr.shape[:2] != lr.shape[:2]:
        raise SrbenchError(f"adaptation loss: sr {tuple(sr.shape)} is not lr {tuple(lr.shape)} times x{scale}")
    sr = sr.float().clamp(0, 1)
    out = {"bp": F.l1_loss(downscale(sr, scale), lr.float())}
    total = out["bp"]
    if w_sem:
        out["sem"] = semantic_loss(backbone, sr, lr, size, lr_embedding)
        total = total + w_sem * out["sem"]
    out["total"] = total
    return out


def supervised_loss(sr: torch.Tensor, hr: torch.Tensor, backbone: nn.Module, size: int, w_percep: float,
                    w_sem: float, perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | Any = None
                    ) -> dict[str, torch.Tensor]:
    """``{"pix", "percep", "sem", "total"}`` (the terms whose weight is not 0) of SR against HR."""
    if sr.shape != hr.shape:
        raise SrbenchError(f"supervised loss: sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ in shape")
    sr = sr.float()
    out = {"pix": F.l1_loss(sr, hr.float())}
    total = out["pix"]
    if w_percep:
        if perceptual is None:
            raise SrbenchError("supervised loss: w_percep > 0 needs a perceptual loss")
        out["percep"] = perceptual(sr, hr).float()
        total = total + w_percep * out["percep"]
    if w_sem:
        out["sem"] = semantic_loss(backbone, sr.clamp(0, 1), hr, size)
        total = total + w_sem * out["sem"]
    out["total"] = total
    return out
