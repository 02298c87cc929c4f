"""Opinion-unaware training of the SFD discriminators (Feat-D and the prompt/anchor pair) that
SFD-IQA scores with: real HR patches against fakes, no human opinion scores.

``srbench iqa train sfd --backbone vgg16 --config cpu --out runs/sfd-vgg16``

- **Real**: random ``patch``-sized crops of the training images only: ``<data>/train/t91``,
  ``train/bsds500`` (train + test) and ``train/kodak24`` (``sets`` picks some of them, e.g. to
  keep Kodak24 out as a validation set). Every training file is hashed and the
  list (path, sha256) goes into the checkpoint. A file whose sha256 equals a file of a test set found
  in the data root (Set5, Set14, BSD100, Urban100, Manga109, CelebA-HQ, ACDC) stops the training.
- **Fakes**: crops of the same images, made worse in two ways (``fake_sr_share`` of them by SR):
  SR outputs of the available methods (bicubic, bilinear, nearest, Lanczos and any network given:
  ``esrgan-thick``, ``realesrgan-x4plus``, ``craft-x4`` ...) at x2..x16 from MATLAB-bicubic LR; and
  synthetic degradations: Gaussian blur (sigma 0.8-3), Gaussian noise (sigma 3-30 /255), JPEG
  (quality 10-60), bicubic down-up (x2-x4). Methods whose weights are missing are skipped loudly.
  With ``pair_fakes`` fake ``i`` is made from (a crop centred on) real patch ``i mod n_real``, so
  both pools hold the same content and only the degradation tells them apart; otherwise fakes come
  from their own random crops.
- Real and fake pools are drawn once from the seed and saved (``pools.safetensors``, uint8), so a
  resumed run sees the same data. With ``cache_features`` (the CPU preset) the frozen backbone runs
  once per pool patch and the heads train on the cached features (fast on a CPU); otherwise each
  batch runs the backbone, with random flips and 90-degree rotations.
- Loss: binary cross-entropy, real -> 1 and fake -> 0, for the Feat-D map and the prompt-pair logit,
  plus ``rank_weight`` x a ranking term (``iqa.sfd.SFD.losses``): among the SR fakes of a batch, the
  one made at the smaller scale should get the higher logit, from both heads. The scale is a known
  degradation level, so the term is as opinion-free as the labels; it teaches the heads that an
  x16 output is worse than an x4 one, which real/fake labels alone never say (synthetic
  degradations are not ranked: their levels do not compare with scales). Adam. 10 % of each pool
  is held out and the accuracy on it is logged.
- AMP (``amp``, CUDA only) runs the live backbone under bfloat16 autocast where the GPU has it
  (float16 with a gradient scaler elsewhere); the losses stay in float32.
- Reproducible: one seed fixes the pools, the initialisation and every batch (batch ``k`` draws
  from a generator seeded with ``(seed, k)``), so a run resumed from ``state.pt`` ends with the same
  weights as an uninterrupted one. ``train_log.jsonl`` gets a line every ``log_every`` steps.

Presets: ``cpu`` (the default: 128-pixel patches, 4096 + 4096 paired pool patches, fakes from the
interpolations and ``esrgan-thick``, cached features (about 6.5 GB of RAM for VGG16), 1500 steps;
21 minutes measured on 2 cores: pools 2.4 min, feature caching 10.5 min, steps 7.3 min) and
``gpu`` (the backbone's native patch size, 16384 + 16384 paired patches, fakes also from
``realesrgan-x4plus``, ``realesr-animevideov3-x4`` and ``craft-x4``, live features with
augmentation, 20000 steps, AMP). Measured on one H100 (torch 2.11, CUDA 13, 16 CPU cores) with
VGG16 on T91 + BSDS500, ``esrgan-thick`` and ``realesrgan-x4plus`` missing (their weights were not
on that machine; skipped loudly): pools 151 s (networks run on the training device), 20000 steps in 658 s
(33 ms a step with the held-out check every 100 steps), about 13.5 minutes in all; one step of
batch 64 at 224 px took 25.4 ms in float32 and 21.8 ms under bfloat16 autocast (median of 30).

The ``cpu`` preset is the recipe of the shipped checkpoint, which set ``sets = ["t91", "bsds500"]``
to hold Kodak24 out as its validation set (SR outputs of Kodak24's central 256-pixel crops, the opinion-free protocol of
``srbench iqa eval``). On that set, SRCC of SFD-IQA against DISTS was 0.764 with the earlier
recipe (1024 + 1024 unpaired patches, 600 steps), 0.784 with this one and 0.806 with this one and
the anchor pair on the mean and std of ``relu5_3`` (``iqa.sfd``'s ``embedding``, now the default),
and 0.911 with the ranking term added (``rank_weight`` = 1; the figures are in ``iqa.sfd``). Adding the GAN
networks' outputs to the earlier recipe's fakes lowered it to 0.725, so the CPU preset leaves
them out. The ``gpu`` preset keeps them; its H100 run above (with the ranking term, and without
``esrgan-thick`` and ``realesrgan-x4plus``) scored 0.904 against DISTS, 0.843 against LPIPS and
0.999 on graded distortions on the same validation set (the shipped CPU checkpoint: 0.911, 0.848,
1.000), so four times the patches, native-size crops and 13 times the steps bought nothing here. A TOML
file may set any field of
`TrainConfig` and an ``[sfd]`` table with the fields of ``iqa.sfd.SFDConfig``.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from iqa.errors import SrbenchError
from iqa.sfd import SFD, SFDConfig, save_sfd

from .data import find_data_root, training_images  # one test-set check for every training
from .loop import resolve_device  # one device check for every training

__all__ = ["PRESETS", "TrainConfig", "fake_severity", "load_config", "train_sfd", "training_images"]

TRAIN_SETS = ("t91", "bsds500", "kodak24")  # the sets this training draws from (bench.train.data has all)


@dataclass
class TrainConfig:
    patch: int = 128  # 0 = the backbone's native size
    n_real: int = 4096
    n_fake: int = 4096
    steps: int = 1500
    batch: int = 32
    lr: float = 2e-4
    lr_prompt: float = 2e-3
    methods: tuple[str, ...] = ("bicubic", "bilinear", "nearest", "lanczos", "esrgan-thick")
    scales: tuple[int, ...] = (2, 3, 4, 8, 16)
    degradations: tuple[str, ...] = ("blur", "noise", "jpeg", "resize")
    fake_sr_share: float = 0.5
    pair_fakes: bool = True  # fake i is made from the same crop as real i (same content in both pools)
    rank_weight: float = 1.0  # weight of the ranking term across SR scales (0 = real/fake labels only)
    cache_features: bool = True
    amp: bool = False
    holdout: float = 0.1
    seed: int = 0
    log_every: int = 20
    ckpt_every: int = 100
    device: str = "auto"
    sets: tuple[str, ...] = TRAIN_SETS  # which of train/{t91,bsds500,kodak24}; leave one out to validate on it
    sfd: SFDConfig = field(default_factory=SFDConfig)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("methods", "scales", "degradations", "sets"):
            d[key] = list(d[key])
        return d


PRESETS = {
    "cpu": TrainConfig(),
    "gpu": TrainConfig(patch=0, n_real=16384, n_fake=16384, steps=20000, batch=64, cache_features=False, amp=True,
                       methods=("bicubic", "bilinear", "nearest", "lanczos", "esrgan-thick", "realesrgan-x4plus",
                                "realesr-animevideov3-x4", "craft-x4"), log_every=100, ckpt_every=1000),
}


def load_config(spec: str | None, backbone: str | None = None, **overrides: Any) -> TrainConfig:
    """A preset name (``cpu``, ``gpu``) or a TOML file; ``backbone`` and ``overrides`` win."""
    from bench.run.spec import read_toml

    spec = spec or "cpu"
    if spec in PRESETS:
        cfg = PRESETS[spec]
    else:
        path = Path(spec)
        data = read_toml(path, f"config not found (or use a preset: {', '.join(PRESETS)})")
        preset = data.pop("preset", "cpu")
        if preset not in PRESETS:
            raise SrbenchError(f"{path}: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        base = PRESETS[preset]
        sfd = replace(base.sfd, **SFDConfig.from_dict(data.pop("sfd", {})).__dict__) if "sfd" in data else base.sfd
        known = {f.name for f in fields(TrainConfig)} - {"sfd"}
        unknown = set(data) - known
        if unknown:
            raise SrbenchError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(known)} and [sfd])")
        for key in ("methods", "scales", "degradations", "sets"):
            if key in data:
                data[key] = tuple(data[key])
        cfg = replace(base, sfd=sfd, **data)
    if backbone:
        cfg = replace(cfg, sfd=replace(cfg.sfd, backbone=backbone))
    if overrides:
        cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    bad = [d for d in cfg.degradations if d not in _DEGRADE]
    if bad:
        raise SrbenchError(f"unknown degradations {bad} (known: {', '.join(_DEGRADE)})")
    if not cfg.rank_weight >= 0:
        raise SrbenchError(f"rank_weight must be >= 0, got {cfg.rank_weight!r}")
    bad = [s for s in cfg.sets if s not in TRAIN_SETS]
    if bad or not cfg.sets:
        raise SrbenchError(f"training sets must be some of {', '.join(TRAIN_SETS)}, got {list(cfg.sets)}")
    return cfg


# -- data ---------------------------------------------------------------------------------------------------

def _read(path: Path) -> np.ndarray:
    from bench.run.io import read_uint8

    return read_uint8(path)


def _crop(rng: np.random.Generator, img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    t, l = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return img[t:t + size, l:l + size]


def _to_t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div(255)


def _to_u8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _blur(rng, a):
    from scipy.ndimage import gaussian_filter

    s = float(rng.uniform(0.8, 3.0))
    return np.clip(gaussian_filter(a.astype(np.float64), sigma=(s, s, 0), mode="reflect").round(), 0, 255).astype(np.uint8)


def _noise(rng, a):
    s = float(rng.uniform(3, 30))
    return np.clip(a + rng.normal(0, s, a.shape), 0, 255).round().astype(np.uint8)


def _jpeg(rng, a):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=int(rng.integers(10, 61)))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _resize(rng, a):
    from iqa.resize import imresize

    s = int(rng.choice([2, 3, 4]))
    h, w = a.shape[:2]
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
    lr = imresize(t, 1 / s)
    return imresize(lr, size=(h, w)).permute(1, 2, 0).numpy()


_DEGRADE: dict[str, Callable] = {"blur": _blur, "noise": _noise, "jpeg": _jpeg, "resize": _resize}


def build_pools(cfg: TrainConfig, images: list[tuple[Path, str]], patch: int, echo=print,
                progress: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``(real uint8 (N, 3, p, p), fake uint8 (M, 3, p, p), fake kinds)`` drawn from the seed."""
    import sr_methods
    from iqa.resize import imresize

    rng = np.random.default_rng([cfg.seed, 1])
    pics = [(p, _read(p)) for p, _ in images]
    big = [a for _, a in pics if min(a.shape[:2]) >= patch]
    if not big:
        raise SrbenchError(f"no training image is at least {patch}x{patch}")
    spots = []  # (image, top, left) of each real crop
    for _ in range(cfg.n_real):
        a = big[int(rng.integers(len(big)))]
        h, w = a.shape[:2]
        spots.append((a, int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))))
    real = np.stack([a[t:t + patch, l:l + patch] for a, t, l in spots])

    def source(i: int, size: int) -> np.ndarray | None:
        """A ``size`` crop for fake ``i``: centred on real crop ``i`` (``pair_fakes``), else random."""
        if cfg.pair_fakes:
            a, t, l = spots[i % len(spots)]
            h, w = a.shape[:2]
            if min(h, w) < size:
                return None
            off = (size - patch) // 2
            t, l = min(max(t - off, 0), h - size), min(max(l - off, 0), w - size)
            return a[t:t + size, l:l + size]
        src = [a for a in big if min(a.shape[:2]) >= size]
        return _crop(rng, src[int(rng.integers(len(src)))], size) if src else None
    from sr_methods.interpolation import InterpolationMethod

    methods, dev = {}, resolve_device(cfg.device)
    for name in cfg.methods:
        try:
            m = sr_methods.create_method(name)
        except SrbenchError as e:
            echo(f"!! fake method {name} skipped: {e}")
            continue
        # networks run on the training device; interpolations stay on the CPU (MATLAB's uint8 path)
        methods[name] = m if isinstance(m, InterpolationMethod) else m.to(dev)
    plan = []  # (kind, crop): SR jobs are run afterwards, grouped by method and scale
    for i in range(cfg.n_fake):
        job = None
        if methods and rng.random() < cfg.fake_sr_share:
            name = list(methods)[int(rng.integers(len(methods)))]
            scales = [s for s in cfg.scales if methods[name].supports(s)]
            if scales:
                s = int(rng.choice(scales))
                size = -(-patch // s) * s  # a multiple of the scale, >= patch
                crop = source(i, size)
                if crop is not None:
                    job = (f"{name}-x{s}", crop)
        if job is None:
            kind = cfg.degradations[int(rng.integers(len(cfg.degradations)))]
            job = (kind, _DEGRADE[kind](rng, source(i, patch)))
        plan.append(job)
    fake = [None] * len(plan)
    groups: dict[str, list[int]] = {}
    for i, (kind, _) in enumerate(plan):
        if kind in _DEGRADE:
            fake[i] = plan[i][1]
        else:
            groups.setdefault(kind, []).append(i)
    for kind, idx in groups.items():
        name, s = kind.rsplit("-x", 1)
        s = int(s)
        t0 = time.perf_counter()
        for i in idx:
            lr = imresize(torch.from_numpy(np.ascontiguousarray(plan[i][1])).permute(2, 0, 1), 1 / s)
            out = _to_u8(methods[name].upscale(lr.float().div(255).unsqueeze(0), s)[0])
            h0, w0 = (out.shape[0] - patch) // 2, (out.shape[1] - patch) // 2
            fake[i] = out[h0:h0 + patch, w0:w0 + patch]
        if progress:
            echo(f"fakes: {len(idx)} x {kind} in {time.perf_counter() - t0:.1f} s")
    kinds = [k for k, _ in plan]
    to = lambda arrs: torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return to(list(real)), to(fake), kinds


def fake_severity(kind: str) -> float:
    """The ranking term's severity of a fake: log2 of the scale for an SR output (``"nearest-x8"``:
    3.0), NaN (not ranked) for the synthetic degradations, whose levels are not comparable to scales."""
    name, sep, scale = kind.rpartition("-x")
    return float(np.log2(int(scale))) if sep and name and scale.isdigit() else float("nan")


# -- training -----------------------------------------------------------------------------------------------

def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    k = int(torch.randint(0, 4, (1,), generator=g))
    x = torch.rot90(x, k, dims=(-2, -1))
    return x.flip(-1) if bool(torch.randint(0, 2, (1,), generator=g)) else x


def _features(model: SFD, pool: torch.Tensor, dev, batch: int = 32):
    feats: dict[str, list] = {lv: [] for lv in model.levels}
    embs = []
    with torch.no_grad():
        for i in range(0, len(pool), batch):
            x = pool[i:i + batch].to(dev).float().div(255)
            f, e = model.features(x)
            for lv in model.levels:
                feats[lv].append(f[lv].half().cpu())
            embs.append(e.cpu())
    return {lv: torch.cat(v) for lv, v in feats.items()}, torch.cat(embs)


def train_sfd(cfg: TrainConfig, out: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None,
              backbone=None, echo: Callable[[str], None] = print, progress: bool | None = None) -> Path:
    """Train (or resume) into ``out``; returns the path of ``out/sfd.safetensors``."""
    from iqa.assets import write_safetensors
    from iqa.semantic import build_backbone

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_root = find_data_root(data_root)
    dev = resolve_device(cfg.device)
    images = training_images(data_root, cfg.sets)
    echo(f"training images: {len(images)} under {data_root}/train ({', '.join(cfg.sets)})")
    torch.manual_seed(cfg.seed)
    if backbone is None:
        backbone = build_backbone(cfg.sfd.backbone)
    patch = cfg.patch or backbone.native_size
    # the checkpoint records the patch size, so SFD-IQA scores on tiles of the size it trained on
    model = SFD(replace(cfg.sfd, patch=patch), backbone.to(dev)).to(dev)
    fingerprint = json.dumps({**cfg.to_dict(), "steps": None, "log_every": None, "ckpt_every": None,
                              "device": None, "images": [h for _, h in images]}, sort_keys=True, default=str)
    state_path, pools_path = out / "state.pt", out / "pools.safetensors"
    pools_ok = False
    if pools_path.is_file():
        from safetensors import safe_open

        with safe_open(str(pools_path), framework="pt") as f:
            pools_ok = (f.metadata() or {}).get("fingerprint") == fingerprint
            if pools_ok:
                real, fake = f.get_tensor("real"), f.get_tensor("fake")
                kinds = json.loads(f.metadata()["kinds"])
    if not pools_ok:
        t0 = time.perf_counter()
        real, fake, kinds = build_pools(cfg, images, patch, echo, progress=True)
        write_safetensors({"real": real, "fake": fake}, {"fingerprint": fingerprint, "kinds": json.dumps(kinds)},
                          pools_path)
        echo(f"pools: {len(real)} real + {len(fake)} fake {patch}x{patch} patches in {time.perf_counter() - t0:.0f} s")
    severity = torch.tensor([fake_severity(k) for k in kinds])
    n_hold_r, n_hold_f = int(len(real) * cfg.holdout), int(len(fake) * cfg.holdout)
    train_r, hold_r = torch.arange(n_hold_r, len(real)), torch.arange(n_hold_r)
    train_f, hold_f = torch.arange(n_hold_f, len(fake)), torch.arange(n_hold_f)

    groups = [{"params": model.featd.parameters(), "lr": cfg.lr},
              {"params": model.lpp.parameters(), "lr": cfg.lr_prompt}]
    opt = torch.optim.Adam(groups, betas=(0.9, 0.999))
    start, resume_scaler = 0, None
    if state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        if st.get("fingerprint") != fingerprint:
            raise SrbenchError(f"{out} holds a training with another config or other images; use a new --out")
        model.load_state_dict({**model.state_dict(), **st["model"]})
        opt.load_state_dict(st["optimizer"])
        resume_scaler = st.get("scaler")
        start = int(st["step"])
        echo(f"resuming at step {start}")

    # AMP (CUDA only): bfloat16 where the GPU has it (no loss scaling needed), else float16 with a
    # gradient scaler; the frozen backbone's forward pass is where the time goes
    amp_dtype = None
    if cfg.amp and dev.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    if start and resume_scaler:
        scaler.load_state_dict(resume_scaler)
    cached = None
    if cfg.cache_features:
        t0 = time.perf_counter()
        cached = (_features(model, real, dev), _features(model, fake, dev))
        echo(f"backbone features cached in {time.perf_counter() - t0:.0f} s")

    def heads(kind: int, idx: torch.Tensor, g: torch.Generator | None):
        if cached is not None:
            (f, e) = cached[kind]
            return model.heads({lv: v[idx].to(dev).float() for lv, v in f.items()}, e[idx].to(dev))
        x = (real if kind == 0 else fake)[idx].to(dev).float().div(255)
        if g is not None:
            x = _augment(x, g)
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            m, lg = model(x)
        return m.float(), lg.float()  # the losses in float32

    def evaluate() -> dict[str, float]:
        if not n_hold_r or not n_hold_f:
            return {}

        def held(kind: int, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            outs = [heads(kind, idx[i:i + 256], None) for i in range(0, len(idx), 256)]  # bounded memory
            return torch.cat([m.mean((1, 2, 3)) for m, _ in outs]), torch.cat([lg for _, lg in outs])

        with torch.no_grad():
            (mr, lr_), (mf, lf) = held(0, hold_r), held(1, hold_f)
        return {"hold_acc_featd": 0.5 * (float((mr > 0).float().mean()) + float((mf < 0).float().mean())),
                "hold_acc_lpp": 0.5 * (float((lr_ > 0).float().mean()) + float((lf < 0).float().mean()))}

    log = (out / "train_log.jsonl").open("a")
    show = sys.stderr.isatty() if progress is None else progress
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=start, disable=not show, desc="sfd", unit="step", file=sys.stderr)
    t_start, last = time.perf_counter(), {}
    half = cfg.batch // 2
    for step in range(start, cfg.steps):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        ir = train_r[torch.randint(len(train_r), (half,), generator=g)]
        jf = train_f[torch.randint(len(train_f), (cfg.batch - half,), generator=g)]
        model.featd.train()
        losses = SFD.losses(heads(0, ir, g), heads(1, jf, g), severity[jf], cfg.rank_weight)
        opt.zero_grad(set_to_none=True)
        scaler.scale(losses["total"]).backward()
        scaler.step(opt)
        scaler.update()
        last = {k: float(v.detach()) for k, v in losses.items()}
        bar.set_postfix({k: f"{v:.3f}" for k, v in last.items() if k in ("featd", "lpp", "rank")})
        bar.update(1)
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            model.eval()
            rec = {"step": done, **last, **evaluate(), "seconds": round(time.perf_counter() - t_start, 2)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            tmp = state_path.with_suffix(".tmp")
            torch.save({"model": model.trainable_state(), "optimizer": opt.state_dict(), "step": done,
                        "scaler": scaler.state_dict(), "fingerprint": fingerprint}, tmp)
            os.replace(tmp, state_path)
    bar.close()
    log.close()
    model.eval()
    held = evaluate()
    counts: dict[str, int] = {}
    for k in kinds:
        counts[k] = counts.get(k, 0) + 1
    record = {"images": [[str(p.relative_to(data_root)), h] for p, h in images], "n_images": len(images),
              "train_sets": list(cfg.sets), "steps": cfg.steps, "seed": cfg.seed, "config": cfg.to_dict(),
              "patch": patch, "fakes": counts, "final_losses": last, **held,
              "seconds_this_session": round(time.perf_counter() - t_start, 1), "device": str(dev),
              "amp": str(amp_dtype).replace("torch.", "") if amp_dtype is not None else None,
              "torch": torch.__version__}
    path = save_sfd(model, out / "sfd.safetensors", record)
    echo(f"checkpoint: {path} (held-out accuracy Feat-D {held.get('hold_acc_featd', float('nan')):.3f}, "
         f"LPP {held.get('hold_acc_lpp', float('nan')):.3f})")
    return path
