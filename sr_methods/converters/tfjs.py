"""TensorFlow.js *layers* models: a reader, and a converter of idealo RRDN graphs to ``sr_methods.rrdn``.

A TF.js layers model is a ``model.json`` plus binary weight shards next to it:

- ``modelTopology``: the Keras model config (``{"class_name": "Functional"|"Model", "config":
  {"layers": [...], "input_layers": [...], "output_layers": [...]}}``), either directly or under
  ``"model_config"``; each layer has ``class_name``, ``name``, ``config`` and ``inbound_nodes``
  (Keras 2 form: ``[[[layer_name, node_index, tensor_index, kwargs], ...]]``).
- ``weightsManifest``: a list of groups ``{"paths": [shard files], "weights": [{"name", "shape",
  "dtype", "quantization"?}]}``. A group's shards, concatenated in ``paths`` order, hold its weights
  back to back in ``weights`` order, little-endian. A quantised weight is stored as
  ``quantization["dtype"]`` (``uint8``/``uint16``: ``value = q * scale + min``; ``float16``: cast)
  and decoded to its ``dtype`` (``original_dtype`` in older manifests).

Public API:

- ``load_tfjs_model(model_json) -> TFJSModel``: the parsed graph (``layers``, ``inputs``,
  ``outputs``) and every weight as a named float32 (or int32/bool) numpy array;
- ``read_weights(manifest, folder, source) -> dict[str, np.ndarray]``;
- ``convert_rrdn(model_json) -> (state_dict, config)``: match the graph against idealo's RRDN
  (the UpscalerJS "ESRGAN-thick" models; custom layers ``MultiplyBeta`` and ``PixelShuffle<r>x``)
  and return an ``sr_methods.rrdn.RRDN`` state dict (Conv2D kernels HWIO -> OIHW) and its config.
  Every layer must take its place in the pattern and every weight must be used exactly once;
  anything else raises ``SrbenchError`` naming the file;
- ``convert_file(model_json, out_path) -> Path``: write the state dict as ``.safetensors``
  (atomically), the config in the metadata (``"config"`` as JSON, and each field as its own key).

Command line: ``python -m sr_methods.converters.tfjs MODEL_JSON OUT.safetensors``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iqa.assets import write_safetensors
from iqa.errors import MissingAssetError, SrbenchError

__all__ = ["KerasLayer", "TFJSModel", "convert_file", "convert_rrdn", "decode_weight", "load_tfjs_model",
           "parse_topology", "read_weights"]

# bytes per element of the dtypes a TF.js manifest can name (storage dtypes included)
_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"), "int32": np.dtype("<i4"), "bool": np.dtype("u1"),
    "uint8": np.dtype("u1"), "uint16": np.dtype("<u2"), "float16": np.dtype("<f2"),
}
_ORIGINAL = ("float32", "int32", "bool")  # dtypes a decoded weight may have

# layer classes of the RRDN pattern
_BETA_CLASSES = ("MultiplyBeta",)
_PIXEL_SHUFFLE_PREFIX = "PixelShuffle"
RRDN_BETA = 0.2  # UpscalerJS's MultiplyBeta multiplies by this constant, whatever its config says


# ------------------------------------------------------------------------------------------- reader

@dataclass
class KerasLayer:
    """One layer of a functional Keras graph; ``inbound`` are the names of its input layers, in order."""

    name: str
    class_name: str
    config: dict[str, Any]
    inbound: list[str]


@dataclass
class TFJSModel:
    path: Path
    layers: dict[str, KerasLayer]  # in model.json order
    inputs: list[str]
    outputs: list[str]
    weights: dict[str, np.ndarray]  # in manifest order
    info: dict[str, Any] = field(default_factory=dict)  # format, generatedBy, convertedBy, keras_version


def _fail(source: Any, msg: str) -> SrbenchError:
    return SrbenchError(f"{source}: {msg}")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingAssetError(f"TF.js model file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(path, f"cannot read the model JSON ({getattr(e, 'strerror', None) or e})") from None
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise _fail(path, f"not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise _fail(path, f"expected a JSON object, found {type(obj).__name__}")
    return obj


def _inbound_names(layer: dict[str, Any], source: Any) -> list[str]:
    nodes = layer.get("inbound_nodes", [])
    name = layer.get("name")
    if not isinstance(nodes, list):
        raise _fail(source, f"layer {name!r}: inbound_nodes must be a list")
    if not nodes:
        return []
    if len(nodes) != 1:
        raise _fail(source, f"layer {name!r} is called {len(nodes)} times (shared layers are not supported)")
    out = []
    for item in nodes[0] if isinstance(nodes[0], list) else [nodes[0]]:
        if not (isinstance(item, list) and len(item) >= 3 and isinstance(item[0], str)):
            raise _fail(source, f"layer {name!r}: unsupported inbound node {json.dumps(item)[:120]} "
                                "(only the Keras 2 form [layer, node, tensor, kwargs] is supported)")
        if item[1] != 0 or item[2] != 0:
            raise _fail(source, f"layer {name!r}: input {item[0]!r} uses node {item[1]}, tensor {item[2]} "
                                "(only single-output, unshared layers are supported)")
        if len(item) > 3 and item[3]:
            raise _fail(source, f"layer {name!r}: call arguments {item[3]!r} on input {item[0]!r} are not supported")
        out.append(item[0])
    return out


def parse_topology(model_json: dict[str, Any],
                   source: Any = "model.json") -> tuple[dict[str, KerasLayer], list[str], list[str]]:
    """``(layers by name in file order, input layer names, output layer names)`` of a functional model."""
    topo = model_json.get("modelTopology")
    if not isinstance(topo, dict):
        raise _fail(source, "no modelTopology (is this a TF.js layers model? graph models are not supported)")
    model = topo.get("model_config", topo)
    cls = model.get("class_name") if isinstance(model, dict) else None
    if cls == "Sequential":
        raise _fail(source, "Sequential models are not supported (only functional graphs)")
    if cls not in ("Functional", "Model") or not isinstance(model.get("config"), dict):
        raise _fail(source, f"unsupported model class {cls!r} (expected a functional Keras model)")
    cfg = model["config"]
    raw = cfg.get("layers")
    if not isinstance(raw, list) or not raw:
        raise _fail(source, "the model config has no layers")
    layers: dict[str, KerasLayer] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("class_name"), str):
            raise _fail(source, f"malformed layer entry {json.dumps(item)[:120]}")
        conf = item.get("config") if isinstance(item.get("config"), dict) else {}
        name = item.get("name", conf.get("name"))
        if not isinstance(name, str):
            raise _fail(source, f"a {item['class_name']} layer has no name")
        if name in layers:
            raise _fail(source, f"duplicate layer name {name!r}")
        layers[name] = KerasLayer(name, item["class_name"], conf, _inbound_names(item, source))
    for layer in layers.values():
        for src in layer.inbound:
            if src not in layers:
                raise _fail(source, f"layer {layer.name!r} takes input from unknown layer {src!r}")

    def ends(key: str) -> list[str]:
        items = cfg.get(key)
        if not isinstance(items, list) or not items:
            raise _fail(source, f"the model config has no {key}")
        names = []
        for it in items:
            if not (isinstance(it, list) and it and it[0] in layers):
                raise _fail(source, f"bad entry in {key}: {it!r}")
            names.append(it[0])
        return names

    return layers, ends("input_layers"), ends("output_layers")


def decode_weight(buf: bytes | memoryview, spec: dict[str, Any], source: Any = "weights") -> np.ndarray:
    """Decode one weight's bytes (exactly its stored size) per its manifest entry ``spec``."""
    name = spec.get("name")
    shape = tuple(int(s) for s in spec.get("shape", []))
    quant = spec.get("quantization")
    dtype = spec.get("dtype") or (quant or {}).get("original_dtype") or "float32"
    if dtype not in _ORIGINAL:
        raise _fail(source, f"weight {name!r} has unsupported dtype {dtype!r} (supported: {', '.join(_ORIGINAL)})")
    n = int(np.prod(shape, dtype=np.int64))
    if quant is None:
        stored = np.frombuffer(buf, dtype=_DTYPES[dtype], count=n)
        out = stored.astype(np.float32 if dtype == "float32" else np.int32 if dtype == "int32" else np.bool_)
        return out.reshape(shape)
    if not isinstance(quant, dict):
        raise _fail(source, f"weight {name!r}: quantization must be an object, got {quant!r}")
    qd = quant.get("dtype")
    if qd not in ("uint8", "uint16", "float16"):
        raise _fail(source, f"weight {name!r}: unsupported quantization dtype {qd!r} "
                            "(supported: uint8, uint16, float16)")
    q = np.frombuffer(buf, dtype=_DTYPES[qd], count=n)
    if qd == "float16":
        if dtype != "float32":
            raise _fail(source, f"weight {name!r}: float16 quantization of a {dtype} weight is not supported")
        return q.astype(np.float32).reshape(shape)
    if "scale" not in quant or "min" not in quant:
        raise _fail(source, f"weight {name!r}: {qd} quantization needs 'scale' and 'min'")
    # computed in double, then stored in the original dtype (as a JS Float32Array/Int32Array store does)
    values = q.astype(np.float64) * float(quant["scale"]) + float(quant["min"])
    if dtype == "float32":
        return values.astype(np.float32).reshape(shape)
    if dtype == "int32":
        return np.round(values).astype(np.int32).reshape(shape)
    raise _fail(source, f"weight {name!r}: quantised {dtype} weights are not supported")


