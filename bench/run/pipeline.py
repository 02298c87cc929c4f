"""The pipelined runner: the cells of one (dataset, scale) run together, image by image.

`bench.run.runner.Runner` hands this module the cells of a (dataset, scale) group that have images
to compute (every degradation at that scale x every method; adapted cells keep the serial path).
Three threads of work overlap:

- **loading** (``workers`` threads, bounded prefetch of ``2 x workers + batch`` images; by default
  on a GPU only, see `default_workers`): each HR
  image is decoded once per (dataset, scale), and the LR of every degradation at that scale is
  made (or read from the run's LR cache) from it; on a GPU the tensors are pinned so that the
  copies to the device are non-blocking;
- **the device** (the main thread): every method that still needs the image upscales it, then
  every metric scores the outputs;
- **writing** (one thread): Parquet parts of score rows and ``save_sr`` PNGs are written off the hot
  path, in the order they were produced; a cell is finished (`Cell.finish`) only once every write
  before it landed, so the resume and kill -9 guarantees of `bench.run.store` hold as they are.

Batching (``batch``, default 1). With ``batch = 1`` every network and metric call sees one image,
exactly as in the serial order, and the rows are identical (tested). With ``batch = N > 1`` up to N
consecutive images of one size go through a network at once (methods with ``batchable = False``
keep batches of one), so do up to N same-size tiles of a tiled network
(`sr_methods.tiling.tile_batching`), and each metric scores the outputs of every method for those images in one
call; scores then move by float noise only (measured tolerance in `BATCH_TOLERANCE`, tested), and
cuDNN's autotuner (``cudnn.benchmark``) is used for an input shape from its second occurrence on
(a first shape is never worth a search; an fp32 batch-1 run keeps cuDNN's deterministic choice).

What goes wrong with one image is recorded as in the serial order: an image that cannot be read
is an ``error`` row in each of its cells; a method that fails on a batch is called again image by
image, so that the error row names the image that caused it; a metric likewise.
"""

from __future__ import annotations

import math
import os
import queue
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import torch

import iqa
from iqa.errors import SrbenchError

from bench.perf.throughput import precision_context
from bench.run.degradations import Degradation
from bench.run.io import DiskFullError, read_image_gray, write_png
from bench.run.store import Cell, safe_name
from sr_methods.tiling import tile_batching

if TYPE_CHECKING:
    from bench.run.datasets import Dataset, ImageItem
    from bench.run.runner import Runner

# the largest score change that `batch > 1` may cause against the exact batch-1 order, per metric
# (absolute); measured on the CPU by tests/test_pipeline.py (LPIPS moves by ~2e-9 when its AlexNet
# sees 3 images at once; networks whose outputs round to another uint8 level in one pixel move
# PSNR by ~1e-5 dB)
BATCH_TOLERANCE = {"psnr": 1e-3, "ssim": 1e-5, "lpips": 1e-6, "dists": 1e-6}


def default_workers(dev: torch.device) -> int:
    """Loader threads when the spec leaves ``workers`` out: on a GPU one per spare core, at most 4;
    on the CPU none, as the cores that would load ahead are the ones computing SR (measured: a
    loader thread made a 2-core CPU run slower; see README "Throughput")."""
    return max(1, min(4, (os.cpu_count() or 1) - 1)) if dev.type == "cuda" else 0


@dataclass
class Loaded:
    """One image of a (dataset, scale) group, read once: the HR file's single-channel flag and,
    per degradation key, ``(hr cropped, lr)`` or the exception that prevented it."""

    item: "ImageItem"
    gray: bool = False
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor] | BaseException] = field(default_factory=dict)

    def shape(self) -> tuple | None:
        """The size that decides batching: the HR shape (None when no degradation could load)."""
        good = [p for p in self.pairs.values() if isinstance(p, tuple)]
        return tuple(good[0][0].shape) if good else None


