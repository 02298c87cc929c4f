"""IODA's image-guided directional loss, on embeddings of a frozen image encoder ``E``.

Per sample of a batch (source LR/HR pair from the training data, one target LR crop):

    dLR = n(E(tgt_LR, m) - E(src_LR))                  the LR domain direction
    dSR = n(E(M_T(tgt_LR), m_hr) - E(M_S(src_LR)))      the same direction between SR outputs
    L   = mean_b  cos(E(src_LR), E(tgt_LR, m)) * (1 - cos(dSR, dLR))

with ``n(v) = v / ||v||``, every embedding L2-normalised first, ``M_S`` the frozen source network
and ``M_T`` the adapted copy (only ``M_T`` receives gradients, through ``E(M_T(tgt_LR))``); ``m``
and ``m_hr`` are the instance/occlusion mask at LR and SR size (how a mask enters ``E`` is the
encoder's business: masked pooling, or an alpha channel). The weight ``cos(E(src_LR), E(tgt_LR))``
makes close domains pull less; it carries no gradient (both inputs are LR images through a frozen
encoder), so it is detached.

Not reproduced from the official code: mapping the SR output to ``[0.5, 1]`` before the encoder
(a StyleGAN-NADA leftover); the embeddings here are of the images as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from iqa.errors import SrbenchError

__all__ = ["directional_loss"]


def directional_loss(src_lr: torch.Tensor, tgt_lr: torch.Tensor, src_sr: torch.Tensor, tgt_sr: torch.Tensor,
                     eps: float = 1e-8) -> torch.Tensor:
    """The scalar loss from four ``(B, D)`` embeddings: ``E(src_LR)``, ``E(tgt_LR, m)``,
    ``E(M_S(src_LR))`` and ``E(M_T(tgt_LR), m_hr)`` (any scale: each is L2-normalised here)."""
    shapes = {t.shape for t in (src_lr, tgt_lr, src_sr, tgt_sr)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise SrbenchError(f"IODA's loss takes four (B, D) embeddings of one shape, got "
                           f"{[tuple(t.shape) for t in (src_lr, tgt_lr, src_sr, tgt_sr)]}")
    src_lr, tgt_lr, src_sr, tgt_sr = (F.normalize(t.float(), dim=1, eps=eps) for t in (src_lr, tgt_lr, src_sr, tgt_sr))
    d_lr = F.normalize(tgt_lr - src_lr, dim=1, eps=eps)
    d_sr = F.normalize(tgt_sr - src_sr, dim=1, eps=eps)
    weight = (src_lr * tgt_lr).sum(dim=1).detach()
    return (weight * (1 - (d_sr * d_lr).sum(dim=1))).mean()
