"""``srbench iqa eval``: how well do no-reference (NR) metrics judge image quality?

Two evaluations, both for any NR metric of the catalogue (``iqa.list_metrics()``, kind ``nr``) or
any `iqa.Metric` object with ``info.kind == "nr"``:

**1. Against human opinion** (`evaluate_on_database`): every image of an opinion-scored database
(`bench.nr.databases`: KonIQ-10k, LIVE Challenge, SPAQ, KADID-10k, TID2013, CSIQ, PIPAL) is scored
one at a time (batch of 1, at its own size; ``resize=N`` shrinks the longer side to N pixels first,
only when asked), files that cannot be read or scored are skipped with one line each, and SRCC,
KRCC, PLCC and PLCC after the VQEG logistic fit (`iqa.correlation.correlations`, 95 % bootstrap
intervals over images) are computed between the metric and the opinion scores. Both sides are
oriented first, metric scores by the metric's direction and opinion scores by the database's
(DMOS of CSIQ: lower is better), so +1 always means "agrees with people".

**2. Opinion-free** (`evaluate_opinion_free`), on real photographs no method was trained on:
Urban100, Set14, CelebA-HQ and ACDC (``bench.run.datasets`` names ``urban100``, ``set14``,
``celeba-hq``, ``acdc``; all four ACDC conditions), the first ``images_per_dataset`` images of each
(sorted by id; default 8), each cut to its central ``crop x crop`` pixels (default 256; smaller
sides are kept whole) and trimmed at the bottom/right to a multiple of 16 so that every SR scale
divides it.

(a) *Graded distortions*: each image is degraded at 5 levels of 4 distortion types. Every
distorted image is rounded to the uint8 grid, as a saved PNG would be.

| type | key | level 1 | level 2 | level 3 | level 4 | level 5 |
|---|---|---|---|---|---|---|
| Gaussian blur | ``blur`` | sigma 0.5 px | 1 | 2 | 3 | 4 |
| additive Gaussian noise | ``noise`` | std 2 (of 255) | 5 | 10 | 20 | 40 |
| JPEG | ``jpeg`` | quality 90 | 70 | 50 | 30 | 10 |
| bicubic down-up | ``downup`` | x2 | x3 | x4 | x8 | x16 |

- blur: separable Gaussian kernel of radius ceil(3 sigma) pixels, edges replicated;
- noise: i.i.d. per pixel and channel, std in 8-bit levels, clipped to [0, 255]; the generator is
  seeded from (seed, image, level) by `bench.run.degradations.derive_seed`;
- JPEG: Pillow's encoder at that quality (its default 4:2:0 chroma subsampling), then decoded;
- down-up: MATLAB-bicubic ``imresize`` (antialiased) to round(H/f) x round(W/f), then back to
  H x W.

Per (image, distortion type, metric) the SRCC between the metric's oriented score (higher =
better) and the *negated* level index (1..5) is taken: +1 means the metric ranks every worse
level as worse, -1 the reverse. A metric that gives the same score at every level has no ranking:
NaN, reported as ``n/a`` and counted, never an error. The table gives, per type, the mean over
images with its 95 % bootstrap interval (`bench.report.stats.bootstrap_mean`: ``n_boot`` resamples of
the images, default 1000, seeded), and ``overall``: the mean over images of each image's mean over
the four types (types without a ranking left out of that image's mean).

(b) *SR outputs*: each image is shrunk by MATLAB bicubic ``imresize(HR, 1/s)`` (``bench``'s
``xN`` degradation) at s = 2, 4, 8, 16 and upscaled by each SR method that supports s (default
the interpolation baselines ``bicubic``, ``nearest``, ``bilinear``, ``lanczos``; network methods
named with ``methods`` are added when they can be built, and skipped with a loud message
otherwise). Each SR output (rounded to uint8) gets its NR score and the full-reference scores
LPIPS and DISTS against the HR crop. When LPIPS or DISTS cannot be built (their ImageNet
backbone weights are missing) the evaluation says so on stderr and in the report, and uses the
next available of SSIM and PSNR (``basicsr`` protocol: Y channel, border of s pixels shaved)
instead; the column is then labelled with the metric actually used. SRCC and KRCC between the
oriented NR score and the oriented FR score over all SR outputs (+1 = the NR metric ranks SR
outputs as the FR metric does) come with 95 % bootstrap intervals that resample SR outputs
(`iqa.correlation.correlations`).

Outputs in ``out`` (default ``reports/iqa-eval/``): ``table.md`` / ``table.csv`` (one row per NR
metric: (a) per distortion type and overall, (b) vs each FR metric), the per-image scores
(``distortion_scores.csv``, ``distortion_srcc.csv``, ``sr_scores.csv``), ``differences.csv``
(each metric minus a reference metric, default ``niqe`` when evaluated: the overall SRCC of (a)
paired over images, the SRCCs of (b) paired over SR outputs, each with a 95 % bootstrap interval and
``better``/``worse``/``n.s.``; also a second table in ``table.md``), figures as PNG + SVG
(``levels_<metric>``: score vs level per distortion type; ``sr_<metric>_vs_<fr>``: NR score vs FR
score over SR outputs) and ``index.md`` tying them together. A database evaluation writes
``<database>_correlations.md`` / ``.csv`` and ``<database>_scores.csv``.

Cost: the metrics run on every distorted image and SR output, one image at a time. On 2 shared
CPU cores, one image per dataset (4 crops of 256 px) with NIQE, the four baselines plus three
networks, LPIPS and DISTS took 7.5 minutes, mostly NIQE and DISTS; the default 8 images per
dataset take about 8 times that on CPU: use ``--device cuda``, fewer images or smaller crops.

The command line (registered by `add_eval_parser`, handled by `cmd_eval`)::

    srbench iqa eval METRIC... [--dataset NAME (--root PATH | --hub) | --opinion-free]
                     [--images-per-dataset N] [--crop N] [--methods ...] [--out DIR] [--device ...]
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch

from iqa.errors import SrbenchError

from bench.run.io import write_csv

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["DEFAULT_DATASETS", "DEFAULT_FR_METRICS", "DEFAULT_METHODS", "DEFAULT_SCALES", "DISTORTIONS",
           "FR_FALLBACKS", "NRMetric", "OpinionFreeResult", "add_eval_parser", "apply_distortion", "center_crop",
           "cmd_eval", "evaluate_on_database", "evaluate_opinion_free", "resolve_nr_metrics"]

# key -> (title, what the level is, the 5 levels from mild to severe)
DISTORTIONS: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "blur": ("Gaussian blur", "sigma (px)", (0.5, 1.0, 2.0, 3.0, 4.0)),
    "noise": ("additive Gaussian noise", "std (of 255)", (2.0, 5.0, 10.0, 20.0, 40.0)),
    "jpeg": ("JPEG", "quality", (90, 70, 50, 30, 10)),
    "downup": ("bicubic down-up", "factor", (2, 3, 4, 8, 16)),
}
DEFAULT_DATASETS = ("urban100", "set14", "celeba-hq", "acdc")
DEFAULT_METHODS = ("bicubic", "nearest", "bilinear", "lanczos")
DEFAULT_SCALES = (2, 4, 8, 16)
DEFAULT_FR_METRICS = ("lpips", "dists")
FR_FALLBACKS = ("ssim", "psnr")
DEFAULT_OUT = Path("reports") / "iqa-eval"
DEFAULT_IMAGES = 8
DEFAULT_CROP = 256
N_BOOT = 1000
MULTIPLE = 16  # crops are trimmed to a multiple of this, so that x2/x4/x8/x16 divide them


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled, leave=False, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------------
# metrics


@dataclass
class NRMetric:
    """An NR metric ready to score: its label, the module and its direction."""

    label: str
    module: torch.nn.Module
    higher_better: bool

    def score(self, x: torch.Tensor) -> float:
        """The score of one image ``x (1, 3, H, W)``; raises `SrbenchError` with the reason."""
        try:
            with torch.no_grad():
                out = self.module(x)
        except SrbenchError:
            raise
        except (RuntimeError, ValueError, IndexError, ZeroDivisionError, np.linalg.LinAlgError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise SrbenchError(f"metric {self.label!r} failed ({type(e).__name__}: {msg[:160]})") from None
        v = torch.as_tensor(out).detach().reshape(-1)
        if v.numel() != 1:
            raise SrbenchError(f"metric {self.label!r} returned {v.numel()} scores for one image")
        return float(v[0])


def _info_of(obj: Any):
    info = getattr(obj, "info", None)
    if info is None or not hasattr(info, "kind") or not hasattr(info, "higher_better"):
        raise SrbenchError(f"{type(obj).__name__} is not an iqa.Metric (it has no .info with kind and higher_better)")
    return info


def resolve_nr_metrics(metrics: Iterable[Any], device: Any = None,
                       log: Callable[[str], None] = _stderr, notes: list[str] | None = None) -> list[NRMetric]:
    """Build the NR metrics: names (``iqa.create_metric``), `iqa.Metric` objects, or ``(label,
    Metric)`` pairs. A full-reference metric or an unknown name raises; a metric that cannot be
    built (missing asset) is skipped with a loud message (also appended to ``notes``, which the
    report prints), unless none is left (then it raises)."""
    import iqa

    out: list[NRMetric] = []
    problems = []
    for m in metrics:
        label = None
        if isinstance(m, tuple) and len(m) == 2:
            label, m = m
        if isinstance(m, str):
            info = iqa.metric_info(m)  # unknown names raise with a suggestion
            if info.kind != "nr":
                raise SrbenchError(f"metric {m!r} is full-reference ({info.kind}); "
                                   "iqa eval scores no-reference metrics")
            try:
                module = iqa.create_metric(m, device=device)
            except (SrbenchError, ImportError, OSError) as e:  # missing asset or package: skip it, loudly
                msg = f"metric {m!r} is unavailable and skipped: {e}"
                log(f"WARNING: {msg}")
                problems.append(msg)
                if notes is not None:
                    notes.append(msg)
                continue
            out.append(NRMetric(label or info.name, module, bool(info.higher_better)))
        elif isinstance(m, torch.nn.Module):
            info = _info_of(m)
            if info.kind != "nr":
                raise SrbenchError(f"metric {info.name!r} is full-reference ({info.kind}); iqa eval scores "
                                   f"no-reference metrics")
            m.eval()
            module = m.to(device) if device is not None else m
            out.append(NRMetric(label or info.name, module, bool(info.higher_better)))
        else:
            raise SrbenchError(f"a metric must be a name or an iqa.Metric, got {type(m).__name__}")
    labels = [m.label for m in out]
    if len(set(labels)) != len(labels):
        raise SrbenchError(f"metric labels must be distinct, got {labels}")
    if not out:
        raise SrbenchError("no metric to evaluate" + (f" ({'; '.join(problems)})" if problems else ""))
    return out


def _device(device: Any) -> torch.device:
    if isinstance(device, torch.device):
        return device
    from bench.run.runner import resolve_device

    return resolve_device(str(device or "auto"))


# ---------------------------------------------------------------------------------------------
# images and distortions


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255.0).round() / 255.0


def center_crop(x: torch.Tensor, crop: int | None, multiple: int = MULTIPLE) -> torch.Tensor:
    """The central ``crop x crop`` pixels of ``x (..., H, W)`` (a smaller side is kept whole),
    trimmed at the bottom/right to a multiple of ``multiple``."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ch, cw = (h, w) if not crop else (min(crop, h), min(crop, w))
    top, left = (h - ch) // 2, (w - cw) // 2
    x = x[..., top:top + ch, left:left + cw]
    return x[..., : ch - ch % multiple, : cw - cw % multiple]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``x (B, C, H, W)``, radius ceil(3 sigma), edges replicated."""
    r = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype).to(x.device)
    c = x.shape[1]
    y = torch.nn.functional.pad(x, (r, r, r, r), mode="replicate")
    y = torch.nn.functional.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return torch.nn.functional.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def jpeg_roundtrip(x: torch.Tensor, quality: int) -> tuple[torch.Tensor, int]:
    """``x (1, 3, H, W)`` encoded as JPEG at ``quality`` by Pillow and decoded; also the size in bytes."""
    from PIL import Image

    from bench.run.io import to_tensor, to_uint8

    buf = io.BytesIO()
    Image.fromarray(to_uint8(x[0])).save(buf, format="JPEG", quality=int(quality))
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    return to_tensor(arr)[None].to(x.device), len(data)


def apply_distortion(x: torch.Tensor, kind: str, level: float, seed: int = 0) -> torch.Tensor:
    """Distort ``x (1, 3, H, W)`` (float in [0, 1]) by ``kind`` at ``level`` (see the module
    table); the result is rounded to the uint8 grid."""
    if kind not in DISTORTIONS:
        from iqa.errors import UnknownNameError

        raise UnknownNameError("distortion", kind, list(DISTORTIONS))
    if kind == "blur":
        y = gaussian_blur(x, float(level))
    elif kind == "noise":
        gen = torch.Generator(device="cpu").manual_seed(int(seed) % (2**63))
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(x.device)
        y = x + noise * (float(level) / 255.0)
    elif kind == "jpeg":
        y, _ = jpeg_roundtrip(x, int(level))
    else:
        from iqa.resize import imresize

        h, w = int(x.shape[-2]), int(x.shape[-1])
        f = float(level)
        small = imresize(_quantize(x), size=(max(1, round(h / f)), max(1, round(w / f))), kernel="cubic")
        y = imresize(small, size=(h, w), kernel="cubic")
    return _quantize(y)


@dataclass
class _Image:
    key: str  # dataset/id
    dataset: str
    id: str
    x: torch.Tensor  # (1, 3, h, w) on the uint8 grid, cropped


def _collect_images(datasets: Sequence[str], data_root: Any, per_dataset: int, crop: int | None,
                    log: Callable[[str], None], notes: list[str]) -> list[_Image]:
    from bench.run.datasets import Dataset, DatasetMissingError
    from bench.run.io import ImageReadError, read_image

    images: list[_Image] = []
    for name in datasets:
        try:
            ds = Dataset(name, data_root)
            items = None
            for scale in (4, 2, 1):  # HR_mod{4,2} copies serve these; any scale works for plain HR/ folders
                try:
                    items = ds.items(scale)
                    break
                except DatasetMissingError:
                    if scale == 1:
                        raise
        except DatasetMissingError as e:
            msg = f"dataset {name!r} unavailable, skipped: {e}"
            log(f"WARNING: {msg}")
            notes.append(msg)
            continue
        taken = 0
        for item in sorted(items, key=lambda it: it.id):
            if taken >= per_dataset:
                break
            try:
                x = read_image(item.hr)[None]
            except ImageReadError as e:
                log(f"skipped: {e}")
                notes.append(f"bad image skipped: {e}")
                continue
            x = center_crop(x, crop)
            if x.shape[-1] < MULTIPLE or x.shape[-2] < MULTIPLE:
                msg = f"{item.hr}: image smaller than {MULTIPLE}x{MULTIPLE} pixels, skipped"
                log(f"skipped: {msg}")
                notes.append(f"bad image skipped: {msg}")
                continue
            images.append(_Image(f"{name}/{item.id}", name, item.id, x))
            taken += 1
    if not images:
        raise SrbenchError(f"no images to evaluate (datasets {', '.join(datasets)}: "
                           f"{'; '.join(notes) if notes else 'empty'}); point --data-root at the data")
    return images


# ---------------------------------------------------------------------------------------------
# opinion-free evaluation


@dataclass
class OpinionFreeResult:
    table: "pd.DataFrame"  # one row per NR metric
    distortion_scores: "pd.DataFrame"
    distortion_srcc: "pd.DataFrame"
    sr_scores: "pd.DataFrame"
    fr_used: dict[str, str]  # requested FR metric -> the one used
    notes: list[str] = field(default_factory=list)
    differences: "pd.DataFrame | None" = None  # each metric minus the reference metric (paired)
    reference: str | None = None
    files: list[Path] = field(default_factory=list)
    markdown: str = ""


def _fmt(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "n/a"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _resolve_fr(fr_metrics: Sequence[str], device: torch.device, log: Callable[[str], None],
                notes: list[str]) -> dict[str, tuple[str, torch.nn.Module]]:
    """requested name -> (name used, module); unavailable ones substituted from FR_FALLBACKS."""
    import iqa

    used: dict[str, tuple[str, torch.nn.Module]] = {}
    taken: set[str] = set()
    for name in fr_metrics:
        info = iqa.metric_info(name)
        if info.kind != "fr":
            raise SrbenchError(f"metric {name!r} is not full-reference; --fr-metrics takes FR metrics")
        try:
            used[name] = (info.name, iqa.create_metric(info.name, device=device))
            taken.add(info.name)
            continue
        except SrbenchError as e:
            reason = str(e)
        for fb in FR_FALLBACKS:
            if fb in taken or fb in fr_metrics:
                continue
            try:
                used[name] = (fb, iqa.create_metric(fb, device=device))
            except SrbenchError:
                continue
            taken.add(fb)
            msg = f"{name.upper()} unavailable ({reason}); substituted by {fb.upper()}"
            log(f"WARNING: {msg}")
            notes.append(msg)
            break
        else:
            msg = f"{name.upper()} unavailable ({reason}) and no substitute left; its column is omitted"
            log(f"WARNING: {msg}")
            notes.append(msg)
    return used


def _build_methods(names: Sequence[str], device: torch.device, log: Callable[[str], None],
                   notes: list[str]) -> list[Any]:
    import sr_methods

    methods = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        try:
            methods.append(sr_methods.create_method(name, device=device))
        except Exception as e:  # missing weights, unknown name, spandrel errors: skip this method, loudly
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            line = f"method {name!r} cannot be built, skipped: {msg}"
            log(f"WARNING: {line}")
            notes.append(line)
    if not methods:
        raise SrbenchError("no SR method could be built: " + "; ".join(notes[-len(names):]))
    return methods


def _graded(metrics: list[NRMetric], images: list[_Image], device: torch.device, seed: int, progress: bool,
            log: Callable[[str], None], notes: list[str]) -> list[dict]:
    from bench.run.degradations import derive_seed

    rows = []
    total = len(images) * sum(len(v[2]) for v in DISTORTIONS.values())
    bar = _progress(total, "graded distortions", progress)
    failed: set[tuple[str, str]] = set()
    for img in images:
        x = img.x.to(device)
        for kind, (_, _, levels) in DISTORTIONS.items():
            for li, level in enumerate(levels, start=1):
                y = apply_distortion(x, kind, level, seed=derive_seed(seed, img.key, f"{kind}-{level}"))
                for m in metrics:
                    try:
                        s = m.score(y)
                    except SrbenchError as e:
                        if (m.label, img.key) not in failed:
                            failed.add((m.label, img.key))
                            log(f"skipped: {img.key} {kind} level {li}: {e}")
                            notes.append(f"{m.label}: {img.key} {kind} level {li}: {e}")
                        s = math.nan
                    rows.append({"dataset": img.dataset, "image": img.id, "distortion": kind, "level": li,
                                 "level_value": float(level), "metric": m.label, "score": s})
                bar.update(1)
    bar.close()
    return rows


def _sr_part(metrics: list[NRMetric], images: list[_Image], methods: list[Any], scales: Sequence[int],
             fr: dict[str, tuple[str, torch.nn.Module]], device: torch.device, progress: bool,
             log: Callable[[str], None], notes: list[str]) -> list[dict]:
    from bench.run.degradations import parse_degradation

    rows = []
    unsupported = {m.name: [s for s in scales if not m.supports(s)] for m in methods}
    for name, bad in unsupported.items():
        if bad:
            notes.append(f"method {name!r} does not support x{', x'.join(map(str, bad))}: those outputs are absent")
    total = len(images) * sum(1 for m in methods for s in scales if m.supports(s))
    bar = _progress(total, "SR outputs", progress)
    for img in images:
        for s in scales:
            try:
                hr, lr = parse_degradation(s).apply(img.x.to(device))
            except SrbenchError as e:
                notes.append(f"{img.key} x{s}: {e}")
                continue
            for method in methods:
                if not method.supports(s):
                    continue
                try:
                    sr = _quantize(method.upscale(lr, s)).to(device)
                except Exception as e:  # a network that fails on one input: record and go on
                    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                    log(f"skipped: {img.key} x{s} {method.name}: {msg}")
                    notes.append(f"{method.name} failed on {img.key} x{s}: {msg}")
                    bar.update(1)
                    continue
                row: dict[str, Any] = {"dataset": img.dataset, "image": img.id, "method": method.name, "scale": s}
                for m in metrics:
                    try:
                        row[f"nr:{m.label}"] = m.score(sr)
                    except SrbenchError as e:
                        log(f"skipped: {img.key} x{s} {method.name}: {e}")
                        row[f"nr:{m.label}"] = math.nan
                for used, module in fr.values():
                    try:
                        with torch.no_grad():
                            row[f"fr:{used}"] = float(module(sr, hr, scale=s).reshape(-1)[0])
                    except (SrbenchError, RuntimeError, ValueError) as e:  # e.g. nothing left after the shave
                        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                        log(f"skipped: {img.key} x{s} {method.name}: {used} failed ({msg})")
                        row[f"fr:{used}"] = math.nan
                rows.append(row)
                bar.update(1)
    bar.close()
    return rows


def evaluate_opinion_free(metrics: Iterable[Any], *, datasets: Sequence[str] = DEFAULT_DATASETS,
                          data_root: Any = None, images_per_dataset: int = DEFAULT_IMAGES,
                          crop: int | None = DEFAULT_CROP, methods: Sequence[str] | None = None,
                          scales: Sequence[int] = DEFAULT_SCALES, fr_metrics: Sequence[str] = DEFAULT_FR_METRICS,
                          out: str | Path | None = DEFAULT_OUT, device: Any = None, n_boot: int = N_BOOT,
                          seed: int = 0, progress: bool = True, plots: bool = True,
                          log: Callable[[str], None] = _stderr, reference: str | None = None) -> OpinionFreeResult:
    """The opinion-free evaluation (module doc, part 2). ``methods``: extra SR method names,
    added to the interpolation baselines. ``reference``: the NR metric every other one is compared
    with (paired differences; default ``niqe`` when it is evaluated, ``"none"`` for no comparison).
    ``out=None`` writes nothing."""
    import pandas as pd

    import iqa
    from iqa.correlation import correlations, orient, srcc

    from bench.report.stats import bootstrap_mean

    if not isinstance(images_per_dataset, int) or images_per_dataset < 1:
        raise SrbenchError(f"images per dataset must be a positive int, got {images_per_dataset!r}")
    if crop is not None and (not isinstance(crop, int) or crop < MULTIPLE):
        raise SrbenchError(f"crop must be an int >= {MULTIPLE} (pixels), got {crop!r}")
    if not isinstance(n_boot, int) or n_boot < 1:
        raise SrbenchError(f"n_boot must be a positive int, got {n_boot!r}")
    scales = [int(s) for s in scales]
    if any(s < 2 for s in scales):
        raise SrbenchError(f"SR scales must be integers >= 2, got {scales}")
    dev = _device(device)
    notes: list[str] = []
    nr = resolve_nr_metrics(metrics, dev, log, notes)
    labels = [m.label for m in nr]
    if reference is None:
        reference = "niqe" if "niqe" in labels else "none"
    if reference != "none" and reference not in labels:  # checked before the long part
        raise SrbenchError(f"reference metric {reference!r} is not among the evaluated metrics ({', '.join(labels)})")
    images = _collect_images(list(datasets), data_root, images_per_dataset, crop, log, notes)
    fr = _resolve_fr(list(fr_metrics), dev, log, notes)
    method_names = list(DEFAULT_METHODS) + [m for m in (methods or []) if m not in DEFAULT_METHODS]
    built = _build_methods(method_names, dev, log, notes)

    # (a) graded distortions
    dist_rows = _graded(nr, images, dev, seed, progress, log, notes)
    dscores = pd.DataFrame(dist_rows)
    hb = {m.label: m.higher_better for m in nr}
    srcc_rows = []
    for (metric, dataset, image, kind), g in dscores.groupby(["metric", "dataset", "image", "distortion"], sort=False):
        g = g.sort_values("level")
        v = srcc(orient(g["score"].to_numpy(), hb[metric]), -g["level"].to_numpy(dtype=np.float64))
        srcc_rows.append({"metric": metric, "dataset": dataset, "image": image, "distortion": kind, "srcc": v})
    dsrcc = pd.DataFrame(srcc_rows)

    # (b) SR outputs
    sr_rows = _sr_part(nr, images, built, scales, fr, dev, progress, log, notes)
    srdf = pd.DataFrame(sr_rows)

    # the table
    fr_used = {req: used for req, (used, _) in fr.items()}
    table_rows = []
    for m in nr:
        row: dict[str, Any] = {"metric": m.label, "higher_better": m.higher_better}
        d = dsrcc[dsrcc["metric"] == m.label]
        for kind in DISTORTIONS:
            vals = d.loc[d["distortion"] == kind, "srcc"].to_numpy(dtype=np.float64)
            iv = bootstrap_mean(vals, n_boot=n_boot, seed=seed)
            row.update({f"{kind}_srcc": iv.mean, f"{kind}_lo": iv.lo, f"{kind}_hi": iv.hi, f"{kind}_n": iv.n,
                        f"{kind}_n_undefined": int(np.sum(~np.isfinite(vals)))})
        per_image = d.groupby(["dataset", "image"])["srcc"].mean().to_numpy(dtype=np.float64)  # NaN skipped
        iv = bootstrap_mean(per_image, n_boot=n_boot, seed=seed)
        row.update({"overall_srcc": iv.mean, "overall_lo": iv.lo, "overall_hi": iv.hi, "overall_n": iv.n})
        for req, used in fr_used.items():
            col = f"vs_{req}"
            if srdf.empty:
                c = {"srcc": math.nan, "srcc_lo": math.nan, "srcc_hi": math.nan, "krcc": math.nan,
                     "krcc_lo": math.nan, "krcc_hi": math.nan, "n": 0, "note": "no SR outputs"}
            else:
                c = correlations(orient(srdf[f"nr:{m.label}"].to_numpy(), m.higher_better),
                                 orient(srdf[f"fr:{used}"].to_numpy(), iqa.metric_info(used).higher_better),
                                 n_boot=n_boot, seed=seed, logistic_fit=False)
            row.update({f"{col}_metric": used, f"{col}_srcc": c["srcc"], f"{col}_srcc_lo": c["srcc_lo"],
                        f"{col}_srcc_hi": c["srcc_hi"], f"{col}_krcc": c["krcc"], f"{col}_krcc_lo": c["krcc_lo"],
                        f"{col}_krcc_hi": c["krcc_hi"], f"{col}_n": c["n"], f"{col}_note": c["note"]})
        all_scores = dscores.loc[dscores["metric"] == m.label, "score"].to_numpy(dtype=np.float64)
        finite = all_scores[np.isfinite(all_scores)]
        row["note"] = ("constant scores: no ranking (n/a)" if finite.size and np.all(finite == finite[0])
                       else ("no finite scores" if finite.size == 0 else ""))
        table_rows.append(row)
    table = pd.DataFrame(table_rows)
    res = OpinionFreeResult(table, dscores, dsrcc, srdf, fr_used, notes)
    if reference != "none":
        res.reference = reference
        res.differences = _differences(nr, reference, dsrcc, srdf, fr_used, n_boot, seed)
    res.markdown = _opinion_free_markdown(res, nr, images, built, scales, crop)
    if out is not None:
        _write_opinion_free(res, Path(out), nr, plots)
    return res


def _paired_srcc_difference(a: np.ndarray, b: np.ndarray, fr: np.ndarray, n_boot: int, seed: int):
    """``srcc(a, fr) - srcc(b, fr)`` with a 95 % bootstrap interval that resamples the items
    (the same resample for both metrics, so the interval is of the paired difference)."""
    from iqa.correlation import srcc

    ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(fr)
    a, b, fr = a[ok], b[ok], fr[ok]
    est = srcc(a, fr) - srcc(b, fr)
    if a.size < 3 or not np.isfinite(est):
        return est, math.nan, math.nan, int(a.size)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, a.size, a.size)
        boots.append(srcc(a[i], fr[i]) - srcc(b[i], fr[i]))
    boots = np.asarray(boots, dtype=np.float64)
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return est, math.nan, math.nan, int(a.size)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return est, float(lo), float(hi), int(a.size)


def _verdict(est: float, lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "n/a"
    return "better" if lo > 0 else ("worse" if hi < 0 else "n.s.")


def _differences(nr: list[NRMetric], reference: str, dsrcc: "pd.DataFrame", srdf: "pd.DataFrame",
                 fr_used: dict[str, str], n_boot: int, seed: int) -> "pd.DataFrame":
    """Each metric minus ``reference``: (a) the overall SRCC, paired over images; (b) the SRCC with
    each FR metric, paired over SR outputs. ``better``/``worse`` when the 95 % interval excludes 0."""
    import iqa
    import pandas as pd

    from iqa.correlation import orient

    from bench.report.stats import paired_difference

    per_image = {m: g.groupby(["dataset", "image"])["srcc"].mean().to_dict() for m, g in dsrcc.groupby("metric")}
    hb = {m.label: m.higher_better for m in nr}
    rows = []
    for m in nr:
        if m.label == reference:
            continue
        row: dict[str, Any] = {"metric": m.label, "reference": reference}
        iv = paired_difference(per_image.get(m.label, {}), per_image.get(reference, {}), n_boot=n_boot, seed=seed)
        est, lo, hi = (iv.mean, iv.lo, iv.hi) if iv is not None else (math.nan, math.nan, math.nan)
        row.update({"overall_diff": est, "overall_lo": lo, "overall_hi": hi, "overall_verdict": _verdict(est, lo, hi)})
        for req, used in fr_used.items():
            col = f"vs_{req}"
            if srdf.empty:
                est = lo = hi = math.nan
            else:
                fr = orient(srdf[f"fr:{used}"].to_numpy(), iqa.metric_info(used).higher_better)
                est, lo, hi, _ = _paired_srcc_difference(orient(srdf[f"nr:{m.label}"].to_numpy(), hb[m.label]),
                                                         orient(srdf[f"nr:{reference}"].to_numpy(), hb[reference]),
                                                         fr, n_boot, seed)
            row.update({f"{col}_diff": est, f"{col}_lo": lo, f"{col}_hi": hi, f"{col}_verdict": _verdict(est, lo, hi)})
        rows.append(row)
    return pd.DataFrame(rows)


def _opinion_free_markdown(res: OpinionFreeResult, nr: list[NRMetric], images: list[_Image], methods: list[Any],
                           scales: Sequence[int], crop: int | None) -> str:
    head = ["NR metric"] + [f"{k} SRCC" for k in DISTORTIONS] + ["overall"]
    for req, used in res.fr_used.items():
        head.append(f"vs {used.upper()}" + (f" (for {req.upper()})" if used != req else "") + " SRCC / KRCC")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in res.table.iterrows():
        direction = "higher is better" if r["higher_better"] else "lower is better"
        cells = [f"{r['metric']} ({direction})"]
        for k in DISTORTIONS:
            c = _fmt(r[f"{k}_srcc"], r[f"{k}_lo"], r[f"{k}_hi"])
            if r[f"{k}_n_undefined"]:
                c += f" ({int(r[f'{k}_n_undefined'])} n/a)"
            cells.append(c)
        cells.append(_fmt(r["overall_srcc"], r["overall_lo"], r["overall_hi"]))
        for req in res.fr_used:
            col = f"vs_{req}"
            cells.append(f"{_fmt(r[f'{col}_srcc'], r[f'{col}_srcc_lo'], r[f'{col}_srcc_hi'])} / "
                         f"{_fmt(r[f'{col}_krcc'], r[f'{col}_krcc_lo'], r[f'{col}_krcc_hi'])}")
        lines.append("| " + " | ".join(cells) + " |")
    datasets = sorted({i.dataset for i in images})
    sizes = sorted({f"{i.x.shape[-1]}x{i.x.shape[-2]}" for i in images})
    counts = ", ".join(f"{d}: {sum(i.dataset == d for i in images)}" for d in datasets)
    lines += ["", f"{len(images)} image{'s' if len(images) != 1 else ''} ({counts}), "
              f"central crops {'of at most ' + str(crop) + ' px' if crop else 'off'} ({', '.join(sizes)}); "
              f"SR methods {', '.join(m.name for m in methods)} at x{', x'.join(map(str, scales))}. "
              "Cells: mean SRCC over images [95 % bootstrap interval]; +1 = the metric ranks worse images as worse."]
    for _, r in res.table.iterrows():
        if r["note"]:
            lines.append(f"\n- {r['metric']}: {r['note']}")
    if res.differences is not None and len(res.differences):
        ref = res.reference
        head = ["NR metric", "overall SRCC"] + [f"vs {used.upper()} SRCC" for used in res.fr_used.values()]
        lines += ["", f"Difference from {ref} (metric minus {ref}; (a) paired over images, (b) paired over SR "
                      "outputs; 95 % bootstrap interval; better / worse when it excludes 0, n.s. otherwise):", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for _, r in res.differences.iterrows():
            cells = [r["metric"]]
            for col in ["overall"] + [f"vs_{req}" for req in res.fr_used]:
                est = r[f"{col}_diff"]
                cells.append("n/a" if not np.isfinite(est) else
                             f"{est:+.3f} [{r[f'{col}_lo']:+.3f}, {r[f'{col}_hi']:+.3f}] {r[f'{col}_verdict']}")
            lines.append("| " + " | ".join(cells) + " |")
    if res.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in res.notes]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# figures


def _save(fig: Any, out: Path, stem: str) -> list[Path]:
    import matplotlib

    from bench.run.store import safe_name

    out.mkdir(parents=True, exist_ok=True)
    stem = safe_name(stem)
    png, svg = out / f"{stem}.png", out / f"{stem}.svg"
    with matplotlib.rc_context({"svg.hashsalt": "srbench", "svg.fonttype": "none"}):
        fig.savefig(png, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
        fig.savefig(svg, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    fig.clear()
    return [png, svg]


def _txt(s: object) -> str:
    return str(s).replace("$", r"\$")


def _plots(res: OpinionFreeResult, out: Path, nr: list[NRMetric]) -> list[Path]:
    from matplotlib.figure import Figure

    import iqa

    files: list[Path] = []
    ds = res.distortion_scores
    for m in nr:
        d = ds[ds["metric"] == m.label]
        fig = Figure(figsize=(3.0 * len(DISTORTIONS), 3.0))
        fig.subplots_adjust(wspace=0.35, top=0.82, bottom=0.2)
        axes = fig.subplots(1, len(DISTORTIONS), squeeze=False)[0]
        for ax, (kind, (title, unit, levels)) in zip(axes, DISTORTIONS.items(), strict=True):
            g = d[d["distortion"] == kind]
            for (_, _), gi in g.groupby(["dataset", "image"]):
                gi = gi.sort_values("level")
                ax.plot(gi["level"], gi["score"], color="0.6", lw=0.8, alpha=0.7)
            mean = g.groupby("level")["score"].mean()
            ax.plot(mean.index, mean.values, color="C0", lw=2, marker="o", label="mean over images")
            ax.set_xticks(range(1, len(levels) + 1), [f"{v:g}" for v in levels])
            ax.set_xlabel(_txt(f"{title}: {unit}"))
            ax.set_title(_txt(kind))
            ax.grid(alpha=0.3)
        axes[0].set_ylabel(_txt(f"{m.label} ({'higher' if m.higher_better else 'lower'} is better)"))
        axes[0].legend(fontsize=7)
        fig.suptitle(_txt(f"{m.label}: score vs distortion level (grey: one image)"), fontsize=10)
        files += _save(fig, out, f"levels_{m.label}")
        sr = res.sr_scores
        if sr.empty:
            continue
        for req, used in res.fr_used.items():
            fig = Figure(figsize=(4.5, 3.6))
            ax = fig.subplots()
            for i, s in enumerate(sorted(sr["scale"].unique())):
                g = sr[sr["scale"] == s]
                ax.scatter(g[f"fr:{used}"], g[f"nr:{m.label}"], s=12, alpha=0.75, color=f"C{i}", label=f"x{s}")
            fr_hb = iqa.metric_info(used).higher_better
            ax.set_xlabel(_txt(used.upper() + (f" (substitute for {req.upper()})" if used != req else "")
                               + f" ({'higher' if fr_hb else 'lower'} is better)"))
            ax.set_ylabel(_txt(f"{m.label} ({'higher' if m.higher_better else 'lower'} is better)"))
            ax.legend(fontsize=7, title="scale", title_fontsize=7)
            ax.grid(alpha=0.3)
            ax.set_title(_txt(f"{m.label} vs {used.upper()} over SR outputs"), fontsize=10)
            files += _save(fig, out, f"sr_{m.label}_vs_{used}")
    return files


def _write_opinion_free(res: OpinionFreeResult, out: Path, nr: list[NRMetric], plots: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, df in (("table.csv", res.table), ("distortion_scores.csv", res.distortion_scores),
                     ("distortion_srcc.csv", res.distortion_srcc), ("sr_scores.csv", res.sr_scores)):
        write_csv(df, out / name)
        files.append(out / name)
    if res.differences is not None:
        write_csv(res.differences, out / "differences.csv")
        files.append(out / "differences.csv")
    (out / "table.md").write_text(res.markdown)
    files.append(out / "table.md")
    figs = _plots(res, out, nr) if plots else []
    files += figs
    levels = ["| type | key | " + " | ".join(f"level {i}" for i in range(1, 6)) + " |", "|---|---|" + "---|" * 5]
    for key, (title, unit, lv) in DISTORTIONS.items():
        levels.append(f"| {title} ({unit}) | `{key}` | " + " | ".join(f"{v:g}" for v in lv) + " |")
    index = ["# NR metric evaluation without human scores", "",
             "(a) graded distortions: SRCC between each metric and the distortion level per image "
             "(+1 = worse levels ranked as worse); (b) SR outputs: SRCC/KRCC between the NR score and "
             "full-reference scores against the HR image (+1 = agreement). Details: `bench/nr/eval.py`.", "",
             res.markdown, "", "## Distortion levels", "", *levels, "", "## Files", "",
             "- [table.csv](table.csv), [table.md](table.md)",
             "- per image: [distortion_scores.csv](distortion_scores.csv), "
             "[distortion_srcc.csv](distortion_srcc.csv), [sr_scores.csv](sr_scores.csv)"]
    for f in figs:
        if f.suffix == ".png":
            index.append(f"- ![{f.stem}]({f.name}) ([svg]({f.stem}.svg))")
    (out / "index.md").write_text("\n".join(index) + "\n")
    files.append(out / "index.md")
    res.files = files


# ---------------------------------------------------------------------------------------------
# evaluation against opinion scores


def _shrink(x: torch.Tensor, longest: int | None) -> torch.Tensor:
    if not longest:
        return x
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if max(h, w) <= longest:
        return x
    from iqa.resize import imresize

    f = longest / max(h, w)
    return imresize(x, size=(max(1, round(h * f)), max(1, round(w * f))), kernel="cubic")


def evaluate_on_database(metrics: Iterable[Any], database: Any, root: str | Path | None = None, *,
                         out: str | Path | None = None, device: Any = None, resize: int | None = None,
                         limit: int | None = None, n_boot: int = N_BOOT, seed: int = 0, progress: bool = True,
                         hub: bool = False, hub_repo: str | None = None, hub_file: str | None = None,
                         log: Callable[[str], None] = _stderr, **loader_options: Any) -> "pd.DataFrame":
    """Score every image of ``database`` (a name of `bench.nr.databases` or a loaded
    `IQADatabase`) with each NR metric and correlate with the opinion scores (module doc, part 1).

    Returns one row per metric (``metric``, ``database``, ``n``, ``n_skipped``, the coefficients
    of `iqa.correlation.correlations` with their intervals, ``note``); with ``out`` also writes
    ``<database>_correlations.csv`` / ``.md`` and the per-image ``<database>_scores.csv``.
    """
    import pandas as pd

    from iqa.correlation import correlations, orient

    from bench.nr.databases import IQADatabase, load_database
    from bench.run.io import ImageReadError, read_image

    if resize is not None and (not isinstance(resize, int) or resize < 8):
        raise SrbenchError(f"resize must be an int >= 8 (pixels of the longer side), got {resize!r}")
    db = database if isinstance(database, IQADatabase) else load_database(
        database, root, hub=hub, hub_repo=hub_repo, hub_file=hub_file, limit=limit, **loader_options)
    dev = _device(device)
    nr = resolve_nr_metrics(metrics, dev, log)
    items = db.items[: limit] if (limit is not None and isinstance(database, IQADatabase)) else db.items
    scores = {m.label: np.full(len(items), np.nan) for m in nr}
    bad: list[str] = []
    bar = _progress(len(items), f"scoring {db.name}", progress)
    for i, item in enumerate(items):
        try:
            x = _shrink(read_image(item.path)[None], resize).to(dev)
        except ImageReadError as e:
            log(f"skipped: {e}")
            bad.append(str(e))
            bar.update(1)
            continue
        for m in nr:
            try:
                scores[m.label][i] = m.score(x)
            except SrbenchError as e:
                line = f"{item.path}: {e}"
                log(f"skipped: {line}")
                bad.append(line)
        bar.update(1)
    bar.close()
    mos = np.array([it.mos for it in items], dtype=np.float64)
    rows = []
    for m in nr:
        c = correlations(orient(scores[m.label], m.higher_better), orient(mos, db.higher_better), n_boot=n_boot,
                         seed=seed)
        n_skipped = int(np.sum(~np.isfinite(scores[m.label])))
        rows.append({"metric": m.label, "database": db.name, "score": f"{db.score_kind} ({db.score_column})",
                     "n_images": len(items), "n_skipped": n_skipped, **{k: v for k, v in c.items()
                                                                          if k != "logistic_params"},
                     "logistic_params": "" if c["logistic_params"] is None else
                     " ".join(f"{p:.6g}" for p in c["logistic_params"])})
    table = pd.DataFrame(rows)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        per_image = pd.DataFrame({"image": [str(it.path) for it in items], "mos": mos,
                                  **{f"score:{k}": v for k, v in scores.items()}})
        write_csv(per_image, out / f"{db.name}_scores.csv")
        write_csv(table, out / f"{db.name}_correlations.csv")
        (out / f"{db.name}_correlations.md").write_text(_database_markdown(table, db, bad))
    table.attrs["bad_files"] = bad
    table.attrs["markdown"] = _database_markdown(table, db, bad)
    return table


def _database_markdown(table: "pd.DataFrame", db: Any, bad: list[str]) -> str:
    direction = "higher is better" if db.higher_better else "lower is better"
    lines = [f"# {db.title}: NR metrics vs {db.score_kind}", "",
             f"{len(db.items)} images from {db.root} ({db.mos_file.name}, {db.score_column}: {direction}). "
             "Both sides oriented so that +1 = agreement with people; 95 % bootstrap intervals over images.", "",
             "| metric | n | SRCC | KRCC | PLCC | PLCC (logistic) | note |", "|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        cells = [str(r["metric"]), str(int(r["n"]))]
        for k in ("srcc", "krcc", "plcc", "plcc_logistic"):
            cells.append(_fmt(r[k], r[f"{k}_lo"], r[f"{k}_hi"]))
        cells.append(str(r["note"] or ""))
        lines.append("| " + " | ".join(cells) + " |")
    if db.notes:
        lines += [""] + [f"- {n}" for n in db.notes]
    if bad:
        lines += ["", f"{len(bad)} file(s) skipped:", ""] + [f"- {b}" for b in bad[:50]]
        if len(bad) > 50:
            lines.append(f"- ... and {len(bad) - 50} more")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# command line


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(t.lower().lstrip("x")) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 2,4,8 or x2,x4, got {text!r}") from None


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``eval`` to an ``iqa`` sub-command group; the handler is set as ``func`` (and
    ``handler``) default: `cmd_eval`."""
    from bench.nr.databases import list_databases

    p = subparsers.add_parser(
        "eval", help="evaluate no-reference metrics (against MOS, or opinion-free)",
        description="Evaluate no-reference metrics: against the human scores of an IQA database "
                    "(--dataset NAME --root PATH), or without human scores (--opinion-free, the default): "
                    "graded distortions and SR outputs on Urban100, Set14, CelebA-HQ and ACDC.")
    p.add_argument("metrics", nargs="+", metavar="METRIC", help="NR metric names (e.g. niqe; see srbench list metrics)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dataset", metavar="NAME",
                      help=f"an opinion-scored database: {', '.join(list_databases())}")
    mode.add_argument("--opinion-free", action="store_true", help="the evaluation without human scores (default)")
    db = p.add_argument_group("database evaluation (--dataset)")
    db.add_argument("--root", type=Path, help="folder of the database's official release")
    db.add_argument("--hub", action="store_true", help="fetch the database from the Hugging Face hub")
    db.add_argument("--hub-repo", help="hub dataset repository (with --hub; default chaofengc/IQA-PyTorch-Datasets)")
    db.add_argument("--hub-file", help="archive file in the hub repository (with --hub)")
    db.add_argument("--score", help="koniq10k only: MOS (1..5, default) or MOS_zscore (0..100)")
    db.add_argument("--include-training", action="store_true", help="livec only: keep the 7 challenge training images")
    db.add_argument("--limit", type=int, help="only the first N images of the database")
    db.add_argument("--resize", type=int, metavar="N", help="shrink images whose longer side exceeds N pixels")
    of = p.add_argument_group("opinion-free evaluation")
    of.add_argument("--datasets", type=_csv, default=list(DEFAULT_DATASETS),
                    help=f"comma-separated SR datasets (default {','.join(DEFAULT_DATASETS)})")
    of.add_argument("--data-root", help="folder(s) holding those datasets (also SRBENCH_DATA)")
    of.add_argument("--images-per-dataset", type=int, default=DEFAULT_IMAGES, metavar="N",
                    help=f"first N images of each dataset (default {DEFAULT_IMAGES})")
    of.add_argument("--crop", type=int, default=DEFAULT_CROP, metavar="N",
                    help=f"central crop size in pixels (default {DEFAULT_CROP}; 0: whole images)")
    of.add_argument("--methods", type=_csv, default=[],
                    help="extra SR methods (networks) besides bicubic,nearest,bilinear,lanczos")
    of.add_argument("--scales", type=_ints, default=list(DEFAULT_SCALES), help="SR scales (default 2,4,8,16)")
    of.add_argument("--fr-metrics", type=_csv, default=list(DEFAULT_FR_METRICS),
                    help="full-reference metrics for SR outputs (default lpips,dists)")
    of.add_argument("--no-plots", action="store_true", help="skip the figures")
    of.add_argument("--reference", metavar="METRIC",
                    help="compare every metric with this one (paired differences; default niqe when evaluated, "
                         "none: no comparison)")
    p.add_argument("--sfd-checkpoint", type=Path, metavar="FILE",
                   help="evaluate the SFD-IQA metrics with this checkpoint (from `srbench iqa train sfd`)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT}/)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--n-boot", type=int, default=N_BOOT, help=f"bootstrap resamples (default {N_BOOT})")
    p.add_argument("--seed", type=int, default=0, help="seed of noise and bootstrap (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval, handler=cmd_eval)
    return p


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``srbench iqa eval``; prints the table, writes the report; returns the exit status."""
    from iqa.sfd import checkpoint_options

    metrics: list[Any] = [m for text in args.metrics for m in _csv(text)]
    options = checkpoint_options(metrics, args.sfd_checkpoint)
    if options:
        import iqa

        metrics = [(m, iqa.create_metric(m, **options[m])) if m in options else m for m in metrics]
    progress = not getattr(args, "no_progress", False)
    if args.dataset:
        options: dict[str, Any] = {}
        if args.score:
            options["score"] = args.score
        if args.include_training:
            options["include_training"] = True
        table = evaluate_on_database(metrics, args.dataset, args.root, out=args.out, device=args.device,
                                     resize=args.resize, limit=args.limit, n_boot=args.n_boot, seed=args.seed,
                                     progress=progress, hub=args.hub, hub_repo=args.hub_repo,
                                     hub_file=args.hub_file, **options)
        print(table.attrs["markdown"])
        print(f"written to {args.out}/ ({table['database'].iloc[0]}_correlations.md, .csv, _scores.csv)")
        return 0
    if args.root or args.hub or args.score or args.include_training or args.limit or args.resize:
        raise SrbenchError("--root, --hub, --score, --include-training, --limit and --resize go with --dataset NAME")
    res = evaluate_opinion_free(metrics, datasets=args.datasets, data_root=args.data_root,
                                images_per_dataset=args.images_per_dataset, crop=args.crop or None,
                                methods=args.methods, scales=args.scales, fr_metrics=args.fr_metrics, out=args.out,
                                device=args.device, n_boot=args.n_boot, seed=args.seed, progress=progress,
                                plots=not args.no_plots, reference=args.reference)
    print(res.markdown)
    print(f"written to {args.out}/ (index.md, table.md, table.csv, per-image CSVs"
          f"{'' if args.no_plots else ', figures'})")
    return 0
