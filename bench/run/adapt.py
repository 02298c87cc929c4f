"""The few-shot domain adaptation protocol: "method M adapted with k images of dataset D, scored on
the rest of D", fairly and reproducibly.

A method of the run spec asks for it with ``adapt = { shots = k, steps = N, seed = s }`` (or the
CLI's ``--adapt-shots/--adapt-steps/--adapt-seed`` for every method that can adapt). For each
(dataset, degradation) cell of such a method:

1. ``k`` images are drawn from the cell's image ids (sorted) by a generator seeded with
   ``sha256(seed, dataset, degradation)`` (`pick_shots`): the same draw for every method.
2. The method adapts on their LR images only (`AdaptiveMethod.adapt`): real pairs give their LR
   files (the HR file's header is read for its size when LR files are stored registered at the HR
   size, never its pixels); synthetic LR comes from the run's LR cache, made from the HR image
   by the harness as for scoring. The method never receives an HR image of the target dataset, and
   exactly ``N`` steps run: no checkpoint is ever chosen by a score on the test images (the
   official IODA script keeps its best test-PSNR checkpoint; a benchmark must not).
3. The adapted weights go to ``adapted/<dataset>/<degradation>/<method>.safetensors`` with a JSON
   record (images, steps, seed, wall time, sha256, fingerprint); a rerun or a resumed run loads
   them instead of adapting again.
4. The adapted method is scored on the remaining images, in the cell of its label; the method as
   built (unadapted) is scored on the same images in the cell ``<label> (unadapted)``, the paired
   reference from which the report's adaptation table takes the gain and its interval.

Source-domain data, for methods that pair target and source images (IODA), is `SourceData`:
patches of ``<data>/train`` (BSDS500, COCO and T91 training splits; never a test image, refused by
hash) with their MATLAB-bicubic LR at the cell's scale.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iqa.errors import SrbenchError

REFERENCE_SUFFIX = " (unadapted)"
SOURCE_SETS = ("bsds500", "coco", "t91")

__all__ = ["AdaptSpec", "REFERENCE_SUFFIX", "SourceData", "pick_shots", "reference_label"]


@dataclass(frozen=True)
class AdaptSpec:
    shots: int
    steps: int
    seed: int = 0

    def __post_init__(self) -> None:
        for key, low in (("shots", 1), ("steps", 0), ("seed", 0)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise SrbenchError(f"adapt.{key} must be an integer >= {low}, got {v!r}")

    @classmethod
    def parse(cls, value: Any, where: str = "adapt") -> "AdaptSpec":
        """From a TOML table ``{ shots = 1, steps = 100, seed = 0 }``."""
        if isinstance(value, AdaptSpec):
            return value
        if not isinstance(value, dict):
            raise SrbenchError(f"{where} must be a table like {{ shots = 1, steps = 100, seed = 0 }}, got {value!r}")
        unknown = set(value) - {"shots", "steps", "seed"}
        missing = {"shots", "steps"} - set(value)
        if unknown or missing:
            raise SrbenchError(f"{where}: " + (f"unknown keys {sorted(unknown)}" if unknown else
                                               f"missing {sorted(missing)}") + " (keys: shots, steps, seed)")
        try:
            return cls(value["shots"], value["steps"], value.get("seed", 0))
        except SrbenchError as e:
            raise SrbenchError(f"{where}: {e}") from None

    def to_dict(self) -> dict[str, int]:
        return {"shots": self.shots, "steps": self.steps, "seed": self.seed}


def reference_label(label: str) -> str:
    """The label of the unadapted reference cell of an adapted method."""
    return label + REFERENCE_SUFFIX


def pick_shots(ids: list[str], shots: int, seed: int, dataset: str, degradation: str) -> list[str]:
    """``shots`` ids drawn from ``ids`` (order-free) by a generator seeded with (seed, dataset,
    degradation); sorted."""
    pool = sorted(ids)
    if shots >= len(pool):
        raise SrbenchError(f"{shots} adaptation image(s) leave no image of {dataset} {degradation} to score "
                           f"({len(pool)} images)")
    digest = hashlib.sha256(f"{seed}\x00{dataset}\x00{degradation}".encode()).hexdigest()
    rng = np.random.default_rng(int(digest[:16], 16))
    return sorted(pool[i] for i in rng.choice(len(pool), size=shots, replace=False))


class SourceData:
    """``source(k, patch, batch, seed) -> (hr, lr)``: batch ``k`` of HR patches of ``<data>/train`` (the
    first data root holding ``train/``)
    and their MATLAB-bicubic LR at ``scale`` (`bench.train.data.PatchSampler`, one per
    ``(patch, batch, seed)``). The image list is hashed once and refuses test images."""

    def __init__(self, data_root: str | Path | None, scale: int, sets: tuple[str, ...] = SOURCE_SETS):
        from bench.run.datasets import data_roots
        from bench.train.data import training_images

        roots = data_roots(data_root)
        root = next((r for r in roots if (r / "train").is_dir()), roots[0])
        have = tuple(s for s in sets if (root / "train" / s).is_dir())
        if not have:
            raise SrbenchError(f"no source training images for adaptation: expected <data root>/train/"
                               f"{{{','.join(sets)}}}/ in one of {', '.join(map(str, roots))} (--data-root)")
        found = training_images(root, have)
        self.images = [p for p, _ in found]
        self.hashes = sorted(h for _, h in found)
        self.scale, self.sets = scale, have
        self._samplers: dict[tuple[int, int, int], Any] = {}

    def __call__(self, k: int, patch: int, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        from bench.train.data import PatchSampler

        key = (patch, batch, seed)
        if key not in self._samplers:
            self._samplers[key] = PatchSampler(self.images, patch=patch, batch=batch,
                                               degradation=f"x{self.scale}", seed=seed)
        return self._samplers[key](k)

    def record(self) -> dict[str, Any]:
        digest = hashlib.sha256("".join(self.hashes).encode()).hexdigest()
        return {"sets": list(self.sets), "images": len(self.images), "sha256_of_hashes": digest}


class AdaptedCell:
    """One (dataset, degradation) cell of a method run with ``adapt``: picks the images, adapts (or
    loads the adapted weights kept by an earlier session), scores the adapted method and its
    unadapted reference on the remaining images. Uses the runner's cell machinery
    (`bench.run.runner.Runner`), so resume, retry and error rows behave as for any cell."""

    def __init__(self, runner: Any, ds: Any, deg: Any, mspec: Any, method: Any, fp: str, ctx: dict[str, Any]):
        self.r, self.ds, self.deg, self.mspec, self.method, self.fp, self.ctx = runner, ds, deg, mspec, method, fp, ctx
        from bench.run.store import safe_name

        folder = runner.out / "adapted" / safe_name(ds.name) / deg.key
        self.weights = folder / f"{safe_name(mspec.label)}.safetensors"
        self.record_path = folder / f"{safe_name(mspec.label)}.json"

    def run(self, items: list[Any] | None, empty: str, missing: str, bad_methods: dict[str, str], dev: torch.device,
            metrics: dict, bad_metrics: dict) -> None:
        from bench.run.store import Cell

        r, m = self.r, self.mspec
        label, ref_label = m.label, reference_label(m.label)
        cell, ref = Cell(r.out, self.ds.name, self.deg.key, label), Cell(r.out, self.ds.name, self.deg.key, ref_label)
        ref_fp = hashlib.sha256(f"{self.fp}:unadapted".encode()).hexdigest()[:16]
        for c in (cell, ref):
            for line in c.set_aside_corrupt():
                r.echo(f"!! {line}")
        why = None
        if items is None:
            status, why = empty, missing
        elif self.method is None:
            status, why = "unavailable", bad_methods[label]
        elif not self.method.supports(self.deg.scale):
            status, why = "unsupported", f"{label} supports x{'/x'.join(map(str, self.method.scales or ()))}, " \
                                         f"not x{self.deg.scale}"
        else:
            try:
                shots = pick_shots([it.id for it in items], m.adapt.shots, m.adapt.seed, self.ds.name, self.deg.key)
            except SrbenchError as e:
                status, why = "unsupported", str(e)
        if why is not None:
            for c, f, lab in ((cell, self.fp, label), (ref, ref_fp, ref_label)):
                if r._reusable(c, f, items):
                    r._report_cell(c, cached=True)
                else:
                    c.start(f, self.r.worker)
                    r._finish_empty(c, f, {**self.ctx, "method": lab}, status, why)
            return
        rest = [it for it in items if it.id not in set(shots)]
        shot_items = [it for it in items if it.id in set(shots)]
        record = {"shots": shots, "steps": m.adapt.steps, "seed": m.adapt.seed, "k": m.adapt.shots,
                  "scored": len(rest), "reference": ref_label, "base": self._base_name()}
        mctx = {**self.ctx, "method": label}
        if r._reusable(cell, self.fp, rest):
            r._report_cell(cell, cached=True)
        else:
            cell.start(self.fp, self.r.worker)
            try:
                adapted, record = self._adapted(shot_items, record)
            except Exception as e:  # one failed adaptation never stops the run: its images get error rows
                from bench.run.io import DiskFullError
                from bench.run.runner import _cause, _row

                if isinstance(e, DiskFullError):
                    raise
                text = f"adaptation failed: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
                r.echo(f"!! {self.ds.name} {self.deg.key} {label}: {text}")
                cell.write_part([_row(it.id, mctx, "*", math.nan, "error", text, _cause(e, "method")) for it in rest], [])
                cell.finish(self.fp, {"status_detail": "ran", "n_images": len(rest),
                                      "adaptation": {**record, "error": text}}, keep={it.id for it in rest})
                r._report_cell(cell)
            else:
                r._run_cell(cell, self.fp, self.ds, self.deg, rest, adapted, dev, metrics, bad_metrics, mctx,
                            extra={"adaptation": record})
        if r._reusable(ref, ref_fp, rest):
            r._report_cell(ref, cached=True)
        else:
            ref.start(ref_fp, self.r.worker)
            r._run_cell(ref, ref_fp, self.ds, self.deg, rest, self.method, dev, metrics, bad_metrics,
                        {**self.ctx, "method": ref_label},
                        extra={"adaptation": {"reference_of": label, "shots": shots, "k": m.adapt.shots}})

    def _base_name(self) -> str | None:
        """The catalogue network the method adapts (IODA's ``base`` option, CDASR's catalogue
        ``base``), so that the report can set the adapted method against it."""
        import sr_methods

        name, options = sr_methods._merge_options(self.mspec.name, self.mspec.options)
        base = options.get("base") or sr_methods.method_info(name).get("base")
        return base if isinstance(base, str) else None

    # -- the adapted method ------------------------------------------------------------------------------
    def _adapted(self, shot_items: list[Any], record: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The adapted method: loaded from the run folder when an earlier session adapted it with
        this very setting (same fingerprint, weights intact), else adapted now and kept."""
        from safetensors.torch import load_file, save_file

        from bench.run.store import atomic_write_json, read_json
        from iqa.assets import sha256_file

        r, m = self.r, self.mspec
        if self.record_path.is_file() and self.weights.is_file():
            try:
                old = read_json(self.record_path)
            except SrbenchError:
                old = {}
            if old.get("fingerprint") == self.fp and old.get("sha256") == sha256_file(self.weights):
                r.echo(f"   {self.ds.name} {self.deg.key} {m.label}: adapted weights of an earlier session "
                       f"({self.weights.name}, sha256 {old['sha256'][:12]}) reused; not adapting again")
                return self.method.with_state(load_file(str(self.weights))), old["adaptation"]
        lrs = [self.target_lr(it) for it in shot_items]
        source = self._source()
        r.echo(f"   {self.ds.name} {self.deg.key} {m.label}: adapting on {', '.join(record['shots'])} "
               f"({m.adapt.steps} steps, seed {m.adapt.seed})")
        t0 = time.perf_counter()
        adapted = self.method.adapt(lrs, steps=m.adapt.steps, seed=m.adapt.seed, source=source, echo=r.echo)
        seconds = time.perf_counter() - t0
        state = {k: v.detach().to("cpu").contiguous() for k, v in adapted.adapted_state().items()}
        self.weights.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.weights.with_name(f".tmp-{self.weights.name}")
        save_file(state, str(tmp), metadata={"format": "srbench-adapted-1", "method": m.label})
        tmp.replace(self.weights)
        record = {**record, "seconds": round(seconds, 3), "sha256": sha256_file(self.weights),
                  "weights": str(self.weights.relative_to(r.out)), "tensors": len(state),
                  "params": int(sum(v.numel() for v in state.values())),
                  "source": source.record() if source is not None else None,
                  "details": getattr(adapted, "adaptation", None)}
        atomic_write_json(self.record_path, {"fingerprint": self.fp, "sha256": record["sha256"], "adaptation": record})
        return adapted, record

    def _source(self) -> SourceData | None:
        """Source training data at the cell's scale (one per runner and scale), or None when the
        method does not use it (its ``adapt`` takes no source) or none is found (said loudly)."""
        cache = self.r._adapt_sources
        scale = self.deg.scale
        if scale not in cache:
            try:
                cache[scale] = SourceData(self.r.spec.data_root, scale)
            except SrbenchError as e:
                self.r.echo(f"!! adaptation source data: {e}")
                cache[scale] = None
        return cache[scale]

    def target_lr(self, item: Any) -> torch.Tensor:
        """The LR image of ``item`` as the method is scored on it, without reading HR pixels:
        real pairs read the LR file (and the HR header, for LR stored at the HR size); synthetic
        LR comes from the run's LR cache (made now from HR by the harness when absent)."""
        from bench.run.io import read_image, read_image_gray
        from bench.run.runner import shrink_registered

        deg = self.deg
        if deg.real:
            if item.lr is None:
                raise SrbenchError(f"{item.hr}: no LR file for x{deg.scale}: cannot adapt on it")
            lr = read_image(item.lr).unsqueeze(0)
            if lr.shape[-2:] == image_size(item.hr):  # LR registered at the HR size (RealSR), as scoring does
                lr = shrink_registered(lr, deg.scale)
            return lr
        cache = self.r.lr_cache(self.ds, deg, item)
        if cache.is_file():
            return read_image(cache).unsqueeze(0)
        hr, _ = read_image_gray(item.hr)
        return self.r._lr_for(self.ds, deg, item, hr.unsqueeze(0))[1]


def image_size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` of an image file from its header (no pixel is decoded); None when the
    header cannot be read (the image's scoring then reports the problem)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception:
        return None
