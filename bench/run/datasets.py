"""Datasets: one TOML manifest each in the repository's ``datasets/`` folder.

A manifest says what the dataset is (title, licence, homepage, image count), where it lives on
disk (``folder`` below a data root, and the ``[layout]`` of its files) and how to get it
(``[hub]``: a Hugging Face hub repository, either archives fetched with ``huggingface_hub`` or a
parquet/image dataset loaded with Hugging Face ``datasets``; ``[builtin]``: images shipped by an
installed package; otherwise the homepage for a manual download).

Data roots, first match wins: the ``data_root`` argument (``--data-root``), the ``SRBENCH_DATA``
environment variable (one or more folders separated by ``os.pathsep``), then the cache folder
``$SRBENCH_CACHE/data`` (default ``~/.cache/srbench/data``), which ``srbench data fetch`` fills.

Layout keys (paths relative to the dataset folder, ``*`` globs; ``{scale}`` is the SR factor):

- ``hr``: one pattern or a list tried in order; a pattern with ``{mod}`` (e.g. ``HR_mod{mod}/*.png``)
  names copies of the HR images cropped to a multiple of ``mod``; it serves every scale that
  ``mod`` divides (cropping a multiple of ``mod`` further to a multiple of ``scale`` equals
  cropping the original), so Set5 ``HR_mod4`` serves x4, x8 and x16.
- ``lr``: for real LR/HR pairs, the LR file of each image, with ``{id}`` and ``{scale}``.
- ``id_regex``: a regular expression with a group ``id`` that turns an HR file stem into the image
  id (default: the stem).

Which HR files serve a scale, and why (Set5, Set14, Urban100 list ``["HR/*", "HR_mod{mod}/*"]``):
``HR/`` holds the uncropped originals and serves every scale (the ``xN`` degradation crops each image
to a multiple of N first, as the benchmarks do). Without ``HR/``, an ``HR_mod<N>/`` copy serves the
scales that N divides. A scale that no copy serves (x5 beside ``HR_mod2/3/4`` only) is refused with
one line saying so (`ScaleNotServedError`), not served by cropping ``HR_mod4`` further: a copy
cropped to a multiple of 4 may already lack rows and columns that the originals cropped to a
multiple of 5 keep (Set14 ``comic``, 250 px wide: 248 in ``HR_mod4``, so 245 instead of 250 at
x5), and scores on a smaller image are not the benchmark's.

Captions (``captions = "captions.jsonl"``): JSON lines ``{"id": "<image id>", "captions": ["...", ...]}``
beside the images; each `ImageItem` carries its image's captions (none when the file or the line is
absent). A malformed file is a `DatasetContentError` naming the file and the line. `CaptionOverrides`
holds the captions a run gives instead (``--caption``, ``--captions FILE``).

Every image id (after ``id_regex``) is unique within a dataset, and every entry that looks like an
image or a folder of the layout can be read: two files with one id (``a.png`` and ``a.bmp``), a
symbolic link loop or a broken link raise `DatasetContentError` (one line naming the files) when
the items are listed, before anything is scored; nothing is skipped in silence.
"""

from __future__ import annotations

import difflib
import errno
import fnmatch
import hashlib
import json
import os
import re
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from iqa.assets import cache_root, one_line, sha256_file
from iqa.errors import SrbenchError, UnknownNameError

from bench.run.io import IMAGE_EXTENSIONS, build_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class DatasetMissingError(SrbenchError):
    """A dataset whose files are not where they were looked for."""


class ScaleNotServedError(DatasetMissingError):
    """A dataset that is present, but none of whose HR copies serves the scale asked for."""


class DatasetContentError(SrbenchError):
    """A dataset whose files are present but cannot be used as they are (two images with one id,
    a symbolic link loop, a broken link): the user must repair the folder; never skipped."""


class FetchError(SrbenchError):
    """A dataset that could not be downloaded (no network, offline mode, a hub error)."""


def manifest_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("SRBENCH_MANIFESTS"):
        dirs += [Path(p) for p in os.environ["SRBENCH_MANIFESTS"].split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / "datasets")  # source checkout / editable install
    dirs.append(Path(sys.prefix) / "share" / "srbench" / "datasets")  # wheel install (data-files)
    return dirs


def data_roots(data_root: str | Path | None = None) -> list[Path]:
    roots: list[Path] = []
    if data_root:
        roots += [Path(p).expanduser() for p in str(data_root).split(os.pathsep) if p]
    if os.environ.get("SRBENCH_DATA"):
        roots += [Path(p).expanduser() for p in os.environ["SRBENCH_DATA"].split(os.pathsep) if p]
    roots.append(cache_root() / "data")
    return roots


