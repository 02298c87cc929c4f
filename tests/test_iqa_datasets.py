"""Opinion-scored IQA databases (bench.nr.databases): fake folders in each official layout, tiny
images written here, MOS files in the official formats; parsing, paths, scores and errors."""

from __future__ import annotations

import csv
import importlib.util
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.nr.databases import (DATABASES, IQADatabaseError, database_spec, fetch_from_hub, list_databases,
                                load_database)
from iqa.errors import UnknownNameError


def _img(path: Path, seed: int = 0, size: tuple[int, int] = (12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _csv(path: Path, rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


# ---------------------------------------------------------------------------------------------
# fake releases


def make_koniq(root: Path) -> Path:
    names = ["826373.jpg", "1155335.jpg", "3150845.jpg"]
    for i, n in enumerate(names):
        _img(root / "1024x768" / n, i)
    _csv(root / "koniq10k_scores_and_distributions.csv", [
        ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"],
        [names[0], 0, 1, 13, 82, 4, 100, 3.89, 0.48, 67.11],
        [names[1], 1, 5, 60, 33, 1, 100, 3.28, 0.63, 52.40],
        [names[2], 9, 40, 40, 10, 1, 100, 2.54, 0.82, 36.03]])
    return root


def make_livec(root: Path) -> Path:
    import scipy.io

    train = ["t1.bmp", "t2.bmp"]
    test = ["3.bmp", "4.bmp", "5.bmp"]
    for i, n in enumerate(train):
        _img(root / "Images" / "trainingImages" / n, i)
    for i, n in enumerate(test):
        _img(root / "Images" / n, 10 + i)
    names = np.empty((5, 1), dtype=object)
    for i, n in enumerate(train + test):
        names[i, 0] = n
    (root / "Data").mkdir(parents=True)
    scipy.io.savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": names})
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat",
                     {"AllMOS_release": np.array([[63.9, 25.3, 48.4, 73.3, 12.8]])})
    scipy.io.savemat(root / "Data" / "AllStdDev_release.mat",
                     {"AllStdDev_release": np.array([[18.3, 13.6, 18.9, 15.1, 16.0]])})
    return root


def make_spaq_csv(root: Path) -> Path:
    for i, n in enumerate(["00001.jpg", "00002.jpg"]):
        _img(root / "TestImage" / n, i)
    _csv(root / "Annotations" / "MOS and Image attribute scores.csv", [
        ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"],
        ["00001.jpg", 42.65, 43.0, 38.0, 41.0, 40.0, 44.0],
        ["00002.jpg", 71.0, 70.0, 65.0, 69.0, 73.0, 68.0]])
    return root


def make_kadid(root: Path) -> Path:
    for i, n in enumerate(["I01.png", "I01_01_01.png", "I01_01_05.png", "I02.png", "I02_10_03.png"]):
        _img(root / "images" / n, i)
    _csv(root / "dmos.csv", [["dist_img", "ref_img", "dmos", "var"],
                             ["I01_01_01.png", "I01.png", 4.57, 0.496],
                             ["I01_01_05.png", "I01.png", 1.63, 0.363],
                             ["I02_10_03.png", "I02.png", 3.1, 0.7]])
    return root


def make_tid(root: Path) -> Path:
    _img(root / "reference_images" / "I01.BMP", 0)
    _img(root / "reference_images" / "i25.bmp", 1)
    _img(root / "distorted_images" / "i01_01_1.bmp", 2)
    _img(root / "distorted_images" / "I01_08_5.bmp", 3)  # case differs from the MOS file on purpose
    _img(root / "distorted_images" / "i25_24_5.bmp", 4)
    (root / "mos_with_names.txt").write_text("5.51429 i01_01_1.bmp\n2.12000 i01_08_5.bmp\n\n0.24242 i25_24_5.bmp\n")
    return root


def make_csiq(root: Path) -> Path:
    _img(root / "src_imgs" / "1600.png", 0)
    _img(root / "src_imgs" / "sunsetcolor.png", 1)
    _img(root / "dst_imgs" / "awgn" / "1600.AWGN.1.png", 2)
    _img(root / "dst_imgs" / "jpeg2000" / "1600.jpeg2000.2.png", 3)
    _img(root / "dst_imgs" / "blur" / "sunsetcolor.BLUR.5.png", 4)
    # the sheet all_by_image saved as CSV: title rows above the header, data from the 4th column
    _csv(root / "csiq.DMOS.csv", [
        ["CSIQ DMOS"], [], ["", "", "", "image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"],
        ["", "", "", 1600, 1, "noise", 1, 0.061, 0.062],
        ["", "", "", 1600, 3, "jpeg 2000", 2, 0.092, 0.325],
        ["", "", "", "sunsetcolor", 5, "blur", 5, 0.11, 0.812]])
    return root


def make_pipal(root: Path) -> Path:
    _img(root / "Train_Ref" / "A0001.bmp", 0)
    _img(root / "Train_Dis" / "A0001_00_00.bmp", 1)
    _img(root / "Train_Dis" / "A0001_01_03.bmp", 2)
    (root / "Train_Label").mkdir(parents=True)
    (root / "Train_Label" / "A0001.txt").write_text("A0001_00_00.bmp,1434.6522\nA0001_01_03.bmp,1205.4\n")
    return root


MAKERS = {"koniq10k": make_koniq, "livec": make_livec, "spaq": make_spaq_csv, "kadid10k": make_kadid,
          "tid2013": make_tid, "csiq": make_csiq, "pipal": make_pipal}


# ---------------------------------------------------------------------------------------------
# parsing and path resolution


def test_catalogue_lists_the_seven_databases_with_metadata():
    assert list_databases() == sorted(MAKERS)
    for name, spec in DATABASES.items():
        assert spec.score_kind in ("MOS", "DMOS") and spec.homepage.startswith("https://")
        assert spec.full_reference == (name in ("kadid10k", "tid2013", "csiq", "pipal"))
    assert database_spec("KonIQ-10k").name == "koniq10k" and database_spec("clive").name == "livec"
    assert DATABASES["csiq"].higher_better is False and DATABASES["kadid10k"].higher_better is True
    with pytest.raises(UnknownNameError, match="did you mean 'koniq10k'"):
        database_spec("koniq10")


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_every_listed_image_resolves_to_a_file(name, tmp_path):
    root = MAKERS[name](tmp_path / name)
    db = load_database(name, root)
    assert len(db) > 0 and db.root == root
    for path, mos, extra in db:  # IQAItem is a plain (path, mos, extra) tuple
        assert path.is_file(), path
        assert isinstance(mos, float) and np.isfinite(mos)
        if db.full_reference:
            assert extra["ref"].is_file(), extra["ref"]


def test_koniq_scores_columns_and_split(tmp_path):
    root = make_koniq(tmp_path / "koniq")
    _csv(root / "koniq10k_distributions_sets.csv", [["image_name", "set"], ["826373.jpg", "training"]])
    db = load_database("koniq", tmp_path)  # the release may sit one level below the given folder
    assert db.root == root and db.score_column == "MOS" and db.score_range == (1.0, 5.0)
    assert [it.mos for it in db] == [3.89, 3.28, 2.54]
    assert db[0].path == root / "1024x768" / "826373.jpg"
    assert db[0].extra["sd"] == 0.48 and db[0].extra["set"] == "training" and "set" not in db[1].extra
    z = load_database("koniq10k", root, score="MOS_zscore", limit=2)
    assert [it.mos for it in z] == [67.11, 52.40] and z.score_range == (0.0, 100.0)
    with pytest.raises(IQADatabaseError, match="MOS_zscore"):
        load_database("koniq10k", root, score="zscore")
    with pytest.raises(IQADatabaseError, match="unknown option 'colour'"):
        load_database("koniq10k", root, colour=1)


def test_livec_mat_files_and_training_images(tmp_path):
    root = make_livec(tmp_path / "ChallengeDB_release")
    db = load_database("livec", root)
    assert [it.path.name for it in db] == ["3.bmp", "4.bmp", "5.bmp"]
    assert [it.mos for it in db] == pytest.approx([48.4, 73.3, 12.8])
    assert db[0].extra["std"] == pytest.approx(18.9) and db[0].extra["index"] == 3
    assert any("2 challenge training images" in n and "left out" in n for n in db.notes)
    full = load_database("live-challenge", root, include_training=True)
    assert len(full) == 5 and full[0].path == root / "Images" / "trainingImages" / "t1.bmp"
    assert full[0].extra["training"] is True


def test_livec_garbled_and_inconsistent_mat_files(tmp_path):
    import scipy.io

    root = make_livec(tmp_path / "livec")
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([[1.0, 2.0]])})
    with pytest.raises(IQADatabaseError, match=r"AllMOS_release.mat: 2 scores for the 5 images"):
        load_database("livec", root)
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"Scores": np.array([[1.0]])})
    with pytest.raises(IQADatabaseError, match=r"no variable 'AllMOS_release' \(variables: Scores\)"):
        load_database("livec", root)
    (root / "Data" / "AllMOS_release.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage" + bytes(200))
    with pytest.raises(IQADatabaseError, match="not a readable MATLAB .mat file") as e:
        load_database("livec", root)
    assert "\n" not in str(e.value)


