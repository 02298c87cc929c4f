"""srbench run --ray (bench.run.distributed) on a local Ray cluster (ray.init(num_cpus=2)): the
table equals a local run's, a worker killed in the middle of a cell has its cell rerun, a rerun
reuses every finished cell."""

import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from bench.run import distributed
from bench.run.runner import Runner
from bench.run.spec import MethodSpec, RunSpec
from bench.run.store import load_cells, load_scores, read_json
from iqa.errors import SrbenchError
from tests.helpers import photo, tiny_spandrel_checkpoint, write_manifest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray cluster whose workers see the test plugin and this session's SRBENCH_* set-up,
    and a dataset ``ray-test`` of six 48x64 photos."""
    ray = pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("ray")
    write_manifest(root / "manifests", "ray-test", '[layout]\nhr = "HR/*"\n')
    (root / "data" / "ray-test" / "HR").mkdir(parents=True)
    for k in range(6):
        Image.fromarray(photo(48, 64, seed=k)).save(root / "data" / "ray-test" / "HR" / f"im{k}.png")
    env = {"SRBENCH_MANIFESTS": str(root / "manifests"), "SRBENCH_PLUGINS": "tests.ray_plugin",
           "SRBENCH_FLUSH_SECONDS": "0"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from iqa.registry import import_plugins
    from sr_methods.catalogue import METHODS

    import_plugins()  # the driver knows the plugin's method too
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {**distributed.worker_env(), "PYTHONPATH": str(REPO)}})
    try:
        yield root
    finally:
        ray.shutdown()
        METHODS._entries.pop("slow-nearest", None)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def grid(root: Path, ckpt: Path) -> RunSpec:
    return RunSpec(datasets=("ray-test",), scales=(2, 4), data_root=str(root / "data"), device="cpu",
                   methods=(MethodSpec("bicubic", "bicubic"), MethodSpec("slow-nearest", "slow"),
                            MethodSpec(f"spandrel:{ckpt}", "tiny-x4")), metrics=("psnr", "ssim"))


def _kill_mid_cell(run: Path, label: str, killed: list[int], stop: threading.Event) -> None:
    """Kill the worker of the first ``label`` cell seen running with some rows already written."""
    while not stop.is_set():
        for info in run.glob(f"cells/*/*/{label}/cell.json"):
            try:
                cell = read_json(info)
            except Exception:  # noqa: BLE001 (being replaced this instant)
                continue
            if cell.get("status") == "running" and cell.get("worker") and list(info.parent.glob("part-*.parquet")):
                os.kill(cell["worker"]["pid"], signal.SIGKILL)
                killed.append(cell["worker"]["pid"])
                killed.append(cell["degradation"])
                return
        time.sleep(0.01)


def test_ray_run_equals_a_local_run_and_reruns_a_killed_workers_cell(cluster, tmp_path):
    s = grid(cluster, tiny_spandrel_checkpoint(tmp_path / "tiny.pth"))
    Runner(s, tmp_path / "local", echo=lambda _: None, progress=False).run()

    killed: list = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_mid_cell, args=(tmp_path / "ray", "slow", killed, stop), daemon=True)
    killer.start()
    lines: list[str] = []
    try:
        Runner(s, tmp_path / "ray", echo=lines.append, progress=False, ray="").run()
    finally:
        stop.set()
        killer.join()
    assert killed, "the test never saw the slow cell running"
    pd.testing.assert_frame_equal(load_scores(tmp_path / "ray"), load_scores(tmp_path / "local"))
    cells = {(c["degradation"], c["method"]): c for c in load_cells(tmp_path / "ray")}
    assert len(cells) == 6 and all(c["status"] == "done" for c in cells.values())
    again = cells[(killed[1], "slow")]
    assert again["worker"]["pid"] != killed[0] and again["n_images"] == 6  # rerun on another worker, resumed
    assert cells[("x2", "tiny-x4")]["status_detail"] == "unsupported" and "worker" not in cells[("x2", "tiny-x4")]
    ran = [c for c in cells.values() if c["status_detail"] == "ran"]
    assert len(ran) == 5 and all(c["worker"]["host"] and c["device"] == "cpu" for c in ran)
    assert sum("6/6 ok" in line for line in lines) == 5  # the workers' lines, printed by the driver
    manifest = read_json(tmp_path / "ray" / "manifest.json")
    assert manifest["device"].startswith("ray cluster (1 node(s), 2 CPUs, 0 GPUs")

    # a rerun reuses every finished cell: nothing is sent to the cluster
    lines.clear()
    Runner(s, tmp_path / "ray", echo=lines.append, progress=False, ray="").run()
    assert len(lines) == 6 and sum("(cached)" in line for line in lines) == 5


def test_gpu_share_follows_the_method_size(tmp_path):
    import sr_methods

    tiny = sr_methods.create_method(f"spandrel:{tiny_spandrel_checkpoint(tmp_path / 't.pth')}")
    n = distributed.method_parameters(tiny)
    assert 0 < n < 20_000
    assert distributed.method_parameters(sr_methods.create_method("bicubic")) == 0
    assert [distributed.gpu_share(k) for k in (0, n, 2_000_001, 16_700_000, 40_000_000)] == [0.125, 0.25, 0.5, 0.5, 1.0]


def test_ray_flags_and_a_missing_ray_are_one_line(tmp_path, monkeypatch, capsys):
    from bench.cli import main

    code = main(["run", "--datasets", "demo", "--scales", "4", "--methods", "bicubic", "--ray-gpus", "0.5",
                 "--out", str(tmp_path / "r"), "--no-progress", "--no-report"])
    assert code == 2 and capsys.readouterr().err.strip() == "srbench: error: --ray-gpus goes with --ray"
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(SrbenchError, match=r"--ray needs Ray: pip install 'srbench\[ray\]'"):
        distributed._ray()
    monkeypatch.setenv("SRBENCH_PLUGINS", "no_such_plugin_module")
    code = main(["list", "methods"])
    assert code == 2 and "SRBENCH_PLUGINS: cannot import 'no_such_plugin_module'" in capsys.readouterr().err
