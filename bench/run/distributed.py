"""Scale-out on Ray: ``srbench run --ray [ADDRESS]`` computes the cells of a run as Ray tasks.

The driver (the ``srbench run`` process) does what it does locally, less the computing: it checks the
names, holds the run folder's lock, writes the manifest, reuses finished cells, records the cells that
cannot run (missing dataset, unavailable weights, unsupported scale), and sends every other cell
(dataset x degradation x method) to the cluster as one task. A task is a `Runner` on a spec of that
one cell (`Runner.run_cells`): it builds the method and the metrics on its node, resumes the cell from
the parts already in the run folder, writes its parts and ``cell.json`` atomically (naming its host
and pid while it runs), and returns its summary lines, which the driver prints as cells finish. At
the end the driver writes ``scores.parquet``, so the table is the one a local run gives (tested).

- **Resources**: every task asks for one CPU and, when the cluster has GPUs and the spec's device is
  not ``cpu``, a share of a GPU from the method's size (`gpu_share`: its metrics run there too), or
  ``--ray-gpus`` for every cell. Tasks without a GPU share run on the CPU.
- **Failures**: a worker that dies (killed, out of memory, node lost) has its task rerun by Ray up
  to `RETRIES` times; the rerun resumes the cell from the rows already written. A cell that still
  does not finish, or whose task raised, is named on one line after the others finished, and the
  run exits non-zero; a rerun of the same command resumes it.
- **Several nodes**: the run folder, the datasets and every relative path of the spec must be on a
  shared filesystem at the same path on every node (a task starts in the driver's working
  folder), and every node must run the same srbench (checked: version and git commit). Methods
  and metrics that you register yourself go in modules named by ``SRBENCH_PLUGINS``; that and
  every other ``SRBENCH_*`` variable of the driver is passed to the workers.
"""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from iqa.errors import SrbenchError

if TYPE_CHECKING:
    from bench.run.datasets import Dataset
    from bench.run.degradations import Degradation
    from bench.run.runner import Runner
    from bench.run.spec import MethodSpec

RETRIES = 3  # reruns of a task whose worker died


def _ray():
    try:
        import ray
    except ImportError:
        raise SrbenchError("--ray needs Ray: pip install 'srbench[ray]'") from None
    return ray


def method_parameters(method: Any) -> int:
    """The number of parameters of an SR method's networks: modules among its attributes, looked
    for through lists, dicts and the objects of srbench and spandrel it holds (a spandrel model
    descriptor, the methods a family or cascade wraps), each parameter counted once."""
    seen: set[int] = set()
    total = 0

    def visit(obj: Any, depth: int) -> None:
        nonlocal total
        if id(obj) in seen or depth > 4:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.nn.Module):
            for p in obj.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                visit(v, depth + 1)
        elif isinstance(obj, dict):
            for v in obj.values():
                visit(v, depth + 1)
        elif type(obj).__module__.split(".")[0] in ("sr_methods", "spandrel", "iqa", "bench") and hasattr(obj, "__dict__"):
            for v in vars(obj).values():
                visit(v, depth + 1)

    visit(method, 0)
    return total


def gpu_share(n_parameters: int) -> float:
    """The GPUs a cell asks for: 1/8 for a method without a network (interpolation: its metrics
    still run on the GPU), 1/4 up to 2 M parameters, 1/2 up to 20 M, a whole GPU above."""
    if n_parameters == 0:
        return 0.125
    if n_parameters <= 2_000_000:
        return 0.25
    if n_parameters <= 20_000_000:
        return 0.5
    return 1.0


def worker_env() -> dict[str, str]:
    """The driver's ``SRBENCH_*`` variables, for the workers (plugins, data, caches, offline)."""
    return {k: v for k, v in os.environ.items() if k.startswith("SRBENCH_")}


def code_version() -> tuple[str | None, str | None]:
    from bench.run.runner import git_sha, package_versions

    return package_versions().get("srbench"), git_sha()


