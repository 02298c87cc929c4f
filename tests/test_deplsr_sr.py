"""DePLSR SR training (recipe ``deplsr``) and its network as a method: a step is L1 of the body
under the frozen adaptor's priors, recomputed independently; only the fusions move; the ablation
zeroes the fine tokens; resume after a kill equals an uninterrupted run; the checkpoint holds the
fusions and the adaptor (not the host), rebuilds, and runs through ``srbench``'s method contract
with tiles under the whole image's priors. A random VGG16, a tiny random RRDN host, never the network."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from iqa.errors import SrbenchError
from tests.helpers import random_vgg16, tiny_train_root, whole_and_resumed


@pytest.fixture(scope="module")
def adaptor_ckpt(tmp_path_factory) -> Path:
    """A deplsr-adaptor checkpoint (2 steps) on a random VGG16."""
    from bench.train.deplsr import DePLSRAdaptor, Options
    from bench.train.loop import TrainConfig, train

    tmp = tmp_path_factory.mktemp("adaptor")
    vgg = random_vgg16(tmp / "vgg16-random.safetensors")
    root = tiny_train_root(tmp / "data", 64, 48)
    cfg = TrainConfig(scale=4, patch=32, batch=2, steps=2, degradation="bicubic", sets=("t91",), val_images=2,
                      val_crop=32, val_metrics=(), ema=0.0, device="cpu")
    opts = Options(backbone="vgg16", backbone_weights=str(vgg), lq_size=32, width=8, text_hidden=16, probe=False)
    return train(DePLSRAdaptor, cfg, opts, tmp / "out", data_root=root, echo=lambda _: None, progress=False)


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Path:
    """A tiny random x4 RRDN with two RRDBs (a fusion before each)."""
    import json

    from iqa.assets import write_safetensors
    from sr_methods.rrdn import RRDN, RRDNConfig

    path = tmp_path_factory.mktemp("host") / "host.safetensors"
    torch.manual_seed(0)
    cfg = RRDNConfig(C=1, D=1, G=4, G0=8, T=2, scale=4)
    write_safetensors(RRDN(cfg).state_dict(), {"config": json.dumps(cfg.to_dict())}, path)
    return path


@pytest.fixture
def data_root(tmp_path) -> Path:
    return tiny_train_root(tmp_path / "data", 64, 48)


def setup(adaptor: Path, host: Path, **kw):
    from bench.train.deplsr import SROptions
    from bench.train.loop import TrainConfig

    cfg = TrainConfig(scale=4, patch=32, batch=2, steps=4, degradation="realesrgan", sets=("t91",), log_every=1,
                      ckpt_every=2, val_images=2, val_crop=32, val_metrics=("psnr",), ema=0.5, device="cpu")
    return cfg, SROptions(**{"adaptor": str(adaptor), "base_path": str(host), "heads": 2, "lr": 1e-3, **kw})


def run(tmp_path, out, data_root, cfg, opts, **kw):
    from bench.train.deplsr import DePLSR
    from bench.train.loop import train

    return train(DePLSR, cfg, opts, tmp_path / out, data_root=data_root, echo=lambda _: None, progress=False, **kw)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("tokens", ["fine", "zero"])
def test_a_step_is_l1_of_the_body_under_the_frozen_priors(adaptor_ckpt, host, tokens):
    from bench.train.deplsr import DePLSR
    from sr_methods.deplsr.nets import FusedRRDN
    from sr_methods.rrdn import load_rrdn

    cfg, opts = setup(adaptor_ckpt, host, tokens=tokens)
    torch.manual_seed(0)
    r = DePLSR(cfg, opts, torch.device("cpu"), echo=lambda _: None)
    net = r.net
    assert isinstance(net.body, FusedRRDN) and net.body.tokens == tokens
    g = torch.Generator().manual_seed(5)
    lr, hr = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    # give the zero-initialised output layers values, so every fusion parameter gets a gradient
    with torch.no_grad():
        for f in net.body.fusions.values():
            for lin in (f.attn_x.out, f.mlp[-1]):
                lin.weight.normal_(0, 0.3, generator=g)
    before, adaptor_before = _state(net.body), _state(net.adaptor)
    # independently: the adaptor's embeddings of the LR, the fine ones zeroed by the ablation, the
    # host RRDN with a fusion before each RRDB
    with torch.no_grad():
        out = net.adaptor(lr)
        content, fine = out.content, (out.fine if tokens == "fine" else torch.zeros_like(out.fine))
        rrdn, _, _ = load_rrdn(host)
        f0 = rrdn.pre_blocks(lr)
        h = f0
        for i, rrdb in enumerate(rrdn.rrdbs):
            h = rrdb(net.body.fusions[str(i)](h, content, fine))
        from sr_methods.rrdn import depth_to_space

        sr = rrdn.sr(depth_to_space(rrdn.pre_shuffle(rrdn.post_blocks(h) + f0), 4))
        want = (sr - hr).abs().mean()
    losses = r.step(lr, hr, 0, torch.Generator().manual_seed(1), contextlib.nullcontext)
    assert losses["l1"].item() == pytest.approx(want.item(), rel=1e-5)
    after = _state(net.body)
    assert set(after) == set(before) and all(k.startswith("fusions.") for k in after)  # the host is not trained
    # every fusion weight moved (with zeroed tokens the fine MLP's first weight sees a zero input:
    # its gradient is zero, the ablation's "learned constant token")
    still = {k for k in after if torch.equal(after[k], before[k]) and "norm" not in k}
    assert still == (set() if tokens == "fine" else {k for k in after if k.endswith("fine_mlp.0.weight")})
    assert all(torch.equal(v, adaptor_before[k]) for k, v in _state(net.adaptor).items())  # the adaptor is frozen
    # the lr follows the milestones (halved at each fraction of the steps passed)
    r.step(lr, hr, 2, torch.Generator().manual_seed(1), contextlib.nullcontext)
    assert r.opt.param_groups[0]["lr"] == pytest.approx(1e-3 / 2)


def test_training_resumes_and_the_checkpoint_runs_as_a_method(tmp_path, data_root, adaptor_ckpt, host, monkeypatch):
    from bench.train.deplsr import DePLSR
    from sr_methods.trained import (
        TrainedMethod,
        load_network,
        read_checkpoint,
        read_record,
    )

    cfg, opts = setup(adaptor_ckpt, host)
    whole, resumed = whole_and_resumed(monkeypatch, DePLSR, lambda name: run(tmp_path, name, data_root, cfg, opts),
                                       tmp_path)
    (tw, rec, _), (tr, _, _) = read_checkpoint(whole), read_checkpoint(resumed)
    assert set(tw) == set(tr) and all(torch.equal(tw[k], tr[k]) for k in tw)
    assert {k.split(".")[0] for k in tw} == {"adaptor", "body"} and not any(k.startswith("body.base") for k in tw)
    assert rec["arch"] == "deplsr" and rec["base"]["sha256"] == rec["arch_options"]["base_sha256"]
    assert rec["backbone"]["adaptor"]["sha256"] == read_checkpoint(adaptor_ckpt)[2]
    assert rec["backbone"]["tokens"] == "fine" and "val_psnr" in rec["validation"]
    assert read_record(whole)["config"]["method"]["adaptor"] == str(adaptor_ckpt)
    # the network rebuilds from the record and runs end to end; tiles share the whole image's priors
    net, _, _ = load_network(whole)
    x = torch.rand(1, 3, 20, 18, generator=torch.Generator().manual_seed(2))
    m = TrainedMethod(whole, name="deplsr-test")
    y = m.upscale(x, 4)
    assert y.shape == (1, 3, 80, 72)
    with torch.no_grad():
        torch.testing.assert_close(y, net(x).clamp(0, 1), rtol=0, atol=2e-6)
    tiled = TrainedMethod(whole, name="deplsr-test", tile=12, tile_overlap=4)
    calls, real = [], tiled.net.priors
    monkeypatch.setattr(tiled.net, "priors", lambda t: calls.append(tuple(t.shape)) or real(t))
    assert tiled.upscale(x, 4).shape == y.shape
    assert calls == [(1, 3, 20, 18)]  # once, on the whole image, for every tile


def test_bad_options(adaptor_ckpt, host, tmp_path):
    from bench.train.deplsr import DePLSR

    cfg, opts = setup(adaptor_ckpt, host)
    for bad, match in (({"adaptor": ""}, "needs a trained adaptor"), ({"tokens": "none"}, "tokens"),
                       ({"body": "swinir"}, "body"), ({"lr": 0}, "lr")):
        with pytest.raises(SrbenchError, match=match):
            DePLSR(cfg, replace(opts, **bad), torch.device("cpu"), echo=lambda _: None)
    with pytest.raises(SrbenchError, match="not an srbench SR checkpoint"):
        DePLSR(cfg, replace(opts, adaptor=str(host)), torch.device("cpu"), echo=lambda _: None)
