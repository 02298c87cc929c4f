"""Recipe ``deplsr-adaptor``: train DePLSR's degradation adaptor (`sr_methods.deplsr.adaptor`) with
the SigLIP objective of `sr_methods.deplsr.losses.adaptor_loss` on LQ images made on the fly from
the HR patches of ``<data>/train`` by DePLSR's own sampler (`sr_methods.deplsr.degradations`).

**Variants** (``backbone``):

- ``"vgg16"`` (default; offline, ``deplsr-vgg16-param``): the frozen ImageNet VGG16 gives the
  content embedding; the trainable conv head on its early maps gives the degradation embeddings;
  the "texts" are the parameter vectors through the learned `ParamTextEncoder`. No caption encoder,
  so the loss is ``(0.3 degradation + 0.5 fine) / 0.8`` (no content term).
- ``"clip:MODEL/PRETRAINED"`` or an open_clip config JSON (tests) with ``backbone_weights``: the
  paper's DA-CLIP-style adaptor; texts through the frozen CLIP text tower. **The content-vs-caption
  term is not wired yet**: the loop's `PatchSampler` does not say which image a patch comes from,
  and the recipe does not see the data root, so the captions of ``train/coco`` / ``train/celeba_mm``
  (``captions.jsonl``) cannot be matched to the patches here; the CLIP variant therefore trains
  with the same renormalised two-term loss as the offline one (recorded as ``content_term: false``).

**One step.** The loop gives batch ``k`` of HR patches (``patch`` px; the loop's own LR, made by
``degradation``, is not used: the presets set the cheap ``bicubic`` so it costs little). With the
step's seeded generator ``g``, patch by patch: optionally a random square crop of side in
``[min_crop, patch]`` (``min_crop`` 0: the whole patch, so the resize slot is always ``patch ->
lq_size``), then `degradations.degrade` (``lq_size`` px LQ; every random number from ``g``), then
the LQ is rounded to the uint8 grid (as a stored LQ image would be). The adaptor runs on the LQ
batch, the texts/vectors of the drawn parameters are encoded, and ``adaptor_loss`` is minimised
by AdamW. The same ``(seed, k)`` gives the same LQ and texts, so a resumed run is exact.

**Optimiser.** AdamW, betas (0.9, 0.98), weight decay 0.05 on the weight matrices/kernels only
(biases, ``logit_scale``, ``logit_bias`` and LayerNorm gains undecayed, open_clip's practice),
constant lr. DA-CLIP fine-tunes its ViT copy with AdamW lr 2e-5, wd 0.05 at batch 784; that is a
fine-tuning rate for a pretrained copy over many steps. The offline adaptor's head, fine layer and
text MLPs start from scratch and the CPU preset has 400 steps of batch 8, so its lr is
3e-4 (an Adam step moves each weight by about lr, so ~0.1 over the run: enough for fresh layers,
well below what destabilises SigLIP's learnable scale); ``gpu`` uses 1e-4 for VGG16 and the
``gpu-clip`` preset DA-CLIP's 2e-5.

**Validation: the degradation probe** (`degradation_probe`). The loop's SR validation does not fit
an adaptor (it is not an LR -> SR network), so this recipe requires ``val_metrics = []``; its
`generator` is a wrapper whose forward is the identity (the loop's EMA and export need a module
holding the trainable parts). Instead, at export (on the EMA weights if any), the probe measures
what the adaptor is for: the ``val_images`` first Kodak24 images (``<root>/train/kodak24``, held
out of the training sets), central ``val_crop`` crops, each degraded ``probe_draws`` times with
known parameters (the training sampler with Gaussian noise only, so the noise level is one number
in one unit; seeded by image and draw). For each of blur, noise and JPEG the fine embedding of
that slot is compared (cosine) with the text embedding of every candidate value (blur sigma 0-2.9
by 0.1, Gaussian sigma 0-30 by 0.5, JPEG quality 30-95 by 1; isotropic blur texts); the
prediction is the argmax, scored by ``scipy.stats.spearmanr`` against the true values:
``val_rho_blur``, ``val_rho_noise``, ``val_rho_jpeg`` (None where the prediction is constant).
The loop gives a recipe neither the data root nor a place for its own figures: the probe reads
``probe_root`` (default: the first data root found as the loop finds it without ``--data-root``;
set it when training with ``--data-root``), prints the figures and stores them in the checkpoint
record under ``backbone.probe`` (``validation`` is written by the loop; ``train_log.jsonl`` does
not get them). A loop hook for recipe-defined validation would move them there.

**Checkpoint** (arch ``deplsr-adaptor``): the trainable parts only (the adaptor's ``state_dict``:
the frozen backbone is outside it), fp16, with ``arch_options`` to rebuild it (`build_adaptor`:
backbone name, weights, sha256, variant options) and ``backbone`` (provenance, sha256, the probe).
``scale`` is the loop's (meaningless for an adaptor). `build_adaptor` is not yet in
`sr_methods.trained.ARCHS` (a line ``"deplsr-adaptor": "bench.train.deplsr:build_adaptor"`` there
would make ``load_network`` rebuild it).

**Presets**: ``cpu``: VGG16, HR patches 256 px from T91 + BSDS500 (images smaller than 256 px are
skipped by the sampler), 224-px LQ, batch 8, 400 steps, lr 3e-4, no EMA (an average over a few
hundred steps would mostly hold the untrained start); probe on 24 Kodak24 crops x 2 draws. One
real step (the real VGG16 asset, batch 8 of 224-px LQ from 256-px HR) measured here: 2.8-2.9 s
with one torch thread, 1.85 s with two (degradation 0.1-0.2 s of it; the frozen VGG16 forward
dominates), so 400 steps take ~19 min on one core (~12.5 min on two), plus ~10-20 s for the
probe and set-up (not run end to end here). ``gpu``: batch 256, 50 000 steps, lr 1e-4, EMA 0.999;
``gpu-clip``: ViT-B-32 (``clip:ViT-B-32/openai``), lr 2e-5 (DA-CLIP's); neither run here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from iqa.errors import SrbenchError

from .loop import Recipe, TrainConfig

PROBE_SLOTS = ("blur", "noise", "jpeg")


@dataclass(frozen=True)
class Options:
    backbone: str = "vgg16"  # or "clip:MODEL/PRETRAINED", an open_clip config JSON (tests)
    backbone_weights: str = ""  # the backbone's weights (default: found by name)
    lq_size: int = 224  # the LQ side the sampler resizes to
    min_crop: int = 0  # > 0: a random square crop of side in [min_crop, patch] before degrading (0: whole patch)
    lr: float = 1e-4
    weight_decay: float = 0.05
    width: int = 64  # VGG variant: the head's width
    levels: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")  # VGG variant: the maps the head reads
    text_hidden: int = 256  # VGG variant: the parametric text MLPs' hidden width
    normalise: bool = True  # CLIP variant: CLIP mean/std on the LQ (False: the official code's quirk)
    probe: bool = True  # run the degradation probe at export
    probe_draws: int = 2  # degradations per probe image
    probe_root: str = ""  # data root holding train/kodak24 for the probe ("" = found as the loop finds one)


def _check(o: Options, cfg: TrainConfig) -> None:
    for name in ("lq_size", "width", "text_hidden", "probe_draws"):
        v = getattr(o, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SrbenchError(f"{name} must be a positive integer, got {v!r}")
    if isinstance(o.min_crop, bool) or not isinstance(o.min_crop, int) or not 0 <= o.min_crop <= cfg.patch:
        raise SrbenchError(f"min_crop must be an integer in [0, patch={cfg.patch}], got {o.min_crop!r}")
    for name in ("lr", "weight_decay"):
        v = getattr(o, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise SrbenchError(f"{name} must be a number >= 0, got {v!r}")
    if cfg.val_metrics:
        raise SrbenchError(f"deplsr-adaptor is not an SR network, the loop's SR metrics cannot score it: set "
                           f"val_metrics = [] (its validation is the degradation probe), got {list(cfg.val_metrics)}")


def build_adaptor(*, backbone: str = "vgg16", backbone_weights: str | None = None, backbone_sha256: str | None = None,
                  levels: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3"), width: int = 64, text_hidden: int = 256,
                  normalise: bool = True) -> nn.Module:
    """The adaptor of checkpoint arch ``deplsr-adaptor`` (untrained; load the checkpoint's tensors into
    it): ``backbone`` ``"vgg16"`` -> `VGGDegradationAdaptor`, else a CLIP model -> `ClipDegradationAdaptor`.
    ``backbone_sha256`` (a checkpoint's record) must match the backbone file found."""
    from iqa.semantic import VGG16Backbone, build_trained_backbone
    from sr_methods.deplsr.adaptor import ClipDegradationAdaptor, VGGDegradationAdaptor

    bb = build_trained_backbone(backbone, backbone_weights, backbone_sha256, what="the adaptor's backbone")
    if isinstance(bb, VGG16Backbone):
        return VGGDegradationAdaptor(bb, levels=tuple(levels), width=int(width), text_hidden=int(text_hidden))
    return ClipDegradationAdaptor(bb, normalise=bool(normalise))


class AdaptorModule(nn.Module):
    """What the loop tracks (EMA) and exports: the adaptor's trainable parts under ``adaptor.``. Its
    forward is the identity: the loop's SR validation has nothing to score (`_check` makes it
    score nothing)."""

    def __init__(self, adaptor: nn.Module):
        super().__init__()
        self.adaptor = adaptor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


# -- the probe ----------------------------------------------------------------------------------------------

def predict_by_argmax(fine: torch.Tensor, candidates: torch.Tensor, values: Sequence[float]) -> np.ndarray:
    """``values[argmax_j cos(fine_i, candidates_j)]`` for each row of ``fine (N, D)``; ``candidates (M, D)``."""
    f = nn.functional.normalize(fine.float(), dim=-1)
    c = nn.functional.normalize(candidates.float(), dim=-1)
    return np.asarray(values, dtype=np.float64)[(f @ c.T).argmax(dim=1).cpu().numpy()]


def rank_correlation(pred: Sequence[float], truth: Sequence[float]) -> float | None:
    """Spearman's rho (``scipy.stats.spearmanr``) of predictions vs true values; None where it is
    undefined (fewer than 3 values or a constant side)."""
    from scipy.stats import spearmanr

    p, t = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if len(p) < 3 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(spearmanr(p, t).statistic)
    return None if math.isnan(rho) else rho


def candidate_params(slot: str, lq_size: int):
    """``(values, params)``: the candidate values of ``slot`` and a `DePLSRParams` for each, whose
    text / vector of that slot describes the value (other slots absent; blur isotropic)."""
    from sr_methods.deplsr.degradations import BlurParams, DePLSRParams, StageParams

    size = (lq_size, lq_size)

    def make(blur=None, noise=0.0, quality=None):
        st = StageParams(blur, "gaussian", noise)
        return DePLSRParams((st, st), quality, None, size, size)

    if slot == "blur":
        values = [round(0.1 * i, 1) for i in range(30)]
        return values, [make(blur=BlurParams(v, True, v, 0.0, 2 * math.ceil(3 * v) + 1) if v > 0 else None)
                        for v in values]
    if slot == "noise":
        values = [0.5 * i for i in range(61)]
        return values, [make(noise=v) for v in values]
    if slot == "jpeg":
        values = [float(q) for q in range(30, 96)]
        return values, [make(quality=v) for v in values]
    raise SrbenchError(f"probe slot must be one of {', '.join(PROBE_SLOTS)}, got {slot!r}")


@torch.no_grad()
def degradation_probe(adaptor: nn.Module, images: Sequence[torch.Tensor], *, draws: int = 2, lq_size: int = 224,
                      seed: int = 0, batch: int = 8) -> dict[str, Any]:
    """The adaptor's rank correlations (module docstring) on ``images`` (each ``(1, 3, H, W)`` in
    [0, 1]): ``{"val_rho_blur", "val_rho_noise", "val_rho_jpeg", "samples"}``."""
    from sr_methods.deplsr.degradations import DEPLSR, SLOTS, degrade

    settings = replace(DEPLSR, gaussian_noise_prob=1.0, lq_size=lq_size)
    dev = adaptor.logit_scale.device
    was = adaptor.training
    adaptor.eval()
    try:
        lqs, params = [], []
        for i, hr in enumerate(images):
            for r in range(draws):
                g = torch.Generator().manual_seed(1_000_003 * (seed + 1) + 1000 * i + r)
                lq, p = degrade(hr.float().cpu(), g, settings)
                lqs.append((lq.clamp(0, 1) * 255).round() / 255)
                params.append(p)
        fine = torch.cat([adaptor(torch.cat(lqs[j:j + batch]).to(dev)).fine.float().cpu()
                          for j in range(0, len(lqs), batch)])
        truth = {"blur": [p.blur_sigma for p in params], "noise": [p.targets()["gaussian_sigma"] for p in params],
                 "jpeg": [p.targets()["jpeg_quality"] for p in params]}
        out: dict[str, Any] = {}
        for slot in PROBE_SLOTS:
            k = SLOTS.index(slot)
            values, cands = candidate_params(slot, lq_size)
            _, cfine = adaptor.encode_degradations(cands)
            pred = predict_by_argmax(fine[:, k], cfine[:, k].float().cpu(), values)
            out[f"val_rho_{slot}"] = rank_correlation(pred, truth[slot])
        out["samples"] = len(params)
        return out
    finally:
        adaptor.train(was)


def probe_images(root, n: int, crop: int) -> list[torch.Tensor]:
    """Central ``crop`` crops of the ``n`` first images of ``<root>/train/kodak24``."""
    from pathlib import Path

    from bench.run.io import read_image

    folder = Path(root) / "train" / "kodak24"
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    out = []
    for p in files[:n]:
        x = read_image(p)[None]
        h, w = x.shape[-2:]
        c = min(crop, h, w)
        t, l = (h - c) // 2, (w - c) // 2
        out.append(x[..., t:t + c, l:l + c].contiguous())
    return out


# -- the recipe ------------------------------------------------------------------------------------------------

class DePLSRAdaptor(Recipe):
    method = "deplsr-adaptor"
    Options = Options
    presets: ClassVar[dict[str, tuple[TrainConfig, Options]]] = {}  # filled in below

    def __init__(self, cfg: TrainConfig, opts: Options, device: torch.device, **kw: Any):
        super().__init__(cfg, opts, device, **kw)
        from sr_methods.deplsr.degradations import DEPLSR

        _check(opts, cfg)
        o = opts
        self.adaptor = build_adaptor(backbone=o.backbone, backbone_weights=o.backbone_weights or None,
                                     levels=o.levels, width=o.width, text_hidden=o.text_hidden,
                                     normalise=o.normalise).to(device)
        if self.init is not None:  # continue from an earlier deplsr-adaptor checkpoint
            from sr_methods.trained import read_checkpoint

            tensors, rec, _ = read_checkpoint(self.init)
            if rec.get("arch") != "deplsr-adaptor":
                raise SrbenchError(f"{self.init} is a {rec.get('arch')} checkpoint, not a deplsr-adaptor one")
            self.adaptor.load_state_dict({k: v.float() for k, v in tensors.items()})
        self.net = AdaptorModule(self.adaptor)
        self.settings = replace(DEPLSR, lq_size=o.lq_size)
        decay, keep = [], []
        for p in self.adaptor.parameters():
            (decay if p.ndim >= 2 else keep).append(p)
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                                      {"params": keep, "weight_decay": 0.0}], lr=o.lr, betas=(0.9, 0.98))

    # -- the Recipe interface ----------------------------------------------------------------------------------

    def modules(self) -> dict[str, nn.Module]:
        return {"adaptor": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adamw": self.opt}

    def generator(self) -> nn.Module:
        return self.net

    def lq_batch(self, hr: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, list]:
        """``(lq (B, 3, lq_size, lq_size) on the device, params)`` of the HR patches, from ``g``."""
        from sr_methods.deplsr.degradations import degrade

        lqs, params = [], []
        for i in range(hr.shape[0]):
            x = hr[i:i + 1].detach().float().cpu()
            if self.opts.min_crop:
                side = int(torch.randint(self.opts.min_crop, x.shape[-1] + 1, (1,), generator=g))
                t = int(torch.randint(0, x.shape[-2] - side + 1, (1,), generator=g))
                l = int(torch.randint(0, x.shape[-1] - side + 1, (1,), generator=g))
                x = x[..., t:t + side, l:l + side]
            lq, p = degrade(x.clamp(0, 1), g, self.settings)
            lqs.append((lq.clamp(0, 1) * 255).round() / 255)
            params.append(p)
        return torch.cat(lqs).to(self.device), params

    def step(self, lr, hr, k, g, autocast):
        from sr_methods.deplsr.losses import adaptor_loss

        ad = self.adaptor
        lq, params = self.lq_batch(hr, g)
        with autocast():
            out = ad(lq)
            full, fine_t = ad.encode_degradations(params)
        total, parts = adaptor_loss(out.content.float(), out.degradation.float(), out.fine.float(), full.float(),
                                    fine_t.float(), ad.logit_scale, ad.logit_bias, None)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        return {"loss": total.detach(), **{n: torch.tensor(v) for n, v in parts.items()},
                "scale": ad.logit_scale.detach().exp()}

    def _probe_root(self):
        if self.opts.probe_root:
            return self.opts.probe_root
        root = getattr(self, "data_root", None)  # if a future loop hands the recipe its data root
        if root is None:
            from bench.train.data import find_data_root

            root = find_data_root(None)
        return root

    def probe(self) -> dict[str, Any] | None:
        """The degradation probe on the current weights (None when off or without Kodak24 images)."""
        if not self.opts.probe:
            return None
        root = self._probe_root()
        images = probe_images(root, self.cfg.val_images, self.cfg.val_crop)
        if not images:
            self.echo(f"!! degradation probe skipped: no images in {root}/train/kodak24 (set [method] probe_root)")
            return None
        figures = degradation_probe(self.adaptor, images, draws=self.opts.probe_draws, lq_size=self.opts.lq_size)
        shown = ", ".join(f"{k[8:]} {v:.3f}" if v is not None else f"{k[8:]} n/a"
                          for k, v in figures.items() if k.startswith("val_rho_"))
        self.echo(f"degradation probe (Spearman rho, {figures['samples']} Kodak24 LQ): {shown}")
        return {**figures, "set": "kodak24", "root": str(root), "images": len(images), "crop": self.cfg.val_crop,
                "draws": self.opts.probe_draws, "noise": "gaussian", "predictor": "argmax cosine over candidate texts"}

    def export(self, generator_state):
        o, ad = self.opts, self.adaptor
        live = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.net.load_state_dict({k: v.to(self.device) for k, v in generator_state.items()})
        try:
            probe = self.probe()
        finally:
            self.net.load_state_dict(live)
        bb = ad.backbone.provenance()
        is_vgg = o.backbone.lower() == "vgg16"
        arch_options = {"backbone": o.backbone, "backbone_weights": o.backbone_weights or None,
                        "backbone_sha256": bb.get("sha256"), "levels": list(o.levels), "width": o.width,
                        "text_hidden": o.text_hidden, "normalise": o.normalise}
        tensors = {k[len("adaptor."):]: v for k, v in generator_state.items() if k.startswith("adaptor.")}
        backbone = {**bb, "backbone": "vgg16" if is_vgg else bb.get("backbone"), "adaptor": ad.name,
                    "lq_size": o.lq_size, "content_term": False, "probe": probe}
        return tensors, {"arch": "deplsr-adaptor", "arch_options": arch_options, "backbone": backbone}


# -- presets ------------------------------------------------------------------------------------------------

_COMMON: dict[str, Any] = {"scale": 4, "patch": 256, "degradation": "bicubic", "sets": ("t91", "bsds500"),
                           "val_metrics": (), "val_images": 24, "val_crop": 256}
DePLSRAdaptor.presets = {
    # one real step (VGG16 asset, batch 8, 224-px LQ): measured 2.8-2.9 s on one thread (1.85 s on two),
    # so 400 steps ~19 min on one core (module docstring)
    "cpu": (TrainConfig(batch=8, steps=400, ema=0.0, log_every=10, ckpt_every=50, **_COMMON),
            Options(lr=3e-4, probe_draws=2)),
    "gpu": (TrainConfig(batch=256, steps=50_000, ema=0.999, log_every=100, ckpt_every=2000, **_COMMON),
            Options(lr=1e-4, probe_draws=4)),
    "gpu-clip": (TrainConfig(batch=256, steps=50_000, ema=0.999, log_every=100, ckpt_every=2000, **_COMMON),
                 Options(backbone="clip:ViT-B-32/openai", lr=2e-5, probe_draws=4)),
}
