"""The pipelined runner (bench.run.pipeline): the same rows as the serial order, HR images read
once per (dataset, scale), batches within the documented tolerance, and its two helpers."""

import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import iqa

from bench.run import pipeline
from bench.run.runner import Runner
from bench.run.spec import MethodSpec, RunSpec
from bench.run.store import load_cells, load_scores, load_timings
from iqa.errors import SrbenchError
from iqa.registry import Entry
from sr_methods.base import SRMethod
from sr_methods.catalogue import METHODS
from tests.helpers import photo, tiny_spandrel_checkpoint, write_manifest

CALLS: list[int] = []  # batch sizes the fake network was called with


class FailsOnMagenta(SRMethod):
    """Bilinear upscaling that raises when an image of its batch has a magenta top-left corner."""

    name = "fails-on-magenta"

    def _upscale(self, lr, scale):
        CALLS.append(lr.shape[0])
        corner = lr[:, :, 0, 0]
        if ((corner[:, 0] > 0.95) & (corner[:, 1] < 0.05) & (corner[:, 2] > 0.95)).any():
            raise ValueError("magenta corner")
        return F.interpolate(lr, scale_factor=scale, mode="bilinear", align_corners=False).clamp(0, 1)


class TextNearest(SRMethod):
    """A text-guided fake: nearest-neighbour upscaling, brighter by a caption-dependent step."""

    name = "text-nearest"
    text_guided = True

    def _upscale(self, lr, scale, texts):
        step = torch.tensor([len(t) % 7 / 100 for t in texts]).view(-1, 1, 1, 1)
        return (F.interpolate(lr, scale_factor=scale, mode="nearest") + step).clamp(0, 1)


@pytest.fixture(scope="module")
def alexnet_state():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return torchvision.models.alexnet(weights=None).state_dict()


@pytest.fixture(autouse=True)
def fakes(monkeypatch, alexnet_state):
    meta = {"kind": "test", "scales": None, "backbone": None, "description": "test fake"}
    monkeypatch.setitem(METHODS._entries, "fails-on-magenta",
                        Entry("fails-on-magenta", lambda **_: FailsOnMagenta(), meta))
    monkeypatch.setitem(METHODS._entries, "text-nearest", Entry("text-nearest", lambda **_: TextNearest(), meta))
    # LPIPS on a random AlexNet (the real weights are not in the tests' caches): a convolutional metric
    lpips = iqa.METRICS.get("lpips")
    monkeypatch.setitem(iqa.METRICS._entries, "lpips-random", Entry(
        "lpips-random", lambda **kw: lpips.build(**kw, backbone=alexnet_state), {**lpips.meta, "assets": ()}))
    CALLS.clear()


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    """Dataset ``pipe-test``: five 48x64 photos (one gray, one with a magenta corner), one 40x56
    photo, one truncated file."""
    write_manifest(tmp_path / "manifests", "pipe-test", 'captions = "captions.jsonl"\n[layout]\nhr = "HR/*"\n')
    monkeypatch.setenv("SRBENCH_MANIFESTS", str(tmp_path / "manifests"))
    hr = tmp_path / "data" / "pipe-test" / "HR"
    hr.mkdir(parents=True)
    for k, name in enumerate("abcd"):
        img = photo(48, 64, seed=k)
        if name == "c":
            img[:16, :16] = (255, 0, 255)
        Image.fromarray(img).save(hr / f"{name}.png")
    Image.fromarray(photo(48, 64, seed=7)[..., 1]).save(hr / "gray.png")
    Image.fromarray(photo(40, 56, seed=5)).save(hr / "e.png")
    (hr / "trunc.png").write_bytes((hr / "a.png").read_bytes()[:200])
    # captions for a, c and the unreadable file; the other images have none
    (hr.parent / "captions.jsonl").write_text("".join(
        json.dumps({"id": i, "captions": [f"{i} one", f"{i} second caption"]}) + "\n" for i in ("a", "c", "trunc")))
    return tmp_path / "data"