def test_spaq_csv_export_and_xlsx_without_openpyxl(tmp_path):
    root = make_spaq_csv(tmp_path / "SPAQ")
    db = load_database("spaq", root)
    assert [it.mos for it in db] == [42.65, 71.0] and db[1].extra["sharpness"] == 68.0
    assert db[0].path == root / "TestImage" / "00001.jpg"
    if importlib.util.find_spec("openpyxl") is None:
        (root / "Annotations" / "MOS and Image attribute scores.csv").unlink()
        (root / "Annotations" / "MOS and Image attribute scores.xlsx").write_bytes(b"PK\x03\x04")
        with pytest.raises(IQADatabaseError, match="needs openpyxl") as e:
            load_database("spaq", root)
        assert "MOS and Image attribute scores.csv" in str(e.value)


def test_kadid_references_distortions_and_direction(tmp_path):
    root = make_kadid(tmp_path / "kadid10k")
    db = load_database("kadid10k", root)
    assert db.score_kind == "DMOS" and db.higher_better  # the authors' "dmos" is a 1..5 rating, 5 = best
    assert [(it.path.name, it.mos, it.extra["ref"].name) for it in db] == [
        ("I01_01_01.png", 4.57, "I01.png"), ("I01_01_05.png", 1.63, "I01.png"), ("I02_10_03.png", 3.1, "I02.png")]
    assert (db[2].extra["distortion"], db[2].extra["level"], db[2].extra["var"]) == (10, 3, 0.7)


