"""SFD-SR: the RRDBNet generator, the losses against independent computations, and tiny end-to-end
trainings of the ``sfd-sr-vgg16`` / ``sfd-sr-clip`` recipes (random VGG16 and tiny random CLIP
backbones, tiny generators, a few steps): determinism, resume equality, the checkpoint record, the
harness loading it, gradients reaching both players and never the frozen backbone."""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import replace
from pathlib import Path

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

# -- the generator ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4, 8, 16])
def test_rrdbnet_shapes(scale):
    from sr_methods.sfd.nets import RRDBNet

    torch.manual_seed(0)
    net = RRDBNet(nf=8, nb=2, gc=4, scale=scale)
    out = net(torch.rand(2, 3, 5, 7))
    assert out.shape == (2, 3, 5 * scale, 7 * scale) and out.dtype == torch.float32
    assert [k for k in net.state_dict() if k.startswith("conv_up")] == [
        f"conv_up{i}.{p}" for i in range(1, scale.bit_length()) for p in ("weight", "bias")]


def _rdb_params(nf: int, gc: int) -> int:
    """Parameters of one residual dense block, counted from the ESRGAN paper's description."""
    convs = [(nf + i * gc, gc) for i in range(4)] + [(nf + 4 * gc, nf)]
    return sum(cin * cout * 9 + cout for cin, cout in convs)


def test_rrdbnet_parameter_count_is_esrgans():
    from sr_methods.sfd.nets import RRDBNet

    nf, nb, gc = 64, 23, 32
    conv = nf * nf * 9 + nf
    expected = (3 * nf * 9 + nf) + nb * 3 * _rdb_params(nf, gc) + conv + 2 * conv + conv + (nf * 3 * 9 + 3)
    net = RRDBNet()  # the paper's configuration, x4
    n = sum(p.numel() for p in net.parameters())
    assert n == expected == 16_697_987  # ESRGAN's published RRDBNet x4
    assert sum(p.numel() for p in RRDBNet(scale=16).parameters()) == n + 2 * conv  # conv_up3, conv_up4


def test_rrdbnet_rejects_bad_options_and_loads_esrgan_names():
    from sr_methods.sfd.nets import RRDBNet, load_rrdbnet_state

    with pytest.raises(SrbenchError, match="scale must be 2, 4, 8 or 16"):
        RRDBNet(scale=3)
    with pytest.raises(SrbenchError, match="nf must be an int"):
        RRDBNet(nf=0)
    torch.manual_seed(1)
    a, b = RRDBNet(nf=8, nb=1, gc=4), RRDBNet(nf=8, nb=1, gc=4)
    old = {}
    prefixes = {"body.": "RRDB_trunk.", "conv_body.": "trunk_conv.", "conv_up1.": "upconv1.",
                "conv_up2.": "upconv2.", "conv_hr.": "HRconv."}
    for k, v in a.state_dict().items():  # the original ESRGAN repository's names
        head = next((p for p in prefixes if k.startswith(p)), None)
        k = prefixes[head] + k[len(head):] if head else k
        old[k.replace(".rdb", ".RDB")] = v
    assert "RRDB_trunk.0.RDB1.conv1.weight" in old and "trunk_conv.weight" in old
    load_rrdbnet_state(b, {"params_ema": old})
    x = torch.rand(1, 3, 4, 4)
    assert torch.equal(a(x), b(x))
    with pytest.raises(SrbenchError, match="does not fit RRDBNet"):
        load_rrdbnet_state(RRDBNet(nf=8, nb=2, gc=4), a.state_dict())


def test_rrdn_from_config_is_the_catalogue_rrdn(tmp_path):
    from sr_methods.rrdn import load_rrdn
    from sr_methods.sfd.nets import rrdn_from_config
    from sr_methods.trained import build_arch

    path = tiny_rrdn(tmp_path / "r.safetensors", scale=4)
    ref, _, _ = load_rrdn(path)
    net = build_arch("rrdn", ref.config.to_dict())
    net.load_state_dict(ref.state_dict())
    x = torch.rand(1, 3, 6, 5)
    assert torch.equal(net(x), ref(x)) and type(net) is type(rrdn_from_config(**ref.config.to_dict()))


# -- losses -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    return random_vgg16(tmp_path_factory.mktemp("vgg") / "vgg16-random.safetensors")


