"""IODA as an SR method: any single-scale catalogue network, adapted to a target domain from its LR
images alone (one in the paper) by the image-guided directional loss (`sr_methods.ioda.losses`).

Adaptation (facts of the official code, ZaizuoTang/IODA; its known bugs left out, see the
modules): the source network ``M_S`` is the base as built, frozen; the target network ``M_T`` is a
copy trained with Adam (lr 1e-5, betas (0, 0.99^0.8)). Each step takes ``batch`` (2) pairs of a
target LR crop (``crop`` = 128 LR pixels, or the largest square the target images allow; a
random flip/rotation) and a source LR crop of the same size (bicubic LR of a training HR patch,
from ``source``); the target crop gets an instance mask (`masks`), and with probability 0.5 both
inputs get the same occlusion. ``E`` (`encoder.MaskedEncoder`) embeds, and the step minimises
``L = mean_b cos(E(src), E(tgt, m)) * (1 - cos(dSR, dLR))``. Exactly ``steps`` steps: the
official script evaluates on the test set every 10 steps and keeps the best test PSNR, which a
benchmark must never do; srbench keeps the last weights.

The name says what differs from the paper: ``ioda-vgg16-slic[base=craft-x4]`` is IODA with VGG16
instead of Alpha-CLIP (masked pooling instead of the alpha channel) and SLIC regions instead of
SAM instances.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from iqa.errors import SrbenchError

from ..adapt import AdaptiveMethod, base_network, check_adapt_inputs, copy_method, trainable_network
from ..base import SRMethod
from .losses import directional_loss
from .masks import INSTANCES, instance_labels, instance_mask, occlusion_mask, upsample_mask

__all__ = ["IODAMethod", "build"]


def _check_single_scale(base: SRMethod, base_name: str) -> None:
    if base.scales is None or len(base.scales) != 1:
        raise SrbenchError(f"IODA adapts one network at one scale; {base_name} serves "
                           f"{'any scale' if base.scales is None else 'x' + '/x'.join(map(str, base.scales))}: "
                           f"name a single-scale network (e.g. craft-x4, esrgan-thick-x4)")


class IODAMethod(AdaptiveMethod):
    """IODA around ``base`` (see the module doc); unadapted, it computes exactly what ``base`` does."""

    def __init__(self, base: SRMethod, encoder: torch.nn.Module, *, base_name: str, backbone: str,
                 instances: str = "slic", occlusion: float = 0.5, crop: int = 128, batch: int = 2, lr: float = 1e-5,
                 beta2: float = 0.99 ** 0.8, min_fraction: float = 1000 / 128 ** 2, n_segments: int = 16,
                 occlusion_cell: int = 32, state: dict[str, Any] | None = None):
        super().__init__()
        _check_single_scale(base, base_name)
        if instances not in INSTANCES:
            raise SrbenchError(f"instances must be one of {', '.join(INSTANCES)}, got {instances!r}")
        for key, v, low in (("crop", crop, 8), ("batch", batch, 1), ("n_segments", n_segments, 1),
                            ("occlusion_cell", occlusion_cell, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise SrbenchError(f"IODA option {key} must be an integer >= {low}, got {v!r}")
        for key, v in (("occlusion", occlusion), ("min_fraction", min_fraction), ("beta2", beta2)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise SrbenchError(f"IODA option {key} must be a number in [0, 1], got {v!r}")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
            raise SrbenchError(f"IODA option lr must be a positive number, got {lr!r}")
        self.scale = int(base.scales[0])
        self.base = base_network(base, self.scale)
        self.encoder = encoder
        self.base_name, self.backbone = base_name, backbone
        self.opts = {"instances": instances, "occlusion": float(occlusion), "crop": crop, "batch": batch,
                     "lr": float(lr), "beta2": float(beta2), "min_fraction": float(min_fraction),
                     "n_segments": n_segments, "occlusion_cell": occlusion_cell}
        self.name = f"ioda-{backbone}-{instances}[base={base_name}]"
        self.scales = (self.scale,)
        self.adaptation = state  # None: unadapted; else what adaptation did (steps, seed, images, loss)
        self.device = self.base.device

    # -- SRMethod ------------------------------------------------------------------------------------
    def _upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        return self.base.upscale(lr, scale)

    def to(self, device: Any) -> "IODAMethod":
        super().to(device)
        self.base.to(device)
        self.encoder.to(self.device)
        return self

    def provenance(self) -> dict[str, Any]:
        enc = self.encoder.backbone.provenance() if hasattr(self.encoder.backbone, "provenance") else {}
        return {**super().provenance(), "kind": "ioda", "base": self.base.provenance(), "encoder": enc,
                "options": dict(self.opts), "adapted": self.adaptation}

    # -- adaptation ------------------------------------------------------------------------------------
    def _copy_with_base(self, base: SRMethod, adaptation: dict[str, Any] | None) -> "IODAMethod":
        new = IODAMethod.__new__(IODAMethod)
        new.__dict__.update(self.__dict__)
        new.base, new.adaptation = base, adaptation
        new.opts = dict(self.opts)
        return new

    def adapted_state(self) -> dict[str, torch.Tensor]:
        if self.adaptation is None:
            raise SrbenchError(f"{self.name} has not been adapted")
        net = trainable_network(self.base, self.scale)
        return {k: v.detach().to("cpu", torch.float32).clone() for k, v in net.state_dict().items()}

    def with_state(self, state: dict[str, torch.Tensor], adaptation: dict[str, Any] | None = None) -> "IODAMethod":
        target = copy_method(self.base)
        net = trainable_network(target, self.scale)
        ours = net.state_dict()
        if set(state) != set(ours) or any(state[k].shape != ours[k].shape for k in ours):
            raise SrbenchError(f"{self.name}: the adapted weights do not fit the base network "
                               f"({len(state)} tensors given, {len(ours)} expected)")
        net.load_state_dict({k: v.to(ours[k].dtype) for k, v in state.items()})
        return self._copy_with_base(target, adaptation or {"restored": True})

    def adapt(self, lr_images: list[torch.Tensor], *, steps: int, seed: int, source: Any = None,
              echo: Callable[[str], None] = print) -> "IODAMethod":
        check_adapt_inputs(self.name, lr_images, steps, seed)
        if source is None:
            raise SrbenchError(f"{self.name}: IODA pairs the target with source training images: give source=")
        o, s, dev = self.opts, self.scale, self.device
        crop = min([o["crop"]] + [d for x in lr_images for d in x.shape[-2:]])
        if crop < 8:
            raise SrbenchError(f"{self.name}: the target LR images are too small to crop ({crop} px)")
        target = copy_method(self.base)
        net_t, net_s = trainable_network(target, s), trainable_network(self.base, s)
        net_t.train()
        # a loaded checkpoint comes frozen: the copy trains, except parts its network keeps frozen
        # (the x8 base inside rrdn-x16's stage network)
        frozen = net_t.frozen_keys() if hasattr(net_t, "frozen_keys") else set()
        for name, p in net_t.named_parameters():
            p.requires_grad_(name not in frozen)
        params = [p for p in net_t.parameters() if p.requires_grad]
        if not params:
            raise SrbenchError(f"{self.name}: the base network has no trainable parameter")
        opt = torch.optim.Adam(params, lr=o["lr"], betas=(0.0, o["beta2"]))
        rng = np.random.default_rng([seed, 0x10DA])
        images = [x.to(dev, torch.float32) for x in lr_images]
        t0, losses = time.monotonic(), []
        for k in range(steps):
            src = source(k, crop * s, o["batch"], seed)[1].to(dev)
            tgt, mask, occ = self._target_batch(images, crop, rng)
            src, tgt = src * occ[:, None], tgt * occ[:, None]
            with torch.no_grad():
                e_src = self.encoder(src)
                e_tgt = self.encoder(tgt, mask)
                e_src_sr = self.encoder(net_s(src).clamp(0, 1))
            e_tgt_sr = self.encoder(net_t(tgt).clamp(0, 1), upsample_mask(mask, s))
            loss = directional_loss(e_src, e_tgt, e_src_sr, e_tgt_sr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if (k + 1) % max(1, steps // 5) == 0 or k + 1 == steps:
                echo(f"   {self.name}: step {k + 1}/{steps}  loss {np.mean(losses[-max(1, steps // 5):]):.5f}  "
                     f"{time.monotonic() - t0:.0f} s")
        net_t.eval()
        return self._copy_with_base(target, {"steps": steps, "seed": seed, "images": len(lr_images), "crop": crop,
                                             "loss_first": losses[0] if losses else None,
                                             "loss_last": losses[-1] if losses else None})

    def _target_batch(self, images: list[torch.Tensor], crop: int, rng: np.random.Generator
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``batch`` target crops (random image, corner, flip/rotation), their instance masks and
        the occlusion keep-masks, ``(B, 3, c, c)``, ``(B, c, c)``, ``(B, c, c)``."""
        o = self.opts
        crops, masks, occs = [], [], []
        for _ in range(o["batch"]):
            x = images[int(rng.integers(len(images)))][0]
            h, w = x.shape[-2:]
            t, l = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
            x = torch.rot90(x[:, t:t + crop, l:l + crop], int(rng.integers(4)), dims=(-2, -1))
            if rng.integers(2):
                x = x.flip(-1)
            labels = instance_labels(x, o["instances"], rng, n_segments=o["n_segments"])
            crops.append(x)
            masks.append(instance_mask(labels, rng, o["min_fraction"]))
            occs.append(occlusion_mask(crop, crop, rng, cell=o["occlusion_cell"], p_apply=o["occlusion"]))
        dev = images[0].device
        return torch.stack(crops), torch.stack(masks).to(dev), torch.stack(occs).to(dev)


