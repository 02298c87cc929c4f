"""Training CLIP-SR (``srbench train clip-sr``) and its offline image-text aligner (``srbench train
clip-sr-align``), on captioned training images only.

Data
----
The captioned training splits: ``train/coco`` and ``train/celeba_mm`` here (25 + 20 images with
their human captions, disjoint from the captioned test samples), COCO train2017 and CelebA-HQ's
training split where a user has them (``sets``). That is very little data for a text-conditioned
GAN: what ships is labelled by it (``cap45``). Every 5th captioned image in sha256 order
(``holdout``) is kept out of training and serves the recipe's own validation (`Recipe.split`), so
there are 36 training and 9 validation images here. HR patches of 256 px (the paper's size), LR by
MATLAB bicubic (``x4``, ``x8``, ``x16``: 64, 32 and 16 px); each patch gets one of its image's
captions, drawn from the step's generator (a patch of an uncaptioned image gets the empty caption).

Recipe ``clip-sr-align`` (offline image side)
---------------------------------------------
VGG16 has no text space; :class:`sr_methods.clipsr.image.VGGTextAligner` maps its features (mean and
std of ``relu4_3``, ``relu5_3`` of the patch at 112 px) to the sentence encoder's space, trained with
the symmetric contrastive (CLIP) loss, two patches of one picture being positives of each other's
captions (`sr_methods.clipsr.losses.alignment_loss`), learned temperature, AdamW. Validation: on the
held-out images (central 256-px crop), the mean cosine of each image with its own captions minus
with the other images' captions, and the image -> caption retrieval top-1 accuracy (an image is
right when its most similar caption among all the held-out captions is one of its own).

Recipe ``clip-sr``
------------------
The network (`sr_methods.clipsr.nets.CLIPSRNet`, arch ``clip-sr``): frozen sentence encoder, its
projection to the conditioning width, the generator (with or without the prompt predictor). One
step, with ``s`` the batch's sentence embeddings (frozen encoder) and ``fake = G(lr, s)``:

- D (``gan``): ``hinge(D(real, s)) + (hinge(D(fake, s)) + hinge(D(real, s_rolled))) / 2 + gp *
  MA-GP`` on the image side's feature maps of the real images and ``s`` (`losses.ma_gp`); Adam
  ``lr_d`` 4e-4, betas (0, 0.9).
- G: ``l1 * L1 + perceptual * MSE(VGG16 relu5_3) + adv * (-D(fake, s) - sim * cos(image embedding of
  fake, s))``; Adam ``lr_g`` 1e-4, betas (0, 0.9). Weights 1, 1, 0.01, 4; gp 2, power 6 (the facts).
- The image side (`sr_methods.clipsr.image.ImageSide`): ``image = "clip"``: the text model's own
  CLIP (blocks 1, 4, 8 at 224 px and CLIP's image embedding); ``image = "vgg16"``: VGG16 at 112 px
  and the ``aligner`` checkpoint for the embedding (``"shipped"``: the one that ships; ``""``: none,
  the cosine term is left out and the run says so).
- *choice, perceptual loss*: the facts say "VGG16-feature MSE"; the level is ``relu5_3`` and the
  size ``perceptual_size`` (0: the full 256-px patch; the CPU presets use 112, sharing the image
  side's VGG16 pass, which keeps a step affordable on a CPU).
- ``gan = false`` trains ``L1 + perceptual`` only: the warm-up presets.

Validation: the loop's Kodak24 figures (no captions: the empty caption) and, on the held-out
captioned images (central 256-px crops, LR by the training degradation), PSNR-Y of the output with
one of the image's own captions (``val_heldout_psnr_caption``), with the empty caption
(``..._empty``) and with another held-out image's caption (``..._mismatched``), so a checkpoint says
whether its text helps.

Presets (``cpu`` at x4; ``-x8``, ``-x16`` suffixes for the other scales):

- ``cpu-warmup``: ``gan = false``, ``perceptual = 0`` (L1 only), on T91 + BSDS500 + the captioned
  training images (the held-out ones excepted), batch 8, 300 steps: a reconstruction start for the
  small data of the GAN stage.
- ``cpu`` (``--init`` the warm-up): the paper's losses on the captioned images, channels (32, 64,
  64, 64), conditioning width 128, discriminator width 256, batch 4, 250 steps, EMA 0.99.
- ``cpu-noprompt``: the ablation without the prompt predictor (``--init`` the same warm-up: its
  prompt-predictor weights are left out).
- ``gpu``: the paper's scale and wiring with real CLIP (``clip:ViT-B-32/openai`` for the text, the
  prompt predictor's blocks and the discriminator), channels (256, 512, 512, 512), batch 16 (the
  paper's COCO batch; CelebA's 32 through a TOML config), 100k steps, the perceptual loss on the full
  patch. Not run here (no CLIP weights, no GPU).

Measured here (one thread each, two or three processes sharing the two cores): warm-up 903 / 851 /
1612 s (x4 / x8 / x16), GAN stage 934 / 554 / 536 s, ablations 1603 / 444 / 518 s; the aligner 474 s
(the x4 runs shared the cores with a test suite, hence slower).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from iqa.errors import SrbenchError

from .data import draw_captions, image_captions
from .loop import Recipe, TrainConfig

CAPTIONED = ("coco", "celeba_mm")


def split_held_out(images: list[tuple[Path, str]], every: int) -> tuple[list, list]:
    """Every ``every``-th captioned image in sha256 order is held out (0: none); uncaptioned images
    always train."""
    if not every:
        return images, []
    caps = image_captions([p for p, _ in images])
    ranked = sorted((h, str(p)) for p, h in images if p in caps)
    held = {p for i, (_, p) in enumerate(ranked) if i % every == 0}
    return [x for x in images if str(x[0]) not in held], [x for x in images if str(x[0]) in held]


def _positive(name: str, v: Any, *, integer: bool = False, zero: bool = False) -> None:
    ok = not isinstance(v, bool) and isinstance(v, int if integer else (int, float)) and (v >= 0 if zero else v > 0)
    if not ok:
        raise SrbenchError(f"{name} must be a {'whole ' if integer else ''}number {'>= 0' if zero else '> 0'}, got {v!r}")


def held_out_crops(paths: list[Path], crop: int = 256) -> list[torch.Tensor]:
    """Central ``crop`` crops (or the whole image when smaller, cut to a multiple of 16) of ``paths``."""
    from bench.run.io import read_image

    out = []
    for p in paths:
        x = read_image(p)[None]
        h, w = x.shape[-2:]
        c = min(crop, h, w) // 16 * 16
        t, l = (h - c) // 2, (w - c) // 2
        out.append(x[..., t:t + c, l:l + c].contiguous())
    return out


class _Captioned:
    """What both recipes share: the sentence encoder, the captions of the training and held-out
    images, their embeddings (cached: the encoder is frozen) and the batch's captions."""

    held_out: list[Path]

    def _setup_text(self, text: str, weights: str) -> None:
        from sr_methods.clipsr.text import build_sentence_encoder

        self.encoder = build_sentence_encoder(text, weights=weights or None).to(self.device)
        self._emb: dict[str, torch.Tensor] = {}

    def embed(self, texts: list[str]) -> torch.Tensor:
        todo = sorted({t for t in texts if t not in self._emb})
        if todo:
            for t, e in zip(todo, self.encoder.encode(todo)):
                self._emb[t] = e
        return torch.stack([self._emb[t] for t in texts])

    def captions(self) -> dict[Path, list[str]]:
        if getattr(self, "_captions", None) is None:
            self._captions = image_captions(list(self.sampler.paths) + list(getattr(self, "held_out", [])))
        return self._captions

    def batch_captions(self, k: int, g: torch.Generator) -> tuple[list[str], list[Path]]:
        sources = self.sampler.sources(k)
        return [c if c is not None else "" for c in draw_captions(sources, self.captions(), g)], sources

    def held_out_set(self) -> list[tuple[torch.Tensor, list[str]]]:
        """``[(central crop (1, 3, c, c), its captions)]`` of the held-out captioned images."""
        if getattr(self, "_held", None) is None:
            caps = self.captions()
            paths = [p for p in getattr(self, "held_out", []) if p in caps]
            self._held = list(zip(held_out_crops(paths), [caps[p] for p in paths]))
        return self._held


