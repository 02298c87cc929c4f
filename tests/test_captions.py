"""Captions travel from a dataset (or an override) to text-guided SR methods and into the rows
(issue 15, part 1): `SRMethod.upscale(lr, scale, text=...)`, the runner's seeded choice, the
``caption`` column, ``--caption``/``--captions`` and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bench.run.runner import NO_CAPTION, Runner, pick_caption
from bench.run.spec import MethodSpec, RunSpec
from bench.run.store import load_cells, load_scores, score_frame
from iqa.errors import SrbenchError
from iqa.registry import Entry
from sr_methods.base import MissingCaptionError, SRMethod
from sr_methods.catalogue import METHODS
from tests.conftest import SHARED_DATA
from tests.helpers import photo, write_manifest

IDS = ("a", "b", "c", "d", "e")
CAPTIONS = {i: [f"{i}: caption {k}" for k in range(5)] for i in IDS}

# what every fake method received, per label: a list of texts per call (None: called without text)
RECEIVED: dict[str, list] = {}


class EchoText(SRMethod):
    """A text-guided fake: nearest-neighbour upscaling that records the captions it gets."""

    name = "echo-text"
    text_guided = True

    def __init__(self, label: str, missing_caption: str = "unsupported"):
        super().__init__()
        self.label, self.missing_caption = label, missing_caption

    def _upscale(self, lr, scale, texts):
        RECEIVED.setdefault(self.label, []).append(list(texts))
        return F.interpolate(lr, scale_factor=scale, mode="nearest")


class Plain(SRMethod):
    """A method that is not text-guided: records that it was called, never with text."""

    name = "plain-fake"

    def __init__(self, label: str):
        super().__init__()
        self.label = label

    def _upscale(self, lr, scale, *rest):
        RECEIVED.setdefault(self.label, []).append(None if not rest else rest)
        return F.interpolate(lr, scale_factor=scale, mode="nearest")


def _echo(*, entry, label: str = "echo", missing_caption: str = "unsupported") -> EchoText:
    return EchoText(label, missing_caption)


def _plain(*, entry, label: str = "plain") -> Plain:
    return Plain(label)


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    meta = {"kind": "test", "scales": None, "backbone": None, "description": "test fake"}
    monkeypatch.setitem(METHODS._entries, "echo-text", Entry("echo-text", _echo, meta))
    monkeypatch.setitem(METHODS._entries, "plain-fake", Entry("plain-fake", _plain, meta))
    RECEIVED.clear()
    yield
    RECEIVED.clear()


def dataset(tmp_path: Path, name: str = "capt-test", captions: dict | None = CAPTIONS, ids=IDS) -> Path:
    """A tiny dataset ``name`` under ``tmp_path/data`` (24 x 24 photos) with ``captions.jsonl``
    holding ``captions`` (None: no file); its manifest goes to ``tmp_path/manifests``."""
    write_manifest(tmp_path / "manifests", name, f'folder = "{name}"\ncaptions = "captions.jsonl"\n'
                                                 '[layout]\nhr = "HR/*"\n')
    hr = tmp_path / "data" / name / "HR"
    hr.mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(ids):
        Image.fromarray(photo(24, 24, seed=k)).save(hr / f"{i}.png")
    if captions is not None:
        write_captions(tmp_path / "data" / name / "captions.jsonl", captions)
    return tmp_path / "data"


def write_captions(path: Path, captions: dict) -> None:
    path.write_text("".join(json.dumps({"id": i, "captions": c}) + "\n" for i, c in captions.items()))


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SRBENCH_MANIFESTS", str(tmp_path / "manifests"))
    return dataset(tmp_path)


def methods(*specs: tuple[str, str] | tuple[str, str, dict]) -> tuple[MethodSpec, ...]:
    out = []
    for name, label, *opts in specs:
        out.append(MethodSpec(name, label, {"label": label, **(opts[0] if opts else {})}))
    return tuple(out)


TWO_TEXT_ONE_PLAIN = methods(("echo-text", "tg-a"), ("echo-text", "tg-b"), ("plain-fake", "plain"))


def spec(data: Path, **kw) -> RunSpec:
    base = {"datasets": ("capt-test",), "scales": (2,), "methods": TWO_TEXT_ONE_PLAIN, "metrics": ("psnr",),
            "data_root": str(data), "device": "cpu"}
    base.update(kw)
    return RunSpec(**base)


def run(out: Path, s: RunSpec, retry: str = "auto") -> list[str]:
    lines: list[str] = []
    Runner(s, out, echo=lines.append, progress=False, retry=retry).run()
    return lines


def captions_of(out: Path, method: str) -> dict[str, object]:
    df = load_scores(out)
    rows = df[df["method"] == method]
    got = rows.groupby("image")["caption"].agg(lambda c: set(c)).to_dict()
    assert all(len(v) == 1 for v in got.values()), got  # every row of an image records the same caption
    return {k: next(iter(v)) for k, v in got.items()}


def fingerprints(out: Path) -> dict[str, str]:
    return {c["method"]: c["fingerprint"] for c in load_cells(out)}


# -- plumbing: dataset -> seeded choice -> method -> row ------------------------------------------


def test_caption_travels_from_the_dataset_to_the_method_and_the_row(tmp_path, data):
    run(tmp_path / "r0", spec(data))
    want = {i: pick_caption(tuple(CAPTIONS[i]), 0, i) for i in IDS}
    for label in ("tg-a", "tg-b"):
        assert captions_of(tmp_path / "r0", label) == want
        # the method got exactly the recorded caption, one per image, as a list of one str
        assert sorted(t[0] for t in RECEIVED[label]) == sorted(want.values())
        assert all(isinstance(t, list) and len(t) == 1 for t in RECEIVED[label])
    # methods that are not text-guided never see text, and their rows have no caption
    assert RECEIVED["plain"] == [None] * len(IDS)
    assert set(captions_of(tmp_path / "r0", "plain").values()) == {None}
    df = load_scores(tmp_path / "r0")
    assert (df["status"] == "ok").all() and list(df.columns)[-1] == "caption"
    # the same seed gives the same captions in another run; another seed picks others for some image
    run(tmp_path / "r0-again", spec(data))
    assert captions_of(tmp_path / "r0-again", "tg-a") == want
    other = {i: pick_caption(tuple(CAPTIONS[i]), 1, i) for i in IDS}
    assert other != want  # a property of these captions and seeds: the test needs it
    run(tmp_path / "r1", spec(data, seed=1))
    assert captions_of(tmp_path / "r1", "tg-a") == captions_of(tmp_path / "r1", "tg-b") == other
    manifest = json.loads((tmp_path / "r0" / "manifest.json").read_text())
    assert manifest["captions"]["text_guided"] == ["tg-a", "tg-b"] and "caption" not in manifest["spec"]
    assert manifest["weights"]["tg-a"]["text_guided"] is True and "text_guided" not in manifest["weights"]["plain"]
    assert manifest["weights"]["tg-a"]["missing_caption"] == "unsupported"


def test_pick_caption_is_the_seeded_index():
    from bench.run.degradations import derive_seed

    caps = ("x", "y", "z")
    assert pick_caption(caps, 7, "img") == caps[derive_seed(7, "img", "caption") % 3]
    assert pick_caption((), 7, "img") is None and pick_caption(("only",), 3, "q") == "only"


# -- --caption: one text for every image ---------------------------------------------------------


def test_caption_override_reruns_only_text_guided_cells(tmp_path, data):
    out = tmp_path / "r"
    run(out, spec(data))
    before = fingerprints(out)
    lines = run(out, spec(data, caption="a red double-decker bus"))
    cells = {line.split()[2]: "(cached)" in line for line in lines if line.startswith("capt-test")}
    assert cells == {"tg-a": False, "tg-b": False, "plain": True}
    after = fingerprints(out)
    assert after["plain"] == before["plain"] and after["tg-a"] != before["tg-a"]
    for label in ("tg-a", "tg-b"):
        assert set(captions_of(out, label).values()) == {"a red double-decker bus"}
        assert RECEIVED[label][-len(IDS):] == [["a red double-decker bus"]] * len(IDS)
    assert set(captions_of(out, "plain").values()) == {None}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["captions"]["caption"] == "a red double-decker bus"
    assert manifest["spec"]["caption"] == "a red double-decker bus"
    # the same override again: everything cached; without it: back to the datasets' captions
    assert all("(cached)" in line for line in run(out, spec(data, caption="a red double-decker bus"))
               if line.startswith("capt-test"))
    run(out, spec(data))
    assert fingerprints(out) == before
    assert captions_of(out, "tg-a") == {i: pick_caption(tuple(CAPTIONS[i]), 0, i) for i in IDS}


def test_empty_caption_override_is_the_empty_prompt(tmp_path, data):
    run(tmp_path / "r", spec(data, caption=""))
    assert set(captions_of(tmp_path / "r", "tg-a").values()) == {""}
    assert RECEIVED["tg-a"] == [[""]] * len(IDS)


# -- --captions FILE: per image ------------------------------------------------------------------


def test_captions_file_overrides_per_image_and_falls_back(tmp_path, data):
    file = tmp_path / "mine.jsonl"
    many = ["b one", "b two", "b three", "b four"]
    file.write_text("\n".join([
        json.dumps({"id": "a", "caption": "only for a"}),
        json.dumps({"id": "b", "captions": many}),
        "",  # blank lines are fine
        json.dumps({"id": "c", "caption": "c in capt-test", "dataset": "capt-test"}),
    ]) + "\n")
    out = tmp_path / "r"
    run(out, spec(data, captions=str(file)))
    got = captions_of(out, "tg-a")
    assert got["a"] == "only for a" and got["c"] == "c in capt-test"
    assert got["b"] == pick_caption(tuple(many), 0, "b")  # a list: the seeded choice among them
    for i in ("d", "e"):  # not listed: the dataset's own captions
        assert got[i] == pick_caption(tuple(CAPTIONS[i]), 0, i)
    assert captions_of(out, "tg-b") == got
    manifest = json.loads((out / "manifest.json").read_text())
    from iqa.assets import sha256_file

    rec = manifest["captions"]["captions_file"]
    assert rec["path"] == str(file.resolve()) and rec["sha256"] == sha256_file(file) and rec["entries"] == 3
    # with --caption as well: a line of the file wins, unlisted images get --caption
    out2 = tmp_path / "r2"
    run(out2, spec(data, captions=str(file), caption="everyone else"))
    got2 = captions_of(out2, "tg-a")
    assert got2["a"] == "only for a" and got2["d"] == got2["e"] == "everyone else"


def test_captions_file_for_another_dataset_keeps_this_datasets_cells(tmp_path, data):
    dataset(tmp_path, "capt-two", {i: [f"two {i}"] for i in ("p", "q")}, ids=("p", "q"))
    file = tmp_path / "two.jsonl"
    file.write_text(json.dumps({"id": "p", "caption": "p override", "dataset": "capt-two"}) + "\n")
    out = tmp_path / "r"
    s = spec(data, datasets=("capt-test", "capt-two"))
    run(out, s)
    before = {(c["dataset"], c["method"]): c["fingerprint"] for c in load_cells(out)}
    lines = run(out, spec(data, datasets=("capt-test", "capt-two"), captions=str(file)))
    recomputed = {tuple(line.split()[0:3:2]) for line in lines if line.startswith("capt-") and "(cached)" not in line}
    assert recomputed == {("capt-two", "tg-a"), ("capt-two", "tg-b")}
    after = {(c["dataset"], c["method"]): c["fingerprint"] for c in load_cells(out)}
    assert {k for k in after if after[k] != before[k]} == recomputed
    df = load_scores(out)
    two = df[(df["dataset"] == "capt-two") & (df["method"] == "tg-a")].set_index("image")["caption"]
    assert two["p"] == "p override" and two["q"] == "two q"


@pytest.mark.parametrize("lines, expected", [
    (None, "captions file not found"),
    (['{"id": "a", "caption": "ok"}', '{"id": "b", "caption": '], "line 2: not valid JSON"),
    (['["a", "b"]'], "line 1: expected a JSON object"),
    (['{"id": "a", "caption": "x"}', '{"id": "zzz", "caption": "x"}'], "line 2: id 'zzz' is in no dataset of the run"),
    (['{"id": "aa", "caption": "x"}'], "did you mean 'a'?"),
    (['{"id": "a", "caption": "x", "dataset": "coco"}'], "line 1: dataset 'coco' is not in this run"),
    (['{"id": "a", "caption": "x", "captions": ["y"]}'], "line 1: give either \"caption\""),
    (['{"id": "a"}'], "found neither"),
    (['{"id": "a", "captions": []}'], "non-empty list of texts"),
    (['{"id": "a", "captions": ["ok", 3]}'], "non-empty list of texts"),
    (['{"id": "a", "caption": 3}'], "\"caption\" must be text"),
    (['{"id": null, "caption": "x"}'], "\"id\" must be the image id"),
    (['{"id": "a", "text": "x", "caption": "y"}'], "unknown keys ['text']"),
    (['{"id": "a", "caption": "x"}', '{"id": "a", "caption": "y"}'], "line 2: id 'a' is given twice (first on line 1)"),
])
def test_bad_captions_files_are_one_line_errors_before_the_run(tmp_path, data, lines, expected):
    file = tmp_path / "bad.jsonl"
    if lines is not None:
        file.write_text("\n".join(lines) + "\n")
    with pytest.raises(SrbenchError) as e:
        run(tmp_path / "r", spec(data, captions=str(file)))
    assert expected in str(e.value) and str(file) in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "r").exists()  # refused before the run folder is made


def test_a_datasets_malformed_captions_file_is_a_one_line_error(tmp_path, data):
    from bench.run.datasets import Dataset, DatasetContentError

    path = data / "capt-test" / "captions.jsonl"
    path.write_text('{"id": "a", "captions": ["x"]}\n{"id": "b", "captions": "not a list"}\n')
    with pytest.raises(DatasetContentError, match=r"line 2: \"captions\" must be a list of texts") as e:
        Dataset("capt-test", data).items(2)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DatasetContentError):
        run(tmp_path / "r", spec(data))
    assert not (tmp_path / "r").exists()
    path.write_text('{"id": "a", "captions": ["x"]}\n{"id": "b", "captions": []}\n')  # b: no caption
    items = {it.id: it.captions for it in Dataset("capt-test", data).items(2)}
    assert items["a"] == ("x",) and items["b"] == () and items["c"] == ()
    path.write_text('{"id": "a", "captions": ["x"]}\n{"id": "a", "captions": ["y"]}\n')
    with pytest.raises(DatasetContentError, match="line 2: id 'a' is given twice"):
        Dataset("capt-test", data).items(2)


# -- images without a caption ---------------------------------------------------------------------


def test_text_guided_method_without_captions_records_unsupported_rows(tmp_path, data):
    dataset(tmp_path, "plain-test", captions=None, ids=("u", "v", "w"))
    s = spec(data, datasets=("plain-test",), methods=methods(("echo-text", "tg-a"), ("plain-fake", "plain")))
    out = tmp_path / "r"
    lines = run(out, s)
    df = load_scores(out)
    tg = df[df["method"] == "tg-a"]
    assert set(tg["status"]) == {"unsupported"} and set(tg["cause"]) == {"input"} and set(tg["image"]) == {"u", "v", "w"}
    assert tg["caption"].isna().all() and tg["value"].isna().all()
    assert set(tg["message"]) == {NO_CAPTION}  # one message: reports name it once for every cell
    assert NO_CAPTION.startswith("no caption for this image and no --caption/--captions; the method is text-guided")
    assert 'missing_caption="empty"' in NO_CAPTION
    assert "tg-a" not in RECEIVED  # never run without text
    assert set(df[df["method"] == "plain"]["status"]) == {"ok"}
    said = "\n".join(lines)
    assert f"!! plain-test x2 tg-a: 3 image(s) not run (u, v, w): {NO_CAPTION}" in said
    assert "3 UNSUPPORTED (no caption)" in said
    # kept by a rerun, also with --retry-errors: nothing can change while there is no caption
    for retry in ("auto", "errors"):
        again = run(out, s, retry=retry)
        assert all("(cached)" in line for line in again if line.startswith("plain-test")), again
    # captions added to the dataset: a plain rerun runs the images that now have one
    write_captions(data / "plain-test" / "captions.jsonl", {"u": ["u text"], "v": ["v text"]})
    again = run(out, s)
    got = captions_of(out, "tg-a")
    assert got == {"u": "u text", "v": "v text", "w": None}
    status = load_scores(out).query("method == 'tg-a'").groupby("image")["status"].first().to_dict()
    assert status == {"u": "ok", "v": "ok", "w": "unsupported"}
    assert any("1 image(s) not run (w)" in line for line in again)
    # a caption file edited since: the image whose caption changed is computed again
    write_captions(data / "plain-test" / "captions.jsonl", {"u": ["u text"], "v": ["v new"]})
    RECEIVED.clear()
    run(out, s)
    assert captions_of(out, "tg-a")["v"] == "v new" and RECEIVED["tg-a"] == [["v new"]]


def test_missing_caption_empty_runs_with_the_empty_prompt(tmp_path, data):
    dataset(tmp_path, "plain-test", captions=None, ids=("u", "v"))
    s = spec(data, datasets=("plain-test",), methods=methods(("echo-text", "tg-e", {"missing_caption": "empty"})))
    run(tmp_path / "r", s)
    df = load_scores(tmp_path / "r")
    assert set(df["status"]) == {"ok"} and set(df["caption"]) == {""}
    assert RECEIVED["tg-e"] == [[""], [""]]
    assert all("(cached)" in line for line in run(tmp_path / "r", s) if line.startswith("plain-test"))


def test_no_text_guided_method_says_the_override_is_unused(tmp_path, data):
    lines = run(tmp_path / "r", spec(data, methods=methods(("plain-fake", "plain")), caption="x"))
    assert any(line.startswith("!! --caption given, but no method of this run is text-guided") for line in lines)
    assert set(load_scores(tmp_path / "r")["caption"].tolist()) == {None}


# -- the method interface -------------------------------------------------------------------------


def test_upscale_text_for_text_guided_methods():
    lr = torch.rand(2, 3, 4, 5)
    m = EchoText("unit")
    assert m.upscale(lr, 2, text="one").shape == (2, 3, 8, 10)
    m.upscale(lr, 2, text=["first", "second"])
    m.upscale(lr, 2, text=("x", ""))
    assert RECEIVED["unit"] == [["one", "one"], ["first", "second"], ["x", ""]]
    with pytest.raises(MissingCaptionError, match="method 'echo-text' is text-guided and got no caption") as e:
        m.upscale(lr, 2)
    assert 'missing_caption="empty"' in str(e.value) and isinstance(e.value, SrbenchError)
    for bad, match in ((["only one"], "got 1 text\\(s\\) for a batch of 2"), (["a", 3], r"text\[1\] must be a str"),
                       (3, "text must be None, a str or a sequence"), (b"ab", "text must be None"),
                       (["a", "b", "c"], "got 3 text")):
        with pytest.raises(SrbenchError, match=match) as e:
            m.upscale(lr, 2, text=bad)
        assert "\n" not in str(e.value)
    empty = EchoText("empty", missing_caption="empty")
    empty.upscale(lr, 2)
    assert RECEIVED["empty"] == [["", ""]]
    wrong = EchoText("wrong", missing_caption="skip")
    with pytest.raises(SrbenchError, match="missing_caption must be one of 'unsupported', 'empty', got 'skip'"):
        wrong.upscale(lr, 2, text="x")
    assert m.provenance()["text_guided"] is True


def test_methods_that_are_not_text_guided_ignore_text():
    lr = torch.rand(1, 3, 4, 4)
    m = Plain("unit-plain")
    assert SRMethod.text_guided is False and SRMethod.missing_caption == "unsupported"
    a = m.upscale(lr, 2)
    b = m.upscale(lr, 2, text="ignored")
    c = m.upscale(lr, 2, text=["also", "ignored", "whatever the length"])
    assert torch.equal(a, b) and torch.equal(a, c)
    assert RECEIVED["unit-plain"] == [None, None, None]  # _upscale(lr, scale) as always
    assert "text_guided" not in m.provenance()  # the records of methods without text stay as they were


# -- spec, CLI, store -----------------------------------------------------------------------------


def test_spec_keys_and_digest():
    base = {"datasets": ["demo"], "scales": [4], "methods": ["bicubic"]}
    plain = RunSpec.from_dict(base).to_dict()
    assert "caption" not in plain and "captions" not in plain  # earlier run folders' digests stay
    d = RunSpec.from_dict({**base, "caption": "", "captions": "f.jsonl"}).to_dict()
    assert d["caption"] == "" and d["captions"] == "f.jsonl"
    for key, value, match in (("caption", 3, "caption must be a text, got 3"),
                              ("captions", ["a"], "captions must be the path of a JSON-lines captions file")):
        with pytest.raises(SrbenchError, match=match):
            RunSpec.from_dict({**base, key: value}, "run.toml")
    with pytest.raises(SrbenchError, match="captions must be the path"):
        RunSpec(("demo",), (4,), (MethodSpec("bicubic", "bicubic"),), captions="  ")


def test_cli_caption_flags(tmp_path, data, capsys):
    from bench.cli import main

    out = tmp_path / "r"
    args = ["run", "--datasets", "capt-test", "--scales", "2", "--methods", "echo-text", "--metrics", "psnr",
            "--data-root", str(data), "--device", "cpu", "--out", str(out), "--no-progress", "--no-report"]
    assert main(args + ["--caption", "a red double-decker bus"]) == 0
    assert set(load_scores(out)["caption"]) == {"a red double-decker bus"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "nope", "caption": "x"}\n')
    capsys.readouterr()
    assert main(args + ["--captions", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("srbench: error: ") and f"{bad} line 1: id 'nope'" in err and "\n" not in err


def test_old_rows_without_the_caption_column_still_load(tmp_path):
    from bench.run.store import SCORE_COLUMNS

    old = pd.DataFrame([{"dataset": "d", "degradation": "x2", "scale": 2, "method": "m", "image": "i",
                         "metric": "psnr", "value": 30.0, "protocol": "basicsr", "status": "ok", "message": "",
                         "cause": ""}])
    cell = tmp_path / "run" / "cells" / "d" / "x2" / "m"
    cell.mkdir(parents=True)
    old.to_parquet(cell / "part-00000.parquet", index=False)
    (cell / "cell.json").write_text(json.dumps({"fingerprint": "f", "status": "done"}))
    df = load_scores(tmp_path / "run")
    assert list(df.columns) == SCORE_COLUMNS and df["caption"].tolist() == [None]
    mixed = score_frame([{"dataset": "d", "degradation": "x2", "scale": 2, "method": "m", "image": "i",
                          "metric": "psnr", "value": 1.0, "protocol": "p", "status": "ok", "message": "", "cause": "",
                          "caption": "hi"}, {**old.iloc[0].to_dict(), "caption": np.nan}])
    assert mixed["caption"].tolist() == ["hi", None]


# -- the Multi-Modal-CelebA-HQ manifest -----------------------------------------------------------


def test_celeba_mm_manifest():
    from bench.run.datasets import Dataset, get_manifest, list_datasets

    assert "celeba-mm" in list_datasets()
    m = get_manifest("celeba-mm")
    assert m.folder == "celeba_mm" and m.captions == "captions.jsonl" and m.count == 30000 and m.hub is None
    assert "TediGAN" in m.path.read_text() and "non-commercial research" in m.licence
    with pytest.raises(SrbenchError, match="https://github.com/IIGROUP/MM-CelebA-HQ-Dataset"):
        Dataset("celeba-mm", "/nonexistent-srbench-root").items(4)


@pytest.mark.skipif(not (SHARED_DATA / "celeba_mm" / "captions.jsonl").is_file(), reason="no shared celeba_mm copy")
def test_celeba_mm_sample_has_ten_captions_per_image():
    from bench.run.datasets import Dataset

    items = Dataset("celeba-mm", SHARED_DATA).items(4)
    assert len(items) == 40 and all(len(it.captions) == 10 for it in items[:4])
    assert all(isinstance(c, str) and c for it in items for c in it.captions)


def test_report_grids_rebuild_a_text_guided_output_with_the_recorded_caption(tmp_path, data):
    from bench.report.grids import sr_image

    run(tmp_path / "r0", spec(data))
    RECEIVED.clear()
    img = sr_image(tmp_path / "r0", "capt-test", "x2", "tg-a", "c", data_root=data)
    assert img is not None and img.shape == (24, 24, 3)  # the HR size
    assert RECEIVED["tg-a"] == [[pick_caption(tuple(CAPTIONS["c"]), 0, "c")]]
