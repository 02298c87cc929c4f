"""Tests of the TF.js layers-model reader/converter (``sr_methods.converters.tfjs``) and ``sr_methods.rrdn``.

The reference is an independent, slow numpy interpreter of the Keras graph written below: it walks
``model.json``'s layers by their ``inbound_nodes`` and evaluates each layer type from its Keras/TF
definition (float64), knowing nothing of the PyTorch module. Tiny TF.js models in the UpscalerJS
"ESRGAN-thick" format are written by the tests themselves. The real package is tested only when
``SRBENCH_ESRGAN_THICK_TGZ`` names ``@upscalerjs/esrgan-thick``'s .tgz. No test touches the network.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from iqa.errors import MissingAssetError, SrbenchError
from sr_methods.base import UnsupportedScaleError
from sr_methods.converters.tfjs import (
    convert_file,
    convert_rrdn,
    decode_weight,
    load_tfjs_model,
    main,
)
from sr_methods.rrdn import (
    RRDN,
    RRDNConfig,
    RRDNMethod,
    build_from_path,
    depth_to_space,
    keras_same_padding,
    load_rrdn,
    read_safetensors_metadata,
)
from tests.conftest import SHARED_DATA

ENV_TGZ = "SRBENCH_ESRGAN_THICK_TGZ"


# ------------------------------------------------------------------- numpy reference interpreter

def np_read_float32_weights(model_json: Path) -> dict[str, np.ndarray]:
    """Unquantised float32 weights: each group's shards concatenated, weights back to back."""
    obj = json.loads(model_json.read_text())
    out = {}
    for group in obj["weightsManifest"]:
        blob = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        pos = 0
        for w in group["weights"]:
            assert w["dtype"] == "float32" and "quantization" not in w
            n = int(np.prod(w["shape"]))
            out[w["name"]] = np.frombuffer(blob, "<f4", count=n, offset=pos).reshape(w["shape"])
            pos += 4 * n
        assert pos == len(blob)
    return out


