"""Opt-in timings of the whole ``srbench run`` (marker ``perf``), in the serial and the pipelined order.

Run ``python -m pytest -m perf tests/perf/test_runner_perf.py --benchmark-json=cur.json`` and gate it
with ``srbench perf --compare base.json cur.json --max-slowdown 5%`` (pytest-benchmark files go
through the same comparison as ``srbench perf`` files). The grid: the demo photos at x4, three
interpolation methods, PSNR and SSIM, a fresh run folder per round.
"""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("pytest_benchmark")

from bench.run.runner import Runner
from bench.run.spec import MethodSpec, RunSpec

pytestmark = pytest.mark.perf


@pytest.mark.parametrize("order", ["serial", "pipelined"])
def test_run_demo_x4(benchmark, tmp_path, order):
    spec = RunSpec(("demo",), (4,), tuple(MethodSpec(m, m) for m in ("nearest", "bicubic", "lanczos")),
                   ("psnr", "ssim"), device="cpu", pipeline=order == "pipelined")
    count = itertools.count()

    def once():
        return Runner(spec, tmp_path / f"run{next(count)}", echo=lambda _: None, progress=False).run()

    results = benchmark.pedantic(once, rounds=5, warmup_rounds=1, iterations=1)
    benchmark.extra_info["images"] = 5
    assert len(results) == 3 and all(r.n_ok == 5 for r in results)
