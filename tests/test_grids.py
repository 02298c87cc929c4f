"""Visual comparison grids (bench.report.grids) on real tiny runs of the built-in demo dataset."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from bench.report import grids
from bench.run.runner import Runner
from bench.run.spec import MethodSpec, RunSpec
from bench.run.store import load_scores
from tests.helpers import photo, write_manifest

METHODS = ("bicubic", "nearest", "bilinear")
SAFE_FILE = re.compile(r"^[A-Za-z0-9._+-]+$")


def run(out, save_sr: bool, **kw):
    base = dict(datasets=("demo",), scales=(4,), methods=tuple(MethodSpec(m, m) for m in METHODS),
                metrics=("psnr",), save_sr=save_sr, device="cpu", limit=3)  # astronaut, chelsea, coffee
    base.update(kw)
    Runner(RunSpec(**base), out, echo=lambda s: None, progress=False, fetch=False).run()
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the machine's 2 cores are shared, and contended threads run ~3x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("grid-runs")
    saved = run(root / "saved", True)
    # the second run reuses the first one's LR cache (the same LR images; saves time on 2 cores),
    # and keeps no SR images: sr_image must rebuild them
    shutil.copytree(saved / "lr", root / "plain" / "lr")
    return {"saved": saved, "plain": run(root / "plain", False)}


def svg_texts(path) -> str:
    root = ET.parse(path).getroot()  # raises on invalid XML
    return " ".join("".join(el.itertext()) for el in root.iter() if el.tag.endswith("}text"))


def test_saved_and_rebuilt_sr_images_are_identical(runs, tmp_path):
    saved_run, plain_run = runs["saved"], runs["plain"]
    assert (saved_run / "sr").is_dir() and not (plain_run / "sr").exists()
    # a third run folder: only the manifest, so the LR image is recomputed from HR as the runner does
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "manifest.json").write_text((plain_run / "manifest.json").read_text())
    for method in ("bicubic", "nearest"):
        png = saved_run / "sr" / "demo" / "x4" / method / "chelsea.png"
        direct = np.asarray(Image.open(png).convert("RGB"))
        saved = grids.sr_image(saved_run, "demo", "x4", method, "chelsea")
        rebuilt = grids.sr_image(plain_run, "demo", "x4", method, "chelsea")  # from the cached LR
        from_hr = grids.sr_image(bare, "demo", "x4", method, "chelsea")  # from HR
        for arr in (saved, rebuilt, from_hr):
            assert arr.dtype == np.uint8 and arr.shape == direct.shape
            np.testing.assert_array_equal(arr, direct)  # bit-exact
    hr = grids.hr_image(plain_run, "demo", "x4", "chelsea")
    assert hr.dtype == np.uint8 and hr.shape == direct.shape
    import skimage.data

    full = skimage.data.chelsea()
    assert full.shape[:2] != hr.shape[:2]  # 300x451: modcrop to 300x448
    np.testing.assert_array_equal(hr, full[: full.shape[0] // 4 * 4, : full.shape[1] // 4 * 4])
    # bicubic and nearest differ (otherwise the comparison above proves little)
    assert not np.array_equal(grids.sr_image(saved_run, "demo", "x4", "bicubic", "chelsea"), direct)


def test_sr_image_says_why_it_has_none(runs, tmp_path):
    manifest = json.loads((runs["plain"] / "manifest.json").read_text())
    manifest["spec"]["methods"].append({"name": "craft-x4", "label": "craft", "options": {}})
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps(manifest))
    why: list[str] = []
    assert grids.sr_image(other, "demo", "x4", "craft", "chelsea", messages=why) is None
    assert len(why) == 1 and "craft" in why[0] and "cannot be built" in why[0]
    assert grids.sr_image(other, "demo", "x4", "no-such-label", "chelsea", messages=why) is None
    assert "not in the run's manifest" in why[1]


def test_select_images_picks_the_largest_spread(runs):
    scores = load_scores(runs["plain"])
    psnr = scores[(scores["metric"] == "psnr") & (scores["status"] == "ok")]
    table = psnr.pivot(index="image", columns="method", values="value")
    assert table.shape == (3, 3)
    spread = table.max(axis=1) - table.min(axis=1)
    picks = grids.select_images(scores, "psnr", per_cell=2)
    assert list(picks["image"]) == list(spread.sort_values(ascending=False).index[:2])
    assert picks["spread"].iloc[0] == pytest.approx(spread.max())
    assert (picks["n_methods"] == 3).all()


def brute_force_window(srs: list[np.ndarray], crop: int) -> tuple[tuple[int, int], float, np.ndarray]:
    """Every window position scored directly: mean over the window of the across-method variance
    of the pixel values (averaged over RGB)."""
    var = np.stack([a.astype(np.float64) for a in srs]).var(axis=0).mean(axis=2)
    H, W = var.shape
    h, w = min(crop, H), min(crop, W)
    means = np.array([[var[y:y + h, x:x + w].mean() for x in range(W - w + 1)] for y in range(H - h + 1)])
    y, x = np.unravel_index(np.argmax(means), means.shape)
    return (int(y), int(x)), float(means.max()), means


def test_best_window_matches_brute_force():
    rng = np.random.default_rng(3)
    H, W = 23, 31
    srs = [rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8) for _ in range(3)]
    srs[1][5:12, 17:26] = 255 - srs[0][5:12, 17:26]  # a region where two methods disagree strongly
    for crop in (1, 4, 7, 10, 23, 50):
        dmap, rule = grids.disagreement_map(srs)
        assert rule == "variance" and dmap.dtype == np.int64
        y, x, h, w = grids.best_window(dmap, crop)
        (by, bx), best, means = brute_force_window(srs, crop)
        assert (h, w) == (min(crop, H), min(crop, W))
        assert 0 <= y <= H - h and 0 <= x <= W - w
        assert (y, x) == (by, bx)
        # the integral-image sums are the brute-force means times 3 M^2 h w, exactly
        np.testing.assert_allclose(grids.window_sums(dmap, h, w) / (3 * 9 * h * w), means, rtol=1e-12)
    # identical outputs: the window with the largest error to HR is chosen instead
    hr = srs[2].copy()
    hr[15:20, 2:6] = 255 - hr[15:20, 2:6]
    dmap, rule = grids.disagreement_map([srs[2], srs[2].copy()], hr)
    assert rule == "error" and grids.best_window(dmap, 4) == (15, 2, 4, 4)


def test_comparison_grid_of_a_run(runs, tmp_path):
    scores = load_scores(runs["plain"])
    infos = grids.comparison_grids(runs["plain"], scores, tmp_path / "plain", crop=64)
    assert len(infos) == 1
    info = infos[0]
    assert info.png.is_file() and info.svg.is_file() and SAFE_FILE.match(info.png.name)
    with Image.open(info.png) as im:
        assert im.format == "PNG" and im.width >= 800 and im.height >= 200
    # the image: the largest PSNR spread, computed here independently
    psnr = scores[scores["metric"] == "psnr"].pivot(index="image", columns="method", values="value")
    image = (psnr.max(axis=1) - psnr.min(axis=1)).idxmax()
    data = info.data
    assert set(data["image"]) == {image} and list(data["method"]) == list(METHODS)
    assert f"image {image}" in info.caption and "x4" in info.caption and "largest" in info.caption
    assert "Y channel" in info.caption
    # the window lies inside the scored region (the image less the 4-pixel border basicsr shaves at
    # x4) and beats every candidate window there scored directly
    y, x, h, w = (int(data[k].iloc[0]) for k in ("crop_y", "crop_x", "crop_h", "crop_w"))
    srs = [grids.sr_image(runs["saved"], "demo", "x4", m, image) for m in METHODS]
    H, W = srs[0].shape[:2]
    b = 4
    assert (h, w) == (64, 64) and b <= y <= H - h - b and b <= x <= W - w - b and (data["border"] == b).all()
    assert f"x={x}, y={y}" in info.caption and "the 4-pixel border the basicsr protocol shaves" in info.caption
    var = np.stack([a.astype(np.float64) for a in srs]).var(axis=0).mean(axis=2)
    chosen = var[y:y + h, x:x + w].mean()
    cand = [(cy, cx) for cy in range(b, H - h - b + 1, 7) for cx in range(b, W - w - b + 1, 7)]
    cand += [(min(max(y + dy, b), H - h - b), min(max(x + dx, b), W - w - b)) for dy in (-1, 0, 1)
             for dx in (-1, 0, 1)]
    assert all(chosen >= var[cy:cy + h, cx:cx + w].mean() - 1e-9 for cy, cx in cand)
    # panel scores are the crop's PSNR on Y
    from bench.run.io import to_tensor
    from iqa.fr import psnr as psnr_fn

    hr = grids.hr_image(runs["plain"], "demo", "x4", image)
    for m, sr in zip(METHODS, srs):
        want = float(psnr_fn(to_tensor(sr[y:y + h, x:x + w]).unsqueeze(0).double(),
                             to_tensor(hr[y:y + h, x:x + w]).unsqueeze(0).double(), y_channel=True)[0])
        assert data.set_index("method").loc[m, "crop_psnr_y"] == pytest.approx(want)
    texts = svg_texts(info.svg)
    for label in (*METHODS, "HR", "PSNR-Y", "SSIM-Y", f"crop at ({x}, {y})"):
        assert label in texts
    # the same grid from the run that saved its SR images
    again = grids.comparison_grids(runs["saved"], load_scores(runs["saved"]), tmp_path / "saved", crop=64)
    cols = ["image", "method", "crop_y", "crop_x", "crop_psnr_y", "crop_ssim_y"]
    assert again[0].data[cols].equals(data[cols])
    assert again[0].svg.read_bytes() == info.svg.read_bytes()  # reproducible, saved == rebuilt
    assert again[0].png.read_bytes() == info.png.read_bytes()


def test_best_window_stays_inside_the_shaved_border():
    dmap = np.zeros((40, 50), np.int64)
    dmap[:4, :4] = 1000  # the methods differ most in the corner, inside the border a protocol shaves
    dmap[20:28, 30:38] = 10
    assert grids.best_window(dmap, 8) == (0, 0, 8, 8)
    assert grids.best_window(dmap, 8, border=4) == (20, 30, 8, 8)
    y, x, h, w = grids.best_window(dmap, 64, border=4)  # clipped to the 32x42 scored region
    assert (y, x, h, w) == (4, 4, 32, 42)
    assert grids.best_window(dmap, 8, border=25) == (0, 0, 8, 8)  # nothing would be left: whole image
    with pytest.raises(Exception, match="border"):
        grids.best_window(dmap, 8, border=-1)
    assert grids.scored_border("basicsr", 4) == 4 and grids.scored_border("rgb-noshave", 4) == 0
    assert grids.scored_border(None, 8) == 8 and grids.scored_border("no-such-protocol", 2) == 2


def test_comparison_crops_avoid_the_shaved_border(runs, tmp_path, monkeypatch):
    """Real outputs differ most at the image edges; the grid must not show a crop there."""
    original = grids.disagreement_map

    def edge_heavy(srs, hr=None):
        d, rule = original(srs, hr)
        d = d.copy()
        d[:4, :] += 10 ** 9  # the top 4 rows: the border basicsr shaves at x4
        d[:, :4] += 10 ** 9
        return d, rule

    monkeypatch.setattr(grids, "disagreement_map", edge_heavy)
    infos = grids.comparison_grids(runs["plain"], load_scores(runs["plain"]), tmp_path / "g", crop=32)
    data = infos[0].data
    H, W = grids.hr_image(runs["plain"], "demo", "x4", data["image"].iloc[0]).shape[:2]
    assert (data["crop_y"] >= 4).all() and (data["crop_x"] >= 4).all()
    assert (data["crop_y"] + data["crop_h"] <= H - 4).all() and (data["crop_x"] + data["crop_w"] <= W - 4).all()
    assert "inside the scored region" in infos[0].caption


def test_odd_image_ids_give_safe_files_and_literal_labels(tmp_path, monkeypatch):
    man = tmp_path / "manifests"
    write_manifest(man, "odd-ids", '[layout]\nhr = "HR/*"\n')
    monkeypatch.setenv("SRBENCH_MANIFESTS", str(man))
    hr_dir = tmp_path / "data" / "odd-ids" / "HR"
    hr_dir.mkdir(parents=True)
    odd = "a<b>&\"q' $x$"
    Image.fromarray(photo(48, 64, 1)).save(hr_dir / f"{odd}.png")
    Image.fromarray(photo(48, 64, 2)).save(hr_dir / "plain.png")
    out = run(tmp_path / "run", False, datasets=("odd-ids",), scales=(2,), methods=(MethodSpec("bicubic", "b<i>"),
                                                                                   MethodSpec("nearest", "n&n")),
              data_root=str(tmp_path / "data"))
    scores = load_scores(out)
    infos = grids.comparison_grids(out, scores, tmp_path / "grids", per_cell=2, crop=96)
    assert len(infos) == 2
    for info in infos:
        assert SAFE_FILE.match(info.png.name) and SAFE_FILE.match(info.svg.name)
        assert info.png.parent == tmp_path / "grids"
        raw = info.svg.read_text()
        assert "<i>" not in raw and "<b>" not in raw and "b&lt;i&gt;" in raw  # names are escaped text
        texts = svg_texts(info.svg)
        assert "b<i>" in texts and "n&n" in texts
        # clipped to the scored region: the 48x64 image less the 2-pixel border basicsr shaves at x2
        assert (info.data["crop_h"] == 44).all() and (info.data["crop_w"] == 60).all()
        assert (info.data["crop_y"] == 2).all() and (info.data["crop_x"] == 2).all()
    odd_info = next(i for i in infos if odd in i.caption)
    assert odd in svg_texts(odd_info.svg)  # shown literally, "$x$" not turned into mathtext
    assert grids.comparison_grids(out, scores.iloc[0:0], tmp_path / "none") == []
