"""Finding and loading the weight files of the deep full-reference metrics, without downloading.

Two kinds of files:

- ImageNet backbones (torchvision's AlexNet and VGG16 checkpoints). :func:`find_backbone_weights`
  looks, in order, at an explicit path, the folder named by ``$SRBENCH_WEIGHTS``, and torch hub's
  checkpoint cache (``$TORCH_HOME/hub/checkpoints``, where torchvision puts its downloads). It
  never downloads: when the file is nowhere it raises :class:`~iqa.errors.MissingAssetError`
  naming the file, the folders searched and the URL to fetch it from by hand.
- Small metric heads shipped inside PyPI packages (LPIPS linear layers in ``lpips``, DISTS
  alpha/beta in ``DISTS_pytorch``): :func:`package_file` finds them through the import system
  without importing (running) the package.

Files are read with ``torch.load(..., weights_only=True, mmap=True)`` (no arbitrary unpickling,
never read whole) or as safetensors.

Every file found by name is verified before it is used: its sha256 (taken once per process, see
:func:`iqa.assets.file_sha256`) must be the known one: torchvision's published checkpoints
(:data:`TORCHVISION_SHA256`), the converted ``.safetensors`` assets (``iqa.assets.ASSETS``), the
metric heads of the ``lpips`` and ``DISTS_pytorch`` packages (:data:`PACKAGE_SHA256`). A file given
by path (``backbone_weights=``, ``lin_weights=``, ``dists_weights=``) is the user's choice: its
sha256 is recorded (``verified`` tells whether it is one of the known files), not enforced.
:func:`load_verified` returns the state dict with the :func:`iqa.assets.file_record` that a
metric's ``provenance()`` reports (and the run fingerprints).

:func:`vgg16_features` and :func:`alexnet_features` build the convolutional part of the two
torchvision backbones, with the layer indices of torchvision's ``features`` so that the standard
state dicts load as they are.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import assets
from .errors import MissingAssetError, SrbenchError

__all__ = [
    "BACKBONES", "PACKAGE_SHA256", "TORCHVISION_SHA256", "WEIGHTS_ENV", "BackboneFile", "alexnet_features",
    "backbone_state", "build_backbone", "expected_backbone_sha256", "find_backbone_weights", "load_backbone",
    "load_package_file", "load_state_dict", "load_verified", "package_file", "resolve_backbone",
    "resolve_backbone_record", "vgg16_features",
]

WEIGHTS_ENV = "SRBENCH_WEIGHTS"


@dataclass(frozen=True)
class BackboneFile:
    arch: str
    filename: str  # torchvision's file name (its 8 hex digits are the start of the sha256)
    url: str


BACKBONES: dict[str, BackboneFile] = {
    "alexnet": BackboneFile("alexnet", "alexnet-owt-7be5be79.pth",
                            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg16": BackboneFile("vgg16", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
}


# sha256 of torchvision's ImageNet checkpoints (download.pytorch.org/models/<filename>); their file
# names carry the first 8 hex digits
TORCHVISION_SHA256 = {
    "alexnet": "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
    "vgg16": "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
}

# sha256 of the data files of PyPI packages that metrics read: the LPIPS v0.1 linear layers (lpips
# 0.1.4, the same files as PerceptualSimilarity's repository) and DISTS' alpha/beta (DISTS_pytorch 0.1)
PACKAGE_SHA256 = {
    ("lpips", "weights/v0.1/alex.pth"): "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    ("lpips", "weights/v0.1/vgg.pth"): "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    ("DISTS_pytorch", "weights.pt"): "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
}


def _hub_checkpoints() -> Path:
    # torch.hub.get_dir() honours $TORCH_HOME and $XDG_CACHE_HOME; it does no I/O.
    return Path(torch.hub.get_dir()) / "checkpoints"


def _candidates(filename: str) -> list[Path]:
    stem = Path(filename).stem
    names = [filename, stem + ".safetensors"]
    folders = []
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        folders.append(Path(env).expanduser())
    folders.append(_hub_checkpoints())
    folders.append(assets.cache_root() / "assets")  # converted by `srbench assets fetch`
    return [folder / name for folder in folders for name in names]


def find_backbone_weights(arch: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Path of the ImageNet weights of ``arch`` ("alexnet" or "vgg16"); never downloads.

    ``path`` (the ``backbone_weights`` option) wins and must exist. Otherwise the torchvision file
    name (or the same stem with ``.safetensors``) is looked up in ``$SRBENCH_WEIGHTS``, in
    ``torch.hub.get_dir()/checkpoints`` and in the asset cache (``srbench assets fetch alexnet``).
    """
    if arch not in BACKBONES:
        raise SrbenchError(f"unknown backbone {arch!r} (known: {', '.join(BACKBONES)})")
    info = BACKBONES[arch]
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise MissingAssetError(f"{arch} weights file given as backbone_weights={str(path)!r} does not exist")
        return p
    candidates = _candidates(info.filename)
    for p in candidates:
        if p.is_file():
            return p
    env = os.environ.get(WEIGHTS_ENV)
    searched = [f"${WEIGHTS_ENV}={env}" if env else f"${WEIGHTS_ENV} (unset)", str(_hub_checkpoints()),
                str(assets.cache_root() / "assets")]
    raise MissingAssetError(
        f"{arch} ImageNet weights {info.filename!r} not found (searched {', '.join(searched)}); run "
        f"`srbench assets fetch {arch}`, fetch {info.url} by hand into one of those folders, or pass "
        f"backbone_weights=PATH"
    )


