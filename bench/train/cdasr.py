"""Recipe ``cdasr``: meta-train CDASR's domain-adaptive module (`sr_methods.cdasr.nets.DAM`) in a
frozen RRDN (``esrgan-thick-x8`` at x8, ``rrdn-x16`` at x16) so that a few target LR images adapt
it quickly (`sr_methods.cdasr.method`). Only the DAM trains and ships; the checkpoint names the
base (catalogue name, sha256) and the backbone (name, sha256).

**Tasks** are source domains: the degradations ``tasks`` (bicubic, bdn, dn, realesrgan) of
``<data>/train`` at the scale. Meta-iteration ``k`` picks one task with the step's seeded
generator and degrades the loop's HR patches of batch ``k`` by it (seeded by ``(seed, k, i,
key)``; LR on the uint8 grid), so a resumed run sees the same tasks and LR. The batch splits in
two: the first half is the support set (its LR only), the second the query set (LR and HR).

**One meta-iteration** (``meta``), ``theta`` the DAM's parameters:

- ``"reptile"`` (default): ``phi`` = ``theta`` after ``inner_steps`` (2) steps of the test-time
  adaptation rule on the support LR (a fresh Adam at ``inner_lr``, the LR-only loss
  back-projection + ``w_sem`` semantic consistency: the rule `CDASRMethod.adapt` runs, MAML's
  principle, as in MZSR), then one step of the persistent outer Adam (``outer_lr``) on the
  supervised query loss at ``phi`` (L1 + ``w_percep`` VGG16 perceptual + ``w_sem`` * (1 -
  cos(E(SR), E(HR)))), giving ``phi'``; finally ``theta <- theta + epsilon * (phi' - theta)``
  (``epsilon`` 1.0 keeps ``phi'``). The update thus holds the first-order meta-gradient (the query
  gradient at adapted weights) and Reptile's pull towards weights the inner rule reaches.
- ``"fomaml"``: the same inner loop, then the query loss's gradient at ``phi`` is applied to
  ``theta`` by the outer Adam (first-order MAML).
- ``"none"``: no inner loop: the outer Adam on the supervised loss of the whole batch (the
  ablation: plain supervised training of the DAM).

**Loss weights** (unpublished): ``w_percep`` 0.01 and ``w_sem`` 0.05 put each auxiliary term at
about the size of the L1 term on the cpu-x8 batches (measured at the start: L1 0.05, VGG16
``conv5_3`` perceptual 2.5-4, ``1 - cos`` 0.5-0.8 against HR and 0.35-0.45 against the LR), so
the PSNR-oriented base is not traded for texture; ``inner_lr`` is the test-time ``adapt_lr``.

Learning rates are constant; the inner Adam starts afresh every iteration (as adaptation at test
time does), so a resumed run needs only the DAM and the outer Adam (``state.pt``). The frozen RRDN
body runs once per batch (no gradient); each inner step runs only the DAM, the RRDN's upsampler
(and the x2 stage) and the backbone. EMA is off in the presets: Reptile's interpolation is itself
an average, and the DAM starts as the identity (zero fusion), so an EMA would mostly hold the
untrained start in a run of a few hundred iterations.

**Presets** (``--config``): ``cpu-x8`` / ``cpu-x16``: HR patches 128 / 256 px (LR 16 px), batch 4
(2 support + 2 query), the VGG16 backbone at 224 px, 150 / 100 meta-iterations, validation on 8
Kodak24 central crops of 256 px (bicubic LR). Measured with ``OMP_NUM_THREADS=1`` on a 2-core CPU
shared with other jobs: 3.7-4.5 s per x8 iteration and 5.3-6.8 s per x16 iteration alone
(two inner steps, each a VGG16 forward/backward at 224 px, dominate), so the runs took 678 s and
548 s of training. Kodak24 (8 crops; PSNR-Y / SSIM / LPIPS / DISTS), the unadapted module against
its base (``examples/train/cdasr-base-x8.toml``, ``-x16.toml``: 0 steps, the base exactly):
x8 24.20 / 0.513 / 0.601 / 0.354 against 24.33 / 0.529 / 0.640 / 0.355; x16 22.37 / 0.444 /
0.806 / 0.448 against 22.54 / 0.463 / 0.797 / 0.452. So the meta-trained x8 module trades 0.13
dB for a lower LPIPS before any adaptation; x16's 100 iterations on 16-px LR patches lose on three
of the four figures. A few-shot check at x8 (4 central 256-px crops of Kodak24 images 9-12 to
adapt on, 10 steps with 32-px crops; scored on images 13-16): bdn-x8 PSNR-Y 24.08 (base) / 24.05
(unadapted) / 24.11 (adapted), LPIPS 0.725 / 0.661 / 0.675; x8 24.19 / 24.14 / 24.21, LPIPS 0.715
/ 0.655 / 0.666; at x16 (16-px crops) bdn-x16 22.09 / 22.01 / 22.04, LPIPS 0.833 / 0.817 / 0.816.
``gpu-x8`` / ``gpu-x16``: 20 000 meta-iterations, batch 16, HR 256 / 512, all 24
Kodak24 images (not run here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from iqa.errors import SrbenchError

from .loop import Recipe, TrainConfig

METAS = ("reptile", "fomaml", "none")


@dataclass(frozen=True)
class Options:
    base: str = ""  # "" = by the scale: esrgan-thick-x8 (x8), rrdn-x16 (x16)
    base_path: str = ""  # a converted RRDN .safetensors (x8) or an rrdn-x2-stage checkpoint (x16) instead (tests)
    backbone: str = "vgg16"  # or "clip:MODEL/PRETRAINED", an open_clip config JSON (tests)
    backbone_weights: str = ""  # the backbone's weights (default: found by name)
    embed_size: int = 224  # the LR is resized to this side before the backbone (0: as it is)
    hidden: tuple[int, ...] = (1024, 512)  # the DAM's MLP widths
    tasks: tuple[str, ...] = ("bicubic", "bdn", "dn", "realesrgan")
    meta: str = "reptile"
    inner_steps: int = 2
    inner_lr: float = 1e-4  # = the test-time adapt_lr (the method's default comes from here)
    outer_lr: float = 1e-4
    epsilon: float = 1.0  # Reptile's interpolation towards the adapted-then-supervised weights
    w_percep: float = 0.01
    w_sem: float = 0.05  # semantic consistency, in the inner (LR) and the query (HR) loss alike
    perceptual_layers: tuple[str, ...] = ("conv5_3",)
    perceptual_weights: str = ""  # a VGG16 file (default: the backbone's network when it is VGG16)
    adapt_crop: int = 64  # test-time options recorded for the method (crop in LR px, batch cap)
    adapt_batch: int = 4


def _check(o: Options, cfg: TrainConfig) -> None:
    from bench.run.degradations import FAMILIES

    if o.meta not in METAS:
        raise SrbenchError(f"meta must be one of {', '.join(METAS)}, got {o.meta!r}")
    bad = [t for t in o.tasks if t not in FAMILIES or t == "real"]
    if bad or not o.tasks:
        raise SrbenchError(f"tasks must be some of {', '.join(FAMILIES)}, got {list(o.tasks)}")
    for name in ("inner_steps", "embed_size", "adapt_crop", "adapt_batch"):
        v = getattr(o, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise SrbenchError(f"{name} must be an integer >= 0, got {v!r}")
    for name in ("inner_lr", "outer_lr", "epsilon", "w_percep", "w_sem"):
        v = getattr(o, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise SrbenchError(f"{name} must be a number >= 0, got {v!r}")
    if o.meta != "none" and cfg.batch < 2:
        raise SrbenchError(f"meta {o.meta!r} splits the batch into support and query: batch must be >= 2, "
                           f"got {cfg.batch}")
    if cfg.scale not in (8, 16):
        raise SrbenchError(f"cdasr trains x8 (on esrgan-thick-x8) or x16 (on rrdn-x16), the config says x{cfg.scale}")


def task_key(task: str, scale: int) -> str:
    return f"x{scale}" if task == "bicubic" else f"{task}-x{scale}"


class CDASR(Recipe):
    method = "cdasr"
    Options = Options
    presets: ClassVar[dict[str, tuple[TrainConfig, Options]]] = {}  # filled in below

    def __init__(self, cfg: TrainConfig, opts: Options, device: torch.device, **kw: Any):
        super().__init__(cfg, opts, device, **kw)
        from sr_methods.cdasr.nets import build_cdasr_network

        _check(opts, cfg)
        o = opts
        base = o.base or ("esrgan-thick-x8" if cfg.scale == 8 else "rrdn-x16")
        self.base_name = base
        self.net = build_cdasr_network(base=base, base_path=o.base_path or None, backbone=o.backbone,
                                       backbone_weights=o.backbone_weights or None, embed_size=o.embed_size,
                                       hidden=tuple(o.hidden)).to(device)
        if self.net.scale != cfg.scale:
            raise SrbenchError(f"the CDASR base {o.base_path or base} is x{self.net.scale}, the config trains "
                               f"x{cfg.scale}")
        if self.init is not None:  # continue from an earlier cdasr checkpoint
            from sr_methods.trained import load_network

            net, rec, _ = load_network(self.init)
            if rec.get("arch") != "cdasr":
                raise SrbenchError(f"{self.init} is a {rec.get('arch')} checkpoint, not a cdasr one")
            self.net.dam.load_state_dict(net.dam.state_dict())
        self.percep = self._perceptual() if o.w_percep else None
        self.outer = torch.optim.Adam(self.net.dam.parameters(), lr=o.outer_lr)
        from bench.run.degradations import parse_degradation

        self.degs = [parse_degradation(task_key(t, cfg.scale)) for t in o.tasks]

    def _perceptual(self):
        from iqa.semantic import VGG16Backbone
        from sr_methods.sfd.losses import vgg16_perceptual

        o, bb = self.opts, self.net.backbone
        layers = {name: 1.0 for name in o.perceptual_layers}
        if isinstance(bb, VGG16Backbone) and not o.perceptual_weights:
            return vgg16_perceptual(layers, net=bb.net, device=self.device, provenance={
                "weights": bb.weights, "sha256": bb.sha256, "shared_with": "backbone"})
        return vgg16_perceptual(layers, weights=o.perceptual_weights or None, device=self.device)

    # -- the Recipe interface ----------------------------------------------------------------------------------

    def modules(self) -> dict[str, nn.Module]:
        return {"dam": self.net.dam}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"outer": self.outer}

    def generator(self) -> nn.Module:
        return self.net

    def task_batch(self, lr: torch.Tensor, hr: torch.Tensor, k: int, g: torch.Generator
                   ) -> tuple[str, torch.Tensor, torch.Tensor]:
        """``(task key, hr, lr)`` of meta-iteration ``k``: the task drawn from ``g``, the loop's HR
        patches degraded by it (the loop's LR when it is the config's degradation)."""
        from bench.run.degradations import derive_seed

        deg = self.degs[int(torch.randint(len(self.degs), (1,), generator=g))]
        if deg.key == self.cfg.degradation_key():
            return deg.key, hr, lr
        hrs, lrs = [], []
        for i in range(hr.shape[0]):
            h, low = deg.apply(hr[i:i + 1].cpu(), seed=derive_seed(self.cfg.seed, f"cdasr:{k}:{i}", deg.key))
            hrs.append(h)
            lrs.append((low.clamp(0, 1) * 255).round() / 255)
        return deg.key, torch.cat(hrs).to(self.device), torch.cat(lrs).to(self.device)

    def step(self, lr, hr, k, g, autocast):
        from sr_methods.cdasr.losses import supervised_loss
        from sr_methods.cdasr.method import adaptation_step

        o, net = self.opts, self.net
        _, hr, lr = self.task_batch(lr, hr, k, g)
        gf, f = net.features(lr), net.embedding(lr)
        params = list(net.dam.parameters())
        losses: dict[str, torch.Tensor] = {}
        if o.meta == "none":
            q = slice(0, lr.shape[0])
        else:
            n = lr.shape[0] // 2
            s, q = slice(0, n), slice(n, lr.shape[0])
            theta = [p.detach().clone() for p in params]
            inner = torch.optim.Adam(params, lr=o.inner_lr)
            for _ in range(o.inner_steps):
                a = adaptation_step(net, inner, lr[s], o.w_sem, gf[s], f[s])
            if o.inner_steps:
                losses.update({f"in_{key}": v for key, v in a.items()})
        with autocast():
            sr = net.tail(gf[q], f[q])
        sup = supervised_loss(sr.float(), hr[q], net.backbone, net.embed_size, o.w_percep, o.w_sem, self.percep)
        self.outer.zero_grad(set_to_none=True)
        sup["total"].backward()
        if o.meta == "fomaml":
            with torch.no_grad():
                for p, t in zip(params, theta):
                    p.copy_(t)
        self.outer.step()
        if o.meta == "reptile":
            with torch.no_grad():
                for p, t in zip(params, theta):
                    p.copy_(t + o.epsilon * (p - t))
        losses.update({f"q_{n}": v.detach() for n, v in sup.items()})
        return losses

    def export(self, generator_state):
        o, net = self.opts, self.net
        bb = net.backbone.provenance()
        arch_options = {"base": self.base_name if not o.base_path else "", "base_path": o.base_path or None,
                        "backbone": o.backbone, "backbone_weights": o.backbone_weights or None,
                        "embed_size": o.embed_size, "hidden": list(o.hidden), "base_sha256": net.base_sha256(),
                        "backbone_sha256": bb.get("sha256")}
        tensors = {k: v for k, v in generator_state.items() if k.startswith("dam.")}
        backbone = {**bb, "backbone": "vgg16" if o.backbone.lower() == "vgg16" else bb.get("backbone"),
                    "perceptual": self.percep.provenance() if self.percep is not None else None}
        return tensors, {"arch": "cdasr", "arch_options": arch_options, "base": dict(net.base_record),
                         "backbone": backbone}


# -- presets ------------------------------------------------------------------------------------------------

_METRICS = ("psnr", "ssim", "lpips", "dists")
_CPU: dict[str, Any] = {"batch": 4, "ema": 0.0, "log_every": 5, "ckpt_every": 25, "val_images": 8, "val_crop": 256,
                        "val_metrics": _METRICS}
_GPU: dict[str, Any] = {"batch": 16, "steps": 20_000, "ema": 0.0, "log_every": 50, "ckpt_every": 1000,
                        "val_every": 2000, "val_images": 24, "val_crop": 256, "val_metrics": _METRICS}
CDASR.presets = {
    "cpu-x8": (TrainConfig(scale=8, patch=128, steps=150, **_CPU), Options()),
    "cpu-x16": (TrainConfig(scale=16, patch=256, steps=100, **_CPU), Options()),
    "gpu-x8": (TrainConfig(scale=8, patch=256, **_GPU), Options()),
    "gpu-x16": (TrainConfig(scale=16, patch=512, **_GPU), Options()),
}
CDASR.presets["cpu"] = CDASR.presets["cpu-x8"]
CDASR.presets["gpu"] = CDASR.presets["gpu-x8"]
