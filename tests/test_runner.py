import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.run.runner import Runner
from bench.run.spec import MethodSpec, RunSpec
from bench.run.store import RunLock, load_cells, load_scores, load_timings
from iqa.errors import SrbenchError
from tests.helpers import faulty_images, paired_manifest, photo, tiny_spandrel_checkpoint, write_manifest

REPO = Path(__file__).resolve().parents[1]


def spec(**kw) -> RunSpec:
    base = dict(datasets=("demo",), scales=(4,), methods=(MethodSpec("bicubic", "bicubic"),
                                                          MethodSpec("nearest", "nearest")))
    base.update(kw)
    return RunSpec(**base)


def quiet(out, s):
    lines = []
    Runner(s, out, echo=lines.append, progress=False).run()
    return lines


def values(run: Path) -> pd.DataFrame:
    return load_scores(run)[["dataset", "degradation", "method", "image", "metric", "value", "status"]]


def test_same_spec_twice_gives_identical_scores_and_rerun_resumes(tmp_path):
    quiet(tmp_path / "a", spec())
    quiet(tmp_path / "b", spec())
    a, b = values(tmp_path / "a"), values(tmp_path / "b")
    assert len(a) == 2 * 5 * 2 and (a["status"] == "ok").all()
    pd.testing.assert_frame_equal(a, b)
    lines = quiet(tmp_path / "a", spec())
    assert all("(cached)" in line for line in lines) and len(lines) == 2
    pd.testing.assert_frame_equal(values(tmp_path / "a"), a)
    # the run folder carries its provenance and per-image timings
    manifest = __import__("json").loads((tmp_path / "a" / "manifest.json").read_text())
    assert {"spec", "versions", "git_sha", "device", "seeds", "weights", "sessions"} <= set(manifest)
    assert manifest["versions"]["torch"] and len(manifest["sessions"]) == 2
    t = load_timings(tmp_path / "a")
    assert len(t) == 10 and (t["seconds"] > 0).all()
    assert all(c["status"] == "done" and c["peak_mb"] > 0 for c in load_cells(tmp_path / "a"))
    assert pd.read_parquet(tmp_path / "a" / "scores.parquet").shape[0] == len(a)


def test_changed_request_recomputes_only_that_cell(tmp_path):
    quiet(tmp_path / "r", spec())
    lines = quiet(tmp_path / "r", spec(metrics=("psnr",)))
    assert not any("(cached)" in line for line in lines)
    assert set(load_scores(tmp_path / "r")["metric"]) == {"psnr"}


def test_changed_weights_under_the_same_name_recompute_the_cell(tmp_path):
    from bench.run.runner import sha256_values

    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny_x4.pth", seed=0)
    s = spec(methods=(MethodSpec("bicubic", "bicubic"), MethodSpec(f"spandrel:{ckpt}", "tiny")), metrics=("psnr",))
    quiet(tmp_path / "r", s)
    before = values(tmp_path / "r")
    tiny_spandrel_checkpoint(ckpt, seed=1)  # other weights, same file name and spec
    lines = quiet(tmp_path / "r", s)
    assert [("(cached)" in line) for line in lines] == [True, False]  # bicubic reused, tiny rerun
    after = values(tmp_path / "r")
    assert after[after.method == "bicubic"].equals(before[before.method == "bicubic"])
    assert not np.allclose(after[after.method == "tiny"]["value"], before[before.method == "tiny"]["value"])
    manifest = __import__("json").loads((tmp_path / "r" / "manifest.json").read_text())
    assert sha256_values(manifest["weights"]["tiny"]) == [__import__("iqa.assets").assets.sha256_file(ckpt)]
    assert manifest["metric_weights"] == {}  # psnr has no trained parameters
    assert sha256_values({"sha256": "b", "members": {"x2": {"sha256": "a"}}, "x": [{"sha256": "c"}, 3]}) == ["a", "b", "c"]


