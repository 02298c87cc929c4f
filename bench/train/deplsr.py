"""Recipes ``deplsr-adaptor`` (below) and ``deplsr`` (the SR network, after it).

Recipe ``deplsr-adaptor``: train DePLSR's degradation adaptor (`sr_methods.deplsr.adaptor`) with
the SigLIP objective of `sr_methods.deplsr.losses.adaptor_loss` on LQ images made on the fly from
the HR patches of ``<data>/train`` by DePLSR's own sampler (`sr_methods.deplsr.degradations`).

**Variants** (``backbone``):

- ``"vgg16"`` (default; offline, ``deplsr-vgg16-param``): the frozen ImageNet VGG16 gives the
  content embedding; the trainable conv head on its early maps gives the degradation embeddings;
  the "texts" are the parameter vectors through the learned `ParamTextEncoder`. No caption encoder,
  so the loss is ``(0.3 degradation + 0.5 fine) / 0.8`` (no content term).
- ``"clip:MODEL/PRETRAINED"`` or an open_clip config JSON (tests) with ``backbone_weights``: the
  paper's DA-CLIP-style adaptor; texts through the frozen CLIP text tower. The content embedding is
  trained against a caption of the patch's image (0.2 content + 0.3 degradation + 0.5 fine) on the
  patches cut from captioned training images (``train/coco``, ``train/celeba_mm``: a
  ``captions.jsonl`` beside the images; the loop's sampler says which image each patch is cut
  from, `PatchSampler.sources`); one of the image's captions is drawn per patch from the step's
  generator. The content term is a SigLIP loss over the captioned patches of the batch alone; a
  batch without one trains the renormalised two terms. ``captions = false`` turns it off; the
  checkpoint records ``content_term``. (A caption describes the whole image, a 256-px patch only
  part of it: the official training pairs the caption with the whole image resized; that is an
  option a user with the full COCO can approach with ``min_crop``.)

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
The probe is the recipe's `validate` hook: it runs wherever the loop validates (``val_every``
and the end, on the EMA weights), reads the images under ``probe_root`` (default: the run's data
root), and its figures go to ``train_log.jsonl`` and the checkpoint's ``validation``; the record's
``backbone.probe`` keeps its details (images, draws, predictor).

**Checkpoint** (arch ``deplsr-adaptor``): the trainable parts only (the adaptor's ``state_dict``:
the frozen backbone is outside it), fp16, with ``arch_options`` to rebuild it (`build_adaptor`:
backbone name, weights, sha256, variant options) and ``backbone`` (provenance, sha256, the probe).
``scale`` is the loop's (meaningless for an adaptor). `sr_methods.deplsr.adaptor.build_adaptor` is
the arch's builder in `sr_methods.trained.ARCHS`, so ``load_network`` rebuilds it.

**Presets**: ``cpu``: VGG16, HR patches 256 px from T91 + BSDS500 (images smaller than 256 px are
skipped by the sampler), 224-px LQ, batch 8, 400 steps, lr 3e-4, no EMA (an average over a few
hundred steps would mostly hold the untrained start); probe on 24 Kodak24 crops x 2 draws. One
real step (the real VGG16 asset, batch 8 of 224-px LQ from 256-px HR) measured here: 2.8-2.9 s
with one torch thread, 1.85 s with two (degradation 0.1-0.2 s of it; the frozen VGG16 forward
dominates), so 400 steps take ~19 min on one core (~12.5 min on two), plus ~10-20 s for the
probe and set-up; run end to end: 1160 s on one core, probe rho blur 0.947, noise 0.956, JPEG 0.892. ``gpu``: batch 256, 50 000 steps, lr 1e-4, EMA 0.999;
``gpu-clip``: ViT-B-32 (``clip:ViT-B-32/openai``), lr 2e-5 (DA-CLIP's), training sets with the captioned COCO and CelebA; neither run here.

Recipe ``deplsr``: the SR network under the frozen adaptor
----------------------------------------------------------
``[method] adaptor = PATH`` (a ``deplsr-adaptor`` checkpoint, required) gives the priors; the
network is `sr_methods.deplsr.nets.DePLSRNet` (arch ``deplsr``): the adaptor, frozen (its
trainable layers ship in the checkpoint so it is self-contained; the frozen backbone comes from
its asset, checked by sha256), and the body:

- ``body = "fused-rrdn"`` (default, what ships): a FusionBlock before each of the 10 RRDBs of
  idealo's ``esrgan-thick-x4`` (``base``; ``base_path`` a converted RRDN file), the host frozen
  and held outside the state (``train_base = true`` trains it too). Zero-initialised, so training
  starts exactly at the host network; 1.33 M trained parameters.
- ``body = "realdat"``: the paper's RealDAT (DAT, embed 180, 6 x 6 blocks, a FusionBlock before
  each group), from scratch (the paper initialises x4 from its x2 model; ``--init`` continues
  from any ``deplsr`` checkpoint of the same body).

One step: the loop's batch (HR patches, LR by the config's ``degradation``: ``realesrgan`` =
``realesrgan-x4`` at x4, generated on the fly and seeded per patch); the adaptor's content and
fine embeddings of the LR (it resizes the LR to its 224 px itself; no gradient), the body's SR,
``L1(SR, HR)`` (the paper's only loss), Adam (``lr`` 2e-4, the paper's; betas (0.9, 0.99), DAT's),
the rate halved at the ``milestones`` fractions of the steps (DAT's 250k/400k/450k/475k of 500k),
computed from the step so a resumed run needs no scheduler state. ``tokens = "zero"`` is the
ablation "without the degradation tokens": the same body and training, the fine embeddings zeroed
before the FusionBlocks (the content embedding kept).

The adaptor sees the LR patch: 48 px at the ``cpu`` presets' 192-px HR (the paper: 64 px of 256),
bilinearly enlarged to 224 as in the official code; at test time it sees the whole LR image once
and every tile of it runs under those priors (`sr_methods.trained.TrainedMethod`).

Validation: the loop's, on Kodak24 crops with the training degradation (``realesrgan-x4``).

Presets: ``cpu`` / ``cpu-notokens`` (the ablation): fused-rrdn, HR 192 px, batch 4, 700 steps,
EMA 0.99, validation on 8 Kodak24 crops; one step measured 2.6 s on one thread (3-4 s while the
two presets share the two cores). ``gpu``: the paper's RealDAT, HR 256, batch 4, 500k steps, EMA
0.999; ``gpu-fused``: the shipped body at HR 256, batch 16, 100k steps. Neither gpu preset was run
here.
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

from .data import draw_captions, find_data_root, image_captions
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
    probe_root: str = ""  # data root holding train/kodak24 for the probe ("" = the run's data root)
    captions: bool = True  # CLIP variant: the content-vs-caption term on patches of captioned images


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
        from sr_methods.deplsr.adaptor import build_adaptor
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

    @property
    def content_term(self) -> bool:
        """Whether the content-vs-caption term is trained: a caption encoder (CLIP), ``captions``
        on, and captioned images among the training images."""
        return bool(self.opts.captions and hasattr(self.adaptor, "encode_texts") and self.captions())

    def captions(self) -> dict[Any, list[str]]:
        """``{image path: its captions}`` for the training images whose folder has a
        ``captions.jsonl`` (``{"id": stem, "captions": [...]}`` per line; `bench.run.datasets`'s
        layout of COCO and CelebA-HQ); empty outside the loop (no sampler)."""
        if getattr(self, "_captions", None) is None:
            self._captions = image_captions(list(getattr(getattr(self, "sampler", None), "paths", [])))
        return self._captions

    def batch_captions(self, k: int, g: torch.Generator) -> list[str | None]:
        """One caption per patch of batch ``k`` (drawn from ``g`` among its image's captions), None
        for a patch of an uncaptioned image."""
        return draw_captions(self.sampler.sources(k), self.captions(), g)

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
        content, caption_txt = out.content, None
        if self.content_term:  # the captioned patches of the batch (none: the renormalised two terms)
            picks = self.batch_captions(k, g)
            rows = [i for i, c in enumerate(picks) if c is not None]
            if rows:
                caption_txt = ad.encode_captions([picks[i] for i in rows]).float()
                content = out.content[rows]
        total, parts = adaptor_loss(content.float(), out.degradation.float(), out.fine.float(), full.float(),
                                    fine_t.float(), ad.logit_scale, ad.logit_bias, caption_txt)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        return {"loss": total.detach(), **{n: torch.tensor(v) for n, v in parts.items()},
                "scale": ad.logit_scale.detach().exp()}

    def _probe_root(self):
        return self.opts.probe_root or getattr(self, "data_root", None) or find_data_root(None)

    def validate(self) -> dict[str, Any]:
        """The degradation probe on the current weights (the loop's EMA ones at validation): its
        ``val_rho_*`` figures and ``val_probe_samples``; nothing when off or without Kodak24."""
        self._probe = None
        if not self.opts.probe:
            return {}
        root = self._probe_root()
        images = probe_images(root, self.cfg.val_images, self.cfg.val_crop)
        if not images:
            self.echo(f"!! degradation probe skipped: no images in {root}/train/kodak24 (set [method] probe_root)")
            return {}
        figures = degradation_probe(self.adaptor, images, draws=self.opts.probe_draws, lq_size=self.opts.lq_size)
        shown = ", ".join(f"{k[8:]} {v:.3f}" if v is not None else f"{k[8:]} n/a"
                          for k, v in figures.items() if k.startswith("val_rho_"))
        self.echo(f"degradation probe (Spearman rho, {figures['samples']} Kodak24 LQ): {shown}")
        self._probe = {**figures, "set": "kodak24", "root": str(root), "images": len(images), "crop": self.cfg.val_crop,
                       "draws": self.opts.probe_draws, "noise": "gaussian",
                       "predictor": "argmax cosine over candidate texts"}
        return {**{k: v for k, v in figures.items() if k.startswith("val_rho_")}, "val_probe_samples": figures["samples"]}

    def export(self, generator_state):
        o, ad = self.opts, self.adaptor
        bb = ad.backbone.provenance()
        is_vgg = o.backbone.lower() == "vgg16"
        arch_options = {"backbone": o.backbone, "backbone_weights": o.backbone_weights or None,
                        "backbone_sha256": bb.get("sha256"), "levels": list(o.levels), "width": o.width,
                        "text_hidden": o.text_hidden, "normalise": o.normalise}
        tensors = {k[len("adaptor."):]: v for k, v in generator_state.items() if k.startswith("adaptor.")}
        backbone = {**bb, "backbone": "vgg16" if is_vgg else bb.get("backbone"), "adaptor": ad.name,
                    "lq_size": o.lq_size, "content_term": self.content_term,
                    "probe": getattr(self, "_probe", None)}
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
    "gpu-clip": (TrainConfig(batch=256, steps=50_000, ema=0.999, log_every=100, ckpt_every=2000,
                             **{**_COMMON, "sets": ("t91", "bsds500", "coco", "celeba_mm")}),
                 Options(backbone="clip:ViT-B-32/openai", lr=2e-5, probe_draws=4)),
}


# -- the SR recipe ``deplsr`` ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SROptions:
    adaptor: str = ""  # a deplsr-adaptor checkpoint (required): frozen, its priors condition the body
    body: str = "fused-rrdn"  # or "realdat" (the paper's network, from scratch)
    base: str = "esrgan-thick-x4"  # fused-rrdn: the host RRDN asset (base_path: a converted RRDN file)
    base_path: str = ""
    tokens: str = "fine"  # "zero": the ablation without the degradation tokens
    heads: int = 4  # FusionBlock heads (realdat: 0 = each group's DAT heads)
    mlp_ratio: float = 2.0
    at: tuple[int, ...] = ()  # fused-rrdn: the RRDBs with a FusionBlock before them (empty: all)
    train_base: bool = False  # fused-rrdn: train the host RRDN with the fusions
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    milestones: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)  # lr halved at these fractions of the steps


class DePLSR(Recipe):
    """Recipe ``deplsr``: the SR body of DePLSR under the frozen priors of a trained adaptor (the
    module docstring's second part)."""

    method = "deplsr"
    Options = SROptions
    presets: ClassVar[dict[str, tuple[TrainConfig, SROptions]]] = {}  # filled in below

    def __init__(self, cfg: TrainConfig, opts: SROptions, device: torch.device, **kw: Any):
        super().__init__(cfg, opts, device, **kw)
        from sr_methods.deplsr.nets import BODIES, TOKEN_MODES, build_deplsr_network
        from sr_methods.trained import read_checkpoint, read_record

        o = opts
        if o.body not in BODIES or o.tokens not in TOKEN_MODES:
            raise SrbenchError(f"body must be one of {', '.join(BODIES)} and tokens one of {', '.join(TOKEN_MODES)}, "
                               f"got {o.body!r}, {o.tokens!r}")
        for name in ("lr", "mlp_ratio"):
            v = getattr(o, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise SrbenchError(f"{name} must be a number > 0, got {v!r}")
        if not o.adaptor:
            raise SrbenchError("deplsr needs a trained adaptor: [method] adaptor = PATH of a deplsr-adaptor checkpoint "
                               "(`srbench train deplsr-adaptor --config cpu --out DIR` makes DIR/model.safetensors)")
        rec = read_record(o.adaptor)
        if rec.get("arch") != "deplsr-adaptor":
            raise SrbenchError(f"{o.adaptor} is a {rec.get('arch')} checkpoint, not a deplsr-adaptor one")
        self.adaptor_record = rec
        self.arch_options = {"adaptor": dict(rec["arch_options"]), "body": o.body, "scale": cfg.scale,
                             "base": o.base if not o.base_path else None, "base_path": o.base_path or None,
                             "heads": o.heads or None, "mlp_ratio": o.mlp_ratio, "at": list(o.at) or None,
                             "train_base": o.train_base, "tokens": o.tokens}
        self.net = build_deplsr_network(**self.arch_options).to(device)
        tensors, _, self.adaptor_sha256 = read_checkpoint(o.adaptor)
        self.net.adaptor.load_state_dict({k: v.float() for k, v in tensors.items()})
        self.net.adaptor.requires_grad_(False)
        if o.body == "fused-rrdn":
            self.arch_options["base_sha256"] = self.net.base_sha256()
        if self.init is not None:  # continue from a deplsr checkpoint of the same network
            tensors, prev, _ = read_checkpoint(self.init)
            if prev.get("arch") != "deplsr":
                raise SrbenchError(f"{self.init} is a {prev.get('arch')} checkpoint, not a deplsr one")
            own = {k: v.float() for k, v in tensors.items() if k.startswith("body.")}
            missing, unexpected = self.net.load_state_dict(own, strict=False)
            if unexpected or any(k.startswith("body.") for k in missing):
                raise SrbenchError(f"{self.init}: its body does not fit this config's ({o.body}, tokens {o.tokens})")
        self.opt = torch.optim.Adam([p for p in self.net.body.parameters() if p.requires_grad], lr=o.lr,
                                    betas=tuple(o.betas))

    def modules(self) -> dict[str, nn.Module]:
        return {"deplsr": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.opt}

    def generator(self) -> nn.Module:
        return self.net

    def step(self, lr, hr, k, g, autocast):
        # the learning rate is a function of the step (halved at each milestone passed): a resumed
        # run needs no scheduler state
        rate = self.opts.lr * 0.5 ** sum(k >= int(m * self.cfg.steps) for m in self.opts.milestones)
        for group in self.opt.param_groups:
            group["lr"] = rate
        priors = self.net.priors(lr)
        self.net.adaptor.eval()  # frozen: no training-mode behaviour either
        with autocast():
            sr = self.net(lr, priors)
        loss = torch.nn.functional.l1_loss(sr.float(), hr)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"l1": loss.detach()}

    def export(self, generator_state):
        from sr_methods.deplsr.nets import FusedRRDN

        o = self.opts
        base = None
        if isinstance(self.net.body, FusedRRDN) and not o.train_base:
            base = {**self.net.base_record}
        adaptor = {"path": str(o.adaptor), "sha256": self.adaptor_sha256, "name": self.net.adaptor.name,
                   "validation": self.adaptor_record.get("validation"),
                   "probe": (self.adaptor_record.get("backbone") or {}).get("probe")}
        bb = self.net.adaptor.backbone.provenance()
        backbone = {**bb, "backbone": (self.adaptor_record.get("backbone") or {}).get("backbone") or bb.get("backbone"),
                    "adaptor": adaptor, "tokens": o.tokens, "body": o.body}
        return dict(generator_state), {"arch": "deplsr", "arch_options": self.arch_options, "base": base,
                                       "backbone": backbone}


_SR_COMMON: dict[str, Any] = {"scale": 4, "degradation": "realesrgan", "sets": ("t91", "bsds500"),
                              "val_metrics": ("psnr", "ssim", "lpips", "dists")}
DePLSR.presets = {
    # one step (batch 4 of 192-px HR, the real VGG16 adaptor, esrgan-thick-x4 host) measured 2.6 s on one thread
    "cpu": (TrainConfig(patch=192, batch=4, steps=700, ema=0.99, log_every=10, ckpt_every=50, val_images=8,
                        **_SR_COMMON), SROptions()),
    "cpu-notokens": (TrainConfig(patch=192, batch=4, steps=700, ema=0.99, log_every=10, ckpt_every=50, val_images=8,
                                 **_SR_COMMON), SROptions(tokens="zero")),
    # the paper's: RealDAT, HR 256, batch 4, Adam 2e-4, 500k steps (DAT's halvings at 250k/400k/450k/475k)
    "gpu": (TrainConfig(patch=256, batch=4, steps=500_000, ema=0.999, log_every=100, ckpt_every=5000,
                        val_every=50_000, **_SR_COMMON), SROptions(body="realdat", heads=0)),
    "gpu-fused": (TrainConfig(patch=256, batch=16, steps=100_000, ema=0.999, log_every=100, ckpt_every=5000,
                              val_every=20_000, **_SR_COMMON), SROptions()),
}
