"""CDASR as an SR method: a frozen RRDN base with a meta-trained domain-adaptive module
(`sr_methods.cdasr.nets`), which adapts to a target domain from a few of its LR images.

Test-time adaptation (the benchmark never gives a target HR image, so the loss uses target LR
only; `sr_methods.cdasr.losses.adaptation_loss`): back-projection ``L1(down(SR), LR)`` (SR
downscaled by the scale with MATLAB's bicubic, `iqa.resize.imresize` in its differentiable float
mode) plus ``w_sem * (1 - cos(E(SR), E(LR)))``. Only the DAM's parameters adapt; the base and the
backbone stay frozen. Adam (``adapt_lr``, 1e-4), each step a batch of ``min(k, batch)`` (4)
random ``crop x crop`` LR crops (64; the largest square every target image allows when one is
smaller) of distinct target images with a random flip/quarter turn, drawn from a generator seeded
by ``seed``; exactly ``steps`` steps and the last weights kept (no selection of any kind).

The defaults of ``adapt_lr``, ``crop`` and ``w_sem`` are those the checkpoint was meta-trained
with (its record's config): meta-training's inner loop runs this very rule, so the learned
initialisation is good for it (MAML's principle); the factory's options override them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iqa.errors import SrbenchError

from ..adapt import AdaptiveMethod, check_adapt_inputs
from .losses import adaptation_loss
from .nets import CDASRNet

__all__ = ["CDASRMethod", "adaptation_step", "build", "clone_net", "random_crops"]


def clone_net(net: CDASRNet) -> CDASRNet:
    """A `CDASRNet` sharing ``net``'s frozen parts (base, backbone) with a copy of its DAM."""
    new = CDASRNet.__new__(CDASRNet)
    torch.nn.Module.__init__(new)
    new._frozen = net._frozen
    new.embed_size, new.scale, new.base_record = net.embed_size, net.scale, dict(net.base_record)
    new.dam = copy.deepcopy(net.dam)
    return new