def np_conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, cfg: dict) -> np.ndarray:
    """Keras Conv2D on one HWC image, channels_last, HWIO kernel ('same'/'valid', any stride/dilation)."""
    kh, kw = kernel.shape[:2]
    sh, sw = cfg.get("strides", [1, 1])
    dh, dw = cfg.get("dilation_rate", [1, 1])
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if cfg.get("padding", "valid") == "same":  # TF: out = ceil(in / stride), extra padding after
        h, w = x.shape[:2]
        ph = max((-(-h // sh) - 1) * sh + ekh - h, 0)
        pw = max((-(-w // sw) - 1) * sw + ekw - w, 0)
        x = np.pad(x, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    win = sliding_window_view(x, (ekh, ekw), axis=(0, 1))[::sh, ::sw, :, ::dh, ::dw]  # (H', W', Cin, kh, kw)
    y = np.einsum("hwcij,ijco->hwo", win, kernel.astype(np.float64), optimize=True)
    if bias is not None:
        y = y + bias
    return np_activation(y, cfg.get("activation", "linear"))


def np_activation(x: np.ndarray, name: str) -> np.ndarray:
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    raise NotImplementedError(name)


def np_depth_to_space(x: np.ndarray, r: int) -> np.ndarray:
    """TF depth_to_space on one HWC image, from its definition (DCR): the r*r blocks of the depth
    axis, in row-major (i, j) order, become the r x r pixels of each output block."""
    h, w, c = x.shape
    cout = c // (r * r)
    out = np.empty((h * r, w * r, cout), dtype=x.dtype)
    for i in range(r):
        for j in range(r):
            block = (i * r + j) * cout
            out[i::r, j::r, :] = x[:, :, block:block + cout]
    return out


MULTIPLY_BETA = 0.2  # UpscalerJS's MultiplyBeta layer: tf.mul(x, 0.2)


def run_keras_graph(model_json: Path, weights: dict[str, np.ndarray], image: np.ndarray) -> np.ndarray:
    """Evaluate a functional TF.js layers model on one HWC image (float64), layer by layer."""
    cfg = json.loads(model_json.read_text())["modelTopology"]["model_config"]["config"]
    layers = {layer["name"]: layer for layer in cfg["layers"]}
    values: dict[str, np.ndarray] = {}

    def value(name: str) -> np.ndarray:
        if name in values:
            return values[name]
        layer = layers[name]
        args = [value(src[0]) for src in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        cls, c = layer["class_name"], layer["config"]
        if cls == "InputLayer":
            y = image.astype(np.float64)
        elif cls == "Conv2D":
            bias = weights[f"{name}/bias"] if c.get("use_bias", True) else None
            y = np_conv2d(args[0], weights[f"{name}/kernel"], bias, c)
        elif cls == "Activation":
            y = np_activation(args[0], c["activation"])
        elif cls == "Concatenate":
            axis = c.get("axis", -1)
            y = np.concatenate(args, axis=axis - 1 if axis > 0 else axis)  # no batch axis here
        elif cls == "Add":
            y = sum(args[1:], args[0])
        elif cls == "MultiplyBeta":
            y = args[0] * MULTIPLY_BETA
        elif cls.startswith("PixelShuffle") and cls.endswith("x"):
            y = np_depth_to_space(args[0], int(cls[len("PixelShuffle"):-1]))
        else:
            raise NotImplementedError(cls)
        values[name] = y
        return y

    (out_name, _, _), = cfg["output_layers"]
    return value(out_name)


def torch_forward(model: RRDN, image: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
        return model(x)[0].permute(1, 2, 0).double().numpy()


def model_from_state_dict(sd: dict, config: dict) -> RRDN:
    model = RRDN(RRDNConfig.from_dict(config))
    model.load_state_dict(sd)
    return model.eval()


# ----------------------------------------------------------------------- tiny TF.js model writer

def _conv(name: str, src: str, filters: int, k: int) -> dict:
    return {"class_name": "Conv2D", "name": name, "inbound_nodes": [[[src, 0, 0, {}]]],
            "config": {"name": name, "trainable": True, "dtype": "float32", "filters": filters,
                       "kernel_size": [k, k], "strides": [1, 1], "padding": "same",
                       "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
                       "activation": "linear", "use_bias": True}}


def _node(cls: str, name: str, srcs: list[str], **config) -> dict:
    return {"class_name": cls, "name": name, "inbound_nodes": [[[s, 0, 0, {}] for s in srcs]],
            "config": {"name": name, "trainable": True, "dtype": "float32", **config}}


def rrdn_layers(T: int, D: int, C: int, G: int, G0: int, scale: int, k: int = 3) -> tuple[list[dict], dict]:
    """The layer list of idealo's RRDN as UpscalerJS ships it, and each conv's (cin, cout)."""
    layers = [{"class_name": "InputLayer", "name": "LR_input", "inbound_nodes": [],
               "config": {"batch_input_shape": [None, None, None, 3], "dtype": "float32", "sparse": False,
                          "ragged": False, "name": "LR_input"}}]
    convs = {}

    def conv(name: str, src: str, cin: int, cout: int) -> None:
        layers.append(_conv(name, src, cout, k))
        convs[name] = (cin, cout)

    n_beta = 0

    def beta(src: str) -> str:
        nonlocal n_beta
        name = "multiply_beta" if n_beta == 0 else f"multiply_beta_{n_beta}"
        n_beta += 1
        layers.append(_node("MultiplyBeta", name, [src], beta=0.2))
        return name

    conv("Pre_blocks_conv", "LR_input", 3, G0)
    x = "Pre_blocks_conv"
    for t in range(1, T + 1):
        rrdb_in = x
        for d in range(1, D + 1):
            rdb_in, cat = x, x
            for c in range(1, C + 1):
                conv(f"F_{t}_{d}_{c}", cat, G0 + (c - 1) * G, G)
                layers.append(_node("Activation", f"F_{t}_{d}_{c}_Relu", [f"F_{t}_{d}_{c}"], activation="relu"))
                layers.append(_node("Concatenate", f"RDB_Concat_{t}_{d}_{c}", [cat, f"F_{t}_{d}_{c}_Relu"], axis=3))
                cat = f"RDB_Concat_{t}_{d}_{c}"
            conv(f"LFF_{t}_{d}", cat, G0 + C * G, G0)
            layers.append(_node("Add", f"LRL_{t}_{d}", [rdb_in, beta(f"LFF_{t}_{d}")]))
            x = f"LRL_{t}_{d}"
        layers.append(_node("Add", f"RRDB_{t}_out", [rrdb_in, beta(x)]))
        x = f"RRDB_{t}_out"
    conv("post_blocks_conv", x, G0, G0)
    layers.append(_node("Add", "GRL", ["post_blocks_conv", "Pre_blocks_conv"]))
    conv("PreShuffle", "GRL", G0, 3 * scale * scale)
    layers.append({"class_name": f"PixelShuffle{scale}x", "name": "pixel_shuffle",
                   "inbound_nodes": [[["PreShuffle", 0, 0, {}]]],
                   "config": {"name": "pixel_shuffle", "trainable": True, "dtype": "float32", "scale": scale}})
    conv("SR", "pixel_shuffle", 3, 3)
    return layers, convs


def write_tfjs_model(folder: Path, layers: list[dict], weights: dict[str, np.ndarray], *, quantize: str | None = None,
                     shard_bytes: int = 1000) -> Path:
    """Write model.json + shards (split every ``shard_bytes`` bytes, so tensors straddle shards).
    ``quantize``: ``"uint8"``/``"uint16"`` (affine, per weight) or ``"float16"``."""
    folder.mkdir(parents=True, exist_ok=True)
    blob, specs = b"", []
    for name, w in weights.items():
        spec = {"name": name, "shape": list(w.shape), "dtype": "float32"}
        if quantize in ("uint8", "uint16"):
            levels = 255 if quantize == "uint8" else 65535
            lo, hi = float(w.min()), float(w.max())
            scale = (hi - lo) / levels or 1.0
            q = np.round((w - lo) / scale).astype("u1" if quantize == "uint8" else "<u2")
            spec["quantization"] = {"dtype": quantize, "scale": scale, "min": lo}
            blob += q.tobytes()
        elif quantize == "float16":
            spec["quantization"] = {"dtype": "float16"}
            blob += w.astype("<f2").tobytes()
        else:
            blob += w.astype("<f4").tobytes()
        specs.append(spec)
    paths = []
    for i in range(0, max(len(blob), 1), shard_bytes):
        paths.append(f"group1-shard{len(paths) + 1}.bin")
        (folder / paths[-1]).write_bytes(blob[i:i + shard_bytes])
    doc = {"format": "layers-model", "generatedBy": "keras v2.10.0", "convertedBy": "test",
           "modelTopology": {"keras_version": "2.10.0", "backend": "tensorflow",
                             "model_config": {"class_name": "Functional",
                                              "config": {"name": "model", "layers": layers,
                                                         "input_layers": [["LR_input", 0, 0]],
                                                         "output_layers": [[layers[-1]["name"], 0, 0]]}}},
           "weightsManifest": [{"paths": paths, "weights": specs}]}
    path = folder / "model.json"
    path.write_text(json.dumps(doc))
    return path


def tiny_rrdn(folder: Path, T=1, D=1, C=2, G=4, G0=4, scale=2, k=3, seed=0, **kw) -> Path:
    layers, convs = rrdn_layers(T, D, C, G, G0, scale, k)
    rng = np.random.default_rng(seed)
    weights = {}
    for name in sorted(convs):  # the manifest is in name order, not layer order (as the real files)
        cin, cout = convs[name]
        weights[f"{name}/kernel"] = rng.normal(0, 0.3, (k, k, cin, cout)).astype(np.float32)
        weights[f"{name}/bias"] = rng.normal(0, 0.1, (cout,)).astype(np.float32)
    return write_tfjs_model(folder, layers, weights, **kw)


def edit_model(path: Path, fn) -> Path:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))
    return path


def real_crop(h: int = 12, w: int = 12, seed: int = 0) -> np.ndarray:
    """A crop of Set5 img_001 (LR x4) in [0, 1]; a photo crop from scikit-image when Set5 is absent."""
    p = SHARED_DATA / "set5" / "LR_bicubic_matlab" / "X4" / "img_001.png"
    if p.is_file():
        from PIL import Image

        img = np.asarray(Image.open(p).convert("RGB"))
        y, x = 40, 50
        return img[y:y + h, x:x + w].astype(np.float64) / 255.0
    from tests.helpers import photo

    return photo(h, w, seed).astype(np.float64) / 255.0


# ------------------------------------------------------------------------------------------ tests

def test_depth_to_space_hand_example():
    # 8 channels, r=2 -> 2 output channels. TF's DCR: output channel c of block pixel (i, j) is input
    # channel (i*2 + j)*2 + c; torch's pixel_shuffle (CRD) would take c*4 + i*2 + j instead.
    x = torch.arange(8, dtype=torch.float32).view(1, 8, 1, 1)
    want = torch.tensor([[[0.0, 2.0], [4.0, 6.0]], [[1.0, 3.0], [5.0, 7.0]]])[None]
    assert torch.equal(depth_to_space(x, 2), want)
    assert torch.equal(torch.nn.functional.pixel_shuffle(x, 2),
                       torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[4.0, 5.0], [6.0, 7.0]]])[None])
    # the numpy reference (HWC) agrees on the hand example and on random data, r = 3
    assert np.array_equal(np_depth_to_space(np.arange(8.0).reshape(1, 1, 8), 2), want[0].permute(1, 2, 0).numpy())
    y = np.random.default_rng(0).normal(size=(4, 5, 27))
    t = depth_to_space(torch.from_numpy(y).permute(2, 0, 1)[None], 3)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(t, np_depth_to_space(y, 3))
    with pytest.raises(SrbenchError, match="multiple of"):
        depth_to_space(torch.zeros(1, 6, 2, 2), 2)


def test_keras_same_padding():
    assert keras_same_padding(3) == (1, 1)
    assert keras_same_padding(1) == (0, 0)
    assert keras_same_padding(2) == (0, 1)  # TF pads the extra row/column after
    assert keras_same_padding(4) == (1, 2)


@pytest.mark.parametrize("arch", [
    {"T": 1, "D": 1, "C": 2, "G": 4, "G0": 4, "scale": 2},
    {"T": 2, "D": 2, "C": 3, "G": 3, "G0": 5, "scale": 3},
    {"T": 1, "D": 2, "C": 1, "G": 2, "G0": 4, "scale": 4, "k": 2},  # even kernel: asymmetric "same" padding
    {"T": 2, "D": 1, "C": 2, "G": 4, "G0": 4, "scale": 8, "k": 5},
])
def test_tiny_model_matches_numpy_reference(tmp_path, arch):
    path = tiny_rrdn(tmp_path / "m", **arch)
    sd, config = convert_rrdn(path)
    expect = {"C": arch["C"], "D": arch["D"], "G": arch["G"], "G0": arch["G0"], "T": arch["T"],
              "scale": arch["scale"], "in_channels": 3, "out_channels": 3, "kernel_size": arch.get("k", 3),
              "beta": 0.2}
    assert config == expect
    model = model_from_state_dict(sd, config)
    image = real_crop(7, 9)
    ref = run_keras_graph(path, np_read_float32_weights(path), image)
    out = torch_forward(model, image)
    assert out.shape == ref.shape == (7 * arch["scale"], 9 * arch["scale"], 3)
    assert np.abs(out - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


def test_kernels_are_transposed_hwio_to_oihw(tmp_path):
    path = tiny_rrdn(tmp_path / "m")
    sd, _ = convert_rrdn(path)
    w = np_read_float32_weights(path)
    want = torch.from_numpy(w["F_1_1_2/kernel"].transpose(3, 2, 0, 1).copy())
    assert torch.equal(sd["rrdbs.0.rdbs.0.convs.1.weight"], want)
    assert tuple(sd["rrdbs.0.rdbs.0.convs.1.weight"].shape) == (4, 8, 3, 3)
    assert torch.equal(sd["sr.bias"], torch.from_numpy(w["SR/bias"].copy()))
    assert torch.equal(sd["pre_blocks.weight"][2, 1, 0, 2], torch.tensor(w["Pre_blocks_conv/kernel"][0, 2, 1, 2]))


def test_reader_parses_graph_and_weights(tmp_path):
    path = tiny_rrdn(tmp_path / "m", shard_bytes=333)
    m = load_tfjs_model(path)
    assert m.inputs == ["LR_input"] and m.outputs == ["SR"]
    assert m.layers["RDB_Concat_1_1_2"].inbound == ["RDB_Concat_1_1_1", "F_1_1_2_Relu"]
    assert m.info["format"] == "layers-model" and m.info["keras_version"] == "2.10.0"
    ref = np_read_float32_weights(path)
    assert list(m.weights) == list(ref)
    assert all(np.array_equal(m.weights[k], ref[k]) and m.weights[k].dtype == np.float32 for k in ref)


def test_decode_weight_quantised():
    spec = {"name": "w", "shape": [2, 2], "dtype": "float32"}
    q8 = np.array([0, 1, 128, 255], dtype=np.uint8)
    got = decode_weight(q8.tobytes(), {**spec, "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}})
    assert got.dtype == np.float32 and got.shape == (2, 2)
    assert np.array_equal(got.ravel(), np.array([-1.0, -0.5, 63.0, 126.5], np.float32))
    q16 = np.array([0, 1, 40000, 65535], dtype="<u2")
    got = decode_weight(q16.tobytes(), {**spec, "quantization": {"dtype": "uint16", "scale": 1e-3, "min": 2.0}})
    assert np.allclose(got.ravel(), [2.0, 2.001, 42.0, 67.535], atol=1e-5)
    h = np.array([0.5, -2.0, 1e-3, 65504.0], dtype="<f2")
    got = decode_weight(h.tobytes(), {**spec, "quantization": {"dtype": "float16"}})
    assert got.dtype == np.float32 and np.array_equal(got.ravel(), h.astype(np.float32))
    # older manifests: original_dtype, quantised int32
    got = decode_weight(np.array([0, 3], np.uint8).tobytes(),
                        {"name": "i", "shape": [2], "quantization": {"dtype": "uint8", "scale": 0.5, "min": 1.0,
                                                                     "original_dtype": "int32"}})
    assert got.dtype == np.int32 and got.tolist() == [1, 2]  # 2.5 rounds half to even
    with pytest.raises(SrbenchError, match="needs 'scale' and 'min'"):
        decode_weight(q8.tobytes(), {**spec, "quantization": {"dtype": "uint8"}})
    with pytest.raises(SrbenchError, match="unsupported quantization dtype 'int4'"):
        decode_weight(q8.tobytes(), {**spec, "quantization": {"dtype": "int4", "scale": 1, "min": 0}})
    with pytest.raises(SrbenchError, match="unsupported dtype 'string'"):
        decode_weight(b"", {"name": "s", "shape": [0], "dtype": "string"})


@pytest.mark.parametrize("quantize", ["uint8", "uint16", "float16"])
def test_quantised_model_converts_to_dequantised_weights(tmp_path, quantize):
    ref_path = tiny_rrdn(tmp_path / "f32", seed=3)
    q_path = tiny_rrdn(tmp_path / quantize, seed=3, quantize=quantize, shard_bytes=77)
    exact = np_read_float32_weights(ref_path)
    m = load_tfjs_model(q_path)
    doc = json.loads(q_path.read_text())
    for spec in doc["weightsManifest"][0]["weights"]:
        w, q = exact[spec["name"]], spec["quantization"]
        if quantize == "float16":
            want = w.astype(np.float16).astype(np.float32)
        else:
            want = (np.round((w - q["min"]) / q["scale"]) * q["scale"] + q["min"]).astype(np.float32)
            assert np.abs(m.weights[spec["name"]] - w).max() <= q["scale"] / 2 + 1e-6
        assert np.allclose(m.weights[spec["name"]], want, rtol=0, atol=1e-6)
    sd, config = convert_rrdn(q_path)
    model = model_from_state_dict(sd, config)
    image = real_crop(6, 6)
    ref = run_keras_graph(q_path, m.weights, image)  # the dequantised weights, through the reference
    assert np.abs(torch_forward(model, image) - ref).max() < 1e-4


def test_missing_files_are_named(tmp_path):
    with pytest.raises(MissingAssetError, match="model.json"):
        convert_rrdn(tmp_path / "nowhere" / "model.json")
    path = tiny_rrdn(tmp_path / "m")
    (path.parent / "group1-shard2.bin").unlink()
    with pytest.raises(MissingAssetError, match=r"weight shard not found: .*group1-shard2\.bin"):
        convert_rrdn(path)


def test_short_or_long_shards_are_errors(tmp_path):
    path = tiny_rrdn(tmp_path / "m")
    shard = path.parent / "group1-shard1.bin"
    data = shard.read_bytes()
    shard.write_bytes(data[:-4])
    with pytest.raises(SrbenchError, match=r"model\.json: weight shards of group 0 .* too short"):
        convert_rrdn(path)
    shard.write_bytes(data + b"\0\0\0\0")
    with pytest.raises(SrbenchError, match=r"hold \d+ bytes, the manifest describes"):
        convert_rrdn(path)


def test_unknown_layer_type_is_named(tmp_path):
    path = tiny_rrdn(tmp_path / "m")

    def to_lambda(doc):
        for layer in doc["modelTopology"]["model_config"]["config"]["layers"]:
            if layer["class_name"] == "MultiplyBeta":
                layer["class_name"] = "Lambda"
    edit_model(path, to_lambda)
    with pytest.raises(SrbenchError, match=r"model\.json: unsupported layer type 'Lambda' \(layer 'multiply_beta'"):
        convert_rrdn(path)


def test_wrong_topologies_are_rejected(tmp_path):
    def layers_of(doc):
        return doc["modelTopology"]["model_config"]["config"]["layers"]

    def find(doc, name):
        return next(layer for layer in layers_of(doc) if layer["name"] == name)

    # concatenation in the other order: the conv weights would read channels in the wrong order
    path = tiny_rrdn(tmp_path / "a")
    edit_model(path, lambda d: find(d, "RDB_Concat_1_1_1")["inbound_nodes"][0].reverse())
    with pytest.raises(SrbenchError, match=r"not an RRDN graph: concatenation 'RDB_Concat_1_1_1' must be "
                                           r"\[previous features, new features\]"):
        convert_rrdn(path)
    # a relu that is not a relu
    path = tiny_rrdn(tmp_path / "b")
    edit_model(path, lambda d: find(d, "F_1_1_1_Relu")["config"].update(activation="tanh"))
    with pytest.raises(SrbenchError, match="is 'tanh', expected 'relu'"):
        convert_rrdn(path)
    # valid padding
    path = tiny_rrdn(tmp_path / "c")
    edit_model(path, lambda d: find(d, "LFF_1_1")["config"].update(padding="valid"))
    with pytest.raises(SrbenchError, match="padding='valid'"):
        convert_rrdn(path)
    # the global residual skipped
    path = tiny_rrdn(tmp_path / "d")
    edit_model(path, lambda d: find(d, "PreShuffle")["inbound_nodes"][0][0].__setitem__(0, "post_blocks_conv"))
    with pytest.raises(SrbenchError, match="global residual"):
        convert_rrdn(path)
    # a dangling extra layer
    path = tiny_rrdn(tmp_path / "e")
    edit_model(path, lambda d: layers_of(d).append(_node("Activation", "extra", ["GRL"], activation="relu")))
    with pytest.raises(SrbenchError, match=r"1 layers are not part of the pattern \(classes \['Activation'\]"):
        convert_rrdn(path)
    # a shared layer
    path = tiny_rrdn(tmp_path / "f")
    edit_model(path, lambda d: find(d, "SR")["inbound_nodes"].append([["pixel_shuffle", 0, 0, {}]]))
    with pytest.raises(SrbenchError, match="called 2 times"):
        convert_rrdn(path)


def test_weights_used_exactly_once(tmp_path):
    layers, convs = rrdn_layers(1, 1, 2, 4, 4, 2)
    rng = np.random.default_rng(0)
    weights = {}
    for name, (cin, cout) in convs.items():
        weights[f"{name}/kernel"] = rng.normal(size=(3, 3, cin, cout)).astype(np.float32)
        weights[f"{name}/bias"] = np.zeros(cout, np.float32)
    extra = dict(weights, **{"orphan/kernel": np.zeros((1, 1, 1, 1), np.float32)})
    with pytest.raises(SrbenchError, match=r"1 weights are not used by the RRDN graph: \['orphan/kernel'\]"):
        convert_rrdn(write_tfjs_model(tmp_path / "a", layers, extra))
    missing = {k: v for k, v in weights.items() if k != "LFF_1_1/bias"}
    with pytest.raises(SrbenchError, match="weight 'LFF_1_1/bias' of Conv2D layer 'LFF_1_1' is missing"):
        convert_rrdn(write_tfjs_model(tmp_path / "b", layers, missing))
    bad = dict(weights, **{"F_1_1_2/kernel": rng.normal(size=(3, 3, 7, 4)).astype(np.float32)})
    with pytest.raises(SrbenchError, match=r"'F_1_1_2' has weight shape \(4, 7, 3, 3\)"):
        convert_rrdn(write_tfjs_model(tmp_path / "c", layers, bad))


def test_safetensors_round_trip(tmp_path):
    path = tiny_rrdn(tmp_path / "x2", T=2, D=1, C=2, G=4, G0=6, scale=2)
    out = convert_file(path, tmp_path / "out" / "tiny.safetensors")
    assert out.is_file() and not list(out.parent.glob(".*.part"))
    again = convert_file(path, tmp_path / "again" / "tiny.safetensors")
    assert again.read_bytes() == out.read_bytes()  # deterministic bytes: a catalogue can pin the sha256
    meta = read_safetensors_metadata(out.read_bytes())
    config = json.loads(meta["config"])
    assert config == {"C": 2, "D": 1, "G": 4, "G0": 6, "T": 2, "scale": 2, "in_channels": 3, "out_channels": 3,
                      "kernel_size": 3, "beta": 0.2}
    assert meta["architecture"] == "RRDN" and meta["T"] == "2" and meta["G0"] == "6" and meta["scale"] == "2"
    assert meta["source"] == "x2/model.json" and len(meta["source_sha256"]) == 64
    model, digest, meta2 = load_rrdn(out)
    assert meta2 == meta and model.config == RRDNConfig.from_dict(config) and len(digest) == 64
    sd, _ = convert_rrdn(path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    assert RRDNConfig.from_state_dict(model.state_dict()) == model.config
    with pytest.raises(SrbenchError, match="must have the .safetensors suffix"):
        convert_file(path, tmp_path / "out.pth")


def test_command_line(tmp_path, capsys):
    path = tiny_rrdn(tmp_path / "m")
    assert main([str(path), str(tmp_path / "o.safetensors")]) == 0
    assert (tmp_path / "o.safetensors").is_file() and "o.safetensors" in capsys.readouterr().out
    assert main([str(tmp_path / "none.json"), str(tmp_path / "p.safetensors")]) == 1
    assert "not found" in capsys.readouterr().err and not (tmp_path / "p.safetensors").exists()
    assert main([]) == 2

def test_load_rrdn_refuses_wrong_files(tmp_path):
    with pytest.raises(SrbenchError, match="must be a .safetensors file"):
        load_rrdn(tmp_path / "model.pth")
    with pytest.raises(MissingAssetError):
        load_rrdn(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file

    save_file({"pre_blocks.weight": torch.zeros(4, 3, 3, 3)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(SrbenchError, match="not an RRDN state dict"):
        load_rrdn(tmp_path / "bad.safetensors")
    sd = RRDN(RRDNConfig(C=1, D=1, G=2, G0=4, T=1, scale=2)).state_dict()
    wrong = json.dumps({"C": 2, "D": 1, "G": 2, "G0": 4, "T": 1, "scale": 2})
    save_file(sd, str(tmp_path / "cfg.safetensors"), metadata={"config": wrong})
    with pytest.raises(SrbenchError, match="does not fit an RRDN"):
        load_rrdn(tmp_path / "cfg.safetensors")
    with pytest.raises(SrbenchError, match="unknown keys"):
        RRDNConfig.from_dict({"C": 1, "D": 1, "G": 2, "G0": 4, "T": 1, "scale": 2, "foo": 1})
    with pytest.raises(SrbenchError, match="G0 must be an int >= 1"):
        RRDNConfig(C=1, D=1, G=2, G0=0, T=1, scale=2)


def test_rrdn_method_contract(tmp_path):
    path = tiny_rrdn(tmp_path / "x3", T=1, D=1, C=1, G=2, G0=4, scale=3)
    method = build_from_path(convert_file(path, tmp_path / "tiny_x3.safetensors"))
    assert method.name == "rrdn:tiny_x3" and method.scales == (3,)
    lr = torch.from_numpy(real_crop(5, 7)).permute(2, 0, 1)[None].float().repeat(2, 1, 1, 1)
    sr = method.upscale(lr, 3)
    assert sr.shape == (2, 3, 15, 21) and sr.dtype == torch.float32
    assert sr.min() >= 0 and sr.max() <= 1 and not sr.is_inference()
    raw = torch_forward(method.model, real_crop(5, 7))
    assert np.allclose(sr[0].permute(1, 2, 0).numpy(), np.clip(raw, 0, 1), atol=1e-5)
    with pytest.raises(UnsupportedScaleError):
        method.upscale(lr, 2)
    prov = method.provenance()
    assert prov["kind"] == "rrdn" and prov["config"]["scale"] == 3 and prov["sha256"] == method.sha256
    assert prov["params"] == sum(p.numel() for p in method.model.parameters())
    assert prov["source"] == "x3/model.json"
    # tiled inference with an overlap wider than the receptive field is identical to whole-image inference
    # (receptive field radius: 5 LR convs + 1 HR conv -> 6 LR pixels; "crop" keeps overlap/2 = 8 of context)
    tiled = RRDNMethod(method.model, tile=20, tile_overlap=16)
    big = torch.rand(1, 3, 41, 45, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(tiled.upscale(big, 3), method.upscale(big, 3), atol=1e-5)
    coarse = RRDNMethod(method.model, tile=8, tile_overlap=2)  # too little context: seams differ
    assert not torch.allclose(coarse.upscale(big, 3), method.upscale(big, 3), atol=1e-5)
    with pytest.raises(SrbenchError, match="model must be an RRDN"):
        RRDNMethod(torch.nn.Identity())


# ---------------------------------------------------------------------- the real npm package files

@pytest.fixture(scope="module")
def esrgan_thick(tmp_path_factory) -> Path:
    tgz = os.environ.get(ENV_TGZ)
    if not tgz:
        pytest.skip(f"set {ENV_TGZ} to @upscalerjs/esrgan-thick's .tgz to test the real models")
    dest = tmp_path_factory.mktemp("esrgan_thick")
    with tarfile.open(tgz) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12
            tar.extractall(dest, filter="data")
        else:
            members = [m for m in tar.getmembers() if (m.isfile() or m.isdir()) and not m.name.startswith(("/", ".."))
                       and ".." not in Path(m.name).parts]
            tar.extractall(dest, members=members)
    return dest / "package" / "models"


REAL_PARAMS = {2: 7_239_968, 3: 7_248_623, 4: 7_260_740, 8: 7_343_828}


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_real_package_matches_numpy_reference(esrgan_thick, scale):
    path = esrgan_thick / f"x{scale}" / "model.json"
    sd, config = convert_rrdn(path)
    assert config == {"C": 4, "D": 3, "G": 32, "G0": 64, "T": 10, "scale": scale, "in_channels": 3,
                      "out_channels": 3, "kernel_size": 3, "beta": 0.2}
    assert sum(v.numel() for v in sd.values()) == REAL_PARAMS[scale]
    model = model_from_state_dict(sd, config)
    image = real_crop(12, 12)
    ref = run_keras_graph(path, np_read_float32_weights(path), image)
    out = torch_forward(model, image)
    assert out.shape == (12 * scale, 12 * scale, 3)
    assert np.abs(out - ref).max() < 1e-4
    # a PSNR-oriented model on a natural image: the output lies (almost) within [0, 1]
    assert -0.05 < ref.min() and ref.max() < 1.05


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_real_package_reproduces_upscalerjs_samples(esrgan_thick, tmp_path, scale):
    """The package ships ``assets/fixture.png`` (128x128) and UpscalerJS's outputs for it
    (``assets/samples/<s>x/result.png``): the converted model reproduces them to within one level."""
    from PIL import Image

    assets = esrgan_thick.parent / "assets"
    fixture = np.asarray(Image.open(assets / "fixture.png").convert("RGBA"))
    want = np.asarray(Image.open(assets / "samples" / f"{scale}x" / "result.png").convert("RGBA"))
    assert (fixture[..., 3] == 255).all() and (want[..., 3] == 255).all()
    converted = convert_file(esrgan_thick / f"x{scale}" / "model.json", tmp_path / f"x{scale}.safetensors")
    method = build_from_path(converted)
    lr = torch.from_numpy(fixture[..., :3].copy()).permute(2, 0, 1)[None].float() / 255.0
    sr = (method.upscale(lr, scale)[0].permute(1, 2, 0).numpy() * 255.0).round().astype(np.int16)
    diff = np.abs(sr - want[..., :3].astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