@pytest.fixture(scope="module")
def vgg_net(vgg_file):
    from iqa.weights import build_backbone, load_state_dict

    return build_backbone("vgg16", load_state_dict(vgg_file))


def test_pixel_loss_is_the_mean_absolute_error():
    from sr_methods.sfd.losses import pixel_loss

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 5, 4, generator=g), torch.rand(2, 3, 5, 4, generator=g)
    assert torch.allclose(pixel_loss(a, b), torch.tensor(float((a - b).abs().numpy().mean())))
    with pytest.raises(SrbenchError, match="differ in shape"):
        pixel_loss(a, b[..., :3])


def test_perceptual_loss_against_torchvision_vgg16(vgg_net):
    import torchvision

    from iqa.semantic import _VGG_LEVELS
    from sr_methods.sfd.losses import VGG16_LAYERS, vgg16_perceptual

    assert all(VGG16_LAYERS[k] == v for k, v in _VGG_LEVELS.items()) and VGG16_LAYERS["conv5_3"] == 28
    ref = torchvision.models.vgg16(weights=None).features.eval()
    ref.load_state_dict(vgg_net.state_dict())
    g = torch.Generator().manual_seed(1)
    sr = torch.rand(2, 3, 48, 40, generator=g).requires_grad_(True)
    hr = torch.rand(2, 3, 48, 40, generator=g)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def norm(x):
        return (x - mean) / std

    loss = vgg16_perceptual(net=vgg_net)
    want = (ref[:29](norm(sr)) - ref[:29](norm(hr))).abs().mean()  # conv5_3, before its ReLU
    got = loss(sr, hr)
    assert torch.allclose(got, want, rtol=1e-5)
    got.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in vgg_net.parameters())
    two = vgg16_perceptual({"relu2_2": 0.5, "conv5_3": 1.0}, net=vgg_net)(sr, hr)
    assert torch.allclose(two, want + 0.5 * (ref[:9](norm(sr)) - ref[:9](norm(hr))).abs().mean(), rtol=1e-5)
    with pytest.raises(SrbenchError, match="perceptual layers"):
        vgg16_perceptual({"conv5_4": 1.0}, net=vgg_net)


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip"))


def test_adversarial_losses_are_the_sfd_cross_entropies(clip_files):
    from iqa.semantic import build_backbone
    from iqa.sfd import SFD, SFDConfig
    from sr_methods.sfd.losses import discriminator_loss, generator_adversarial_loss

    config, weights = clip_files
    torch.manual_seed(0)
    sfd = SFD(SFDConfig(n_ctx=2, feat_width=8, feat_layers=2), build_backbone(str(config), pretrained=None,
                                                                             weights=weights))
    g = torch.Generator().manual_seed(2)
    real = torch.rand(2, 3, 32, 32, generator=g)
    fake = torch.rand(2, 3, 32, 32, generator=g).requires_grad_(True)
    (mr, lr), (mf, lf) = sfd(real), sfd(fake)
    sp = F.softplus  # BCE with logits: label 1 -> softplus(-x), label 0 -> softplus(x)
    want_d = 0.5 * (sp(-mr).mean() + sp(mf).mean()) + 0.5 * (sp(-lr).mean() + sp(lf).mean())
    d = discriminator_loss(sfd, real, fake)
    assert torch.allclose(d["total"], want_d, rtol=1e-5) and set(d) >= {"featd", "lpp", "total"}
    d["total"].backward()
    assert fake.grad is None  # the discriminators' loss never reaches the generator
    assert sfd.featd.proj[sfd.levels[0]].weight.grad is not None and sfd.lpp.ctx.grad is not None
    want_g = sp(-mf).mean() + sp(-lf).mean()
    g_loss = generator_adversarial_loss(sfd, fake)
    assert torch.allclose(g_loss, want_g, rtol=1e-5)
    g_loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in sfd.backbone.parameters())


# -- training ---------------------------------------------------------------------------------------------

@pytest.fixture
def data_root(tmp_path) -> Path:
    return tiny_train_root(tmp_path / "data", 64, 48)


def setup(tmp_path, vgg_file, scale=4, **kw):
    from bench.train.loop import TrainConfig
    from bench.train.sfd_sr import Options

    cfg = TrainConfig(scale=scale, patch=32, batch=2, steps=4, log_every=1, ckpt_every=2, val_images=2, val_crop=32,
                      val_metrics=("psnr",), ema=0.5, device="cpu")
    base = {"generator": "rrdn", "init_path": str(tiny_rrdn(tmp_path / f"init_x{scale}.safetensors", scale))} \
        if scale != 16 else {}
    opts = Options(**{**base, "backbone_weights": str(vgg_file), "feat_width": 8, "feat_layers": 2, "lr": 1e-3,
                      "d_lr": 1e-3, **kw})
    return cfg, opts