_MANIFEST_KEYS = {"name", "title", "description", "licence", "homepage", "count", "folder", "kind", "scales",
                  "layout", "hub", "builtin", "captions", "metadata", "sha256", "citation"}


@dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    description: str
    licence: str
    homepage: str
    count: int | None
    folder: str
    kind: str  # "synthetic" (LR made from HR) or "paired" (real LR/HR pairs)
    scales: tuple[int, ...] | None  # paired datasets: the scales that have pairs
    layout: dict[str, Any]
    hub: dict[str, Any] | None
    builtin: dict[str, Any] | None
    captions: str | None  # file of captions (JSON lines: {"id": ..., "captions": [...]})
    metadata: dict[str, Any] | None  # {"file": csv, "key": column with the file name, "subset": column}
    sha256: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_file(cls, path: Path) -> "Manifest":
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise SrbenchError(f"{path}: cannot read dataset manifest ({e})") from None
        unknown = set(data) - _MANIFEST_KEYS
        if unknown:
            raise SrbenchError(f"{path}: unknown manifest keys {sorted(unknown)}")
        for key in ("name", "title", "licence", "homepage", "layout"):
            if key not in data:
                raise SrbenchError(f"{path}: manifest lacks the key {key!r}")
        kind = data.get("kind", "synthetic")
        if kind not in ("synthetic", "paired"):
            raise SrbenchError(f"{path}: kind must be 'synthetic' or 'paired', got {kind!r}")
        return cls(
            name=data["name"], title=data["title"], description=data.get("description", ""),
            licence=data["licence"], homepage=data["homepage"], count=data.get("count"),
            folder=data.get("folder", data["name"]), kind=kind,
            scales=tuple(data["scales"]) if "scales" in data else None, layout=data["layout"],
            hub=data.get("hub"), builtin=data.get("builtin"), captions=data.get("captions"),
            metadata=data.get("metadata"), sha256=data.get("sha256", {}), path=path,
        )

    def hr_patterns(self) -> list[str]:
        hr = self.layout.get("hr", [])
        return [hr] if isinstance(hr, str) else list(hr)

    def layout_text(self) -> str:
        """The layout for people: ``{mod}``, ``{scale}`` and ``{id}`` read as ``<N>``, ``<scale>``, ``<id>``."""
        def show(pattern: str) -> str:
            return pattern.replace("{mod}", "<N>").replace("{scale}", "<scale>").replace("{id}", "<id>")

        parts = [f"hr={' or '.join(show(p) for p in self.hr_patterns())}"]
        if any("{mod}" in p for p in self.hr_patterns()):
            parts[0] += " (<N>: a copy cropped to a multiple of N, for the scales that are multiples of N)"
        if "lr" in self.layout:
            parts.append(f"lr={show(self.layout['lr'])}")
        if self.captions:
            parts.append(f"captions={self.captions}")
        return ", ".join(parts)


@dataclass(frozen=True)
class LocalCopy:
    """What `Dataset.local_copy` found: the folder (None when absent), the folders searched, the
    HR images per layout (``("HR_mod4", 5)``, ``("x4", 30)``, ``("HR", 100)``), and a problem
    (a symbolic link loop, a package not installed) or None."""

    folder: Path | None
    searched: list[Path]
    counts: list[tuple[str, int]]
    problem: str | None

    def summary(self, expected: int | None) -> str:
        """One line: ``/data/set5: HR_mod2 5/5, HR_mod4 5/5``, ``... HR 3/100 (partial copy)``,
        ``not found (searched ...)`` or the problem."""
        if self.problem:
            return f"problem: {self.problem}"
        if self.folder is None:
            return f"not found (searched {', '.join(str(d) for d in self.searched)})"
        found = [(label, n) for label, n in self.counts if n]
        parts = [" ".join(x for x in (label, f"{n}/{expected}" if expected else f"{n} images") if x)
                 for label, n in found]
        partial = expected and max((n for _, n in found), default=0) < expected
        return f"{self.folder}: {', '.join(parts) or 'no images'}{' (partial copy)' if partial else ''}"


def _all_manifests() -> dict[str, Manifest]:
    found: dict[str, Manifest] = {}
    for d in manifest_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                m = Manifest.from_file(p)
                found.setdefault(m.name, m)
    return found


def list_datasets() -> list[str]:
    return sorted(_all_manifests())


def get_manifest(name: str) -> Manifest:
    base = name.split(":", 1)[0]
    manifests = _all_manifests()
    if base not in manifests:
        raise UnknownNameError("dataset", base, list(manifests))
    return manifests[base]


@dataclass(frozen=True)
class ImageItem:
    """One image of a dataset at one scale. ``lr`` is set only for real pairs."""

    id: str
    hr: Path
    lr: Path | None = None
    hr_mod: int = 1  # the HR file is already cropped to a multiple of this
    captions: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()


