"""CLIP models through open_clip: local files, the offline error, TorchScript policy (tiny random model)."""

from __future__ import annotations

import pytest
import torch

import iqa.clip as C
from iqa.errors import MissingAssetError, SrbenchError
from tests.helpers import tiny_clip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip"))


def test_tiny_model_from_config_and_local_weights(tiny):
    config, weights = tiny
    m = C.load_clip(str(config), None, weights=weights)
    assert m.name == "srbench-tiny-clip" and m.image_size == 32 and m.weights == str(weights)
    assert m.sha256 == C.sha256_file(weights)
    assert not any(p.requires_grad for p in m.model.parameters()) and not m.model.training
    img = m.model.encode_image(torch.rand(2, 3, 32, 32))
    txt = m.model.encode_text(m.tokenizer(["a sharp photo", "a blurry photo"]))
    assert img.shape == (2, 32) and txt.shape == (2, 32)
    # the weights really are the file's: a second load gives the same embedding
    again = C.load_clip(str(config), None, weights=weights)
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(m.model.encode_image(x), again.model.encode_image(x))


def test_weights_found_in_srbench_weights_folder(tiny, tmp_path, monkeypatch):
    config, weights = tiny
    (tmp_path / "srbench-tiny-clip-mytag.safetensors").write_bytes(weights.read_bytes())
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    m = C.load_clip(str(config), "mytag")
    assert m.weights == str(tmp_path / "srbench-tiny-clip-mytag.safetensors")


def test_unreachable_hub_fails_at_once_without_the_download_client(monkeypatch):
    import open_clip

    monkeypatch.delenv("SRBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: closed, refused at once
    monkeypatch.setattr(open_clip, "download_pretrained", lambda *a, **k: pytest.fail("download attempted"))
    with pytest.raises(MissingAssetError, match=r"not found \(127\.0\.0\.1 unreachable: .*\): place"):
        C.find_clip_weights("ViT-B-16", "laion2b_s34b_b88k")


def test_offline_without_file_says_which_file_to_place_where():
    with pytest.raises(MissingAssetError) as e:
        C.find_clip_weights("ViT-B-16", "openai")
    msg = str(e.value)
    assert "\n" not in msg and "(offline)" in msg
    assert "place ViT-B-16.pt (from https://openaipublic.azureedge.net/clip/models/5806e77c" in msg
    assert str(C.ASSETS.cache) in msg and "srbench assets fetch clip:ViT-B-16/openai" in msg
    with pytest.raises(MissingAssetError, match="no pretrained weights 'nonsense' for 'RN50'.*openai"):
        C.find_clip_weights("RN50", "nonsense")
    with pytest.raises(SrbenchError, match="did you mean 'ViT-B-16'"):
        C.load_clip("ViT-B-61")
    with pytest.raises(MissingAssetError, match="CLIP weights file not found: .*nope.pt"):
        C.find_clip_weights("ViT-B-16", "openai", "/nope.pt")


def test_online_lookup_goes_through_open_clips_registry(tmp_path, monkeypatch):
    import open_clip

    calls = []
    target = tmp_path / "downloaded.pt"
    target.write_bytes(b"x")
    monkeypatch.setattr(open_clip, "download_pretrained", lambda cfg, **kw: calls.append(cfg) or str(target))
    monkeypatch.setattr(C, "_unreachable", lambda url: "")  # as if the host answered
    monkeypatch.setenv("SRBENCH_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert C.find_clip_weights("ViT-B-32", "openai") == target
    assert calls and calls[0]["url"].endswith("/ViT-B-32.pt")


def test_clip_refs_and_fetch_through_open_clip(tmp_path, monkeypatch):
    import open_clip

    assert C.parse_clip_ref(C.clip_ref("ViT-B-16", "openai")) == ("ViT-B-16", "openai")
    with pytest.raises(SrbenchError, match="clip:NAME/TAG"):
        C.parse_clip_ref("clip:ViT-B-16")
    with pytest.raises(MissingAssetError, match="could not download CLIP RN50 \\(openai\\) through open_clip"):
        C.fetch_clip("RN50", "openai")  # the network is blocked in tests
    target = tmp_path / "RN50.pt"
    target.write_bytes(b"x")
    monkeypatch.setattr(open_clip, "download_pretrained", lambda cfg, **kw: str(target))
    assert C.fetch_clip("RN50", "openai") == target


def test_weights_of_another_model_are_a_one_line_error(tiny, tmp_path):
    config, _ = tiny
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"visual.proj": torch.zeros(3, 3)}, str(bad))
    with pytest.raises(SrbenchError, match="does not fit open_clip model srbench-tiny-clip") as e:
        C.load_clip(str(config), None, weights=bad)
    assert "\n" not in str(e.value)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated, OpenAI's files still use it
def test_torchscript_archives_only_when_published(tiny, tmp_path, monkeypatch):
    import open_clip

    config, weights = tiny
    model = open_clip.create_model("srbench-tiny-clip", pretrained=None, load_weights=False)
    model.load_state_dict(C.load_state_dict(weights)[0])
    scripted = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(model.eval()), str(scripted))
    with pytest.raises(SrbenchError, match="refused to load .*tiny.pt: a TorchScript archive"):
        C.load_clip(str(config), None, weights=scripted)
    # a file whose sha256 is a published one (stood in for here) is read as OpenAI's releases are
    monkeypatch.setitem(C.OPENAI_SHA256, ("srbench-tiny-clip", "test"), C.sha256_file(scripted))
    m = C.load_clip(str(config), None, weights=scripted)
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(m.model.encode_image(x), model.encode_image(x), atol=1e-6)