def run(tmp_path, out, data_root, cfg, opts, recipe=None, **kw):
    from bench.train.loop import train
    from bench.train.sfd_sr import SFDSRVGG16

    return train(recipe or SFDSRVGG16, cfg, opts, tmp_path / out, data_root=data_root, echo=lambda _: None,
                 progress=False, **kw)


def weights(path: Path) -> dict[str, torch.Tensor]:
    from sr_methods.trained import read_checkpoint

    return read_checkpoint(path)[0]


def test_training_is_deterministic_records_its_provenance_and_runs_in_the_harness(tmp_path, data_root, vgg_file):
    import sr_methods
    from iqa.assets import sha256_file
    from sr_methods.trained import read_checkpoint

    cfg, opts = setup(tmp_path, vgg_file)
    a = run(tmp_path, "a", data_root, cfg, opts)
    b = run(tmp_path, "b", data_root, cfg, opts)
    wa, wb = weights(a), weights(b)
    assert set(wa) and all(torch.equal(wa[k], wb[k]) for k in wa)
    _, rec, _ = read_checkpoint(a)
    assert rec["method"] == "sfd-sr-vgg16" and rec["arch"] == "rrdn" and rec["scale"] == 4
    assert rec["parent"]["sha256"] == sha256_file(opts.init_path) and rec["base"] is None
    assert rec["backbone"]["backbone"] == "vgg16" and rec["backbone"]["sha256"] == sha256_file(vgg_file)
    assert rec["backbone"]["perceptual"]["layers"] == {"conv5_3": 1.0} and rec["backbone"]["sfd_init"] is None
    assert rec["config"]["method"]["gan_weight"] == 0.005 and rec["validation"]["val_psnr"] > 5
    log = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "g_total" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4] and all({"pix", "percep", "g_gan", "d_total"} <= set(r)
                                                              for r in steps)
    # the harness runs it under its method name, at its scale, and knows its backbone
    name = f"sfd-sr-vgg16:{a}"
    m = sr_methods.create_method(name)
    assert m.scales == (4,) and m.backbone == "vgg16" and sr_methods.method_info(name)["backbone"] == "vgg16"
    out = m.upscale(torch.rand(1, 3, 6, 7), 4)
    assert out.shape == (1, 3, 24, 28) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(SrbenchError, match="is a 'sfd-sr-vgg16' checkpoint, not 'rrdn-x16'"):
        sr_methods.method_info(f"rrdn-x16:{a}")


