"""CLIP-SR's losses (GALIP's), each a function of tensors, testable on tiny ones.

- Discriminator: ``hinge(real) + (hinge(fake) + hinge(mismatched caption)) / 2 + MA-GP``, with the
  hinge terms ``relu(1 - D(real, s))``, ``relu(1 + D(fake, s))``, ``relu(1 + D(real, s'))`` (``s'``:
  the batch's sentences rolled by one, so each real image meets another image's caption) and the
  matching-aware gradient penalty ``2 * mean(||(dD/dfeatures, dD/ds)||_2 ^ 6)`` on the real images
  with their own captions (:func:`ma_gp`).
- Generator: ``L1 + VGG16-feature MSE + 0.01 * (-D(fake, s) - 4 * cos(image embedding of fake, s))``
  (:func:`generator_adversarial`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["alignment_loss", "generator_adversarial", "hinge_d", "ma_gp", "roll_mismatch"]


def hinge_d(real: torch.Tensor, fake: torch.Tensor, mismatched: torch.Tensor) -> torch.Tensor:
    """``mean relu(1 - real) + (mean relu(1 + fake) + mean relu(1 + mismatched)) / 2``."""
    return F.relu(1.0 - real).mean() + 0.5 * (F.relu(1.0 + fake).mean() + F.relu(1.0 + mismatched).mean())


def roll_mismatch(sent: torch.Tensor) -> torch.Tensor:
    """The sentences rolled by one along the batch (GALIP's mismatched captions)."""
    return torch.cat([sent[1:], sent[:1]], dim=0)


def ma_gp(out: torch.Tensor, inputs: Sequence[torch.Tensor], *, weight: float = 2.0, power: float = 6.0) -> torch.Tensor:
    """Matching-aware gradient penalty: ``weight * mean_b(||g_b||_2 ^ power)`` where ``g_b`` is the
    gradient of ``out[b]`` with respect to every tensor of ``inputs`` (the discriminator's feature
    maps and the sentence embedding), flattened and concatenated per sample. ``inputs`` must
    require grad; the result keeps the graph (``create_graph``) so it can be backpropagated."""
    grads = torch.autograd.grad(out.sum(), list(inputs), create_graph=True)
    g = torch.cat([gr.reshape(gr.shape[0], -1) for gr in grads], dim=1)
    return weight * g.norm(dim=1).pow(power).mean()


def generator_adversarial(fake_logits: torch.Tensor, image_emb: torch.Tensor | None, sent: torch.Tensor,
                          *, sim_weight: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(-mean D(fake) - sim_weight * mean cos(image_emb, sent), mean cos)``; without an image
    embedding (no image-text model) the similarity term is 0 and the cosine is NaN."""
    adv = -fake_logits.mean()
    if image_emb is None:
        return adv, torch.full((), float("nan"), device=fake_logits.device)
    cos = F.cosine_similarity(image_emb.float(), sent.float(), dim=-1).mean()
    return adv - sim_weight * cos, cos.detach()


def alignment_loss(img: torch.Tensor, txt: torch.Tensor, same: torch.Tensor, logit_scale: torch.Tensor | float
                   ) -> torch.Tensor:
    """Symmetric contrastive (CLIP) loss with several positives: ``img (N, D)``, ``txt (N, D)``
    (normalised inside), ``same (N, N)`` bool, true where row ``i``'s image and column ``j``'s caption
    come from one picture (two patches of one picture are not each other's negatives);
    ``logit_scale`` is the log temperature. Each direction is ``-mean_i log sum_{j in pos(i)}
    softmax_j(t <x_i, y_j>)``."""
    x, y = F.normalize(img.float(), dim=-1), F.normalize(txt.float(), dim=-1)
    t = torch.as_tensor(logit_scale, dtype=torch.float32, device=x.device).exp()
    logits = t * x @ y.T
    neg = torch.finfo(logits.dtype).min
    i2t = torch.logsumexp(logits.masked_fill(~same, neg), 1) - torch.logsumexp(logits, 1)
    t2i = torch.logsumexp(logits.T.masked_fill(~same.T, neg), 1) - torch.logsumexp(logits.T, 1)
    return -(i2t.mean() + t2i.mean()) / 2