def test_tid2013_case_insensitive_names_and_bad_line(tmp_path):
    root = make_tid(tmp_path / "tid2013")
    db = load_database("tid", root)
    assert [it.mos for it in db] == [5.51429, 2.12, 0.24242]
    assert db[1].path.name == "I01_08_5.bmp" and db[1].path.is_file()
    assert db[2].extra["ref"].name == "i25.bmp" and (db[2].extra["distortion"], db[2].extra["level"]) == (24, 5)
    (root / "mos_with_names.txt").write_text("5.5 i01_01_1.bmp\n2.1 i01_08_5.bmp extra\n")
    with pytest.raises(IQADatabaseError, match=r"mos_with_names.txt: line 2: expected 'score file-name'"):
        load_database("tid2013", root)
    (root / "mos_with_names.txt").write_text("five i01_01_1.bmp\n")
    with pytest.raises(IQADatabaseError, match=r"line 1: MOS 'five' is not a number"):
        load_database("tid2013", root)


def test_csiq_csv_export_types_and_dmos_direction(tmp_path):
    root = make_csiq(tmp_path / "CSIQ")
    db = load_database("csiq", root)
    assert db.score_kind == "DMOS" and not db.higher_better and db.score_range == (0.0, 1.0)
    assert [(it.path.relative_to(root).as_posix(), it.mos) for it in db] == [
        ("dst_imgs/awgn/1600.AWGN.1.png", 0.062), ("dst_imgs/jpeg2000/1600.jpeg2000.2.png", 0.325),
        ("dst_imgs/blur/sunsetcolor.BLUR.5.png", 0.812)]
    assert db[1].extra["distortion"] == "jpeg 2000" and db[1].extra["level"] == 2
    assert db[0].extra["ref"] == root / "src_imgs" / "1600.png" and db[0].extra["dmos_std"] == 0.061


def test_pipal_labels_and_references(tmp_path):
    root = make_pipal(tmp_path / "PIPAL")
    db = load_database("pipal", root)
    assert [(it.path.name, it.mos) for it in db] == [("A0001_00_00.bmp", 1434.6522), ("A0001_01_03.bmp", 1205.4)]
    assert db[0].path.parent.name == "Train_Dis" and db[0].extra["ref"] == root / "Train_Ref" / "A0001.bmp"
    (root / "Train_Label" / "A0001.txt").write_text("A0001_00_00.bmp 1434.6\n")
    with pytest.raises(IQADatabaseError, match=r"A0001.txt: line 1: expected 'file-name,elo'"):
        load_database("pipal", root)


def test_missing_images_stay_listed_for_the_evaluation_to_report(tmp_path):
    root = make_kadid(tmp_path / "kadid10k")
    (root / "images" / "I01_01_05.png").unlink()
    db = load_database("kadid10k", root)
    assert len(db) == 3 and not db[1].path.is_file() and db[1].path == root / "images" / "I01_01_05.png"


# ---------------------------------------------------------------------------------------------
# errors a user can cause: one line naming the path and where to get the database


