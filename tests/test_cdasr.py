"""CDASR: the domain-adaptive module and its place in the base network (against independent
computations), the LR-only adaptation loss, adaptation (determinism, only the module moves, state
round trip), and tiny meta-trainings of the ``cdasr`` recipe (resume equality, the checkpoint
holding the module alone, the catalogue factory running it). Tiny random RRDNs, a random VGG16 file
and a tiny random CLIP; never the network."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from iqa.errors import SrbenchError
from tests.helpers import (
    random_vgg16,
    tiny_clip,
    tiny_rrdn,
    tiny_train_root,
    whole_and_resumed,
)

SMALL = {"embed_size": 32, "hidden": (16, 8)}


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    return random_vgg16(tmp_path_factory.mktemp("vgg") / "vgg16-random.safetensors")


@pytest.fixture(scope="module")
def base8(tmp_path_factory) -> Path:
    return tiny_rrdn(tmp_path_factory.mktemp("base") / "b8.safetensors", scale=8)


@pytest.fixture(scope="module")
def base16(tmp_path_factory, base8) -> Path:
    """An ``rrdn-x2-stage`` checkpoint on the tiny x8 RRDN whose stage is not the identity."""
    from sr_methods.rrdn_stage import base_record, build_stage_network
    from sr_methods.trained import save_checkpoint

    torch.manual_seed(1)
    net = build_stage_network(base_asset=None, base_path=str(base8), channels=4, blocks=1)
    torch.nn.init.normal_(net.stage.tail.weight, std=0.1)
    opts = {"base_asset": None, "base_path": str(base8), "channels": 4, "blocks": 1}
    return save_checkpoint(net.trainable_state(), {"method": "rrdn-x16", "arch": "rrdn-x2-stage", "scale": 16,
                                                   "arch_options": opts, "base": base_record(net, None, str(base8))},
                           tmp_path_factory.mktemp("b16") / "b16.safetensors")


def network(base: Path, vgg_file: Path, seed: int = 0, **kw):
    from sr_methods.cdasr.nets import build_cdasr_network

    torch.manual_seed(seed)
    return build_cdasr_network(base_path=str(base), backbone_weights=str(vgg_file), **{**SMALL, **kw})


def randomise_fusion(net, seed: int = 5) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.dam.fusion.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


# -- the network --------------------------------------------------------------------------------------------

def test_untrained_cdasr_is_its_base_exactly_at_x8_and_x16(base8, base16, vgg_file):
    from sr_methods.rrdn import load_rrdn
    from sr_methods.trained import load_network

    x = torch.rand(2, 3, 5, 6)
    net8 = network(base8, vgg_file)
    ref8, _, _ = load_rrdn(base8)
    ref16, _, _ = load_network(base16)
    net16 = network(base16, vgg_file)
    with torch.no_grad():
        out8, out16 = net8(x), net16(x)
        assert out8.shape == (2, 3, 40, 48) and out16.shape == (2, 3, 80, 96)
        assert torch.equal(out8, ref8(x)) and torch.equal(out16, ref16(x))
    assert net8.scale == 8 and net16.scale == 16
    # only the module is the network's state; the frozen parts never require a gradient
    assert set(net8.state_dict()) == {f"dam.{k}" for k in net8.dam.state_dict()}
    assert not any(p.requires_grad for p in net8.frozen.parameters())
    assert net8.base_sha256() == load_rrdn(base8)[1]


def test_dam_wiring_and_embedding_against_an_independent_computation(base8, vgg_file):
    net = network(base8, vgg_file)
    randomise_fusion(net)
    dam = net.dam
    g = torch.Generator().manual_seed(2)
    feats, f = torch.randn(2, 4, 5, 7, generator=g), torch.randn(2, 512, generator=g)
    w1, b1, w2, b2 = dam.mlp[0].weight, dam.mlp[0].bias, dam.mlp[2].weight, dam.mlp[2].bias
    v = torch.relu(f @ w1.T + b1) @ w2.T + b2  # (2, 8)
    broadcast = v[:, :, None, None] * torch.ones(1, 1, 5, 7)
    c1, c2 = dam.spatial[0], dam.spatial[2]
    m = F.conv2d(torch.relu(F.conv2d(broadcast, c1.weight, c1.bias, padding=1)), c2.weight, c2.bias, padding=1)
    want = feats + F.conv2d(torch.cat([feats, m], 1), dam.fusion.weight, dam.fusion.bias, padding=1)
    with torch.no_grad():
        assert torch.allclose(dam(feats, f), want, atol=1e-5)
        assert dam.mlp[0].in_features == 512 and dam.fusion.in_channels == 2 * 4 and dam.spatial[0].in_channels == 8
    # the embedding: VGG16 relu5_3 averaged, of the LR resized to embed_size, unit length, no gradient
    x = torch.rand(2, 3, 6, 9).requires_grad_(True)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        rs = F.interpolate(x, size=(32, 32), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        e = net.backbone.net[:30]((rs - mean) / std).mean(dim=(2, 3))
    got = net.embedding(x)
    assert got.grad_fn is None and torch.allclose(got, e / e.norm(dim=1, keepdim=True), atol=1e-5)
    # forward = features, then the DAM and the RRDN's upsampler
    from sr_methods.rrdn import depth_to_space

    r = net.frozen.rrdn
    with torch.no_grad():
        f0 = r.pre_blocks(x)
        gg = r.post_blocks(r.rrdbs[0](f0)) + f0
        want = r.sr(depth_to_space(r.pre_shuffle(dam(gg, got)), 8))
        assert torch.allclose(net(x), want, atol=1e-6)


def test_adaptation_loss_against_an_independent_computation(base8, vgg_file):
    from iqa.resize import imresize
    from sr_methods.cdasr.losses import adaptation_loss, downscale, supervised_loss

    net = network(base8, vgg_file)
    g = torch.Generator().manual_seed(3)
    sr = (torch.rand(2, 3, 32, 24, generator=g) * 1.2 - 0.1).requires_grad_(True)  # unclamped, as a network's
    lr = torch.rand(2, 3, 4, 3, generator=g)
    c = torch.full((1, 3, 32, 24), 0.3)
    assert torch.allclose(downscale(c, 8), torch.full((1, 3, 4, 3), 0.3), atol=1e-6)  # a constant stays
    down = imresize(sr.detach().clamp(0, 1).double(), 1 / 8, kernel="cubic", mode="float").numpy()
    bp = np.abs(down - lr.double().numpy()).mean()
    with torch.no_grad():
        ea = net.backbone.net[:30]((F.interpolate(sr.clamp(0, 1), size=(32, 32), mode="bicubic", antialias=True)
                                    .clamp(0, 1) - net.backbone.mean) / net.backbone.std).mean(dim=(2, 3)).numpy()
        eb = net.backbone.net[:30]((F.interpolate(lr, size=(32, 32), mode="bicubic", antialias=True).clamp(0, 1)
                                    - net.backbone.mean) / net.backbone.std).mean(dim=(2, 3)).numpy()
    cos = (ea * eb).sum(1) / np.linalg.norm(ea, axis=1) / np.linalg.norm(eb, axis=1)
    got = adaptation_loss(sr, lr, 8, net.backbone, 32, 0.3)
    assert abs(got["bp"].item() - bp) < 1e-5 and abs(got["sem"].item() - (1 - cos).mean()) < 1e-4
    assert torch.allclose(got["total"], got["bp"] + 0.3 * got["sem"])
    got["total"].backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0  # differentiable, down-scaling included
    assert set(adaptation_loss(sr, lr, 8, net.backbone, 32, 0.0)) == {"bp", "total"}
    with pytest.raises(SrbenchError, match="is not lr"):
        adaptation_loss(sr, lr[..., :2], 8, net.backbone, 32, 0.1)
    hr = torch.rand(2, 3, 32, 24, generator=g)
    sup = supervised_loss(sr, hr, net.backbone, 32, 0.0, 0.0)
    assert torch.allclose(sup["total"], (sr - hr).abs().mean()) and set(sup) == {"pix", "total"}


# -- adaptation --------------------------------------------------------------------------------------------

def method(base: Path, vgg_file: Path, **kw):
    from sr_methods.cdasr.method import CDASRMethod

    net = network(base, vgg_file)
    randomise_fusion(net)  # as a trained module: every DAM parameter gets a gradient
    return CDASRMethod(net, name="cdasr-test", crop=6, **kw)


def test_adaptation_moves_only_the_module_deterministically_and_round_trips(base8, vgg_file):
    m = method(base8, vgg_file)
    g = torch.Generator().manual_seed(4)
    images = [torch.rand(1, 3, 8, 9, generator=g), torch.rand(1, 3, 7, 10, generator=g)]
    x = torch.rand(1, 3, 6, 5, generator=g)
    frozen, dam = _state(m.net.frozen), m.adapted_state()
    a = m.adapt(images, steps=3, seed=0, echo=lambda _: None)
    b = m.adapt(images, steps=3, seed=0, echo=lambda _: None)
    c = m.adapt(images, steps=3, seed=1, echo=lambda _: None)
    assert _equal(a.adapted_state(), b.adapted_state()) and not _equal(a.adapted_state(), c.adapted_state())
    assert not _equal(a.adapted_state(), dam)
    assert all(not torch.equal(a.adapted_state()[k], dam[k]) for k in dam)  # every module tensor moved
    assert _equal(m.adapted_state(), dam) and _equal(_state(m.net.frozen), frozen)  # self stays as it was
    assert a.net.frozen is m.net.frozen and _equal(_state(a.net.frozen), frozen)  # the base stays frozen
    assert a.adaptation["steps"] == 3 and a.adaptation["crop"] == 6 and a.adaptation["batch"] == 2
    zero = m.adapt(images, steps=0, seed=0, echo=lambda _: None)
    assert _equal(zero.adapted_state(), dam) and torch.equal(zero.upscale(x, 8), m.upscale(x, 8))
    back = m.with_state(a.adapted_state())
    assert torch.equal(back.upscale(x, 8), a.upscale(x, 8)) and not torch.equal(a.upscale(x, 8), m.upscale(x, 8))
    with pytest.raises(SrbenchError, match="does not fit the DAM"):
        m.with_state({"dam.fusion.weight": torch.zeros(1)})
    with pytest.raises(SrbenchError, match="steps must be an integer"):
        m.adapt(images, steps=-1, seed=0)
    with pytest.raises(SrbenchError, match="too small"):
        m.adapt([torch.rand(1, 3, 3, 9)], steps=1, seed=0)
    # tiles run under the whole image's embedding
    t = method(base8, vgg_file, tile=4, tile_overlap=2)
    assert t.upscale(torch.rand(1, 3, 9, 7), 8).shape == (1, 3, 72, 56)


# -- training ------------------------------------------------------------------------------------------------

@pytest.fixture
def data_root(tmp_path) -> Path:
    return tiny_train_root(tmp_path / "data", 64, 48)


def setup(base: Path, vgg_file: Path, scale: int = 8, **kw):
    from bench.train.cdasr import Options
    from bench.train.loop import TrainConfig

    cfg = TrainConfig(scale=scale, patch=2 * scale if scale == 16 else 32, batch=2, steps=4, log_every=1,
                      ckpt_every=2, val_images=2, val_crop=32, val_metrics=("psnr",), ema=0.0, device="cpu")
    opts = Options(**{"base_path": str(base), "backbone_weights": str(vgg_file), "tasks": ("bicubic", "bdn", "dn"),
                      "inner_lr": 1e-3, "outer_lr": 1e-3, "adapt_crop": 4, **SMALL, **kw})
    return cfg, opts


def run(tmp_path, out, data_root, cfg, opts, **kw):
    from bench.train.cdasr import CDASR
    from bench.train.loop import train

    return train(CDASR, cfg, opts, tmp_path / out, data_root=data_root, echo=lambda _: None, progress=False, **kw)


@pytest.mark.parametrize("meta", ["reptile", "fomaml", "none"])
def test_a_meta_step_changes_only_the_module(base8, vgg_file, meta):
    from bench.train.cdasr import CDASR

    cfg, opts = setup(base8, vgg_file, meta=meta)
    torch.manual_seed(0)
    r = CDASR(cfg, opts, torch.device("cpu"), echo=lambda _: None)
    frozen, dam = _state(r.net.frozen), _state(r.net.dam)
    g = torch.Generator().manual_seed(3)
    hr = torch.rand(2, 3, 32, 32, generator=g)
    losses = r.step(F.avg_pool2d(hr, 8), hr, 0, torch.Generator().manual_seed(0), contextlib.nullcontext)
    assert _equal(_state(r.net.frozen), frozen) and not _equal(_state(r.net.dam), dam)
    assert {"q_pix", "q_percep", "q_sem", "q_total"} <= set(losses)
    assert ("in_bp" in losses) == (meta != "none")


def test_training_resumes_to_the_same_module_and_the_catalogue_runs_it(tmp_path, data_root, base8, vgg_file,
                                                                        monkeypatch):
    import sr_methods
    from bench.train.cdasr import CDASR
    from sr_methods.cdasr.method import CDASRMethod
    from sr_methods.trained import read_checkpoint

    cfg, opts = setup(base8, vgg_file)
    whole, resumed = whole_and_resumed(monkeypatch, CDASR, lambda name: run(tmp_path, name, data_root, cfg, opts),
                                       tmp_path)
    (tw, rec, _), (tr, _, _) = read_checkpoint(whole), read_checkpoint(resumed)
    assert _equal(tw, tr) and all(k.startswith("dam.") and v.dtype == torch.float16 for k, v in tw.items())
    assert rec["method"] == "cdasr" and rec["arch"] == "cdasr" and rec["scale"] == 8
    assert rec["base"]["sha256"] == rec["arch_options"]["base_sha256"] and rec["backbone"]["backbone"] == "vgg16"
    assert rec["config"]["method"]["meta"] == "reptile" and rec["validation"]["val_psnr"] > 5
    # the catalogue entry runs it (weights=PATH), adaptive, with the recorded adaptation options
    m = sr_methods.create_method("cdasr-vgg16-x8", weights=str(whole))
    assert isinstance(m, CDASRMethod) and m.backbone == "vgg16" and m.opts["crop"] == 4 and m.opts["adapt_lr"] == 1e-3
    lr = torch.rand(1, 3, 5, 6)
    assert m.upscale(lr, 8).shape == (1, 3, 40, 48)
    plain = sr_methods.create_method(f"cdasr:{whole}")  # the checkpoint as a plain (unadapted) trained method
    assert plain.backbone == "vgg16" and torch.equal(plain.upscale(lr, 8), m.upscale(lr, 8))
    info = sr_methods.method_info("cdasr-vgg16-x16")
    assert info["adaptive"] and info["base"] == "rrdn-x16" and info["backbone"] == "vgg16"
    with pytest.raises(SrbenchError, match="x8 CDASR checkpoint; cdasr-vgg16-x16 is x16"):
        sr_methods.create_method("cdasr-vgg16-x16", weights=str(whole))
    with pytest.raises(SrbenchError, match="weights file not found"):
        sr_methods.create_method("cdasr-vgg16-x8", weights=str(tmp_path / "none.safetensors"))
    # ... and adapts through the harness's protocol: k = 1 of the cell, scored on the rest next to itself unadapted
    from bench.run.adapt import AdaptSpec
    from bench.run.runner import Runner
    from bench.run.spec import MethodSpec, RunSpec
    from bench.run.store import load_cells, load_scores

    spec = RunSpec(datasets=("demo",), scales=(8,), metrics=("psnr",), limit=3, device="cpu",
                   methods=(MethodSpec("cdasr-vgg16-x8", "cdasr", {"weights": str(whole)}, AdaptSpec(1, 2, 0)),))
    Runner(spec, tmp_path / "bench", echo=lambda _: None, progress=False, fetch=False).run()
    df, cells = load_scores(tmp_path / "bench"), {c["method"]: c for c in load_cells(tmp_path / "bench")}
    rec = cells["cdasr"]["adaptation"]
    assert rec["base"] == "esrgan-thick-x8" and rec["steps"] == 2 and rec["details"]["steps"] == 2
    scored = set(df.loc[df["method"] == "cdasr", "image"])
    assert len(scored) == 2 and scored == set(df.loc[df["method"] == "cdasr (unadapted)", "image"])
    assert not scored & set(rec["shots"]) and set(df["status"]) == {"ok"}


def test_x16_trains_the_module_in_the_x8_rrdn_under_the_stage(tmp_path, data_root, base16, vgg_file):
    from sr_methods.trained import load_network

    cfg, opts = setup(base16, vgg_file, scale=16)
    path = run(tmp_path, "x16", data_root, replace(cfg, steps=2), opts, validate=False)
    net, rec, _ = load_network(path)
    assert rec["scale"] == 16 and net.frozen.stage is not None
    assert net(torch.rand(1, 3, 3, 2)).shape == (1, 3, 48, 32)


def test_tiny_clip_backbone_end_to_end(tmp_path, data_root, base8, vgg_file):
    import sr_methods
    from sr_methods.cdasr.method import load_method

    config, weights = tiny_clip(tmp_path / "clip")
    cfg, opts = setup(base8, vgg_file, backbone=str(config), backbone_weights=str(weights),
                      perceptual_weights=str(vgg_file))
    path = run(tmp_path, "clip", data_root, replace(cfg, steps=2), opts, validate=False)
    with pytest.raises(SrbenchError, match="on the clip:srbench-tiny-clip backbone; cdasr-vgg16-x8 runs vgg16"):
        sr_methods.create_method("cdasr-vgg16-x8", weights=str(path))
    m = load_method(path, name="cdasr-clip")
    assert m.backbone == "clip:srbench-tiny-clip" and m.net.dam.mlp[0].in_features == 32
    a = m.adapt([torch.rand(1, 3, 6, 6)], steps=1, seed=0, echo=lambda _: None)
    assert a.upscale(torch.rand(1, 3, 4, 4), 8).shape == (1, 3, 32, 32)


def test_bad_options_and_test_images_are_refused(tmp_path, data_root, base8, vgg_file):
    import shutil

    from bench.train.cdasr import CDASR

    cfg, opts = setup(base8, vgg_file)
    dev = torch.device("cpu")
    for bad, match in (({"meta": "maml"}, "meta must be one of reptile, fomaml, none"),
                       ({"tasks": ("jpeg",)}, "tasks must be some of"),
                       ({"w_sem": -1.0}, "w_sem must be a number >= 0")):
        with pytest.raises(SrbenchError, match=match):
            CDASR(cfg, replace(opts, **bad), dev, echo=lambda _: None)
    with pytest.raises(SrbenchError, match="batch must be >= 2"):
        CDASR(replace(cfg, batch=1), opts, dev, echo=lambda _: None)
    with pytest.raises(SrbenchError, match="trains x8"):
        CDASR(replace(cfg, scale=4), opts, dev, echo=lambda _: None)
    (data_root / "set5").mkdir()
    shutil.copy(next((data_root / "train" / "t91").glob("*.png")), data_root / "set5" / "leak.png")
    with pytest.raises(SrbenchError, match="never train on a test set"):
        run(tmp_path, "leak", data_root, cfg, opts)


@pytest.mark.parametrize("scale", [8, 16])
def test_the_shipped_checkpoints_are_the_catalogues_and_hold_the_module_alone(scale):
    import sr_methods
    from iqa.assets import file_sha256
    from sr_methods.trained import read_checkpoint

    meta = sr_methods.METHODS.get(f"cdasr-vgg16-x{scale}").meta
    path = Path(sr_methods.__file__).parent / "data" / meta["file"]
    assert file_sha256(path) == meta["sha256"] and path.stat().st_size < 10 << 20
    tensors, rec, _ = read_checkpoint(path)
    assert rec["method"] == "cdasr" and rec["arch"] == "cdasr" and rec["scale"] == scale
    assert rec["base"]["name"] == meta["base"] and rec["arch_options"]["base"] == meta["base"]
    assert rec["backbone"]["backbone"] == "vgg16" and rec["arch_options"]["backbone_sha256"]
    assert all(k.startswith("dam.") and v.dtype == torch.float16 for k, v in tensors.items())
