"""CLIP-SR (issue 15): the DFBLK starts as the identity modulation; MA-GP, the hinge and the
alignment loss equal independent computations; generator and discriminator shapes at x4/x8/x16 with
the tiny random open_clip model and with the offline encoders (MiniLM when its assets are cached, a
random VGG16); the recipes train, resume after a kill to the same weights, and the checkpoint runs
as a text-guided method. Never the network."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from iqa.errors import SrbenchError
from sr_methods.clipsr.losses import alignment_loss, generator_adversarial, hinge_d, ma_gp, roll_mismatch
from sr_methods.clipsr.nets import (
    Affine,
    CLIPSRDiscriminator,
    CLIPSRGenerator,
    DFBlock,
    FrozenTokenBlocks,
    GBlock,
    build_clipsr_network,
)
from tests.helpers import photo, random_vgg16, tiny_clip, tiny_train_root, whole_and_resumed


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> tuple[Path, Path]:
    return tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def clip_encoder(clip_files):
    from sr_methods.clipsr.text import build_sentence_encoder

    config, weights = clip_files
    return build_sentence_encoder(str(config), weights=weights)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    return random_vgg16(tmp_path_factory.mktemp("vgg") / "vgg16-random.safetensors")


# -- building blocks -------------------------------------------------------------------------------------------

def test_dfblk_starts_as_the_identity_modulation():
    torch.manual_seed(0)
    x, c = torch.randn(3, 8, 5, 5), torch.randn(3, 16)
    aff = Affine(16, 8)
    assert torch.equal(aff(x, c), x)  # gamma = 1, beta = 0 whatever the condition
    blk = DFBlock(16, 8)
    assert torch.allclose(blk(x, c), F.leaky_relu(F.leaky_relu(x, 0.2), 0.2))
    # after a change of the last layers the condition matters
    with torch.no_grad():
        aff.gamma[2].weight.normal_()
    assert not torch.allclose(aff(x, c), aff(x, torch.randn(3, 16)))


def test_gblock_is_shortcut_plus_the_conditioned_residual():
    torch.manual_seed(1)
    blk = GBlock(16, 8, 4)
    x, c = torch.randn(2, 8, 6, 6), torch.randn(2, 16)
    want = blk.shortcut(x) + blk.c2(blk.fuse2(blk.c1(blk.fuse1(x, c)), c))
    assert torch.allclose(blk(x, c), want)
    assert blk(x, c).shape == (2, 4, 6, 6)


def test_ma_gp_equals_an_independent_autograd_computation():
    torch.manual_seed(0)
    d = CLIPSRDiscriminator((6, 6, 6), width=6, out=5, text_dim=4, hidden=3)
    with torch.no_grad():  # gamma, beta start at 0: give the feature paths a say
        for p in d.parameters():
            if p.numel() == 1:
                p.fill_(0.5)
    feats = [torch.randn(3, 6, 7, 7, requires_grad=True) for _ in range(3)]
    sent = torch.randn(3, 4, requires_grad=True)
    got = ma_gp(d(feats, sent), [*feats, sent], weight=2.0, power=6.0)
    norms = []
    for b in range(3):  # one sample at a time, its own backward pass
        fb = [f[b:b + 1].detach().clone().requires_grad_(True) for f in feats]
        sb = sent[b:b + 1].detach().clone().requires_grad_(True)
        grads = torch.autograd.grad(d(fb, sb)[0], [*fb, sb])
        norms.append(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
    want = 2.0 * torch.stack(norms).pow(6).mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    got.backward()  # create_graph: the penalty trains the discriminator
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())


def test_hinge_and_generator_terms():
    real, fake, mis = torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.3]), torch.tensor([0.0, -1.5])
    want = (0.5 + 0.0) / 2 + ((0.0 + 1.3) / 2 + (1.0 + 0.0) / 2) / 2
    assert hinge_d(real, fake, mis).item() == pytest.approx(want)
    s = torch.arange(6.0).view(3, 2)
    assert torch.equal(roll_mismatch(s), s[[1, 2, 0]])
    emb, sent = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    term, cos = generator_adversarial(torch.tensor([1.0, 3.0]), emb, sent, sim_weight=4.0)
    want_cos = (2 ** -0.5 + 1.0) / 2
    assert cos.item() == pytest.approx(want_cos)
    assert term.item() == pytest.approx(-2.0 - 4.0 * want_cos)
    term, cos = generator_adversarial(torch.tensor([1.0, 3.0]), None, sent)
    assert term.item() == -2.0 and torch.isnan(cos)


def test_alignment_loss_equals_an_independent_computation():
    torch.manual_seed(0)
    img, txt = torch.randn(4, 5), torch.randn(4, 5)
    same = torch.eye(4, dtype=torch.bool)
    same[0, 2] = same[2, 0] = True  # two patches of one picture
    got = alignment_loss(img, txt, same, torch.tensor(1.0))
    x, y = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = torch.e * x @ y.T
    total = 0.0
    for m in (logits, logits.T):
        p = m.softmax(dim=1)
        total += -sum(torch.log(p[i][same[i]].sum()) for i in range(4)) / 4
    assert got.item() == pytest.approx((total / 2).item(), rel=1e-5)
    # with one positive per row it is CLIP's loss
    eye = torch.eye(4, dtype=torch.bool)
    clip = (F.cross_entropy(logits, torch.arange(4)) + F.cross_entropy(logits.T, torch.arange(4))) / 2
    assert alignment_loss(img, txt, eye, torch.tensor(1.0)).item() == pytest.approx(clip.item(), rel=1e-5)


# -- shapes at x4 / x8 / x16 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [4, 8, 16])
def test_generator_shapes_with_the_tiny_clip(clip_encoder, scale):
    torch.manual_seed(0)
    net = build_clipsr_network(scale=scale, channels=(8, 8, 8, 8), cond_dim=clip_encoder.dim, text="tiny",
                               encoder=clip_encoder)
    assert net.generator.adapter is not None and net.generator.adapter.n_prompts == 2  # the tiny ViT's 2 blocks
    assert isinstance(net.text_proj, torch.nn.Identity)  # CLIP's embedding is the condition itself
    lr = torch.rand(2, 3, 13, 10)  # not a multiple of 8: padded inside, cropped back
    sent = net.encode_text(["a red bus", "a face"])
    out = net(lr, sent)
    assert out.shape == (2, 3, 13 * scale, 10 * scale)
    assert not torch.allclose(out, net(lr))  # the empty caption's embedding differs
    out.mean().backward()
    assert net.generator.adapter.prompts.weight.grad is not None  # the prompt predictor is wired in
    assert all(p.grad is None for p in clip_encoder.parameters())  # the encoder stays frozen
    ablation = build_clipsr_network(scale=scale, channels=(8, 8, 8, 8), cond_dim=clip_encoder.dim,
                                    prompt_predictor=False, encoder=clip_encoder)
    assert ablation.generator.adapter is None and ablation(lr, sent).shape == out.shape
    assert set(ablation.state_dict()) < set(net.state_dict())
    assert not any(k.startswith("_frozen") or "encoder" in k for k in net.state_dict())


def test_generator_checks_its_inputs():
    g = CLIPSRGenerator(4, channels=(4, 4, 4, 4), cond_dim=6)
    with pytest.raises(SrbenchError, match="cond must be"):
        g(torch.rand(1, 3, 8, 8), torch.rand(2, 6))
    with pytest.raises(SrbenchError, match="x4, x8 and x16"):
        CLIPSRGenerator(2)
    blocks = FrozenTokenBlocks([torch.nn.Identity()] * 3, 4, "three")
    with pytest.raises(SrbenchError, match="1..3 prompts"):
        CLIPSRGenerator(4, channels=(4, 4, 4, 4), cond_dim=6, adapter=blocks, n_prompts=8)


def test_discriminator_shapes_on_both_image_sides(clip_files, vgg_file):
    from iqa.semantic import VGG16Backbone, build_trained_backbone
    from sr_methods.clipsr.image import ImageSide, VGGTextAligner

    x = torch.rand(2, 3, 64, 64)
    clip_side = ImageSide(build_trained_backbone(str(clip_files[0]), clip_files[1]), levels=("block1", "block2"))
    maps, emb = clip_side(x)
    assert [m.shape for m in maps] == [(2, 32, 7, 7)] * 2 and emb.shape == (2, 32)
    vgg = VGG16Backbone(vgg_file)
    aligner = VGGTextAligner(12, channels=(512, 512), hidden=16)
    vgg_side = ImageSide(vgg, aligner=aligner)
    maps, emb = vgg_side(x)
    assert [m.shape for m in maps] == [(2, 256, 7, 7), (2, 512, 7, 7), (2, 512, 7, 7)]
    assert emb.shape == (2, 12) and torch.allclose(emb.norm(dim=-1), torch.ones(2))
    for side, text_dim in ((clip_side, 32), (vgg_side, 12)):
        d = CLIPSRDiscriminator(side.channels, width=16, out=8, text_dim=text_dim, hidden=4)
        assert d(side(x)[0], torch.randn(2, text_dim)).shape == (2,)
    paper = CLIPSRDiscriminator()  # ViT-B/32: three 768 x 7 x 7 maps, 512-d sentences
    assert paper([torch.randn(1, 768, 7, 7)] * 3, torch.randn(1, 512)).shape == (1,)


@pytest.fixture(scope="module")
def minilm():
    from sr_methods.clipsr.text import build_sentence_encoder

    try:
        return build_sentence_encoder("minilm", **_real_minilm_files())
    except SrbenchError as e:
        pytest.skip(f"MiniLM assets not cached here: {e}")


def _real_minilm_files() -> dict[str, str]:
    """The cached MiniLM files of the user's cache (read only; conftest empties SRBENCH_CACHE)."""
    import os

    root = Path(os.environ.get("SRBENCH_TEST_CACHE", Path.home() / ".cache" / "srbench")) / "assets"
    w, t = root / "all-MiniLM-L6-v2.safetensors", root / "all-MiniLM-L6-v2-tokenizer.json"
    if not (w.is_file() and t.is_file()):
        pytest.skip(f"MiniLM assets not cached in {root}")
    return {"weights": str(w), "tokenizer": str(t)}


