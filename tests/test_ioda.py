"""IODA (issue 13, in progress): the directional loss against an independent NumPy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iqa.errors import SrbenchError


def _reference(src_lr, tgt_lr, src_sr, tgt_sr):
    """Written from the formula with NumPy, float64, one sample at a time."""
    def unit(v):
        return v / np.linalg.norm(v)

    out = []
    for a, b, c, d in zip(src_lr, tgt_lr, src_sr, tgt_sr):
        a, b, c, d = unit(a), unit(b), unit(c), unit(d)
        out.append(float(a @ b) * (1 - float(unit(d - c) @ unit(b - a))))
    return float(np.mean(out))


def test_directional_loss_equals_the_formula_and_only_the_target_sr_gets_gradients():
    from sr_methods.ioda.losses import directional_loss

    g = torch.Generator().manual_seed(0)
    src_lr, tgt_lr, src_sr, tgt_sr = (torch.randn(3, 16, generator=g, dtype=torch.float64) for _ in range(4))
    tgt_sr.requires_grad_(True)
    loss = directional_loss(src_lr, tgt_lr, src_sr, tgt_sr)
    want = _reference(*(t.detach().numpy() for t in (src_lr, tgt_lr, src_sr, tgt_sr)))
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(want, rel=1e-5, abs=1e-6)
    loss.backward()
    assert tgt_sr.grad is not None and tgt_sr.grad.abs().sum() > 0
    # scale-free: each embedding is normalised first
    assert directional_loss(2 * src_lr, 3 * tgt_lr, 0.5 * src_sr, 7 * tgt_sr.detach()).item() == pytest.approx(
        loss.item(), rel=1e-5)
    # SR moving exactly along the LR direction costs nothing
    assert directional_loss(src_lr, tgt_lr, src_lr, tgt_lr).item() == pytest.approx(0.0, abs=1e-6)


def test_directional_loss_rejects_mismatched_embeddings():
    from sr_methods.ioda.losses import directional_loss

    a = torch.zeros(2, 8)
    with pytest.raises(SrbenchError, match=r"four \(B, D\) embeddings of one shape"):
        directional_loss(a, a, a, torch.zeros(2, 9))
