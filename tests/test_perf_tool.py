"""``srbench perf`` (issue 16, section 2): the result file's figures are consistent with its own timings,
FLOPs equal the analytic count of a known network, failures are recorded not raised, and the
``--compare`` gate flags a slowdown only beyond both the threshold and the measured spread, with
JUnit XML and Markdown outputs. No timed assertion: the numbers measured here are never compared
with a limit."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bench.perf.compare import compare, junit, markdown, parse_threshold, run_compare
from bench.perf.throughput import FORMAT, measure_method, parse_sizes, run_perf, write
from iqa.errors import SrbenchError
from sr_methods.base import SRMethod


class OneConv(SRMethod):
    """A 3x3 convolution 3 -> 12 channels and a pixel shuffle x2: 2 * 3 * 12 * 9 FLOPs per LR pixel."""

    name = "one-conv"
    scales = (2,)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 12, 3, padding=1, bias=False)

    def _upscale(self, lr, scale):
        return torch.nn.functional.pixel_shuffle(self.conv(lr), 2)


def test_figures_follow_from_the_timings_and_flops_are_the_analytic_count():
    x = [torch.rand(2, 3, 16, 24)]
    r = measure_method("one-conv", OneConv(), x, scale=2, batch=2, precision="fp32", device=torch.device("cpu"),
                       warmup=1, repeats=4, label="24x16")
    assert not r.error and len(r.times) == 4
    assert r.median_s == pytest.approx(sorted(r.times)[1] / 2 + sorted(r.times)[2] / 2)
    assert r.min_s == min(r.times) and r.max_s == max(r.times) and r.iqr_s >= 0
    assert r.images_per_s == pytest.approx(2 / r.median_s)
    assert r.ms_per_mp == pytest.approx(1000 * r.median_s / (2 * 32 * 48 / 1e6))
    assert r.flops == 2 * 3 * 12 * 9 * 16 * 24 * 2
    assert r.tflops_per_s == pytest.approx(r.flops / r.median_s / 1e12)
    assert r.peak_mb is None  # no per-call figure on the CPU


def test_run_perf_writes_a_complete_file_and_records_failures(tmp_path):
    doc = run_perf(methods=["bicubic", "no-such-method"], metrics=["psnr"], sizes=parse_sizes("20x12"), scale=2,
                   repeats=2, echo=lambda _: None)
    assert doc["format"] == FORMAT and doc["machine"]["torch"] == torch.__version__
    by = {(r["kind"], r["name"]): r for r in doc["results"]}
    assert by[("method", "bicubic")]["inputs"] == "20x12" and by[("method", "bicubic")]["precision"] == "fp32"
    assert "no-such-method" in by[("method", "no-such-method")]["error"]
    assert by[("metric", "psnr")]["n_images"] == 1 and math.isfinite(by[("metric", "psnr")]["median_s"])
    path = write(doc, tmp_path / "p.json")
    assert json.loads(path.read_text())["config"]["repeats"] == 2
    with pytest.raises(SrbenchError, match="sizes must be"):
        parse_sizes("64by64")
    with pytest.raises(SrbenchError, match="precision"):
        run_perf(methods=["bicubic"], metrics=[], precision="int8", echo=lambda _: None)


def _doc(**entries):
    results = []
    for name, times in entries.items():
        t = sorted(times)
        results.append({"kind": "method", "name": name, "inputs": "64x64", "scale": 4, "batch": 1, "precision": "fp32",
                        "median_s": t[len(t) // 2], "min_s": t[0], "max_s": t[-1], "error": ""})
    return {"format": FORMAT, "machine": {"cpu": "x"}, "results": results}


def test_compare_flags_only_slowdowns_beyond_threshold_and_spread(tmp_path, capsys):
    base = _doc(a=[1.0, 1.01, 1.02], b=[1.0, 1.01, 1.02], c=[1.0, 1.5, 2.0], d=[1.0, 1.01, 1.02], gone=[1.0, 1.0, 1.0])
    cur = _doc(a=[1.2, 1.21, 1.22], b=[1.03, 1.04, 1.05], c=[1.4, 2.0, 2.6], d=[0.5, 0.51, 0.52], new=[1.0, 1.0, 1.0])
    v = {x.key[1]: x for x in compare(base, cur, parse_threshold("5%"))}
    assert v["a"].status == "regression" and v["a"].change == pytest.approx(1.21 / 1.01 - 1)
    assert v["b"].status == "same"  # +3 %: under the threshold
    assert v["c"].status == "same" and "spread" in v["c"].detail  # +33 % but the ranges overlap
    assert v["d"].status == "faster" and v["gone"].status == "missing" and v["new"].status == "new"
    xml = junit(list(v.values()))
    assert 'tests="6" failures="2"' in xml and xml.count("<failure") == 2
    assert "❌ regression" in markdown(list(v.values()), 0.05)
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "cur.json").write_text(json.dumps(cur))
    assert run_compare(tmp_path / "base.json", tmp_path / "cur.json", "5%", junit_path=tmp_path / "j.xml",
                       markdown_path=tmp_path / "s.md") == 1
    assert (tmp_path / "j.xml").is_file() and "srbench perf" in (tmp_path / "s.md").read_text()
    assert run_compare(tmp_path / "base.json", tmp_path / "base.json", "5%") == 0  # a file against itself
    assert parse_threshold("0.1") == 0.1
    with pytest.raises(SrbenchError, match="max-slowdown"):
        parse_threshold("fast")


def test_cli_perf_and_compare(tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "perf.json"
    assert main(["perf", "--methods", "bicubic", "--metrics", "psnr", "--sizes", "16x16", "--repeats", "2",
                 "--out", str(out)]) == 0
    assert main(["perf", "--compare", str(out), str(out), "--max-slowdown", "5%"]) == 0
    assert "0 failing of 2" in capsys.readouterr().out
    assert main(["perf", "--methods", "bicubic"]) == 2  # no --out: one-line error
    assert "needs --out" in capsys.readouterr().err


def test_precision_is_part_of_the_protocol_in_rows_manifest_and_fingerprint(tmp_path, monkeypatch):
    """A bf16 run: every row reads basicsr+bf16, the manifest says so, the cells are not those of the
    fp32 run, and the scores move by no more than bf16 rounding (documented tolerance 0.5 dB PSNR on
    this tiny random network)."""
    from bench.run.runner import Runner
    from bench.run.spec import MethodSpec, RunSpec
    from bench.run.store import load_cells, load_scores
    from tests.helpers import tiny_spandrel_checkpoint
    from tests.test_captions import dataset

    monkeypatch.setenv("SRBENCH_MANIFESTS", str(tmp_path / "manifests"))
    data = dataset(tmp_path, "prec-test", captions=None)
    net = tiny_spandrel_checkpoint(tmp_path / "net.pth", scale=2)
    runs = {}
    for precision in ("fp32", "bf16"):
        spec = RunSpec(("prec-test",), (2,), (MethodSpec(f"spandrel:{net}", "net"), MethodSpec("bicubic", "bicubic")),
                       ("psnr",), data_root=str(data), device="cpu", precision=precision)
        assert ("precision" in spec.to_dict()) == (precision != "fp32")  # fp32 folders keep their digest
        Runner(spec, tmp_path / precision, echo=lambda _: None, progress=False).run()
        runs[precision] = load_scores(tmp_path / precision)
    assert set(runs["fp32"]["protocol"]) == {"basicsr"} and set(runs["bf16"]["protocol"]) == {"basicsr+bf16"}
    manifest = json.loads((tmp_path / "bf16" / "manifest.json").read_text())
    assert manifest["protocol"]["precision"] == "bf16" and manifest["spec"]["precision"] == "bf16"
    fp = {c["method"]: c["fingerprint"] for c in load_cells(tmp_path / "fp32")}
    bf = {c["method"]: c["fingerprint"] for c in load_cells(tmp_path / "bf16")}
    assert fp["net"] != bf["net"]
    a, b = (runs[p][runs[p]["method"] == "net"].sort_values("image")["value"].to_numpy() for p in ("fp32", "bf16"))
    assert abs(a - b).max() < 0.5
    with pytest.raises(SrbenchError, match="precision"):
        RunSpec(("prec-test",), (2,), (MethodSpec("bicubic", "bicubic"),), precision="int8")


def test_harness_entry_times_a_whole_run_against_the_bare_forward_passes(tmp_path, monkeypatch):
    from tests.test_captions import dataset

    monkeypatch.setenv("SRBENCH_MANIFESTS", str(tmp_path / "manifests"))
    data = dataset(tmp_path, "perf-test", captions=None)
    doc = run_perf(methods=["bicubic"], metrics=["psnr"], dataset="perf-test", scale=2, repeats=2, warmup=0,
                   data_root=data, harness=True, echo=lambda _: None)
    by = {r["kind"]: r for r in doc["results"]}
    h, m = by["harness"], by["method"]
    assert not h["error"] and h["n_images"] == 5 and h["inputs"] == "dataset:perf-test" and len(h["times"]) == 2
    x = h["extra"]
    assert x["forward_s"] > 0 and x["wall_over_forward"] == pytest.approx(h["median_s"] / x["forward_s"])
    assert x["wall_over_forward"] > 1  # the run does more than the forward passes
    assert x["bare_forward_s"] == pytest.approx(m["median_s"]) and m["n_images"] == 5
    # both orders in one invocation (the before/after of the pipelined runner), told apart by name
    orders = {r["extra"]["order"]: r for r in doc["results"] if r["kind"] == "harness"}
    assert set(orders) == {"serial", "pipelined"} and orders["pipelined"] is not orders["serial"]
    assert orders["serial"]["name"] == "bicubic|psnr|serial" and h["name"] == "bicubic|psnr|pipelined"
    assert h["extra"]["workers"] == 0 and orders["serial"]["n_images"] == 5  # the CPU default: no loader thread
    with pytest.raises(SrbenchError, match="harness orders must be among serial, pipelined"):
        run_perf(methods=["bicubic"], metrics=[], dataset="perf-test", data_root=data, harness=True,
                 orders=("fast",), echo=lambda _: None)
    with pytest.raises(SrbenchError, match="--dataset"):
        run_perf(methods=["bicubic"], metrics=[], harness=True, echo=lambda _: None)


def test_pytest_benchmark_files_go_through_the_same_gate(tmp_path):
    """``pytest --benchmark-json`` files (tests/perf) load as perf documents and --compare gates them."""
    import json
    import subprocess
    import sys

    from bench.perf.compare import run_compare
    from bench.perf.throughput import load

    (tmp_path / "test_tiny_bench.py").write_text(
        "def test_sum(benchmark):\n    benchmark.extra_info['images'] = 3\n    benchmark(sum, range(1000))\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_tiny_bench.py",
                           "--benchmark-json=base.json", "--benchmark-save-data"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = load(tmp_path / "base.json")
    (r,) = doc["results"]
    assert r["kind"] == "pytest" and r["name"] == "test_tiny_bench.py::test_sum" and r["n_images"] == 3
    assert r["min_s"] <= r["median_s"] <= r["max_s"] and len(r["times"]) >= 1
    assert run_compare(tmp_path / "base.json", tmp_path / "base.json", "5%", echo=lambda _: None) == 0
    slow = json.loads((tmp_path / "base.json").read_text())  # every round twice as slow: a regression
    stats = slow["benchmarks"][0]["stats"]
    for k in ("min", "max", "median", "mean"):
        stats[k] = 2.0 * stats[k] + 1e-3
    (tmp_path / "slow.json").write_text(json.dumps(slow))
    lines: list[str] = []
    assert run_compare(tmp_path / "base.json", tmp_path / "slow.json", "5%", echo=lines.append) == 1
    assert "regression" in lines[0] + lines[1]
    (tmp_path / "bad.json").write_text(json.dumps({"benchmarks": [{"name": "x", "stats": {}}]}))
    with pytest.raises(SrbenchError, match=r"bad.json: benchmark 'x' has no min/max/median"):
        load(tmp_path / "bad.json")
