"""LPIPS and DISTS (iqa.lpips, iqa.dists, iqa.weights), offline.

The ImageNet backbones are not available offline, so parity with the reference packages
(``lpips``, ``DISTS_pytorch``) is checked with the SAME randomly initialised torchvision backbone
loaded into both; the learnt heads (LPIPS linear layers, DISTS alpha/beta) are the real shipped
files. The official values (pyiqa's ResultsCalibra TID2013 pairs) are checked only when the real
backbone weights are found locally.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import iqa
from iqa.dists import DISTSMetric, L2Pool, load_alpha_beta
from iqa.errors import MissingAssetError, SrbenchError
from iqa.lpips import LPIPSMetric, load_lin_weights
from iqa.weights import (
    BACKBONES,
    backbone_state,
    find_backbone_weights,
    load_state_dict,
)
from tests.helpers import calibra_dir

TOL = 1e-5  # absolute, against the reference packages


# --- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tv_alexnet():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return torchvision.models.alexnet(weights=None).eval()


@pytest.fixture(scope="module")
def tv_vgg16():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(1)
    return torchvision.models.vgg16(weights=None).eval()


@pytest.fixture(autouse=True)
def _no_local_weights(monkeypatch, tmp_path):
    """Tests see no real weights unless they put them there (the opt-in test restores them)."""
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "srbench_weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def _image_pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A few (distorted, reference) batches on the uint8 grid: noise, blur, unrelated images."""
    gen = torch.Generator().manual_seed(42)
    base = F.interpolate(torch.rand(3, 3, 12, 16, generator=gen), size=(96, 128), mode="bicubic").clamp(0, 1)
    noisy = (base + 0.08 * torch.randn(base.shape, generator=gen)).clamp(0, 1)
    blurred = F.avg_pool2d(base, 5, stride=1, padding=2, count_include_pad=False)
    other = torch.rand(3, 3, 96, 128, generator=gen)
    q = iqa.quantize_uint8
    return [(q(noisy), q(base)), (q(blurred), q(base)), (q(other), q(base))]


# --- LPIPS parity with the lpips package ---------------------------------------------------------

def _reference_lpips(monkeypatch, net: str, tv_model: torch.nn.Module):
    lpips = pytest.importorskip("lpips")
    # lpips builds its trunk with torchvision's alexnet()/vgg16(): hand it our randomly
    # initialised model (no download, same weights as ours); pretrained=True loads the shipped
    # linear layers.
    fake_tv = types.SimpleNamespace(alexnet=lambda *a, **k: tv_model, vgg16=lambda *a, **k: tv_model)
    monkeypatch.setattr(lpips.pretrained_networks, "tv", fake_tv)
    return lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False).eval()


@pytest.mark.parametrize("arch, net, metric_name", [("alexnet", "alex", "lpips"), ("vgg16", "vgg", "lpips-vgg")])
def test_lpips_equals_reference_package(arch, net, metric_name, request, monkeypatch):
    tv_model = request.getfixturevalue("tv_alexnet" if arch == "alexnet" else "tv_vgg16")
    ref = _reference_lpips(monkeypatch, net, tv_model)
    ours = iqa.create_metric(metric_name, backbone=tv_model.state_dict())
    assert isinstance(ours, LPIPSMetric) and ours.info == iqa.metric_info(metric_name)
    for x, y in _image_pairs():
        with torch.no_grad():
            expected = ref(x, y, normalize=True).reshape(-1)
        got = ours(x, y)
        assert got.shape == (3,)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=TOL)


def test_lpips_backbone_as_module_or_features_only(tv_alexnet):
    lin = load_lin_weights("alexnet")
    x, y = _image_pairs()[0]
    a = LPIPSMetric("alexnet", tv_alexnet, lin)(x, y)
    b = LPIPSMetric("alexnet", tv_alexnet.features.state_dict(), lin)(x, y)
    c = LPIPSMetric("alexnet", tv_alexnet.features, lin)(x, y)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)


# --- DISTS parity with DISTS_pytorch -------------------------------------------------------------

def _reference_dists(monkeypatch, tv_model: torch.nn.Module):
    dists_pt = pytest.importorskip("DISTS_pytorch.DISTS_pt")
    # DISTS() calls torchvision's vgg16(pretrained=True), which would download: hand it our
    # randomly initialised model instead.
    monkeypatch.setattr(dists_pt, "models", types.SimpleNamespace(vgg16=lambda *a, **k: tv_model))
    ref = dists_pt.DISTS(load_weights=False).eval()
    ab = load_alpha_beta()
    ref.alpha.data = ab["alpha"].clone()
    ref.beta.data = ab["beta"].clone()
    return ref


