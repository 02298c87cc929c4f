"""Recipe ``rrdn-x16``: the x8 RRDN (``esrgan-thick-x8``, frozen) plus a learned x2 stage
(`sr_methods.rrdn_stage`), trained with L1 on bicubic x16 LR: an x16 network that is what it says,
not a cascade of interpolations.

Presets: ``cpu`` (a 32-channel stage of 3 blocks; HR patches 192 px: LR 12 px, the base's output
96 px; batch 4; 600 steps; Adam 2e-4 halved at 60 % and 85 %; EMA 0.999; Kodak24 validation on 8
central 256-px crops; 600 steps took 1121 s on 2 cores shared with other jobs, where one step of
the 48-channel stage on 256-px patches of batch 8 took 5.7 s, 1.5 s of it in the frozen base) and ``gpu`` (the 48-channel, 4-block stage,
HR 512 px, batch 16, 20000 steps, all 24 Kodak24 images). The stage starts as bicubic x2 of the
base's output (its last conv is zero), so the first validation is the cascade
``esrgan-thick-x8+bicubic-x2`` and any gain is the stage's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .loop import Recipe, TrainConfig


@dataclass(frozen=True)
class Options:
    base_asset: str = "esrgan-thick-x8"
    base_path: str = ""  # a converted RRDN .safetensors instead of the asset (tests)
    channels: int = 48
    blocks: int = 4
    lr: float = 2e-4
    milestones: tuple[float, ...] = (0.6, 0.85)  # fractions of the steps where the learning rate halves


class RRDNx16(Recipe):
    method = "rrdn-x16"
    Options = Options
    presets = {
        "cpu": (TrainConfig(scale=16, patch=192, batch=4, steps=600, val_images=8, val_crop=256, ckpt_every=50,
                            val_metrics=("psnr", "ssim", "lpips")), Options(channels=32, blocks=3)),
        "gpu": (TrainConfig(scale=16, patch=512, batch=16, steps=20000, val_every=2000, ckpt_every=1000,
                            log_every=50, val_metrics=("psnr", "ssim", "lpips", "dists")), Options()),
    }

    def __init__(self, cfg: TrainConfig, opts: Options, device: torch.device, **kw: Any):
        super().__init__(cfg, opts, device, **kw)
        from iqa.errors import SrbenchError
        from sr_methods.rrdn_stage import build_stage_network

        if cfg.scale != 16:
            raise SrbenchError(f"rrdn-x16 trains x16 only, the config says x{cfg.scale}")
        self.net = build_stage_network(base_asset=opts.base_asset or None, base_path=opts.base_path or None,
                                       channels=opts.channels, blocks=opts.blocks).to(device)
        if self.net.scale != 16:
            raise SrbenchError(f"the base RRDN is x{self.net.scale // 2}; rrdn-x16 needs an x8 base")
        if self.init is not None:  # start from an earlier rrdn-x16 checkpoint
            from sr_methods.trained import load_network

            net, _, _ = load_network(self.init)
            self.net.stage.load_state_dict(net.stage.state_dict())
        self.opt = torch.optim.Adam(self.net.stage.parameters(), lr=opts.lr, betas=(0.9, 0.99))

    def modules(self):
        return {"stage": self.net.stage}

    def optimizers(self):
        return {"adam": self.opt}

    def generator(self):
        return self.net

    def step(self, lr, hr, k, g, autocast):
        # the learning rate is a function of the step (halved at each milestone passed): a resumed
        # run needs no scheduler state
        rate = self.opts.lr * 0.5 ** sum(k >= int(m * self.cfg.steps) for m in self.opts.milestones)
        for group in self.opt.param_groups:
            group["lr"] = rate
        with torch.no_grad():
            y8 = self.net.base(lr).clamp(0, 1)
        with autocast():
            sr = self.net.upsample_base(y8)
        loss = F.l1_loss(sr.float(), hr)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"l1": loss}

    def export(self, generator_state):
        from sr_methods.rrdn_stage import base_record

        o = self.opts
        tensors = {k: v for k, v in generator_state.items() if not k.startswith("base.")}
        return tensors, {"arch": "rrdn-x2-stage",
                         "arch_options": {"base_asset": o.base_asset if not o.base_path else None,
                                          "base_path": o.base_path or None, "channels": o.channels,
                                          "blocks": o.blocks},
                         "base": base_record(self.net, o.base_asset, o.base_path or None), "backbone": None}