def test_a_killed_training_resumes_to_the_same_weights(tmp_path, data_root, vgg_file, monkeypatch):
    from bench.train.sfd_sr import SFDSRVGG16

    cfg, opts = setup(tmp_path, vgg_file)
    whole, resumed = whole_and_resumed(monkeypatch, SFDSRVGG16, lambda name: run(tmp_path, name, data_root, cfg, opts),
                                       tmp_path)
    ww, wr = weights(whole), weights(resumed)
    assert all(torch.equal(ww[k], wr[k]) for k in ww)
    sw, sr = (torch.load(tmp_path / d / "state.pt", weights_only=True)["modules"] for d in ("whole", "killed"))
    for part in ("featd", "lpp", "generator"):  # the discriminators too
        assert all(torch.equal(sw[part][k], sr[part][k]) for k in sw[part])


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _moved(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_both_players_learn_and_the_backbone_stays_frozen(tmp_path, vgg_file):
    from bench.train.sfd_sr import SFDSRVGG16

    g = torch.Generator().manual_seed(3)
    hr = torch.rand(2, 3, 32, 32, generator=g)
    lr = F.avg_pool2d(hr, 4)
    moved = {}
    for gan_weight in (0.0, 1.0):  # the adversarial term alone (no pixel, no perceptual loss)
        cfg, opts = setup(tmp_path, vgg_file, pixel_weight=0.0, perceptual_weight=0.0, gan_weight=gan_weight)
        torch.manual_seed(0)
        r = SFDSRVGG16(cfg, opts, torch.device("cpu"), echo=lambda _: None)
        gen, featd, lpp, bb = _state(r.net), _state(r.sfd.featd), _state(r.sfd.lpp), _state(r.sfd.backbone)
        losses = r.step(lr, hr, 0, torch.Generator(), contextlib.nullcontext)
        moved[gan_weight] = _moved(gen, r.net)
        assert _moved(featd, r.sfd.featd) and _moved(lpp, r.sfd.lpp)  # the discriminators learn
        assert not _moved(bb, r.sfd.backbone)  # the semantic backbone is frozen
        assert not any(p.requires_grad for p in r.sfd.backbone.parameters())
        assert all(p.requires_grad for p in r._d_params())  # unfrozen again after the generator step
        assert {"d_featd", "d_lpp", "d_total"} <= set(losses)
    assert moved == {0.0: False, 1.0: True}  # the GAN term, and only it here, moves the generator


def test_rrdbnet_generator_with_a_psnr_phase_and_the_schedule(tmp_path, data_root, vgg_file):
    from bench.train.sfd_sr import SFDSRVGG16
    from sr_methods.trained import read_checkpoint

    cfg, opts = setup(tmp_path, vgg_file, generator="rrdbnet", init_path="", nf=8, nb=1, gc=4, psnr_steps=2)
    path = run(tmp_path, "rrdb", data_root, cfg, opts, validate=False)
    _, rec, _ = read_checkpoint(path)
    assert rec["arch"] == "rrdbnet" and rec["arch_options"] == {"in_ch": 3, "out_ch": 3, "nf": 8, "nb": 1, "gc": 4,
                                                                "scale": 4} and rec["parent"] is None
    log = [json.loads(line) for line in (tmp_path / "rrdb" / "train_log.jsonl").read_text().splitlines()]
    assert ["d_total" in r for r in log] == [False, False, True, True]  # L1 only, then the GAN
    r = SFDSRVGG16(replace(cfg, steps=36), replace(opts, psnr_steps=6), torch.device("cpu"), echo=lambda _: None)
    rates = [r.rates(k) for k in range(36)]
    assert rates[:6] == [(opts.psnr_lr * f, False) for f in (1, 1, 0.5, 0.5, 0.25, 0.25)]
    gan = [rate for rate, on in rates if on]  # 30 GAN steps: halved at 10 and 20
    assert gan == [opts.lr] * 10 + [opts.lr / 2] * 10 + [opts.lr / 4] * 10


@pytest.mark.parametrize("trains", ["stage", "all"])
def test_x16_fine_tunes_an_rrdn_x16_checkpoint(tmp_path, data_root, vgg_file, trains):
    """x16 starts from an rrdn-x16 checkpoint: ``stage`` trains and ships the x2 stage on the frozen
    base asset; ``all`` trains base and stage together and ships every weight (no asset needed)."""
    import sr_methods
    from bench.train.loop import TrainConfig, train
    from bench.train.rrdn_x16 import Options as StageOptions
    from bench.train.rrdn_x16 import RRDNx16
    from sr_methods.rrdn import load_rrdn
    from sr_methods.trained import read_checkpoint

    base = tiny_rrdn(tmp_path / "base_x8.safetensors", scale=8)
    init = train(RRDNx16, TrainConfig(scale=16, patch=32, batch=1, steps=0, device="cpu", val_metrics=()),
                 StageOptions(base_asset="", base_path=str(base), channels=4, blocks=1), tmp_path / "x16",
                 data_root=data_root, echo=lambda _: None, progress=False, validate=False)
    cfg, opts = setup(tmp_path, vgg_file, scale=16)
    cfg, opts = replace(cfg, steps=2), replace(opts, x16_trains=trains)
    with pytest.raises(SrbenchError, match="pass --init"):
        run(tmp_path, "no-init", data_root, cfg, opts, validate=False)
    path = run(tmp_path, "sfd16", data_root, cfg, opts, init=init, validate=False)
    tensors, rec, _ = read_checkpoint(path)
    start, start_rec, start_sha = read_checkpoint(init)
    assert rec["arch"] == "rrdn-x2-stage" and rec["scale"] == 16 and rec["parent"]["sha256"] == start_sha
    assert any(not torch.equal(v, start[k]) for k, v in tensors.items() if k in start)  # the stage learned
    base_keys = [k for k in tensors if k.startswith("base.")]
    base_state = load_rrdn(base)[0].state_dict()
    if trains == "stage":
        assert not base_keys and rec["base"]["sha256"] == start_rec["base"]["sha256"]
    else:  # the whole network ships and owns its base, which learned too
        assert rec["base"] is None and rec["arch_options"]["base_config"]["scale"] == 8
        assert sorted(base_keys) == sorted(f"base.{k}" for k in base_state)
        assert any(not torch.equal(tensors[f"base.{k}"].float(), v.half().float()) for k, v in base_state.items())
        base.unlink()  # it runs without the base file
    sr = sr_methods.create_method(f"sfd-sr-vgg16:{path}")
    assert sr.upscale(torch.rand(1, 3, 3, 2), 16).shape == (1, 3, 48, 32)


def test_x16_on_another_x8_network_with_no_step_is_that_network_then_the_stage(tmp_path, data_root, vgg_file):
    """``x16_base`` puts an srbench x8 rrdn checkpoint (e.g. SFD-SR x8) under the stage of an rrdn-x16
    checkpoint; with 0 steps the result is exactly the two, and both are recorded as parents."""
    import sr_methods
    from bench.train.loop import TrainConfig, train
    from bench.train.rrdn_x16 import Options as StageOptions
    from bench.train.rrdn_x16 import RRDNx16
    from sr_methods.rrdn import load_rrdn
    from sr_methods.trained import load_network, read_checkpoint, save_checkpoint

    init = train(RRDNx16, TrainConfig(scale=16, patch=32, batch=1, steps=1, device="cpu", val_metrics=()),
                 StageOptions(base_asset="", base_path=str(tiny_rrdn(tmp_path / "b8.safetensors", scale=8)),
                              channels=4, blocks=1), tmp_path / "x16", data_root=data_root, echo=lambda _: None,
                 progress=False, validate=False)
    other, _, _ = load_rrdn(tiny_rrdn(tmp_path / "o8.safetensors", scale=8, seed=3))
    x8 = save_checkpoint(other.state_dict(), {"method": "sfd-sr-vgg16", "arch": "rrdn", "scale": 8,
                                              "arch_options": other.config.to_dict()}, tmp_path / "x8.safetensors")
    cfg, opts = setup(tmp_path, vgg_file, scale=16)
    path = run(tmp_path, "sfd16", data_root, replace(cfg, steps=0), replace(opts, x16_base=str(x8)), init=init,
               validate=False)
    net, rec, _ = load_network(path)
    stage_from, _, init_sha = read_checkpoint(init)
    assert rec["base"] is None and rec["parent"]["sha256"] == init_sha
    assert rec["parent"]["x16_base"] == {"path": str(x8.resolve()), "sha256": read_checkpoint(x8)[2],
                                         "method": "sfd-sr-vgg16"}
    half = {k: v.half().float() for k, v in other.state_dict().items()}  # the file is fp16
    assert all(torch.equal(v, half[k]) for k, v in net.base.state_dict().items())
    assert all(torch.equal(v, stage_from[f"stage.{k}"].float()) for k, v in net.stage.state_dict().items())
    lr = torch.rand(1, 3, 3, 2)
    with torch.no_grad():
        want = net.upsample_base(net.base(lr).clamp(0, 1))
    assert torch.equal(sr_methods.create_method(f"sfd-sr-vgg16:{path}").upscale(lr, 16), want.clamp(0, 1))
    x4 = save_checkpoint(other.state_dict(), {"method": "sfd-sr-vgg16", "arch": "rrdn", "scale": 4,
                                              "arch_options": other.config.to_dict()}, tmp_path / "x4.safetensors")
    with pytest.raises(SrbenchError, match="must be an x8 rrdn one"):
        run(tmp_path, "bad", data_root, replace(cfg, steps=0), replace(opts, x16_base=str(x4)), init=init,
            validate=False)


def test_clip_variant_on_a_tiny_clip(tmp_path, data_root, vgg_file, clip_files):
    import sr_methods
    from bench.train.sfd_sr import SFDSRClip
    from sr_methods.trained import read_checkpoint

    config, clip_weights = clip_files
    cfg, opts = setup(tmp_path, vgg_file, backbone=str(config), backbone_weights=str(clip_weights),
                      perceptual_weights=str(vgg_file), n_ctx=2)
    path = run(tmp_path, "clip", data_root, replace(cfg, steps=2), opts, recipe=SFDSRClip, validate=False)
    _, rec, _ = read_checkpoint(path)
    assert rec["method"] == "sfd-sr-clip" and rec["backbone"]["backbone"] == "clip:srbench-tiny-clip"
    assert rec["backbone"]["perceptual"]["sha256"] and "shared_with" not in rec["backbone"]["perceptual"]
    assert sr_methods.method_info(f"sfd-sr-clip:{path}")["backbone"] == "clip:srbench-tiny-clip"


def test_option_errors_are_one_line(tmp_path, vgg_file):
    from bench.train.loop import load_config
    from bench.train.sfd_sr import SFDSRVGG16, SFDSRClip

    cfg, opts = setup(tmp_path, vgg_file)
    dev = torch.device("cpu")
    for bad, match in (({"generator": "srgan"}, "generator must be one of rrdn, rrdbnet"),
                       ({"gan_weight": -1.0}, "gan_weight must be a number >= 0"),
                       ({"milestones": (0.5, 1.5)}, "milestones are fractions"),
                       ({"x16_trains": "base"}, "x16_trains must be 'all' or 'stage'"),
                       ({"backbone": "clip:ViT-B-16/openai"}, "sfd-sr-vgg16 trains against a vgg16 backbone")):
        with pytest.raises(SrbenchError, match=match):
            SFDSRVGG16(cfg, replace(opts, **bad), dev, echo=lambda _: None)
    with pytest.raises(SrbenchError, match="sfd-sr-clip trains against a clip backbone"):
        SFDSRClip(cfg, replace(opts, backbone="vgg16"), dev, echo=lambda _: None)
    with pytest.raises(SrbenchError, match="scale 4, 8 or 16"):
        SFDSRVGG16(replace(cfg, scale=2), opts, dev, echo=lambda _: None)
    # the shipped SFD-IQA discriminators were trained on the real VGG16, not on this random one
    with pytest.raises(SrbenchError, match="was trained on vgg16 weights with sha256"):
        SFDSRVGG16(cfg, replace(opts, init_sfd="sfd-iqa-vgg16"), dev, echo=lambda _: None)
    toml = tmp_path / "c.toml"
    toml.write_text('preset = "cpu-x8"\n[method]\ngan_wieght = 0.01\n')
    with pytest.raises(SrbenchError, match=r"unknown \[method\] keys \['gan_wieght'\] for sfd-sr-vgg16"):
        load_config(SFDSRVGG16, str(toml))
    c, o = load_config(SFDSRVGG16, "cpu-x8")
    assert (c.scale, c.patch, c.batch, o.generator, o.init_sfd, o.gan_weight) == (8, 128, 4, "rrdn", "sfd-iqa-vgg16",
                                                                                   0.005)


def test_recipes_are_registered():
    from bench.train.recipes import get_recipe

    assert get_recipe("sfd-sr-vgg16").method == "sfd-sr-vgg16" and get_recipe("sfd-sr-clip").method == "sfd-sr-clip"


def test_the_report_flags_sfd_iqa_on_the_same_backbone_as_circular(tmp_path, data_root, vgg_file):
    import sr_methods
    from bench.report.leaderboard import _method_backbones

    cfg, opts = setup(tmp_path, vgg_file)
    path = run(tmp_path, "circ", data_root, replace(cfg, steps=1), opts, validate=False)
    m = sr_methods.create_method(f"sfd-sr-vgg16:{path}")
    manifest = {"weights": {"sfd": m.provenance()}, "spec": {"methods": [{"name": f"sfd-sr-vgg16:{path}",
                                                                          "label": "sfd"}]}}
    assert _method_backbones([manifest]) == {"sfd": "vgg16"}



@pytest.mark.gpu
def test_sfd_sr_trains_on_cuda_under_bfloat16(tmp_path, data_root, vgg_file):
    """The loop's CUDA path: bf16 autocast for the generator, both discriminators and the
    perceptual loss, losses in float32, EMA on the device; the checkpoint runs on CUDA and on the
    CPU alike (float32 weights from fp16 files)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    import sr_methods

    cfg, opts = setup(tmp_path, vgg_file)
    path = run(tmp_path, "cuda", data_root, replace(cfg, device="cuda", amp=True), opts)
    log = [json.loads(line) for line in (tmp_path / "cuda" / "train_log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(v) for r in log for k, v in r.items() if k != "step")
    x = torch.rand(1, 3, 12, 10)
    cpu = sr_methods.create_method(f"sfd-sr-vgg16:{path}").upscale(x, 4)
    gpu = sr_methods.create_method(f"sfd-sr-vgg16:{path}", device="cuda").upscale(x.cuda(), 4)
    assert gpu.device.type == "cuda" and torch.allclose(gpu.cpu(), cpu, atol=1e-3)


# -- the shipped checkpoints ------------------------------------------------------------------------------


def test_the_shipped_family_serves_x4_x8_x16_with_its_backbone_and_parents():
    import sr_methods
    from bench.report.leaderboard import _method_backbones

    info_of = sr_methods.method_info
    info = info_of("sfd-sr-vgg16")
    assert info["kind"] == "family" and info["backbone"] == "vgg16" and tuple(info["scales"]) == (4, 8, 16)
    for s, member in info["members"].items():
        m = sr_methods.method_info(member)
        assert m["recipe"] == "sfd-sr-vgg16" and tuple(m["scales"]) == (s,) and m["backbone"] == "vgg16"
    # every shipped file holds all its weights: it runs with the tests' empty asset cache
    fam = sr_methods.create_method("sfd-sr-vgg16")
    assert fam.backbone == "vgg16" and fam.provenance()["backbone"] == "vgg16"
    lr = torch.rand(1, 3, 4, 5)
    for s in (4, 8, 16):
        assert fam.upscale(lr, s).shape == (1, 3, 4 * s, 5 * s)
    # x16: the SFD-SR x8 network (bit for bit) followed by rrdn-x16's stage, both named as parents
    x16, x8 = fam.members[16], fam.members[8]
    assert all(torch.equal(v, x8.net.state_dict()[k]) for k, v in x16.net.base.state_dict().items())
    parent = x16.record["parent"]
    assert parent["x16_base"]["sha256"] == x8.sha256 and parent["sha256"] == info_of("rrdn-x16")["sha256"]
    assert x16.record["config"]["steps"] == 0 and x16.record["base"] is None
    # the run's provenance names each shipped file by sha256, checked against the catalogue
    from bench.report.leaderboard import weight_hashes

    prov = fam.provenance()
    assert all(prov["members"][f"x{s}"]["weights"]["verified"] is True for s in (4, 8, 16))
    assert weight_hashes({"weights": {"sfd": prov}}) == {f"sfd/x{s}": info_of(f"sfd-sr-vgg16-x{s}")["sha256"]
                                                         for s in (4, 8, 16)}
    # a run of the family is flagged circular under SFD-IQA-vgg16 (the report reads the backbone)
    assert _method_backbones([{"spec": {"methods": [{"name": "sfd-sr-vgg16", "label": "sfd"}]}}]) == {"sfd": "vgg16"}


def test_a_shipped_entry_takes_a_weights_folder_and_checks_recipe_and_scale(tmp_path):
    from iqa.registry import Entry
    from sr_methods.rrdn import load_rrdn
    from sr_methods.trained import build_shipped, save_checkpoint

    net, _, _ = load_rrdn(tiny_rrdn(tmp_path / "tiny.safetensors", scale=4))
    rec = {"method": "sfd-sr-vgg16", "arch": "rrdn", "arch_options": net.config.to_dict(), "scale": 4}
    save_checkpoint(net.state_dict(), rec, tmp_path / "w" / "x4.safetensors")

    def entry(**meta):
        return Entry("sfd-sr-vgg16-x4", "sr_methods.trained:build_shipped",
                     {"file": "x4.safetensors", "sha256": "0" * 64, "recipe": "sfd-sr-vgg16", "scales": (4,), **meta})

    m = build_shipped(entry=entry(), weights=tmp_path / "w")  # a folder: its file of the catalogue's name
    assert m.name == "sfd-sr-vgg16-x4" and m.scales == (4,) and m.verified is False  # the user's file
    assert m.upscale(torch.rand(1, 3, 5, 6), 4).shape == (1, 3, 20, 24)
    with pytest.raises(SrbenchError, match="is an x4 checkpoint; sfd-sr-vgg16-x4 is x8"):
        build_shipped(entry=entry(scales=(8,)), weights=tmp_path / "w")
    with pytest.raises(SrbenchError, match="is a 'sfd-sr-vgg16' checkpoint, not 'sfd-sr-clip'"):
        build_shipped(entry=entry(recipe="sfd-sr-clip"), weights=tmp_path / "w")
    with pytest.raises(SrbenchError, match="shipped with srbench has sha256 None"):  # not installed
        build_shipped(entry=entry(file="absent.safetensors"))
