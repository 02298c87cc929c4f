"""IODA (issue 13): the directional loss against an independent NumPy computation, the masks, the
masked encoder, and adaptation of a tiny network (only the copy changes; seeded; restorable)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iqa.errors import SrbenchError


def _reference(src_lr, tgt_lr, src_sr, tgt_sr):
    """Written from the formula with NumPy, float64, one sample at a time."""
    def unit(v):
        return v / np.linalg.norm(v)

    out = []
    for a, b, c, d in zip(src_lr, tgt_lr, src_sr, tgt_sr):
        a, b, c, d = unit(a), unit(b), unit(c), unit(d)
        out.append(float(a @ b) * (1 - float(unit(d - c) @ unit(b - a))))
    return float(np.mean(out))


def test_directional_loss_equals_the_formula_and_only_the_target_sr_gets_gradients():
    from sr_methods.ioda.losses import directional_loss

    g = torch.Generator().manual_seed(0)
    src_lr, tgt_lr, src_sr, tgt_sr = (torch.randn(3, 16, generator=g, dtype=torch.float64) for _ in range(4))
    tgt_sr.requires_grad_(True)
    loss = directional_loss(src_lr, tgt_lr, src_sr, tgt_sr)
    want = _reference(*(t.detach().numpy() for t in (src_lr, tgt_lr, src_sr, tgt_sr)))
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(want, rel=1e-5, abs=1e-6)
    loss.backward()
    assert tgt_sr.grad is not None and tgt_sr.grad.abs().sum() > 0
    # scale-free: each embedding is normalised first
    assert directional_loss(2 * src_lr, 3 * tgt_lr, 0.5 * src_sr, 7 * tgt_sr.detach()).item() == pytest.approx(
        loss.item(), rel=1e-5)
    # SR moving exactly along the LR direction costs nothing
    assert directional_loss(src_lr, tgt_lr, src_lr, tgt_lr).item() == pytest.approx(0.0, abs=1e-6)


def test_directional_loss_rejects_mismatched_embeddings():
    from sr_methods.ioda.losses import directional_loss

    a = torch.zeros(2, 8)
    with pytest.raises(SrbenchError, match=r"four \(B, D\) embeddings of one shape"):
        directional_loss(a, a, a, torch.zeros(2, 9))


# -- masks --------------------------------------------------------------------------------------------

def test_instance_mask_merges_only_large_labels_and_falls_back_to_the_whole_crop():
    from sr_methods.ioda.masks import instance_mask

    labels = np.zeros((10, 10), dtype=np.int64)
    labels[:, 5:] = 1
    labels[0, 0] = 2  # one pixel: never a candidate
    for seed in range(20):
        m = instance_mask(labels, np.random.default_rng(seed), min_fraction=0.3).numpy()
        chosen = set(np.unique(labels[m > 0]))
        assert chosen and chosen <= {0, 1} and m[0, 0] == 0  # unions of whole large labels
        assert ((m > 0) == np.isin(labels, list(chosen))).all()
    # no label reaches the threshold (the official code crashes here): the whole crop
    assert instance_mask(labels, np.random.default_rng(0), min_fraction=0.9).eq(1).all()


def test_grid_box_and_segmentations_give_label_maps_of_the_crop():
    from sr_methods.ioda.masks import instance_labels

    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 24, 32, generator=g)
    grid = instance_labels(img, "grid", np.random.default_rng(0), grid=4)
    assert grid.shape == (24, 32) and len(np.unique(grid)) == 16 and grid[0, 0] == 0 and grid[-1, -1] == 15
    box = instance_labels(img, "box", np.random.default_rng(0))
    ys, xs = np.nonzero(box)
    assert box.sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)  # one rectangle
    assert 6 <= ys.max() - ys.min() + 1 <= 18 and 8 <= xs.max() - xs.min() + 1 <= 24
    from helpers import photo

    crop = torch.from_numpy(photo(48, 40, 0)).permute(2, 0, 1).float() / 255
    for kind in ("slic", "felzenszwalb"):
        lab = instance_labels(crop, kind, np.random.default_rng(0))
        assert lab.shape == (48, 40) and len(np.unique(lab)) >= 4
    with pytest.raises(SrbenchError, match="unknown instance masks 'sam'"):
        instance_labels(img, "sam", np.random.default_rng(0))


def test_occlusion_zeroes_whole_cells_and_the_sr_mask_is_exact():
    from sr_methods.ioda.masks import occlusion_mask, upsample_mask

    assert occlusion_mask(40, 40, np.random.default_rng(0), p_apply=0.0).eq(1).all()
    m = occlusion_mask(40, 40, np.random.default_rng(1), cell=8, p_apply=1.0, p_cell=0.5)
    cells = m.reshape(5, 8, 5, 8).permute(0, 2, 1, 3).reshape(25, 64)
    assert bool((cells.eq(cells[:, :1])).all()) and 0 < int(cells[:, 0].sum()) < 25
    small = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.equal(upsample_mask(small, 3), torch.kron(small, torch.ones(3, 3)))


# -- the masked encoder ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip_backbone(tmp_path_factory):
    from helpers import tiny_clip
    from iqa.semantic import build_backbone

    config, weights = tiny_clip(tmp_path_factory.mktemp("clip"))
    return build_backbone(str(config), pretrained=None, weights=weights)


def test_masked_encoder_pools_the_projected_patch_tokens(clip_backbone):
    from sr_methods.ioda.encoder import MaskedEncoder

    enc = MaskedEncoder(clip_backbone)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    mask = torch.zeros(2, 32, 32)
    mask[:, :16, :16] = 1  # exactly the top-left patch of the 4 x 4 grid (8-px patches)... and its neighbours
    mask[1] = 1
    v = clip_backbone.model.visual
    tokens = clip_backbone(x, ("block2",))[0]["block2"].flatten(2).transpose(1, 2)
    proj = v.ln_post(tokens) @ v.proj  # (2, 16, D): each patch in the embedding space
    want0 = proj[0].reshape(4, 4, -1)[:2, :2].reshape(4, -1).mean(0)
    got = enc(x, mask)
    assert torch.allclose(got[0], want0, atol=1e-5) and torch.allclose(got[1], proj[1].mean(0), atol=1e-5)
    assert torch.allclose(enc(x), proj.mean(1), atol=1e-5)  # no mask = a mask of ones
    with pytest.raises(SrbenchError, match="empty mask"):
        enc(x, torch.zeros(2, 32, 32))


def test_masked_encoder_on_vgg16_is_its_embedding_with_a_full_mask():
    from iqa.semantic import VGG16Backbone
    from iqa.weights import vgg16_features
    from sr_methods.ioda.encoder import MaskedEncoder

    torch.manual_seed(0)
    bb = VGG16Backbone(net=vgg16_features())
    enc = MaskedEncoder(bb, size=64)
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(enc(x, torch.ones(1, 64, 64)), bb(x)[1], atol=1e-6)
    half = torch.zeros(1, 64, 64)
    half[:, :, :32] = 1
    fmap = bb(x, ("relu5_3",))[0]["relu5_3"]  # (1, 512, 4, 4)
    assert torch.allclose(enc(x, half), fmap[..., :2].mean(dim=(2, 3)), atol=1e-6)


# -- adaptation -------------------------------------------------------------------------------------------

def _source(k, patch, batch, seed):
    g = torch.Generator().manual_seed(1000 * seed + k)
    hr = torch.rand(batch, 3, patch, patch, generator=g)
    return hr, torch.nn.functional.avg_pool2d(hr, patch // (patch // 4) if patch >= 4 else 1)


@pytest.fixture
def ioda(tmp_path, clip_backbone):
    from helpers import tiny_spandrel_checkpoint
    from sr_methods import create_method
    from sr_methods.ioda.encoder import MaskedEncoder
    from sr_methods.ioda.method import IODAMethod

    base = create_method(f"spandrel:{tiny_spandrel_checkpoint(tmp_path / 'tiny.pth', scale=4)}")
    return IODAMethod(base, MaskedEncoder(clip_backbone), base_name="tiny", backbone="clip-tiny", crop=8,
                      occlusion=1.0, occlusion_cell=4, instances="grid", lr=1e-3)


def _params(method):
    from sr_methods.adapt import trainable_network

    return {k: v.clone() for k, v in trainable_network(method.base, 4).state_dict().items()}


def test_ioda_adapts_a_copy_deterministically_and_restores_it(ioda):
    g = torch.Generator().manual_seed(3)
    lr = [torch.rand(1, 3, 12, 10, generator=g)]
    x = torch.rand(1, 3, 9, 7, generator=g)
    before = _params(ioda)
    assert ioda.name == "ioda-clip-tiny-grid[base=tiny]" and ioda.scales == (4,)
    assert torch.equal(ioda.upscale(x, 4), ioda.base.upscale(x, 4))  # unadapted = the base
    a = ioda.adapt(lr, steps=3, seed=0, source=_source, echo=lambda s: None)
    b = ioda.adapt(lr, steps=3, seed=0, source=_source, echo=lambda s: None)
    c = ioda.adapt(lr, steps=3, seed=1, source=_source, echo=lambda s: None)
    after = _params(ioda)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the source network M_S never changes
    sa, sb, sc = a.adapted_state(), b.adapted_state(), c.adapted_state()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # seeded
    assert any(not torch.equal(sa[k], sc[k]) for k in sa) and any(not torch.equal(sa[k], before[k]) for k in sa)
    assert a.adaptation["steps"] == 3 and a.adaptation["crop"] == 8
    restored = ioda.with_state(sa)
    assert torch.equal(restored.upscale(x, 4), a.upscale(x, 4))
    assert not torch.equal(a.upscale(x, 4), ioda.upscale(x, 4))
    zero = ioda.adapt(lr, steps=0, seed=0, source=_source, echo=lambda s: None).adapted_state()
    assert all(torch.equal(zero[k], before[k]) for k in zero)
    with pytest.raises(SrbenchError, match="do not fit"):
        ioda.with_state({"x": torch.zeros(1)})
    with pytest.raises(SrbenchError, match="give source="):
        ioda.adapt(lr, steps=1, seed=0)
    with pytest.raises(SrbenchError, match=r"\(1, 3, h, w\) tensor"):
        ioda.adapt([torch.rand(3, 8, 8)], steps=1, seed=0, source=_source)


def test_a_frozen_base_still_adapts_but_stays_frozen(ioda):
    """A loaded srbench checkpoint comes with requires_grad off: the copy trains all the same, the
    base keeps its flags and weights."""
    from sr_methods.adapt import trainable_network

    net = trainable_network(ioda.base, 4)
    net.requires_grad_(False)
    before = _params(ioda)
    a = ioda.adapt([torch.rand(1, 3, 8, 8)], steps=1, seed=0, source=_source, echo=lambda s: None)
    assert any(not torch.equal(v, before[k]) for k, v in a.adapted_state().items())
    assert not any(p.requires_grad for p in net.parameters())
    assert all(torch.equal(v, before[k]) for k, v in _params(ioda).items())


def test_one_ioda_step_follows_the_loss_with_the_papers_optimiser(ioda, monkeypatch):
    """The first step's update is Adam(lr, betas (0, 0.99^0.8)) on the gradient of the directional
    loss of E's embeddings, recomputed here from the same crops, masks and source batch."""
    import copy

    from sr_methods.adapt import trainable_network
    from sr_methods.ioda import method as mod
    from sr_methods.ioda.losses import directional_loss
    from sr_methods.ioda.masks import upsample_mask

    seen = {}
    real_batch = mod.IODAMethod._target_batch

    def spy(self, images, crop, rng):
        seen["batch"] = out = real_batch(self, images, crop, rng)
        return out

    monkeypatch.setattr(mod.IODAMethod, "_target_batch", spy)
    lr = [torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(4))]
    adapted = ioda.adapt(lr, steps=1, seed=0, source=_source, echo=lambda s: None)
    tgt, mask, occ = seen["batch"]
    src = _source(0, 32, 2, 0)[1] * occ[:, None]
    tgt = tgt * occ[:, None]
    net = copy.deepcopy(trainable_network(ioda.base, 4))
    e = ioda.encoder
    with torch.no_grad():
        e_src, e_tgt, e_src_sr = e(src), e(tgt, mask), e(net(src).clamp(0, 1))
    loss = directional_loss(e_src, e_tgt, e_src_sr, e(net(tgt).clamp(0, 1), upsample_mask(mask, 4)))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.0, 0.99 ** 0.8))
    loss.backward()
    opt.step()
    want, got = net.state_dict(), adapted.adapted_state()
    assert all(torch.allclose(got[k], want[k], atol=1e-7) for k in want)
    assert adapted.adaptation["loss_first"] == pytest.approx(float(loss.detach()), rel=1e-6)


def test_ioda_needs_a_single_scale_base_and_names_it():
    from sr_methods import create_method, method_info

    info = method_info("ioda[base=craft-x4]")
    assert info["adaptive"] and "base" in info["options"]
    with pytest.raises(SrbenchError, match="needs base=NAME"):
        create_method("ioda")
    with pytest.raises(SrbenchError, match="one network at one scale"):
        create_method("ioda[base=bicubic]")
