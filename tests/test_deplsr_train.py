"""DePLSR adaptor training (recipe ``deplsr-adaptor``): a step's loss is ``adaptor_loss`` recomputed
independently on the same seeded LQ batch (VGG16 and tiny CLIP variants), resume after a kill
equals an uninterrupted run, the checkpoint holds the trainable parts and rebuilds, the probe's
rank correlation against scipy on a hand-made case, and test images / bad options are refused.
A random VGG16 file and a tiny random CLIP; never the network."""

from __future__ import annotations

import contextlib
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from iqa.errors import SrbenchError
from tests.helpers import random_vgg16, tiny_clip, tiny_train_root, whole_and_resumed


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    return random_vgg16(tmp_path_factory.mktemp("vgg") / "vgg16-random.safetensors")


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> tuple[Path, Path]:
    return tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def data_root(tmp_path) -> Path:
    return tiny_train_root(tmp_path / "data", 64, 48)


def setup(backbone: str, weights: Path, data_root: Path | None = None, **kw):
    from bench.train.deplsr import Options
    from bench.train.loop import TrainConfig

    cfg = TrainConfig(scale=4, patch=32, batch=2, steps=4, degradation="bicubic", sets=("t91",), log_every=1,
                      ckpt_every=2, val_images=2, val_crop=32, val_metrics=(), ema=0.0, device="cpu")
    opts = Options(**{"backbone": backbone, "backbone_weights": str(weights), "lq_size": 32, "lr": 1e-3,
                      "width": 8, "text_hidden": 16, "probe_draws": 2,
                      "probe_root": str(data_root) if data_root else "", **kw})
    return cfg, opts


def run(tmp_path, out, data_root, cfg, opts, **kw):
    from bench.train.deplsr import DePLSRAdaptor
    from bench.train.loop import train

    return train(DePLSRAdaptor, cfg, opts, tmp_path / out, data_root=data_root, echo=lambda _: None,
                 progress=False, **kw)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


# -- one step ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["vgg16", "clip"])
def test_a_step_minimises_adaptor_loss_on_its_seeded_lq_batch(variant, vgg_file, clip_files):
    from bench.train.deplsr import DePLSRAdaptor
    from sr_methods.deplsr.degradations import DEPLSR, degrade
    from sr_methods.deplsr.losses import adaptor_loss

    if variant == "vgg16":
        cfg, opts = setup("vgg16", vgg_file)
    else:
        cfg, opts = setup(str(clip_files[0]), clip_files[1], min_crop=16)
    torch.manual_seed(0)
    r = DePLSRAdaptor(cfg, opts, torch.device("cpu"), echo=lambda _: None)
    ad = r.adaptor
    before, frozen = _state(ad), _state(ad.backbone)
    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    # the same batch, independently: the sampler on each patch in turn from one generator seeded as the step's
    g = torch.Generator().manual_seed(7)
    lqs, params = [], []
    for i in range(2):
        x = hr[i:i + 1]
        if opts.min_crop:
            side = int(torch.randint(opts.min_crop, 33, (1,), generator=g))
            t, l = (int(torch.randint(0, 33 - side, (1,), generator=g)) for _ in range(2))
            x = x[..., t:t + side, l:l + side]
        lq, p = degrade(x, g, replace(DEPLSR, lq_size=32))
        assert lq.shape == (1, 3, 32, 32) and p.out_size == (32, 32)
        lqs.append((lq * 255).round() / 255)
        params.append(p)
    with torch.no_grad():
        out = ad(torch.cat(lqs))
        full, fine = ad.encode_degradations(params)
        want, parts = adaptor_loss(out.content, out.degradation, out.fine, full, fine, ad.logit_scale, ad.logit_bias)
    losses = r.step(None, hr, 0, torch.Generator().manual_seed(7), contextlib.nullcontext)
    assert losses["loss"].item() == pytest.approx(want.item(), rel=1e-5)
    assert losses["fine"].item() == pytest.approx(parts["fine"], rel=1e-5) and "content" not in parts
    # only the trainable parts moved, all of them that the loss reaches; the frozen backbone did not
    after = _state(ad)
    assert _equal(_state(ad.backbone), frozen)
    assert not torch.equal(after["logit_bias"], before["logit_bias"])
    assert not torch.equal(after["fine.weight"], before["fine.weight"])
    # the batch is the step's generator's: another seed, another batch (and loss)
    r2 = DePLSRAdaptor(cfg, opts, torch.device("cpu"), echo=lambda _: None)
    r2.adaptor.load_state_dict(before)
    other = r2.step(None, hr, 0, torch.Generator().manual_seed(8), contextlib.nullcontext)
    assert other["loss"].item() != pytest.approx(want.item(), rel=1e-5)


# -- training, resume, checkpoint ----------------------------------------------------------------------------