def test_second_run_on_active_folder_refuses(tmp_path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(SrbenchError, match="in use by another srbench run"):
            quiet(tmp_path / "run", spec())


def test_faulty_images_become_error_rows_and_the_run_goes_on(tmp_path, monkeypatch):
    man = tmp_path / "manifests"
    write_manifest(man, "faults-test", '[layout]\nhr = "HR/*"\n')
    monkeypatch.setenv("SRBENCH_MANIFESTS", str(man))
    files = faulty_images(tmp_path / "data" / "faults-test" / "HR")
    quiet(tmp_path / "run", spec(datasets=("faults-test",), data_root=str(tmp_path / "data"),
                                 methods=(MethodSpec("bicubic", "bicubic"),)))
    df = load_scores(tmp_path / "run")
    bad = df[df["status"] == "error"]
    assert set(bad["image"]) == {"truncated", "garbage", "tiny"}
    for _, row in bad.iterrows():
        assert str(files[next(n for n in files if n.startswith(row["image"]))]) in row["message"]
    assert "smaller than the scale x4 allows" in bad[bad["image"] == "tiny"]["message"].iloc[0]
    ok = df[df["status"] == "ok"]
    assert set(ok["image"]) == {"good", "gray", "rgba", "palette", "cmyk", "exif", "deep16"}
    psnr = ok[ok["metric"] == "psnr"].set_index("image")["value"]
    assert psnr["good"] == psnr["rgba"] == psnr["deep16"]  # identical pixels after the documented conversions


def test_unsupported_and_unavailable_cells_are_recorded_loudly(tmp_path):
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny_x4.pth")
    s = spec(scales=(2, 4), methods=(MethodSpec(f"spandrel:{ckpt}", "tiny"), MethodSpec("craft-x4", "craft"),
                                     MethodSpec("bicubic", "bicubic")),
             metrics=("psnr", "lpips"))
    env = {k: v for k, v in os.environ.items()}
    os.environ["SRBENCH_WEIGHTS"] = str(tmp_path / "empty")
    os.environ["TORCH_HOME"] = str(tmp_path / "torch")
    try:
        lines = quiet(tmp_path / "run", s)
    finally:
        os.environ.clear()
        os.environ.update(env)
    text = "\n".join(lines)
    assert "!! method craft cannot run" in text and "!! metric lpips cannot run" in text
    assert "UNSUPPORTED" in text and "UNAVAILABLE" in text
    df = load_scores(tmp_path / "run")
    status = df.groupby(["degradation", "method"])["status"].agg(lambda s: set(s)).to_dict()
    assert status[("x2", "tiny")] == {"unsupported"}
    assert status[("x4", "craft")] == {"unavailable"} and status[("x2", "craft")] == {"unavailable"}
    tiny4 = df[(df["method"] == "tiny") & (df["degradation"] == "x4")]
    assert set(tiny4[tiny4["metric"] == "psnr"]["status"]) == {"ok"}
    assert set(tiny4[tiny4["metric"] == "lpips"]["status"]) == {"unavailable"}
    assert df[df["status"] != "ok"]["value"].isna().all()  # never a number where nothing ran


def _run_cli(out: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench", "run", "--datasets", "demo", "--scales", "2,4",
                             "--methods", "bicubic,lanczos", "--out", str(out), "--no-progress", "--no-report"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_after_next_flush(out: Path, env: dict, extra: float) -> bool:
    """Start a run, wait until it has flushed new rows to scores.parquet, let it go on for
    `extra` seconds (so some kills land mid-cell), then SIGKILL it. False if it finished first."""
    scores = out / "scores.parquet"
    before = scores.stat().st_mtime_ns if scores.exists() else None
    p = _run_cli(out, env)
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline:
        if scores.exists() and scores.stat().st_mtime_ns != before:
            time.sleep(extra)
            break
        time.sleep(0.02)
    killed = p.poll() is None
    if killed:
        p.send_signal(signal.SIGKILL)
    p.wait(60)
    return killed


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_table(tmp_path):
    env = {**os.environ, "SRBENCH_FLUSH_SECONDS": "0", "PYTHONPATH": str(REPO)}
    ref = _run_cli(tmp_path / "ref", env)
    assert ref.wait(300) == 0, ref.stderr.read().decode()
    out = tmp_path / "killed"
    # kills are driven by progress (a new flush), not by wall-clock delays, so a fast or a slow
    # machine kills the same number of times; demo x2,x4 x 2 methods has 20 cells to get through
    kills = sum(_kill_after_next_flush(out, env, extra) for extra in (0.0, 0.2, 0.0, 0.4))
    final = _run_cli(out, env)
    assert final.wait(300) == 0, final.stderr.read().decode()
    assert kills >= 3
    pd.testing.assert_frame_equal(values(out), values(tmp_path / "ref"))
    assert not list(out.rglob(".tmp-*"))  # a rerun removes what a killed write left half-done


def test_real_pairs_use_the_lr_files(tmp_path, monkeypatch):
    """realsr-style pairs: LR files at HR/scale size are used as is; LR files registered at the HR
    size (as RealSR stores them) are shrunk by the scale; a pair that fits neither is an error row."""
    folder = paired_manifest(tmp_path, monkeypatch, "pairs-run-test", [2], 2)
    hr = photo(64, 64, 5)
    Image.fromarray(hr).save(folder / "small_HR.png")
    Image.fromarray(hr[::2, ::2]).save(folder / "small_LR2.png")        # LR at HR/2
    Image.fromarray(hr).save(folder / "registered_HR.png")
    Image.fromarray(hr).save(folder / "registered_LR2.png")             # LR at the HR size
    Image.fromarray(hr).save(folder / "odd_HR.png")
    Image.fromarray(hr[:20, :20]).save(folder / "odd_LR2.png")          # fits neither
    Image.fromarray(hr).save(folder / "lonely_HR.png")                  # no LR file
    quiet(tmp_path / "run", spec(datasets=("pairs-run-test",), scales=(2, 4), data_root=str(tmp_path / "data"),
                                 methods=(MethodSpec("nearest", "nearest"),)))
    df = load_scores(tmp_path / "run")
    # no pairs at x4: the cell is unsupported (nothing to fetch would change it), with the reason
    x4 = df[df["scale"] == 4]
    assert set(x4["degradation"]) == {"real-x4"} and set(x4["status"]) == {"unsupported"}
    assert set(x4["message"]) == {"dataset 'pairs-run-test' has real pairs only at x2, not x4"}
    df = df[df["scale"] == 2]
    assert set(df["degradation"]) == {"real-x2"}
    status = df.groupby("image")["status"].first().to_dict()
    assert status == {"small": "ok", "registered": "ok", "odd": "error", "lonely": "error"}
    msgs = df.set_index("image")["message"]
    assert "does not match HR" in msgs["odd"] and "no LR file for x2" in msgs["lonely"]
    psnr = df[(df["metric"] == "psnr")].set_index("image")["value"]
    assert psnr["small"] > 20 and psnr["registered"] > 20


def test_save_sr_keeps_the_scored_images(tmp_path):
    from bench.run.io import read_image

    quiet(tmp_path / "run", spec(save_sr=True, methods=(MethodSpec("bicubic", "bicubic"),), metrics=("psnr",)))
    pngs = sorted((tmp_path / "run" / "sr" / "demo" / "x4" / "bicubic").glob("*.png"))
    assert [p.stem for p in pngs] == ["astronaut", "chelsea", "coffee", "motorcycle_left", "rocket"]
    # the saved PNG is exactly what was scored: PSNR from the file equals the stored row
    import iqa
    from bench.run.datasets import Dataset
    from iqa.resize import modcrop

    item = Dataset("demo").items(4)[0]
    hr = modcrop(read_image(item.hr)[None], 4)
    value = float(iqa.create_metric("psnr")(read_image(pngs[0])[None], hr, scale=4)[0])
    df = load_scores(tmp_path / "run")
    assert value == df[(df["image"] == "astronaut")]["value"].iloc[0]


def _method_needing_an_asset(monkeypatch, tmp_path):
    """A catalogue method whose weights are the asset 'runner-test-asset' (a local source)."""
    import sr_methods
    from iqa.assets import ASSETS, Asset, Source, sha256_file

    src = tmp_path / "weights.bin"
    src.write_bytes(b"not really weights, but checksummed")
    monkeypatch.setitem(ASSETS._assets, "runner-test-asset",
                        Asset("runner-test-asset", "runner_test.bin", sha256_file(src), "test", (Source("local", str(src)),)))

    def build(*, entry):
        ASSETS.require("runner-test-asset")
        return sr_methods.create_method("bicubic")

    from iqa.registry import Entry

    monkeypatch.setitem(sr_methods.METHODS._entries, "needs-asset",  # removed again after the test
                        Entry("needs-asset", build, {"scales": None, "assets": ("runner-test-asset",)}))
    return ASSETS


def test_run_fetches_a_missing_asset_unless_offline(tmp_path, monkeypatch):
    assets = _method_needing_an_asset(monkeypatch, tmp_path)
    s = spec(methods=(MethodSpec("needs-asset", "needs-asset"),), metrics=("psnr",))
    lines = []
    Runner(s, tmp_path / "offline", echo=lines.append, progress=False, fetch=False).run()
    assert assets.status("runner-test-asset") == "missing"
    assert any("needs-asset cannot run" in line and "srbench assets fetch runner-test-asset" in line for line in lines)
    assert set(load_scores(tmp_path / "offline")["status"]) == {"unavailable"}

    lines = []
    Runner(s, tmp_path / "online", echo=lines.append, progress=False, fetch=True).run()
    assert any(line.startswith("fetching asset runner-test-asset for method needs-asset from local:") for line in lines)
    assert assets.status("runner-test-asset") == "ok"
    scores = load_scores(tmp_path / "online")
    assert len(scores) == 5 and (scores["status"] == "ok").all()


def test_offline_environment_variable_stops_fetching(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_OFFLINE", "1")
    assert Runner(spec(), tmp_path / "r").fetch is False
    monkeypatch.setenv("SRBENCH_OFFLINE", "0")
    assert Runner(spec(), tmp_path / "r").fetch is True


def test_demo_spec_has_lpips_and_three_pretrained_networks():
    import sr_methods
    from bench.run.spec import DEMO_SPEC

    assert "lpips" in DEMO_SPEC.metrics
    kinds = {m.name: sr_methods.method_info(m.name)["kind"] for m in DEMO_SPEC.methods}
    networks = [n for n, k in kinds.items() if k != "interpolation"]
    assert len(networks) >= 3
    for name in networks:  # each at a scale it supports, and with assets the manager can fetch
        info = sr_methods.method_info(name)
        assert set(info["scales"]) & set(DEMO_SPEC.scales) and info["assets"]


def test_limit_scores_only_the_first_images_and_is_part_of_the_fingerprint(tmp_path):
    lines = quiet(tmp_path / "r", spec(limit=2, methods=(MethodSpec("bicubic", "bicubic"),)))
    df = load_scores(tmp_path / "r")
    assert sorted(df["image"].unique()) == ["astronaut", "chelsea"]  # first two ids, sorted
    lines = quiet(tmp_path / "r", spec(methods=(MethodSpec("bicubic", "bicubic"),)))
    assert not any("(cached)" in line for line in lines) and load_scores(tmp_path / "r")["image"].nunique() == 5
    with pytest.raises(SrbenchError, match="limit must be a positive integer"):
        spec(limit=0)