class Prefetcher:
    """``fn(item)`` for each item, yielded in order, computed by ``workers`` threads at most
    ``depth`` items ahead (``workers = 0``: in the calling thread, one at a time). An exception of
    ``fn`` is raised where its result is yielded."""

    def __init__(self, fn: Callable[[Any], Any], items: Iterable[Any], workers: int, depth: int):
        self.fn, self.items, self.workers, self.depth = fn, list(items), workers, max(1, depth)

    def __iter__(self) -> Iterator[Any]:
        if self.workers <= 0:
            for it in self.items:
                yield self.fn(it)
            return
        pending: deque[Future] = deque()
        todo = iter(self.items)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="srbench-load") as pool:
            try:
                for it in todo:
                    pending.append(pool.submit(self.fn, it))
                    if len(pending) >= self.depth:
                        break
                while pending:
                    result = pending.popleft().result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.append(pool.submit(self.fn, nxt))
                    yield result
            finally:  # stopped early (an error, ^C): drop what was not started
                for f in pending:
                    f.cancel()


class Writer:
    """Runs file writes in one background thread, in the order submitted. The first failure stops
    the later writes and is raised in the caller at the next `submit`, `drain` or `close`."""

    def __init__(self) -> None:
        self._q: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="srbench-write", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._q.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    fn, args = job
                    fn(*args)
            except BaseException as e:  # noqa: BLE001 (handed to the main thread)
                self._error = e
            finally:
                self._q.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise e

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        self._raise()
        self._q.put((fn, args))

    def drain(self) -> None:
        """Wait until every submitted write landed; raise the first failure."""
        self._q.join()
        self._raise()

    def close(self) -> None:
        """Finish the queued writes (what was computed is kept) and stop the thread."""
        self._q.put(None)
        self._thread.join()


@dataclass
class PendingCell:
    """A cell of the group that has images to compute."""

    cell: Cell
    fp: str
    deg: Degradation
    method: Any
    ctx: dict[str, Any]
    todo: set[str]
    rows: list[dict] = field(default_factory=list)
    timings: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.ctx["method"]


@dataclass
class _Output:
    """One method's scored output for one image (before the metrics)."""

    pc: PendingCell
    loaded: Loaded
    ctx: dict[str, Any]
    sr: torch.Tensor
    hr: torch.Tensor