def caption_records(path: Path, what: str = "captions file") -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) of each non-blank line of a JSON-lines captions file; a missing,
    unreadable or malformed file is a one-line `SrbenchError` naming the file (and the line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SrbenchError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as e:
        raise SrbenchError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise SrbenchError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise SrbenchError(f"{path} line {n}: not valid JSON ({e.msg} at column {e.colno}); each line must be "
                               f"an object like {{\"id\": \"...\", \"captions\": [\"...\"]}}") from None
        if not isinstance(rec, dict):
            raise SrbenchError(f"{path} line {n}: expected a JSON object like {{\"id\": \"...\", \"captions\": "
                               f"[\"...\"]}}, got {type(rec).__name__}")
        yield n, rec


_CAPTION_KEYS = {"id", "caption", "captions", "dataset"}


def caption_line(path: Path, n: int, rec: dict[str, Any], strict: bool = True) -> tuple[str, tuple[str, ...]]:
    """``(image id, captions)`` of one captions-file record: ``{"id": ..., "captions": [...]}`` or
    ``{"id": ..., "caption": "..."}``. ``strict``: other keys than id, caption(s) and dataset are an
    error (override files); a dataset's own file may carry more. One-line errors name the line."""
    where = f"{path} line {n}"
    if strict and (unknown := sorted(set(rec) - _CAPTION_KEYS)):
        raise SrbenchError(f"{where}: unknown keys {unknown} (known: dataset, id, caption, captions)")
    image_id = rec.get("id")
    if isinstance(image_id, bool) or not isinstance(image_id, (str, int)) or not str(image_id).strip():
        raise SrbenchError(f"{where}: \"id\" must be the image id (text), got {_shown(image_id)}")
    if ("caption" in rec) == ("captions" in rec):
        raise SrbenchError(f"{where}: give either \"caption\" (one text) or \"captions\" (a list), "
                           f"{'not both' if 'caption' in rec else 'found neither'}")
    if "caption" in rec:
        if not isinstance(rec["caption"], str):
            raise SrbenchError(f"{where}: \"caption\" must be text, got {_shown(rec['caption'])}")
        return str(image_id), (rec["caption"],)
    texts = rec["captions"]
    # a dataset's own file may list an image with no caption (it then has none); an override must give one
    if not isinstance(texts, list) or (strict and not texts) or not all(isinstance(t, str) for t in texts):
        raise SrbenchError(f"{where}: \"captions\" must be a {'non-empty ' if strict else ''}list of texts, "
                           f"got {_shown(texts)}")
    return str(image_id), tuple(texts)


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class CaptionOverrides:
    """The captions a run gives text-guided methods instead of the datasets' own (``--caption``,
    ``--captions FILE``; spec keys ``caption`` and ``captions``).

    ``text``: one caption for every image. ``file``: JSON lines ``{"id": ..., "caption": "..."}``
    or ``{"id": ..., "captions": [...]}`` (then the run's seeded choice picks one), optionally with
    ``"dataset": "coco"`` to restrict the line to one dataset of the run. For an image, a line of the
    file wins (one naming its dataset before one that does not), then ``text``, then the dataset's
    captions. `load` refuses, before anything runs, a file that is missing or malformed, a line
    naming a dataset that is not in the run, and an id that no dataset of the run has."""

    text: str | None = None
    file: Path | None = None
    sha256: str | None = None
    entries: dict[tuple[str | None, str], tuple[str, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.text is not None or self.file is not None

    @classmethod
    def load(cls, text: str | None, file: str | Path | None,
             dataset_ids: dict[str, set[str] | None]) -> CaptionOverrides:
        """``dataset_ids``: each dataset of the run -> the ids of its images (None when its images
        could not be listed here: ids meant for it cannot be checked)."""
        if file is None:
            return cls(text)
        from iqa.assets import sha256_file

        path = Path(file).expanduser()
        entries: dict[tuple[str | None, str], tuple[str, ...]] = {}
        first: dict[tuple[str | None, str], int] = {}
        for n, rec in caption_records(path):
            image_id, texts = caption_line(path, n, rec)
            dataset = rec.get("dataset")
            if dataset is not None:
                if not isinstance(dataset, str) or not dataset.strip():
                    raise SrbenchError(f"{path} line {n}: \"dataset\" must be a dataset name, got {dataset!r}")
                targets = [d for d in dataset_ids if d == dataset or d.split(":", 1)[0] == dataset]
                if not targets:
                    close = difflib.get_close_matches(dataset, list(dataset_ids), n=1, cutoff=0.5)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise SrbenchError(f"{path} line {n}: dataset {dataset!r} is not in this run{hint} (datasets: "
                                       f"{', '.join(dataset_ids)})")
            else:
                targets = list(dataset_ids)
            known = [dataset_ids[d] for d in targets]
            if all(ids is not None for ids in known) and not any(image_id in ids for ids in known):
                pool = sorted(set().union(*known))
                close = difflib.get_close_matches(image_id, pool, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise SrbenchError(f"{path} line {n}: id {image_id!r} is in no dataset of the run{hint} "
                                   f"({', '.join(targets)}: {len(pool)} images)")
            key = (dataset, image_id)
            if key in first:
                raise SrbenchError(f"{path} line {n}: id {image_id!r}"
                                   f"{f' of dataset {dataset!r}' if dataset else ''} is given twice (first on line "
                                   f"{first[key]})")
            first[key] = n
            entries[key] = texts
        return cls(text, path, sha256_file(path), entries)

    def captions_for(self, dataset: str, image_id: str) -> tuple[str, ...] | None:
        """The override captions of an image of ``dataset`` (None: the dataset's own apply)."""
        for key in ((dataset, image_id), (dataset.split(":", 1)[0], image_id), (None, image_id)):
            if key in self.entries:
                return self.entries[key]
        return (self.text,) if self.text is not None else None

    def fingerprint(self, dataset: str) -> dict[str, Any]:
        """What the overrides change for ``dataset`` (``{}``: nothing): part of the fingerprint of
        the cells of text-guided methods, so that another override recomputes them."""
        out: dict[str, Any] = {}
        if self.text is not None:
            out["caption"] = self.text
        base = dataset.split(":", 1)[0]
        mine = sorted((k[0] or "", k[1], list(v)) for k, v in self.entries.items() if k[0] in (None, dataset, base))
        if mine:
            out["captions"] = hashlib.sha256(json.dumps(mine).encode()).hexdigest()[:16]
        return out

    def record(self) -> dict[str, Any]:
        """For the run manifest: the text, or the file with its sha256 and number of entries."""
        out: dict[str, Any] = {}
        if self.text is not None:
            out["caption"] = self.text
        if self.file is not None:
            out["captions_file"] = {"path": str(self.file.resolve()), "sha256": self.sha256,
                                    "entries": len(self.entries)}
        return out


def _looks_like_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _link_problem(path: Path) -> str | None:
    """Why the symbolic link ``path`` cannot be followed (a loop, a missing target); None when it
    can, or when ``path`` is no link."""
    if not path.is_symlink():
        return None
    try:
        os.stat(path)
        return None
    except OSError as e:
        try:
            target = os.readlink(path)
        except OSError:  # pragma: no cover - removed meanwhile
            target = "?"
        if e.errno == errno.ELOOP:
            return f"{path}: symbolic link loop (it points to {target}, which leads back to it)"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"{path}: broken symbolic link (its target {target} does not exist)"
        return f"{path}: cannot follow the symbolic link to {target} ({e.strerror or e})"


def _check_link(path: Path, folder: bool = False) -> None:
    """Raise `DatasetContentError` for a link that cannot be followed, or a folder link that points
    to a folder containing it (walking it would visit the same files again, without end)."""
    problem = _link_problem(path)
    if problem is None and folder and path.is_symlink() and path.is_dir():
        real, parent = path.resolve(), path.parent.resolve()
        if real == parent or real in parent.parents:
            problem = f"{path}: symbolic link loop (it points to {os.readlink(path)}, a folder that contains it)"
    if problem:
        raise DatasetContentError(f"{problem}; remove the link or point it at the real files")


def _list_folder(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise DatasetContentError(f"{folder}: cannot list the folder ({e.strerror or e})") from None


class Dataset:
    """A dataset resolved on disk: ``items(scale)`` lists its images for one SR scale.

    ``name`` may carry a subset after a colon (``acdc:fog``) when the manifest's metadata names a
    subset column.
    """

    def __init__(self, name: str, data_root: str | Path | None = None):
        self.name = name
        self.manifest = get_manifest(name)
        self.subset = name.split(":", 1)[1] if ":" in name else None
        self._data_root = data_root

    # -- locating files -------------------------------------------------------------------------
    def candidate_dirs(self) -> list[Path]:
        m = self.manifest
        if m.builtin:
            return [self._builtin_dir()]
        return [root / m.folder for root in data_roots(self._data_root)]

    def _builtin_dir(self) -> Path:
        import importlib.util

        pkg = self.manifest.builtin["package"]
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise DatasetMissingError(f"dataset {self.name!r} needs the package {pkg!r}: pip install {pkg}")
        return Path(list(spec.submodule_search_locations)[0]) / self.manifest.builtin.get("subdir", "")

    def root(self) -> Path:
        """The first candidate folder that holds the dataset's HR images."""
        dirs = self.candidate_dirs()
        for d in dirs:
            _check_link(d)
            if d.is_dir() and any(self._glob(d, p.replace("{mod}", "*").replace("{scale}", "*"))
                                  for p in self.manifest.hr_patterns()):
                return d
        raise self.missing_error(dirs)

    def missing_error(self, dirs: Iterable[Path], detail: str = "") -> DatasetMissingError:
        m = self.manifest
        how = f"run `srbench data fetch {m.name}`" if (m.hub or m.builtin) else f"download it from {m.homepage}"
        count = f"{m.count} images, " if m.count else ""
        searched = ", ".join(str(d) for d in dirs)
        extra = f" ({detail})" if detail else ""
        return DatasetMissingError(
            f"dataset {m.name!r} not found{extra}: searched {searched}; expected {count}layout {m.layout_text()}; "
            f"{how}, or point --data-root/SRBENCH_DATA at a folder that holds {m.folder}/"
        )

    def _dirs(self, root: Path, sub: str) -> list[Path]:
        """The folders below ``root`` that the relative path ``sub`` (parts may hold ``*?[``
        wildcards) names. Walked one level at a time, never deeper than ``sub`` says; a link on
        the way that cannot be followed, or that loops, raises `DatasetContentError`."""
        dirs = [root]
        for part in (p for p in sub.split("/") if p):
            found = []
            for d in dirs:
                if any(c in part for c in "*?["):
                    candidates = [e for e in _list_folder(d) if fnmatch.fnmatch(e.name, part)]
                else:
                    candidates = [d / part]
                for c in candidates:
                    _check_link(c, folder=True)
                    if c.is_dir():
                        found.append(c)
            dirs = found
        return dirs

    def _glob(self, root: Path, pattern: str) -> list[Path]:
        sub, _, pat = pattern.rpartition("/")
        wanted = set(self.manifest.builtin["files"]) if "files" in (self.manifest.builtin or {}) else None
        files = []
        for d in self._dirs(root, sub):
            for p in _list_folder(d):
                if not _looks_like_image(p) or not fnmatch.fnmatch(p.name, pat) or (wanted and p.name not in wanted):
                    continue
                _check_link(p)  # an image entry that cannot be read is named, never skipped
                if p.is_file():
                    files.append(p)
        return sorted(files)

    def _mod_copies(self, root: Path, pattern: str) -> list[int]:
        """The N of every ``HR_mod<N>`` folder present for a ``{mod}`` pattern, ascending."""
        head = pattern.split("/")[0]
        regex = re.escape(head).replace(r"\{mod\}", r"(\d+)")
        mods = {int(m.group(1)) for d in self._dirs(root, head.replace("{mod}", "*"))
                if (m := re.fullmatch(regex, d.name)) and int(m.group(1)) > 0}
        return sorted(mods)

    def _hr_files(self, root: Path, scale: int) -> tuple[list[Path], int]:
        for pattern in self.manifest.hr_patterns():
            if "{mod}" in pattern:
                mods = [mod for mod in self._mod_copies(root, pattern) if scale % mod == 0]
                for mod in sorted(mods, reverse=True):
                    files = self._glob(root, pattern.replace("{mod}", str(mod)).replace("{scale}", str(scale)))
                    if files:
                        return files, mod
                continue
            files = self._glob(root, pattern.replace("{scale}", str(scale)))
            if files:
                return files, 1
        return [], 1

    def _image_id(self, path: Path) -> str:
        regex = self.manifest.layout.get("id_regex")
        if regex:
            match = re.fullmatch(regex, path.stem)
            if match:
                return match.group("id")
        return path.stem

    def _captions(self, root: Path) -> dict[str, tuple[str, ...]]:
        """``{image id: captions}`` from the manifest's captions file (absent: none); a malformed
        file is a `DatasetContentError` naming the file and the line."""
        if not self.manifest.captions:
            return {}
        path = root / self.manifest.captions
        if not path.is_file():
            return {}
        out: dict[str, tuple[str, ...]] = {}
        first: dict[str, int] = {}
        try:
            for n, rec in caption_records(path):
                image_id, texts = caption_line(path, n, rec, strict=False)
                if image_id in first:
                    raise SrbenchError(f"{path} line {n}: id {image_id!r} is given twice (first on line "
                                       f"{first[image_id]})")
                first[image_id] = n
                out[image_id] = texts
        except SrbenchError as e:
            raise DatasetContentError(f"dataset {self.manifest.name!r}: {e}") from None
        return out

    def _metadata(self, root: Path) -> dict[str, dict[str, str]]:
        md = self.manifest.metadata
        if not md or not (root / md["file"]).is_file():
            return {}
        import csv

        with open(root / md["file"], newline="") as f:
            return {Path(r[md["key"]]).stem: r for r in csv.DictReader(f)}

    def supports(self, scale: int) -> bool:
        return self.manifest.scales is None or scale in self.manifest.scales

    def items(self, scale: int) -> list[ImageItem]:
        """The dataset's images for ``scale``; a missing dataset raises `DatasetMissingError`."""
        m = self.manifest
        if not self.supports(scale):
            raise SrbenchError(f"dataset {m.name!r} has real pairs only at x{', x'.join(map(str, m.scales))}, not x{scale}")
        root = self.root()
        files, mod = self._hr_files(root, scale)
        if not files:
            raise ScaleNotServedError(self._no_copy_message(root, scale))
        captions = self._captions(root)
        metadata = self._metadata(root)
        items = []
        seen: dict[str, Path] = {}
        for hr in files:
            image_id = self._image_id(hr)
            if image_id in seen:  # checked over the whole dataset, whatever subset is asked for
                raise DatasetContentError(self._duplicate_message(image_id, seen[image_id], hr))
            seen[image_id] = hr
            lr = None
            if m.kind == "paired":
                lr = root / m.layout["lr"].format(id=image_id, scale=scale)
                if not lr.is_file():
                    lr = None  # reported per image by the runner as a missing-LR error row
            meta = metadata.get(hr.stem, {})
            if self.subset:
                column = (m.metadata or {}).get("subset")
                if not column:
                    raise SrbenchError(f"dataset {m.name!r} has no subsets (asked for {self.subset!r})")
                if meta.get(column) != self.subset:
                    continue
            items.append(ImageItem(image_id, hr, lr, mod, captions.get(image_id, ()),
                                   tuple(sorted((k, str(v)) for k, v in meta.items()))))
        if self.subset and not items:
            known = sorted({r.get(m.metadata["subset"], "") for r in metadata.values()})
            raise UnknownNameError(f"subset of {m.name!r}", self.subset, known)
        return items

    def _no_copy_message(self, root: Path, scale: int) -> str:
        """Why a dataset that is present has no HR images for ``scale``, and what to add (one line)."""
        m = self.manifest
        why, add = [], []
        for pattern in m.hr_patterns():
            wanted = pattern.replace("{mod}", str(scale)).replace("{scale}", str(scale))
            add.append(wanted)
            if "{mod}" not in pattern:
                note = " (the uncropped originals, which serve every scale)" if "{scale}" not in pattern else ""
                why.append(f"nothing matches {wanted}{note}")
                continue
            mods = self._mod_copies(root, pattern)
            head = pattern.split("/")[0]
            if not mods:
                why.append(f"there is no {head.replace('{mod}', str(scale))}/ copy")
                continue
            names = ", ".join(head.replace("{mod}", str(n)) + "/" for n in mods)
            numbers = " or ".join(", ".join(map(str, mods)).rsplit(", ", 1))
            why.append(f"{names} {'are copies' if len(mods) > 1 else 'is a copy'} cropped to a multiple of {numbers}, "
                       f"serving only scales that are multiples of {'those' if len(mods) > 1 else 'it'} (cropping one "
                       f"further to a multiple of {scale} can drop rows and columns that the originals keep)")
        lr = f" with their LR files {m.layout['lr'].format(id='<id>', scale=scale)}" if "lr" in m.layout else ""
        return (f"dataset {m.name!r} has no HR images for x{scale} in {root}: {'; '.join(why)}; "
                f"add {' or '.join(dict.fromkeys(add))}{lr} there")

    def _duplicate_message(self, image_id: str, first: Path, second: Path) -> str:
        same = " (the same file, reached through a symbolic link)" if first.resolve() == second.resolve() else ""
        return (f"dataset {self.manifest.name!r}: two images have the id {image_id!r}: {first} and {second}{same}; "
                f"image ids (file names without the extension) must be unique in a dataset: remove or rename one")

    # -- what is there ---------------------------------------------------------------------------
    def local_copy(self) -> LocalCopy:
        """Where the dataset is found and how many HR images each layout holds (for `srbench list`).
        Never raises for a dataset that is absent or broken: that is part of the answer."""
        m = self.manifest
        try:
            searched = self.candidate_dirs()
        except SrbenchError as e:  # a built-in dataset whose package is not installed
            return LocalCopy(None, [], [], str(e))
        try:
            root = self.root()
        except DatasetMissingError:
            return LocalCopy(None, searched, [], None)
        except SrbenchError as e:
            return LocalCopy(None, searched, [], str(e))
        counts: list[tuple[str, int]] = []
        try:
            for pattern in m.hr_patterns():
                if "{mod}" in pattern:
                    for mod in self._mod_copies(root, pattern):
                        counts.append((pattern.split("/")[0].replace("{mod}", str(mod)),
                                       len(self._glob(root, pattern.replace("{mod}", str(mod))))))
                elif "{scale}" in pattern:
                    for scale in m.scales or ():
                        counts.append((f"x{scale}", len(self._glob(root, pattern.replace("{scale}", str(scale))))))
                else:
                    sub = pattern.rpartition("/")[0]
                    counts.append((sub if "*" not in sub else pattern, len(self._glob(root, pattern))))
        except SrbenchError as e:
            return LocalCopy(root, searched, counts, str(e))
        return LocalCopy(root, searched, counts, None)

    # -- checking --------------------------------------------------------------------------------
    def check_scale(self) -> int:
        """The scale whose images `check` counts: of the manifest's scales (real pairs) or x4, x3,
        x2 (what ``HR/`` or the usual ``HR_mod<N>/`` copies serve), the one with the most images,
        so that a copy with pairs at x4 only is a partial copy, not a missing one; the first scale
        when none has images (its error then says what is missing)."""
        scales = self.manifest.scales or (4, 3, 2)
        best, most = scales[0], -1
        for scale in scales:
            try:
                n = len(self.items(scale))
            except ScaleNotServedError:
                continue
            if n > most:
                best, most = scale, n
        return best

    def check(self) -> list[str]:
        """Problems found (count mismatch, sha256 mismatch); empty when the dataset is complete."""
        m = self.manifest
        root = self.root()
        problems = []
        scale = self.check_scale()
        n = len(self.items(scale))
        if m.count is not None and n != m.count:
            problems.append(f"{root}: {n} images found for x{scale}, the manifest expects {m.count}")
        for rel, expected in m.sha256.items():
            path = root / rel
            if not path.is_file():
                problems.append(f"{path}: missing (listed with a sha256)")
            elif (actual := sha256_file(path)) != expected:
                problems.append(f"{path}: sha256 {actual} does not match the expected {expected}")
        return problems


# ---------------------------------------------------------------------------------------------
# Fetching from the Hugging Face hub


_TRUE = ("1", "ON", "YES", "TRUE")  # what huggingface_hub and datasets read as "on"


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _offline_setting(*names: str) -> str | None:
    """``"HF_HUB_OFFLINE=1"`` when one of the variables ``names`` switches offline mode on."""
    for name in names:
        if os.environ.get(name, "").strip().upper() in _TRUE:
            return f"{name}={os.environ[name]}"
    return None


def _network_problem(url: str, timeout: float = 5.0) -> str:
    """``""`` when a TCP connection to ``url``'s host (or to the proxy that serves it) opens within
    about ``timeout`` seconds, else why not, e.g. ``"huggingface.co: Name or service not known"``.
    A few seconds instead of the hub client's minute of retries; a hanging name lookup is cut off
    too (the probe runs in a daemon thread)."""
    import socket
    import threading
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (80 if parts.scheme == "http" else 443)
    if not host:
        return ""
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.hostname:
            host, port = p.hostname, p.port or (443 if p.scheme == "https" else 80)
    answer: list[str] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answer.append("")
        except OSError as e:
            answer.append(f"{host}: {one_line(e.strerror or e, 120)}")

    thread = threading.Thread(target=probe, name="srbench-network-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return answer[0] if answer else f"{host}: no answer within {timeout:.0f} s"


def _require_network(what: str, *offline_vars: str) -> None:
    """Raise `FetchError` at once when offline mode is on or the hub cannot be reached."""
    setting = _offline_setting(*offline_vars)
    if setting:
        raise FetchError(f"offline mode is on ({setting}) and {what} is not in the Hugging Face cache")
    problem = _network_problem(_hub_endpoint())
    if problem:
        raise FetchError(f"the network is unreachable ({problem})")


def _hub_download(repo: str, filename: str, revision: str | None) -> Path:
    """Download one file of a hub dataset repository (cached by huggingface_hub); no network, or
    offline mode, raises `FetchError` at once (unless the file is in the hub cache already)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    kw = {"repo_id": repo, "filename": filename, "repo_type": "dataset", "revision": revision}
    errors = (OSError, ValueError, EntryNotFoundError)  # HTTP errors, connection lost, bad repo id, not cached
    try:
        return Path(hf_hub_download(**kw, local_files_only=True))  # in the cache: no network needed
    except errors:  # not in the cache: ask the hub below
        pass
    _require_network(filename, "HF_HUB_OFFLINE")
    try:
        return Path(hf_hub_download(**kw))
    except errors as e:
        raise FetchError(f"downloading {filename} failed ({one_line(e, 200)})") from None


def _extract_images(archive: Path, dest: Path) -> int:
    """Extract the image files of a tar/zip archive flat into ``dest``; returns how many."""
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                name = Path(info.filename).name
                if not info.is_dir() and Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith("."):
                    (dest / name).write_bytes(z.read(info))
                    n += 1
        return n
    with tarfile.open(archive) as t:
        for member in t.getmembers():
            name = Path(member.name).name
            if member.isfile() and Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith("."):
                src = t.extractfile(member)
                if src is not None:
                    (dest / name).write_bytes(src.read())
                    n += 1
    return n


def _fetch_archives(hub: dict[str, Any], target: Path, download: Callable[..., Path]) -> int:
    n = 0
    for subdir, filename in hub["files"].items():
        archive = download(hub["repo"], filename, hub.get("revision"))
        try:
            n += _extract_images(archive, target / subdir)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
            raise SrbenchError(f"{archive}: not a readable archive ({one_line(e, 120)}); delete it and fetch again") from None
    return n


def _fetch_datasets(hub: dict[str, Any], target: Path, name: str) -> int:
    """Materialise a Hugging Face ``datasets`` split as image files (original bytes, no re-encoding)."""
    import datasets as hf_datasets

    if not Path(hub["repo"]).expanduser().exists() and not _offline_setting("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        problem = _network_problem(_hub_endpoint())  # a hub repository, not a local copy
        if problem:
            raise FetchError(f"the network is unreachable ({problem})")
    try:
        ds = hf_datasets.load_dataset(hub["repo"], name=hub.get("config"), split=hub.get("split", "train"),
                                      revision=hub.get("revision"))
    except (OSError, ValueError) as e:  # not found, offline without a cached copy, HTTP errors
        raise FetchError(f"loading it failed ({one_line(e, 200)})") from None
    column = hub.get("image_column", "image")
    if column not in ds.column_names:
        raise SrbenchError(f"hub dataset {hub['repo']!r} has no image column {column!r} (columns: {ds.column_names})")
    ds = ds.cast_column(column, hf_datasets.Image(decode=False))
    subdir = target / hub.get("subdir", "HR")
    subdir.mkdir(parents=True, exist_ok=True)
    id_column, cap_column = hub.get("id_column"), hub.get("caption_column")
    captions = []
    for i, row in enumerate(ds):
        image = row[column]
        src_name = Path(image.get("path") or "").name
        stem = Path(str(row[id_column])).stem if id_column else (Path(src_name).stem or f"{i:06d}")
        data = image["bytes"] if image.get("bytes") is not None else Path(image["path"]).read_bytes()
        suffix = Path(src_name).suffix.lower() if Path(src_name).suffix.lower() in IMAGE_EXTENSIONS else _sniff(data)
        (subdir / f"{stem}{suffix}").write_bytes(data)
        if cap_column:
            caps = row[cap_column]
            captions.append({"id": stem, "captions": [caps] if isinstance(caps, str) else list(caps)})
    if captions:
        with open(target / hub.get("captions_file", "captions.jsonl"), "w") as f:
            f.writelines(json.dumps(c) + "\n" for c in captions)
    return len(ds)


def _sniff(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:2] == b"\xff\xd8":
        return ".jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".png"


def fetch(name: str, data_root: str | Path | None = None,
          download: Callable[..., Path] = _hub_download) -> tuple[Path, int]:
    """Prepare dataset ``name`` under the first data root; returns (folder, images written).

    Writes into a temporary folder beside the target and renames it into place, so an interrupted
    fetch leaves nothing half-written behind.
    """
    ds = Dataset(name, data_root)
    m = ds.manifest
    if m.builtin:
        return ds.root(), 0
    if not m.hub:
        raise SrbenchError(f"dataset {m.name!r} has no automatic source: download it from {m.homepage} "
                           f"and place it as {m.folder}/ ({m.layout_text()}) under a data root")
    target = data_roots(data_root)[0] / m.folder
    kind = m.hub.get("kind", "datasets")
    if kind not in ("archive", "datasets"):
        raise SrbenchError(f"{m.path}: hub kind must be 'archive' or 'datasets', got {kind!r}")
    try:
        with build_dir(target, m.folder) as tmp:
            n = _fetch_archives(m.hub, tmp, download) if kind == "archive" else _fetch_datasets(m.hub, tmp, m.name)
    except FetchError as e:
        repo = m.hub["repo"]
        source = (f"the local copy {repo}" if Path(repo).expanduser().exists()
                  else f"the Hugging Face hub dataset {repo} ({_hub_endpoint()}/datasets/{repo})")
        raise FetchError(f"cannot fetch dataset {m.name!r} from {source}: {e}; to place it by hand, get the images "
                         f"(from that page or {m.homepage}) into {target}/ with the layout {m.layout_text()}, then "
                         f"check it with `srbench data check {m.name}`") from None
    return target, n
