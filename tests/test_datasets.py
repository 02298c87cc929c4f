import hashlib
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from PIL import Image

from bench.run import datasets as D
from iqa.errors import SrbenchError, UnknownNameError
from tests.helpers import paired_manifest, photo, write_manifest

REQUIRED = {"urban100", "set5", "set14", "bsd100", "manga109", "div2k-val", "realsr-canon", "acdc", "coco",
            "celeba-hq", "demo"}


def test_every_required_manifest_is_there_and_complete():
    names = set(D.list_datasets())
    assert REQUIRED <= names
    for name in REQUIRED:
        m = D.get_manifest(name)
        assert m.title and m.licence and m.homepage.startswith("http")
        assert m.hr_patterns(), name
        assert m.hub or m.builtin or "download" in D.Dataset(name).missing_error([]).args[0]
    assert D.get_manifest("realsr-canon").kind == "paired" and D.get_manifest("realsr-canon").scales == (2, 3, 4)
    assert D.get_manifest("coco").captions and D.get_manifest("celeba-hq").captions


def test_kodak24_validation_set_is_the_training_folder(shared_data):
    if not (shared_data / "train" / "kodak24").is_dir():
        pytest.skip("no train/kodak24 under the shared data")
    ds = D.Dataset("kodak24", shared_data)
    items = ds.items(4)
    assert len(items) == 24 and all(it.hr.parent == shared_data / "train" / "kodak24" for it in items)
    assert ds.check() == []


def test_datasets_folder_is_not_a_package_and_hf_datasets_imports():
    repo = Path(__file__).resolve().parents[1]
    assert not (repo / "datasets" / "__init__.py").exists()
    out = subprocess.run([sys.executable, "-c", "import datasets; print(datasets.load_dataset.__module__)"],
                         cwd=repo, capture_output=True, text=True, check=True).stdout
    assert out.startswith("datasets.")


def test_unknown_dataset_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'urban100'"):
        D.get_manifest("urban10")


def test_demo_is_builtin_real_photos():
    items = D.Dataset("demo").items(4)
    assert [i.id for i in items] == ["astronaut", "chelsea", "coffee", "motorcycle_left", "rocket"]
    assert all(i.hr.is_file() for i in items)


def test_missing_dataset_is_one_clear_line(tmp_path):
    with pytest.raises(D.DatasetMissingError) as e:
        D.Dataset("urban100", tmp_path).items(4)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(tmp_path / "urban100") in msg and "HR/*" in msg and "srbench data fetch urban100" in msg


def test_hr_mod_folders_serve_divisible_scales(tmp_path):
    for mod in (2, 3, 4):
        (tmp_path / "set5" / f"HR_mod{mod}").mkdir(parents=True)
        Image.fromarray(photo(48, 48)).save(tmp_path / "set5" / f"HR_mod{mod}" / "a.png")
    ds = D.Dataset("set5", tmp_path)
    assert {s: ds.items(s)[0].hr.parent.name for s in (2, 3, 4, 8, 16)} == {
        2: "HR_mod2", 3: "HR_mod3", 4: "HR_mod4", 8: "HR_mod4", 16: "HR_mod4"}
    with pytest.raises(D.DatasetMissingError, match="no HR images for x5"):
        ds.items(5)


def test_shared_layouts(shared_data):
    assert len(D.Dataset("urban100", shared_data).items(4)) == 100
    assert len(D.Dataset("set14", shared_data).items(3)) == 14
    fog = D.Dataset("acdc:fog", shared_data).items(4)
    assert len(fog) == 1 and dict(fog[0].meta)["condition"] == "fog"
    with pytest.raises(UnknownNameError, match="did you mean 'fog'"):
        D.Dataset("acdc:fgo", shared_data).items(4)


def test_paired_layout_and_check(tmp_path, monkeypatch):
    root = paired_manifest(tmp_path, monkeypatch, "pairs-test", [2], 2, extra="count = 2")
    for i in range(2):
        Image.fromarray(photo(32, 32, i)).save(root / f"c_{i}_HR.png")
        Image.fromarray(photo(16, 16, i)).save(root / f"c_{i}_LR2.png")
    ds = D.Dataset("pairs-test", tmp_path / "data")
    items = ds.items(2)
    assert [i.id for i in items] == ["c_0", "c_1"] and items[0].lr.name == "c_0_LR2.png"
    assert ds.check() == []
    with pytest.raises(SrbenchError, match="real pairs only at x2"):
        ds.items(4)


