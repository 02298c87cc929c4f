"""Run a spec: datasets x scales x methods, scored by metrics, stored in a run folder.

Per image: HR -> degradation (LR, cached in the run folder) -> method (SR) -> uint8 rounding (as
the protocol says) -> metrics -> tidy rows. Anything that goes wrong with one image becomes an
error row naming the file and the problem, with its cause (see `bench.run.store`); the run goes on. A
cell that cannot run at all (the method does not support the scale, its weights are missing, the
dataset is absent) is recorded with status ``unsupported``/``unavailable``/``missing`` and said
loudly, never skipped in silence. A full disk stops the run with one line; nothing finished is lost.

Reruns repair (``retry="auto"``, the default): a finished cell is reused only when every image of
the dataset has rows and none of them is worth retrying: rows whose cause is the environment
(disk, I/O, memory), ``missing``/``unavailable`` cells, and per-image ``unavailable`` metric rows
once that metric can be built, are computed again; rows caused by the input or the method are
kept. ``retry="errors"`` (``--retry-errors``) retries every row that is not ``ok`` (but an image
that still has no caption for a text-guided method, see below);
``retry="none"`` (``--no-retry``) reuses every finished cell as it is.

Captions (text-guided methods, ``SRMethod.text_guided``): each image gets one caption, the same for
every method of the run: of its candidates (a line of the ``--captions`` file for the image, else
``--caption``, else the dataset's captions) the one at index ``derive_seed(run seed, image id,
"caption") % len(candidates)`` (`pick_caption`). It is passed as ``upscale(lr, scale, text=[caption])``
and recorded in the rows' ``caption`` column (None for methods that are not text-guided, which never
see it). An image without any caption is recorded as ``unsupported`` (cause ``input``; computed again
once it has one), unless the method's ``missing_caption`` is ``"empty"``: then it runs with the empty
prompt and ``""`` is recorded. Overrides are part of the fingerprint of text-guided cells only, so a
new ``--caption`` recomputes those and keeps every other cell; a row whose recorded caption is no
longer the one this run would give (a dataset's captions file edited) is computed again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

import iqa
from iqa.errors import SrbenchError
from iqa.protocols import get_protocol

from bench.perf.throughput import precision_context
from bench.run.datasets import CaptionOverrides, Dataset, DatasetContentError, DatasetMissingError, ImageItem
from bench.run.degradations import Degradation, degradation_keys, derive_seed, parse_degradation
from bench.run.io import DiskFullError, ImageReadError, max_pixels, pixel_limit, read_image, read_image_gray, write_png
from bench.run.spec import MethodSpec, RunSpec
from bench.run.store import (Cell, CorruptFileError, RunLock, atomic_write_json, atomic_write_parquet, env_error_cause,
                    load_manifest, load_scores, safe_name)

RETRY_MODES = ("auto", "errors", "none")

# write the rows of finished images at least this often (0: after every image)
FLUSH_SECONDS = float(os.environ.get("SRBENCH_FLUSH_SECONDS", "10"))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise SrbenchError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SrbenchError(f"device {device!r} asked for, but CUDA is not available here")
    return dev


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("srbench", "torch", "torchvision", "numpy", "pandas", "pyarrow", "pillow", "spandrel", "pyiqa",
                "open_clip_torch", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def sha256_values(provenance: Any) -> list[str]:
    """Every ``sha256`` value found in a provenance record (nested dicts and lists), sorted."""
    if isinstance(provenance, dict):
        own = [provenance["sha256"]] if isinstance(provenance.get("sha256"), str) else []
        return sorted(own + [h for k, v in provenance.items() if k != "sha256" for h in sha256_values(v)])
    if isinstance(provenance, (list, tuple)):
        return sorted(h for v in provenance for h in sha256_values(v))
    return []


def git_sha() -> str | None:
    src = Path(__file__).resolve().parents[2]
    if not (src / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("+dirty" if dirty else "")) if sha else None


class PeakMemory:
    """Peak memory of a block: CUDA allocator peak on a GPU, else the process's peak RSS (Linux)."""

    def __init__(self, dev: torch.device):
        self.dev = dev
        self.mb: float | None = None
        self.kind = "cuda_allocated" if dev.type == "cuda" else "process_rss"

    def __enter__(self) -> "PeakMemory":
        if self.dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.dev)
        else:
            try:  # reset the kernel's high-water mark of this process (Linux >= 4.0)
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self.dev.type == "cuda":
            self.mb = torch.cuda.max_memory_allocated(self.dev) / 2**20
            return
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.mb = int(line.split()[1]) / 1024
        except OSError:
            import resource

            self.mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class CellResult:
    dataset: str
    degradation: str
    method: str
    status: str
    n_images: int = 0
    n_ok: int = 0
    n_errors: int = 0
    means: dict[str, float] = field(default_factory=dict)
    seconds_per_image: float | None = None
    peak_mb: float | None = None
    message: str = ""
    cached: bool = False
    n_inf: dict[str, int] = field(default_factory=dict)
    n_unsupported: int = 0  # images not run (a text-guided method, an image without a caption)