def grid(data: Path, ckpt: Path, **kw) -> RunSpec:
    base = dict(datasets=("pipe-test",), scales=(2, 4), degradations=("bicubic", "bdn"), data_root=str(data),
                methods=(MethodSpec("bicubic", "bicubic"), MethodSpec(f"spandrel:{ckpt}", "tiny-x4"),
                         MethodSpec("fails-on-magenta", "fails")),
                metrics=("psnr", "ssim", "lpips-random"), device="cpu")
    base.update(kw)
    return RunSpec(**base)


def run(out: Path, s: RunSpec) -> list[str]:
    lines: list[str] = []
    Runner(s, out, echo=lines.append, progress=False).run()
    return lines


def test_pipelined_and_serial_orders_give_identical_tables(tmp_path, data):
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny.pth")
    methods = grid(data, ckpt).methods + (MethodSpec("text-nearest", "text"),)
    run(tmp_path / "serial", grid(data, ckpt, pipeline=False, methods=methods))
    serial = load_scores(tmp_path / "serial")
    # the text-guided method: captioned images run with theirs, the others are refused before they are
    # read, and the unreadable captioned file is an error row that records its caption
    text = serial[(serial["method"] == "text") & (serial["degradation"] == "x4")].groupby("image").first()
    assert set(text[text["status"] == "unsupported"].index) == {"b", "d", "e", "gray"}
    assert text.loc["trunc", "status"] == "error" and text.loc["trunc", "caption"].startswith("trunc ")
    assert text.loc["a", "status"] == "ok" and text.loc["a", "caption"].startswith("a ")
    # the grid has every kind of row: ok, the unreadable file, the method failing on one image,
    # a network that does not support x2, and a gray image
    assert set(serial["status"]) == {"ok", "error", "unsupported"}  # lpips-random included
    failed = serial[(serial["status"] == "error") & (serial["method"] == "fails")]
    assert set(failed["image"]) == {"c", "trunc"} and "magenta corner" in failed[failed["image"] == "c"]["message"].iloc[0]
    for workers in (0, 2):
        out = tmp_path / f"pipelined-{workers}"
        run(out, grid(data, ckpt, workers=workers, methods=methods))
        pd.testing.assert_frame_equal(load_scores(out), serial)  # every column, values bit for bit
        cells = [c for c in load_cells(out) if c.get("pipeline")]
        assert len(cells) == 14 and all(c["pipeline"] == {"workers": workers, "batch": 1} for c in cells)
        assert set(load_timings(out)["image"]) == set(load_timings(tmp_path / "serial")["image"])


def test_batched_runs_stay_within_the_documented_tolerance(tmp_path, data):
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny.pth")
    s = grid(data, ckpt, degradations=(), scales=(4,))
    run(tmp_path / "one", s)
    calls_one = list(CALLS)
    CALLS.clear()
    run(tmp_path / "batched", grid(data, ckpt, degradations=(), scales=(4,), batch=3))
    assert max(calls_one) == 1 and max(CALLS) == 3  # batches of the 48x64 images went through at once
    a, b = load_scores(tmp_path / "one"), load_scores(tmp_path / "batched")
    cols = ["dataset", "degradation", "method", "image", "metric", "status", "message"]
    pd.testing.assert_frame_equal(a[cols], b[cols])  # the same rows; the failing image still named alone
    for metric in ("psnr", "ssim", "lpips-random"):
        rows = a["metric"] == metric
        tol = pipeline.BATCH_TOLERANCE[metric.removesuffix("-random")]
        np.testing.assert_allclose(b.loc[rows, "value"], a.loc[rows, "value"], rtol=0, atol=tol)
    ok = a[a["status"] == "ok"]
    assert {"psnr", "ssim", "lpips-random"} <= set(ok["metric"]) and set(ok["image"]) == {"a", "b", "c", "d", "e", "gray"}