def build(*, entry: Any, base: str | None = None, backbone: str = "vgg16", backbone_weights: str | None = None,
          instances: str = "slic", occlusion: float = 0.5, crop: int = 128, batch: int = 2, lr: float = 1e-5,
          beta2: float = 0.99 ** 0.8, min_fraction: float = 1000 / 128 ** 2, n_segments: int = 16,
          occlusion_cell: int = 32, tile: int | None = None, tile_overlap: int | None = None) -> IODAMethod:
    """Catalogue factory: ``base`` names any single-scale catalogue network (``craft-x4``,
    ``esrgan-thick-x4``, ``realesrgan-x4plus``, ``sfd-sr-vgg16-x8``, ``rrdn-x16``, ``spandrel:PATH``,
    ``METHOD:PATH``); ``backbone`` is ``vgg16`` or a CLIP model (``clip:ViT-B-16`` with
    ``backbone_weights=FILE``, or an open_clip config JSON)."""
    from iqa.semantic import build_backbone

    from .. import create_method
    from .encoder import MaskedEncoder

    if not isinstance(base, str) or not base.strip():
        raise SrbenchError(f"{entry.name} needs base=NAME, a single-scale catalogue network such as craft-x4")
    options = {k: v for k, v in (("tile", tile), ("tile_overlap", tile_overlap)) if v is not None}
    net = create_method(base, **options)
    _check_single_scale(net, base)
    bb = build_backbone(backbone, pretrained=None if backbone_weights else "openai", weights=backbone_weights)
    label = "vgg16" if backbone.lower() == "vgg16" else "clip-" + bb.name.replace("/", "-")
    return IODAMethod(net, MaskedEncoder(bb), base_name=base, backbone=label, instances=instances,
                      occlusion=occlusion, crop=crop, batch=batch, lr=lr, beta2=beta2, min_fraction=min_fraction,
                      n_segments=n_segments, occlusion_cell=occlusion_cell)