class GroupRun:
    """The cells of one (dataset, scale) group, run image by image (see the module doc)."""

    def __init__(self, runner: "Runner", ds: "Dataset", items: list["ImageItem"], cells: list[PendingCell],
                 dev: torch.device, metrics: dict[str, Any], bad_metrics: dict[str, str]):
        self.r, self.ds, self.cells, self.dev = runner, ds, cells, dev
        self.metrics, self.bad_metrics = metrics, bad_metrics
        spec = runner.spec
        self.batch = spec.batch
        self.workers = default_workers(dev) if spec.workers is None else spec.workers
        self.degs = list(dict.fromkeys(pc.deg.key for pc in cells))
        self._deg = {pc.deg.key: pc.deg for pc in cells}
        wanted = set().union(*(pc.todo for pc in cells))
        self.items = [it for it in items if it.id in wanted]
        # cuDNN autotuning only where results may move anyway (batch > 1 or a reduced precision)
        self.autotune = dev.type == "cuda" and (self.batch > 1 or spec.precision != "fp32")
        self._shapes: dict[tuple, int] = {}

    # -- loading (worker threads) -------------------------------------------------------------------
    def load(self, item: "ImageItem") -> Loaded:
        out = Loaded(item)
        keys = [k for k in self.degs if any(item.id in pc.todo for pc in self.cells if pc.deg.key == k)]
        try:
            hr, out.gray = read_image_gray(item.hr)
        except DiskFullError:
            raise
        except Exception as e:  # every degradation of the image fails the same way
            out.pairs = {k: e for k in keys}
            return out
        for key in keys:
            try:
                pair = self.r._lr_for(self.ds, self._deg[key], item, hr.unsqueeze(0))
                if self.dev.type == "cuda":
                    pair = tuple(t.pin_memory() for t in pair)
                out.pairs[key] = pair
            except DiskFullError:
                raise
            except Exception as e:
                out.pairs[key] = e
        return out

    # -- the group ----------------------------------------------------------------------------------
    def run(self) -> float | None:
        """Compute every image of every cell; write their rows; returns the peak memory (MB)."""
        from tqdm import tqdm

        from bench.run.runner import FLUSH_SECONDS, PeakMemory

        writer = Writer()
        scale = self._deg[self.degs[0]].scale
        prefetch = Prefetcher(self.load, self.items, self.workers, 2 * self.workers + self.batch)
        bar = tqdm(total=len(self.items), desc=f"{self.ds.name} x{scale} ({len(self.cells)} cells)", unit="img",
                   leave=False, disable=True if self.r.progress is False else None, file=sys.stderr)
        last = time.monotonic()
        cudnn_before = torch.backends.cudnn.benchmark
        try:
            with PeakMemory(self.dev) as peak:
                for group in self._batches(iter(prefetch)):
                    for key in self.degs:
                        self._step(group, key, writer)
                    bar.update(len(group))
                    if time.monotonic() - last >= FLUSH_SECONDS:
                        self._flush(writer)
                        last = time.monotonic()
                self._flush(writer)
                writer.drain()
        finally:
            torch.backends.cudnn.benchmark = cudnn_before
            bar.close()
            writer.close()  # on an error too: what was computed and queued is kept
        return peak.mb

    def _batches(self, stream: Iterator[Loaded]) -> Iterator[list[Loaded]]:
        """Consecutive images of one HR size, at most ``batch`` at a time."""
        group: list[Loaded] = []
        for loaded in stream:
            if group and (len(group) >= self.batch or loaded.shape() != group[0].shape()):
                yield group
                group = []
            group.append(loaded)
        if group:
            yield group

    def _flush(self, writer: Writer) -> None:
        for pc in self.cells:
            if pc.rows:
                writer.submit(pc.cell.write_part, pc.rows, pc.timings)
                pc.rows, pc.timings = [], []

    def _step(self, group: list[Loaded], key: str, writer: Writer) -> None:
        """Every cell of degradation ``key`` on the images of ``group``, then the metrics."""
        from bench.run.runner import _cause, _one_line, _row

        outputs: list[_Output] = []
        for pc in (c for c in self.cells if c.deg.key == key):
            run: list[tuple[Loaded, dict, str | None]] = []
            for ld in group:
                if ld.item.id not in pc.todo:
                    continue
                ctx, text, refused = self.r.text_for(self.ds, ld.item, pc.method, pc.ctx)  # as the serial order
                pair = ld.pairs[key]
                if refused or isinstance(pair, BaseException):
                    pc.rows.append(refused or _row(ld.item.id, ctx, "*", math.nan, "error",
                                                   _one_line(ld.item.hr, pair), _cause(pair, "input")))
                    continue
                run.append((ld, ctx, text))
            size = self.batch if getattr(pc.method, "batchable", True) else 1
            for i in range(0, len(run), size):
                outputs += self._upscale(pc, run[i:i + size], key, writer)
        self._score(outputs)

    def _upscale(self, pc: PendingCell, run: list[tuple[Loaded, dict, str | None]], key: str,
                 writer: Writer) -> list[_Output]:
        """The method on a batch of images (one at a time again when the batch fails)."""
        from bench.run.runner import _cause, _one_line, _row

        scale = pc.deg.scale
        try:
            lr = torch.cat([ld.pairs[key][1] for ld, _, _ in run]).to(self.dev, non_blocking=True)
            hrs = [ld.pairs[key][0].to(self.dev, non_blocking=True) for ld, _, _ in run]
            texts = [t for _, _, t in run]
            if self.autotune:
                shape = (pc.label, tuple(lr.shape))
                self._shapes[shape] = self._shapes.get(shape, 0) + 1
                torch.backends.cudnn.benchmark = self._shapes[shape] > 1
            if self.dev.type == "cuda":
                torch.cuda.synchronize(self.dev)
            t0 = time.perf_counter()
            with precision_context(self.r.spec.precision, self.dev.type), tile_batching(self.batch):
                sr = (pc.method.upscale(lr, scale) if texts[0] is None
                      else pc.method.upscale(lr, scale, text=texts))
            if self.dev.type == "cuda":
                torch.cuda.synchronize(self.dev)
            seconds = (time.perf_counter() - t0) / len(run)
            want = (len(run), *hrs[0].shape[1:])
            if tuple(sr.shape) != want:
                raise SrbenchError(f"{pc.label} returned shape {tuple(sr.shape)}, expected {want}")
            sr = sr.clamp(0, 1)
            if self.r.protocol.quantize:
                sr = iqa.quantize_uint8(sr)
        except DiskFullError:
            raise
        except Exception as e:
            if len(run) > 1:  # find the image that fails
                return [o for one in run for o in self._upscale(pc, [one], key, writer)]
            ld = run[0][0]
            pc.rows.append(_row(ld.item.id, run[0][1], "*", math.nan, "error", _one_line(ld.item.hr, e),
                                _cause(e, "method")))
            return []
        out = []
        for i, (ld, ctx, _) in enumerate(run):
            one = sr[i:i + 1]
            pc.timings.append({"dataset": self.ds.name, "degradation": key, "method": pc.label, "image": ld.item.id,
                               "seconds": seconds, "megapixels": one.shape[-1] * one.shape[-2] / 1e6,
                               "device": str(self.dev)})
            if self.r.spec.save_sr:
                writer.submit(write_png, one[0].cpu(), self.r.out / "sr" / safe_name(self.ds.name) / key /
                              safe_name(pc.label) / f"{safe_name(ld.item.id)}.png")
            out.append(_Output(pc, ld, ctx, one, hrs[i]))
        return out

    def _score(self, outputs: list[_Output]) -> None:
        """Every metric on every output: one call per output with ``batch = 1`` (as the serial
        order does), else one call per metric for all outputs of one size and gray flag."""
        from bench.run.runner import _row

        values: dict[int, dict[str, tuple[float, BaseException | None]]] = {i: {} for i in range(len(outputs))}
        groups: dict[tuple, list[int]] = {}
        for i, o in enumerate(outputs):
            key = (tuple(o.sr.shape), o.loaded.gray) if self.batch > 1 else (i,)
            groups.setdefault(key, []).append(i)
        for name, metric in self.metrics.items():
            for idx in groups.values():
                for i, v in zip(idx, self._metric(metric, [outputs[i] for i in idx])):
                    values[i][name] = v
        for i, o in enumerate(outputs):
            for name in self.metrics:
                value, err = values[i][name]
                if err is None:
                    o.pc.rows.append(_row(o.loaded.item.id, o.ctx, name, value))
                else:
                    o.pc.rows.append(self._metric_error(o, name, err))
            for name, why in self.bad_metrics.items():
                o.pc.rows.append(_row(o.loaded.item.id, o.ctx, name, math.nan, "unavailable", why))

    def _metric(self, metric, outs: list[_Output]) -> list[tuple[float, BaseException | None]]:
        o = outs[0]
        try:
            with torch.inference_mode():
                x = o.sr if len(outs) == 1 else torch.cat([u.sr for u in outs])
                ref = o.hr if len(outs) == 1 else torch.cat([u.hr for u in outs])
                v = metric(x, ref, scale=o.pc.deg.scale, gray=o.loaded.gray)
            return [(float(v[i]), None) for i in range(len(outs))]
        except Exception as e:
            if len(outs) > 1:  # score them one by one, so that the error row names its image
                return [r for u in outs for r in self._metric(metric, [u])]
            return [(math.nan, e)]

    @staticmethod
    def _metric_error(o: _Output, name: str, e: BaseException) -> dict:
        from bench.run.runner import _cause, _one_line, _row

        return _row(o.loaded.item.id, o.ctx, name, math.nan, "error", _one_line(o.loaded.item.hr, e),
                    _cause(e, "method"))