def test_each_hr_image_is_read_once_per_dataset_and_scale(tmp_path, data, monkeypatch):
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny.pth")
    reads: list[str] = []
    real = pipeline.read_image_gray

    def counting(path):
        reads.append(Path(path).stem)
        return real(path)

    monkeypatch.setattr(pipeline, "read_image_gray", counting)
    # 2 degradations x 3 methods at x4: six cells, one read of each image
    run(tmp_path / "r", grid(data, ckpt, scales=(4,), degradations=("bicubic", "bdn")))
    assert sorted(reads) == sorted(["a", "b", "c", "d", "e", "gray", "trunc"])
    assert len({c["method"] + c["degradation"] for c in load_cells(tmp_path / "r")}) == 6


def test_a_killed_pipelined_run_resumes_to_the_same_table(tmp_path, data, monkeypatch):
    """Rows written before a crash are kept and the rerun computes only the rest (the writer
    thread finishes what was queued when the main thread fails)."""
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny.pth")
    s = grid(data, ckpt, scales=(4,), degradations=())
    run(tmp_path / "ref", s)
    monkeypatch.setattr("bench.run.runner.FLUSH_SECONDS", 0.0)
    real = pipeline.GroupRun._score
    seen = {"n": 0}

    def crash(self, outputs):
        seen["n"] += 1
        if seen["n"] == 4:
            raise KeyboardInterrupt
        return real(self, outputs)

    with monkeypatch.context() as m:
        m.setattr(pipeline.GroupRun, "_score", crash)
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path / "r", s)
    partial = load_scores(tmp_path / "r")
    assert 0 < partial["image"].nunique() < 7  # some images landed before the crash
    CALLS.clear()
    run(tmp_path / "r", s)
    assert len(CALLS) < 6  # the fake network ran only on the images that had no rows
    pd.testing.assert_frame_equal(load_scores(tmp_path / "r"), load_scores(tmp_path / "ref"))


def test_prefetcher_keeps_the_order_and_its_bound_and_raises_in_place():
    started, consumed, ahead = [], [], []
    lock = threading.Lock()

    def work(i):
        with lock:
            started.append(i)
            ahead.append(len(started) - len(consumed))
        time.sleep(0.002 * (i % 3))
        if i == 7:
            raise ValueError("seven")
        return i * i

    got = []
    with pytest.raises(ValueError, match="seven"):
        for v in pipeline.Prefetcher(work, range(12), workers=3, depth=4):
            got.append(v)
            consumed.append(v)
    assert got == [i * i for i in range(7)]
    assert max(ahead) <= 4 + 1  # at most `depth` submitted ahead of what was consumed
    assert list(pipeline.Prefetcher(lambda i: -i, range(5), workers=0, depth=1)) == [0, -1, -2, -3, -4]


def test_writer_runs_in_order_and_raises_the_first_failure():
    done: list[int] = []
    w = pipeline.Writer()
    for i in range(5):
        w.submit(done.append, i)
    w.drain()
    assert done == [0, 1, 2, 3, 4]

    def boom():
        raise OSError("disk went away")

    w.submit(boom)
    w.submit(done.append, 99)  # after a failure nothing more is written
    with pytest.raises(OSError, match="disk went away"):
        w.drain()
    w.close()
    assert 99 not in done


def test_batch_and_workers_are_checked_and_kept_out_of_default_digests(tmp_path, data):
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny.pth")
    with pytest.raises(SrbenchError, match=r"batch > 1 needs the pipelined order"):
        grid(data, ckpt, batch=2, pipeline=False)
    with pytest.raises(SrbenchError, match=r"workers must be a number of loader threads"):
        grid(data, ckpt, workers=-1)
    with pytest.raises(SrbenchError, match=r"batch must be a positive integer"):
        grid(data, ckpt, batch=0)
    d = {k: v for k, v in json.loads(json.dumps(grid(data, ckpt).to_dict())).items() if v is not None}  # as TOML gives it
    assert not {"pipeline", "workers", "batch"} & set(d)  # earlier run folders keep their digest
    assert grid(data, ckpt, batch=4, workers=1).to_dict()["batch"] == 4
    assert RunSpec.from_dict({**d, "batch": 2, "workers": 0}).batch == 2
    with pytest.raises(SrbenchError, match=r"spec: batch must be an integer, got '2'"):
        RunSpec.from_dict({**d, "batch": "2"})