def test_training_resumes_to_the_same_adaptor(tmp_path, data_root, clip_files, monkeypatch):
    from bench.train.deplsr import DePLSRAdaptor
    from sr_methods.trained import read_checkpoint

    config, weights = clip_files
    cfg, opts = setup(str(config), weights, data_root, min_crop=24)
    whole, resumed = whole_and_resumed(monkeypatch, DePLSRAdaptor, lambda name: run(tmp_path, name, data_root, cfg, opts),
                                       tmp_path)
    (tw, rec, _), (tr, rec2, _) = read_checkpoint(whole), read_checkpoint(resumed)
    assert _equal(tw, tr) and all(v.dtype == torch.float16 for v in tw.values())
    assert rec["backbone"]["adaptor"] == "deplsr-clip:srbench-tiny-clip" and rec["backbone"]["content_term"] is False
    assert any(k.startswith("controls.") for k in tw) and not any(k.startswith("_frozen") for k in tw)
    probe = rec["backbone"]["probe"]
    assert probe["samples"] == 4 and probe["images"] == 2 and {"val_rho_blur", "val_rho_noise", "val_rho_jpeg"} <= set(probe)
    assert all(v is None or -1 <= v <= 1 for k, v in probe.items() if k.startswith("val_rho_"))
    assert probe == rec2["backbone"]["probe"]


def test_vgg16_checkpoint_holds_the_trainable_parts_and_rebuilds(tmp_path, data_root, vgg_file):
    from bench.train.deplsr import DePLSRAdaptor
    from iqa.assets import sha256_file
    from sr_methods.deplsr.adaptor import build_adaptor
    from sr_methods.trained import read_checkpoint

    cfg, opts = setup("vgg16", vgg_file, data_root)
    path = run(tmp_path, "vgg", data_root, replace(cfg, steps=2), opts)
    tw, rec, _ = read_checkpoint(path)
    assert all(v.dtype == torch.float16 for v in tw.values())
    assert rec["method"] == "deplsr-adaptor" and rec["arch"] == "deplsr-adaptor"
    assert rec["backbone"]["backbone"] == "vgg16" and rec["backbone"]["sha256"] == sha256_file(vgg_file)
    assert rec["arch_options"]["backbone_sha256"] == sha256_file(vgg_file)
    assert rec["backbone"]["adaptor"] == "deplsr-vgg16-param"
    assert [h for _, h in rec["images"]] == [sha256_file(p) for p in sorted((data_root / "train" / "t91").glob("*"))]
    assert rec["backbone"]["probe"]["samples"] == 4
    # the file holds the trainable parts only, and rebuilds the adaptor exactly (strict load)
    ad = build_adaptor(**rec["arch_options"])
    assert set(tw) == set(ad.state_dict()) and not any(k.startswith("backbone") for k in tw)
    ad.load_state_dict({k: v.float() for k, v in tw.items()})
    with pytest.raises(SrbenchError, match="the adaptor.s backbone .* it was trained on"):
        build_adaptor(**{**rec["arch_options"], "backbone_sha256": "0" * 64})
    # --init continues from it
    r = DePLSRAdaptor(cfg, opts, torch.device("cpu"), init=path, echo=lambda _: None)
    assert _equal(_state(r.adaptor), {k: v.float() for k, v in tw.items()})


# -- the probe -----------------------------------------------------------------------------------------------

def test_probe_prediction_and_rank_correlation_on_a_hand_made_case():
    from scipy.stats import spearmanr

    from bench.train.deplsr import predict_by_argmax, rank_correlation

    values = [0.0, 1.0, 2.0, 3.0]
    cands = torch.eye(4, 6) * torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None]  # lengths differ: cosine ignores them
    pick = [0, 2, 2, 3, 1]
    fine = cands[pick] * 5 + 0.01 * torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    pred = predict_by_argmax(fine, cands, values)
    assert pred.tolist() == [values[j] for j in pick]
    truth = [0.1, 1.5, 2.0, 2.9, 1.2]
    rho = rank_correlation(pred, truth)
    # by hand: ranks of pred (0, 2, 2, 3, 1) are (1, 3.5, 3.5, 5, 2); of truth (1, 3, 4, 5, 2); Pearson of the ranks
    rp, rt = np.array([1, 3.5, 3.5, 5, 2]), np.array([1, 3, 4, 5, 2.0])
    hand = float(np.corrcoef(rp, rt)[0, 1])
    assert rho == pytest.approx(hand, abs=1e-12) and rho == pytest.approx(spearmanr(pred, truth).statistic, abs=1e-12)
    assert rank_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([2, 2, 2], [1, 2, 3]) is None and rank_correlation([1, 2], [1, 2]) is None
    assert not math.isnan(rank_correlation([1, 2, 3, 3], [1, 2, 3, 4]))


def test_probe_candidates_describe_their_values():
    from bench.train.deplsr import candidate_params

    values, params = candidate_params("blur", 32)
    assert params[0].texts()[0] == "no blur" and params[12].texts()[0] == "blur with sigma:1.2"
    values, params = candidate_params("noise", 32)
    assert values[25] == 12.5 and params[25].texts()[1] == "gaussian noise with sigma:12.5"
    values, params = candidate_params("jpeg", 32)
    assert params[25].texts()[2] == "jpeg with quality factor:55.0" and len(values) == 66


