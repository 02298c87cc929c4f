"""Trustworthy runs (issue 11): injective run-folder keys, reruns that repair, disk full, corrupt
run folders, hostile spec values and images. Each test failed before its fix."""

from __future__ import annotations

import errno
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.run.runner import Runner
from bench.run.spec import MethodSpec, RunSpec
from bench.run.store import CorruptFileError, load_scores, safe_name
from iqa.errors import SrbenchError
from tests.helpers import photo, write_manifest

COLS = ["dataset", "degradation", "method", "image", "metric", "value", "status"]


def spec(**kw) -> RunSpec:
    base = dict(datasets=("demo",), scales=(4,), methods=(MethodSpec("bicubic", "bicubic"),), metrics=("psnr",))
    base.update(kw)
    return RunSpec(**base)


def run(out: Path, s: RunSpec, **kw) -> list[str]:
    lines: list[str] = []
    Runner(s, out, echo=lines.append, progress=False, **kw).run()
    return lines


def table(out: Path) -> pd.DataFrame:
    return load_scores(out)[COLS].reset_index(drop=True)


@pytest.fixture
def hr_dataset(tmp_path, monkeypatch):
    """``make(name, {file name: image array})``: a dataset ``name`` with those HR files."""
    man = tmp_path / "manifests"
    monkeypatch.setenv("SRBENCH_MANIFESTS", str(man))

    def make(name: str, images: dict[str, np.ndarray]) -> Path:
        write_manifest(man, name, '[layout]\nhr = "HR/*"\n')
        folder = tmp_path / "data" / name / "HR"
        folder.mkdir(parents=True, exist_ok=True)
        for fname, arr in images.items():
            Image.fromarray(arr).save(folder / fname)
        return tmp_path / "data"

    return make


# -- 1. silent collisions --------------------------------------------------------------------------
def test_safe_name_is_injective_readable_and_a_fixed_point():
    names = ["a b", "a_b", "m<1", "m>1", "img_001", ".x", "x", "", "_", "é", "e", "x" * 150, "x" * 151]
    safe = [safe_name(n) for n in names]
    assert len(set(safe)) == len(names)
    assert safe_name("img_001") == "img_001" and safe_name("a b").startswith("a_b-")
    assert all(safe_name(s) == s for s in safe) and all(0 < len(s) <= 100 for s in safe)


def test_ids_that_clean_alike_keep_their_own_lr_and_scores(tmp_path, hr_dataset):
    a, b = photo(64, 64, 1), photo(64, 64, 2)
    root = hr_dataset("collide-test", {"a b.png": a, "a_b.png": b})
    hr_dataset("alone-a", {"a b.png": a})
    hr_dataset("alone-b", {"a_b.png": b})
    run(tmp_path / "r", spec(datasets=("collide-test", "alone-a", "alone-b"), data_root=str(root)))
    df = load_scores(tmp_path / "r").set_index(["dataset", "image"])["value"]
    assert df[("collide-test", "a b")] == df[("alone-a", "a b")]
    assert df[("collide-test", "a_b")] == df[("alone-b", "a_b")]
    assert df[("collide-test", "a b")] != df[("collide-test", "a_b")]
    assert len(list((tmp_path / "r" / "lr" / "collide-test" / "x4").glob("*.png"))) == 2


def test_method_labels_that_clean_alike_are_two_methods(tmp_path):
    run(tmp_path / "r", spec(methods=(MethodSpec("bicubic", "m<1"), MethodSpec("nearest", "m>1"))))
    df = load_scores(tmp_path / "r")
    assert sorted(df["method"].unique()) == ["m<1", "m>1"]
    means = df.groupby("method")["value"].mean()
    assert means["m<1"] != means["m>1"] and len(df) == 10


@pytest.mark.parametrize("kw, what", [
    (dict(datasets=("demo", "demo")), "dataset 'demo' is given twice"),
    (dict(metrics=("psnr", "psnr")), "metric 'psnr' is given twice"),
    (dict(scales=(4, 4)), "scale 4 is given twice"),
    (dict(methods=(MethodSpec("bicubic", "x"), MethodSpec("nearest", "x"))), "method label 'x' is given twice"),
])
def test_duplicates_in_a_spec_are_one_line_errors(kw, what):
    with pytest.raises(SrbenchError, match=what):
        spec(**kw)


