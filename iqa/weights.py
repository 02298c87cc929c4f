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

Files are read with ``torch.load(..., weights_only=True)`` (no arbitrary unpickling) or as
safetensors. :func:`vgg16_features` and :func:`alexnet_features` build the convolutional part of
the two torchvision backbones, with the layer indices of torchvision's ``features`` so that the
standard state dicts load as they are.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import assets
from .errors import MissingAssetError, SrbenchError

__all__ = [
    "BACKBONES", "WEIGHTS_ENV", "BackboneFile", "alexnet_features", "backbone_state", "build_backbone",
    "find_backbone_weights", "load_state_dict", "package_file", "resolve_backbone", "vgg16_features",
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


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a torch checkpoint, loaded safely by
    ``iqa.assets.load_state_dict`` (no pickled code runs). A checkpoint holding
    ``{"state_dict": ...}`` or ``{"params": ...}`` is unwrapped.
    """
    obj: Mapping = assets.load_state_dict(path)[0]
    for key in ("state_dict", "params"):
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            obj = inner
            break
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SrbenchError(f"weights file {str(path)!r} does not hold a state dict of tensors")
    return dict(obj)


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
    """An object ``backbone`` as given, or the state dict loaded from the found weights file."""
    if backbone is not None and backbone_weights is not None:
        raise SrbenchError("pass either backbone (an object) or backbone_weights (a path), not both")
    if backbone is not None:
        return backbone
    return load_state_dict(find_backbone_weights(arch, backbone_weights))