def test_dists_equals_reference_package(monkeypatch, tv_vgg16):
    ref = _reference_dists(monkeypatch, tv_vgg16)
    ours = iqa.create_metric("dists", backbone=tv_vgg16.state_dict())
    assert isinstance(ours, DISTSMetric) and ours.info == iqa.metric_info("dists")
    for x, y in _image_pairs():
        with torch.no_grad():
            expected = ref(x, y).reshape(-1)
        got = ours(x, y)
        assert got.shape == (3,)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=TOL)


def test_dists_weights_file():
    ab = load_alpha_beta()
    assert ab["alpha"].shape == (1, 1475, 1, 1) and ab["beta"].shape == (1, 1475, 1, 1)
    assert (ab["alpha"] >= 0).all() and (ab["beta"] >= 0).all()
    assert (ab["alpha"].sum() + ab["beta"].sum()).item() == pytest.approx(1.0, abs=1e-4)


def test_l2pool():
    pool = L2Pool(2)
    assert torch.allclose(pool.filter[0, 0], torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0)
    x = torch.full((1, 2, 8, 6), 3.0)
    out = pool(x)
    assert out.shape == (1, 2, 4, 3)
    assert torch.allclose(out[..., 1:, 1:], torch.full((1, 2, 3, 2), 3.0))  # interior: sqrt(mean(x^2))