def adaptation_step(net: CDASRNet, opt: torch.optim.Optimizer, lr: torch.Tensor, w_sem: float,
                    g: torch.Tensor | None = None, f: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """One step of the LR-only adaptation loss on ``lr (B, 3, h, w)`` (``g``, ``f``: its frozen
    features and unit embedding, computed when None). Used at test time and by meta-training's
    inner loop alike."""
    g = net.features(lr) if g is None else g
    f = net.embedding(lr) if f is None else f
    with torch.enable_grad():
        losses = adaptation_loss(net.tail(g, f), lr, net.scale, net.backbone, net.embed_size, w_sem, lr_embedding=f)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
    opt.step()
    return {k: v.detach() for k, v in losses.items()}


def random_crops(images: list[torch.Tensor], crop: int, batch: int, rng: np.random.Generator) -> torch.Tensor:
    """``batch`` crops ``(batch, 3, crop, crop)``, each of a distinct image (when there are enough)
    at a random corner, with a random quarter turn and flip."""
    idx = rng.choice(len(images), size=batch, replace=len(images) < batch)
    out = []
    for i in idx:
        x = images[int(i)][0]
        h, w = x.shape[-2:]
        t, l = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        x = torch.rot90(x[:, t:t + crop, l:l + crop], int(rng.integers(4)), dims=(-2, -1))
        out.append(x.flip(-1) if rng.integers(2) else x)
    return torch.stack(out)


class CDASRMethod(AdaptiveMethod):
    """The CDASR network behind the `SRMethod` contract, adaptive (see the module doc).

    ``net``: a `CDASRNet`; ``record``/``path``/``sha256``: its checkpoint (provenance); the
    adaptation options; ``tile``: run on LR tiles (every tile under the whole image's embedding).
    """

    def __init__(self, net: CDASRNet, *, name: str = "cdasr", backbone: str = "vgg16",
                 record: dict[str, Any] | None = None, path: str | None = None, sha256: str | None = None,
                 verified: bool = False, adapt_lr: float = 1e-4, crop: int = 64, w_sem: float = 0.05,
                 batch: int = 4, tile: int | None = None, tile_overlap: int | None = None,
                 tile_blend: str = "crop", adaptation: dict[str, Any] | None = None):
        super().__init__()
        from ..tiling import check_tile_options

        if not isinstance(net, CDASRNet):
            raise SrbenchError(f"{name}: net must be a CDASRNet, got {type(net).__name__}")
        for key, v, low in (("crop", crop, 4), ("batch", batch, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise SrbenchError(f"{name}: option {key} must be an integer >= {low}, got {v!r}")
        for key, v in (("adapt_lr", adapt_lr), ("w_sem", w_sem)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise SrbenchError(f"{name}: option {key} must be a number >= 0, got {v!r}")
        self.net = net.eval()
        self.name, self.backbone, self.scales = name, backbone, (net.scale,)
        self.record, self.path, self.sha256, self.verified = dict(record or {}), path, sha256, verified
        self.opts = {"adapt_lr": float(adapt_lr), "crop": crop, "w_sem": float(w_sem), "batch": batch}
        self.tile, self.tile_overlap = check_tile_options(tile, tile_overlap, tile_blend)
        self.tile_blend = tile_blend
        self.adaptation = adaptation
        self.device = next(net.dam.parameters()).device

    # -- SRMethod ------------------------------------------------------------------------------------
    def _upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        from ..tiling import tiled_upscale

        x = lr.to(self.device, torch.float32)
        f = self.net.embedding(x)
        if self.tile:
            return tiled_upscale(lambda t: self.net(t, f), x, scale, self.tile, self.tile_overlap,
                                 blend=self.tile_blend)
        return self.net(x, f)

    def to(self, device: Any) -> CDASRMethod:
        super().to(device)
        self.net.to(self.device)
        return self

    def provenance(self) -> dict[str, Any]:
        from iqa.assets import file_record

        rec = {k: self.record.get(k) for k in ("method", "arch", "arch_options", "scale", "parent", "validation")}
        return {**super().provenance(), "kind": "cdasr", **rec, "base": self.net.base_record,
                "backbone_record": self.record.get("backbone") or self.net.backbone.provenance(),
                "weights": file_record(self.path, self.sha256, verified=self.verified) if self.path else None,
                "dam_params": sum(p.numel() for p in self.net.dam.parameters()), "options": dict(self.opts),
                "adapted": self.adaptation}

    # -- adaptation ------------------------------------------------------------------------------------
    def _with_net(self, net: CDASRNet, adaptation: dict[str, Any] | None) -> CDASRMethod:
        new = CDASRMethod.__new__(CDASRMethod)
        new.__dict__.update(self.__dict__)
        new.net, new.adaptation, new.opts = net.eval(), adaptation, dict(self.opts)
        return new

    def adapted_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", torch.float32).clone() for k, v in self.net.dam.state_dict().items()}

    def with_state(self, state: dict[str, torch.Tensor]) -> CDASRMethod:
        net = clone_net(self.net)
        ours = net.dam.state_dict()
        if set(state) != set(ours) or any(tuple(state[k].shape) != tuple(ours[k].shape) for k in ours):
            raise SrbenchError(f"{self.name}: the adapted state does not fit the DAM ({len(state)} tensors given, "
                               f"{len(ours)} expected)")
        net.dam.load_state_dict({k: v.to(ours[k].device, ours[k].dtype) for k, v in state.items()})
        return self._with_net(net, {"restored": True})

    def adapt(self, lr_images: list[torch.Tensor], *, steps: int, seed: int, data_root: Any = None,
              source: Any = None, echo: Callable[[str], None] = print) -> CDASRMethod:
        """A copy whose DAM took ``steps`` adaptation steps on ``lr_images`` (``data_root`` and
        ``source`` are not used: CDASR adapts on the target LR alone)."""
        check_adapt_inputs(self.name, lr_images, steps, seed)
        o = self.opts
        crop = min([o["crop"]] + [d for x in lr_images for d in x.shape[-2:]])
        if crop < 4:
            raise SrbenchError(f"{self.name}: the target LR images are too small to adapt on ({crop} px)")
        net = clone_net(self.net)
        net.dam.requires_grad_(True)  # a loaded checkpoint's network comes frozen
        batch = min(len(lr_images), o["batch"])
        images = [x.detach().to(self.device, torch.float32).clone() for x in lr_images]
        opt = torch.optim.Adam(net.dam.parameters(), lr=o["adapt_lr"])
        rng = np.random.default_rng([seed, 0xCDA5])
        t0, first, last = time.monotonic(), None, None
        net.train()
        for k in range(steps):
            losses = adaptation_step(net, opt, random_crops(images, crop, batch, rng), o["w_sem"])
            last = float(losses["total"])
            first = last if first is None else first
            if (k + 1) % max(1, steps // 5) == 0 or k + 1 == steps:
                echo(f"   {self.name}: adaptation step {k + 1}/{steps}  loss {last:.5f}  {time.monotonic() - t0:.0f} s")
        return self._with_net(net, {"steps": steps, "seed": seed, "images": len(lr_images), "crop": crop,
                                    "batch": batch, "loss_first": first, "loss_last": last})


# -- factory -------------------------------------------------------------------------------------------------

def _method_options(record: dict[str, Any], **given: Any) -> dict[str, Any]:
    """The adaptation options: those given, else the checkpoint's training config, else the defaults."""
    trained = ((record.get("config") or {}).get("method") or {})
    defaults = {"adapt_lr": trained.get("inner_lr", 1e-4), "crop": trained.get("adapt_crop", 64),
                "w_sem": trained.get("w_sem", 0.05), "batch": trained.get("adapt_batch", 4)}
    return {k: (given[k] if given.get(k) is not None else v) for k, v in defaults.items()}


def load_method(path: str | Path, *, name: str, verified: bool = False, **options: Any) -> CDASRMethod:
    """A `CDASRMethod` from a ``cdasr`` checkpoint of `srbench train cdasr`."""
    from ..trained import load_network, read_record

    rec = read_record(path)
    if rec.get("arch") != "cdasr":
        raise SrbenchError(f"{path} is a {rec.get('method')!r} checkpoint of arch {rec.get('arch')!r}, not a CDASR one")
    net, rec, sha = load_network(path)
    tile = {k: options.pop(k) for k in ("tile", "tile_overlap", "tile_blend") if k in options}
    backbone = (rec.get("backbone") or {}).get("backbone") or "vgg16"
    return CDASRMethod(net, name=name, backbone=backbone, record=rec, path=str(Path(path).resolve()), sha256=sha,
                       verified=verified, **_method_options(rec, **options), **tile)


def build(*, entry: Any, weights: str | None = None, adapt_lr: float | None = None, crop: int | None = None,
          w_sem: float | None = None, batch: int | None = None, tile: int | None = None,
          tile_overlap: int | None = None, tile_blend: str = "crop") -> CDASRMethod:
    """Catalogue factory: the checkpoint shipped in ``sr_methods/data`` (``entry.meta["file"]``,
    verified against ``entry.meta["sha256"]``) or ``weights=PATH`` (recorded, not verified)."""
    from iqa.assets import file_sha256

    m = entry.meta
    path = Path(weights).expanduser() if weights else Path(__file__).resolve().parent.parent / "data" / m["file"]
    if not weights:
        if not m.get("sha256") or not path.is_file():
            raise SrbenchError(f"{entry.name}: its checkpoint {path.name} is not shipped yet; train one "
                               f"(`srbench train cdasr --config cpu-x{m['scales'][0]} --out DIR`) and pass "
                               f"weights=DIR/model.safetensors")
        actual = file_sha256(path)
        if actual != m["sha256"]:
            raise SrbenchError(f"{path}: the checkpoint shipped with srbench has sha256 {actual}, expected "
                               f"{m['sha256']}; reinstall srbench (or pass weights=PATH)")
    elif not path.is_file():
        raise SrbenchError(f"{entry.name}: weights file not found: {path}")
    method = load_method(path, name=entry.name, verified=not weights, adapt_lr=adapt_lr, crop=crop, w_sem=w_sem,
                         batch=batch, tile=tile, tile_overlap=tile_overlap, tile_blend=tile_blend)
    if m.get("scales") and method.scales != tuple(m["scales"]):
        raise SrbenchError(f"{path} is an x{method.scales[0]} CDASR checkpoint; {entry.name} is x{m['scales'][0]}")
    if m.get("backbone") and method.backbone != m["backbone"]:
        raise SrbenchError(f"{path} is a CDASR checkpoint on the {method.backbone} backbone; {entry.name} runs "
                           f"{m['backbone']} ones (cdasr:PATH runs any, unadapted)")
    return method