# -- clip-sr-align ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlignOptions:
    text: str = "minilm"  # the sentence encoder the image features are aligned to
    text_weights: str = ""
    levels: tuple[str, ...] = ("relu4_3", "relu5_3")
    hidden: int = 256
    size: int = 112  # the VGG16 input side (the image side's)
    vgg16_weights: str = ""  # default: the vgg16 asset
    lr: float = 1e-3
    weight_decay: float = 0.01
    holdout: int = 5  # every 5th captioned image (sha256 order) is held out for validation; 0: none


class AlignerModule(nn.Module):
    """What the loop tracks and exports: the aligner. Its forward is the identity (no SR to score)."""

    def __init__(self, aligner: nn.Module):
        super().__init__()
        self.aligner = aligner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class CLIPSRAlign(_Captioned, Recipe):
    method = "clip-sr-align"
    Options = AlignOptions
    presets: ClassVar[dict[str, tuple[TrainConfig, AlignOptions]]] = {}

    def __init__(self, cfg: TrainConfig, opts: AlignOptions, device: torch.device, **kw: Any):
        super().__init__(cfg, opts, device, **kw)
        from iqa.semantic import VGG16Backbone
        from sr_methods.clipsr.image import VGGTextAligner

        if cfg.val_metrics:
            raise SrbenchError(f"clip-sr-align is not an SR network: set val_metrics = [] (its validation is the "
                               f"held-out retrieval), got {list(cfg.val_metrics)}")
        _positive("hidden", opts.hidden, integer=True)
        _positive("size", opts.size, integer=True)
        self._setup_text(opts.text, opts.text_weights)
        self.vgg = VGG16Backbone(opts.vgg16_weights or None).to(device)
        chans = [int(c) for c in self.vgg.channels(opts.levels).values()]
        self.aligner = VGGTextAligner(self.encoder.dim, levels=opts.levels, channels=chans, hidden=opts.hidden).to(device)
        self.net = AlignerModule(self.aligner)
        self.opt = torch.optim.AdamW(self.aligner.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)

    def split(self, images):
        return split_held_out(images, self.opts.holdout)

    def modules(self):
        return {"aligner": self.net}

    def optimizers(self):
        return {"adamw": self.opt}

    def generator(self):
        return self.net

    def image_embedding(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(self.opts.size,) * 2, mode="bicubic", align_corners=False, antialias=True)
        with torch.no_grad():
            feats, _ = self.vgg(x, self.opts.levels)
        return self.aligner(feats)

    def step(self, lr, hr, k, g, autocast):
        from sr_methods.clipsr.losses import alignment_loss

        texts, sources = self.batch_captions(k, g)
        same = torch.tensor([[a == b for b in sources] for a in sources], device=self.device)
        with autocast():
            img = self.image_embedding(hr)
        loss = alignment_loss(img, self.embed(texts), same, self.aligner.logit_scale)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self.aligner.logit_scale.clamp_(0, math.log(100))
        return {"loss": loss.detach(), "scale": self.aligner.logit_scale.detach().exp()}

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        held = self.held_out_set()
        if len(held) < 2:
            self.echo("!! clip-sr-align: fewer than 2 held-out captioned images, no validation")
            return {}
        was = self.aligner.training
        self.aligner.eval()
        try:
            img = torch.cat([self.image_embedding(x.to(self.device)) for x, _ in held])
        finally:
            self.aligner.train(was)
        owner, texts = [], []
        for i, (_, caps) in enumerate(held):
            owner += [i] * len(caps)
            texts += caps
        sim = img @ self.embed(texts).T  # (images, captions)
        own = torch.tensor(owner, device=sim.device)[None] == torch.arange(len(held), device=sim.device)[:, None]
        gap = float((sim[own].mean() - sim[~own].mean()).cpu())
        top1 = float(own[torch.arange(len(held)), sim.argmax(1)].float().mean().cpu())
        self.echo(f"clip-sr-align held-out ({len(held)} images): cos own - other {gap:.4f}, retrieval top-1 {top1:.3f}")
        return {"val_heldout_cos_gap": gap, "val_heldout_top1": top1, "val_heldout_images": len(held)}

    def export(self, state):
        o = self.opts
        from sr_methods.clipsr.nets import text_encoder_sha256

        tensors = {k[len("aligner."):]: v for k, v in state.items() if k.startswith("aligner.")}
        return tensors, {"arch": "clip-sr-align",
                         "arch_options": {"text_dim": self.encoder.dim, "levels": list(o.levels),
                                          "channels": [int(c) for c in self.vgg.channels(o.levels).values()],
                                          "hidden": o.hidden, "backbone": "vgg16", "size": o.size,
                                          "text": o.text, "text_sha256": text_encoder_sha256(self.encoder)},
                         "backbone": self.vgg.provenance()}