def _unwrap(obj: Mapping, path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "params"):
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            obj = inner
            break
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SrbenchError(f"weights file {str(path)!r} does not hold a state dict of tensors")
    return dict(obj)


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a torch checkpoint, loaded safely by
    ``iqa.assets.load_state_dict`` (no pickled code runs). A checkpoint holding
    ``{"state_dict": ...}`` or ``{"params": ...}`` is unwrapped.
    """
    return _unwrap(assets.load_state_dict(path)[0], path)


def load_verified(path: str | os.PathLike[str], expected: str | None = None, *, known: tuple[str, ...] = (),
                  fix: str = "delete it and fetch it again",
                  mismatch_error: type[SrbenchError] = SrbenchError
                  ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state dict, file record)`` of ``path``: with ``expected`` (a sha256 or its 8-digit prefix)
    the file must match it (a mismatch is one line naming the file, both hashes and ``fix``);
    without, its sha256 is recorded and ``verified`` says whether it is one of ``known``."""
    sd, digest = assets.load_state_dict(path, expected, fix=fix, mismatch_error=mismatch_error)
    verified = expected is not None or digest in known
    return _unwrap(sd, path), assets.file_record(path, digest, verified=verified)


def expected_backbone_sha256(arch: str, path: Path) -> tuple[str, str]:
    """``(sha256, advice)`` for a backbone file found by its name: torchvision's file or the
    converted asset. The name decides the content, wherever the file lies."""
    info = BACKBONES[arch]
    fetch = f"`srbench assets fetch {arch} --force`"
    if path.suffix.lower() == ".safetensors":
        sha = assets.ASSETS.get(arch).sha256
        where = assets.ASSETS.path(arch)
        if path.resolve() == where.resolve():
            return sha, f"run {fetch}"
        return sha, (f"delete it and run {fetch}, or pass it as backbone_weights=PATH to use other weights "
                     f"on purpose (recorded, not verified)")
    return TORCHVISION_SHA256[arch], (f"delete it and download {info.url} again or run {fetch}, or pass it as "
                                      f"backbone_weights=PATH to use other weights on purpose (recorded, not verified)")


def _known_backbone_hashes(arch: str) -> tuple[str, ...]:
    return (TORCHVISION_SHA256[arch], assets.ASSETS.get(arch).sha256 or "")


def load_backbone(arch: str, path: str | os.PathLike[str] | None = None
                  ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state dict, file record)`` of the ImageNet weights of ``arch``.

    Found by name (:func:`find_backbone_weights` without ``path``): verified against the known
    sha256 of that name before use; a mismatch raises one line naming the file, both hashes and
    how to get the right file (the asset cache's own file is a `MissingAssetError`, so that
    ``srbench run`` fetches it again when it may). Given as ``path``: recorded, not enforced.
    """
    found = find_backbone_weights(arch, path)
    if path is not None:
        return load_verified(found, known=_known_backbone_hashes(arch))
    expected, fix = expected_backbone_sha256(arch, found)
    in_cache = found.resolve() == assets.ASSETS.path(arch).resolve() if found.suffix == ".safetensors" else False
    return load_verified(found, expected, fix=fix, mismatch_error=MissingAssetError if in_cache else SrbenchError)


def load_package_file(package: str, relative: str, path: str | os.PathLike[str] | None = None,
                      fallback: Path | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state dict, file record)`` of a metric head shipped in ``package`` (verified against
    :data:`PACKAGE_SHA256`), or of ``path`` when given (recorded, not enforced). ``fallback`` is a
    second place the package installs the file (``DISTS_pytorch`` also puts it at ``sys.prefix``)."""
    expected = PACKAGE_SHA256.get((package, relative))
    if path is not None:
        return load_verified(path, known=(expected,) if expected else ())
    try:
        found = package_file(package, relative)
    except MissingAssetError:
        if fallback is None or not fallback.is_file():
            raise
        found = fallback
    fix = f"reinstall the package: pip install --force-reinstall --no-deps {package}"
    return load_verified(found, expected, fix=fix)