def test_check_reports_count_and_sha_mismatch(tmp_path, monkeypatch):
    man = tmp_path / "manifests"
    folder = tmp_path / "data" / "sha-test" / "HR"
    folder.mkdir(parents=True)
    Image.fromarray(photo()).save(folder / "a.png")
    good = hashlib.sha256((folder / "a.png").read_bytes()).hexdigest()
    write_manifest(man, "sha-test", f"""
        count = 2
        [layout]
        hr = "HR/*"
        [sha256]
        "HR/a.png" = "{'0' * 64}"
        """)
    monkeypatch.setenv("SRBENCH_MANIFESTS", str(man))
    problems = D.Dataset("sha-test", tmp_path / "data").check()
    assert any("1 images found" in p for p in problems)
    assert any(good in p and "0" * 64 in p for p in problems)


def test_fetch_archive_from_hub_with_local_files(tmp_path, monkeypatch):
    """The hub archive path, with huggingface_hub's download replaced by local tar files."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(photo(32, 32, i)).save(src / f"img_{i:03d}.png")
    archive = tmp_path / "Set5_HR.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname="Set5/HR")
    calls = []

    def fake_download(repo, filename, revision):
        calls.append((repo, filename))
        return archive

    folder, n = D.fetch("set5", tmp_path / "root", download=fake_download)
    assert calls == [("eugenesiow/Set5", f"data/Set5_{part}.tar.gz") for part in ("HR", "LR_x2", "LR_x3", "LR_x4")]
    assert n == 12 and sorted(p.name for p in (folder / "HR").iterdir()) == ["img_000.png", "img_001.png", "img_002.png"]
    assert len(D.Dataset("set5", tmp_path / "root").items(4)) == 3


def test_fetch_hf_datasets_parquet_with_captions(tmp_path, monkeypatch):
    """The Hugging Face `datasets` path, on a local parquet dataset of the COCO layout (no network)."""
    import datasets as hf

    repo = tmp_path / "hub-copy"
    (repo / "data").mkdir(parents=True)
    records = {"image": [], "file_name": [], "answer": []}
    for i in range(3):
        p = tmp_path / f"{i}.jpg"
        Image.fromarray(photo(40, 40, i)).save(p, quality=90)
        records["image"].append({"bytes": p.read_bytes(), "path": p.name})
        records["file_name"].append(f"0000{i}.jpg")
        records["answer"].append([f"caption {i} a", f"caption {i} b"])
    hf.Dataset.from_dict(records).cast_column("image", hf.Image()).to_parquet(str(repo / "data" / "val-00000.parquet"))
    man = tmp_path / "manifests"
    write_manifest(man, "coco-test", f"""
        captions = "captions.jsonl"
        [layout]
        hr = "HR/*"
        [hub]
        kind = "datasets"
        repo = "{repo}"
        split = "validation"
        image_column = "image"
        id_column = "file_name"
        caption_column = "answer"
        """)
    monkeypatch.setenv("SRBENCH_MANIFESTS", str(man))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    folder, n = D.fetch("coco-test", tmp_path / "root")
    assert n == 3
    items = D.Dataset("coco-test", tmp_path / "root").items(4)
    assert [i.id for i in items] == ["00000", "00001", "00002"]
    assert items[1].captions == ("caption 1 a", "caption 1 b")
    assert items[0].hr.read_bytes() == records["image"][0]["bytes"]  # original bytes, not re-encoded


def test_fetch_without_source_says_where_to_download(tmp_path):
    with pytest.raises(SrbenchError, match="download it from http://www.manga109.org"):
        D.fetch("manga109", tmp_path)


def test_bad_manifest_keys_raise(tmp_path, monkeypatch):
    man = tmp_path / "manifests"
    write_manifest(man, "bad-test", """
        colour = "blue"
        [layout]
        hr = "HR/*"
        """)
    monkeypatch.setenv("SRBENCH_MANIFESTS", str(man))
    with pytest.raises(SrbenchError, match="unknown manifest keys \\['colour'\\]"):
        D.list_datasets()


# -- issue 11: duplicate ids, symbolic link loops, scales without a copy, fetching offline, caches --


def _hr(tmp_path: Path, *names: str, folder: str = "HR") -> Path:
    hr = tmp_path / "set5" / folder
    hr.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(photo(40, 40, i)).save(hr / name)
    return hr


def test_duplicate_image_id_is_one_line_naming_both_files(tmp_path):
    hr = _hr(tmp_path, "a.png", "dupid.png", "dupid.bmp")
    with pytest.raises(SrbenchError) as e:
        D.Dataset("set5", tmp_path).items(4)
    msg = str(e.value)
    assert type(e.value).__name__ == "DatasetContentError"
    assert "\n" not in msg and "'dupid'" in msg, msg
    assert str(hr / "dupid.bmp") in msg and str(hr / "dupid.png") in msg, msg


def test_ids_that_differ_only_in_unsafe_characters_are_distinct(tmp_path):
    _hr(tmp_path, "a b.png", "a_b.png")
    assert [it.id for it in D.Dataset("set5", tmp_path).items(4)] == ["a b", "a_b"]


@pytest.mark.parametrize("make, needle", [
    (lambda hr: (hr / "loop.png").symlink_to("loop.png"), "symbolic link loop"),
    (lambda hr: ((hr / "x.png").symlink_to("y.png"), (hr / "y.png").symlink_to("x.png")), "symbolic link loop"),
    (lambda hr: (hr / "gone.png").symlink_to(hr / "nowhere.png"), "broken symbolic link"),
])
def test_symlink_loop_or_broken_link_in_hr_folder_is_reported(tmp_path, make, needle):
    hr = _hr(tmp_path, "a.png")
    make(hr)
    with pytest.raises(SrbenchError) as e:
        D.Dataset("set5", tmp_path).items(4)
    msg = str(e.value)
    assert needle in msg and str(hr) in msg and "\n" not in msg, msg
    assert type(e.value).__name__ == "DatasetContentError"


def test_symlink_loop_of_folders_is_reported_not_walked(tmp_path, monkeypatch):
    """Folders reached through wildcards (the ACDC layout): a link to a folder above it, or two
    links to each other, is named, never silently skipped nor walked again."""
    man = tmp_path / "manifests"
    write_manifest(man, "deep-test", """
        [layout]
        hr = "frames/*/*/*"
        """)
    monkeypatch.setenv("SRBENCH_MANIFESTS", str(man))
    frames = tmp_path / "data" / "deep-test" / "frames"
    (frames / "fog" / "a").mkdir(parents=True)
    Image.fromarray(photo(40, 40)).save(frames / "fog" / "a" / "f1.png")
    assert [it.id for it in D.Dataset("deep-test", tmp_path / "data").items(4)] == ["f1"]
    (frames / "fog" / "up").symlink_to("..")  # frames/fog/up -> frames: a loop
    with pytest.raises(SrbenchError, match="symbolic link loop") as e:
        D.Dataset("deep-test", tmp_path / "data").items(4)
    assert str(frames / "fog" / "up") in str(e.value)
    (frames / "fog" / "up").unlink()
    (frames / "p").symlink_to("q")
    (frames / "q").symlink_to("p")
    with pytest.raises(SrbenchError, match="symbolic link loop") as e:
        D.Dataset("deep-test", tmp_path / "data").items(4)
    assert str(frames / "p") in str(e.value) or str(frames / "q") in str(e.value)


def test_scale_without_a_cropped_copy_says_so_once_plainly(tmp_path):
    """Only HR_mod{2,3,4} copies (the shared Set5 layout): x5 has no copy; the message says which
    copies there are, why they are not cropped further, what to add, and never suggests a fetch."""
    for mod in (2, 3, 4):
        _hr(tmp_path, "a.png", folder=f"HR_mod{mod}")
    with pytest.raises(D.DatasetMissingError) as e:
        D.Dataset("set5", tmp_path).items(5)
    msg = str(e.value)
    assert "\n" not in msg and "{" not in msg and "fetch" not in msg and "not found" not in msg, msg
    assert "x5" in msg and "HR_mod2" in msg and "HR_mod4" in msg and "HR_mod5" in msg and "HR/" in msg, msg
    assert str(tmp_path / "set5") in msg and msg.count("x5") <= 2, msg


def test_scale_without_a_cropped_copy_uses_the_originals(tmp_path):
    """HR/ (the uncropped originals) serves any scale: the degradation crops it to a multiple of 5."""
    import torch

    from bench.run.degradations import parse_degradation
    from bench.run.io import read_image

    _hr(tmp_path, "a.png")
    _hr(tmp_path, "a.png", folder="HR_mod4")
    items = D.Dataset("set5", tmp_path).items(5)
    assert [(it.hr.parent.name, it.hr_mod) for it in items] == [("HR", 1)]
    hr, lr = parse_degradation("x5").apply(read_image(items[0].hr)[None])
    assert hr.shape[-2:] == (40, 40) and lr.shape[-2:] == (8, 8) and isinstance(hr, torch.Tensor)


def test_missing_dataset_message_has_no_unformatted_placeholders(tmp_path):
    for name in ("set5", "realsr-canon"):
        msg = str(D.Dataset(name, tmp_path).missing_error([tmp_path / name]))
        assert "{" not in msg and "}" not in msg, msg
    assert "HR_mod<N>/*" in str(D.Dataset("set5", tmp_path).missing_error([]))


def test_fetch_offline_is_one_line_and_quick(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(SrbenchError) as e:
        D.fetch("set5", tmp_path)
    assert time.monotonic() - start < 10
    msg = str(e.value)
    assert "\n" not in msg and "eugenesiow/Set5" in msg and "HF_HUB_OFFLINE" in msg, msg
    assert str(tmp_path / "set5") in msg and "HR/*" in msg, msg


def test_fetch_with_network_unreachable_is_one_line_and_quick(tmp_path, monkeypatch):
    """No offline setting, but no connection either (tests refuse every non-local connection):
    one line at once, naming the source and the layout to place by hand, not minutes of retries."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "https://192.0.2.1")  # TEST-NET-1: no DNS, refused by conftest
    start = time.monotonic()
    with pytest.raises(SrbenchError) as e:
        D.fetch("set5", tmp_path)
    assert time.monotonic() - start < 10
    msg = str(e.value)
    assert "\n" not in msg and "unreachable" in msg and "eugenesiow/Set5" in msg and "192.0.2.1" in msg, msg
    assert str(tmp_path / "set5") in msg and "HR/*" in msg, msg
    start = time.monotonic()
    with pytest.raises(SrbenchError) as e:
        D.fetch("coco", tmp_path)  # the Hugging Face `datasets` path
    assert time.monotonic() - start < 10 and "unreachable" in str(e.value) and "\n" not in str(e.value)


