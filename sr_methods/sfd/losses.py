"""Losses of SFD-SR, each a function of tensors (testable on tiny inputs).

The generator minimises ``w_pix * pixel + w_percep * perceptual + w_gan * adversarial`` and the
discriminators minimise their own loss (the SFD paper: L1, perceptual and the two semantic
adversarial terms; its weights are unpublished, so the recipe follows SeD's, see
``bench.train.sfd_sr``). Images are float32 ``(B, 3, H, W)`` in ``[0, 1]``.

- `pixel_loss`: mean absolute error (L1), ESRGAN's content loss.
- `VGGPerceptualLoss`: L1 between VGG features of SR and HR, *before* the activation, on
  ImageNet-normalised inputs. ESRGAN (and SeD, BasicSR's ``PerceptualLoss``) use **VGG19
  ``conv5_4``** before ReLU; srbench has VGG16's ImageNet weights offline (asset ``vgg16``), not
  VGG19's, so the default is **VGG16 ``conv5_3``** before ReLU: the last convolution of the
  deepest block, the same position in the network (VGG19 has one more conv per deep block).
  Features before the activation keep the negative responses that ReLU would zero, which is
  ESRGAN's argument (sharper edges, better brightness consistency). Other layers can be weighted
  in (``layers={"conv4_3": 0.5, "conv5_3": 1.0}``). The value is the mean over feature elements,
  as BasicSR's L1 criterion.
- `discriminator_loss` / `generator_adversarial_loss`: the two halves of the game against the
  semantic discriminators `iqa.sfd.SFD` (Feat-D on the backbone's middle feature maps and the
  prompt/anchor pair on its output feature): ``SFD.d_loss(real, fake)`` (binary cross-entropy,
  real -> 1, fake -> 0, both heads; fakes detached) and ``SFD.g_loss(fake)`` (both heads pushed to
  call the fake real).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from iqa.errors import SrbenchError

__all__ = ["VGG16_LAYERS", "VGGPerceptualLoss", "discriminator_loss", "generator_adversarial_loss", "pixel_loss",
           "vgg16_perceptual"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg16_layer_names() -> dict[str, int]:
    """``conv1_1`` .. ``relu5_3`` -> index in torchvision's VGG16 ``features``."""
    names, i = {}, 0
    for block, convs in enumerate((2, 2, 3, 3, 3), start=1):
        for c in range(1, convs + 1):
            names[f"conv{block}_{c}"], names[f"relu{block}_{c}"] = i, i + 1
            i += 2
        i += 1  # the max pool
    return names


VGG16_LAYERS = _vgg16_layer_names()


def _check_images(x: Any, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise SrbenchError(f"{name} must be a (B, 3, H, W) tensor, got {got}")


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between ``sr`` and ``hr`` (same shape), a scalar."""
    if sr.shape != hr.shape:
        raise SrbenchError(f"pixel loss: sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ in shape")
    return F.l1_loss(sr.float(), hr.float())


class VGGPerceptualLoss(nn.Module):
    """``sum_l w_l * mean|phi_l(norm(sr)) - phi_l(norm(hr))|`` over the chosen layers ``l`` of a
    frozen torchvision-indexed VGG16 ``features`` (``norm``: ImageNet mean/std). HR features carry
    no gradient; gradients flow to ``sr``. ``features`` is used as given (not copied), so the
    network of a VGG16 semantic backbone can serve both the discriminator and this loss."""

    def __init__(self, features: nn.Sequential, layers: dict[str, float] | None = None,
                 provenance: dict[str, Any] | None = None):
        super().__init__()
        layers = dict(layers or {"conv5_3": 1.0})
        bad = [k for k in layers if k not in VGG16_LAYERS]
        if bad or not layers:
            raise SrbenchError(f"perceptual layers must be some of {', '.join(VGG16_LAYERS)}, got {list(layers)}")
        self.layers = {VGG16_LAYERS[k]: float(w) for k, w in layers.items()}
        self.names = dict(layers)
        last = max(self.layers)
        if len(features) <= last:
            raise SrbenchError(f"the VGG network has {len(features)} layers; {max(layers, key=VGG16_LAYERS.get)} "
                               f"needs {last + 1}")
        self.features = [features]  # not a submodule: frozen, never saved with a recipe's state
        self.last = last
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._provenance = dict(provenance or {})

    def provenance(self) -> dict[str, Any]:
        return {"network": "vgg16", "layers": self.names, **self._provenance}

    def _feats(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        net = self.features[0]
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        out = {}
        for i in range(self.last + 1):
            x = net[i](x)
            if i in self.layers:
                out[i] = x
        return out

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        _check_images(sr, "sr")
        _check_images(hr, "hr")
        fs = self._feats(sr)
        with torch.no_grad():
            fh = self._feats(hr)
        return sum(w * F.l1_loss(fs[i].float(), fh[i].float()) for i, w in self.layers.items())


def vgg16_perceptual(layers: dict[str, float] | None = None, *, weights: str | os.PathLike[str] | None = None,
                     net: nn.Sequential | None = None, provenance: dict[str, Any] | None = None,
                     device: Any = None) -> VGGPerceptualLoss:
    """The perceptual loss on ImageNet VGG16 (weights found and verified by `iqa.weights`, asset
    ``vgg16``; ``weights=PATH`` is recorded, not verified), or on ``net`` as given (described by
    ``provenance``)."""
    record: dict[str, Any] = dict(provenance or {"given": "object"})
    if net is None:
        from iqa.weights import build_backbone, load_backbone

        sd, rec = load_backbone("vgg16", weights)
        net = build_backbone("vgg16", sd)
        record = {"weights": rec.get("path"), "sha256": rec.get("sha256"), "verified": rec.get("verified")}
    net = net.eval().requires_grad_(False)
    if device is not None:
        net = net.to(device)
    loss = VGGPerceptualLoss(net, layers, record)
    return loss.to(device) if device is not None else loss


def discriminator_loss(sfd: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """The discriminators' losses (``featd``, ``lpp``, ``total``): `iqa.sfd.SFD.d_loss` (fakes
    detached, so no gradient reaches the generator)."""
    _check_images(real, "real")
    _check_images(fake, "fake")
    return sfd.d_loss(real, fake.detach())


def generator_adversarial_loss(sfd: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss: `iqa.sfd.SFD.g_loss` (BCE of both heads against "real")."""
    _check_images(fake, "fake")
    return sfd.g_loss(fake)
