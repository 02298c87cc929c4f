"""Recipes ``sfd-sr-vgg16`` and ``sfd-sr-clip``: SFD-SR (Dong et al., CVPR 2025), a perceptual SR
generator trained as a GAN against the two semantic feature discriminators of `iqa.sfd.SFD`
(Feat-D on the frozen backbone's middle feature maps, the prompt/anchor pair on its output
feature), plus L1 and a VGG perceptual loss (`sr_methods.sfd.losses`). The method's name carries
the semantic backbone (``vgg16``: ImageNet VGG16, offline; ``clip``: CLIP ViT-B/16, where its
weights are), and the checkpoint records that backbone's name and sha256, so the report flags
SFD-IQA on the same backbone scoring it as circular.

**What follows which published fact.** The SFD paper publishes the generator (RRDBNet, 64
features, 23 RRDBs, growth 32: `sr_methods.sfd.nets.RRDBNet`), the two discriminators and the loss
terms (L1 + perceptual + adversarial), initialised from a PSNR-oriented network; its loss weights,
schedule and CLIP layers are unpublished. Where it is silent we follow SeD (CVPR 2024, its
predecessor), whose published recipe is: LR patch 64 (HR 256 at x4), batch 8, Adam lr 1e-4 with
betas (0.9, 0.99) for generator and discriminator, 300k steps with the lr halved at 100k and 200k,
loss weights pixel 1.0 / perceptual 1.0 / GAN 0.005 (0.005-0.01 published; we take 0.005), from a
PSNR-oriented RRDB. Every default of `Options` is that recipe; the milestones are fractions of the
GAN steps (1/3, 2/3: SeD's 100k/200k of 300k) so a shorter run keeps their shape. The perceptual
loss is VGG16 ``conv5_3`` before ReLU, not ESRGAN/SeD's VGG19 ``conv5_4`` (VGG19 is not among the
offline assets; see `sr_methods.sfd.losses`). One step is BasicSR's ESRGAN step: the generator
step with the discriminators frozen, then one discriminator step on (HR, detached SR).

**Generators** (``generator``):

- ``"rrdn"``: fine-tune a catalogue PSNR-oriented network: at x4/x8 idealo's RRDN
  ``esrgan-thick-x4``/``-x8`` (7.3 M parameters; ``init_asset``, default by the scale; all its
  weights train and ship as arch ``rrdn``, the asset and its sha256 are the record's ``parent``);
  at x16 the ``rrdn-x16`` network (the x8 RRDN plus a learned x2 stage), initialised from an
  ``rrdn-x16`` checkpoint given with ``--init`` (required). ``x16_trains = "all"`` (default) trains
  the x8 RRDN and the stage together and ships every weight (arch ``rrdn-x2-stage`` owning its
  base, ~15 MB); ``"stage"`` trains only the stage on the frozen base asset and ships the stage
  alone (0.2 MB, naming the base asset's sha256). ``x16_base`` (an srbench x8 ``rrdn``
  checkpoint, e.g. SFD-SR x8) replaces the x8 RRDN under the stage; both parents are recorded.
  Measured on the 8 Kodak24 validation crops of the ``cpu-x16`` preset (800 steps from the shipped
  ``rrdn-x16``: PSNR-Y 22.54, LPIPS 0.797, DISTS 0.452): ``"all"`` 21.44 / 0.837 / 0.444,
  ``"stage"`` 22.41 / 0.819 / 0.459, and SFD-SR x8 under rrdn-x16's stage with no step at all
  22.09 / 0.755 / 0.421. SFD steps on 8-px LR patches do not teach x16 texture in a CPU run (the
  default ``"all"`` at least lowers DISTS), so the shipped ``sfd-sr-vgg16-x16`` is that
  composition (``examples/train/sfd-sr-vgg16-x16.toml``: ``steps = 0``).
- ``"rrdbnet"``: the paper's RRDBNet at x2/x4/x8/x16 (``nf``/``nb``/``gc``), from ``--init`` (an
  srbench ``rrdbnet`` checkpoint), from ``init_path`` (a BasicSR/ESRGAN RRDBNet state dict, e.g.
  ESRGAN's ``RRDB_PSNR_x4.pth``, loaded weights-only), or from scratch with ``psnr_steps`` of
  L1-only pre-training first (ESRGAN's PSNR stage, shortened).

**Discriminators**: a fresh `SFD` with the ``SFDConfig`` fields below, or ``init_sfd``: the
shipped SFD-IQA checkpoint (``"sfd-iqa-vgg16"``) or any SFD checkpoint path on the same backbone
(its own config then applies). Starting from trained discriminators gives the generator a useful
adversarial signal from the first step, which a run of a few hundred CPU steps needs; the cost is
a closer tie to the metric SFD-IQA-vgg16 (already flagged circular by the backbone).

**Presets** (``--config``): ``cpu`` fine-tunes ``esrgan-thick-x4`` for 500 steps, ``cpu-x8``
``esrgan-thick-x8`` for 700, ``cpu-x16`` an ``rrdn-x16`` checkpoint (``--init`` required) for
800: HR patches of 128 px, batch 4, discriminators from the shipped SFD-IQA checkpoint
(``sfd-iqa-vgg16``; ``sfd-sr-clip`` starts them fresh), validation on 8 Kodak24 central crops of
256 px with PSNR, SSIM, LPIPS and DISTS. Measured on 2 CPU cores with nothing else running: 1.8 /
1.3 s per step at x4 / x8 and 1.1 s at x16 with ``x16_trains = "stage"``, so each run is about 15
minutes plus 15 s of set-up and validation (2-3 times longer while another job shares the cores). EMA decay
``1 - 4 / steps`` (0.992, 0.9943, 0.995), not the 0.999 of long runs: the loop's average starts
at the initial weights, and after 500 steps a 0.999 average still holds 0.999^500 = 61 % of them,
so the exported network would be mostly the PSNR-oriented initialisation; with ``decay^steps`` =
2 % the average spans about the last quarter of the run. ``gpu`` (``gpu-x8``, ``gpu-x16``): the
paper's RRDBNet (nb 23) from scratch, HR 256, batch 8: 50k L1 steps (lr 2e-4, halved at 1/3 and
2/3), then 100k GAN steps with SeD's settings (a third of SeD's 300k, milestones at the same
fractions) against fresh discriminators (the paper trains them along with the generator), EMA
0.999, validation every 10k steps on all 24 Kodak24 images. Measured on one H200 (torch 2.11,
bf16, T91 as data, random VGG16 weights: step times do not depend on them): 0.23 s per L1 step and
0.25 s per GAN step (150 steps: 50 L1 then 100 GAN, 38 s), so the whole preset takes about
10.5 hours; the two phases cost nearly the same, so the CPU-side patch sampling (MATLAB bicubic
per patch, no prefetch) bounds the step, not the GPU. With a
PSNR-oriented init (``--init`` or ``init_path``) set ``psnr_steps = 0`` in a config file.

Learning rates are a pure function of the step (no scheduler state), so a resumed run is exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from iqa.errors import SrbenchError

from .loop import Recipe, TrainConfig

GENERATORS = ("rrdn", "rrdbnet")


@dataclass(frozen=True)
class Options:
    # generator
    generator: str = "rrdn"  # "rrdn" (fine-tune esrgan-thick / an rrdn-x16 network) or "rrdbnet" (the paper's)
    x16_trains: str = "all"  # rrdn at x16: "all" (the x8 RRDN and the stage) or "stage" (the stage only)
    x16_base: str = ""  # rrdn at x16: an srbench x8 rrdn checkpoint (e.g. SFD-SR x8) replacing the x8 RRDN
    init_asset: str = ""  # rrdn at x4/x8: "" = esrgan-thick-x{scale}
    init_path: str = ""  # rrdn: a converted RRDN .safetensors instead of the asset; rrdbnet: a BasicSR state dict
    nf: int = 64  # RRDBNet features
    nb: int = 23  # RRDBNet blocks
    gc: int = 32  # RRDBNet growth
    # losses (SeD's published weights)
    pixel_weight: float = 1.0
    perceptual_weight: float = 1.0
    gan_weight: float = 0.005
    perceptual_layers: tuple[str, ...] = ("conv5_3",)  # VGG16, before ReLU, equal weights
    perceptual_weights: str = ""  # a VGG16 weights file (default: found and verified by iqa.weights)
    # optimisers (SeD: Adam 1e-4, betas (0.9, 0.99), lr halved at 1/3 and 2/3 of the GAN steps)
    lr: float = 1e-4
    d_lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.99
    milestones: tuple[float, ...] = (1 / 3, 2 / 3)
    psnr_steps: int = 0  # L1-only steps before the GAN starts (no discriminator step)
    psnr_lr: float = 2e-4
    # discriminators
    backbone: str = ""  # "" = the method's ("vgg16", "clip:ViT-B-16/openai"); a CLIP config JSON path works
    backbone_weights: str = ""  # the backbone's weights file (recorded; default: found by name)
    init_sfd: str = ""  # "" = fresh; "sfd-iqa-vgg16" (the shipped checkpoint) or an SFD checkpoint path
    levels: tuple[str, ...] = ()  # SFDConfig fields for a fresh SFD (init_sfd brings its own)
    feat_width: int = 64
    feat_layers: int = 3
    n_ctx: int = 8
    positive: str = "high quality"
    negative: str = "low quality"
    embedding: str = "auto"


def _check_options(o: Options, scale: int) -> None:
    if o.generator not in GENERATORS:
        raise SrbenchError(f"generator must be one of {', '.join(GENERATORS)}, got {o.generator!r}")
    if o.x16_trains not in ("all", "stage"):
        raise SrbenchError(f"x16_trains must be 'all' or 'stage', got {o.x16_trains!r}")
    for name in ("pixel_weight", "perceptual_weight", "gan_weight", "lr", "d_lr", "psnr_lr"):
        v = getattr(o, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise SrbenchError(f"{name} must be a number >= 0, got {v!r}")
    for name in ("beta1", "beta2"):
        v = getattr(o, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise SrbenchError(f"{name} must be in [0, 1), got {v!r}")
    if any(isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m < 1 for m in o.milestones):
        raise SrbenchError(f"milestones are fractions of the steps in (0, 1), got {list(o.milestones)}")
    if isinstance(o.psnr_steps, bool) or not isinstance(o.psnr_steps, int) or o.psnr_steps < 0:
        raise SrbenchError(f"psnr_steps must be an integer >= 0, got {o.psnr_steps!r}")
    if o.generator == "rrdbnet" and scale not in (2, 4, 8, 16):
        raise SrbenchError(f"RRDBNet upsamples by x2 stages: scale 2, 4, 8 or 16, the config says x{scale}")
    if o.generator == "rrdn" and scale not in (4, 8, 16):
        raise SrbenchError(f"generator rrdn fine-tunes esrgan-thick-x4/-x8 or the rrdn-x16 stage: scale 4, 8 or 16, "
                           f"the config says x{scale} (generator = \"rrdbnet\" trains x2)")


def _milestone_rate(base: float, j: int, n: int, milestones: tuple[float, ...]) -> float:
    """``base`` halved at each milestone (a fraction of ``n`` steps) that step ``j`` has passed."""
    return base * 0.5 ** sum(j >= round(m * n) for m in milestones)


class SFDSR(Recipe):
    """SFD-SR on one semantic backbone (subclasses name it); see the module docstring."""

    method = "sfd-sr"
    backbone_name = "vgg16"
    Options = Options
    presets: ClassVar[dict[str, tuple[TrainConfig, Options]]] = {}

    def __init__(self, cfg: TrainConfig, opts: Options, device: torch.device, **kw: Any):
        super().__init__(cfg, opts, device, **kw)
        _check_options(opts, cfg.scale)
        self._parent: dict[str, Any] | None = None
        self._x16_base: dict[str, Any] | None = None
        self._export_base: dict[str, Any] | None = None
        self.net, self.trainable = self._build_generator()
        self.net.to(device)
        self.sfd = self._build_discriminators().to(device)
        self.percep = self._build_perceptual()
        o = self.opts
        self.g_opt = torch.optim.Adam(self.trainable.parameters(), lr=o.lr, betas=(o.beta1, o.beta2))
        self.d_opt = torch.optim.Adam(self._d_params(), lr=o.d_lr, betas=(o.beta1, o.beta2))

    # -- building ------------------------------------------------------------------------------------------

    def _build_generator(self) -> tuple[nn.Module, nn.Module]:
        """``(the LR -> SR network, its trained part)``."""
        from sr_methods.trained import load_network

        o, scale = self.opts, self.cfg.scale
        if o.generator == "rrdn" and scale == 16:
            if self.init is None:
                raise SrbenchError("sfd-sr at x16 fine-tunes the x2 stage of an rrdn-x16 checkpoint: train one "
                                   "(`srbench train rrdn-x16 --config cpu --out DIR`) and pass "
                                   "--init DIR/model.safetensors")
            net, rec, _ = load_network(self.init)
            if rec.get("arch") != "rrdn-x2-stage" or int(rec.get("scale", 0)) != 16:
                raise SrbenchError(f"{self.init} is a {rec.get('arch')} x{rec.get('scale')} checkpoint; x16 needs an "
                                   "rrdn-x16 one (arch rrdn-x2-stage)")
            if o.x16_trains == "stage" and not o.x16_base:
                net.requires_grad_(False)
                net.stage.requires_grad_(True)
                self._export_base = {"arch_options": rec["arch_options"], "base": rec.get("base")}
                return net.train(), net.stage
            # a copy that owns its base (the init's, or x16_base's), every weight shipped
            from sr_methods.rrdn_stage import build_stage_network

            base = net.base
            if o.x16_base:
                base, base_rec, base_sha = load_network(o.x16_base)
                if base_rec.get("arch") != "rrdn" or int(base_rec.get("scale", 0)) != 8:
                    raise SrbenchError(f"x16_base {o.x16_base} is a {base_rec.get('arch')} x{base_rec.get('scale')} "
                                       "checkpoint; it must be an x8 rrdn one (e.g. SFD-SR x8)")
                self._x16_base = {"path": str(Path(o.x16_base).resolve()), "sha256": base_sha,
                                  "method": base_rec.get("method")}
            opts = {"base_config": base.config.to_dict(), "channels": rec["arch_options"].get("channels", 48),
                    "blocks": rec["arch_options"].get("blocks", 4)}
            whole = build_stage_network(**opts)
            whole.stage.load_state_dict(net.stage.state_dict(), strict=True)
            whole.base.load_state_dict(base.state_dict(), strict=True)
            self._export_base = {"arch_options": opts, "base": None}
            if o.x16_trains == "stage":  # the stage trains on the frozen x16_base
                whole.requires_grad_(False)
                whole.stage.requires_grad_(True)
                return whole.train(), whole.stage
            return whole.requires_grad_(True).train(), whole
        if self.init is not None:  # an earlier srbench checkpoint of the same architecture
            net, rec, _ = load_network(self.init)
            want = "rrdn" if o.generator == "rrdn" else "rrdbnet"
            if rec.get("arch") != want or int(rec.get("scale", 0)) != scale:
                raise SrbenchError(f"{self.init} is a {rec.get('arch')} x{rec.get('scale')} checkpoint; generator "
                                   f"{o.generator} at x{scale} needs a {want} x{scale} one")
            net.requires_grad_(True)
            return net.train(), net
        if o.generator == "rrdn":
            from sr_methods.rrdn import load_rrdn

            if o.init_path:
                model, sha, _ = load_rrdn(o.init_path)
                self._parent = {"path": str(Path(o.init_path).resolve()), "sha256": sha, "verified": False}
            else:
                from iqa.assets import ASSETS
                from sr_methods.catalogue import register_assets

                register_assets()
                name = o.init_asset or f"esrgan-thick-x{scale}"
                path = ASSETS.require(name)
                model, sha, _ = load_rrdn(path, ASSETS.get(name).sha256,
                                          fix=f"run `srbench assets fetch {name} --force`")
                self._parent = {"asset": name, "path": str(path), "sha256": sha}
            if model.scale != scale:
                raise SrbenchError(f"the initial RRDN is x{model.scale}, the config trains x{scale}")
            return model.requires_grad_(True).train(), model
        from sr_methods.sfd.nets import RRDBNet, load_rrdbnet_state

        net = RRDBNet(nf=o.nf, nb=o.nb, gc=o.gc, scale=scale)
        if o.init_path:
            from iqa.assets import load_state_dict

            sd, sha = load_state_dict(o.init_path)
            load_rrdbnet_state(net, sd, str(o.init_path))
            self._parent = {"path": str(Path(o.init_path).resolve()), "sha256": sha, "verified": False}
        elif not o.psnr_steps:
            self.echo("!! sfd-sr: RRDBNet from scratch straight into the GAN (psnr_steps = 0, no --init/init_path); "
                      "the paper starts from a PSNR-oriented network")
        return net.train(), net

    def _backbone_spec(self) -> str:
        """The backbone to build; it must be of the method's kind, whose name carries it."""
        spec = self.opts.backbone or self.backbone_name
        if (spec.lower() == "vgg16") != (self.backbone_name == "vgg16"):
            raise SrbenchError(f"{self.method} trains against a {self.backbone_name.split(':')[0]} backbone, "
                               f"not {spec!r} (use sfd-sr-{'vgg16' if spec.lower() == 'vgg16' else 'clip'})")
        return spec

    def _build_discriminators(self):
        from iqa.semantic import build_backbone
        from iqa.sfd import SFD, SFDConfig, load_sfd

        o = self.opts
        spec = self._backbone_spec()
        kw: dict[str, Any] = {"weights": o.backbone_weights or None}
        if spec.lower().endswith(".json"):
            kw["pretrained"] = None
        bb = build_backbone(spec, **kw)
        if o.init_sfd:
            path = self._sfd_path(o.init_sfd)
            from iqa.assets import file_sha256

            sfd, _ = load_sfd(path, backbone=bb)
            self._sfd_init = {"path": str(path), "sha256": file_sha256(path)}
        else:
            cfg = SFDConfig(backbone=spec, levels=tuple(o.levels), feat_width=o.feat_width, feat_layers=o.feat_layers,
                            n_ctx=o.n_ctx, positive=o.positive, negative=o.negative, embedding=o.embedding)
            sfd = SFD(cfg, bb)
            self._sfd_init = None
        sfd.featd.requires_grad_(True)
        sfd.lpp.requires_grad_(True)
        return sfd.train()

    @staticmethod
    def _sfd_path(name: str) -> Path:
        from iqa.sfd import SHIPPED_SHA256, SHIPPED_VGG16

        if name == "sfd-iqa-vgg16":
            from iqa.assets import file_sha256

            actual = file_sha256(SHIPPED_VGG16) if SHIPPED_VGG16.is_file() else "none (the file is missing)"
            if actual != SHIPPED_SHA256:
                raise SrbenchError(f"sha256 mismatch for the shipped SFD-IQA checkpoint {SHIPPED_VGG16}: expected "
                                   f"{SHIPPED_SHA256}, got {actual} (reinstall srbench)")
            return SHIPPED_VGG16
        return Path(name)

    def _build_perceptual(self):
        from iqa.semantic import VGG16Backbone
        from sr_methods.sfd.losses import vgg16_perceptual

        o = self.opts
        layers = {name: 1.0 for name in o.perceptual_layers}
        bb = self.sfd.backbone
        if isinstance(bb, VGG16Backbone) and not o.perceptual_weights:
            # the discriminators' frozen VGG16 serves the perceptual loss too: one network, one file
            return vgg16_perceptual(layers, net=bb.net, device=self.device, provenance={
                "weights": bb.weights, "sha256": bb.sha256, "shared_with": "backbone"})
        return vgg16_perceptual(layers, weights=o.perceptual_weights or None, device=self.device)

    def _d_params(self) -> list[nn.Parameter]:
        return [*self.sfd.featd.parameters(), *self.sfd.lpp.parameters()]

    # -- the Recipe interface ----------------------------------------------------------------------------------

    def modules(self):
        return {"generator": self.trainable, "featd": self.sfd.featd, "lpp": self.sfd.lpp}

    def optimizers(self):
        return {"adam_g": self.g_opt, "adam_d": self.d_opt}

    def generator(self):
        return self.net

    def parent(self):
        parent = super().parent() if self.init is not None else self._parent
        if self._x16_base is not None:  # x16 on another x8 network: both lineages are recorded
            parent = {**(parent or {}), "x16_base": self._x16_base}
        return parent

    def rates(self, k: int) -> tuple[float, bool]:
        """``(generator lr, GAN phase?)`` at step ``k``: a pure function of the step."""
        o, n = self.opts, self.cfg.steps
        if k < o.psnr_steps:
            return _milestone_rate(o.psnr_lr, k, min(o.psnr_steps, n), o.milestones), False
        return _milestone_rate(o.lr, k - o.psnr_steps, max(n - o.psnr_steps, 1), o.milestones), True

    def _forward(self, lr: torch.Tensor) -> torch.Tensor:
        if self.trainable is self.net:
            return self.net(lr)
        with torch.no_grad():  # x16: the frozen x8 base, then the trained stage
            y = self.net.base(lr).clamp(0, 1)
        return self.net.upsample_base(y)

    def step(self, lr, hr, k, g, autocast):
        from sr_methods.sfd.losses import (
            discriminator_loss,
            generator_adversarial_loss,
            pixel_loss,
        )

        o = self.opts
        rate, gan = self.rates(k)
        for group in self.g_opt.param_groups:
            group["lr"] = rate
        d_rate = _milestone_rate(o.d_lr, k - o.psnr_steps, max(self.cfg.steps - o.psnr_steps, 1), o.milestones)
        for group in self.d_opt.param_groups:
            group["lr"] = d_rate
        d_params = self._d_params()
        for p in d_params:  # the generator step must not touch the discriminators
            p.requires_grad_(False)
        with autocast():
            sr = self._forward(lr)
        sr = sr.float()
        losses = {"pix": pixel_loss(sr, hr)}
        total = o.pixel_weight * losses["pix"]
        if gan:
            with autocast():
                if o.perceptual_weight:
                    losses["percep"] = self.percep(sr, hr).float()
                    total = total + o.perceptual_weight * losses["percep"]
                if o.gan_weight:
                    losses["g_gan"] = generator_adversarial_loss(self.sfd, sr).float()
                    total = total + o.gan_weight * losses["g_gan"]
        losses["g_total"] = total
        self.g_opt.zero_grad(set_to_none=True)
        total.backward()
        self.g_opt.step()
        for p in d_params:
            p.requires_grad_(True)
        if gan:
            with autocast():
                d = discriminator_loss(self.sfd, hr, sr.detach())
            self.d_opt.zero_grad(set_to_none=True)
            d["total"].float().backward()
            self.d_opt.step()
            losses.update({"d_featd": d["featd"], "d_lpp": d["lpp"], "d_total": d["total"]})
        return losses

    def export(self, generator_state):
        bb = {**self.sfd.backbone.provenance(), "sfd_config": asdict(self.sfd.config), "sfd_init": self._sfd_init,
              "perceptual": self.percep.provenance()}
        if self._export_base is not None:  # x16: the stage (with its base's record) or the whole network
            own = self._export_base["base"] is None
            tensors = {k: v for k, v in generator_state.items() if own or not k.startswith("base.")}
            return tensors, {"arch": "rrdn-x2-stage", **self._export_base, "backbone": bb}
        if self.opts.generator == "rrdn":
            return dict(generator_state), {"arch": "rrdn", "arch_options": self.net.config.to_dict(), "base": None,
                                           "backbone": bb}
        return dict(generator_state), {"arch": "rrdbnet", "arch_options": dict(self.net.options), "base": None,
                                       "backbone": bb}