def test_tests_never_touch_the_users_caches(tmp_path):
    """conftest points every cache (Hugging Face hub and datasets, torch, XDG) into a temporary
    folder before anything imports them; the libraries' own settings say so, and what `datasets`
    writes while loading lands there."""
    import huggingface_hub.constants as hub
    import torch.hub

    import datasets

    caches = Path(os.environ["SRBENCH_TEST_CACHES"].split(":", 1)[1])  # set by conftest, before any import
    user_hf = Path(os.environ["SRBENCH_TEST_USER_HF_HOME"])
    paths = {"HF_HOME": hub.HF_HOME, "HF_HUB_CACHE": hub.HF_HUB_CACHE,
             "HF_DATASETS_CACHE": datasets.config.HF_DATASETS_CACHE, "HF_MODULES_CACHE": datasets.config.HF_MODULES_CACHE,
             "torch.hub": torch.hub.get_dir(), "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]}
    for what, path in paths.items():
        assert Path(path).resolve().is_relative_to(caches.resolve()), (what, path)
        assert not Path(path).resolve().is_relative_to(user_hf.resolve()), (what, path)
    datasets.Dataset.from_dict({"x": [1, 2]}).to_parquet(str(tmp_path / "t.parquet"))
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "t.parquet"), split="train")
    written = [Path(f["filename"]) for f in loaded.cache_files]
    assert written and all(p.resolve().is_relative_to(caches.resolve()) for p in written), written


def test_check_counts_the_scale_that_has_images(tmp_path, monkeypatch):
    """A copy of a paired dataset with pairs at x4 only (the shared RealSR sample) is a partial
    copy to report, not a missing dataset; likewise HR_mod3 copies alone."""
    root = paired_manifest(tmp_path, monkeypatch, "pairs4-test", [2, 4], 4, extra="count = 2")
    Image.fromarray(photo(32, 32)).save(root / "c_0_HR.png")
    Image.fromarray(photo(8, 8)).save(root / "c_0_LR4.png")
    assert D.Dataset("pairs4-test", tmp_path / "data").check() == [
        f"{tmp_path / 'data' / 'pairs4-test'}: 1 images found for x4, the manifest expects 2"]
    _hr(tmp_path, "a.png", "b.png", "c.png", "d.png", "e.png", folder="HR_mod3")
    assert D.Dataset("set5", tmp_path).check() == []
