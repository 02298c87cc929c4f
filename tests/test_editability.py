"""Editability (issue 15): contrasting captions, the judge's similarity moves, LPIPS between the two
outputs, and the true-vs-mismatched caption margin, checked against an independent computation on a
fake text-guided method and a fake judge whose numbers are known."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bench.run.editability import SWAPS, Judge, editability, swap_caption, write
from bench.run.runner import pick_caption
from iqa.errors import SrbenchError
from sr_methods.base import SRMethod
from tests.helpers import photo, write_manifest

CAPS = {"a": ["A red bus on a street"], "b": ["a cat on a sofa"], "c": ["a view of the hills"],
        "d": ["A man and his dog", "a man walking his dog"]}


class Redder(SRMethod):
    """Nearest-neighbour upscaling, red channel raised by 0.2 when the caption says "red"."""

    name = "redder"
    text_guided = True

    def _upscale(self, lr, scale, texts):
        out = F.interpolate(lr, scale_factor=scale, mode="nearest")
        bump = torch.tensor([0.2 if "red" in t.lower() else 0.0 for t in texts])[:, None, None]
        return torch.cat([out[:, :1] + bump, out[:, 1:]], 1)


def fake_judge() -> Judge:
    """Image embedding (mean R, mean G + B, 0.1); text embedding (1 if "red" else 0, 1, 0.1)."""
    def image(x):
        return torch.stack([x[:, 0].mean((1, 2)), x[:, 1:].mean((1, 2, 3)) * 2, torch.full((x.shape[0],), 0.1)], 1)

    def text(ts):
        return torch.tensor([[1.0 if "red" in t.lower() else 0.0, 1.0, 0.1] for t in ts])

    return Judge(image, text, 16, {"judge": "fake"})


def test_swap_caption_replaces_every_contrasting_word_and_keeps_case():
    assert swap_caption("A red bus and a White car.") == "A blue train and a Black boat."
    assert swap_caption("A man and his dog") == "A woman and her cat"
    assert swap_caption("a view of the hills") is None
    assert all(SWAPS[w] in SWAPS for w in ("red", "man", "dog", "bus"))  # both directions listed


def test_editability_against_an_independent_computation(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_MANIFESTS", str(tmp_path / "manifests"))
    write_manifest(tmp_path / "manifests", "ed-test", 'folder = "ed"\ncaptions = "captions.jsonl"\n[layout]\nhr = "HR/*"\n')
    hr = tmp_path / "data" / "ed" / "HR"
    hr.mkdir(parents=True)
    for k, i in enumerate(CAPS):
        Image.fromarray(photo(32, 32, seed=k)).save(hr / f"{i}.png")
    (tmp_path / "data" / "ed" / "captions.jsonl").write_text(
        "".join(json.dumps({"id": i, "captions": c}) + "\n" for i, c in CAPS.items()))
    judge, method = fake_judge(), Redder()
    res = editability(method, "ed-test", 2, judge, n=10, seed=3, data_root=tmp_path / "data", echo=lambda _: None)
    assert [r["image"] for r in res["swaps"]] == ["a", "b", "d"]  # "c" has no swappable word
    row = res["swaps"][0]
    assert row["caption"] == "A red bus on a street" and row["swapped"] == "A blue train on a street"
    # independently: the output with the swapped caption lost its red bump, so it moved toward "blue"
    from bench.run.datasets import Dataset
    from bench.run.degradations import derive_seed, parse_degradation
    from bench.run.io import read_image

    it = next(x for x in Dataset("ed-test", tmp_path / "data").items(2) if x.id == "a")
    deg = parse_degradation("x2")
    _, lr = deg.apply(read_image(it.hr)[None], seed=derive_seed(3, "a", deg.key))
    lr = (lr.clamp(0, 1) * 255).round() / 255
    o1, o2 = method.upscale(lr, 2, text=row["caption"]), method.upscale(lr, 2, text=row["swapped"])

    def s(o, t):
        return float(judge.similarity(o, [t])[0])

    want = (s(o2, row["swapped"]) - s(o2, row["caption"])) - (s(o1, row["swapped"]) - s(o1, row["caption"]))
    assert row["move"] == pytest.approx(want, abs=1e-6) and want > 0
    # "b", "d" have no "red" either way: the output does not change, nothing moves
    assert res["swaps"][1]["move"] == pytest.approx(0.0, abs=1e-6)
    # the match margin: each image's output with its own caption against the next image's caption
    assert [m["image"] for m in res["matches"]] == ["a", "b", "c", "d"]
    assert res["matches"][0]["mismatched"] == pick_caption(CAPS["b"], 3, "b")
    assert res["match"]["n"] == 4 and res["move"]["n"] == 3 and res["lpips"] is None
    # the match gain: the margin of the captioned output minus that of the empty caption's output
    m0 = res["matches"][0]
    e = method.upscale(lr, 2, text="")
    want_gain = (s(o1, m0["caption"]) - s(o1, m0["mismatched"])) - (s(e, m0["caption"]) - s(e, m0["mismatched"]))
    assert m0["gain"] == pytest.approx(want_gain, abs=1e-6) and want_gain > 0
    assert res["matches"][1]["gain"] == pytest.approx(0.0, abs=1e-6)  # no "red": the text changes nothing
    path = write([res], tmp_path / "out")
    assert json.loads(path.read_text())[0]["judge"] == {"judge": "fake"}


def test_editability_refuses_methods_without_text(tmp_path):
    class Plain(SRMethod):
        name = "plain"

    with pytest.raises(SrbenchError, match="not text-guided"):
        editability(Plain(), "ed-test", 2, fake_judge(), data_root=tmp_path)


def test_report_section_reads_editability_json(tmp_path):
    from bench.report.editability import editability_markdown, load_editability

    res = {"method": "m", "dataset": "coco", "scale": 4, "judge": {"judge": "aligner:x"},
           "move": {"mean": 0.01, "lo": -0.002, "hi": 0.02, "n": 10}, "lpips": {"mean": 0.05, "lo": 0.04, "hi": 0.06},
           "match": {"mean": 0.03, "lo": 0.01, "hi": 0.05, "n": 40}}
    write([res], tmp_path / "run")
    md = editability_markdown(load_editability([tmp_path / "run", tmp_path / "none"]))
    assert "## Editability" in md and "+0.0100 [-0.0020, +0.0200] (n=10)" in md and "0.0500 [0.0400, 0.0600]" in md
    assert editability_markdown([]) == ""
