"""`srbench score` (bench/nr/score.py) with toy no-reference metrics registered for the test."""

import argparse
import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.run.io import read_image
from bench.cli import main as cli_main
from bench.nr.score import COLUMNS, add_score_parser, cmd_score, tile_boxes
from iqa.base import Metric, MetricInfo
from iqa.catalogue import METRICS
from iqa.errors import SrbenchError
from iqa.registry import Entry
from tests.helpers import photo

CALLS: list[tuple] = []  # (metric, batch shape) of every metric call


class Brightness(Metric):
    """Mean brightness; records its calls."""

    info = MetricInfo("toy-bright", "nr", True, (0.0, 1.0), "mean brightness (test)")
    min_size = 1
    tileable = True

    def score(self, x, ref=None, *, scale, gray=False):
        CALLS.append((self.info.name, tuple(x.shape)))
        return x.mean(dim=(1, 2, 3)).double()


class Picky(Brightness):
    """Fails on any batch holding a constant image; needs 36x36 at least; no tiling."""

    info = MetricInfo("toy-picky", "nr", True, (0.0, 1.0), "picky (test)")
    min_size = 36
    tileable = False

    def score(self, x, ref=None, *, scale, gray=False):
        CALLS.append((self.info.name, tuple(x.shape)))
        if (x.flatten(1).amax(1) == x.flatten(1).amin(1)).any():
            raise SrbenchError("constant image")
        return x.mean(dim=(1, 2, 3)).double()


class Interrupting(Brightness):
    info = MetricInfo("toy-interrupt", "nr", True, (0.0, 1.0), "stops on its second call (test)")

    def score(self, x, ref=None, *, scale, gray=False):
        CALLS.append((self.info.name, tuple(x.shape)))
        if sum(c[0] == "toy-interrupt" for c in CALLS) == 2:
            raise KeyboardInterrupt
        return x.mean(dim=(1, 2, 3)).double()