def _row(item_id: str, ctx: dict[str, Any], metric: str, value: float, status: str = "ok", message: str = "",
         cause: str = "") -> dict:
    if status != "ok" and not cause:
        cause = "setup" if status in ("missing", "unavailable") else "input"
    return {**ctx, "image": item_id, "metric": metric, "value": value, "status": status, "message": message,
            "cause": cause}


def _cause(e: BaseException, default: str) -> str:
    """The cause of a per-image failure: ``environment`` (disk, I/O, memory: retried by a rerun),
    else ``default`` (``input`` before the method ran, ``method`` after)."""
    if isinstance(e, ImageReadError) and "file not found" not in str(e):
        return "input"
    if env_error_cause(e) or isinstance(e, FileNotFoundError) or "file not found" in str(e):
        return "environment"
    return default


CAPTION_KEY = "caption"  # the third part of the seed that picks an image's caption (`pick_caption`)
# the message of the rows of an image that a text-guided method did not run: the same for every image
# and method (the rows name them), so that reports say it once for all the cells it concerns
NO_CAPTION = ("no caption for this image and no --caption/--captions; the method is text-guided (its option "
              "missing_caption=\"empty\" runs it with the empty prompt)")


def pick_caption(captions: tuple[str, ...] | list[str], run_seed: int, image_id: str) -> str | None:
    """The caption of an image that a run gives text-guided methods: ``captions[derive_seed(run_seed,
    image_id, "caption") % len(captions)]``, the same for every method; None when there is none."""
    if not captions:
        return None
    return captions[derive_seed(run_seed, image_id, CAPTION_KEY) % len(captions)]


def validate_names(spec: RunSpec) -> list[Dataset]:
    """Every dataset, method (and its options) and metric of ``spec`` exists, no dataset
    present holds two images with one id (or a link loop), and the caption overrides are readable
    and name images of the run: checked before a run folder is created, so a misspelt name leaves
    nothing behind. Returns the datasets."""
    return _validate(spec)[0]


def _validate(spec: RunSpec) -> tuple[list[Dataset], CaptionOverrides]:
    import sr_methods

    datasets = [Dataset(name, spec.data_root) for name in spec.datasets]
    ids: dict[str, set[str] | None] = {}
    for ds in datasets:
        found: set[str] | None = None
        for scale in sorted({parse_degradation(k).scale for k in degradation_keys(spec.degradations, spec.scales, False)}):
            try:
                found = (found or set()) | {it.id for it in ds.items(scale)}
            except DatasetContentError:
                raise
            except SrbenchError:  # missing here: recorded as a 'missing' cell by the run
                pass
        ids[ds.name] = found
    for m in spec.methods:
        name, options = sr_methods._merge_options(m.name, m.options)
        info = sr_methods.method_info(name)
        sr_methods._check_options(name, info["options"], options)
        if m.adapt is not None and not info.get("adaptive"):
            adaptive = [n for n in sr_methods.list_methods() if sr_methods.METHODS.get(n).meta.get("adaptive")]
            raise SrbenchError(f"method {m.label!r} cannot adapt (adapt = ... asks for it); methods that adapt: "
                               f"{', '.join(adaptive)}")
    for name in spec.metrics:
        iqa.METRICS.get(name)
    return datasets, CaptionOverrides.load(spec.caption, spec.captions, ids)