def run_cell_task(spec, out: str, retry: str, fetch: bool, cwd: str, version: tuple) -> tuple[list, list[str]]:
    """A Ray task: the cells of ``spec`` (one dataset, degradation and method) in the run folder
    ``out``; returns their `CellResult`s and the lines they printed."""
    from iqa.registry import import_plugins

    from bench.run.runner import Runner

    host = socket.gethostname()
    if not Path(cwd).is_dir() or not Path(out).is_dir():
        missing = cwd if not Path(cwd).is_dir() else out
        raise SrbenchError(f"node {host}: {missing} is not there; --ray needs the run folder, the data and the "
                           f"spec's relative paths on a shared filesystem, at the same path on every node")
    mine = code_version()
    if tuple(mine) != tuple(version):
        raise SrbenchError(f"node {host} runs srbench {mine[0]} ({mine[1]}), the driver {version[0]} ({version[1]}): "
                           f"install the same srbench on every node")
    os.chdir(cwd)
    import_plugins()
    lines: list[str] = []
    r = Runner(spec, out, echo=lines.append, progress=False, fetch=fetch, retry=retry)
    r.worker = {"host": host, "pid": os.getpid()}
    return r.run_cells(), lines


class RayRun:
    """The driver's side: connects, sends cells as tasks, gathers them (see the module doc)."""

    def __init__(self, runner: "Runner", methods: dict[str, Any]):
        ray = _ray()
        self.r, self.ray = runner, ray
        if not ray.is_initialized():
            address = runner.ray or None  # "": ray.init()'s own choice (RAY_ADDRESS, else a local cluster)
            try:
                ray.init(address=address, runtime_env={"env_vars": worker_env()}, log_to_driver=False,
                         logging_level="ERROR")
            except Exception as e:  # noqa: BLE001 (one line)
                text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise SrbenchError(f"--ray {runner.ray or ''}: cannot connect to a Ray cluster ({text})".replace(
                    "--ray :", "--ray:")) from None
        resources = ray.cluster_resources()
        self.gpus = float(resources.get("GPU", 0))
        device = runner.spec.device
        if device.startswith("cuda") and not self.gpus:
            raise SrbenchError(f"device {device!r} asked for, but the Ray cluster has no GPU")
        self.on_gpu = device != "cpu" and self.gpus > 0
        self.sizes = {label: method_parameters(m) for label, m in methods.items()}
        self.task = ray.remote(run_cell_task)
        self.cwd = os.getcwd()
        self.version = code_version()
        self.pending: dict[Any, str] = {}  # task -> "dataset degradation method"

    def describe(self) -> str:
        res = self.ray.cluster_resources()
        nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
        return (f"ray cluster ({nodes} node(s), {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs; device "
                f"{self.r.spec.device} on the workers)")

    def submit(self, ds: "Dataset", deg: "Degradation", mspec: "MethodSpec") -> None:
        spec = self.r.spec
        share = 0.0
        if self.on_gpu:
            share = self.r.ray_gpus if self.r.ray_gpus is not None else gpu_share(self.sizes.get(mspec.label, 0))
        one = replace(spec, datasets=(ds.name,), scales=(), degradations=(deg.key,), methods=(mspec,),
                      device=spec.device if share else "cpu")
        name = f"{ds.name} {deg.key} {mspec.label}"
        ref = self.task.options(num_cpus=1, num_gpus=share, max_retries=RETRIES, retry_exceptions=False,
                                name=f"srbench {name}").remote(one, str(self.r.out.resolve()), self.r.retry,
                                                               self.r.fetch, self.cwd, self.version)
        self.pending[ref] = name

    def wait(self) -> list[str]:
        """Gather every task as it finishes (printing its lines); returns one line per cell that
        did not finish."""
        failed: list[str] = []
        refs = list(self.pending)
        while refs:
            done, refs = self.ray.wait(refs, num_returns=1)
            for ref in done:
                name = self.pending.pop(ref)
                try:
                    results, lines = self.ray.get(ref)
                except Exception as e:  # noqa: BLE001 (the task raised, or its worker died RETRIES + 1 times)
                    failed.append(f"{name}: {_one_line(e)}")
                    self.r.echo(f"!! {name}: did not finish ({_one_line(e)})")
                    continue
                for line in lines:
                    self.r.echo(line)
                self.r.results += results
        return failed

    def cancel(self) -> None:
        """Cancel what is still queued or running (an interrupted driver)."""
        for ref in list(self.pending):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 (finished meanwhile)
                pass
        self.pending.clear()


def _one_line(e: BaseException) -> str:
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        e = cause
    text = " ".join(str(e).split()) or type(e).__name__
    if "worker died" in text.lower() or type(e).__name__ in ("WorkerCrashedError", "NodeDiedError"):
        return f"its worker died {RETRIES + 1} times ({type(e).__name__})"
    return text[:300]