CLIPSRAlign.presets = {
    "cpu": (TrainConfig(scale=4, patch=256, batch=16, steps=250, sets=CAPTIONED, ema=0.0, log_every=10,
                        ckpt_every=50, val_metrics=()), AlignOptions()),
}


# -- clip-sr ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    text: str = "minilm"  # "minilm", "clip:MODEL/TAG" or an open_clip config JSON (tests) with text_weights
    text_weights: str = ""
    image: str = "vgg16"  # "vgg16" or "clip" (the text model's CLIP: needs a clip text encoder)
    image_levels: tuple[str, ...] = ()  # () = the defaults (CLIP blocks 1, 4, 8; VGG16 relu3_3/4_3/5_3)
    aligner: str = "shipped"  # vgg16 image side: a clip-sr-align checkpoint, "shipped", or "" (no cosine term)
    vgg16_weights: str = ""  # VGG16 (image side, perceptual loss); default: the vgg16 asset
    channels: tuple[int, ...] = (32, 64, 64, 64)
    cond_dim: int = 128
    prompt_predictor: bool = True
    n_prompts: int = 0  # 0: min(8, the transformer's blocks)
    d_width: int = 256
    d_out: int = 256
    d_hidden: int = 64
    gan: bool = True  # False: L1 + perceptual only (warm-up)
    l1: float = 1.0
    perceptual: float = 1.0
    perceptual_level: str = "relu5_3"
    perceptual_size: int = 112  # 0: the full patch
    adv: float = 0.01
    sim: float = 4.0
    gp: float = 2.0
    gp_power: float = 6.0
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    betas: tuple[float, float] = (0.0, 0.9)
    holdout: int = 5


