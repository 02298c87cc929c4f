"""Opinion-scored IQA databases: images with human quality scores (MOS / DMOS).

`load_database(name, root)` reads a database from a local folder holding its official release
and returns an `IQADatabase`: a list of `IQAItem` ``(image_path, mos, extra)`` tuples plus the
metadata the evaluation needs (score kind, whether a higher score means better quality, score
range, whether the database is full-reference, i.e. has a reference image per distorted image,
given as ``extra["ref"]``). ``root`` may be the release folder itself or a folder up to two levels
above it (the official MOS file is looked for there). Names are case-insensitive; aliases in
parentheses.

- ``koniq10k`` (koniq, koniq-10k), KonIQ-10k: ``koniq10k_scores_and_distributions.csv`` with
  the columns ``image_name``, ``c1``..``c5``, ``c_total``, ``MOS``, ``SD``, ``MOS_zscore``; images
  in ``1024x768/`` (from ``koniq10k_1024x768.zip``) or ``512x384/``. When present,
  ``koniq10k_distributions_sets.csv`` (column ``set``) adds the official split to ``extra``.
  Score: ``MOS`` 1..5 (default) or ``score="MOS_zscore"`` 0..100; higher is better.
- ``livec`` (live-challenge, livechallenge, live-itw, clive), LIVE In the Wild Challenge:
  ``Data/AllImages_release.mat`` (variable ``AllImages_release``, a cell array of file names),
  ``Data/AllMOS_release.mat`` (``AllMOS_release``), optionally ``Data/AllStdDev_release.mat``
  (``AllStdDev_release``); images in ``Images/``, the 7 challenge training images (listed first)
  in ``Images/trainingImages/``: left out unless ``include_training=True``, as in the published
  1162-image results. Score: MOS 0..100, higher is better.
- ``spaq``, SPAQ: ``Annotations/MOS and Image attribute scores.xlsx`` (first sheet; columns
  ``Image name``, ``MOS``, ``Brightness``, ``Colorfulness``, ``Contrast``, ``Noisiness``,
  ``Sharpness``) or its CSV export saved as ``Annotations/MOS and Image attribute scores.csv``;
  images in ``TestImage/``. Score: MOS 0..100, higher is better.
- ``kadid10k`` (kadid, kadid-10k), KADID-10k: ``dmos.csv`` with ``dist_img,ref_img,dmos,var``;
  distorted and reference images together in ``images/`` (``I01_01_01.png``, ``I01.png``).
  Score: the authors' ``dmos``, a degradation category rating 1..5 where 5 = imperceptible, so
  higher is better despite the name.
- ``tid2013`` (tid), TID2013: ``mos_with_names.txt``, lines ``"5.51429 i01_01_1.bmp"`` (score,
  space, file name); ``distorted_images/`` and ``reference_images/`` (``I01.BMP``; file names
  are matched ignoring case). Score: MOS 0..9, higher is better.
- ``csiq``, CSIQ: ``csiq.DMOS.xlsx`` (sheet ``all_by_image``; its header row holding ``image``,
  ``dst_idx``, ``dst_type``, ``dst_lev``, ``dmos_std``, ``dmos`` is found wherever it sits) or a
  CSV export of that sheet saved as ``csiq.DMOS.csv`` (or ``csiq_dmos.csv``);
  ``dst_imgs/<type>/<image>.<TYPE>.<level>.png`` (``noise`` -> ``awgn/…AWGN…``, ``jpeg 2000`` ->
  ``jpeg2000/``, ``blur`` -> ``blur/…BLUR…``; searched recursively and ignoring case, so a flat
  ``dst_imgs_all/`` works too) and ``src_imgs/<image>.png``. Score: DMOS 0..1, lower is better.
- ``pipal``, PIPAL training set: ``Train_Label/*.txt``, lines ``"A0001_00_00.bmp,1434.6522"``
  (file name, Elo score; no header); references ``Train_Ref/A0001.bmp``; distorted images
  anywhere else below the folder (``Train_Dis/``; the ``Distortion_1``..``Distortion_4`` folders
  of the NTIRE 2021 release are assumed, not verified). Score: Elo rating (unbounded), higher is
  better.

``.xlsx`` files need ``openpyxl`` (``pip install openpyxl``); without it, save the sheet as CSV
under the name given above (the error says so). Listed images that are missing on disk stay in
the list (their path is where the file was expected): the evaluation reports each as a bad file.

Errors a user can cause (missing folder, missing or garbled MOS file) raise `IQADatabaseError`
with one line naming the path, the problem and where to get the database.

**Hugging Face hub** (only when asked: ``hub=True``, ``srbench iqa eval --hub``): the archive
named below is fetched from the dataset repository ``chaofengc/IQA-PyTorch-Datasets`` (the
collection pyiqa downloads from; its listing shows ``koniq10k.tgz``, ``live_challenge.tgz``,
``kadid10k.tgz``, ``tid2013.tgz`` and ``csiq.tgz``; ``spaq.tgz`` and ``pipal.tar`` are the names
pyiqa's downloader uses and were *not* seen in a listing) with ``huggingface_hub``, extracted into
``$SRBENCH_CACHE/data/iqa/<name>/`` and read like a local folder. Whether those archives carry
the *official* MOS files was not verified (pyiqa reads its labels from its own meta-info tables,
which srbench does not use): when the official file is missing the error names it and where to
put it. ``hub_repo`` / ``hub_file`` (``--hub-repo``, ``--hub-file``) point at any other hub
dataset repository holding a tar/zip archive of the official release.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from iqa.errors import SrbenchError, UnknownNameError

from bench.run.io import IMAGE_EXTENSIONS, build_dir

__all__ = ["DATABASES", "HUB_REPO", "DatabaseSpec", "IQADatabase", "IQADatabaseError", "IQAItem", "database_spec",
           "fetch_from_hub", "list_databases", "load_database"]

HUB_REPO = "chaofengc/IQA-PyTorch-Datasets"
_INF = float("inf")


class IQADatabaseError(SrbenchError):
    """A database folder or MOS file that is missing or cannot be read."""


class IQAItem(NamedTuple):
    """One scored image: its path, its opinion score and extra fields (``ref``: the reference
    image of full-reference databases; ``distortion``/``level`` where the file name tells them;
    other columns of the MOS file)."""

    path: Path
    mos: float
    extra: dict


@dataclass(frozen=True)
class DatabaseSpec:
    name: str
    title: str
    score_kind: str  # "MOS" or "DMOS" (as the authors name it)
    higher_better: bool  # of the score
    score_range: tuple[float, float]
    full_reference: bool
    homepage: str
    mos_files: tuple[str, ...]  # official MOS file(s), relative to the release folder, in order of preference
    layout: str  # one line: what the folder must hold
    loader: Callable[..., dict[str, Any]]
    aliases: tuple[str, ...] = ()
    hub_file: str | None = None  # archive in HUB_REPO
    description: str = ""


@dataclass
class IQADatabase:
    """A loaded database: ``items`` (``IQAItem`` tuples) and its metadata."""

    spec: DatabaseSpec
    root: Path
    mos_file: Path
    items: list[IQAItem]
    score_column: str
    score_range: tuple[float, float]
    notes: list[str] = field(default_factory=list)

    name = property(lambda self: self.spec.name)
    title = property(lambda self: self.spec.title)
    score_kind = property(lambda self: self.spec.score_kind)
    higher_better = property(lambda self: self.spec.higher_better)
    full_reference = property(lambda self: self.spec.full_reference)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[IQAItem]:
        return iter(self.items)

    def __getitem__(self, i: int) -> IQAItem:
        return self.items[i]


# ---------------------------------------------------------------------------------------------
# helpers: case-insensitive paths, tables, numbers


def _ci_child(folder: Path, name: str) -> Path | None:
    """``folder/name`` if it exists, else the entry of ``folder`` whose name matches ignoring case."""
    p = folder / name
    if p.exists():
        return p
    if not folder.is_dir():
        return None
    low = name.lower()
    for child in sorted(folder.iterdir()):
        if child.name.lower() == low:
            return child
    return None


def _ci_path(base: Path, rel: str) -> Path | None:
    p = base
    for part in Path(rel).parts:
        q = _ci_child(p, part)
        if q is None:
            return None
        p = q
    return p


def _subdirs(root: Path, depth: int) -> list[Path]:
    out, level = [root], [root]
    for _ in range(depth):
        nxt = []
        for d in level:
            try:
                nxt += sorted(c for c in d.iterdir() if c.is_dir() and not c.name.startswith("."))
            except OSError:
                continue
        out += nxt
        level = nxt
    return out


def _has_openpyxl() -> bool:
    import importlib.util

    return importlib.util.find_spec("openpyxl") is not None


class _Index:
    """Image files of a folder (optionally recursive), looked up by name ignoring case."""

    def __init__(self, folder: Path, recursive: bool = False, exclude: tuple[Path, ...] = ()):
        self.folder = folder
        self.files: dict[str, Path] = {}
        if not folder.is_dir():
            return
        walk = folder.rglob("*") if recursive else folder.iterdir()
        excl = [e.resolve() for e in exclude]
        for p in sorted(walk):
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith("."):
                if excl and any(e in p.resolve().parents for e in excl):
                    continue
                self.files.setdefault(p.name.lower(), p)

    def resolve(self, name: str) -> Path:
        """The file called ``name`` (exact, else ignoring case); ``folder/name`` when absent."""
        exact = self.folder / name
        if exact.is_file():
            return exact
        return self.files.get(Path(name).name.lower(), exact)


def _number(value: Any, where: str, what: str = "score") -> float:
    try:
        v = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except (TypeError, ValueError):
        raise IQADatabaseError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(v):
        raise IQADatabaseError(f"{where}: {what} {value!r} is not a finite number")
    return v


def _read_csv(path: Path) -> list[list[str]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = path.read_bytes().decode("latin-1")
        except Exception as e:  # pragma: no cover - latin-1 decodes any bytes
            raise IQADatabaseError(f"{path}: cannot decode ({e})") from None
    except OSError as e:
        raise IQADatabaseError(f"{path}: cannot read ({e.strerror or e})") from None
    if "\x00" in text:
        raise IQADatabaseError(f"{path}: not a text/CSV file (binary content)")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t") if text.strip() else csv.excel
    except csv.Error:
        dialect = csv.excel
    try:
        return [row for row in csv.reader(text.splitlines(), dialect)]
    except csv.Error as e:
        raise IQADatabaseError(f"{path}: not a readable CSV file ({e})") from None


def _read_xlsx(path: Path, sheet: str | None, csv_alternative: Path) -> list[list[Any]]:
    try:
        import openpyxl
    except ImportError:
        raise IQADatabaseError(
            f"{path}: reading .xlsx needs openpyxl (pip install openpyxl); or save the sheet "
            f"{sheet or '(the first)'} as CSV to {csv_alternative}") from None
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # zipfile.BadZipFile, KeyError, InvalidFileException, ...
        raise IQADatabaseError(f"{path}: not a readable .xlsx workbook ({type(e).__name__}: {e})") from None
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise IQADatabaseError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(wb.sheetnames)})")
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        return [list(r) for r in ws.iter_rows(values_only=True)]
    finally:
        wb.close()


def _table(rows: list[list[Any]], required: tuple[str, ...], path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """Find the header row (the first holding every ``required`` name, ignoring case and spaces
    around) and return (header, [(line number, {column: value})])."""
    want = [r.lower() for r in required]
    for i, row in enumerate(rows):
        cells = ["" if c is None else str(c).strip() for c in row]
        low = [c.lower() for c in cells]
        if all(w in low for w in want):
            header = cells
            out = []
            for j, r in enumerate(rows[i + 1:], start=i + 2):
                vals = ["" if c is None else c for c in r]
                if not any(str(v).strip() for v in vals):
                    continue
                rec = {}
                for k, name in enumerate(header):
                    if name:
                        rec.setdefault(name.lower(), vals[k] if k < len(vals) else "")
                out.append((j, rec))
            if not out:
                raise IQADatabaseError(f"{path}: no entries below the header row")
            return header, out
    first = ", ".join(str(c) for c in rows[0]) if rows else "(empty file)"
    raise IQADatabaseError(f"{path}: no header row with the columns {', '.join(required)} "
                           f"(first row: {first[:120]})")


def _extras(rec: dict, skip: set[str]) -> dict:
    out = {}
    for k, v in rec.items():
        if k in skip or v in ("", None):
            continue
        try:
            out[k] = float(v) if not isinstance(v, (int, float)) else v
        except (TypeError, ValueError):
            out[k] = str(v).strip()
    return out


def _image_dir(root: Path, candidates: tuple[str, ...], spec_name: str, homepage: str) -> Path:
    for c in candidates:
        p = _ci_path(root, c)
        if p is not None and p.is_dir():
            return p
    names = " or ".join(f"{c}/" for c in candidates)
    raise IQADatabaseError(f"{root}: no image folder {names} of {spec_name} found; get the images from {homepage}")


# ---------------------------------------------------------------------------------------------
# loaders: (root, mos_file, **options) -> {"items", "score_column", "score_range"?, "notes"?}


def _load_koniq(root: Path, mos_file: Path, score: str = "MOS", resolution: str | None = None) -> dict:
    spec = DATABASES["koniq10k"]
    if score not in ("MOS", "MOS_zscore"):
        raise IQADatabaseError(f"koniq10k score must be 'MOS' (1..5) or 'MOS_zscore' (0..100), got {score!r}")
    if resolution is not None and resolution not in ("1024x768", "512x384"):
        raise IQADatabaseError(f"koniq10k resolution must be '1024x768' or '512x384', got {resolution!r}")
    images = _image_dir(root, (resolution,) if resolution else ("1024x768", "512x384"), spec.title, spec.homepage)
    _, rows = _table(_read_csv(mos_file), ("image_name", score), mos_file)
    sets: dict[str, str] = {}
    split_file = _ci_path(root, "koniq10k_distributions_sets.csv")
    if split_file is not None and split_file.is_file():
        try:
            _, srows = _table(_read_csv(split_file), ("image_name", "set"), split_file)
            sets = {str(r["image_name"]).strip(): str(r["set"]).strip() for _, r in srows}
        except IQADatabaseError:
            sets = {}
    index = _Index(images)
    items = []
    for line, r in rows:
        name = str(r["image_name"]).strip()
        mos = _number(r[score.lower()], f"{mos_file}: line {line}", score)
        extra = _extras(r, {"image_name", score.lower()})
        if name in sets:
            extra["set"] = sets[name]
        items.append(IQAItem(index.resolve(name), mos, extra))
    return {"items": items, "score_column": score, "score_range": (1.0, 5.0) if score == "MOS" else (0.0, 100.0),
            "notes": [f"images from {images.name}/"]}


def _mat_var(path: Path, var: str):
    import numpy as np
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path))
    except Exception as e:  # MatReadError, ValueError, OSError, NotImplementedError (v7.3 HDF5)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise IQADatabaseError(f"{path}: not a readable MATLAB .mat file ({msg})") from None
    if var not in data:
        have = sorted(k for k in data if not k.startswith("__"))
        raise IQADatabaseError(f"{path}: no variable {var!r} (variables: {', '.join(have) or 'none'})")
    return np.asarray(data[var])


def _load_livec(root: Path, mos_file: Path, include_training: bool = False) -> dict:
    import numpy as np

    spec = DATABASES["livec"]
    names_file = _ci_path(root, "Data/AllImages_release.mat")
    if names_file is None:
        raise IQADatabaseError(f"{root / 'Data' / 'AllImages_release.mat'}: file not found (the image list of "
                               f"{spec.title}); get the database from {spec.homepage}")
    raw = _mat_var(names_file, "AllImages_release").ravel()
    names = []
    for i, v in enumerate(raw):
        a = np.ravel(np.asarray(v))
        if a.size != 1 or not isinstance(a[0], str):
            raise IQADatabaseError(f"{names_file}: entry {i + 1} of AllImages_release is not a file name ({a!r:.60})")
        names.append(a[0].strip())
    try:
        mos = _mat_var(mos_file, "AllMOS_release").ravel().astype(np.float64)
    except (TypeError, ValueError):
        raise IQADatabaseError(f"{mos_file}: AllMOS_release is not numeric") from None
    if mos.size != len(names):
        raise IQADatabaseError(f"{mos_file}: {mos.size} scores for the {len(names)} images of {names_file.name}")
    std = None
    std_file = _ci_path(root, "Data/AllStdDev_release.mat")
    if std_file is not None and std_file.is_file():
        try:
            s = _mat_var(std_file, "AllStdDev_release").ravel().astype(np.float64)
            std = s if s.size == mos.size else None
        except (IQADatabaseError, TypeError, ValueError):
            std = None
    images = _image_dir(root, ("Images",), spec.title, spec.homepage)
    index = _Index(images)
    training_dir = _ci_child(images, "trainingImages")
    train_index = _Index(training_dir) if training_dir is not None else None
    items, n_training = [], 0
    for i, (name, m) in enumerate(zip(names, mos, strict=True)):
        if not np.isfinite(m):
            raise IQADatabaseError(f"{mos_file}: score {i + 1} of AllMOS_release is not finite")
        path = index.resolve(name)
        if not path.is_file() and train_index is not None:
            alt = train_index.resolve(name)
            path = alt if alt.is_file() else path
        training = "trainingimages" in [p.lower() for p in path.relative_to(images).parts[:-1]] or \
            "trainingimages" in name.lower()
        if training:
            n_training += 1
            if not include_training:
                continue
        extra = {"index": i + 1, "training": training}
        if std is not None:
            extra["std"] = float(std[i])
        items.append(IQAItem(path, float(m), extra))
    notes = []
    if n_training:
        notes.append(f"{n_training} challenge training images (Images/trainingImages/) "
                     f"{'included' if include_training else 'left out'}")
    return {"items": items, "score_column": "AllMOS_release", "notes": notes}


def _load_spaq(root: Path, mos_file: Path) -> dict:
    spec = DATABASES["spaq"]
    images = _image_dir(root, ("TestImage",), spec.title, spec.homepage)
    if mos_file.suffix.lower() == ".xlsx":
        rows = _read_xlsx(mos_file, None, mos_file.with_suffix(".csv"))
    else:
        rows = _read_csv(mos_file)
    _, recs = _table(rows, ("Image name", "MOS"), mos_file)
    index = _Index(images)
    items = []
    for line, r in recs:
        name = str(r["image name"]).strip()
        mos = _number(r["mos"], f"{mos_file}: line {line}", "MOS")
        items.append(IQAItem(index.resolve(name), mos, _extras(r, {"image name", "mos"})))
    return {"items": items, "score_column": "MOS"}


_KADID_NAME = re.compile(r"I(\d+)_(\d+)_(\d+)", re.IGNORECASE)


def _load_kadid(root: Path, mos_file: Path) -> dict:
    spec = DATABASES["kadid10k"]
    images = _image_dir(root, ("images",), spec.title, spec.homepage)
    _, rows = _table(_read_csv(mos_file), ("dist_img", "ref_img", "dmos"), mos_file)
    index = _Index(images)
    items = []
    for line, r in rows:
        name = str(r["dist_img"]).strip()
        mos = _number(r["dmos"], f"{mos_file}: line {line}", "dmos")
        extra = _extras(r, {"dist_img", "ref_img", "dmos"})
        extra["ref"] = index.resolve(str(r["ref_img"]).strip())
        m = _KADID_NAME.fullmatch(Path(name).stem)
        if m:
            extra["distortion"], extra["level"] = int(m.group(2)), int(m.group(3))
        items.append(IQAItem(index.resolve(name), mos, extra))
    return {"items": items, "score_column": "dmos"}


_TID_NAME = re.compile(r"i(\d+)_(\d+)_(\d+)", re.IGNORECASE)


def _load_tid2013(root: Path, mos_file: Path) -> dict:
    spec = DATABASES["tid2013"]
    dist = _image_dir(root, ("distorted_images",), spec.title, spec.homepage)
    ref_dir = _ci_path(root, "reference_images")
    index, refs = _Index(dist), _Index(ref_dir) if ref_dir is not None else None
    try:
        text = mos_file.read_bytes().decode("latin-1")
    except OSError as e:
        raise IQADatabaseError(f"{mos_file}: cannot read ({e.strerror or e})") from None
    items = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        parts = raw.split()
        if len(parts) != 2:
            raise IQADatabaseError(f"{mos_file}: line {line}: expected 'score file-name', got {raw.strip()[:60]!r}")
        mos = _number(parts[0], f"{mos_file}: line {line}", "MOS")
        name = parts[1]
        extra: dict[str, Any] = {}
        m = _TID_NAME.fullmatch(Path(name).stem)
        if m:
            ref_name = f"I{m.group(1)}.BMP"
            extra["ref"] = refs.resolve(ref_name) if refs is not None else root / "reference_images" / ref_name
            extra["distortion"], extra["level"] = int(m.group(2)), int(m.group(3))
        items.append(IQAItem(index.resolve(name), mos, extra))
    if not items:
        raise IQADatabaseError(f"{mos_file}: no entries")
    return {"items": items, "score_column": "MOS"}


# dst_type in csiq.DMOS.xlsx -> (folder under dst_imgs, tag in the file name)
_CSIQ_TYPES = {"noise": ("awgn", "AWGN"), "awgn": ("awgn", "AWGN"), "jpeg": ("jpeg", "JPEG"),
               "jpeg 2000": ("jpeg2000", "jpeg2000"), "jpeg2000": ("jpeg2000", "jpeg2000"),
               "fnoise": ("fnoise", "fnoise"), "blur": ("blur", "BLUR"), "contrast": ("contrast", "contrast")}


def _int_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    s = str(v).strip()
    return s[:-2] if re.fullmatch(r"\d+\.0", s) else s


def _load_csiq(root: Path, mos_file: Path) -> dict:
    spec = DATABASES["csiq"]
    dst = _image_dir(root, ("dst_imgs", "dst_imgs_all"), spec.title, spec.homepage)
    src = _ci_path(root, "src_imgs")
    if mos_file.suffix.lower() == ".xlsx":
        rows = _read_xlsx(mos_file, "all_by_image", mos_file.with_suffix(".csv"))
    else:
        rows = _read_csv(mos_file)
    _, recs = _table(rows, ("image", "dst_type", "dst_lev", "dmos"), mos_file)
    index = _Index(dst, recursive=True)
    refs = _Index(src) if src is not None else None
    items = []
    for line, r in recs:
        where = f"{mos_file}: line {line}"
        image = _int_text(r["image"])
        dtype = str(r["dst_type"]).strip()
        level = int(_number(r["dst_lev"], where, "dst_lev"))
        dmos = _number(r["dmos"], where, "dmos")
        folder, tag = _CSIQ_TYPES.get(dtype.lower(), (dtype.lower(), dtype))
        name = f"{image}.{tag}.{level}.png"
        path = index.resolve(name)
        if not path.is_file():
            path = dst / folder / name
        extra = _extras(r, {"image", "dst_type", "dst_lev", "dmos"})
        extra.update(distortion=dtype, level=level,
                     ref=refs.resolve(f"{image}.png") if refs is not None else root / "src_imgs" / f"{image}.png")
        items.append(IQAItem(path, dmos, extra))
    return {"items": items, "score_column": "dmos"}


def _load_pipal(root: Path, mos_file: Path) -> dict:
    labels = mos_file  # the Train_Label folder
    ref_dir = _ci_path(root, "Train_Ref")
    index = _Index(root, recursive=True, exclude=tuple(p for p in (ref_dir,) if p is not None))
    refs = _Index(ref_dir) if ref_dir is not None else None
    items = []
    files = sorted(p for p in labels.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
    for f in files:
        try:
            text = f.read_bytes().decode("latin-1")
        except OSError as e:
            raise IQADatabaseError(f"{f}: cannot read ({e.strerror or e})") from None
        for line, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            parts = [p.strip() for p in raw.split(",")]
            if len(parts) != 2 or not parts[0]:
                raise IQADatabaseError(f"{f}: line {line}: expected 'file-name,elo', got {raw.strip()[:60]!r}")
            name = parts[0]
            elo = _number(parts[1], f"{f}: line {line}", "Elo score")
            ref_name = name.split("_")[0] + Path(name).suffix
            ref = refs.resolve(ref_name) if refs is not None else root / "Train_Ref" / ref_name
            items.append(IQAItem(index.resolve(name), elo, {"ref": ref, "label_file": f.name}))
    if not items:
        raise IQADatabaseError(f"{labels}: no labels in its .txt files")
    return {"items": items, "score_column": "elo"}


DATABASES: dict[str, DatabaseSpec] = {}


def _register(spec: DatabaseSpec) -> None:
    DATABASES[spec.name] = spec


_register(DatabaseSpec(
    "koniq10k", "KonIQ-10k", "MOS", True, (1.0, 5.0), False, "https://database.mmsp-kn.de/koniq-10k-database.html",
    ("koniq10k_scores_and_distributions.csv",),
    "koniq10k_scores_and_distributions.csv and 1024x768/ (or 512x384/) with the images",
    _load_koniq, ("koniq", "koniq-10k"), "koniq10k.tgz",
    "10,073 in-the-wild photos, crowdsourced ACR (Hosu et al., TIP 2020)"))
_register(DatabaseSpec(
    "livec", "LIVE In the Wild Image Quality Challenge (LIVE-itW)", "MOS", True, (0.0, 100.0), False,
    "https://live.ece.utexas.edu/research/ChallengeDB/index.html", ("Data/AllMOS_release.mat",),
    "Data/AllImages_release.mat, Data/AllMOS_release.mat and Images/",
    _load_livec, ("live-challenge", "livechallenge", "live-itw", "clive", "live_challenge"), "live_challenge.tgz",
    "1,162 mobile photos with authentic distortions (Ghadiyaram and Bovik, TIP 2016)"))
_register(DatabaseSpec(
    "spaq", "SPAQ", "MOS", True, (0.0, 100.0), False, "https://github.com/h4nwei/SPAQ",
    ("Annotations/MOS and Image attribute scores.xlsx", "Annotations/MOS and Image attribute scores.csv"),
    "Annotations/MOS and Image attribute scores.xlsx (or its CSV export) and TestImage/",
    _load_spaq, (), "spaq.tgz", "11,125 smartphone photos (Fang et al., CVPR 2020)"))
_register(DatabaseSpec(
    "kadid10k", "KADID-10k", "DMOS", True, (1.0, 5.0), True, "https://database.mmsp-kn.de/kadid-10k-database.html",
    ("dmos.csv",), "dmos.csv and images/ (distorted and reference images)",
    _load_kadid, ("kadid", "kadid-10k"), "kadid10k.tgz",
    "81 references x 25 synthetic distortions x 5 levels (Lin et al., QoMEX 2019)"))
_register(DatabaseSpec(
    "tid2013", "TID2013", "MOS", True, (0.0, 9.0), True, "https://www.ponomarenko.info/tid2013.htm",
    ("mos_with_names.txt",), "mos_with_names.txt, distorted_images/ and reference_images/",
    _load_tid2013, ("tid",), "tid2013.tgz", "25 references x 24 distortions x 5 levels (Ponomarenko et al., 2015)"))
_register(DatabaseSpec(
    "csiq", "CSIQ", "DMOS", False, (0.0, 1.0), True, "https://s2.smu.edu/~eclarson/csiq.html",
    ("csiq.DMOS.xlsx", "csiq.DMOS.csv", "csiq_dmos.csv"),
    "csiq.DMOS.xlsx (or its all_by_image sheet as csiq.DMOS.csv), dst_imgs/ and src_imgs/",
    _load_csiq, (), "csiq.tgz", "30 references x 6 distortions x 4-5 levels (Larson and Chandler, JEI 2010)"))
_register(DatabaseSpec(
    "pipal", "PIPAL (training set)", "MOS", True, (-_INF, _INF), True, "https://github.com/HaomingCai/PIPAL-dataset",
    ("Train_Label",), "Train_Label/*.txt, Train_Ref/ and the distorted images (Train_Dis/ or Distortion_N/)",
    _load_pipal, (), "pipal.tar",
    "SR and restoration outputs rated by Elo from pairwise choices (Jinjin Gu et al., ECCV 2020)"))

_ALIASES = {a: s.name for s in DATABASES.values() for a in (s.name, *s.aliases)}


def list_databases() -> list[str]:
    return sorted(DATABASES)


def database_spec(name: str) -> DatabaseSpec:
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise UnknownNameError("IQA database", str(name), sorted(_ALIASES))
    return DATABASES[_ALIASES[key]]


def _locate(spec: DatabaseSpec, root: Path, depth: int = 2) -> tuple[Path, Path]:
    """(release folder, MOS file) below ``root`` (up to ``depth`` levels down)."""
    xlsx_without_reader = None
    for d in _subdirs(root, depth):
        for rel in spec.mos_files:
            p = _ci_path(d, rel)
            if p is None or (rel == "Train_Label" and not p.is_dir()) or (rel != "Train_Label" and not p.is_file()):
                continue
            if p.suffix.lower() == ".xlsx" and not _has_openpyxl() and len(spec.mos_files) > 1:
                xlsx_without_reader = xlsx_without_reader or (d, p)
                continue  # a CSV export may follow
            return d, p
    if xlsx_without_reader is not None:
        return xlsx_without_reader  # the reader raises the one-line "needs openpyxl or a CSV export" error
    raise IQADatabaseError(
        f"{root}: no {' or '.join(spec.mos_files)} found (the official score file of {spec.title}); expected "
        f"{spec.layout}; get the database from {spec.homepage}")


def load_database(name: str, root: str | os.PathLike[str] | None = None, *, hub: bool = False,
                  hub_repo: str | None = None, hub_file: str | None = None, limit: int | None = None,
                  **options: Any) -> IQADatabase:
    """Load database ``name`` from ``root`` (or from the hub when ``hub=True``).

    ``options`` go to the database's loader: ``koniq10k``: ``score`` ("MOS" or "MOS_zscore"),
    ``resolution`` ("1024x768" or "512x384"); ``livec``: ``include_training`` (False). ``limit``
    keeps the first N items (in the MOS file's order).
    """
    spec = database_spec(name)
    if hub:
        root = fetch_from_hub(spec.name, repo=hub_repo, filename=hub_file)
    if root is None:
        raise IQADatabaseError(f"{spec.name}: give the folder of the official release (--root PATH, holding "
                               f"{spec.layout}) or --hub; get it from {spec.homepage}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise IQADatabaseError(f"{root}: folder not found; {spec.title} expects {spec.layout}; "
                               f"get it from {spec.homepage}")
    try:
        folder, mos_file = _locate(spec, root)
    except IQADatabaseError:
        if hub:
            archive = f"{hub_repo or HUB_REPO}/{hub_file or spec.hub_file}"
            raise IQADatabaseError(f"{root}: the hub archive {archive} holds no {' or '.join(spec.mos_files)} "
                                   f"(the official score file); add it there from {spec.homepage}, or pass "
                                   f"--hub-repo/--hub-file for an archive that has it") from None
        raise
    import inspect

    accepted = [p for p in inspect.signature(spec.loader).parameters if p not in ("root", "mos_file")]
    for key in options:
        if key not in accepted:
            raise IQADatabaseError(f"unknown option {key!r} for database {spec.name!r} "
                                   f"(accepted: {', '.join(accepted) or 'none'})")
    got = spec.loader(folder, mos_file, **options)
    items = got["items"]
    if not items:
        raise IQADatabaseError(f"{mos_file}: no entries")
    if limit is not None:
        items = items[: max(0, int(limit))]
    return IQADatabase(spec, folder, mos_file, items, got["score_column"], got.get("score_range", spec.score_range),
                       list(got.get("notes", [])))


# ---------------------------------------------------------------------------------------------
# Hugging Face hub


def _hub_download(repo: str, filename: str, revision: str | None = None) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=repo, filename=filename, repo_type="dataset", revision=revision))


def _safe_extract(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            base = dest.resolve()
            for info in z.infolist():
                target = (dest / info.filename).resolve()
                if base != target and base not in target.parents:
                    raise IQADatabaseError(f"{archive}: unsafe path {info.filename!r} in the archive")
            z.extractall(dest)
        return
    try:
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise IQADatabaseError(f"{archive}: not a readable tar/zip archive ({e})") from None


def fetch_from_hub(name: str, repo: str | None = None, filename: str | None = None,
                   dest: str | os.PathLike[str] | None = None,
                   download: Callable[..., Path] | None = None) -> Path:
    """Fetch and extract the hub archive of database ``name``; returns the extracted folder.

    Default: ``HUB_REPO`` and the database's archive name (see the module doc). An existing
    extraction that holds the official MOS file is reused. Offline (``HF_HUB_OFFLINE=1`` or no
    network) the download error is reported as one line.
    """
    from iqa.assets import cache_root

    spec = database_spec(name)
    repo = repo or HUB_REPO
    filename = filename or spec.hub_file
    if not filename:
        raise IQADatabaseError(f"{spec.name}: no known hub archive; pass --hub-file with --hub-repo")
    target = Path(dest) if dest is not None else cache_root() / "data" / "iqa" / spec.name
    if target.is_dir():
        try:
            _locate(spec, target)
            return target
        except IQADatabaseError:
            pass
    try:
        archive = (download or _hub_download)(repo, filename, None)
    except SrbenchError:
        raise
    except Exception as e:  # network errors, missing repo/file, offline mode
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise IQADatabaseError(f"hub dataset {repo}: cannot fetch {filename} ({type(e).__name__}: {msg[:200]}); "
                               f"download {spec.title} from {spec.homepage} and pass --root") from None
    with build_dir(target, spec.name) as tmp:
        _safe_extract(Path(archive), tmp)
    return target