def _stored_nbytes(spec: dict[str, Any], source: Any) -> int:
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise _fail(source, f"weight {spec.get('name')!r} has a bad shape {shape!r}")
    quant = spec.get("quantization")
    dt = quant.get("dtype") if isinstance(quant, dict) else spec.get("dtype", "float32")
    if dt not in _DTYPES:
        raise _fail(source, f"weight {spec.get('name')!r} has unsupported stored dtype {dt!r}")
    return int(np.prod(shape, dtype=np.int64)) * _DTYPES[dt].itemsize


def read_weights(manifest: Sequence[dict[str, Any]], folder: str | os.PathLike[str],
                 source: Any = "model.json") -> dict[str, np.ndarray]:
    """All weights of a ``weightsManifest`` as named arrays; shards are read from ``folder``."""
    folder = Path(folder)
    if not isinstance(manifest, list):
        raise _fail(source, "weightsManifest must be a list of groups")
    out: dict[str, np.ndarray] = {}
    for gi, group in enumerate(manifest):
        if not isinstance(group, dict) or not isinstance(group.get("paths"), list) \
                or not isinstance(group.get("weights"), list):
            raise _fail(source, f"weightsManifest group {gi} needs 'paths' and 'weights' lists")
        chunks = []
        for rel in group["paths"]:
            if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise _fail(source, f"weight shard path {rel!r} must be relative to the model folder")
            shard = folder / rel
            try:
                chunks.append(shard.read_bytes())
            except FileNotFoundError:
                raise MissingAssetError(f"{source}: weight shard not found: {shard}") from None
            except OSError as e:
                raise _fail(source, f"cannot read weight shard {shard}: {e.strerror or e}") from None
        data = memoryview(b"".join(chunks))
        offset = 0
        for spec in group["weights"]:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise _fail(source, f"malformed weight entry {json.dumps(spec)[:120]}")
            n = _stored_nbytes(spec, source)
            if offset + n > len(data):
                raise _fail(source, f"weight shards of group {gi} ({', '.join(group['paths'])}) are too short: "
                                    f"{len(data)} bytes, weight {spec['name']!r} ends at byte {offset + n}")
            if spec["name"] in out:
                raise _fail(source, f"duplicate weight name {spec['name']!r}")
            out[spec["name"]] = decode_weight(data[offset:offset + n], spec, source)
            offset += n
        if offset != len(data):
            raise _fail(source, f"weight shards of group {gi} hold {len(data)} bytes, the manifest describes {offset}")
    return out