def resolve_aligner(spec: str) -> Path | None:
    """``""`` -> None; ``"shipped"`` -> the shipped ``clip-sr-align`` checkpoint (checked by sha256);
    else the path given."""
    if not spec:
        return None
    if spec != "shipped":
        return Path(spec)
    from sr_methods.clipsr.catalogue import SHIPPED_ALIGNER
    from sr_methods.trained import shipped_file

    if SHIPPED_ALIGNER is None:
        raise SrbenchError("no clip-sr-align aligner ships with this version: give [method] aligner = PATH "
                           "(a `srbench train clip-sr-align` checkpoint) or aligner = \"\" (no cosine term)")
    return shipped_file(*SHIPPED_ALIGNER, fix="reinstall srbench (or give [method] aligner = PATH)")


class CLIPSR(_Captioned, Recipe):
    method = "clip-sr"
    Options = Options
    presets: ClassVar[dict[str, tuple[TrainConfig, Options]]] = {}

    def __init__(self, cfg: TrainConfig, opts: Options, device: torch.device, **kw: Any):
        super().__init__(cfg, opts, device, **kw)
        from sr_methods.clipsr.nets import (
            SCALES,
            CLIPSRDiscriminator,
            build_clipsr_network,
        )

        o = opts
        if cfg.scale not in SCALES:
            raise SrbenchError(f"clip-sr trains x4, x8 or x16, not x{cfg.scale}")
        for name in ("cond_dim", "d_width", "d_out", "d_hidden", "holdout", "n_prompts", "perceptual_size"):
            _positive(name, getattr(o, name), integer=True, zero=name in ("holdout", "n_prompts", "perceptual_size"))
        for name in ("l1", "perceptual", "adv", "sim", "gp", "gp_power", "lr_g", "lr_d"):
            _positive(name, getattr(o, name), zero=True)
        if o.image not in ("vgg16", "clip"):
            raise SrbenchError(f"image must be \"vgg16\" or \"clip\", got {o.image!r}")
        self._setup_text(o.text, o.text_weights)
        self.net = build_clipsr_network(scale=cfg.scale, channels=o.channels, cond_dim=o.cond_dim, text=o.text,
                                        prompt_predictor=o.prompt_predictor, n_prompts=o.n_prompts or None,
                                        encoder=self.encoder).to(device)
        if self.init is not None:
            self._load_init()
        self.vgg = None
        self.side = self.disc = None
        if o.gan:
            self.side = self._image_side().to(device)
            self.disc = CLIPSRDiscriminator(self.side.channels, width=o.d_width, out=o.d_out, text_dim=self.encoder.dim,
                                            hidden=o.d_hidden).to(device)
            if not self.side.has_embedding and o.sim:
                self.echo("!! clip-sr: no image embedding (vgg16 image side without an aligner): the text-image "
                          "cosine term is left out")
        if o.perceptual:
            self.vgg = self.side.backbone if self.side is not None and not self.side.is_clip else None
            if self.vgg is None:
                from iqa.semantic import VGG16Backbone

                self.vgg = VGG16Backbone(o.vgg16_weights or None).to(device)
        self.opt_g = torch.optim.Adam(self.net.parameters(), lr=o.lr_g, betas=tuple(o.betas))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=o.lr_d, betas=tuple(o.betas)) if self.disc else None

    def _image_side(self):
        from iqa.semantic import VGG16Backbone, build_trained_backbone
        from sr_methods.clipsr.image import ImageSide

        o = self.opts
        levels = o.image_levels or None
        if o.image == "clip":
            if not hasattr(self.encoder, "model"):
                raise SrbenchError("image = \"clip\" needs a CLIP sentence encoder (text = \"clip:...\")")
            return ImageSide(build_trained_backbone(o.text, o.text_weights or None), levels=levels)
        aligner = None
        path = resolve_aligner(o.aligner)
        if path is not None:
            from sr_methods.trained import load_network

            aligner, rec, _ = load_network(path)
            if rec.get("arch") != "clip-sr-align":
                raise SrbenchError(f"{path} is a {rec.get('arch')} checkpoint, not a clip-sr-align one")
            from sr_methods.clipsr.nets import text_encoder_sha256

            want = rec["arch_options"].get("text_sha256")
            if want and want != text_encoder_sha256(self.encoder):
                raise SrbenchError(f"{path} aligns VGG16 to another sentence encoder (sha256 {want})")
            self.aligner_record = {"path": str(path), "sha256": _sha(path)}
        return ImageSide(VGG16Backbone(o.vgg16_weights or None), levels=levels, aligner=aligner)

    def _load_init(self) -> None:
        from sr_methods.trained import read_checkpoint

        tensors, rec, _ = read_checkpoint(self.init)
        if rec.get("arch") != "clip-sr" or int(rec.get("scale", 0)) != self.cfg.scale:
            raise SrbenchError(f"{self.init} is a {rec.get('arch')} x{rec.get('scale')} checkpoint, not clip-sr "
                               f"x{self.cfg.scale}")
        state = self.net.state_dict()
        bad = [k for k, v in tensors.items() if k in state and v.shape != state[k].shape]
        if bad:
            raise SrbenchError(f"{self.init}: tensors {bad[:3]} have other shapes than this network's")
        skipped = sorted(set(tensors) - set(state))
        fresh = sorted(set(state) - set(tensors))
        self.net.load_state_dict({**state, **{k: v.float() for k, v in tensors.items() if k in state}})
        if skipped or fresh:
            self.echo(f"--init {self.init}: {len(skipped)} tensors not in this network left out (e.g. "
                      f"{skipped[:1]}), {len(fresh)} start fresh (e.g. {fresh[:1]})")

    def split(self, images):
        return split_held_out(images, self.opts.holdout)

    def modules(self):
        return {"net": self.net, **({"disc": self.disc} if self.disc is not None else {})}

    def optimizers(self):
        return {"g": self.opt_g, **({"d": self.opt_d} if self.opt_d is not None else {})}

    def generator(self):
        return self.net

    def perceptual_feats(self, x: torch.Tensor) -> torch.Tensor:
        o = self.opts
        size = o.perceptual_size
        if size and x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        return self.vgg(x, (o.perceptual_level,))[0][o.perceptual_level]

    def _shares(self) -> bool:
        """Whether the perceptual loss can reuse the image side's VGG16 pass (same size, level read)."""
        s = self.side
        return (s is not None and not s.is_clip and self.opts.perceptual_size == s.size
                and self.opts.perceptual_level in s.levels)

    def step(self, lr, hr, k, g, autocast):
        from sr_methods.clipsr.losses import (
            generator_adversarial,
            hinge_d,
            ma_gp,
            roll_mismatch,
        )

        o = self.opts
        texts, _ = self.batch_captions(k, g)
        sent = self.embed(texts)
        out: dict[str, torch.Tensor] = {}
        with autocast():
            fake = self.net(lr, sent)
        real_feats = fake_feats = None
        if self.disc is not None:
            with autocast():
                fake_maps, emb, fake_feats = self.side.run(fake)  # one pass: D's step reads it detached
                with torch.no_grad():
                    real_maps, _, real_feats = self.side.run(hr)
            # the discriminator's step
            real_maps = [m.float().detach().requires_grad_(True) for m in real_maps]
            s = sent.detach().clone().requires_grad_(True)
            self.disc.requires_grad_(True)
            d_real = self.disc(real_maps, s)
            d_fake = self.disc([m.float().detach() for m in fake_maps], sent)
            d_mis = self.disc([m.detach() for m in real_maps], roll_mismatch(sent))
            loss_d = hinge_d(d_real, d_fake, d_mis)
            gp = ma_gp(d_real, [*real_maps, s], weight=o.gp, power=o.gp_power) if o.gp else torch.zeros(())
            self.opt_d.zero_grad(set_to_none=True)
            (loss_d + gp).backward()
            self.opt_d.step()
            out.update(d=loss_d.detach(), gp=gp.detach(), d_real=d_real.mean().detach(), d_fake=d_fake.mean().detach())
        loss = o.l1 * (fake.float() - hr).abs().mean()
        out["l1"] = (fake.float() - hr).abs().mean().detach()
        if self.disc is not None:  # the generator's adversarial and text-image terms, against the updated D
            self.disc.requires_grad_(False)
            logits = self.disc([m.float() for m in fake_maps], sent)
            adv, cos = generator_adversarial(logits.float(), emb if o.sim else None, sent, sim_weight=o.sim)
            loss = loss + o.adv * adv
            out.update(g_adv=-logits.mean().detach(), cos=cos)
        if o.perceptual:
            share = self._shares()
            with autocast():
                pf = fake_feats[o.perceptual_level] if share else self.perceptual_feats(fake)
                with torch.no_grad():
                    pr = real_feats[o.perceptual_level] if share else self.perceptual_feats(hr)
            perc = F.mse_loss(pf.float(), pr.float())
            loss = loss + o.perceptual * perc
            out["perceptual"] = perc.detach()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        out["g"] = loss.detach()
        return out

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        import iqa
        from bench.run.degradations import parse_degradation

        held = self.held_out_set()
        if not held:
            return {}
        deg = parse_degradation(self.cfg.degradation_key())
        psnr = iqa.create_metric("psnr", device=self.device)
        was = self.net.training
        self.net.eval()
        sums = {"caption": 0.0, "empty": 0.0, "mismatched": 0.0}
        try:
            for i, (x, caps) in enumerate(held):
                hr, lr = (t.to(self.device) for t in deg.for_image(x, 0, f"heldout:{i}"))
                other = held[(i + 1) % len(held)][1][0]
                for kind, text in (("caption", caps[0]), ("empty", ""), ("mismatched", other)):
                    sr = iqa.quantize_uint8(self.net(lr, self.embed([text])).float().clamp(0, 1))
                    sums[kind] += float(psnr(sr, hr, scale=self.cfg.scale)[0])
        finally:
            self.net.train(was)
        figures = {f"val_heldout_psnr_{k}": v / len(held) for k, v in sums.items()}
        self.echo("clip-sr held-out PSNR-Y (" + ", ".join(f"{k} {v / len(held):.3f}" for k, v in sums.items()) + ")")
        return {**figures, "val_heldout_images": len(held)}

    def export(self, state):
        from sr_methods.clipsr.nets import text_encoder_sha256

        o = self.opts
        arch = {"scale": self.cfg.scale, "channels": list(o.channels), "cond_dim": o.cond_dim, "text": o.text,
                "text_sha256": text_encoder_sha256(self.encoder), "prompt_predictor": o.prompt_predictor,
                "n_prompts": self.net.generator.adapter.n_prompts if self.net.generator.adapter is not None else None}
        if o.text_weights:
            arch["text_weights"] = o.text_weights
        guide = None
        if self.side is not None:
            guide = {**self.side.backbone.provenance(), "image": o.image,
                     "aligner": getattr(self, "aligner_record", None)}
        elif self.vgg is not None:
            guide = self.vgg.provenance()
        return dict(state), {"arch": "clip-sr", "arch_options": arch,
                             "backbone": {**(guide or {}), "text_encoder": self.encoder.provenance()}}