def test_missing_folder_and_missing_mos_file(tmp_path):
    with pytest.raises(IQADatabaseError) as e:
        load_database("koniq10k", tmp_path / "nowhere")
    msg = str(e.value)
    assert "nowhere: folder not found" in msg and "koniq10k_scores_and_distributions.csv" in msg
    assert "https://database.mmsp-kn.de/koniq-10k-database.html" in msg and "\n" not in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(IQADatabaseError) as e:
        load_database("csiq", tmp_path / "empty")
    msg = str(e.value)
    assert "empty: no csiq.DMOS.xlsx or csiq.DMOS.csv or csiq_dmos.csv found" in msg
    assert "https://s2.smu.edu/~eclarson/csiq.html" in msg and "\n" not in msg
    with pytest.raises(IQADatabaseError, match="give the folder of the official release"):
        load_database("tid2013")


def test_missing_image_folder(tmp_path):
    root = make_koniq(tmp_path / "koniq")
    (root / "1024x768").rename(root / "images")
    with pytest.raises(IQADatabaseError, match=r"no image folder 1024x768/ or 512x384/ of KonIQ-10k found"):
        load_database("koniq10k", root)


@pytest.mark.parametrize("content, needle", [
    ("image_name,score\n826373.jpg,3.1\n", "no header row with the columns image_name, MOS"),
    ("image_name,MOS\n826373.jpg,high\n", "line 2: MOS 'high' is not a number"),
    ("image_name,MOS\n826373.jpg,nan\n", "line 2: MOS 'nan' is not a finite number"),
    ("image_name,MOS\n", "no entries below the header row"),
    ("", "no header row"),
])
def test_garbled_mos_csv(tmp_path, content, needle):
    root = make_koniq(tmp_path / "koniq")
    (root / "koniq10k_scores_and_distributions.csv").write_text(content)
    with pytest.raises(IQADatabaseError) as e:
        load_database("koniq10k", root)
    assert needle in str(e.value) and "koniq10k_scores_and_distributions.csv" in str(e.value)
    assert "\n" not in str(e.value)


def test_binary_garbage_as_mos_file(tmp_path):
    root = make_kadid(tmp_path / "kadid")
    (root / "dmos.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(IQADatabaseError, match=r"dmos.csv: not a text/CSV file"):
        load_database("kadid10k", root)


# ---------------------------------------------------------------------------------------------
# Hugging Face hub: only with hub=True; the download is replaced here (tests are offline)


def _tar_of(folder: Path, out: Path, arcname: str) -> Path:
    with tarfile.open(out, "w:gz") as t:
        t.add(folder, arcname=arcname)
    return out


def test_hub_archive_is_extracted_into_the_cache_and_loaded(tmp_path, monkeypatch):
    import bench.nr.databases as mod

    release = make_kadid(tmp_path / "src" / "kadid10k")
    archive = _tar_of(release, tmp_path / "kadid10k.tgz", "kadid10k")
    calls = []

    def fake_download(repo, filename, revision=None):
        calls.append((repo, filename))
        return archive

    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(mod, "_hub_download", fake_download)
    db = load_database("kadid10k", hub=True)
    assert calls == [("chaofengc/IQA-PyTorch-Datasets", "kadid10k.tgz")]
    assert db.root == tmp_path / "cache" / "data" / "iqa" / "kadid10k" / "kadid10k" and len(db) == 3
    load_database("kadid10k", hub=True)  # an existing extraction is reused
    assert len(calls) == 1


def test_hub_archive_without_the_official_mos_file(tmp_path, monkeypatch):
    import bench.nr.databases as mod

    release = make_tid(tmp_path / "src" / "tid2013")
    (release / "mos_with_names.txt").unlink()
    archive = _tar_of(release, tmp_path / "tid2013.tgz", "tid2013")
    monkeypatch.setattr(mod, "_hub_download", lambda repo, filename, revision=None: archive)
    with pytest.raises(IQADatabaseError) as e:
        load_database("tid2013", hub=True, hub_repo="someone/iqa", hub_file="tid.tgz")
    msg = str(e.value)
    assert "the hub archive someone/iqa/tid.tgz holds no mos_with_names.txt" in msg and "\n" not in msg


def test_hub_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(IQADatabaseError) as e:
        fetch_from_hub("csiq", dest=tmp_path / "csiq")
    msg = str(e.value)
    assert msg.startswith("hub dataset chaofengc/IQA-PyTorch-Datasets: cannot fetch csiq.tgz")
    assert "https://s2.smu.edu/~eclarson/csiq.html" in msg and "\n" not in msg