def package_file(package: str, relative: str) -> Path:
    """Path of a data file shipped inside an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(f"package {package!r} is not installed, so its {relative!r} cannot be found "
                                f"(pip install {package}, or pass the file's path)")
    for folder in spec.submodule_search_locations:
        p = Path(folder) / relative
        if p.is_file():
            return p
    raise MissingAssetError(f"{relative!r} not found in the installed package {package!r} "
                            f"({', '.join(spec.submodule_search_locations)})")


# --- backbones -------------------------------------------------------------------------------

# (out_channels, kernel, stride, padding) of AlexNet's convolutions; "M" is a 3x3/2 max pool.
_ALEXNET = [(64, 11, 4, 2), "M", (192, 5, 1, 2), "M", (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), "M"]
# VGG16 (configuration "D"): 3x3 convolutions with padding 1; "M" is a 2x2/2 max pool.
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def alexnet_features() -> nn.Sequential:
    """torchvision AlexNet ``features`` (indices 0..12), randomly initialised."""
    layers: list[nn.Module] = []
    cin = 3
    for item in _ALEXNET:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        else:
            cout, k, s, p = item  # type: ignore[misc]
            layers += [nn.Conv2d(cin, cout, kernel_size=k, stride=s, padding=p), nn.ReLU()]
            cin = cout
    return nn.Sequential(*layers)


def vgg16_features() -> nn.Sequential:
    """torchvision VGG16 ``features`` (indices 0..30), randomly initialised."""
    layers: list[nn.Module] = []
    cin = 3
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(cin, int(item), kernel_size=3, padding=1), nn.ReLU()]
            cin = int(item)
    return nn.Sequential(*layers)


_BUILDERS = {"alexnet": alexnet_features, "vgg16": vgg16_features}


def backbone_state(arch: str, source: Mapping[str, torch.Tensor] | nn.Module) -> dict[str, torch.Tensor]:
    """The ``features`` part of a torchvision ``arch`` state dict, keys ``"<index>.weight|bias"``.

    ``source`` is a full torchvision state dict (keys ``features.N.*``; the classifier is
    ignored), a state dict of ``features`` alone (keys ``N.*``), or a module holding either.
    Raises when a convolution of the architecture is missing or has the wrong shape.
    """
    sd = source.state_dict() if isinstance(source, nn.Module) else source
    if not isinstance(sd, Mapping):
        raise SrbenchError(f"backbone must be a state dict or an nn.Module, got {type(source).__name__}")
    has_prefix = any(k.startswith("features.") for k in sd)
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if has_prefix:
            if k.startswith("features."):
                out[k[len("features."):]] = v
        elif k.split(".")[0].isdigit():
            out[k] = v
    expected = _BUILDERS[arch]().state_dict()
    missing = [k for k in expected if k not in out]
    if missing:
        raise SrbenchError(f"{arch} backbone state dict lacks {', '.join(missing[:4])}"
                           f"{' ...' if len(missing) > 4 else ''} (got keys such as {', '.join(list(sd)[:3])})")
    for k, v in expected.items():
        if tuple(out[k].shape) != tuple(v.shape):
            raise SrbenchError(f"{arch} backbone tensor {k!r} has shape {tuple(out[k].shape)}, expected {tuple(v.shape)}")
    return {k: out[k] for k in expected}


def build_backbone(arch: str, source: Mapping[str, torch.Tensor] | nn.Module) -> nn.Sequential:
    """torchvision ``arch`` ``features`` with the weights of ``source`` (see :func:`backbone_state`)."""
    if arch not in _BUILDERS:
        raise SrbenchError(f"unknown backbone {arch!r} (known: {', '.join(_BUILDERS)})")
    net = _BUILDERS[arch]()
    net.load_state_dict(backbone_state(arch, source))
    for prm in net.parameters():
        prm.requires_grad_(False)
    return net.eval()


def resolve_backbone(
    arch: str,
    backbone: Mapping[str, torch.Tensor] | nn.Module | None = None,
    backbone_weights: str | os.PathLike[str] | None = None,
) -> Mapping[str, torch.Tensor] | nn.Module:
    """An object ``backbone`` as given, or the state dict loaded (and verified, see
    :func:`load_backbone`) from the found weights file."""
    return resolve_backbone_record(arch, backbone, backbone_weights)[0]


def resolve_backbone_record(
    arch: str,
    backbone: Mapping[str, torch.Tensor] | nn.Module | None = None,
    backbone_weights: str | os.PathLike[str] | None = None,
) -> tuple[Mapping[str, torch.Tensor] | nn.Module, dict[str, Any]]:
    """:func:`resolve_backbone` and the record of where the weights came from: the file record of
    :func:`load_backbone`, or ``{"path": None, "sha256": None, "given": "object"}`` for an object."""
    if backbone is not None and backbone_weights is not None:
        raise SrbenchError("pass either backbone (an object) or backbone_weights (a path), not both")
    if backbone is not None:
        return backbone, {"path": None, "sha256": None, "given": "object"}
    return load_backbone(arch, backbone_weights)
