"""CLIP-IQA (iqa/clipiqa.py) on tiny random open_clip models: the score is the direct computation."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import iqa
from iqa.catalogue import METRICS
from iqa.clipiqa import crop_starts
from iqa.errors import MissingAssetError, SrbenchError
from iqa.registry import Entry
from tests.helpers import TINY_CLIP, photo, tiny_clip


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """The catalogue line of clipiqa, until iqa/catalogue.py has it."""
    if "clipiqa" not in METRICS:
        monkeypatch.setitem(METRICS._entries, "clipiqa", Entry("clipiqa", "iqa.clipiqa:CLIPIQA", {
            "kind": "nr", "higher_better": True, "range": (0.0, 1.0), "backbone": "ViT-B-16"}))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg, weights = tiny_clip(tmp_path_factory.mktemp("clip"))
    return str(cfg), str(weights)


def build(tiny, **options):
    cfg, weights = tiny
    return iqa.create_metric("clipiqa", clip=cfg, pretrained=None, weights=weights, **options)


def batch(*arrays):
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def direct(m, x, prompts=("Good photo.", "Bad photo.")):
    """P(first prompt) straight from the open_clip model, for images of the model's input size."""
    model = m.clip_model
    mean = torch.tensor(model.visual.preprocess_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.visual.preprocess_cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        img = F.normalize(model.encode_image((x - mean) / std), dim=-1)
        import open_clip

        txt = F.normalize(model.encode_text(open_clip.get_tokenizer("srbench-tiny-clip")(list(prompts))), dim=-1)
        return (100 * img @ txt.t()).softmax(-1)[:, 0].double()


def test_score_is_the_direct_clip_computation(tiny):
    m = build(tiny)
    assert m.mode == "crops" and m.size == 32
    assert m.info.backbone == "srbench-tiny-clip" and m.info.higher_better and m.info.range == (0.0, 1.0)
    x = batch(photo(32, 32, 1), photo(32, 32, 2), photo(32, 32, 3))
    s = m(x)
    assert s.dtype == torch.float64 and s.shape == (3,)
    assert torch.allclose(s, direct(m, x), atol=1e-6, rtol=0)
    assert ((s >= 0) & (s <= 1)).all()
    assert torch.equal(m(x), s)  # deterministic
    assert torch.allclose(build(tiny)(x), s, atol=1e-7, rtol=0)  # and so is building it again
    other = build(tiny, prompts=("A sharp photo.", "A blurry photo."))
    assert torch.allclose(other(x), direct(m, x, ("A sharp photo.", "A blurry photo.")), atol=1e-6, rtol=0)
    assert not torch.allclose(other(x), s)


def test_crops_cover_the_long_side_and_are_averaged(tiny):
    m = build(tiny)
    x = batch(photo(32, 80, 4))  # short side already 32: crops at 0, 24, 48 averaged
    assert crop_starts(80, 32) == [0, 24, 48] and crop_starts(32, 32) == [0] and crop_starts(64, 32) == [0, 32]
    crops = torch.cat([x[..., s:s + 32] for s in (0, 24, 48)])
    assert torch.allclose(m(x), direct(m, crops).mean().reshape(1), atol=1e-6, rtol=0)
    tall = batch(photo(100, 50, 5))  # resized to 64x32 (short side 32), two crops
    assert m.views(tall).shape == (1, 2, 3, 32, 32)
    assert build(tiny, mode="center").views(tall).shape == (1, 1, 3, 32, 32)
    assert build(tiny, mode="squash").views(tall).shape == (1, 1, 3, 32, 32)
    assert torch.allclose(m(torch.cat([tall, tall.flip(-1)]))[:1], m(tall), atol=1e-6)  # per-image scores


def test_resnet_backbone_runs_natively_without_positional_embedding(tmp_path):
    import open_clip
    from safetensors.torch import save_file

    cfg = tmp_path / "srbench-tiny-rn.json"
    cfg.write_text(json.dumps({"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8,
                                                               "head_width": 16},
                               "text_cfg": TINY_CLIP["text_cfg"]}))
    open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    model = open_clip.create_model("srbench-tiny-rn", pretrained=None, load_weights=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "rn.safetensors"))
    m = iqa.create_metric("clipiqa", clip=str(cfg), pretrained=None, weights=str(tmp_path / "rn.safetensors"))
    assert m.mode == "native" and m.info.backbone == "srbench-tiny-rn"
    x = batch(photo(80, 112, 6))  # not the model's 64x64: fed whole
    s = m(x)
    assert s.shape == (1,) and 0 <= float(s) <= 1
    # at 64x64, native == open_clip's own forward with the positional embedding set to zero
    y = batch(photo(64, 64, 7))
    net = m.clip_model
    with torch.no_grad():
        net.visual.attnpool.positional_embedding.zero_()
        img = F.normalize(net.encode_image((y - m.mean) / m.std), dim=-1)
        expected = (100 * img @ m.text.t()).softmax(-1)[:, 0].double()
    assert torch.allclose(m(y), expected, atol=1e-6, rtol=0)
    with pytest.raises(SrbenchError, match="too small for clipiqa"):
        m(torch.rand(1, 3, 16, 64))


def test_options_and_missing_weights(tiny, tmp_path):
    with pytest.raises(MissingAssetError, match="ViT-B-16"):  # default CLIP, offline, no file: how to get it
        iqa.create_metric("clipiqa")
    with pytest.raises(MissingAssetError, match="CLIP weights file not found"):
        iqa.create_metric("clipiqa", clip=tiny[0], pretrained=None, weights=str(tmp_path / "nope.safetensors"))
    with pytest.raises(SrbenchError, match="needs a ResNet"):
        build(tiny, mode="native")
    with pytest.raises(SrbenchError, match="pair of texts"):
        build(tiny, prompts="Good photo.")
    with pytest.raises(SrbenchError, match="mode must be one of"):
        build(tiny, mode="tiles")
    with pytest.raises(SrbenchError, match="needs trained CLIP weights"):
        iqa.create_metric("clipiqa", clip=tiny[0], pretrained=None)
    with pytest.raises(SrbenchError, match="unknown option"):
        build(tiny, resize=224)