# -- refusals and presets ------------------------------------------------------------------------------------

def test_bad_options_test_images_and_presets(tmp_path, data_root, vgg_file):
    from bench.train.deplsr import DePLSRAdaptor
    from bench.train.loop import load_config

    cfg, opts = setup("vgg16", vgg_file, data_root)
    dev = torch.device("cpu")
    with pytest.raises(SrbenchError, match="set val_metrics = \\[\\]"):
        DePLSRAdaptor(replace(cfg, val_metrics=("psnr",)), opts, dev, echo=lambda _: None)
    with pytest.raises(SrbenchError, match="min_crop must be an integer in"):
        DePLSRAdaptor(cfg, replace(opts, min_crop=64), dev, echo=lambda _: None)
    with pytest.raises(SrbenchError, match="lr must be a number"):
        DePLSRAdaptor(cfg, replace(opts, lr=-1.0), dev, echo=lambda _: None)
    (data_root / "set5").mkdir()
    shutil.copy(next((data_root / "train" / "t91").glob("*.png")), data_root / "set5" / "leak.png")
    with pytest.raises(SrbenchError, match="never train on a test set"):
        run(tmp_path, "leak", data_root, cfg, opts)
    for name in ("cpu", "gpu", "gpu-clip"):
        c, o = load_config(DePLSRAdaptor, name)
        assert c.val_metrics == () and o.lq_size == 224 and c.patch == 256
    c, o = load_config(DePLSRAdaptor, "cpu")
    assert c.batch == 8 and c.steps == 400 and o.backbone == "vgg16"


def test_clip_content_term_pairs_each_captioned_patch_with_a_caption_of_its_image(tmp_path, clip_files):
    import json

    from PIL import Image

    from bench.train.data import PatchSampler, training_images
    from bench.train.deplsr import DePLSRAdaptor
    from sr_methods.deplsr.degradations import DEPLSR, degrade
    from sr_methods.deplsr.losses import adaptor_loss
    from tests.helpers import photo

    root = tiny_train_root(tmp_path / "data", 64, 48)
    coco = root / "train" / "coco"
    coco.mkdir()
    for i, name in enumerate(("000001", "000002")):
        Image.fromarray(photo(48, 56, seed=100 + i)).save(coco / f"{name}.png")
    caps = {"000001": ["a red bus on a street", "a bus"]}  # 000002 has no caption line
    (coco / "captions.jsonl").write_text("".join(json.dumps({"id": k, "captions": v}) + "\n" for k, v in caps.items()))
    config, weights = clip_files
    cfg, opts = setup(str(config), weights, root)
    cfg = replace(cfg, sets=("t91", "coco"), batch=4)
    torch.manual_seed(0)
    r = DePLSRAdaptor(cfg, opts, torch.device("cpu"), echo=lambda _: None)
    assert not r.content_term  # outside the loop: no sampler, no captions
    r.sampler = PatchSampler([p for p, _ in training_images(root, cfg.sets)], patch=32, batch=4, degradation="x4")
    r._captions = None
    assert r.content_term and set(r.captions()) == {coco / "000001.png"}
    # a batch mixing captioned and uncaptioned patches
    k = next(k for k in range(200) if 0 < sum(p.parent == coco and p.stem == "000001" for p in r.sampler.sources(k)) < 4)
    sources, hr = r.sampler.sources(k), r.sampler.hr(k)
    ad = r.adaptor
    g = torch.Generator().manual_seed(7)
    lqs, params = [], []
    for i in range(4):
        lq, p = degrade(hr[i:i + 1], g, replace(DEPLSR, lq_size=32))
        lqs.append((lq * 255).round() / 255)
        params.append(p)
    rows, texts = [], []
    for i, src in enumerate(sources):
        if src.stem == "000001" and src.parent == coco:
            rows.append(i)
            texts.append(caps["000001"][int(torch.randint(2, (1,), generator=g))])
    with torch.no_grad():
        out = ad(torch.cat(lqs))
        full, fine = ad.encode_degradations(params)
        want, parts = adaptor_loss(out.content[rows], out.degradation, out.fine, full, fine, ad.logit_scale,
                                   ad.logit_bias, ad.encode_texts(texts))
    losses = r.step(None, hr, k, torch.Generator().manual_seed(7), contextlib.nullcontext)
    assert "content" in losses and losses["content"].item() == pytest.approx(parts["content"], rel=1e-5)
    assert losses["loss"].item() == pytest.approx(want.item(), rel=1e-5)
    # captions = false: the two renormalised terms
    r2 = DePLSRAdaptor(cfg, replace(opts, captions=False), torch.device("cpu"), echo=lambda _: None)
    r2.sampler = r.sampler
    assert not r2.content_term
    # a bad caption file is one line naming it
    (coco / "captions.jsonl").write_text("{not json\n")
    r._captions = None
    with pytest.raises(SrbenchError, match=r"captions.jsonl line 1: not valid JSON"):
        r.captions()