@pytest.mark.parametrize("scale", [4, 8, 16])
def test_generator_shapes_with_the_offline_minilm(minilm, scale):
    torch.manual_seed(0)
    net = build_clipsr_network(scale=scale, channels=(8, 8, 8, 8), cond_dim=16, encoder=minilm)
    assert net.generator.adapter.n_prompts == 6 and net.generator.adapter.width == 384  # MiniLM's 6 layers
    assert net.text_proj.in_features == 384
    with torch.no_grad():
        assert net(torch.rand(1, 3, 16, 16), net.encode_text(["a red double-decker bus"])).shape == (1, 3, 16 * scale,
                                                                                                     16 * scale)


# -- the recipes -----------------------------------------------------------------------------------------------------

CAPTIONS = {"coco": ["a red bus on a street", "a bus parked by a road"],
            "celeba_mm": ["a smiling woman with blond hair", "a young woman smiling"]}


@pytest.fixture
def data_root(tmp_path) -> Path:
    """T91 + Kodak24 + two captioned training folders (3 images each)."""
    root = tiny_train_root(tmp_path / "data", 64, 48)
    for j, (folder, caps) in enumerate(CAPTIONS.items()):
        d = root / "train" / folder
        d.mkdir(parents=True)
        lines = []
        for i in range(3):
            Image.fromarray(photo(64, 72, seed=100 + 10 * j + i)).save(d / f"{folder}{i}.jpg", quality=95)
            lines.append(json.dumps({"id": f"{folder}{i}", "captions": [f"{c} {i}" for c in caps]}))
        (d / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _setup(clip_files, vgg_file, **kw):
    from bench.train.clipsr import Options
    from bench.train.loop import TrainConfig

    cfg = TrainConfig(scale=4, patch=32, batch=2, steps=4, sets=("coco", "celeba_mm"), log_every=1, ckpt_every=2,
                      val_images=2, val_crop=32, val_metrics=("psnr",), ema=0.5, device="cpu")
    opts = Options(text=str(clip_files[0]), text_weights=str(clip_files[1]), image="clip",
                   image_levels=("block1", "block2"), aligner="", channels=(8, 8, 8, 8), cond_dim=32, d_width=16,
                   d_out=8, d_hidden=4, vgg16_weights=str(vgg_file), perceptual_size=32, lr_g=1e-3, lr_d=1e-3, holdout=3)
    return replace(cfg, **kw.pop("cfg", {})), replace(opts, **kw)


def _train(recipe, tmp_path, name, root, cfg, opts, **kw):
    from bench.train.loop import train

    return train(recipe, cfg, opts, tmp_path / name, data_root=root, echo=lambda _: None, progress=False, **kw)


def test_held_out_split_is_by_sha256_and_keeps_uncaptioned_images(data_root):
    from bench.train.clipsr import split_held_out
    from bench.train.data import training_images

    images = training_images(data_root, ("t91", "coco", "celeba_mm"))
    train, held = split_held_out(images, 3)
    assert len(held) == 2 and all(p.parent.name in CAPTIONS for p, _ in held)  # 6 captioned, every 3rd
    assert {p for p, _ in train} | {p for p, _ in held} == {p for p, _ in images} and not set(train) & set(held)
    assert split_held_out(images, 0) == (images, [])


def test_a_gan_step_matches_the_losses_recomputed(clip_files, vgg_file, data_root):
    """The logged losses of one step equal the losses recomputed from the same networks and batch."""
    from bench.train.clipsr import CLIPSR
    from bench.train.data import PatchSampler, training_images

    cfg, opts = _setup(clip_files, vgg_file)
    torch.manual_seed(0)
    r = CLIPSR(cfg, opts, torch.device("cpu"), echo=lambda _: None)
    images, held = r.split(training_images(data_root, cfg.sets))
    r.held_out = [p for p, _ in held]
    r.sampler = PatchSampler([p for p, _ in images], patch=32, batch=2, degradation="x4")
    hr, lr = r.sampler(0)
    g = torch.Generator().manual_seed(5)
    texts, _ = r.batch_captions(0, torch.Generator().manual_seed(5))
    net0 = {k: v.clone() for k, v in r.net.state_dict().items()}
    d0 = {k: v.clone() for k, v in r.disc.state_dict().items()}
    losses = r.step(lr, hr, 0, g, lambda: torch.autocast("cpu", enabled=False))
    # recompute with fresh copies of the start weights
    r2 = CLIPSR(cfg, opts, torch.device("cpu"), echo=lambda _: None)
    r2.net.load_state_dict(net0)
    r2.disc.load_state_dict(d0)
    sent = r2.encoder.encode(texts)
    fake = r2.net(lr, sent)
    real_maps, _ = r2.side(hr)
    fake_maps, emb = r2.side(fake)
    rm = [m.detach().requires_grad_(True) for m in real_maps]
    s = sent.clone().requires_grad_(True)
    d_real = r2.disc(rm, s)
    d = hinge_d(d_real, r2.disc([m.detach() for m in fake_maps], sent), r2.disc(rm, roll_mismatch(sent)))
    assert losses["d"].item() == pytest.approx(d.item(), rel=1e-5)
    assert losses["gp"].item() == pytest.approx(ma_gp(d_real, [*rm, s]).item(), rel=1e-4)
    assert losses["l1"].item() == pytest.approx((fake - hr).abs().mean().item(), rel=1e-5)
    vgg = r2.vgg(F.interpolate(fake, size=(32, 32), mode="bicubic", align_corners=False, antialias=True),
                 ("relu5_3",))[0]["relu5_3"]
    vgg_hr = r2.vgg(hr, ("relu5_3",))[0]["relu5_3"]
    assert losses["perceptual"].item() == pytest.approx(F.mse_loss(vgg, vgg_hr).item(), rel=1e-4)
    cos = F.cosine_similarity(emb, sent, dim=-1).mean()
    assert losses["cos"].item() == pytest.approx(cos.item(), rel=1e-4)
    # the step moved both networks, the sentence encoder not
    assert any(not torch.equal(v, r.net.state_dict()[k]) for k, v in net0.items())
    assert any(not torch.equal(v, r.disc.state_dict()[k]) for k, v in d0.items())


def test_training_resumes_and_runs_as_a_text_guided_method(clip_files, vgg_file, data_root, tmp_path, monkeypatch):
    from bench.train.clipsr import CLIPSR
    from sr_methods.trained import TrainedMethod, read_record

    cfg, opts = _setup(clip_files, vgg_file)
    whole, resumed = whole_and_resumed(monkeypatch, CLIPSR, lambda n: _train(CLIPSR, tmp_path, n, data_root, cfg, opts),
                                       tmp_path)
    from safetensors.torch import load_file

    a, b = load_file(str(whole)), load_file(str(resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rec = read_record(whole)
    assert rec["arch"] == "clip-sr" and len(rec["held_out"]) == 2 and len(rec["images"]) == 4
    assert {"val_heldout_psnr_caption", "val_heldout_psnr_empty", "val_heldout_psnr_mismatched"} <= set(rec["validation"])
    m = TrainedMethod(whole)
    assert m.text_guided
    lr = torch.rand(1, 3, 12, 12)
    with_text = m.upscale(lr, 4, text="a red bus")
    assert with_text.shape == (1, 3, 48, 48)
    assert not torch.equal(with_text, m.upscale(lr, 4, text="a smiling woman"))
    from sr_methods.family import FamilyMethod

    fam = FamilyMethod("fam", {4: m})  # a family of text-guided members passes the caption on
    assert fam.text_guided and torch.equal(fam.upscale(lr, 4, text="a red bus"), with_text)
    assert not FamilyMethod("fam", {4: TrainedMethod(whole, text="empty")}).text_guided
    notext = TrainedMethod(whole, text="empty")  # the "no text" ablation: the empty caption always, none asked for
    assert not notext.text_guided and notext.provenance()["text"] == "empty"
    assert torch.equal(notext.upscale(lr, 4, text="a red bus"), m.upscale(lr, 4, text=""))
    with pytest.raises(SrbenchError, match="text must be"):
        TrainedMethod(whole, text="none")
    tiled = TrainedMethod(whole, tile=8, tile_overlap=2)
    # tiles share the whole image's sentence embedding: a tile-sized image gives the untiled result
    small = torch.rand(1, 3, 8, 8)
    assert torch.allclose(tiled.upscale(small, 4, text="a red bus"), m.upscale(small, 4, text="a red bus"), atol=1e-6)
    # a tiled batch keeps one sentence embedding per image
    pair = torch.cat([small, torch.rand(1, 3, 8, 8)])
    both = tiled.upscale(pair, 4, text=["a red bus", "a smiling woman"])
    assert torch.allclose(both[1:], m.upscale(pair[1:], 4, text="a smiling woman"), atol=1e-6)
    # scored through the harness: twice the same rows (captions and values), deterministically
    _two_identical_runs(tmp_path, monkeypatch, whole)
    # a warm-up (no GAN) initialises the ablation, whose prompt predictor is left out
    warm = _train(CLIPSR, tmp_path, "warm", data_root, replace(cfg, steps=2), replace(opts, gan=False, perceptual=0.0))
    abl = _train(CLIPSR, tmp_path, "abl", data_root, replace(cfg, steps=2), replace(opts, prompt_predictor=False),
                 init=warm)
    assert read_record(abl)["parent"]["path"] == str(warm)
    assert not any("adapter" in k for k in load_file(str(abl)))


def test_aligner_recipe_trains_and_validates_on_held_out_images(clip_files, vgg_file, data_root, tmp_path):
    from bench.train.clipsr import AlignOptions, CLIPSRAlign
    from bench.train.loop import TrainConfig
    from sr_methods.clipsr.image import VGGTextAligner
    from sr_methods.trained import load_network

    cfg = TrainConfig(scale=4, patch=32, batch=4, steps=3, sets=("coco", "celeba_mm"), ema=0.0, val_metrics=(),
                      device="cpu")
    opts = AlignOptions(text=str(clip_files[0]), text_weights=str(clip_files[1]), hidden=8, size=32,
                        vgg16_weights=str(vgg_file), holdout=3)
    path = _train(CLIPSRAlign, tmp_path, "align", data_root, cfg, opts)
    net, rec, _ = load_network(path)
    assert isinstance(net, VGGTextAligner) and rec["arch_options"]["text_dim"] == 32
    v = rec["validation"]
    assert v["val_heldout_images"] == 2 and 0.0 <= v["val_heldout_top1"] <= 1.0
    with pytest.raises(SrbenchError, match="val_metrics"):
        CLIPSRAlign(replace(cfg, val_metrics=("psnr",)), opts, torch.device("cpu"))


def test_bad_options(clip_files, vgg_file):
    from bench.train.clipsr import CLIPSR

    cfg, opts = _setup(clip_files, vgg_file)
    for bad, match in (({"image": "resnet"}, "image must be"), ({"cond_dim": 0}, "cond_dim"), ({"adv": -1.0}, "adv")):
        with pytest.raises(SrbenchError, match=match):
            CLIPSR(cfg, replace(opts, **bad), torch.device("cpu"))
    with pytest.raises(SrbenchError, match="x4, x8 or x16"):
        CLIPSR(replace(cfg, scale=2), opts, torch.device("cpu"))


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).parents[1] / "examples" / "clipsr").glob("*.toml")))
def test_the_example_clip_sr_specs_are_valid(name):
    from bench.run.runner import validate_names
    from bench.run.spec import RunSpec

    spec = RunSpec.from_toml(Path(__file__).parents[1] / "examples" / "clipsr" / f"{name}.toml")
    validate_names(spec)  # names and options (text = "empty") exist; datasets may be absent here


def _two_identical_runs(tmp_path, monkeypatch, ckpt):
    from bench.run.runner import Runner
    from bench.run.spec import MethodSpec, RunSpec
    from bench.run.store import load_scores
    from tests.test_captions import dataset

    monkeypatch.setenv("SRBENCH_MANIFESTS", str(tmp_path / "manifests"))
    data = dataset(tmp_path, "clipsr-test")
    spec = RunSpec(("clipsr-test",), (4,), (MethodSpec(f"clip-sr:{ckpt}", "clip-sr"),), ("psnr", "ssim"),
                   data_root=str(data), device="cpu")
    frames = []
    for out in ("a", "b"):
        Runner(spec, tmp_path / out, echo=lambda _: None, progress=False).run()
        frames.append(load_scores(tmp_path / out).sort_values(["image", "metric"]).reset_index(drop=True))
    a, b = frames
    assert (a["status"] == "ok").all() and a["caption"].str.contains("caption").all()
    assert a[["image", "metric", "value", "caption"]].equals(b[["image", "metric", "value", "caption"]])