def load_tfjs_model(model_json: str | os.PathLike[str]) -> TFJSModel:
    """Parse a TF.js layers ``model.json`` and read its weight shards (from the same folder)."""
    path = Path(model_json)
    obj = _read_json(path)
    fmt = obj.get("format")
    if fmt not in (None, "layers-model"):
        raise _fail(path, f"format {fmt!r} is not supported (only TF.js layers models)")
    layers, inputs, outputs = parse_topology(obj, path)
    weights = read_weights(obj.get("weightsManifest", []), path.parent, path)
    info = {k: obj[k] for k in ("format", "generatedBy", "convertedBy") if k in obj}
    topo = obj["modelTopology"]
    if isinstance(topo, dict) and "keras_version" in topo:
        info["keras_version"] = topo["keras_version"]
    return TFJSModel(path, layers, inputs, outputs, weights, info)


# ------------------------------------------------------------------------------------ RRDN matching

class _Matcher:
    """Walks an RRDN graph backwards from its output, assigning every layer one role."""

    def __init__(self, model: TFJSModel):
        self.m = model
        self.src = model.path
        self.roles: dict[str, str] = {}
        self.kernel_size: int | None = None

    def fail(self, msg: str) -> SrbenchError:
        return _fail(self.src, f"not an RRDN graph: {msg}")

    def layer(self, name: str, role: str) -> KerasLayer:
        if name in self.roles:
            raise self.fail(f"layer {name!r} would be both {self.roles[name]} and {role}")
        self.roles[name] = role
        return self.m.layers[name]

    def expect(self, name: str, role: str, kind: str, n_inputs: int | None = 1) -> KerasLayer:
        layer = self.layer(name, role)
        if self.kind(layer) != kind:
            raise self.fail(f"{role} should be a {kind} layer, {name!r} is a {layer.class_name}")
        if n_inputs is not None and len(layer.inbound) != n_inputs:
            raise self.fail(f"{role} {name!r} has {len(layer.inbound)} inputs, expected {n_inputs}")
        if kind == "conv":
            self._check_conv(layer)
        elif kind == "relu" and layer.config.get("activation") != "relu":
            raise self.fail(f"activation {name!r} is {layer.config.get('activation')!r}, expected 'relu'")
        elif kind == "concat" and layer.config.get("axis", -1) not in (-1, 3):
            raise self.fail(f"concatenation {name!r} is along axis {layer.config.get('axis')}, "
                            "expected the channels (-1)")
        elif kind == "beta" and "beta" in layer.config and float(layer.config["beta"]) != RRDN_BETA:
            raise self.fail(f"{name!r} has beta={layer.config['beta']!r}; "
                            f"UpscalerJS runs MultiplyBeta with {RRDN_BETA}")
        return layer

    @staticmethod
    def kind(layer: KerasLayer) -> str:
        c = layer.class_name
        if c == "Conv2D":
            return "conv"
        if c == "Activation":
            return "relu"
        if c == "Concatenate":
            return "concat"
        if c == "Add":
            return "add"
        if c in _BETA_CLASSES:
            return "beta"
        if c.startswith(_PIXEL_SHUFFLE_PREFIX):
            return "shuffle"
        if c == "InputLayer":
            return "input"
        return "unknown"

    def _check_conv(self, layer: KerasLayer) -> None:
        c = layer.config
        k = c.get("kernel_size")
        checks = {"strides": [1, 1], "padding": "same", "dilation_rate": [1, 1], "activation": "linear",
                  "use_bias": True, "groups": 1, "data_format": "channels_last"}
        for key, want in checks.items():
            got = c.get(key, want)
            if key in ("strides", "dilation_rate"):  # Keras accepts an int or a pair
                got = [got, got] if isinstance(got, int) else list(got) if isinstance(got, (list, tuple)) else got
            if got != want:
                raise self.fail(f"Conv2D {layer.name!r} has {key}={got!r}, only {want!r} is supported")
        if not (isinstance(k, list) and len(k) == 2 and k[0] == k[1] and isinstance(k[0], int)):
            raise self.fail(f"Conv2D {layer.name!r} has kernel_size {k!r}, only square kernels are supported")
        if self.kernel_size is None:
            self.kernel_size = k[0]
        elif k[0] != self.kernel_size:
            raise self.fail(f"Conv2D {layer.name!r} has kernel size {k[0]}, others have {self.kernel_size}")

    def split_residual(self, add: KerasLayer, inner: str) -> tuple[str, str]:
        """``add = skip + beta(x)``: return ``(skip, x)``, requiring ``x``'s layer to be of kind ``inner``."""
        def scaled(name: str) -> bool:  # a beta layer, not yet matched, reading a layer of kind `inner`
            layer = self.m.layers[name]
            return (self.kind(layer) == "beta" and name not in self.roles and len(layer.inbound) == 1
                    and self.kind(self.m.layers[layer.inbound[0]]) == inner)

        cand = [i for i, n in enumerate(add.inbound) if scaled(n)]
        if len(add.inbound) != 2 or len(cand) != 1:
            raise self.fail(f"Add {add.name!r} should add a skip connection and one beta-scaled "
                            f"{'RDB' if inner == 'conv' else 'RRDB'} output, its inputs are {add.inbound}")
        beta = self.expect(add.inbound[cand[0]], "residual scaling", "beta")
        return add.inbound[1 - cand[0]], beta.inbound[0]

    def match(self) -> tuple[dict[str, str], dict[str, Any]]:
        m = self.m
        if len(m.inputs) != 1 or len(m.outputs) != 1:
            raise self.fail(f"expected one input and one output, found {m.inputs} and {m.outputs}")
        inp = self.expect(m.inputs[0], "input", "input", n_inputs=0)
        plan: dict[str, str] = {}
        sr = self.expect(m.outputs[0], "final conv", "conv")
        plan["sr"] = sr.name
        shuffle = self.expect(sr.inbound[0], "pixel shuffle", "shuffle")
        scale = self._shuffle_scale(shuffle)
        pre_shuffle = self.expect(shuffle.inbound[0], "pre-shuffle conv", "conv")
        plan["pre_shuffle"] = pre_shuffle.name
        grl = self.expect(pre_shuffle.inbound[0], "global residual", "add", n_inputs=2)
        is_pre = [self.kind(m.layers[n]) == "conv" and m.layers[n].inbound == [inp.name] for n in grl.inbound]
        if sum(is_pre) != 1:
            raise self.fail(f"global residual {grl.name!r} should add the first conv (on the input) and the "
                            f"post-blocks conv, its inputs are {grl.inbound}")
        pre = self.expect(grl.inbound[is_pre.index(True)], "pre-blocks conv", "conv")
        post = self.expect(grl.inbound[is_pre.index(False)], "post-blocks conv", "conv")
        plan["pre_blocks"], plan["post_blocks"] = pre.name, post.name

        rrdbs: list[list[list[str]]] = []  # [rrdb][rdb] -> conv names (C convs then the LFF conv)
        x = post.inbound[0]
        while x != pre.name:
            add = self.expect(x, f"RRDB output (block {len(rrdbs) + 1} from the end)", "add", n_inputs=2)
            start, y = self.split_residual(add, "add")
            rdbs = []
            while y != start:
                rdb_add = self.expect(y, "RDB output", "add", n_inputs=2)
                rdb_in, lff_name = self.split_residual(rdb_add, "conv")
                lff = self.expect(lff_name, "RDB fusion conv", "conv")
                convs = []
                cat = lff.inbound[0]
                while cat != rdb_in:
                    concat = self.expect(cat, "RDB concatenation", "concat", n_inputs=2)
                    prev, act_name = concat.inbound
                    if self.kind(m.layers[act_name]) != "relu" and self.kind(m.layers[prev]) == "relu":
                        raise self.fail(f"concatenation {concat.name!r} must be [previous features, new "
                                        f"features], its inputs are {concat.inbound}")
                    act = self.expect(act_name, "RDB activation", "relu")
                    conv = self.expect(act.inbound[0], "RDB conv", "conv")
                    if conv.inbound != [prev]:
                        raise self.fail(f"RDB conv {conv.name!r} reads {conv.inbound}, expected the concatenation "
                                        f"{prev!r} (concatenation {concat.name!r} must be [previous, new features])")
                    convs.append(conv.name)
                    cat = prev
                if not convs:
                    raise self.fail(f"RDB ending in {rdb_add.name!r} has no dense conv layers")
                rdbs.append([*reversed(convs), lff.name])
                y = rdb_in
            if not rdbs:
                raise self.fail(f"RRDB ending in {add.name!r} has no RDBs")
            rrdbs.append(list(reversed(rdbs)))
            x = start
        rrdbs.reverse()
        if not rrdbs:
            raise self.fail("no RRDB between the pre-blocks and post-blocks convs")

        unmatched = [n for n in m.layers if n not in self.roles]
        if unmatched:
            classes = sorted({m.layers[n].class_name for n in unmatched})
            raise self.fail(f"{len(unmatched)} layers are not part of the pattern (classes {classes}; "
                            f"first {unmatched[:3]})")
        D = len(rrdbs[0])
        C = len(rrdbs[0][0]) - 1
        for t, rrdb in enumerate(rrdbs):
            if len(rrdb) != D:
                raise self.fail(f"RRDB {t + 1} has {len(rrdb)} RDBs, RRDB 1 has {D}")
            for d, rdb in enumerate(rrdb):
                if len(rdb) - 1 != C:
                    raise self.fail(f"RDB {t + 1}.{d + 1} has {len(rdb) - 1} conv layers, RDB 1.1 has {C}")
                for c, name in enumerate(rdb[:-1]):
                    plan[f"rrdbs.{t}.rdbs.{d}.convs.{c}"] = name
                plan[f"rrdbs.{t}.rdbs.{d}.lff"] = rdb[-1]
        layers = m.layers
        config = {"C": C, "D": D, "G": int(layers[rrdbs[0][0][0]].config["filters"]),
                  "G0": int(pre.config["filters"]), "T": len(rrdbs), "scale": scale,
                  "in_channels": None, "out_channels": int(sr.config["filters"]),
                  "kernel_size": self.kernel_size, "beta": RRDN_BETA}
        return plan, config

    def _shuffle_scale(self, layer: KerasLayer) -> int:
        suffix = layer.class_name[len(_PIXEL_SHUFFLE_PREFIX):]
        r = int(suffix[:-1]) if suffix.endswith("x") and suffix[:-1].isdigit() else None
        conf = layer.config.get("scale")
        if r is None and isinstance(conf, int):
            r = conf
        if r is None or r < 1:
            raise self.fail(f"cannot tell the scale of pixel shuffle {layer.name!r} ({layer.class_name})")
        if conf is not None and conf != r:
            raise self.fail(f"pixel shuffle {layer.name!r} is a {layer.class_name} with config scale {conf}")
        return r


