"""DePLSR foundations: the degradation sampler (texts match parameters, determinism, the second
stage continuing from the first), the SigLIP loss (against NumPy and open_clip), the adaptor loss
weights, and both adaptors (shapes, zero-init equivalence with the frozen backbone, gradients only
where they belong). Tiny random CLIP and a random VGG16; never the network."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from iqa.degrade import resize
from iqa.errors import SrbenchError
from sr_methods.deplsr.degradations import (
    DEPLSR,
    PARAM_WIDTH,
    SLOTS,
    DePLSRSettings,
    apply_stage,
    degrade,
    sample_params,
)
from sr_methods.deplsr.losses import adaptor_loss, siglip_loss
from tests.helpers import photo, tiny_clip


def hr_image(h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(photo(h, w, seed)).permute(2, 0, 1)[None].float() / 255.0


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


SMALL = replace(DEPLSR, lq_size=32)  # keeps the tests fast
NOTHING = DePLSRSettings(sigma_grid=(0.0, 0.1, 0.1), gaussian_noise_prob=1.0, noise_range=(0.0, 0.0),
                         jpeg_prob=0.0, sinc_prob=0.0, lq_size=None)


# -- the degradation sampler -------------------------------------------------------------------------------

def _number(text: str, key: str) -> float:
    m = re.search(rf"{key}:(\d+\.\d)$", text)
    assert m, text
    return float(m.group(1))


def test_texts_match_parameters():
    hr = hr_image()
    kinds = set()
    for seed in range(40):
        lq, p = degrade(hr, gen(seed), SMALL)
        assert lq.shape == (1, 3, 32, 32) and 0 <= float(lq.min()) and float(lq.max()) <= 1
        texts = p.texts()
        assert len(texts) == len(SLOTS) == 5 and len(p.stages) == 2
        blur_t, noise_t, jpeg_t, resize_t, ring_t = texts
        # blur: the same sigma in both stages, kernel size 2 ceil(3 sigma) + 1
        if p.blur_sigma > 0:
            assert _number(blur_t, "sigma") == p.blur_sigma
            assert all(st.blur.sigma == p.blur_sigma and st.blur.size == 2 * math.ceil(3 * p.blur_sigma) + 1
                       for st in p.stages)
            aniso = any(not st.blur.isotropic for st in p.stages)
            assert blur_t.startswith("anisotropic blur") == aniso
        else:
            assert blur_t == "no blur" and all(st.blur is None for st in p.stages)
        assert p.blur_sigma in {round(0.1 * k, 1) for k in range(30)}
        # noise: one kind and level for both stages
        s0 = p.stages[0]
        assert all((st.noise, st.noise_level) == (s0.noise, s0.noise_level) for st in p.stages)
        if s0.noise_level == 0:
            assert noise_t == "no noise"
        elif s0.noise == "gaussian":
            assert noise_t.startswith("gaussian noise with sigma:") and _number(noise_t, "sigma") == s0.noise_level
            assert 0 <= s0.noise_level <= 30
        else:
            assert noise_t.startswith("poisson noise with scale:") and _number(noise_t, "scale") == s0.noise_level
            assert 0 <= s0.noise_level <= 3
        kinds.add(s0.noise)
        assert jpeg_t.startswith("jpeg with quality factor:") and _number(jpeg_t, "quality factor") == p.jpeg_quality
        assert 30 <= p.jpeg_quality <= 95
        assert resize_t == "bicubic resize with scale:0.67,0.50"  # 48x64 -> 32x32
        assert (ring_t == "ringing and overshoot artifacts") == (p.sinc is not None)
        # the full text lists the degradations present, the vectors flag them, the targets are the numbers
        assert p.full_text() == ", ".join(t for t, on in zip(texts, p.present()) if on)
        v = p.vectors()
        assert v.shape == (5, PARAM_WIDTH) and v[:, 0].tolist() == [float(x) for x in p.present()]
        t = p.targets()
        assert t["blur_sigma"] == p.blur_sigma and t["jpeg_quality"] == p.jpeg_quality
        assert (t["gaussian_sigma"] == s0.noise_level) == (s0.noise == "gaussian")
        assert math.isnan(t["poisson_scale"] if s0.noise == "gaussian" else t["gaussian_sigma"])
    assert kinds == {"gaussian", "poisson"}


def test_absent_degradations_give_no_texts_and_the_image_unchanged():
    hr = hr_image()
    lq, p = degrade(hr, gen(3), NOTHING)
    assert p.texts() == ["no blur", "no noise", "no jpeg compression", "no resize", "no ringing artifacts"]
    assert p.full_text() == "no degradation" and p.present() == [False] * 5
    assert torch.equal(lq, hr)
    assert math.isnan(p.targets()["jpeg_quality"])


def test_deterministic_by_generator_seed():
    hr = hr_image()
    a, pa = degrade(hr, gen(7), SMALL)
    b, pb = degrade(hr, gen(7), SMALL)
    c, pc = degrade(hr, gen(8), SMALL)
    assert torch.equal(a, b) and pa == pb
    assert not torch.equal(a, c) and pa != pc


def test_second_stage_continues_from_the_first():
    hr = hr_image()
    # no JPEG, no ringing: the LQ is exactly stage 2 applied to stage 1's output, resized
    st = replace(SMALL, jpeg_prob=0.0, sinc_prob=0.0, sigma_grid=(1.0, 3.0, 0.1))
    lq, p = degrade(hr, gen(11), st)
    g = gen(11)
    assert sample_params(g, (48, 64), st) == p  # the noise fields follow the parameters in the stream
    x1 = apply_stage(hr, p.stages[0], g)
    x2 = apply_stage(x1, p.stages[1], g)
    assert torch.equal(lq, resize(x2, "bicubic", size=(32, 32)).clamp(0, 1))
    # the official bug (stage 2 restarting from the clean image) would give another image
    g = gen(11)
    sample_params(g, (48, 64), st)
    apply_stage(hr, p.stages[0], g)
    restarted = resize(apply_stage(hr, p.stages[1], g), "bicubic", size=(32, 32)).clamp(0, 1)
    assert (lq - restarted).abs().max() > 0.02
    # with stage 2 disabled the output is stage 1's output resized
    one = replace(st, second_stage=False)
    lq1, p1 = degrade(hr, gen(11), one)
    g = gen(11)
    assert sample_params(g, (48, 64), one) == p1 and len(p1.stages) == 1
    assert torch.equal(lq1, resize(apply_stage(hr, p1.stages[0], g), "bicubic", size=(32, 32)).clamp(0, 1))


def test_sampler_rejects_bad_input():
    with pytest.raises(SrbenchError, match=r"\(1, 3, H, W\)"):
        degrade(torch.rand(2, 3, 8, 8), gen(0))
    with pytest.raises(SrbenchError, match=r"\[0, 1\]"):
        degrade(torch.rand(1, 3, 8, 8) * 2, gen(0))
    with pytest.raises(SrbenchError, match="Generator"):
        degrade(torch.rand(1, 3, 8, 8), 0)


# -- losses ------------------------------------------------------------------------------------------------

def numpy_siglip(img: np.ndarray, txt: np.ndarray, scale: float, bias: float) -> float:
    x = img / np.linalg.norm(img, axis=1, keepdims=True)
    y = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    n = len(x)
    total = 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            total += math.log(1.0 / (1.0 + math.exp(-z * (math.exp(scale) * float(x[i] @ y[j]) + bias))))
    return -total / n


def test_siglip_loss_matches_numpy_and_open_clip():
    g = gen(0)
    img, txt = torch.randn(6, 8, generator=g, dtype=torch.float64), torch.randn(6, 8, generator=g, dtype=torch.float64)
    for scale, bias in ((math.log(10), -10.0), (0.3, 1.5), (2.0, 0.0)):
        got = siglip_loss(img, txt, scale, bias)
        assert got.item() == pytest.approx(numpy_siglip(img.numpy(), txt.numpy(), scale, bias), rel=1e-5)
    try:
        from open_clip.loss import SigLipLoss
    except ImportError:  # pragma: no cover
        pytest.skip("open_clip is not installed")
    nx, ny = torch.nn.functional.normalize(img.float(), dim=-1), torch.nn.functional.normalize(txt.float(), dim=-1)
    ref = SigLipLoss()(nx, ny, torch.tensor(0.3).exp(), torch.tensor(1.5))
    assert siglip_loss(img.float(), txt.float(), torch.tensor(0.3), torch.tensor(1.5)).item() == pytest.approx(ref.item(), rel=1e-6)
    with pytest.raises(SrbenchError, match=r"\(N, D\)"):
        siglip_loss(img, txt[:3], 0.0, 0.0)


def test_adaptor_loss_weights():
    g = gen(1)
    n, d = 4, 8
    c, dg, ct, dt = (torch.randn(n, d, generator=g) for _ in range(4))
    f, ft = torch.randn(n, 5, d, generator=g), torch.randn(n, 5, d, generator=g)
    s, b = torch.tensor(1.0), torch.tensor(-2.0)
    lc, ld = siglip_loss(c, ct, s, b), siglip_loss(dg, dt, s, b)
    lf = sum(siglip_loss(f[:, k], ft[:, k], s, b) for k in range(5)) / 5
    total, parts = adaptor_loss(c, dg, f, dt, ft, s, b, caption_txt=ct)
    assert total.item() == pytest.approx((0.2 * lc + 0.3 * ld + 0.5 * lf).item(), rel=1e-6)
    assert parts == pytest.approx({"content": lc.item(), "degradation": ld.item(), "fine": lf.item()})
    total, parts = adaptor_loss(c, dg, f, dt, ft, s, b)
    assert total.item() == pytest.approx(((0.3 * ld + 0.5 * lf) / 0.8).item(), rel=1e-6) and "content" not in parts


# -- the CLIP adaptor ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip_backbone(tmp_path_factory):
    from iqa.clip import load_clip
    from iqa.semantic import ClipBackbone

    config, weights = tiny_clip(tmp_path_factory.mktemp("clip"))
    return ClipBackbone(load_clip(str(config), None, weights=weights))


def clip_adaptor(backbone, seed: int = 0):
    from sr_methods.deplsr.adaptor import ClipDegradationAdaptor

    torch.manual_seed(seed)
    return ClipDegradationAdaptor(backbone)


def test_clip_adaptor_shapes_and_zero_init_equivalence(clip_backbone):
    ad = clip_adaptor(clip_backbone)
    assert ad.name == "deplsr-clip:srbench-tiny-clip" and ad.has_captions
    x = torch.rand(2, 3, 40, 50)
    out = ad(x, levels=("block1", "block2"))
    assert out.content.shape == out.degradation.shape == (2, 32) and out.fine.shape == (2, 5, 32)
    assert {k: tuple(v.shape) for k, v in out.features.items()} == {"block1": (2, 32, 4, 4), "block2": (2, 32, 4, 4)}
    # all controls zero: the content embedding and features are the frozen backbone's, exactly
    # (bit-exact without autograd; with it, attention takes another kernel path: within 1e-6)
    feats, emb = clip_backbone(ad.prepare(x), ("block1", "block2"))
    with torch.no_grad():
        exact = ad(x, levels=("block1", "block2"))
    assert torch.equal(exact.content, emb)
    assert all(torch.equal(exact.features[k], feats[k]) for k in feats)
    assert torch.allclose(out.content, emb, atol=1e-6, rtol=0)
    assert all(torch.allclose(out.features[k], feats[k], atol=1e-6, rtol=0) for k in feats)
    # the copy starts as the frozen tower: the degradation embedding is the same vector before training
    assert torch.allclose(out.degradation, emb, atol=1e-6)
    # a non-zero control changes the content embedding
    with torch.no_grad():
        ad.controls[0].weight.normal_(std=0.1)
    assert not torch.allclose(ad(x).content, emb)


def test_clip_adaptor_gradients_and_state(clip_backbone):
    from sr_methods.deplsr.degradations import degrade as deg

    ad = clip_adaptor(clip_backbone)
    hr = hr_image(40, 40)
    lqs, params = zip(*(deg(hr, gen(s), SMALL) for s in range(3)))
    out = ad(torch.cat(lqs))
    full, fine = ad.encode_degradations(params)
    caps = ad.encode_captions(["a red car", "a dog on grass", "a city street"])
    assert full.shape == (3, 32) and fine.shape == (3, 5, 32) and caps.shape == (3, 32)
    assert not full.requires_grad and not caps.requires_grad  # the text tower is frozen
    loss, parts = adaptor_loss(out.content, out.degradation, out.fine, full, fine, ad.logit_scale, ad.logit_bias,
                               caption_txt=caps)
    loss.backward()
    assert set(parts) == {"content", "degradation", "fine"}
    assert all(lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0 for lin in ad.controls)
    assert all(p.grad is not None for p in ad.copy.transformer.parameters())
    assert ad.fine.weight.grad is not None and ad.logit_scale.grad is not None and ad.logit_bias.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in clip_backbone.parameters())
    # the state holds the trainable parts only
    assert all(k.split(".")[0] in {"copy", "controls", "fine", "logit_scale", "logit_bias"} for k in ad.state_dict())
    assert not any(p is q for p in ad.parameters() for q in clip_backbone.parameters())


def test_clip_adaptor_rejects_bad_input(clip_backbone):
    from sr_methods.deplsr.adaptor import ClipDegradationAdaptor, VGGDegradationAdaptor

    ad = clip_adaptor(clip_backbone)
    with pytest.raises(SrbenchError, match=r"\[0, 1\]"):
        ad(torch.rand(1, 3, 32, 32) + 1)
    with pytest.raises(SrbenchError, match=r"\(B, 3, h, w\)"):
        ad(torch.rand(3, 32, 32))
    with pytest.raises(SrbenchError, match="no feature level"):
        ad(torch.rand(1, 3, 32, 32), levels=("block9",))
    with pytest.raises(SrbenchError, match="VGG16Backbone"):
        VGGDegradationAdaptor(clip_backbone)
    with pytest.raises(SrbenchError, match="ClipBackbone"):
        ClipDegradationAdaptor(object())


# -- the offline VGG16 adaptor --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vgg_backbone():
    from iqa.semantic import VGG16Backbone
    from iqa.weights import vgg16_features

    torch.manual_seed(0)
    return VGG16Backbone(net=vgg16_features())


def test_vgg_adaptor_shapes_gradients_and_parametric_text(vgg_backbone):
    from sr_methods.deplsr.adaptor import VGGDegradationAdaptor

    torch.manual_seed(0)
    ad = VGGDegradationAdaptor(vgg_backbone, width=8, text_hidden=16)
    assert ad.name == "deplsr-vgg16-param" and not ad.has_captions
    hr = hr_image(40, 40)
    lqs, params = zip(*(degrade(hr, gen(s), replace(DEPLSR, lq_size=56)) for s in range(2)))
    out = ad(torch.cat(lqs), levels=("relu2_2",))
    assert out.content.shape == out.degradation.shape == (2, 512) and out.fine.shape == (2, 5, 512)
    assert tuple(out.features["relu2_2"].shape) == (2, 128, 112, 112)
    _, emb = vgg_backbone(ad.prepare(torch.cat(lqs)))
    assert torch.equal(out.content, emb)  # content is the frozen VGG16's embedding
    full, fine = ad.encode_degradations(params)
    assert full.shape == (2, 512) and fine.shape == (2, 5, 512)
    loss, parts = adaptor_loss(out.content, out.degradation, out.fine, full, fine, ad.logit_scale, ad.logit_bias)
    loss.backward()
    assert set(parts) == {"degradation", "fine"}
    assert all(p.grad is not None for p in ad.parameters())
    assert all(p.grad is None and not p.requires_grad for p in vgg_backbone.parameters())
    assert all(k.split(".")[0] in {"heads", "mlp", "fine", "text", "logit_scale", "logit_bias"} for k in ad.state_dict())
    with pytest.raises(SrbenchError, match="DePLSRParams"):
        ad.encode_degradations(["blur with sigma:1.0"])
