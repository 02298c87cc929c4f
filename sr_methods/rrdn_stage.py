"""A learned x2 stage on a frozen RRDN: ``esrgan-thick-x8`` plus this stage is an x16 network.

    y8  = base(lr)                                        the catalogue RRDN, frozen (x8)
    y16 = bicubic_x2(y8) + tail(shuffle_x2(body(head(y8))))

``head``: conv 3x3 3 -> C; ``body``: ``blocks`` residual blocks (conv, ReLU, conv, + input);
``tail``: conv 3x3 C -> 4C, pixel shuffle x2, conv 3x3 C -> 3, initialised to zero so the stage
starts as bicubic x2 of the base's output and learns a correction. Usually only the stage's
layers are trained and shipped; the checkpoint names the base asset and its sha256, and loading
refuses a base file with another hash. A network built from ``base_config`` instead owns its
base: the base trains with the stage and the checkpoint holds every weight (SFD-SR at x16).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from iqa.errors import SrbenchError


class X2Stage(nn.Module):
    """The trainable part: RGB (B, 3, H, W) -> residual over bicubic x2 (B, 3, 2H, 2W)."""

    def __init__(self, channels: int = 48, blocks: int = 4):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.ModuleList(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                                nn.Conv2d(channels, channels, 3, padding=1)) for _ in range(blocks))
        self.up = nn.Conv2d(channels, 4 * channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        h = f
        for block in self.body:
            h = h + block(h)
        h = F.pixel_shuffle(self.up(h + f), 2)
        return self.tail(F.leaky_relu(h, 0.2))


class StagedRRDN(nn.Module):
    """``base`` (frozen, unless ``own_base``) then `X2Stage`: scale = 2 x the base's scale."""

    def __init__(self, base: nn.Module, base_sha256: str | None, channels: int = 48, blocks: int = 4,
                 own_base: bool = False):
        super().__init__()
        self.own_base = own_base
        self.base = base if own_base else base.eval().requires_grad_(False)
        self._base_sha256 = base_sha256
        self.stage = X2Stage(channels, blocks)
        self.scale = 2 * int(base.scale)

    def train(self, mode: bool = True) -> "StagedRRDN":
        super().train(mode)
        if not self.own_base:
            self.base.eval()  # the base is frozen: always in eval mode
        return self

    def frozen_keys(self) -> set[str]:
        return set() if self.own_base else {f"base.{k}" for k in self.base.state_dict()}

    def base_sha256(self) -> str | None:
        return self._base_sha256

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("base.")}

    def upsample_base(self, y: torch.Tensor) -> torch.Tensor:
        """The stage on the base's output ``y``: bicubic x2 plus the learned residual."""
        return F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False) + self.stage(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(self.own_base and torch.is_grad_enabled()):
            y = self.base(x).clamp(0, 1)
        return self.upsample_base(y)


def build_stage_network(*, base_asset: str | None = "esrgan-thick-x8", base_path: str | None = None,
                        base_config: dict[str, Any] | None = None, channels: int = 48,
                        blocks: int = 4) -> StagedRRDN:
    """The x2 stage on the RRDN of ``base_asset`` (a catalogue asset, verified) or of ``base_path``
    (a converted RRDN ``.safetensors``; tests use a tiny one); with ``base_config`` (an
    ``RRDNConfig`` dict) on a base of its own, randomly initialised, whose weights come with the
    stage's (trained together, shipped together)."""
    from .rrdn import RRDN, RRDNConfig, load_rrdn

    if base_config is not None:
        return StagedRRDN(RRDN(RRDNConfig.from_dict(dict(base_config))), None, channels, blocks, own_base=True)
    if base_path:
        model, sha, _ = load_rrdn(base_path)
    elif base_asset:
        from iqa.assets import ASSETS

        from .catalogue import register_assets

        register_assets()
        path = ASSETS.require(base_asset)
        model, sha, _ = load_rrdn(path, ASSETS.get(base_asset).sha256,
                                  fix=f"run `srbench assets fetch {base_asset} --force`")
    else:
        raise SrbenchError("the x2 stage needs a base RRDN: base_asset or base_path")
    return StagedRRDN(model, sha, channels, blocks)


def base_record(net: StagedRRDN, base_asset: str | None, base_path: str | os.PathLike[str] | None) -> dict[str, Any]:
    return {"asset": base_asset if not base_path else None,
            "path": str(Path(base_path).resolve()) if base_path else None, "sha256": net.base_sha256()}
