"""The training loop every SR recipe plugs into (``srbench train METHOD``).

A recipe (`Recipe`) gives the networks, their optimisers and one optimisation step; the loop owns
the rest, the same for every method:

- data: HR patches of ``<data>/train`` (`bench.train.data`), LR from the config's degradation,
  batch ``k`` fixed by ``(seed, k)``;
- seeding: the recipe's networks are built after ``torch.manual_seed(seed)``; the step gets a
  ``torch.Generator`` seeded by ``(seed, k)`` for any randomness of its own;
- resume: ``state.pt`` (every module, optimiser, the EMA and the step, saved every ``ckpt_every``
  steps, atomically) ends a resumed run with the same weights as an uninterrupted one;
- EMA of the generator's weights (``ema`` decay; 0: off), used for validation and the checkpoint;
- AMP: bfloat16 autocast on CUDA (``amp``), losses in float32; nothing on the CPU;
- logging: a progress bar with the losses, ``train_log.jsonl`` (one line every ``log_every``
  steps and one per validation);
- validation every ``val_every`` steps and at the end on Kodak24 (``<data>/train/kodak24``, held
  out of the training sets by default): central ``val_crop`` crops, LR by the training
  degradation (seed 0), scored by ``val_metrics`` (PSNR-Y, LPIPS, DISTS, SFD-IQA); a metric that
  cannot be built here is named once and left out, never filled in;
- the checkpoint (`sr_methods.trained`): fp16 safetensors with the method, architecture, scale,
  config, training-image hashes, parent checkpoint, backbone, wall time and validation figures.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from iqa.errors import SrbenchError


@dataclass(frozen=True)
class TrainConfig:
    """What every recipe shares; a recipe's own options live in its ``Options`` (``[method]`` in a
    TOML config)."""

    scale: int = 4
    patch: int = 128  # HR patch side (a multiple of the scale)
    batch: int = 8
    steps: int = 1000
    degradation: str = "bicubic"  # a family (bicubic, realesrgan, bdn, dn) at `scale`, or a full key
    sets: tuple[str, ...] = ("t91", "bsds500")  # Kodak24 is the validation set
    seed: int = 0
    ema: float = 0.999  # EMA decay of the generator's weights (0: no EMA)
    amp: bool = True  # bfloat16 autocast on CUDA; ignored on the CPU
    log_every: int = 10
    ckpt_every: int = 100
    val_every: int = 0  # 0: validate at the end only
    val_images: int = 24
    val_crop: int = 256
    val_metrics: tuple[str, ...] = ("psnr", "ssim", "lpips", "dists", "sfd-iqa-vgg16")
    device: str = "auto"

    def degradation_key(self) -> str:
        from bench.run.degradations import FAMILIES, parse_degradation

        d = self.degradation.strip().lower()
        key = (f"x{self.scale}" if d == "bicubic" else f"{d}-x{self.scale}") if d in FAMILIES else d
        deg = parse_degradation(key)
        if deg.scale != self.scale:
            raise SrbenchError(f"degradation {key!r} is x{deg.scale}, but the config trains x{self.scale}")
        return deg.key

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class Recipe:
    """One method's training: subclasses set ``method``, ``Options`` and ``presets`` and implement
    the methods below. ``self.opts``, ``self.cfg`` and ``self.device`` are set by the loop."""

    method: str = "?"
    Options: type = object
    presets: dict[str, tuple[TrainConfig, Any]] = {}

    def __init__(self, cfg: TrainConfig, opts: Any, device: torch.device, *, init: Path | None = None,
                 echo: Callable[[str], None] = print):
        self.cfg, self.opts, self.device, self.init, self.echo = cfg, opts, device, init, echo

    def modules(self) -> dict[str, nn.Module]:
        """Every module whose state is trained (saved in ``state.pt``)."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def generator(self) -> nn.Module:
        """The network that maps LR to SR (float, ``[0, 1]``): what EMA tracks and validation runs."""
        raise NotImplementedError

    def step(self, lr: torch.Tensor, hr: torch.Tensor, k: int, g: torch.Generator,
             autocast: Callable[[], Any]) -> dict[str, torch.Tensor]:
        """One optimisation step (zero_grad, backward, optimiser steps); returns its losses."""
        raise NotImplementedError

    def export(self, generator_state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors to ship, record)`` from the generator's (EMA) state: the record holds at least
        ``arch``, ``arch_options`` and may add ``base``, ``backbone``; tensors are cast to float16
        by the loop."""
        raise NotImplementedError

    def validate(self) -> dict[str, Any]:
        """The recipe's own validation figures (``val_*`` keys), on the generator's current weights
        (the EMA ones when the loop validates): added to the loop's at every validation, in
        ``train_log.jsonl`` and the checkpoint's ``validation``. ``self.data_root`` (the run's data
        root) and ``self.sampler`` (its `PatchSampler`) are set by the loop before the first step."""
        return {}

    def split(self, images: list[tuple[Path, str]]) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
        """``(training images, held-out images)`` of the run's ``(path, sha256)`` list: a recipe that
        validates on a held-out part of its training data keeps that part away from the sampler
        (both lists are recorded in the checkpoint). Default: everything trains."""
        return images, []

    def parent(self) -> dict[str, Any] | None:
        """``{"path", "sha256"}`` of the checkpoint this training started from, if any."""
        if self.init is None:
            return None
        from iqa.assets import sha256_file

        return {"path": str(self.init), "sha256": sha256_file(self.init)}


# -- configs --------------------------------------------------------------------------------------------------

def load_config(recipe: type[Recipe], spec: str | None, **overrides: Any) -> tuple[TrainConfig, Any]:
    """A preset name of the recipe (``cpu``, ``gpu``) or a TOML file (``preset = "cpu"`` to start
    from, top-level `TrainConfig` keys, a ``[method]`` table of the recipe's options); overrides win."""
    spec = spec or "cpu"
    if spec in recipe.presets:
        cfg, opts = recipe.presets[spec]
    else:
        from bench.run.spec import read_toml

        path = Path(spec)
        data = read_toml(path, f"config not found (or use a preset: {', '.join(recipe.presets)})")
        preset = data.pop("preset", "cpu")
        if preset not in recipe.presets:
            raise SrbenchError(f"{path}: unknown preset {preset!r} (known: {', '.join(recipe.presets)})")
        cfg, opts = recipe.presets[preset]
        mopts = data.pop("method", {})
        known = {f.name for f in fields(TrainConfig)}
        if unknown := sorted(set(data) - known):
            raise SrbenchError(f"{path}: unknown keys {unknown} (known: {sorted(known)} and a [method] table)")
        okn = {f.name for f in fields(opts)}
        if unknown := sorted(set(mopts) - okn):
            raise SrbenchError(f"{path}: unknown [method] keys {unknown} for {recipe.method} (known: {sorted(okn)})")
        cfg = replace(cfg, **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        opts = replace(opts, **{k: tuple(v) if isinstance(v, list) else v for k, v in mopts.items()})
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    check_config(cfg)
    return cfg, opts


def check_config(cfg: TrainConfig) -> None:
    for name in ("scale", "patch", "batch", "steps", "log_every", "ckpt_every", "val_images", "val_crop"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "steps" else 1):
            raise SrbenchError(f"{name} must be a positive integer, got {v!r}")
    if not 0.0 <= cfg.ema < 1.0:
        raise SrbenchError(f"ema must be in [0, 1), got {cfg.ema!r}")
    if cfg.patch % cfg.scale or cfg.val_crop % cfg.scale:
        raise SrbenchError(f"patch ({cfg.patch}) and val_crop ({cfg.val_crop}) must be multiples of the scale "
                           f"x{cfg.scale}")
    cfg.degradation_key()


# -- EMA ------------------------------------------------------------------------------------------------------

class EMA:
    """Exponential moving average of a module's floating-point state (buffers copied as they are)."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for k, v in module.state_dict().items():
            if v.is_floating_point():
                self.state[k].mul_(self.decay).add_(v.detach(), alpha=1.0 - self.decay)
            else:
                self.state[k].copy_(v)


# -- validation -------------------------------------------------------------------------------------------------

class Validator:
    """Kodak24 (or the ``val_images`` first of it): central crops, LR by the training degradation."""

    def __init__(self, cfg: TrainConfig, data_root: Path, device: torch.device, echo: Callable[[str], None]):
        import iqa
        from bench.run.degradations import derive_seed, parse_degradation
        from bench.run.io import read_image
        from iqa.resize import modcrop

        folder = data_root / "train" / "kodak24"
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
        if not files:
            raise SrbenchError(f"no validation images in {folder} (Kodak24): validation needs them")
        if "kodak24" in cfg.sets:
            echo("!! Kodak24 is among the training sets: the validation figures are not held out")
        self.device = device
        deg = parse_degradation(cfg.degradation_key())
        self.pairs = []
        for p in files[: cfg.val_images]:
            x = read_image(p)[None]
            h, w = x.shape[-2:]
            c = min(cfg.val_crop, h, w) // cfg.scale * cfg.scale
            t, l = (h - c) // 2, (w - c) // 2
            hr = modcrop(x[..., t:t + c, l:l + c], cfg.scale)
            hr, lr = deg.apply(hr, seed=derive_seed(0, p.stem, deg.key))
            self.pairs.append((hr, (lr.clamp(0, 1) * 255).round() / 255))
        self.metrics: dict[str, Any] = {}
        self.unavailable: dict[str, str] = {}
        for name in cfg.val_metrics:
            try:
                self.metrics[name] = iqa.create_metric(name, device=device)
            except SrbenchError as e:
                if isinstance(e, iqa.UnknownNameError):
                    raise
                self.unavailable[name] = str(e)
                echo(f"!! validation metric {name} cannot run here, left out: {e}")
        self.scale = cfg.scale

    @torch.no_grad()
    def __call__(self, net: nn.Module) -> dict[str, float]:
        import iqa

        sums: dict[str, float] = {n: 0.0 for n in self.metrics}
        for hr, lr in self.pairs:
            sr = iqa.quantize_uint8(net(lr.to(self.device)).float().clamp(0, 1))
            hr = hr.to(self.device)
            for name, m in self.metrics.items():
                sums[name] += float(m(sr, hr, scale=self.scale)[0])
        return {f"val_{n}": v / len(self.pairs) for n, v in sums.items()}


# -- the loop ----------------------------------------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from bench.run.runner import resolve_device as strict

    return strict(name)


def _fingerprint(cfg: TrainConfig, opts: Any, images: list[tuple[Path, str]], parent: Any) -> str:
    import hashlib

    what = {**cfg.to_dict(), "steps": None, "log_every": None, "ckpt_every": None, "val_every": None,
            "device": None, "options": asdict(opts), "images": [h for _, h in images], "parent": parent}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def train(recipe_cls: type[Recipe], cfg: TrainConfig, opts: Any, out: str | os.PathLike[str], *,
          data_root: str | os.PathLike[str] | None = None, init: str | os.PathLike[str] | None = None,
          echo: Callable[[str], None] = print, progress: bool | None = None, validate: bool = True) -> Path:
    """Train (or resume) ``recipe_cls`` into ``out``; returns ``out/model.safetensors``."""
    from bench.train.data import PatchSampler, find_data_root, training_images
    from sr_methods.trained import save_checkpoint

    check_config(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = find_data_root(data_root)
    dev = resolve_device(cfg.device)
    images = training_images(root, cfg.sets)
    echo(f"{recipe_cls.method}: {len(images)} training images under {root}/train ({', '.join(cfg.sets)}), "
         f"x{cfg.scale} {cfg.degradation_key()}, {cfg.steps} steps of {cfg.batch} x {cfg.patch} px on {dev}")
    init_path = Path(init) if init else None
    torch.manual_seed(cfg.seed)
    recipe = recipe_cls(cfg, opts, dev, init=init_path, echo=echo)
    parent = recipe.parent()
    images, held_out = recipe.split(images)
    if not images:
        raise SrbenchError(f"{recipe_cls.method}: no training image left after holding out {len(held_out)}")
    recipe.held_out = [p for p, _ in held_out]
    fingerprint = _fingerprint(cfg, opts, images, parent)
    sampler = PatchSampler([p for p, _ in images], patch=cfg.patch, batch=cfg.batch,
                           degradation=cfg.degradation_key(), seed=cfg.seed)
    recipe.data_root, recipe.sampler = root, sampler
    mods, opts_ = recipe.modules(), recipe.optimizers()
    gen = recipe.generator()
    ema = EMA(gen, cfg.ema) if cfg.ema > 0 else None
    state_path = out / "state.pt"
    start, seconds_before = 0, 0.0
    if state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        if st.get("fingerprint") != fingerprint:
            raise SrbenchError(f"{out} holds a training with another config, other images or another --init; "
                               f"use a new --out")
        for k, m in mods.items():
            m.load_state_dict(st["modules"][k])
        for k, o in opts_.items():
            o.load_state_dict(st["optimizers"][k])
        if ema is not None:
            ema.state = {k: v.to(dev) for k, v in st["ema"].items()}
        start, seconds_before = int(st["step"]), float(st.get("seconds", 0.0))
        echo(f"resuming at step {start}")
    if ema is not None:
        ema.state = {k: v.to(dev) for k, v in ema.state.items()}
    amp = torch.bfloat16 if cfg.amp and dev.type == "cuda" else None

    def autocast():
        return torch.autocast(dev.type, dtype=amp, enabled=amp is not None)

    validator = Validator(cfg, root, dev, echo) if validate and cfg.val_metrics else None

    def run_validation() -> dict[str, Any]:
        if not validate:
            return {}
        net = gen
        if ema is not None:  # score the EMA weights, then put the live ones back
            live = {k: v.detach().clone() for k, v in gen.state_dict().items()}
            gen.load_state_dict(ema.state)
        was = gen.training
        gen.eval()
        try:
            return {**(validator(net) if validator is not None else {}), **recipe.validate()}
        finally:
            gen.train(was)
            if ema is not None:
                gen.load_state_dict(live)

    from tqdm import tqdm

    log = (out / "train_log.jsonl").open("a")
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=cfg.steps, initial=start, disable=not show, desc=recipe_cls.method, unit="step", file=sys.stderr)
    t0 = time.perf_counter()
    last: dict[str, float] = {}
    for k in range(start, cfg.steps):
        hr, lr = sampler(k)
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + k)
        for m in mods.values():
            m.train()
        losses = recipe.step(lr.to(dev), hr.to(dev), k, g, autocast)
        if ema is not None:
            ema.update(gen)
        last = {n: float(v.detach()) for n, v in losses.items()}
        bar.set_postfix({n: f"{v:.4g}" for n, v in last.items()})
        bar.update(1)
        done = k + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            log.write(json.dumps({"step": done, **last, "seconds": round(seconds_before + time.perf_counter() - t0, 2)})
                      + "\n")
            log.flush()
        if cfg.val_every and done % cfg.val_every == 0 and done != cfg.steps:
            log.write(json.dumps({"step": done, **run_validation()}) + "\n")
            log.flush()
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            tmp = state_path.with_suffix(".tmp")
            torch.save({"modules": {n: m.state_dict() for n, m in mods.items()},
                        "optimizers": {n: o.state_dict() for n, o in opts_.items()},
                        "ema": ema.state if ema is not None else None, "step": done,
                        "seconds": seconds_before + time.perf_counter() - t0, "fingerprint": fingerprint}, tmp)
            os.replace(tmp, state_path)
    bar.close()
    wall = seconds_before + time.perf_counter() - t0
    figures = run_validation()
    if figures:
        log.write(json.dumps({"step": cfg.steps, **figures}) + "\n")
    log.close()
    state = ema.state if ema is not None else gen.state_dict()
    tensors, record = recipe.export({k: v.detach().cpu() for k, v in state.items()})
    record = {"method": recipe_cls.method, "scale": cfg.scale, **record,
              "config": {**cfg.to_dict(), "method": asdict(opts)},
              "images": [[str(p.relative_to(root)), h] for p, h in images], "parent": parent,
              **({"held_out": [[str(p.relative_to(root)), h] for p, h in held_out]} if held_out else {}),
              "wall_seconds": {"train": round(wall, 1), "device": str(dev), "torch": torch.__version__,
                               "amp": str(amp).replace("torch.", "") if amp else None},
              "validation": {**figures, "set": "kodak24", "images": len(validator.pairs) if validator else 0,
                             "crop": cfg.val_crop, "unavailable": sorted(validator.unavailable) if validator else []}}
    half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    path = save_checkpoint(half, record, out / "model.safetensors")
    shown = ", ".join(f"{k[4:].upper()} {v:.4f}" for k, v in figures.items() if isinstance(v, (int, float)))
    echo(f"checkpoint: {path} ({wall:.0f} s{'; Kodak24 ' + shown if shown else ''})")
    return path
