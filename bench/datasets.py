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
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from iqa.assets import cache_root, sha256_file
from iqa.errors import SrbenchError, UnknownNameError

from .io import IMAGE_EXTENSIONS, build_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class DatasetMissingError(SrbenchError):
    """A dataset whose files are not where they were looked for."""


def manifest_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("SRBENCH_MANIFESTS"):
        dirs += [Path(p) for p in os.environ["SRBENCH_MANIFESTS"].split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parent.parent / "datasets")  # source checkout / editable install
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
        parts = [f"hr={' or '.join(self.hr_patterns())}"]
        if "lr" in self.layout:
            parts.append(f"lr={self.layout['lr']}")
        return ", ".join(parts)


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


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


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

    def _glob(self, root: Path, pattern: str) -> list[Path]:
        if "/" in pattern:
            sub, _, pat = pattern.rpartition("/")
            dirs = sorted(root.glob(sub)) if any(c in sub for c in "*?[") else [root / sub]
        else:
            dirs, pat = [root], pattern
        files = []
        for d in dirs:
            if d.is_dir():
                files += [p for p in d.iterdir() if _is_image(p) and fnmatch.fnmatch(p.name, pat)]
        if "files" in (self.manifest.builtin or {}):
            wanted = set(self.manifest.builtin["files"])
            files = [p for p in files if p.name in wanted]
        return sorted(files)

    def _hr_files(self, root: Path, scale: int) -> tuple[list[Path], int]:
        for pattern in self.manifest.hr_patterns():
            if "{mod}" in pattern:
                mods = []
                for d in root.glob(pattern.split("/")[0].replace("{mod}", "*")):
                    match = re.fullmatch(re.escape(pattern.split("/")[0]).replace(r"\{mod\}", r"(\d+)"), d.name)
                    if match and scale % int(match.group(1)) == 0:
                        mods.append(int(match.group(1)))
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
        if not self.manifest.captions:
            return {}
        path = root / self.manifest.captions
        if not path.is_file():
            return {}
        out = {}
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                out[str(rec["id"])] = tuple(rec["captions"])
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
            raise self.missing_error([root], f"no HR images for x{scale}")
        captions = self._captions(root)
        metadata = self._metadata(root)
        items = []
        for hr in files:
            image_id = self._image_id(hr)
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

    # -- checking --------------------------------------------------------------------------------
    def check(self) -> list[str]:
        """Problems found (count mismatch, sha256 mismatch); empty when the dataset is complete."""
        m = self.manifest
        root = self.root()
        problems = []
        scale = m.scales[0] if m.scales else 4
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


def _hub_download(repo: str, filename: str, revision: str | None) -> Path:
    """Download one file of a hub dataset repository (cached by huggingface_hub)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=repo, filename=filename, repo_type="dataset", revision=revision))


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
        n += _extract_images(archive, target / subdir)
    return n


def _fetch_datasets(hub: dict[str, Any], target: Path, name: str) -> int:
    """Materialise a Hugging Face ``datasets`` split as image files (original bytes, no re-encoding)."""
    import datasets as hf_datasets

    ds = hf_datasets.load_dataset(hub["repo"], name=hub.get("config"), split=hub.get("split", "train"),
                                  revision=hub.get("revision"))
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
    with build_dir(target, m.folder) as tmp:
        n = _fetch_archives(m.hub, tmp, download) if kind == "archive" else _fetch_datasets(m.hub, tmp, m.name)
    return target, n