# -- 2. reruns that repair -------------------------------------------------------------------------
def test_missing_dataset_added_later_gets_scored(tmp_path, hr_dataset, monkeypatch):
    root = hr_dataset("later-test", {"one.png": photo(64, 64, 3)})
    s = spec(datasets=("later-test",), data_root=str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").mkdir()
    run(tmp_path / "r", s)
    assert set(load_scores(tmp_path / "r")["status"]) == {"missing"}
    (tmp_path / "elsewhere" / "later-test").symlink_to(root / "later-test")
    lines = run(tmp_path / "r", s)
    assert not any("(cached)" in line for line in lines)
    run(tmp_path / "fresh", s)
    pd.testing.assert_frame_equal(table(tmp_path / "r"), table(tmp_path / "fresh"))
    assert list(table(tmp_path / "r")["status"]) == ["ok"]  # the 'missing' placeholder row is gone


def test_metric_that_can_be_built_later_gets_computed(tmp_path, monkeypatch):
    """A metric unavailable in one run (its parameter file missing) is computed by the next run
    once the file is back, for the images already scored by the other metrics."""
    import iqa
    from iqa.registry import Entry

    flag = tmp_path / "params.bin"

    def build(*, protocol):
        if not flag.exists():
            raise SrbenchError(f"{flag}: parameter file not found")
        return iqa.create_metric("psnr", protocol=protocol)

    monkeypatch.setitem(iqa.METRICS._entries, "flaky-test", Entry("flaky-test", build, {}))
    s = spec(metrics=("psnr", "flaky-test"))
    run(tmp_path / "r", s)
    df = load_scores(tmp_path / "r")
    assert set(df[df.metric == "flaky-test"]["status"]) == {"unavailable"}
    assert set(df[df.metric == "flaky-test"]["cause"]) == {"setup"}
    flag.write_bytes(b"x")
    run(tmp_path / "r", s)
    run(tmp_path / "fresh", s)
    pd.testing.assert_frame_equal(table(tmp_path / "r"), table(tmp_path / "fresh"))
    assert (table(tmp_path / "r")["status"] == "ok").all()


def _failing_bicubic(monkeypatch, fail: dict[str, BaseException], calls: list[str]):
    """bicubic, but raising ``fail[image]`` for the images named (the image is found by its LR size)."""
    from sr_methods.interpolation import InterpolationMethod as Interpolation

    real = Interpolation.upscale

    def upscale(self, lr, scale, *a, **k):
        key = f"{lr.shape[-2]}x{lr.shape[-1]}"
        calls.append(key)
        if key in fail:
            raise fail[key]
        return real(self, lr, scale, *a, **k)

    monkeypatch.setattr(Interpolation, "upscale", upscale)


def test_environment_errors_are_retried_input_errors_are_kept(tmp_path, hr_dataset, monkeypatch):
    images = {"small.png": photo(64, 64, 4), "wide.png": photo(64, 96, 5), "tall.png": photo(96, 64, 6)}
    root = hr_dataset("retry-test", images)
    (root / "retry-test" / "HR" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    s = spec(datasets=("retry-test",), data_root=str(root))
    calls: list[str] = []
    with monkeypatch.context() as m:
        _failing_bicubic(m, {"16x24": OSError(errno.EIO, "Input/output error"), "24x16": MemoryError()}, calls)
        run(tmp_path / "r", s)
    df = load_scores(tmp_path / "r").set_index("image")
    assert df.loc["wide", "cause"] == df.loc["tall", "cause"] == "environment"
    assert df.loc["broken", "status"] == "error" and df.loc["broken", "cause"] == "input"

    calls.clear()
    with monkeypatch.context() as m:
        _failing_bicubic(m, {}, calls)
        lines = run(tmp_path / "r", s)
    assert sorted(calls) == ["16x24", "24x16"]  # only the two environment failures ran again
    assert "1 ERRORS" in lines[0]
    run(tmp_path / "fresh", s)
    pd.testing.assert_frame_equal(table(tmp_path / "r"), table(tmp_path / "fresh"))

    # a third run reuses the cell (the truncated file is not retried forever) ...
    assert "(cached)" in run(tmp_path / "r", s)[0]
    # ... unless asked: --retry-errors computes every non-ok row again
    lines = run(tmp_path / "r", s, retry="errors")
    assert "(cached)" not in lines[0]
    pd.testing.assert_frame_equal(table(tmp_path / "r"), table(tmp_path / "fresh"))


def test_no_retry_keeps_environment_errors(tmp_path, hr_dataset, monkeypatch):
    root = hr_dataset("noretry-test", {"small.png": photo(64, 64, 4), "wide.png": photo(64, 96, 5)})
    s = spec(datasets=("noretry-test",), data_root=str(root))
    calls: list[str] = []
    with monkeypatch.context() as m:
        _failing_bicubic(m, {"16x24": OSError(errno.EIO, "Input/output error")}, calls)
        run(tmp_path / "r", s)
    lines = run(tmp_path / "r", s, retry="none")
    assert "(cached)" in lines[0] and "1 ERRORS" in lines[0]
    with pytest.raises(SrbenchError, match="retry must be one of"):
        Runner(s, tmp_path / "x", retry="sometimes")


@pytest.mark.parametrize("damage", ["remove", "truncate"])
def test_done_cell_with_lost_or_truncated_parts_is_computed_again(tmp_path, damage):
    s = spec()
    run(tmp_path / "r", s)
    ref = table(tmp_path / "r")
    part = next((tmp_path / "r" / "cells").rglob("part-*.parquet"))
    if damage == "remove":
        part.unlink()
    else:
        part.write_bytes(part.read_bytes()[:50])
    with pytest.raises(CorruptFileError, match=str(part)) if damage == "truncate" else _nothing():
        load_scores(tmp_path / "r")  # what `srbench report` reads: one line naming the file
    lines = run(tmp_path / "r", s)
    assert "(cached)" not in lines[-1] and "5/5 ok" in lines[-1]
    if damage == "truncate":
        assert any(str(part) in line and "unreadable Parquet" in line for line in lines)
    pd.testing.assert_frame_equal(table(tmp_path / "r"), ref)


def test_a_rerun_reads_each_part_of_a_finished_cell_once(tmp_path, monkeypatch):
    import bench.run.store as store

    s = spec()
    run(tmp_path / "r", s)
    parts = sorted((tmp_path / "r" / "cells").rglob("*-*.parquet"))
    reads: list[tuple[Path, str]] = []
    real = store.read_parquet

    def counting(p):
        import traceback

        callers = {f.name for f in traceback.extract_stack()}
        reads.append((Path(p), "run table" if callers & {"load_scores", "load_timings"} else "cell"))
        return real(p)

    monkeypatch.setattr(store, "read_parquet", counting)
    lines = run(tmp_path / "r", s)
    assert "(cached)" in lines[-1] and parts
    # the cell is checked, reused and reported from one read of each part; the run's final table
    # (load_scores / load_timings, once per run) reads the folder once more
    assert sorted(p for p, by in reads if by == "cell") == parts


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_garbage_manifest_is_one_line_in_run_and_report(tmp_path, capsys):
    from bench.cli import main

    run(tmp_path / "r", spec())
    (tmp_path / "r" / "manifest.json").write_text("{ not json")
    assert main(["report", str(tmp_path / "r"), "--out", str(tmp_path / "rep"), "--no-plots", "--no-html"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json: not valid JSON" in err[0]
    lines = run(tmp_path / "r", spec())
    assert any("manifest.json: not valid JSON" in line and "writing a new one" in line for line in lines)
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["spec"]["datasets"] == ["demo"]


def test_truncated_parquet_is_one_line_in_report(tmp_path, capsys):
    from bench.cli import main

    run(tmp_path / "r", spec())
    part = next((tmp_path / "r" / "cells").rglob("part-*.parquet"))
    part.write_bytes(b"PAR1 garbage")
    assert main(["report", str(tmp_path / "r"), "--out", str(tmp_path / "rep"), "--no-plots", "--no-html"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(part) in err[0] and "unreadable Parquet" in err[0]


def _disk_fills_after(monkeypatch, n_writes: int) -> None:
    """Every PNG and Parquet write after the first ``n_writes`` fails with ENOSPC, as on a full disk."""
    count = {"n": 0}
    real_save, real_parquet = Image.Image.save, pd.DataFrame.to_parquet

    def tick():
        count["n"] += 1
        if count["n"] > n_writes:
            raise OSError(errno.ENOSPC, "No space left on device")

    def save(self, *a, **k):
        tick()
        return real_save(self, *a, **k)

    def to_parquet(self, *a, **k):
        tick()
        return real_parquet(self, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save)
    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)


@pytest.mark.parametrize("n_writes", [1, 4, 9])
def test_disk_full_stops_with_one_line_and_the_rerun_gives_the_same_table(tmp_path, monkeypatch, n_writes):
    s = spec(methods=(MethodSpec("bicubic", "bicubic"), MethodSpec("nearest", "nearest")))
    monkeypatch.setenv("SRBENCH_FLUSH_SECONDS", "0")
    monkeypatch.setattr("bench.run.runner.FLUSH_SECONDS", 0.0)
    with monkeypatch.context() as m:
        _disk_fills_after(m, n_writes)
        with pytest.raises(SrbenchError, match=r"^no space left on /\S* while writing .*; free space and rerun"):
            run(tmp_path / "r", s)
    run(tmp_path / "r", s)
    run(tmp_path / "fresh", s)
    pd.testing.assert_frame_equal(table(tmp_path / "r"), table(tmp_path / "fresh"))
    assert not (load_scores(tmp_path / "r")["status"] != "ok").any()


def test_disk_full_through_the_cli_is_one_line(tmp_path, monkeypatch, capsys):
    from bench.cli import main

    _disk_fills_after(monkeypatch, 2)
    code = main(["run", "--datasets", "demo", "--scales", "4", "--methods", "bicubic", "--metrics", "psnr",
                 "--out", str(tmp_path / "r"), "--no-progress", "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("srbench: error: no space left on ")


# -- 4. hostile input -------------------------------------------------------------------------------
@pytest.mark.parametrize("body, what", [
    ('scales = ["abc"]', "scales must be a list of integers"),
    ("scales = 2", "scales must be a list of integers"),
    ('scales = [4]\nseed = "x"', "seed must be an integer"),
    ('scales = [4]\nsave_sr = "yes"', "save_sr must be true or false"),
    ('scales = [4]\nlimit = "5"', "limit must be an integer"),
    ('scales = [4]\nmetrics = "psnr"', "metrics must be a list of names"),
])
def test_spec_values_of_the_wrong_type_are_one_line(tmp_path, capsys, body, what):
    from bench.cli import main

    path = tmp_path / "bad.toml"
    path.write_text(f'datasets = ["demo"]\nmethods = ["bicubic"]\n{body}\n')
    assert main(["run", "--spec", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and what in err[0]


def test_images_above_the_pixel_limit_are_refused_with_one_line(tmp_path, hr_dataset, monkeypatch):
    root = hr_dataset("big-test", {"big.png": photo(96, 128, 1), "ok.png": photo(32, 32, 2)})
    run(tmp_path / "r", spec(datasets=("big-test",), data_root=str(root), max_pixels=5000))
    df = load_scores(tmp_path / "r").set_index("image")
    assert df.loc["ok", "status"] == "ok" and df.loc["big", "status"] == "error"
    assert df.loc["big", "cause"] == "input"
    assert "128x96 is 0.0 megapixels, above the limit of 0.005" in df.loc["big", "message"]
    assert str(root / "big-test" / "HR" / "big.png") in df.loc["big", "message"]
    # the header is read, never the pixels: a huge (sparse) declared size is refused at once
    from bench.run.io import ImageReadError, pixel_limit, read_image

    with pixel_limit(64_000_000), pytest.raises(ImageReadError, match="144.0 megapixels, above the limit of 64"):
        read_image(_bomb_png(tmp_path / "bomb.png", 12000, 12000))
    monkeypatch.setenv("SRBENCH_MAX_PIXELS", "1000")
    with pytest.raises(ImageReadError, match="above the limit"):
        read_image(root / "big-test" / "HR" / "ok.png")


def _bomb_png(path: Path, w: int, h: int) -> Path:
    """A PNG whose header declares w x h pixels (its data is not there: reading pixels would fail)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_an_infinite_score_is_shown_not_dropped(tmp_path, hr_dataset):
    flat = np.full((64, 64, 3), 120, np.uint8)  # bicubic reproduces a flat image exactly: PSNR inf
    root = hr_dataset("flat-test", {"flat.png": flat, "photo.png": photo(64, 64, 1)})
    lines = run(tmp_path / "r", spec(datasets=("flat-test",), data_root=str(root)))
    assert "PSNR inf" in lines[0] and "PSNR inf on 1 image(s)" in lines[0]
    df = load_scores(tmp_path / "r").set_index("image")
    assert df.loc["flat", "value"] == math.inf and df.loc["flat", "status"] == "ok"


# -- 5. messages ------------------------------------------------------------------------------------
def test_misspelt_names_leave_no_run_folder(tmp_path):
    for kw in (dict(methods=(MethodSpec("bicubc", "bicubc"),)), dict(metrics=("psrn",)),
               dict(datasets=("set55",)), dict(methods=(MethodSpec("bicubic", "b", {"tiel": 3}),))):
        with pytest.raises(SrbenchError, match="did you mean|unknown"):
            run(tmp_path / "r", spec(**kw))
        assert not (tmp_path / "r").exists()


def test_closing_line_names_what_went_wrong_where(tmp_path):
    from bench.cli import _problems_line
    from bench.run.runner import CellResult

    only_errors = _problems_line([], 3, tmp_path)
    assert "!!" not in only_errors and "3 image(s) failed" in only_errors and "ERRORS" in only_errors
    cells = [CellResult("set5", "x4", "m", "missing"), CellResult("set5", "x4", "n", "unavailable")]
    both = _problems_line(cells, 0, tmp_path)
    assert "2 cell(s) could not run" in both and "MISSING or UNAVAILABLE" in both and "image(s)" not in both


def test_two_files_with_one_id_stop_the_run_before_it_starts(tmp_path, hr_dataset):
    root = hr_dataset("dupid-test", {"dupid.png": photo(64, 64, 1)})
    Image.fromarray(photo(64, 64, 2)).save(root / "dupid-test" / "HR" / "dupid.bmp")
    with pytest.raises(SrbenchError, match="dupid"):
        run(tmp_path / "r", spec(datasets=("dupid-test",), data_root=str(root)))
    assert not (tmp_path / "r").exists()


def test_ctrl_c_while_srbench_starts_is_one_line(tmp_path):
    """SIGINT while `bench.cli` (and torch) are still being imported: one line, no traceback."""
    import os
    import signal
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[1]
    for delay in (0.3, 1.0):
        p = subprocess.Popen([sys.executable, "-m", "bench", "list", "methods"], cwd=repo, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(repo)})
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=60)[1].decode()
        if p.returncode == 0:  # finished before the signal: nothing to check at this delay
            continue
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
        assert p.returncode in (130, -signal.SIGINT), (p.returncode, err)


def test_an_import_broken_by_ctrl_c_is_one_line(monkeypatch, capsys):
    """Ctrl-C inside numpy's C import surfaces as an ImportError on the retry: one line when a
    SIGINT arrived during start-up, the error itself otherwise."""
    import sys

    import bench.entry as entry

    monkeypatch.setitem(sys.modules, "bench.cli", None)  # importing it now raises ImportError
    with pytest.raises(ImportError):
        entry.main([])
    monkeypatch.setattr(entry, "_interrupted", True)
    assert entry.main([]) == 130
    assert capsys.readouterr().err == "srbench: interrupted\n"


def test_parts_written_before_the_cause_column_still_load(tmp_path):
    """Run folders of earlier versions have no `cause`: it is filled from the status and message."""
    run(tmp_path / "r", spec())
    part = next((tmp_path / "r" / "cells").rglob("part-*.parquet"))
    old = pd.read_parquet(part).drop(columns="cause")
    old.loc[0, ["status", "message", "value"]] = ["error", "x.png: [Errno 28] No space left on device", math.nan]
    old.to_parquet(part, index=False)
    df = load_scores(tmp_path / "r")
    assert list(df["cause"])[:2] == ["environment", ""]