# -- presets ------------------------------------------------------------------------------------------------

_METRICS = ("psnr", "ssim", "lpips", "dists")
_CPU_VAL: dict[str, Any] = {"val_images": 8, "val_crop": 256, "val_metrics": _METRICS}
_GPU: dict[str, Any] = {"patch": 256, "batch": 8, "steps": 150_000, "ema": 0.999, "log_every": 100,
                        "ckpt_every": 2000, "val_every": 10_000, "val_images": 24, "val_crop": 256,
                        "val_metrics": _METRICS}
_GPU_OPTS: dict[str, Any] = {"generator": "rrdbnet", "psnr_steps": 50_000, "psnr_lr": 2e-4}


def _cpu(scale: int, steps: int) -> TrainConfig:
    # EMA decay with decay^steps ~ 2 %: the average spans about the last quarter of the run
    return TrainConfig(scale=scale, patch=128, batch=4, steps=steps, ema=round(1 - 4 / steps, 4), log_every=5,
                       ckpt_every=25, **_CPU_VAL)


def _presets(init_sfd: str) -> dict[str, tuple[TrainConfig, Options]]:
    cpu = Options(init_sfd=init_sfd)
    gpu = Options(**_GPU_OPTS)  # long runs train the discriminators from scratch, as the paper does
    return {"cpu": (_cpu(4, 500), cpu), "cpu-x8": (_cpu(8, 700), cpu), "cpu-x16": (_cpu(16, 800), cpu),
            "gpu": (TrainConfig(scale=4, **_GPU), gpu), "gpu-x8": (TrainConfig(scale=8, **_GPU), gpu),
            "gpu-x16": (TrainConfig(scale=16, **_GPU), gpu)}


class SFDSRVGG16(SFDSR):
    """SFD-SR on ImageNet VGG16 (offline); discriminators start from the shipped SFD-IQA checkpoint."""

    method = "sfd-sr-vgg16"
    backbone_name = "vgg16"
    presets = _presets("sfd-iqa-vgg16")


class SFDSRClip(SFDSR):
    """SFD-SR on CLIP ViT-B/16 (OpenAI weights); fresh discriminators unless ``init_sfd`` names a
    CLIP SFD checkpoint (``srbench iqa train sfd --backbone clip:ViT-B-16/openai``)."""

    method = "sfd-sr-clip"
    backbone_name = "clip:ViT-B-16/openai"
    presets = _presets("")
