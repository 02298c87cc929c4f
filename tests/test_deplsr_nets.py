"""DePLSR's SR networks (sr_methods.deplsr.nets): FusionBlock shapes and gradient flow, zero-init
equivalence of RealDAT with its DAT and of FusedRRDN with its RRDN, the ablation switch, input
errors and the paper config's parameter count. Tiny random models only."""

import copy

import pytest
import torch
from helpers import tiny_rrdn
from torch import nn

from iqa.errors import SrbenchError
from sr_methods.deplsr.nets import (
    PAPER_DAT,
    FusedRRDN,
    FusionBlock,
    RealDAT,
    build_dat,
    count_parameters,
    paper_realdat,
)
from sr_methods.rrdn import RRDN, RRDNConfig, load_rrdn

D = 16  # prior width in the tiny tests
TINY_DAT = {"embed_dim": 32, "depth": [2, 2], "num_heads": [2, 2], "split_size": [2, 4], "expansion_factor": 2.0,
            "img_size": 8, "upscale": 2, "drop_path_rate": 0.0}


def priors(b: int = 2, n: int = 5, d: int = D, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, n, d, generator=g)


def wake(module: nn.Module, seed: int = 1) -> None:
    """Give every FusionBlock's zero-initialised output layers random values (a 'trained' block)."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, FusionBlock):
            for lin in (m.attn_x.out, m.mlp[-1]):
                with torch.no_grad():
                    lin.weight.copy_(0.3 * torch.randn(lin.weight.shape, generator=g))
                    lin.bias.copy_(0.1 * torch.randn(lin.bias.shape, generator=g))


@pytest.fixture(scope="module")
def rrdn(tmp_path_factory) -> RRDN:
    model, _, _ = load_rrdn(tiny_rrdn(tmp_path_factory.mktemp("rrdn") / "tiny.safetensors", scale=2))
    return model


# -- FusionBlock --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["map", "tokens"])
def test_fusion_block_shapes_and_identity_at_init(layout):
    torch.manual_seed(0)
    blk = FusionBlock(8, D, heads=2)
    x = torch.randn(2, 8, 5, 7) if layout == "map" else torch.randn(2, 35, 8)
    c, f = priors()
    y = blk(x, c, f)
    assert y.shape == x.shape and torch.equal(y, x)
    wake(blk)
    y = blk(x, c, f)
    assert y.shape == x.shape and not torch.allclose(y, x)
    assert blk.priors(c, f).shape == (2, 6, 8)


def test_fusion_block_map_and_tokens_agree():
    torch.manual_seed(0)
    blk = FusionBlock(8, D, heads=4)
    wake(blk)
    x = torch.randn(2, 8, 4, 6)
    c, f = priors()
    tok = x.flatten(2).transpose(1, 2)
    torch.testing.assert_close(blk(x, c, f).flatten(2).transpose(1, 2), blk(tok, c, f))


def test_fusion_block_gradients_reach_params_features_and_priors():
    torch.manual_seed(0)
    blk = FusionBlock(8, D, heads=2)
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    c, f = priors()
    c.requires_grad_(True)
    f.requires_grad_(True)
    # at init only the zero-initialised output layers get a gradient (training can start)
    blk(x, c, f).square().sum().backward()
    assert blk.attn_x.out.weight.grad.abs().sum() > 0 and blk.mlp[-1].weight.grad.abs().sum() > 0
    # once they are non-zero, every parameter, the features and both prior inputs get one
    wake(blk)
    blk.zero_grad()
    x.grad = c.grad = f.grad = None
    blk(x, c, f).square().sum().backward()
    dead = [n for n, p in blk.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []
    for t in (x, c, f):
        assert t.grad is not None and t.grad.abs().sum() > 0
    assert f.grad[:, 4].abs().sum() > 0  # every fine token matters


def test_fusion_block_bad_inputs():
    blk = FusionBlock(8, D, heads=2)
    x = torch.randn(2, 8, 4, 4)
    c, f = priors()
    bad = [(torch.randn(8, 4, 4), c, f), (torch.randn(2, 6, 4, 4), c, f), (x, c[:1], f), (x, c[:, :3], f),
           (x, c, f[:, :, :3]), (x, c, f[0]), (x, c, "fine"), ("x", c, f)]
    for args in bad:
        with pytest.raises(SrbenchError) as e:
            blk(*args)
        assert "\n" not in str(e.value) and "FusionBlock" in str(e.value)
    for kw in ({"dim": 8, "heads": 3}, {"dim": 0}, {"dim": 8, "heads": 2, "mlp_ratio": 0}):
        with pytest.raises(SrbenchError):
            FusionBlock(prior_dim=D, **kw)


# -- RealDAT ------------------------------------------------------------------------------------------------

def tiny_realdat(**kw) -> tuple[RealDAT, nn.Module]:
    torch.manual_seed(0)
    dat = build_dat(**TINY_DAT).eval()
    return RealDAT(copy.deepcopy(dat), prior_dim=D, **kw).eval(), dat


def host_at_init(net, host, x, shape):
    """``net`` computes exactly what ``host`` does at init, with and without the fine tokens; then,
    its zero layers woken, ``(host output, output without fine tokens, output with them)``."""
    c, f = priors()
    with torch.no_grad():
        ref = host(x)
        y = net(x, c, f)
        assert y.shape == shape and torch.equal(y, ref)
        net.tokens = "zero"
        assert torch.equal(net(x, c, f), ref)
        wake(net)
        zero = net(x, c, f)
        net.tokens = "fine"
        return ref, zero, net(x, c, f)


def test_realdat_equals_dat_at_init_and_ablation():
    net, dat = tiny_realdat()
    assert [b.attn_x.heads for b in net.fusions] == [2, 2] and len(net.fusions) == 2
    ref, zero, fine = host_at_init(net, dat, torch.rand(2, 3, 8, 8), (2, 3, 16, 16))
    assert not torch.allclose(zero, fine) and not torch.allclose(fine, ref)
    # the DAT weights live under dat.: a DAT checkpoint loads into a RealDAT
    assert {k[4:] for k in net.state_dict() if k.startswith("dat.")} == set(dat.state_dict())


def test_realdat_ablation_ignores_fine_tokens_only():
    net, _ = tiny_realdat(tokens="zero")
    wake(net)
    x = torch.rand(1, 3, 8, 8)
    c, f = priors(1)
    c2, f2 = priors(1, seed=5)
    with torch.no_grad():
        assert torch.equal(net(x, c, f), net(x, c, f2))
        assert not torch.allclose(net(x, c, f), net(x, c2, f))


def test_realdat_bad_inputs():
    net, dat = tiny_realdat()
    c, f = priors()
    for args in ((torch.rand(3, 8, 8), c, f), (torch.rand(2, 3, 8, 8), c[:, :4], f),
                 (torch.rand(2, 3, 8, 8), c, f[:1])):
        with pytest.raises(SrbenchError) as e:
            net(*args)
        assert "\n" not in str(e.value)
    with pytest.raises(SrbenchError, match="did you mean 'zero'"):
        RealDAT(dat, prior_dim=D, tokens="zeros")
    with pytest.raises(SrbenchError, match="heads"):
        RealDAT(dat, prior_dim=D, heads=[2])
    with pytest.raises(SrbenchError, match="spandrel DAT"):
        RealDAT(nn.Linear(2, 2))
    with pytest.raises(SrbenchError, match="bad DAT arguments"):
        build_dat(no_such_argument=1)


def test_paper_realdat_parameter_count():
    assert PAPER_DAT["embed_dim"] == 180 and PAPER_DAT["split_size"] == [8, 32]
    assert count_parameters(FusionBlock(180, 512, 6)) == 707_220
    net = paper_realdat()
    n_dat = count_parameters(net.dat)
    assert n_dat == 14_802_051  # DAT x4 as published (14.80 M)
    assert count_parameters(net) == n_dat + 6 * 707_220 == 19_045_371  # paper: 18.06 M (+5.5 %, see nets.py)
    assert len(net.fusions) == 6 and net.scale == 4


# -- FusedRRDN ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("train_base", [False, True])
def test_fused_rrdn_equals_rrdn_at_init(rrdn, train_base):
    base = copy.deepcopy(rrdn)
    net = FusedRRDN(base, prior_dim=D, heads=2, train_base=train_base)
    _, zero, fine = host_at_init(net, rrdn, torch.rand(2, 3, 6, 5), (2, 3, 12, 10))
    assert not torch.allclose(zero, fine)
    keys = set(net.state_dict())
    if train_base:
        assert {k for k in keys if k.startswith("base.")} == {"base." + k for k in rrdn.state_dict()}
    else:
        assert all(k.startswith("fusions.") for k in keys)
        assert count_parameters(net) == count_parameters(net.fusions)
        assert not any(p.requires_grad for p in net.rrdn.parameters())


def test_fused_rrdn_frozen_base_trains_fusions_only(rrdn):
    # seeded: with the tiny host's 4 channels, the content MLP's final ReLU can be dead for both
    # samples under some initialisations (then its gradient is truly zero)
    torch.manual_seed(0)
    net = FusedRRDN(copy.deepcopy(rrdn), prior_dim=D, heads=2)
    wake(net)
    net.train()
    assert not net.rrdn.training
    c, f = priors()
    net(torch.rand(2, 3, 6, 6), c, f).abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    assert all(p.grad is None for p in net.rrdn.parameters())
    net.to(torch.float64)
    assert net.rrdn.pre_blocks.weight.dtype == torch.float64


def test_fused_rrdn_subset_and_errors(rrdn):
    torch.manual_seed(0)
    deep = RRDN(RRDNConfig(C=1, D=1, G=4, G0=4, T=3, scale=2))
    net = FusedRRDN(deep, prior_dim=D, heads=2, at=[2, 0])
    assert net.at == (0, 2) and sorted(net.fusions) == ["0", "2"]
    c, f = priors()
    with pytest.raises(SrbenchError, match="at must list"):
        FusedRRDN(deep, prior_dim=D, heads=2, at=[3])
    with pytest.raises(SrbenchError, match="needs an RRDN"):
        FusedRRDN(nn.Conv2d(3, 3, 1))
    with pytest.raises(SrbenchError, match="not a multiple of heads"):
        FusedRRDN(rrdn, prior_dim=D, heads=3)
    with pytest.raises(SrbenchError, match="did you mean"):
        FusedRRDN(rrdn, prior_dim=D, heads=2, tokens="zeros")
    for args in ((torch.rand(2, 1, 6, 6), c, f), (torch.rand(2, 3, 6, 6), c, f[:, :, :2]), (torch.rand(6, 6), c, f)):
        with pytest.raises(SrbenchError) as e:
            net(*args)
        assert "\n" not in str(e.value)