@pytest.fixture(autouse=True)
def _toys(monkeypatch):
    CALLS.clear()
    for cls in (Brightness, Picky, Interrupting):
        name = cls.info.name
        monkeypatch.setitem(METRICS._entries, name, Entry(name, lambda protocol=None, cls=cls, **kw: cls(**kw), {
            "kind": "nr", "higher_better": True, "range": (0.0, 1.0), "backbone": None}))


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    good = {
        "a.png": photo(40, 48, 1), "b.png": photo(40, 48, 2), "c.jpg": photo(40, 48, 3),  # three of 48x40
        "d.png": photo(32, 32, 4), "e.bmp": photo(32, 32, 5),  # two of 32x32
        "f.png": photo(50, 70, 6),  # one of 70x50
    }
    for name, arr in good.items():
        save(d / name, arr)
    buf = io.BytesIO()
    Image.fromarray(photo(40, 48, 7)).save(buf, format="PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "text.png").write_text("not an image, only named like one\n")
    (d / "notes.txt").write_text("ignored: not an image extension\n")
    save(d / "sub" / "g.png", photo(40, 48, 8))  # only with --recursive
    return d


def run(args, capsys):
    rc = cli_main(["score", *(str(a) for a in args), "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rows_scores_batches_and_bad_files(folder, tmp_path, capsys):
    out_csv = tmp_path / "out" / "scores.csv"
    rc, out, err = run([folder, tmp_path / "missing.png", "--metric", "toy-bright", "--csv", out_csv,
                        "--batch-size", "2"], capsys)
    assert rc == 1  # three paths could not be scored
    rows = read_csv(out_csv)
    assert tuple(rows[0]) == COLUMNS
    ok = {Path(r["path"]).name: r for r in rows if r["status"] == "ok"}
    assert sorted(ok) == ["a.png", "b.png", "c.jpg", "d.png", "e.bmp", "f.png"]  # one row per good image
    for name, r in ok.items():
        x = read_image(folder / name)
        assert (int(r["width"]), int(r["height"])) == (x.shape[2], x.shape[1])
        assert float(r["score"]) == pytest.approx(float(x.mean()), abs=1e-6)
        assert r["metric"] == "toy-bright" and r["message"] == ""
    bad = {Path(r["path"]).name: r for r in rows if r["status"] != "ok"}
    assert sorted(bad) == ["missing.png", "text.png", "truncated.png"]
    assert all(r["status"] == "unreadable" for r in bad.values())
    assert bad["missing.png"]["message"] == "no such file or folder"
    assert all(r["score"] == "" for r in bad.values())
    assert "truncated" in bad["truncated.png"]["message"]
    # each bad file: one line on stderr naming it; the run went on
    for name in ("truncated.png", "text.png", "missing.png"):
        assert sum(name in line for line in err.splitlines()) == 1
    # batched by size, at most 2 per call: 48x40 -> 2 + 1, 32x32 -> 2, 70x50 -> 1
    assert sorted(shape for _, shape in CALLS) == sorted([(2, 3, 40, 48), (1, 3, 40, 48), (2, 3, 32, 32),
                                                          (1, 3, 50, 70)])
    # the table on stdout: header and one line per row
    lines = out.strip().splitlines()
    assert lines[0].split() == list(COLUMNS) and len(lines) == 2 + len(rows)
    assert "/g.png" not in out  # sub-folders only with --recursive


def test_recursive_resize_and_exit_code_zero(folder, tmp_path, capsys):
    (folder / "truncated.png").unlink()
    (folder / "text.png").unlink()
    rc, out, err = run([folder, "--metric", "toy-bright", "--recursive", "--resize", "20", "--csv", tmp_path / "o.csv"],
                       capsys)
    assert rc == 0, err
    rows = read_csv(tmp_path / "o.csv")
    assert len(rows) == 7 and {Path(r["path"]).name for r in rows} >= {"g.png"}
    # shorter side resized to 20, aspect kept; the rows keep the files' own sizes
    assert {shape[2:] for _, shape in CALLS} == {(20, 24), (20, 20), (20, 28)}
    f = next(r for r in rows if r["path"].endswith("f.png"))
    assert (f["width"], f["height"], f["message"]) == ("70", "50", "resized to 28x20")


def test_tiles_give_the_mean_of_tile_scores(tmp_path, capsys):
    img = save(tmp_path / "big.png", photo(60, 100, 9))
    rc, out, err = run([img, "--metric", "toy-bright", "--metric", "toy-picky", "--tile", "32", "--csv",
                        tmp_path / "o.csv"], capsys)
    assert rc == 0, err
    rows = {r["metric"]: r for r in read_csv(tmp_path / "o.csv")}
    x = read_image(img)
    boxes = tile_boxes(60, 100, 32)
    assert len(boxes) == 2 * 4 and {(b[2], b[3]) for b in boxes} == {(32, 32)}
    assert boxes[-1][0] + 32 == 60 and boxes[-1][1] + 32 == 100  # the last tiles end at the border
    expected = np.mean([float(x[:, t:t + h, c:c + w].mean()) for t, c, h, w in boxes])
    assert float(rows["toy-bright"]["score"]) == pytest.approx(expected, abs=1e-6)
    assert "mean of 8 tiles of 32x32" in rows["toy-bright"]["message"]
    # a metric that does not allow tiling scores the whole image, and says so
    assert float(rows["toy-picky"]["score"]) == pytest.approx(float(x.mean()), abs=1e-6)
    assert "not tiled" in rows["toy-picky"]["message"]
    assert ("toy-picky", (1, 3, 60, 100)) in CALLS


def test_failing_batches_are_retried_per_image_and_small_images_skipped(folder, tmp_path, capsys):
    save(folder / "flat.png", np.full((40, 48, 3), 128, np.uint8))  # toy-picky fails on it
    rc, out, err = run([folder, "--metric", "toy-picky", "--csv", tmp_path / "o.csv"], capsys)
    assert rc == 1
    rows = {Path(r["path"]).name: r for r in read_csv(tmp_path / "o.csv")}
    assert rows["flat.png"]["status"] == "error" and "constant image" in rows["flat.png"]["message"]
    for name in ("a.png", "b.png", "c.jpg", "f.png"):  # its batch neighbours kept their scores
        assert rows[name]["status"] == "ok"
    for name in ("d.png", "e.bmp"):  # 32x32 < the metric's 36x36
        assert rows[name]["status"] == "too-small" and "needs at least 36x36" in rows[name]["message"]
    assert "flat.png" in err and "d.png" in err
    # the 48x40 batch of four failed once, then each image alone
    assert [s for _, s in CALLS].count((4, 3, 40, 48)) == 1 and [s for _, s in CALLS].count((1, 3, 40, 48)) == 4


def test_interrupted_run_keeps_finished_rows(folder, tmp_path, capsys):
    rc, out, err = run([folder, "--metric", "toy-interrupt", "--csv", tmp_path / "o.csv"], capsys)
    assert rc == 130
    rows = read_csv(tmp_path / "o.csv")
    assert sum(r["status"] == "ok" for r in rows) >= 1  # the first batch's rows are in the CSV


def test_full_reference_and_unknown_metrics_are_refused(folder, capsys):
    rc, out, err = run([folder, "--metric", "psnr"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "full-reference" in err and "toy-bright" in err
    rc, out, err = run([folder, "--metric", "toy-brigth"], capsys)
    assert rc == 2 and "did you mean 'toy-bright'" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        cli_main(["score", str(folder)])  # --metric is required


def test_sub_command_for_the_cli(folder, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="srbench")
    add_score_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["score", str(folder / "a.png"), str(folder / "d.png"), "--metric", "toy-bright",
                              "--batch-size", "4", "--device", "cpu", "--no-progress"])
    assert args.command == "score" and args.batch_size == 4 and args.tile is None and args.resize is None
    assert cmd_score(args) == 0
    out = capsys.readouterr().out
    assert "a.png" in out and "d.png" in out
    with pytest.raises(SrbenchError, match="no images found"):
        cmd_score(parser.parse_args(["score", str(tmp_path), "--metric", "toy-bright"]))


def test_sfd_checkpoint_option_scores_with_a_trained_checkpoint(tmp_path, monkeypatch, capsys):
    """`--sfd-checkpoint` in `srbench score` and `srbench iqa eval`: a checkpoint trained on VGG16
    weights found in $SRBENCH_WEIGHTS (random ones here) scores as the metric object does."""
    import torch

    from iqa.semantic import build_backbone
    from iqa.sfd import SFD, SFDIQA, SFDConfig, save_sfd
    from iqa.weights import vgg16_features

    torch.manual_seed(0)
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save({f"features.{k}": v for k, v in vgg16_features().state_dict().items()},
               weights / "vgg16-397923af.pth")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(weights))
    import iqa.assets
    import iqa.weights

    # random weights under the official file name are refused unless their hash is the known one
    monkeypatch.setitem(iqa.weights.TORCHVISION_SHA256, "vgg16", iqa.assets.sha256_file(weights / "vgg16-397923af.pth"))
    model = SFD(SFDConfig(feat_width=8, feat_layers=2, patch=32), build_backbone("vgg16"))
    ckpt = save_sfd(model, tmp_path / "sfd.safetensors", {"steps": 0})
    img = save(tmp_path / "imgs" / "a.png", photo(48, 40, 3))
    rc, out, err = run([img, "--metric", "sfd-iqa-vgg16", "--sfd-checkpoint", ckpt, "--csv", tmp_path / "o.csv"],
                       capsys)
    assert rc == 0, err
    row = read_csv(tmp_path / "o.csv")[0]
    expect = float(SFDIQA(checkpoint=ckpt)(read_image(img)[None]))
    assert row["status"] == "ok" and float(row["score"]) == pytest.approx(expect, abs=1e-5)
    assert expect != pytest.approx(0.5, abs=1e-9)  # not a constant
    rc, out, err = run([img, "--metric", "niqe", "--sfd-checkpoint", ckpt], capsys)
    assert rc != 0 and "--sfd-checkpoint goes with an SFD-IQA metric" in err
    # iqa eval takes the same option
    from bench.nr.eval import add_eval_parser, cmd_eval

    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    args = parser.parse_args(["eval", "sfd-iqa-vgg16", "--sfd-checkpoint", str(ckpt), "--datasets", "demo",
                              "--images-per-dataset", "1", "--crop", "32", "--scales", "2", "--n-boot", "10",
                              "--no-plots", "--no-progress", "--out", str(tmp_path / "eval"), "--reference", "none"])
    assert cmd_eval(args) == 0
    import pandas as pd

    t = pd.read_csv(tmp_path / "eval" / "table.csv")
    assert list(t["metric"]) == ["sfd-iqa-vgg16"]