def test_cli_flags_reach_the_spec(tmp_path, data):
    from bench.cli import main

    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny.pth")
    out = tmp_path / "r"
    code = main(["run", "--datasets", "pipe-test", "--scales", "4", "--methods", f"bicubic,spandrel:{ckpt}",
                 "--metrics", "psnr", "--data-root", str(data), "--batch", "2", "--workers", "1", "--device", "cpu",
                 "--out", str(out), "--no-progress", "--no-report"])
    assert code == 1  # the truncated file's error rows (the run goes on)
    assert {c["pipeline"]["batch"] for c in load_cells(out)} == {2}
    code = main(["run", "--datasets", "pipe-test", "--scales", "4", "--methods", "bicubic", "--metrics", "psnr",
                 "--data-root", str(data), "--serial", "--device", "cpu", "--out", str(tmp_path / "s"),
                 "--no-progress", "--no-report"])
    assert code == 1 and not any("pipeline" in c for c in load_cells(tmp_path / "s"))
    assert torch.backends.cudnn.benchmark is False  # never left switched on


@pytest.mark.parametrize("blend", ["crop", "feather"])
def test_same_size_tiles_go_through_a_network_together(blend):
    from sr_methods.tiling import tile_batching, tiled_upscale

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2)).eval()
    calls: list[int] = []

    def fn(t):
        calls.append(t.shape[0])
        with torch.no_grad():
            return net(t)

    lr = torch.rand(2, 3, 50, 70)
    one = tiled_upscale(fn, lr, 2, 16, 4, blend=blend, batchable=True)
    n_tiles = len(calls)
    calls.clear()
    with tile_batching(4):
        many = tiled_upscale(fn, lr, 2, 16, 4, blend=blend, batchable=True)
        assert calls and max(calls) == 4 * 2 and len(calls) < n_tiles  # 4 tiles x 2 images per call
        calls.clear()
        tiled_upscale(fn, lr, 2, 16, 4, blend=blend)  # a caller that did not opt in: one tile per call
        assert max(calls) == 2 and len(calls) == n_tiles
    torch.testing.assert_close(many, one, rtol=0, atol=1e-6)
    if blend == "crop":  # each output pixel from the tile that sees all of its 3x3 context
        with torch.no_grad():
            torch.testing.assert_close(one, net(lr), rtol=0, atol=1e-5)


@pytest.mark.gpu
def test_on_cuda_the_pipelined_order_gives_the_serial_table(tmp_path, data):
    """On a GPU (loader threads, pinned memory, non-blocking copies): batch 1 gives the serial table
    bit for bit; batch 3 (with cuDNN autotuning) stays within the documented tolerance."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny.pth")
    s = grid(data, ckpt, degradations=(), scales=(4,), device="cuda")
    run(tmp_path / "serial", RunSpec(**{**s.__dict__, "pipeline": False}))
    run(tmp_path / "pipelined", s)
    serial = load_scores(tmp_path / "serial")
    pd.testing.assert_frame_equal(load_scores(tmp_path / "pipelined"), serial)
    assert {c["pipeline"]["workers"] for c in load_cells(tmp_path / "pipelined") if c.get("pipeline")} == {
        pipeline.default_workers(torch.device("cuda"))}
    run(tmp_path / "batched", RunSpec(**{**s.__dict__, "batch": 3}))
    b = load_scores(tmp_path / "batched")
    for metric in ("psnr", "ssim", "lpips-random"):
        rows = serial["metric"] == metric
        tol = pipeline.BATCH_TOLERANCE[metric.removesuffix("-random")]
        np.testing.assert_allclose(b.loc[rows, "value"], serial.loc[rows, "value"], rtol=0, atol=tol)
    assert torch.backends.cudnn.benchmark is False