# --- scores and shapes ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lpips", "lpips-vgg", "dists"])
def test_scores_shapes_and_identity(name, request):
    tv_model = request.getfixturevalue("tv_alexnet" if name == "lpips" else "tv_vgg16")
    m = iqa.create_metric(name, backbone=tv_model.state_dict())
    x, y = _image_pairs()[0]
    out = m(x, y)
    assert out.shape == (3,) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert (out > 0).all()
    same = m(y, y)
    assert same.abs().max() < 1e-6
    singles = torch.cat([m(x[i:i + 1], y[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(out, singles, rtol=1e-5, atol=1e-6)
    assert not any(p.requires_grad for p in m.parameters())


def test_protocol_rounds_inputs(tv_alexnet):
    x, y = _image_pairs()[0]
    off = (x + 0.3 / 255).clamp(0, 1)
    sd = tv_alexnet.state_dict()
    rounded = iqa.create_metric("lpips", backbone=sd)  # basicsr protocol: uint8 rounding
    raw = iqa.create_metric("lpips", protocol="pyiqa", backbone=sd)  # no rounding
    torch.testing.assert_close(rounded(off, y), rounded(x, y), rtol=0, atol=0)
    assert (raw(off, y) - raw(x, y)).abs().max() > 0
    # the protocol's border shave does not apply to LPIPS
    torch.testing.assert_close(rounded(x, y, scale=4), rounded(x, y, scale=1), rtol=0, atol=0)


def test_metric_errors(tv_alexnet, tv_vgg16):
    x, y = _image_pairs()[0]
    m = iqa.create_metric("lpips", backbone=tv_alexnet.state_dict())
    with pytest.raises(SrbenchError, match="full-reference"):
        m(x)
    with pytest.raises(SrbenchError, match="same shape"):
        m(x, y[..., :64])
    with pytest.raises(SrbenchError, match="unknown option"):
        iqa.create_metric("lpips", backbone=tv_alexnet.state_dict(), net="vgg")
    with pytest.raises(SrbenchError, match="unknown option"):
        iqa.create_metric("dists", backbone=tv_vgg16.state_dict(), lin_weights="x")
    with pytest.raises(SrbenchError, match="lacks"):  # a VGG state dict is not an AlexNet one
        iqa.create_metric("lpips", backbone=tv_vgg16.state_dict())
    with pytest.raises(SrbenchError, match="either"):
        iqa.create_metric("lpips", backbone=tv_alexnet.state_dict(), backbone_weights="a.pth")
    with pytest.raises(SrbenchError, match="lin0"):
        LPIPSMetric("alexnet", tv_alexnet, {"foo": torch.zeros(1)})
    with pytest.raises(SrbenchError, match="1475"):
        DISTSMetric(tv_vgg16, {"alpha": torch.ones(10), "beta": torch.ones(10)})


# --- weights: finding and loading ---------------------------------------------------------------

@pytest.mark.parametrize("name, arch", [("lpips", "alexnet"), ("lpips-vgg", "vgg16"), ("dists", "vgg16")])
def test_missing_backbone_weights(name, arch, tmp_path):
    with pytest.raises(MissingAssetError) as err:
        iqa.create_metric(name)
    msg = str(err.value)
    info = BACKBONES[arch]
    assert "\n" not in msg
    assert info.filename in msg and info.url in msg
    assert str(tmp_path / "srbench_weights") in msg  # $SRBENCH_WEIGHTS
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in msg  # torch hub cache
    assert "backbone_weights=" in msg


def test_missing_explicit_path(tmp_path):
    with pytest.raises(MissingAssetError, match="does not exist"):
        iqa.create_metric("lpips", backbone_weights=tmp_path / "nope.pth")


def test_weights_are_found_in_each_place(tmp_path, monkeypatch, tv_alexnet):
    # the features part only (as torchvision's file has, plus the classifier): small files
    sd = {k: v for k, v in tv_alexnet.state_dict().items() if k.startswith("features.")}
    name = BACKBONES["alexnet"].filename
    x, y = _image_pairs()[1]
    expected = iqa.create_metric("lpips", backbone=sd)(x, y)

    # files found by name must have the known sha256 of that name: stand our random weights in
    # for torchvision's file and for the converted asset
    from dataclasses import replace

    from iqa import assets as A
    from iqa import weights as W

    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(sd, hub / name)
    assert find_backbone_weights("alexnet") == hub / name
    monkeypatch.setitem(W.TORCHVISION_SHA256, "alexnet", A.sha256_file(hub / name))
    torch.testing.assert_close(iqa.create_metric("lpips")(x, y), expected, rtol=0, atol=0)

    env = tmp_path / "srbench_weights"
    env.mkdir()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(env / (Path(name).stem + ".safetensors")))
    assert find_backbone_weights("alexnet") == env / (Path(name).stem + ".safetensors")  # env before hub
    with pytest.raises(SrbenchError, match="sha256 mismatch"):  # not the asset's bytes
        iqa.create_metric("lpips")
    converted = env / (Path(name).stem + ".safetensors")
    monkeypatch.setitem(A.ASSETS._assets, "alexnet", replace(A.ASSETS.get("alexnet"), sha256=A.sha256_file(converted)))
    torch.testing.assert_close(iqa.create_metric("lpips")(x, y), expected, rtol=0, atol=0)

    explicit = tmp_path / "my_alexnet.pth"
    torch.save({"state_dict": sd}, explicit)
    assert find_backbone_weights("alexnet", explicit) == explicit
    torch.testing.assert_close(iqa.create_metric("lpips", backbone_weights=str(explicit))(x, y), expected,
                               rtol=0, atol=0)


def test_load_state_dict_refuses_code(tmp_path):
    bad = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "obj": types.SimpleNamespace(a=1)}, bad)
    with pytest.raises(SrbenchError, match="refused to load .*evil.pth: .*could run code"):
        load_state_dict(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SrbenchError, match="cannot load .*junk.pth"):
        load_state_dict(junk)
    with pytest.raises(MissingAssetError):
        load_state_dict(tmp_path / "absent.pth")


def test_lin_weights_shipped_files():
    for arch, chans in (("alexnet", (64, 192, 384, 256, 256)), ("vgg16", (64, 128, 256, 512, 512))):
        lin = load_lin_weights(arch)
        assert [lin[f"lin{k}.model.1.weight"].shape[1] for k in range(5)] == list(chans)


def test_backbone_state_shapes(tv_alexnet):
    sd = dict(tv_alexnet.state_dict())
    sd["features.0.weight"] = torch.zeros(64, 3, 3, 3)
    with pytest.raises(SrbenchError, match="shape"):
        backbone_state("alexnet", sd)
    assert set(backbone_state("alexnet", tv_alexnet.features)) == set(tv_alexnet.features.state_dict())


# --- official values (opt-in: needs the real ImageNet weights) -------------------------------------

OFFICIAL = {  # pyiqa ResultsCalibra, TID2013 pairs
    "lpips": {"I03": 0.7237, "I04": 0.2572, "I06": 0.0508, "I08": 0.0521, "I19": 0.4253},
    "dists": {"I03": 0.4742, "I04": 0.1424, "I06": 0.0682, "I08": 0.0287, "I19": 0.3123},
}




@pytest.mark.parametrize("name, arch", [("lpips", "alexnet"), ("dists", "vgg16")])
def test_official_values(name, arch, monkeypatch):
    monkeypatch.undo()  # look for real weights where the user keeps them
    try:
        find_backbone_weights(arch)
    except MissingAssetError as e:
        pytest.skip(f"real {arch} weights not available: {e}")
    from PIL import Image

    def load(p: Path) -> torch.Tensor:
        with Image.open(p) as im:
            return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)[None].float() / 255.0

    d = calibra_dir()
    m = iqa.create_metric(name)
    for img, expected in OFFICIAL[name].items():
        got = m(load(d / "dist_dir" / f"{img}.bmp"), load(d / "ref_dir" / f"{img}.bmp")).item()
        assert got == pytest.approx(expected, abs=1e-4), img