def _sha(path: Path) -> str:
    from iqa.assets import sha256_file

    return sha256_file(path)


def _presets() -> dict[str, tuple[TrainConfig, Options]]:
    out = {}
    common: dict[str, Any] = {"patch": 256, "log_every": 10, "ckpt_every": 50, "val_images": 8, "val_crop": 256,
                              "val_metrics": ("psnr", "lpips")}
    for scale in (4, 8, 16):
        sfx = "" if scale == 4 else f"-x{scale}"
        out[f"cpu-warmup{sfx}"] = (TrainConfig(scale=scale, batch=8, steps=300, ema=0.0,
                                               sets=("t91", "bsds500") + CAPTIONED, **common),
                                   Options(gan=False, perceptual=0.0))
        cpu = TrainConfig(scale=scale, batch=4, steps=250, ema=0.99, sets=CAPTIONED, **common)
        out[f"cpu{sfx}"] = (cpu, Options())
        out[f"cpu-noprompt{sfx}"] = (cpu, Options(prompt_predictor=False))
        out[f"gpu{sfx}"] = (TrainConfig(scale=scale, patch=256, batch=16, steps=100_000, ema=0.999, sets=CAPTIONED,
                                        log_every=100, ckpt_every=2000, val_every=5000),
                            Options(text="clip:ViT-B-32/openai", image="clip", aligner="",
                                    channels=(256, 512, 512, 512), cond_dim=512, d_width=768, d_out=512, d_hidden=128,
                                    perceptual_size=0))
    return out


CLIPSR.presets = _presets()
__all__ = ["CLIPSR", "CLIPSRAlign", "split_held_out"]
