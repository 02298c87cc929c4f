"""Throughput of SR methods and metrics (``srbench perf``).

For every method (``upscale``) and metric (``metric(sr, hr)``) on inputs of given sizes (generated,
seeded) or on the images of a dataset: ``warmup`` untimed calls, then ``repeats`` timed passes over
the inputs (CUDA synchronised around each call). Each result holds the per-pass wall times, their
median and spread (min, max, interquartile range), images per second, milliseconds per output
megapixel, the FLOP count of one pass (`torch.utils.flop_counter.FlopCounterMode`: convolutions and
matrix products; None when counting fails), the achieved TFLOP/s at the median, and the peak memory
(CUDA: ``max_memory_allocated``; the CPU has no per-call figure, so None). The machine (CPU or GPU
name, driver, torch, CUDA) and the configuration are recorded with the results.

Precision is part of what is measured: ``fp32`` (default; scores exact), ``tf32`` (TF32 matrix
products and convolutions on CUDA), ``bf16`` or ``fp16`` (autocast). It is recorded in every result,
so a fast run is never mistaken for an exact one.

Timings are measurements, not assertions: nothing here fails because something is slow; the gate is
`bench.perf.compare` between two result files of the same machine.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from iqa.errors import SrbenchError

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
FORMAT = "srbench-perf-1"


@dataclass
class PerfResult:
    kind: str  # "method" or "metric"
    name: str
    inputs: str  # "64x64" (generated, LR size for methods, HR size for metrics) or "dataset:NAME"
    n_images: int
    scale: int
    batch: int
    precision: str
    device: str
    times: list[float] = field(default_factory=list)  # seconds per pass over the inputs
    median_s: float = math.nan
    min_s: float = math.nan
    max_s: float = math.nan
    iqr_s: float = math.nan
    images_per_s: float = math.nan
    ms_per_mp: float = math.nan  # per output megapixel (methods) / per scored megapixel (metrics)
    flops: float | None = None  # one pass
    tflops_per_s: float | None = None
    peak_mb: float | None = None
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # harness: in-harness forward time, ratios

    @property
    def key(self) -> tuple:
        return (self.kind, self.name, self.inputs, self.scale, self.batch, self.precision)


def machine(device: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        info.update(gpu=torch.cuda.get_device_name(dev), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
        with contextlib.suppress(Exception):
            import subprocess

            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    return info


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"64x64,128x96"`` -> ``[(64, 64), (128, 96)]`` as (width, height)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        w, sep, h = part.lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
            raise SrbenchError(f"sizes must be like 64x64,128x96 (width x height), got {part!r}")
        out.append((int(w), int(h)))
    if not out:
        raise SrbenchError("give at least one size, e.g. --sizes 64x64")
    return out


@contextlib.contextmanager
def precision_context(precision: str, device_type: str):
    """Autocast / TF32 for ``precision`` (restored afterwards)."""
    import torch

    if precision not in PRECISIONS:
        raise SrbenchError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        if precision == "tf32":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        if precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            with torch.autocast(device_type, dtype=dtype):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def _summarise(r: PerfResult, pixels: float) -> None:
    t = sorted(r.times)
    r.median_s = statistics.median(t)
    r.min_s, r.max_s = t[0], t[-1]
    if len(t) >= 2:
        q = statistics.quantiles(t, n=4, method="inclusive")
        r.iqr_s = q[2] - q[0]
    else:
        r.iqr_s = 0.0
    r.images_per_s = r.n_images / r.median_s if r.median_s > 0 else math.inf
    r.ms_per_mp = 1000.0 * r.median_s / (pixels / 1e6) if pixels else math.nan
    if r.flops is not None and r.median_s > 0:
        r.tflops_per_s = r.flops / r.median_s / 1e12


def time_passes(run_pass: Callable[[], Any], *, warmup: int, repeats: int, device) -> tuple[list[float], float | None]:
    """``(seconds of each timed pass, peak CUDA memory in MB or None)``."""
    import torch

    cuda = device.type == "cuda"
    for _ in range(warmup):
        run_pass()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        run_pass()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    return times, peak


def count_flops(run_pass: Callable[[], Any]) -> float | None:
    """FLOPs of one pass (FlopCounterMode counts convolutions and matrix products); None if it fails."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            run_pass()
        return float(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - an op the counter cannot trace: no figure, not a wrong one
        return None


def generated_inputs(sizes: list[tuple[int, int]], batch: int, seed: int = 0):
    """Seeded random images ``(batch, 3, h, w)`` in [0, 1] per size."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return [(f"{w}x{h}", torch.rand(batch, 3, h, w, generator=g)) for w, h in sizes]


def dataset_inputs(name: str, scale: int, limit: int | None, data_root=None):
    """The LR images (MATLAB bicubic, as a run with seed 0 makes them) of a dataset, batch 1 each."""
    from bench.run.datasets import Dataset
    from bench.run.degradations import parse_degradation
    from bench.run.io import read_image

    deg = parse_degradation(f"x{scale}")
    items = sorted(Dataset(name, data_root).items(scale), key=lambda it: it.id)[:limit]
    return [deg.for_image(read_image(it.hr)[None], 0, it.id)[1] for it in items]


def measure_method(name: str, method, inputs, *, scale: int, batch: int, precision: str, device, warmup: int,
                   repeats: int, label: str) -> PerfResult:
    import torch

    lrs = [x.to(device) for x in inputs]
    r = PerfResult("method", name, label, sum(x.shape[0] for x in lrs), scale, batch, precision, str(device))

    def run_pass():
        with torch.inference_mode(), precision_context(precision, device.type):
            for x in lrs:
                method.upscale(x, scale)

    try:
        r.times, r.peak_mb = time_passes(run_pass, warmup=warmup, repeats=repeats, device=device)
        r.flops = count_flops(run_pass)
        _summarise(r, sum(x.shape[0] * x.shape[-1] * x.shape[-2] * scale * scale for x in lrs))
    except Exception as e:  # noqa: BLE001 - one failing entry never stops the benchmark
        r.error = " ".join(str(e).split())[:300] or type(e).__name__
    return r


def measure_metric(name: str, metric, inputs, *, scale: int, batch: int, precision: str, device, warmup: int,
                   repeats: int, label: str) -> PerfResult:
    import torch

    g = torch.Generator().manual_seed(1)
    pairs = []
    for x in inputs:
        hr = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
        noise = (torch.rand(hr.shape, generator=g) - 0.5) * 0.1
        pairs.append(((hr + noise).clamp(0, 1).to(device), hr.to(device)))
    r = PerfResult("metric", name, label, sum(p[0].shape[0] for p in pairs), scale, batch, precision, str(device))

    def run_pass():
        with torch.inference_mode(), precision_context(precision, device.type):
            for sr, hr in pairs:
                metric(sr, hr, scale=scale)

    try:
        r.times, r.peak_mb = time_passes(run_pass, warmup=warmup, repeats=repeats, device=device)
        r.flops = count_flops(run_pass)
        _summarise(r, sum(p[0].shape[0] * p[0].shape[-1] * p[0].shape[-2] for p in pairs))
    except Exception as e:  # noqa: BLE001
        r.error = " ".join(str(e).split())[:300] or type(e).__name__
    return r


HARNESS_ORDERS = ("serial", "pipelined")


def measure_harness(methods: list[str], metrics: list[str], dataset: str, *, scale: int, limit: int | None,
                    precision: str, device, warmup: int, repeats: int, data_root=None, order: str = "pipelined",
                    batch: int = 1, workers: int | None = None) -> PerfResult:
    """The whole harness: ``srbench run`` of the dataset x methods x metrics into a fresh temporary run
    folder per pass (decoding, degradation, SR, metrics and writes included), in the serial or the
    pipelined ``order`` (with ``batch`` and ``workers``), its wall time, and the methods' own forward
    time inside it (the run's timing table): ``extra["forward_s"]`` and ``extra["wall_over_forward"]``."""
    import tempfile

    from bench.run.runner import Runner
    from bench.run.spec import MethodSpec, RunSpec
    from bench.run.store import load_timings

    if order not in HARNESS_ORDERS:
        raise SrbenchError(f"harness order must be one of {', '.join(HARNESS_ORDERS)}, got {order!r}")
    pipelined = order == "pipelined"
    spec = RunSpec((dataset,), (scale,), tuple(MethodSpec(m, m) for m in methods), tuple(metrics), device=str(device),
                   limit=limit, data_root=None if data_root is None else str(data_root), precision=precision,
                   pipeline=pipelined, batch=batch if pipelined else 1, workers=workers if pipelined else None)
    r = PerfResult("harness", "+".join(methods) + "|" + "+".join(metrics) + f"|{order}", f"dataset:{dataset}", 0,
                   scale, spec.batch, precision, str(device))
    forward = []

    def run_pass():
        with tempfile.TemporaryDirectory(prefix="srbench-perf-") as tmp:
            Runner(spec, Path(tmp) / "run", echo=lambda _: None, progress=False).run()
            t = load_timings(Path(tmp) / "run")
            forward.append(float(t["seconds"].sum()))
            r.n_images = int(t["image"].nunique()) if len(t) else 0

    try:
        r.times, r.peak_mb = time_passes(run_pass, warmup=warmup, repeats=repeats, device=device)
        _summarise(r, 0)
        fwd = statistics.median(forward[warmup:])
        r.extra = {"order": order, "forward_s": fwd, "wall_over_forward": r.median_s / fwd if fwd > 0 else None}
        if pipelined:
            from bench.run.pipeline import default_workers

            r.extra["workers"] = default_workers(device) if workers is None else workers
    except Exception as e:  # noqa: BLE001
        r.error = " ".join(str(e).split())[:300] or type(e).__name__
    return r


def run_perf(*, methods: list[str], metrics: list[str], sizes: list[tuple[int, int]] | None = None,
             dataset: str | None = None, limit: int | None = None, scale: int = 4, batch: int = 1,
             precision: str = "fp32", device: str = "cpu", warmup: int = 1, repeats: int = 5, data_root=None,
             harness: bool = False, orders: tuple[str, ...] = HARNESS_ORDERS, workers: int | None = None,
             echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every method and metric (module doc); returns the JSON-ready document."""
    import iqa
    import sr_methods
    from bench.run.runner import resolve_device

    if precision not in PRECISIONS:
        raise SrbenchError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    for what, v, low in (("repeats", repeats, 1), ("warmup", warmup, 0), ("batch", batch, 1), ("scale", scale, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise SrbenchError(f"{what} must be an integer >= {low}, got {v!r}")
    if not methods and not metrics:
        raise SrbenchError("give --methods and/or --metrics to measure")
    if harness and not dataset:
        raise SrbenchError("--harness measures `srbench run` on a dataset: give --dataset")
    if harness and (not orders or any(o not in HARNESS_ORDERS for o in orders)):
        raise SrbenchError(f"harness orders must be among {', '.join(HARNESS_ORDERS)}, got {', '.join(orders) or 'none'}")
    dev = resolve_device(device)
    if dataset:
        sets = [(f"dataset:{dataset}", dataset_inputs(dataset, scale, limit, data_root))]
    else:
        sets = [(label, [x]) for label, x in generated_inputs(sizes or [(64, 64)], batch)]
    results: list[PerfResult] = []
    for kind, names, build, measure in (("method", methods, sr_methods.create_method, measure_method),
                                        ("metric", metrics, iqa.create_metric, measure_metric)):
        for name in names:
            try:
                obj = build(name, device=dev)
            except SrbenchError as e:  # recorded, never a missing line
                results.append(PerfResult(kind, name, "-", 0, scale, batch, precision, str(dev), error=str(e)))
                echo(f"!! {name}: {e}")
                continue
            for label, xs in sets:
                results.append(measure(name, obj, xs, scale=scale, batch=batch, precision=precision, device=dev,
                                       warmup=warmup, repeats=repeats, label=label))
                echo(format_result(results[-1]))
    for order in orders if harness else ():
        h = measure_harness(methods, metrics, dataset, scale=scale, limit=limit, precision=precision, device=dev,
                            warmup=warmup, repeats=repeats, data_root=data_root, order=order, batch=batch,
                            workers=workers)
        bare = [r.median_s for r in results if r.kind == "method" and not r.error]
        if not h.error and len(bare) == len(methods) and bare:
            h.extra["bare_forward_s"] = sum(bare)  # the same networks called bare on the same LR images
            h.extra["wall_over_bare"] = h.median_s / sum(bare)
        results.append(h)
        echo(format_result(h))
    return {"format": FORMAT, "machine": machine(str(dev)),
            "config": {"scale": scale, "batch": batch, "precision": precision, "warmup": warmup, "repeats": repeats,
                       "dataset": dataset, "limit": limit, "sizes": [f"{w}x{h}" for w, h in sizes or []],
                       "harness": harness, **({"orders": list(orders), "workers": workers} if harness else {})},
            "results": [asdict(r) for r in results]}


def format_result(r: PerfResult) -> str:
    head = f"{r.kind:<6} {r.name:<22} {r.inputs:<14} x{r.scale} {r.precision}"
    if r.error:
        return f"{head}  ERROR: {r.error}"
    fl = f"  {r.tflops_per_s:.3f} TFLOP/s" if r.tflops_per_s else ""
    mem = f"  peak {r.peak_mb:.0f} MB" if r.peak_mb is not None else ""
    if r.kind == "harness":
        x = r.extra
        ratios = "".join(f"  {k} {x[k]:.2f}" for k in ("wall_over_forward", "wall_over_bare") if x.get(k))
        return f"{head}  {r.median_s:9.2f} s/run [{r.min_s:.2f}, {r.max_s:.2f}]  {r.n_images} images{ratios}"
    return (f"{head}  {1000 * r.median_s:9.2f} ms/pass [{1000 * r.min_s:.2f}, {1000 * r.max_s:.2f}]  "
            f"{r.images_per_s:8.2f} img/s  {r.ms_per_mp:8.2f} ms/MP{fl}{mem}")


def write(doc: dict[str, Any], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=lambda v: None))
    os.replace(tmp, out)
    return out


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise SrbenchError(f"{path}: file not found") from None
    except ValueError as e:
        raise SrbenchError(f"{path}: not JSON ({e})") from None
    if isinstance(doc, dict) and "format" not in doc and isinstance(doc.get("benchmarks"), list):
        return from_pytest_benchmark(doc, path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SrbenchError(f"{path}: not an srbench perf file (format {doc.get('format') if isinstance(doc, dict) else None!r})"
                           f" nor pytest-benchmark JSON")
    return doc


def from_pytest_benchmark(doc: dict[str, Any], path: str | Path = "pytest-benchmark") -> dict[str, Any]:
    """A pytest-benchmark JSON file (``pytest --benchmark-json=FILE``, e.g. of ``tests/perf``) as an
    srbench perf document, so that ``srbench perf --compare`` gates both: one entry of kind
    ``pytest`` per benchmark (its full name), with the rounds' times when the file kept them
    (``--benchmark-save-data``), else min, max and median."""
    results = []
    for b in doc["benchmarks"]:
        st = b.get("stats") or {}
        try:
            med, lo, hi = float(st["median"]), float(st["min"]), float(st["max"])
        except (KeyError, TypeError, ValueError):
            raise SrbenchError(f"{path}: benchmark {b.get('fullname') or b.get('name')!r} has no min/max/median") from None
        images = int((b.get("extra_info") or {}).get("images", 1))
        results.append(asdict(PerfResult(
            "pytest", b.get("fullname") or b["name"], "-", images, 0, 1, "fp32", "cpu",
            times=[float(t) for t in st.get("data", [])], median_s=med, min_s=lo, max_s=hi,
            iqr_s=float(st.get("iqr", math.nan)), images_per_s=images / med if med > 0 else math.inf)))
    info = doc.get("machine_info") or {}
    cpu = (info.get("cpu") or {}).get("brand_raw") or info.get("processor")
    return {"format": FORMAT, "machine": {"cpu": cpu, "gpu": None, "source": "pytest-benchmark",
                                          "python": info.get("python_version")},
            "config": {"pytest_benchmark": doc.get("version"), "datetime": doc.get("datetime"),
                       "commit": (doc.get("commit_info") or {}).get("id")},
            "results": results}
