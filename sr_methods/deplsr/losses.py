"""DePLSR's adaptor losses: the SigLIP sigmoid loss and the weighted sum of its three terms.

``siglip_loss`` (Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV 2023): with
``x_i``, ``y_j`` the L2-normalised rows of ``img`` and ``txt``, ``t = exp(logit_scale)``, ``b =
logit_bias`` and ``z_ij = +1`` on the diagonal, ``-1`` elsewhere,

    loss = -(1 / N) * sum_i sum_j log sigmoid(z_ij * (t * <x_i, y_j> + b))

i.e. the sum over all ``N x N`` pairs divided by the batch size ``N`` (not by ``N^2``). This is
exactly open_clip's ``SigLipLoss`` on one device (``open_clip/loss.py``: ``-logsigmoid(labels *
logits).sum() / N``), which takes features already normalised and ``logit_scale`` already
exponentiated (its models pass ``logit_scale.exp()``); here both happen inside.

``adaptor_loss`` = ``0.2 * content-vs-caption + 0.3 * degradation-vs-full-text + 0.5 * mean_k
fine_k-vs-text_k`` (the official weights). Without captions (the offline variant, or data without
``captions.jsonl``) the content term is dropped and the other two weights are renormalised to sum
to 1 (0.375, 0.625), so the loss keeps its scale. In a batch, two images with the same text (e.g.
"no blur") are still negatives of each other, as in the official training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from iqa.errors import SrbenchError

__all__ = ["WEIGHTS", "adaptor_loss", "siglip_loss"]

WEIGHTS = (0.2, 0.3, 0.5)  # content, degradation, fine


def _check_pair(img: torch.Tensor, txt: torch.Tensor) -> None:
    if not isinstance(img, torch.Tensor) or not isinstance(txt, torch.Tensor) or img.ndim != 2 \
            or img.shape != txt.shape or img.shape[0] < 1:
        raise SrbenchError(f"img and txt must both be (N, D) with N >= 1, got "
                           f"{getattr(img, 'shape', type(img).__name__)} and {getattr(txt, 'shape', type(txt).__name__)}")


def siglip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor | float,
                logit_bias: torch.Tensor | float) -> torch.Tensor:
    """SigLIP loss (module docstring) of matched rows ``img (N, D)``, ``txt (N, D)``; a scalar."""
    _check_pair(img, txt)
    x = F.normalize(img.float(), dim=-1)
    y = F.normalize(txt.float(), dim=-1)
    scale = torch.as_tensor(logit_scale, dtype=torch.float32, device=x.device).exp()
    logits = scale * (x @ y.T) + torch.as_tensor(logit_bias, dtype=torch.float32, device=x.device)
    n = x.shape[0]
    labels = 2 * torch.eye(n, device=x.device) - 1
    return -F.logsigmoid(labels * logits).sum() / n


def adaptor_loss(content: torch.Tensor, degradation: torch.Tensor, fine: torch.Tensor,
                 degradation_txt: torch.Tensor, fine_txt: torch.Tensor, logit_scale: torch.Tensor | float,
                 logit_bias: torch.Tensor | float, caption_txt: torch.Tensor | None = None,
                 weights: tuple[float, float, float] = WEIGHTS) -> tuple[torch.Tensor, dict[str, float]]:
    """The adaptor's training loss and its parts (floats, for logs).

    ``content``, ``degradation``, ``degradation_txt``, ``caption_txt``: ``(N, D)``; ``fine``,
    ``fine_txt``: ``(N, K, D)`` (K = 5). ``caption_txt=None`` drops the content term (weights
    renormalised).
    """
    if fine.ndim != 3 or fine.shape != fine_txt.shape:
        raise SrbenchError(f"fine and fine_txt must both be (N, K, D), got {tuple(fine.shape)} and {tuple(fine_txt.shape)}")
    wc, wd, wf = weights
    parts = {"degradation": siglip_loss(degradation, degradation_txt, logit_scale, logit_bias),
             "fine": torch.stack([siglip_loss(fine[:, k], fine_txt[:, k], logit_scale, logit_bias)
                                  for k in range(fine.shape[1])]).mean()}
    if caption_txt is not None:
        parts["content"] = siglip_loss(content, caption_txt, logit_scale, logit_bias)
        total = wc * parts["content"] + wd * parts["degradation"] + wf * parts["fine"]
    else:
        total = (wd * parts["degradation"] + wf * parts["fine"]) / (wd + wf)
    return total, {k: float(v.detach()) for k, v in parts.items()}
