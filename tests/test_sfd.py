"""SFD: semantic backbones, the discriminators, checkpoints, the SFD-IQA metric and its training
(tiny random open_clip model and a random VGG16: no pretrained weights in tests)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from iqa.errors import SrbenchError
from iqa.sfd import SFD, SFDIQA, SFDConfig, load_sfd, read_sfd, save_sfd, tile_boxes
from tests.helpers import photo, tiny_clip


@pytest.fixture(scope="module")
def clip_bb(tmp_path_factory):
    from iqa.semantic import build_backbone

    config, weights = tiny_clip(tmp_path_factory.mktemp("clip"))
    return build_backbone(str(config), pretrained=None, weights=weights)


@pytest.fixture(scope="module")
def vgg_bb():
    from iqa.semantic import VGG16Backbone
    from iqa.weights import vgg16_features

    torch.manual_seed(0)
    return VGG16Backbone(net=vgg16_features())


def test_clip_backbone_matches_open_clip(clip_bb):
    x = torch.rand(2, 3, 32, 32)
    feats, emb = clip_bb(x)
    assert torch.allclose(emb, clip_bb.model.encode_image(clip_bb.normalize(x)), atol=1e-6)
    assert set(feats) == set(clip_bb.default_levels) and feats["block1"].shape == (2, 32, 4, 4)
    feats, emb = clip_bb(torch.rand(1, 3, 50, 70), ("block1", "block2"))  # cropped to whole patches
    assert feats["block2"].shape == (1, 32, 6, 8) and emb.shape == (1, 32)
    with pytest.raises(SrbenchError, match="no feature level"):
        clip_bb(x, ("block9",))
    # learnable context = the embeddings of real words gives CLIP's own text feature
    tokens = clip_bb.clip.tokenizer(["a sharp clean high quality."])
    ctx = clip_bb.model.token_embedding(tokens)[0, 1:3].detach()  # "a sharp"
    assert torch.allclose(clip_bb.encode_context(ctx, ["clean high quality"]),
                          clip_bb.model.encode_text(tokens), atol=1e-5)


def test_vgg_backbone_matches_torchvision(vgg_bb):
    import torchvision

    ref = torchvision.models.vgg16(weights=None).features
    ref.load_state_dict(vgg_bb.net.state_dict())
    x = torch.rand(1, 3, 64, 48)
    feats, emb = vgg_bb(x, ("relu3_3", "relu5_3"))
    xn = vgg_bb.normalize(x)
    assert torch.allclose(feats["relu3_3"], ref[:16](xn), atol=1e-5)
    assert torch.allclose(emb, ref[:30](xn).mean(dim=(2, 3)), atol=1e-5)
    assert vgg_bb.text_width is None and vgg_bb.embed_dim == 512


def test_tiles_cover_the_image_exactly():
    for h, w, t in [(100, 70, 32), (32, 32, 32), (20, 90, 32), (129, 128, 64)]:
        boxes = tile_boxes(h, w, t)
        cover = np.zeros((h, w), int)
        for top, left, th, tw in boxes:
            assert th == min(t, h) and tw == min(t, w) and top + th <= h and left + tw <= w
            cover[top:top + th, left:left + tw] += 1
        assert cover.min() >= 1
    assert len(tile_boxes(100, 70, 32)) == 4 * 3


@pytest.mark.parametrize("which", ["clip", "vgg"])
def test_discriminators_learn_real_versus_fake_and_pass_gradients(which, clip_bb, vgg_bb):
    bb = clip_bb if which == "clip" else vgg_bb
    torch.manual_seed(0)
    model = SFD(SFDConfig(n_ctx=2, feat_width=8, feat_layers=2), bb)
    real = torch.stack([torch.from_numpy(photo(32, 32, s)).permute(2, 0, 1).float() / 255 for s in range(8)])
    fake = (real + 0.3 * torch.randn_like(real)).clamp(0, 1)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    first = {k: float(v) for k, v in model.d_loss(real, fake).items()}
    with torch.no_grad():  # the backbone is frozen: train the heads on its outputs, as training does
        fr, er = model.features(real)
        ff, ef = model.features(fake)
    for _ in range(100):
        loss = SFD.losses(model.heads(fr, er), model.heads(ff, ef))["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = {k: float(v) for k, v in model.d_loss(real, fake).items()}
    assert last["featd"] < 0.5 * first["featd"]
    if which == "clip":
        assert last["lpp"] < first["lpp"] - 0.2
    else:  # random VGG16 weights give every image nearly the same relu5_3 direction: no anchor pair separates
        assert last["lpp"] <= first["lpp"] + 1e-3  # them (the real weights do: the shipped checkpoint's record)
    assert not any(p.requires_grad for p in bb.parameters())  # the backbone stays frozen
    x = fake[:2].clone().requires_grad_(True)
    model.g_loss(x).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # a generator can train against it


def test_checkpoint_round_trip_and_metric(clip_bb, tmp_path):
    torch.manual_seed(1)
    model = SFD(SFDConfig(n_ctx=2, feat_width=8, feat_layers=2, patch=32, fusion="prob"), clip_bb)
    path = save_sfd(model, tmp_path / "sfd.safetensors", {"images": [["train/a.png", "ab" * 32]], "steps": 3})
    tensors, meta = read_sfd(path)
    assert meta["training"]["steps"] == 3 and meta["config"]["n_ctx"] == 2 and "lpp.ctx" in tensors
    assert not any(k.startswith("backbone.") for k in tensors)
    loaded, _ = load_sfd(path, backbone=clip_bb)
    x = torch.rand(1, 3, 32, 32).mul(255).round() / 255  # on the uint8 grid: the protocol rounds inputs
    for a, b in zip(model(x), loaded(x)):
        assert torch.equal(a, b)
    assert meta["config"]["backbone"] == "clip:srbench-tiny-clip"
    metric = SFDIQA(checkpoint=path, name="sfd-test", backbone=clip_bb)
    from iqa.assets import sha256_file

    assert metric.provenance()["sha256"] == sha256_file(path)  # runs record it; a new file reruns their cells
    m, lg = model(x)
    both = float(metric(x))
    assert both == pytest.approx(0.5 * float(torch.sigmoid(m).mean()) + 0.5 * float(torch.sigmoid(lg)), abs=1e-6)
    assert 0.0 <= both <= 1.0 and metric.info.higher_better and metric.info.backbone.startswith("clip:")
    featd = SFDIQA(checkpoint=path, mode="featd", backbone=clip_bb)
    assert float(featd(x)) == pytest.approx(float(torch.sigmoid(m).mean()), abs=1e-6)
    # a larger image is the area-weighted mean of its tiles (Feat-D) and the mean of tile LPPs
    big = torch.rand(1, 3, 64, 40).mul(255).round() / 255
    lpp = SFDIQA(checkpoint=path, mode="lpp", backbone=clip_bb)
    tiles = [big[..., t:t + h, l:l + w] for t, l, h, w in tile_boxes(64, 40, 32)]
    expect = np.mean([float(torch.sigmoid(model(t)[1])) for t in tiles])
    assert float(lpp(big)) == pytest.approx(expect, abs=1e-6)
    # tile= overrides the checkpoint's tile size; fusion="logit" mixes log-odds, then one sigmoid
    small_tiles = SFDIQA(checkpoint=path, mode="lpp", backbone=clip_bb, tile=16)
    tiles16 = [big[..., t:t + h, l:l + w] for t, l, h, w in tile_boxes(64, 40, 16)]
    assert len(tiles16) == 12
    expect16 = np.mean([float(torch.sigmoid(model(t)[1])) for t in tiles16])
    assert float(small_tiles(big)) == pytest.approx(expect16, abs=1e-6)
    assert SFDConfig().fusion == "logit" and metric.fusion == "prob"  # the checkpoint's own choice
    logit = SFDIQA(checkpoint=path, backbone=clip_bb, fusion="logit")
    assert float(logit(x)) == pytest.approx(float(torch.sigmoid(0.5 * m.mean() + 0.5 * lg)), abs=1e-6)
    # logodds=True: the mixed log-odds itself (unbounded; its sigmoid is the score)
    odds = SFDIQA(checkpoint=path, backbone=clip_bb, fusion="logit", logodds=True)
    assert float(odds(x)) == pytest.approx(float(0.5 * m.mean() + 0.5 * lg), abs=1e-5)
    assert odds.info.range == (-math.inf, math.inf) and odds.info.higher_better
    with pytest.raises(SrbenchError, match="logodds=True needs fusion='logit'"):
        SFDIQA(checkpoint=path, backbone=clip_bb, fusion="prob", logodds=True)
    bigm = torch.cat([model(t)[0].flatten() for t in tiles])
    bigl = torch.stack([model(t)[1][0] for t in tiles])
    assert float(SFDIQA(checkpoint=path, backbone=clip_bb, fusion="logit")(big)) == pytest.approx(
        float(torch.sigmoid(0.5 * bigm.mean() + 0.5 * bigl.mean())), abs=1e-6)
    # a checkpoint from before the fusion option (no "fusion" in its config) mixes probabilities
    from iqa.assets import write_safetensors

    old_cfg = {k: v for k, v in meta["config"].items() if k != "fusion"}
    old = write_safetensors(tensors, {"format": "srbench-sfd-1", "config": json.dumps(old_cfg),
                                      "backbone": json.dumps(meta["backbone"]), "training": "{}"},
                            tmp_path / "old.safetensors")
    assert SFDIQA(checkpoint=old, backbone=clip_bb).fusion == "prob"
    with pytest.raises(SrbenchError, match="fusion must be one of"):
        SFDIQA(checkpoint=path, backbone=clip_bb, fusion="max")
    with pytest.raises(SrbenchError, match="tile must be an int >= 16"):
        SFDIQA(checkpoint=path, backbone=clip_bb, tile=8)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(SrbenchError, match="not an SFD checkpoint"):
        read_sfd(bad)
    with pytest.raises(SrbenchError, match="mode must be one of"):
        SFDIQA(checkpoint=path, mode="half", backbone=clip_bb)


def test_lpp_embedding_mean_and_std_for_image_only_backbones(vgg_bb, clip_bb, tmp_path):
    torch.manual_seed(2)
    model = SFD(SFDConfig(feat_width=8, feat_layers=2), vgg_bb)
    assert model.config.embedding == "meanstd"  # "auto" without a text encoder
    assert SFD(SFDConfig(n_ctx=2, feat_width=8, feat_layers=2), clip_bb).config.embedding == "native"
    x = torch.stack([torch.from_numpy(photo(64, 48, s)).permute(2, 0, 1).float() / 255 for s in range(3)])
    feats, emb = model.features(x)
    top = vgg_bb(x, ("relu5_3",))[0]["relu5_3"]  # 4x3 positions, 512 channels
    n = top.shape[-2] * top.shape[-1]
    mean = top.sum(dim=(2, 3)) / n
    std = (((top - mean[..., None, None]) ** 2).sum(dim=(2, 3)) / n).sqrt()  # population std over positions
    assert set(feats) == set(model.levels) and emb.shape == (3, 1024) and model.lpp.anchors.shape == (2, 1024)
    assert torch.allclose(emb, torch.cat([mean, std], 1), atol=1e-5)
    assert torch.equal(SFD(SFDConfig(feat_width=8, feat_layers=2, embedding="native"), vgg_bb).features(x)[1],
                       vgg_bb(x, model.levels)[1])
    # the choice is recorded; a checkpoint that records none used the backbone's own feature
    path = save_sfd(model, tmp_path / "v.safetensors")
    tensors, meta = read_sfd(path)
    assert meta["config"]["embedding"] == "meanstd" and load_sfd(path, backbone=vgg_bb)[0].lpp.anchors.shape[1] == 1024
    from iqa.assets import write_safetensors

    native = SFD(SFDConfig(feat_width=8, feat_layers=2, embedding="native"), vgg_bb)
    cfg = {k: v for k, v in json.loads(json.dumps(native.config.__dict__)).items() if k != "embedding"}
    old = write_safetensors(native.trainable_state(), {"format": "srbench-sfd-1", "config": json.dumps(cfg),
                                                       "backbone": "{}", "training": "{}"}, tmp_path / "old.safetensors")
    assert load_sfd(old, backbone=vgg_bb)[0].config.embedding == "native"
    with pytest.raises(SrbenchError, match="for image-only backbones"):
        SFD(SFDConfig(n_ctx=2, embedding="meanstd"), clip_bb)
    with pytest.raises(SrbenchError, match="embedding must be one of auto, native, meanstd"):
        SFD(SFDConfig(embedding="max"), vgg_bb)


def _train_folder(root, n=6):
    for sub in ("t91", "kodak24"):
        (root / "train" / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sub = "t91" if i % 2 else "kodak24"
        Image.fromarray(photo(48, 56, 10 + i)).save(root / "train" / sub / f"im{i}.png")
    return root


def test_training_is_reproducible_resumable_and_recorded(clip_bb, tmp_path):
    from bench.train.sfd_iqa import load_config, train_sfd

    data = _train_folder(tmp_path / "data")
    cfg = load_config("cpu", patch=32, n_real=16, n_fake=16, steps=6, batch=8, log_every=2, ckpt_every=3,
                      methods=("bicubic", "nearest"), scales=(2, 4), device="cpu")
    cfg = type(cfg)(**{**cfg.__dict__, "sfd": SFDConfig(n_ctx=2, feat_width=8, feat_layers=2)})
    quiet = dict(data_root=data, backbone=clip_bb, echo=lambda s: None, progress=False)
    a = train_sfd(cfg, tmp_path / "a", **quiet)
    b = train_sfd(cfg, tmp_path / "b", **quiet)
    ta, meta = read_sfd(a)
    tb, _ = read_sfd(b)
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    # interrupted after 3 steps, resumed to 6: the same weights as the uninterrupted run
    train_sfd(type(cfg)(**{**cfg.__dict__, "steps": 3}), tmp_path / "c", **quiet)
    tc, _ = read_sfd(train_sfd(cfg, tmp_path / "c", **quiet))
    assert all(torch.allclose(ta[k], tc[k], atol=1e-6) for k in ta)
    rec = meta["training"]
    assert meta["config"]["patch"] == 32  # scoring tiles = training patches
    assert rec["n_images"] == 6 and all(len(h) == 64 for _, h in rec["images"])
    assert {p.split("/")[1] for p, _ in rec["images"]} == {"t91", "kodak24"}
    assert sum(rec["fakes"].values()) == 16 and set(rec["fakes"]) <= {"bicubic-x2", "bicubic-x4", "nearest-x2",
                                                                      "nearest-x4", "blur", "noise", "jpeg", "resize"}
    log = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6] and all("hold_acc_featd" in r for r in log)
    # a subset of the training sets (one left out for validation) is what the checkpoint records
    only = type(cfg)(**{**cfg.__dict__, "sets": ("t91",), "steps": 2})
    rec = read_sfd(train_sfd(only, tmp_path / "e", **quiet))[1]["training"]
    assert rec["train_sets"] == ["t91"] and {p.split("/")[1] for p, _ in rec["images"]} == {"t91"}
    with pytest.raises(SrbenchError, match="training sets must be some of"):
        load_config("cpu", sets=("set5",))
    # live features with augmentation also run
    live = type(cfg)(**{**cfg.__dict__, "cache_features": False, "steps": 2})
    assert read_sfd(train_sfd(live, tmp_path / "d", **quiet))[1]["training"]["steps"] == 2


def test_paired_fakes_are_made_from_the_real_crops(tmp_path):
    from bench.train.sfd_iqa import build_pools, load_config, training_images

    data = _train_folder(tmp_path / "data")
    images = training_images(data)
    base = dict(n_real=8, n_fake=16, methods=("bicubic",), scales=(2, 4), degradations=("jpeg",), seed=3)
    real, fake, kinds = build_pools(load_config("cpu", pair_fakes=True, **base), images, 32, echo=lambda s: None)
    assert real.shape == (8, 3, 32, 32) and fake.shape == (16, 3, 32, 32) and set(kinds) & {"jpeg"}
    # fake i is real i (mod 8) made worse: far closer to it than to the other real crops
    diff = (fake[:, None].float() - real[None].float()).abs().mean(dim=(2, 3, 4))  # (16, 8)
    assert (diff.argmin(dim=1) == torch.arange(16) % 8).all()
    real2, fake2, _ = build_pools(load_config("cpu", pair_fakes=False, **base), images, 32, echo=lambda s: None)
    assert torch.equal(real, real2) and not torch.equal(fake, fake2)  # the same reals either way


def test_training_refuses_test_images(tmp_path, clip_bb):
    from bench.train.sfd_iqa import training_images

    data = _train_folder(tmp_path / "data", n=2)
    (data / "set5" / "HR").mkdir(parents=True)
    (data / "set5" / "HR" / "copy.png").write_bytes((data / "train" / "kodak24" / "im0.png").read_bytes())
    with pytest.raises(SrbenchError, match="never train on a test set"):
        training_images(data)
    with pytest.raises(SrbenchError, match="no training images"):
        training_images(tmp_path / "empty")


def test_shipped_vgg16_checkpoint_and_catalogue(tmp_path, shared_data):
    import iqa
    from iqa.assets import sha256_file
    from iqa.errors import MissingAssetError
    from iqa.sfd import SHIPPED_SHA256, SHIPPED_VGG16

    assert sha256_file(SHIPPED_VGG16) == SHIPPED_SHA256 and SHIPPED_VGG16.stat().st_size < 2_000_000
    tensors, meta = read_sfd(SHIPPED_VGG16)
    rec = meta["training"]
    assert meta["config"]["backbone"] == "vgg16" and meta["backbone"]["sha256"]
    # scored as trained: 128-pixel tiles, log-odds fusion; anchors on the mean + std of relu5_3
    assert meta["config"]["patch"] == rec["patch"] == 128 and meta["config"]["fusion"] == "logit"
    assert meta["config"]["embedding"] == "meanstd" and tensors["lpp.anchors"].shape == (2, 1024)
    # T91 + BSDS500; Kodak24 was held out as the validation set
    assert rec["n_images"] == len(rec["images"]) == 490 and rec["train_sets"] == ["t91", "bsds500"]
    assert {p.split("/")[1] for p, _ in rec["images"]} == {"t91", "bsds500"}
    assert rec["config"]["pair_fakes"] and rec["config"]["n_real"] == rec["config"]["n_fake"] == 4096
    assert rec["config"]["rank_weight"] == 1.0 and "rank" in rec["final_losses"]  # trained with the ranking term
    assert rec["validation"]["set"].startswith("kodak24")  # the figures it was chosen by (not a test set)
    # trained on no test image: none of its training files is a file of a test set here
    trained = {h for _, h in rec["images"]}
    for name in ("set5", "set14", "urban100", "celeba_hq", "acdc"):
        for p in (shared_data / name).rglob("*.png"):
            assert sha256_file(p) not in trained, p
    # without the VGG16 backbone weights (none in tests) the metric says how to get them
    with pytest.raises(MissingAssetError, match="srbench assets fetch vgg16"):
        iqa.create_metric("sfd-iqa-vgg16")
    # other VGG16 weights than the ones it was trained on are refused
    from iqa.weights import vgg16_features

    torch.manual_seed(0)
    other = tmp_path / "vgg16-397923af.pth"
    torch.save({f"features.{k}": v for k, v in vgg16_features().state_dict().items()}, other)
    with pytest.raises(SrbenchError, match="was trained on vgg16 weights with sha256"):
        iqa.create_metric("sfd-iqa-vgg16-lpp", backbone_weights=other)
    assert iqa.metric_info("sfd-iqa-vgg16-featd").higher_better
    from iqa.sfd import is_sfd_metric

    assert all(is_sfd_metric(n) for n in ("sfd-iqa", "sfd-iqa-vgg16", "sfd-iqa-vgg16-logit", "SFD-IQA-VGG16-LPP"))
    assert not any(is_sfd_metric(n) for n in ("niqe", "lpips", "sfd-iqa-nonexistent", "clipiqa"))
    assert iqa.metric_info("sfd-iqa-vgg16-logit").range == (-math.inf, math.inf)
    with pytest.raises(MissingAssetError, match="srbench iqa train sfd --backbone clip:ViT-B-16/openai"):
        iqa.create_metric("sfd-iqa")


def test_ranking_term_across_sr_scales():
    from bench.train.sfd_iqa import fake_severity
    from iqa.sfd import _rank_loss

    assert fake_severity("nearest-x8") == 3.0 and fake_severity("bicubic-x2") == 1.0
    assert fake_severity("realesrgan-x4plus-x4") == 2.0 and fake_severity("realesr-animevideov3-x4-x16") == 4.0
    assert all(math.isnan(fake_severity(k)) for k in ("blur", "noise", "jpeg", "resize"))
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0, -2.0], requires_grad=True)
    sev = torch.tensor([1.0, 3.0, float("nan"), 1.0, 2.0])
    # pairs (milder, severer) by hand: (0,1), (0,4), (3,1), (3,4), (4,1); the unknown severity is left out
    pairs = [(0, 1), (0, 4), (3, 1), (3, 4), (4, 1)]
    expect = np.mean([math.log1p(math.exp(-(float(logits[i]) - float(logits[j])))) for i, j in pairs])
    loss = _rank_loss(logits, sev)
    assert float(loss) == pytest.approx(expect, abs=1e-6)
    loss.backward()
    assert logits.grad[2] == 0 and logits.grad[0] < 0 and logits.grad[1] > 0  # push mild up, severe down
    none = _rank_loss(logits, torch.tensor([1.0, 1.0, float("nan"), 1.0, 1.0]))
    assert float(none) == 0 and none.requires_grad  # no ranked pair: zero, still differentiable
    # SFD.losses adds it, weighted, to the total; both heads (Feat-D averaged over its map) are ranked
    mr, lr = torch.zeros(2, 1, 3, 3), torch.zeros(2)
    mf, lf = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1).expand(2, 1, 3, 3), torch.tensor([0.0, 2.0])
    sev2 = torch.tensor([2.0, 4.0])  # fake 0 is milder
    base = SFD.losses((mr, lr), (mf, lf))
    ranked = SFD.losses((mr, lr), (mf, lf), sev2, rank_weight=0.5)
    want = math.log1p(math.exp(-2.0)) + math.log1p(math.exp(2.0))  # Feat-D right way round, LPP wrong
    assert "rank" not in base and float(ranked["rank"]) == pytest.approx(want, abs=1e-6)
    assert float(ranked["total"]) == pytest.approx(float(base["total"]) + 0.5 * want, abs=1e-6)
    assert float(SFD.losses((mr, lr), (mf, lf), sev2, rank_weight=0.0)["total"]) == float(base["total"])


def test_training_logs_the_ranking_term(clip_bb, tmp_path):
    from bench.train.sfd_iqa import load_config, train_sfd

    data = _train_folder(tmp_path / "data")
    cfg = load_config("cpu", patch=32, n_real=16, n_fake=16, steps=4, batch=8, log_every=2, ckpt_every=4,
                      methods=("bicubic", "nearest"), scales=(2, 4), fake_sr_share=1.0, device="cpu")
    cfg = type(cfg)(**{**cfg.__dict__, "sfd": SFDConfig(n_ctx=2, feat_width=8, feat_layers=2)})
    assert cfg.rank_weight == 1.0  # the default, chosen on the Kodak24 validation set
    with pytest.raises(SrbenchError, match="rank_weight must be >= 0"):
        load_config("cpu", rank_weight=-1.0)
    quiet = dict(data_root=data, backbone=clip_bb, echo=lambda s: None, progress=False)
    ranked = read_sfd(train_sfd(cfg, tmp_path / "r", **quiet))
    log = [json.loads(line) for line in (tmp_path / "r" / "train_log.jsonl").read_text().splitlines()]
    assert all(r["rank"] >= 0 for r in log) and ranked[1]["training"]["config"]["rank_weight"] == 1.0
    plain = read_sfd(train_sfd(type(cfg)(**{**cfg.__dict__, "rank_weight": 0.0}), tmp_path / "p", **quiet))
    log = [json.loads(line) for line in (tmp_path / "p" / "train_log.jsonl").read_text().splitlines()]
    assert all("rank" not in r for r in log)
    assert not all(torch.equal(ranked[0][k], plain[0][k]) for k in ranked[0])  # the term changed the heads


@pytest.mark.gpu
@pytest.mark.parametrize("which", ["clip", "vgg"])
def test_cuda_scores_match_cpu_and_amp_training_runs(which, clip_bb, vgg_bb, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from bench.train.sfd_iqa import load_config, train_sfd

    bb = clip_bb if which == "clip" else vgg_bb
    data = _train_folder(tmp_path / "data")
    cfg = load_config("gpu", patch=32, n_real=16, n_fake=16, steps=4, batch=8, log_every=2, ckpt_every=4,
                      methods=("bicubic", "nearest"), scales=(2, 4), device="cuda")
    assert cfg.amp and not cfg.cache_features  # the gpu preset: live features under autocast
    cfg = type(cfg)(**{**cfg.__dict__, "sfd": SFDConfig(n_ctx=2, feat_width=8, feat_layers=2)})
    path = train_sfd(cfg, tmp_path / "gpu", data_root=data, backbone=bb, echo=lambda s: None, progress=False)
    rec = read_sfd(path)[1]["training"]
    assert rec["device"].startswith("cuda") and math.isfinite(rec["final_losses"]["total"])
    assert rec["amp"] == ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    x = torch.from_numpy(photo(70, 90, 5)).permute(2, 0, 1).float().div(255)[None]
    ref = SFDIQA(checkpoint=path, backbone=bb.cpu())(x)
    try:
        out = SFDIQA(checkpoint=path, backbone=bb).to("cuda")(x.cuda())  # moves the shared backbone too
    finally:
        bb.cpu()
    assert out.device.type == "cuda"
    # float32 on both devices (scoring does not autocast): other kernels, other rounding
    torch.testing.assert_close(out.cpu(), ref, rtol=0, atol=1e-4)


def test_an_unusable_device_is_one_line_before_training(clip_bb, tmp_path, monkeypatch):
    from bench.train.sfd_iqa import load_config, train_sfd
    from iqa.errors import SrbenchError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = _train_folder(tmp_path / "data")
    for device, match in (("cuda", "CUDA is not available here"), ("tpu9", "unknown device 'tpu9'")):
        cfg = load_config("cpu", patch=32, n_real=16, n_fake=16, steps=1, methods=("bicubic",), scales=(2,),
                          device=device)
        with pytest.raises(SrbenchError, match=match):
            train_sfd(cfg, tmp_path / device, data_root=data, backbone=clip_bb, echo=lambda s: None, progress=False)