_SUPPORTED = ("InputLayer", "Conv2D", "Activation", "Concatenate", "Add", *_BETA_CLASSES, "PixelShuffle<r>x")


def convert_rrdn(model_json: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Convert a TF.js layers RRDN to ``(state_dict of torch tensors for sr_methods.rrdn.RRDN, config)``.

    Raises ``SrbenchError`` (naming the file) for unknown layer types, a graph that is not the RRDN
    pattern, missing, unused or misshapen weights; ``MissingAssetError`` for a missing file.
    """
    import torch

    model = load_tfjs_model(model_json)
    src = model.path
    for layer in model.layers.values():
        if _Matcher.kind(layer) == "unknown":
            raise _fail(src, f"unsupported layer type {layer.class_name!r} (layer {layer.name!r}; supported: "
                             f"{', '.join(_SUPPORTED)})")
    plan, config = _Matcher(model).match()

    used: set[str] = set()
    sd: dict[str, torch.Tensor] = {}
    for key, lname in plan.items():
        kname, bname = f"{lname}/kernel", f"{lname}/bias"
        for wname in (kname, bname):
            if wname not in model.weights:
                raise _fail(src, f"weight {wname!r} of Conv2D layer {lname!r} is missing from the manifest")
            if wname in used:
                raise _fail(src, f"weight {wname!r} is used twice")
            used.add(wname)
        kernel, bias = model.weights[kname], model.weights[bname]
        filters = int(model.layers[lname].config["filters"])
        k = config["kernel_size"]
        if kernel.ndim != 4 or kernel.shape[:2] != (k, k) or kernel.shape[3] != filters or bias.shape != (filters,):
            raise _fail(src, f"Conv2D {lname!r}: kernel {kernel.shape} / bias {bias.shape} do not fit "
                             f"{k}x{k} kernels with {filters} filters")
        if kernel.dtype != np.float32 or bias.dtype != np.float32:
            raise _fail(src, f"Conv2D {lname!r}: weights must be float32, got {kernel.dtype}/{bias.dtype}")
        sd[f"{key}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        sd[f"{key}.bias"] = torch.from_numpy(bias.copy())
    unused = [n for n in model.weights if n not in used]
    if unused:
        raise _fail(src, f"{len(unused)} weights are not used by the RRDN graph: {unused[:5]}")

    config["in_channels"] = int(sd["pre_blocks.weight"].shape[1])
    from ..rrdn import RRDN, RRDNConfig

    cfg = RRDNConfig.from_dict(config)
    want = RRDN(cfg).state_dict()
    if set(want) != set(sd):
        raise _fail(src, f"internal error: converted keys do not match RRDN({cfg.to_dict()})")
    for key, v in want.items():
        if tuple(sd[key].shape) != tuple(v.shape):
            raise _fail(src, f"not an RRDN graph: {plan[key.rsplit('.', 1)[0]]!r} has weight shape "
                             f"{tuple(sd[key].shape)} (OIHW), an RRDN with {cfg.to_dict()} needs {tuple(v.shape)}")
    return sd, cfg.to_dict()


def _sha256_sources(model_json: Path) -> str:
    """sha256 over model.json and its shards, in manifest order (identifies the converted source)."""
    h = hashlib.sha256(model_json.read_bytes())
    obj = json.loads(model_json.read_text(encoding="utf-8"))
    for group in obj.get("weightsManifest", []):
        for rel in group.get("paths", []):
            h.update((model_json.parent / rel).read_bytes())
    return h.hexdigest()


def convert_file(model_json: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Convert a TF.js RRDN to ``out_path`` (``.safetensors``), atomically (temporary file, then rename).

    Metadata: ``format`` (``srbench-rrdn/1``), ``architecture`` (``RRDN``), ``config`` (JSON of the
    config), each config field as its own key, ``source`` (the model.json path as given, last two
    components) and ``source_sha256`` (over model.json and its shards).
    """
    from ..rrdn import METADATA_FORMAT

    src, out = Path(model_json), Path(out_path)
    if out.suffix.lower() != ".safetensors":
        raise SrbenchError(f"output {out} must have the .safetensors suffix")
    sd, config = convert_rrdn(src)
    meta = {"format": METADATA_FORMAT, "architecture": "RRDN", "config": json.dumps(config, sort_keys=True),
            **{k: str(v) for k, v in config.items()},
            "source": "/".join(src.parts[-2:]), "source_sha256": _sha256_sources(src),
            "converter": "sr_methods.converters.tfjs"}
    return write_safetensors(sd, meta, out)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m sr_methods.converters.tfjs MODEL_JSON OUT.safetensors", file=sys.stderr)
        return 2
    try:
        out = convert_file(args[0], args[1])
    except SrbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