class Runner:
    def __init__(self, spec: RunSpec, out: str | Path, *, echo: Callable[[str], None] | None = None,
                 progress: bool | None = None, fetch: bool | None = None, retry: str = "auto",
                 ray: str | None = None, ray_gpus: float | None = None):
        if retry not in RETRY_MODES:
            raise SrbenchError(f"retry must be one of {', '.join(RETRY_MODES)}, got {retry!r}")
        self.retry = retry
        self.spec = spec
        # fetch missing pretrained assets that have a public source (off with SRBENCH_OFFLINE=1)
        self.fetch = fetch if fetch is not None else os.environ.get("SRBENCH_OFFLINE", "") in ("", "0")
        self.out = Path(out)
        self.protocol = get_protocol(spec.protocol)
        # precision is part of the protocol: rows (and fingerprints) of a non-fp32 run read e.g. "basicsr+bf16"
        self.protocol_name = self.protocol.name + ("" if spec.precision == "fp32" else f"+{spec.precision}")
        self.echo = echo or (lambda s: print(s, flush=True))
        self.progress = progress
        self.results: list[CellResult] = []
        self._said_missing: set[str] = set()
        self._method_hashes: dict[str, list[str]] = {}
        self._metric_hashes: list[str] = []
        self._built_metrics: set[str] = set()
        self._adapt_sources: dict[int, Any] = {}  # scale -> bench.run.adapt.SourceData (or None), built once
        self.captions = CaptionOverrides()  # --caption / --captions (read by run())
        self._text_guided: set[str] = set()  # labels of the text-guided methods built
        self._expected: dict[str, dict[str, str | None]] = {}  # dataset -> image id -> caption this run gives
        # scale-out (bench.run.distributed): the Ray address ("" for ray.init()'s default) and the GPU share
        # of every cell (None: from the method's size); on a worker, `worker` says where it runs
        self.ray, self.ray_gpus = ray, ray_gpus
        self.worker: dict[str, Any] | None = None
        self._remote: Callable[[Dataset, Degradation, MethodSpec], None] | None = None

    # -- set-up -----------------------------------------------------------------------------------
    def _with_assets(self, what: str, assets: tuple[str, ...], build: Callable[[], Any]) -> Any:
        """``build()``, fetching missing public assets first unless offline (``fetch=False`` or
        ``SRBENCH_OFFLINE=1``); see ``iqa.assets.build_with_assets``."""
        from iqa.assets import build_with_assets

        return build_with_assets(build, assets, fetch=self.fetch, echo=self.echo, what=what)

    def _build_metrics(self, dev: torch.device) -> tuple[dict[str, iqa.Metric], dict[str, str]]:
        from iqa import nr_baselines

        nr_baselines.register_assets()  # brisque-live
        metrics, unavailable = {}, {}
        for name in self.spec.metrics:
            try:
                assets = tuple(iqa.METRICS.get(name).meta.get("assets", ()))
                metrics[name] = self._with_assets(f"metric {name}", assets, lambda: iqa.create_metric(
                    name, protocol=self.protocol, device=dev))
            except SrbenchError as e:
                if isinstance(e, iqa.UnknownNameError):
                    raise
                unavailable[name] = str(e)
                self.echo(f"!! metric {name} cannot run: {e}")
        return metrics, unavailable

    def _build_methods(self, dev: torch.device) -> tuple[dict[str, Any], dict[str, str]]:
        import sr_methods
        from sr_methods.catalogue import register_assets

        register_assets()
        methods, unavailable = {}, {}
        for m in self.spec.methods:
            try:
                assets = tuple(sr_methods.method_info(m.name).get("assets", ()))
                base = sr_methods.split_options(m.name)[1].get("base", m.options.get("base"))
                if isinstance(base, str):  # an adaptive method around a catalogue network needs its assets too
                    assets += tuple(a for a in sr_methods.method_info(base).get("assets", ()) if a not in assets)
                methods[m.label] = self._with_assets(f"method {m.label}", assets, lambda: sr_methods.create_method(
                    m.name, device=dev, **m.options))
            except SrbenchError as e:
                if isinstance(e, iqa.UnknownNameError):
                    raise
                unavailable[m.label] = str(e)
                self.echo(f"!! method {m.label} cannot run: {e}")
        return methods, unavailable

    def _write_manifest(self, device: str, methods: dict[str, Any], metrics: dict[str, Any],
                        started: str) -> dict[str, Any]:
        try:
            old = load_manifest(self.out)
        except CorruptFileError as e:
            self.echo(f"!! {e}; writing a new one (the earlier sessions' history in it is lost)")
            old = {}
        manifest = {
            "srbench_run": 1,
            "spec": self.spec.to_dict(),
            "protocol": {"name": self.protocol_name, "description": self.protocol.description,
                         **({"precision": self.spec.precision} if self.spec.precision != "fp32" else {})},
            "versions": package_versions(),
            "git_sha": git_sha(),
            "device": device,
            "seeds": {"run_seed": self.spec.seed, "rule": "sha256(run_seed, image_id, degradation)[:8] >> 1"},
            "weights": {label: m.provenance() for label, m in methods.items()},
            "metric_weights": {name: p for name, m in metrics.items() if (p := m.provenance())},
            **({"captions": {"rule": "captions[(sha256(run_seed, image_id, 'caption')[:8] >> 1) % len(captions)]",
                             "text_guided": sorted(self._text_guided), **self.captions.record()}}
               if self._text_guided or self.captions else {}),
            "created": old.get("created", started),
            "sessions": old.get("sessions", []) + [{"started": started, "pid": os.getpid(), "argv": sys.argv}],
        }
        atomic_write_json(self.out / "manifest.json", manifest)
        return manifest

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> list[CellResult]:
        # with --ray the driver builds methods and metrics on the CPU, for their provenance and size only
        dev = torch.device("cpu") if self.ray is not None else resolve_device(self.spec.device)
        datasets, self.captions = _validate(self.spec)  # unknown names fail here, before the run folder exists
        limit = self.spec.max_pixels if self.spec.max_pixels is not None else max_pixels()
        with RunLock(self.out), pixel_limit(limit):
            return self._run(dev, datasets)

    def run_cells(self) -> list[CellResult]:
        """A Ray worker's part of a run (`bench.run.distributed`): the cells of this spec, in a run
        folder whose lock, manifest and clean-up belong to the driver."""
        dev = resolve_device(self.spec.device)
        datasets, self.captions = _validate(self.spec)
        limit = self.spec.max_pixels if self.spec.max_pixels is not None else max_pixels()
        with pixel_limit(limit):
            self._grid(dev, datasets, *self._build(dev))
        return self.results

    def _build(self, dev: torch.device) -> tuple[dict, dict, dict, dict]:
        """Metrics and methods (with what cannot be built, and why); sets what fingerprints need."""
        metrics, bad_metrics = self._build_metrics(dev)
        self._built_metrics = set(metrics)
        methods, bad_methods = self._build_methods(dev)
        self._text_guided = {label for label, m in methods.items() if getattr(m, "text_guided", False)}
        # a finished cell is reused only with the same weights: a changed network or metric
        # checkpoint (same name, other file) reruns the cells it touches
        self._metric_hashes = sha256_values({n: p for n, m in metrics.items() if (p := m.provenance())})
        self._method_hashes = {label: sha256_values(m.provenance()) for label, m in methods.items()}
        return metrics, bad_metrics, methods, bad_methods

    def _run(self, dev: torch.device, datasets: list[Dataset]) -> list[CellResult]:
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for stale in self.out.rglob(".tmp-*"):  # half-written files of a killed run
            stale.unlink(missing_ok=True)
        built = self._build(dev)
        metrics, _, methods, _ = built
        if self.captions and not self._text_guided:
            self.echo(f"!! {self._override_flags()} given, but no method of this run is text-guided: "
                      f"no method reads a caption")
        failed: list[str] = []
        if self.ray is None:
            manifest = self._write_manifest(device_name(dev), methods, metrics, started)
            self._grid(dev, datasets, *built)
        else:
            from bench.run.distributed import RayRun

            cluster = RayRun(self, methods)
            manifest = self._write_manifest(cluster.describe(), methods, metrics, started)
            self._remote = cluster.submit
            try:
                self._grid(dev, datasets, *built)
                failed = cluster.wait()
            finally:
                self._remote = None
                cluster.cancel()
        df = load_scores(self.out)
        atomic_write_parquet(self.out / "scores.parquet", df)
        manifest["sessions"][-1]["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        atomic_write_json(self.out / "manifest.json", manifest)
        if failed:
            raise SrbenchError(f"{len(failed)} cell(s) did not finish: {failed[0]}"
                               f"{f' (and {len(failed) - 1} more)' if len(failed) > 1 else ''}; the finished "
                               f"images are saved, rerun the same command to resume")
        return self.results

    def _grid(self, dev: torch.device, datasets: list[Dataset], metrics, bad_metrics, methods, bad_methods) -> None:
        for ds in datasets:
            degs = [parse_degradation(k) for k in
                    degradation_keys(self.spec.degradations, self.spec.scales, ds.manifest.kind == "paired")]
            # pipelined: the degradations of one scale together (one HR read serves them all); serial: one by one
            groups = ([[d for d in degs if d.scale == s] for s in dict.fromkeys(d.scale for d in degs)]
                      if self.spec.pipeline else [[d] for d in degs])
            for group in groups:
                self._run_group(ds, group, dev, metrics, bad_metrics, methods, bad_methods)

    # -- what a rerun does again ------------------------------------------------------------------
    def _retry_mask(self, df) -> Any:
        """Rows (of a cell's score frame) that this run computes again."""
        if self.retry == "none":
            return df["status"] != df["status"]  # all False
        stale, uncaptioned = self._caption_rows(df)
        if self.retry == "errors":  # an image still without a caption would only be refused again
            return ((df["status"] != "ok") & ~uncaptioned) | stale
        metric_back = (df["status"] == "unavailable") & df["metric"].isin(self._built_metrics)
        return (df["cause"] == "environment") | metric_back | stale

    def _caption_rows(self, df) -> tuple[Any, Any]:
        """Rows of a text-guided cell (a caption recorded, or an image refused for want of one) that
        are stale (the caption this run gives is another: computed again) or still have no caption
        to run with (kept as they are)."""
        none = df["status"] != df["status"]
        if not self._expected or "caption" not in df.columns or not len(df):
            return none, none
        refused = (df["status"] == "unsupported") & (df["image"] != "*")
        mine = df["caption"].notna() | refused
        if not mine.any():
            return none, none
        unknown = object()
        expected = [self._expected.get(d, {}).get(i, unknown) for d, i in zip(df["dataset"], df["image"])]
        stale = [bool(m) and e is not unknown and (rec not in (None, "") if e is None else rec != e)
                 for m, e, rec in zip(mine, expected, df["caption"])]
        still = [bool(r) and e is None for r, e in zip(refused, expected)]
        return pd.Series(stale, index=df.index, dtype=bool), pd.Series(still, index=df.index, dtype=bool)

    def _reusable(self, cell: Cell, fp: str, items: list[ImageItem] | None) -> bool:
        """Whether a finished cell stands as it is (see the module doc)."""
        if not cell.is_done(fp):
            return False
        status = cell.info().get("status_detail", "ran")
        if status in ("missing", "unavailable"):  # cheap to redo, and the record is then current
            return self.retry == "none"
        if status == "unsupported":
            return self.retry != "errors"
        if items is None:  # dataset gone since (another --data-root?): keep what was computed
            self.echo(f"!! {cell.dataset} {cell.degradation} {cell.method}: dataset not found now; keeping the "
                      f"images scored by an earlier run")
            return True
        return {it.id for it in items} <= cell.finished_images(self._retry_mask)

    def _fingerprint(self, ds: str, deg: Degradation, m: MethodSpec) -> str:
        weights = self._method_hashes.get(m.label, []) + self._metric_hashes
        payload = {"dataset": ds, "degradation": deg.key, "method": [m.name, m.options], "metrics": self.spec.metrics,
                   **({"adapt": m.adapt.to_dict()} if m.adapt is not None else {}),
                   "protocol": self.protocol_name, "seed": self.spec.seed, "save_sr": self.spec.save_sr,
                   **({"limit": self.spec.limit} if self.spec.limit is not None else {}),
                   **({"weights": weights} if weights else {})}
        if m.label in self._text_guided and (overrides := self.captions.fingerprint(ds)):
            payload["caption_overrides"] = overrides  # absent otherwise: other cells keep their fingerprint
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _items(self, ds: Dataset, scale: int) -> tuple[list[ImageItem] | None, str, str]:
        """The images of ``ds`` at ``scale`` (None when there are none), the message why not, and the
        status of its cells then (``missing``, or ``unsupported`` when no data can change it)."""
        items: list[ImageItem] | None = None
        missing, empty = "", "missing"
        try:
            items = ds.items(scale)
            if self.spec.limit is not None:
                items = sorted(items, key=lambda it: it.id)[: self.spec.limit]
            if self._text_guided:
                self._expected[ds.name] = {it.id: self.caption_for(ds, it) for it in items}
        except DatasetMissingError as e:
            missing = str(e)
            if ds.name not in self._said_missing:
                self._said_missing.add(ds.name)
                self.echo(f"!! {e}")
            self._said_missing.add(missing)
        except SrbenchError as e:  # e.g. a paired dataset without pairs at this scale
            missing = str(e)
            if not ds.supports(scale):  # no data to fetch can change that: the cells are unsupported
                empty = "unsupported"
            else:
                self.echo(f"!! {ds.name} x{scale}: {e}")
                self._said_missing.add(missing)
        return items, missing, empty

    def _run_group(self, ds: Dataset, degs: list[Degradation], dev, metrics, bad_metrics, methods,
                   bad_methods) -> None:
        """The cells of ``ds`` x ``degs`` (degradations of one scale) x every method: cached, empty
        and adapted cells one by one; the others serially (`_run_cell`) or together through the
        pipeline (`bench.run.pipeline`)."""
        from bench.run.pipeline import PendingCell

        scale = degs[0].scale
        items, missing, empty = self._items(ds, scale)
        pending: list[PendingCell] = []
        for deg in degs:
            ctx = {"dataset": ds.name, "degradation": deg.key, "scale": scale, "protocol": self.protocol_name}
            for mspec in self.spec.methods:
                cell = Cell(self.out, ds.name, deg.key, mspec.label)
                fp = self._fingerprint(ds.name, deg, mspec)
                mctx = {**ctx, "method": mspec.label}
                method = methods.get(mspec.label)
                if mspec.adapt is not None and self._remote is not None:  # the worker keeps its own cache
                    self._remote(ds, deg, mspec)
                    continue
                if mspec.adapt is not None:
                    from bench.run.adapt import AdaptedCell

                    AdaptedCell(self, ds, deg, mspec, method, fp, ctx).run(items, empty, missing, bad_methods, dev,
                                                                            metrics, bad_metrics)
                    continue
                for line in cell.set_aside_corrupt():
                    self.echo(f"!! {line}")
                if self._reusable(cell, fp, items):
                    self._report_cell(cell, cached=True)
                    continue
                if self._remote is not None and items is not None and method is not None and method.supports(scale):
                    self._remote(ds, deg, mspec)
                    continue
                if self.worker and cell.dir.is_dir():  # a Ray task owns its cell: an earlier killed one's leftovers
                    for stale in cell.dir.glob(".tmp-*"):
                        stale.unlink(missing_ok=True)
                cell.start(fp, self.worker)
                if items is None:
                    self._finish_empty(cell, fp, mctx, empty, missing)
                elif method is None:
                    self._finish_empty(cell, fp, mctx, "unavailable", bad_methods[mspec.label])
                elif not method.supports(scale):
                    scales = ", ".join(f"x{s}" for s in (method.scales or ()))
                    self._finish_empty(cell, fp, mctx, "unsupported", f"{mspec.label} supports {scales}, not x{scale}")
                elif not self.spec.pipeline:
                    self._run_cell(cell, fp, ds, deg, items, method, dev, metrics, bad_metrics, mctx)
                else:
                    done = cell.finished_images(self._retry_mask)
                    pending.append(PendingCell(cell, fp, deg, method, mctx, {it.id for it in items} - done))
        if pending:
            self._run_pending(ds, items, pending, dev, metrics, bad_metrics)

    def _run_pending(self, ds: Dataset, items: list[ImageItem], pending: list, dev, metrics, bad_metrics) -> None:
        """The pipelined cells of a group; each is finished (and reported) once all its rows landed."""
        from bench.run.pipeline import GroupRun

        group = GroupRun(self, ds, items, pending, dev, metrics, bad_metrics)
        peak = group.run() if group.items else None
        for pc in pending:
            self._finish_ran(pc.cell, pc.fp, items, dev, peak, PeakMemory(dev).kind,
                             {"peak_scope": "group", "pipeline": {"workers": group.workers, "batch": group.batch}})

    def _finish_empty(self, cell: Cell, fp: str, ctx: dict, status: str, message: str) -> None:
        cell.write_part([_row("*", ctx, "*", math.nan, status, message)], [])
        cell.finish(fp, {"status_detail": status, "message": message, "n_images": 0}, keep={"*"})
        self._report_cell(cell)

    def caption_for(self, ds: Dataset, item: ImageItem) -> str | None:
        """The caption text-guided methods get for ``item`` in this run (None: it has none); see
        the module doc."""
        candidates = self.captions.captions_for(ds.name, item.id)
        return pick_caption(item.captions if candidates is None else candidates, self.spec.seed, item.id)

    def _override_flags(self) -> str:
        return " and ".join(f for f, v in (("--caption", self.captions.text), ("--captions", self.captions.file))
                            if v is not None)

    def lr_cache(self, ds: Dataset, deg: Degradation, item: ImageItem) -> Path:
        """Where the run caches the synthetic LR image of ``item``."""
        return self.out / "lr" / safe_name(ds.name) / deg.key / f"{safe_name(item.id)}.png"

    def _lr_for(self, ds: Dataset, deg: Degradation, item: ImageItem, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(HR, LR) as (1, 3, H, W) tensors; synthetic LR images are cached in the run folder."""
        from iqa.resize import modcrop

        if deg.real:
            if item.lr is None:
                raise SrbenchError(f"{item.hr}: no LR file for x{deg.scale} (expected {ds.manifest.layout['lr']})")
            lr = read_image(item.lr).unsqueeze(0)
            if lr.shape[-2:] == hr.shape[-2:]:  # RealSR stores LR registered at the HR size
                hr = modcrop(hr, deg.scale)
                lr = shrink_registered(lr, deg.scale)
            elif (lr.shape[-2] * deg.scale, lr.shape[-1] * deg.scale) != tuple(hr.shape[-2:]):
                raise SrbenchError(f"{item.lr}: LR size {tuple(lr.shape[-2:])} does not match HR "
                                   f"{tuple(hr.shape[-2:])} at x{deg.scale}")
            return hr, lr
        cache = self.lr_cache(ds, deg, item)
        if cache.is_file():
            return modcrop(hr, deg.scale), read_image(cache).unsqueeze(0)
        hr, lr = deg.for_image(hr, self.spec.seed, item.id)  # on the uint8 grid: what the PNG holds
        write_png(lr[0], cache)
        return hr, lr

    def _run_cell(self, cell: Cell, fp: str, ds: Dataset, deg: Degradation, items: list[ImageItem], method,
                  dev: torch.device, metrics: dict, bad_metrics: dict, ctx: dict, extra: dict | None = None) -> None:
        from tqdm import tqdm

        done = cell.finished_images(self._retry_mask)
        todo = [it for it in items if it.id not in done]
        rows: list[dict] = []
        timings: list[dict] = []
        last_flush = time.monotonic()
        desc = f"{ds.name} {deg.key} {ctx['method']}"
        with PeakMemory(dev) as peak:
            for item in tqdm(todo, desc=desc, unit="img", leave=False, disable=True if self.progress is False else None,
                             file=sys.stderr):
                rows += self._score_image(ds, deg, item, method, dev, metrics, bad_metrics, ctx, timings)
                if time.monotonic() - last_flush >= FLUSH_SECONDS:
                    cell.write_part(rows, timings)
                    rows, timings, last_flush = [], [], time.monotonic()
            cell.write_part(rows, timings)
        self._finish_ran(cell, fp, items, dev, peak.mb, peak.kind, extra)

    def _finish_ran(self, cell: Cell, fp: str, items: list[ImageItem], dev: torch.device, peak_mb: float | None,
                    peak_kind: str, extra: dict | None = None) -> None:
        """Finish a cell whose images were computed (serially or pipelined), then report it."""
        t = cell.timings()
        summary = {"status_detail": "ran", "n_images": len(items), "device": str(dev),
                   "seconds_per_image": float(t["seconds"].mean()) if len(t) else None,
                   "peak_mb": peak_mb, "peak_kind": peak_kind, **({"worker": self.worker} if self.worker else {}),
                   **(extra or {})}
        cell.finish(fp, summary, keep={it.id for it in items})
        self._report_cell(cell)

    def text_for(self, ds: Dataset, item: ImageItem, method, ctx: dict) -> tuple[dict, str | None, dict | None]:
        """What ``method`` gets for ``item``: ``(ctx, caption, None)``, the rows' context then holding
        the caption of a text-guided method (None for others), or ``(ctx, None, row)`` with the
        ``unsupported`` row of an image that a text-guided method does not run (no caption)."""
        if not getattr(method, "text_guided", False):
            return ctx, None, None
        caption = self.caption_for(ds, item)
        if caption is None and getattr(method, "missing_caption", "unsupported") == "empty":
            caption = ""
        if caption is None:  # never run without text: said in the row (and on a !! line per cell)
            return ctx, None, _row(item.id, {**ctx, "caption": None}, "*", math.nan, "unsupported", NO_CAPTION, "input")
        return {**ctx, "caption": caption}, caption, None

    def _score_image(self, ds, deg, item, method, dev, metrics, bad_metrics, ctx, timings) -> list[dict]:
        ctx, caption, refused = self.text_for(ds, item, method, ctx)
        if refused:
            return [refused]
        text = None if caption is None else [caption]
        stage = "input"
        try:
            hr, gray = read_image_gray(item.hr)
            hr, lr = self._lr_for(ds, deg, item, hr.unsqueeze(0))
            hr, lr = hr.to(dev), lr.to(dev)
            stage = "method"
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            with precision_context(self.spec.precision, dev.type):
                sr = method.upscale(lr, deg.scale) if text is None else method.upscale(lr, deg.scale, text=text)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            seconds = time.perf_counter() - t0
            if sr.shape != hr.shape:
                raise SrbenchError(f"{ctx['method']} returned shape {tuple(sr.shape)}, expected {tuple(hr.shape)}")
            sr = sr.clamp(0, 1)
            if self.protocol.quantize:
                sr = iqa.quantize_uint8(sr)
        except DiskFullError:
            raise  # stops the run: every later image would fail the same way
        except Exception as e:  # one bad image never stops the run
            return [_row(item.id, ctx, "*", math.nan, "error", _one_line(item.hr, e), _cause(e, stage))]
        timings.append({"dataset": ds.name, "degradation": deg.key, "method": ctx["method"], "image": item.id,
                        "seconds": seconds, "megapixels": sr.shape[-1] * sr.shape[-2] / 1e6, "device": str(dev)})
        if self.spec.save_sr:
            write_png(sr[0], self.out / "sr" / safe_name(ds.name) / deg.key / safe_name(ctx["method"]) /
                      f"{safe_name(item.id)}.png")
        out = []
        for name, metric in metrics.items():
            try:
                with torch.inference_mode():
                    value = float(metric(sr, hr, scale=deg.scale, gray=gray)[0])
                out.append(_row(item.id, ctx, name, value))
            except Exception as e:
                out.append(_row(item.id, ctx, name, math.nan, "error", _one_line(item.hr, e), _cause(e, "method")))
        for name, why in bad_metrics.items():
            out.append(_row(item.id, ctx, name, math.nan, "unavailable", why))
        return out

    def _report_cell(self, cell: Cell, cached: bool = False) -> None:
        info = cell.info()
        df = cell.scores()
        ok = df[df["status"] == "ok"]
        n_err = int((df["status"] == "error").sum())
        refused = df[(df["status"] == "unsupported") & (df["image"] != "*")]
        status = info.get("status_detail", "ran")
        res = CellResult(cell.dataset, cell.degradation, cell.method, status, info.get("n_images", 0),
                         n_ok=ok["image"].nunique(), n_errors=n_err,
                         means={m: float(v) for m, v in ok.groupby("metric")["value"].mean().items()},
                         seconds_per_image=info.get("seconds_per_image"), peak_mb=info.get("peak_mb"),
                         message=info.get("message", ""), cached=cached,
                         n_inf={m: int(n) for m, n in ok.groupby("metric")["value"].agg(
                             lambda v: int(v.abs().eq(math.inf).sum())).items() if n},
                         n_unsupported=refused["image"].nunique())
        self.results.append(res)
        if res.n_unsupported and not cached:
            ids = list(dict.fromkeys(refused["image"].astype(str)))
            shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
            self.echo(f"!! {cell.dataset} {cell.degradation} {cell.method}: {len(ids)} image(s) not run ({shown}): "
                      f"{refused['message'].iloc[0]}")
        if res.status == "missing" and res.message in self._said_missing:  # said in full on a !! line
            res = CellResult(**{**res.__dict__, "message": "see the !! line above"})
        self.echo(format_cell(res))


def shrink_registered(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """An LR image stored registered at the HR size (RealSR), shrunk to the LR grid: cropped to a
    multiple of ``scale``, then MATLAB bicubic by ``1 / scale``."""
    from iqa.resize import imresize, modcrop

    return imresize(modcrop(lr, scale), 1.0 / scale, mode="matlab")


def _one_line(path: Path, e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if str(path) in text else f"{path}: {text}"


def format_cell(r: CellResult) -> str:
    head = f"{r.dataset:<12} {r.degradation:<13} {r.method:<24}"
    if r.status in ("unsupported", "unavailable", "missing"):
        message = r.message if len(r.message) <= 90 else r.message[:87] + "..."
        return f"{head} {r.status.upper()}: {message}"
    scores = "  ".join(f"{k.upper()} {v:.4f}" if abs(v) < 10 else f"{k.upper()} {v:.2f}" for k, v in sorted(r.means.items()))
    if r.n_inf:  # an infinite score (PSNR of an exact copy) makes the mean infinite: say how many
        scores += "  (" + ", ".join(f"{k.upper()} inf on {n} image(s)" for k, n in sorted(r.n_inf.items())) + ")"
    speed = f"  {1000 * r.seconds_per_image:.1f} ms/img" if r.seconds_per_image is not None else ""
    mem = f"  peak {r.peak_mb:.0f} MB" if r.peak_mb else ""
    errs = f"  {r.n_errors} ERRORS" if r.n_errors else ""
    errs += f"  {r.n_unsupported} UNSUPPORTED (no caption)" if r.n_unsupported else ""
    cached = "  (cached)" if r.cached else ""
    return f"{head} {r.n_ok}/{r.n_images} ok  {scores}{speed}{mem}{errs}{cached}"
