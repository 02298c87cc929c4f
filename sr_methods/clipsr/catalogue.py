"""The catalogue lines of CLIP-SR: checkpoints of ``srbench train clip-sr`` shipped in
``sr_methods/data``, and the ``clip-sr-align`` aligner they were trained with (the offline judge of
``srbench editability``). Registered by `sr_methods.catalogue`; nothing here imports torch.

The names say what differs from the paper: ``minilm`` (the sentence embedding of all-MiniLM-L6-v2,
not CLIP's text tower; its 6 layers also stand in for CLIP's ViT blocks in the prompt predictor),
``vgg16`` (the discriminator's features and the text-image cosine through VGG16 and the trained
aligner, not CLIP's image tower), ``cap45`` (trained on the 45 captioned training images here: 25
COCO + 20 Multi-Modal-CelebA-HQ, of which 9 held out for validation; the paper trains on COCO
train2017 / CelebA-HQ). Each file holds the generator and the sentence projection (float16); the
MiniLM encoder comes from its assets, checked by sha256.

Options of every entry: ``text = "caption"`` (default: the caption the run gives each image) or
``"empty"`` (the "no text" ablation: the empty caption's embedding always; no caption is asked
for), ``missing_caption`` (``"unsupported"`` or ``"empty"``), and the tile options.
"""

from __future__ import annotations

from typing import Any

from iqa.registry import Registry

# the aligner that ships (`srbench train clip-sr-align --config cpu`: 250 steps): (file, sha256)
SHIPPED_ALIGNER: tuple[str, str] | None = (
    "clip_sr_align_minilm_vgg16_cap45.safetensors", "bfa19ca2eff6ef5b45b3a18aa2eb62a4dc24c1494348b1c034d8e74cb63fe142")

_HOW = ("CPU preset: 300 L1 warm-up steps (cpu-warmup, T91 + BSDS500 + the captioned images), then 250 steps of the "
        "paper's losses (cpu) on 36 captioned training images (25 COCO + 20 MM-CelebA-HQ, 9 held out); narrow widths "
        "(32, 64, 64, 64), conditioning 128; MiniLM sentence embedding, VGG16 discriminator and aligner")
_SHIPPED: dict[str, tuple[str, str, int, str]] = {  # name: (file, sha256, scale, what)
    "clip-sr-minilm-vgg16-cap45-x4": (
        "clip_sr_minilm_vgg16_cap45_x4.safetensors",
        "4d79ef6a443157378bfca41b1c87f48690d6018868bbf9511621f2605f4d0164", 4,
        f"CLIP-SR (IEEE TMM) x4 with the prompt predictor (in MiniLM's 6 frozen layers), {_HOW}"),
    "clip-sr-minilm-vgg16-cap45-x8": (
        "clip_sr_minilm_vgg16_cap45_x8.safetensors",
        "a39bcf34541b41fe048df054585dd3afe5801be925cc2e364b42d329d9bb31f7", 8,
        f"CLIP-SR x8 (three pixel-shuffle stages) with the prompt predictor (in MiniLM's 6 frozen layers), {_HOW}"),
    "clip-sr-minilm-vgg16-cap45-x16": (
        "clip_sr_minilm_vgg16_cap45_x16.safetensors",
        "fe43062d689f7cb93743742cd16d420b9f4089624d2569f9daf731f89e7eb24b", 16,
        f"CLIP-SR x16 (four pixel-shuffle stages) with the prompt predictor (in MiniLM's 6 frozen layers), {_HOW}"),
    "clip-sr-minilm-vgg16-cap45-noprompt-x4": (
        "clip_sr_minilm_vgg16_cap45_noprompt_x4.safetensors",
        "fd445f8dae600c2c58d1d982f4ac65d7a8dd872427bbbf3775ea267bcab64adc", 4,
        f"ablation of clip-sr-minilm-vgg16-cap45-x4 without the prompt predictor (the released code's wiring), {_HOW}"),
    "clip-sr-minilm-vgg16-cap45-noprompt-x8": (
        "clip_sr_minilm_vgg16_cap45_noprompt_x8.safetensors",
        "529892d1d533cc703468dd8fced5c10230aabde6bb18dc303e89db293845ed55", 8,
        f"ablation of clip-sr-minilm-vgg16-cap45-x8 without the prompt predictor (the released code's wiring), {_HOW}"),
    "clip-sr-minilm-vgg16-cap45-noprompt-x16": (
        "clip_sr_minilm_vgg16_cap45_noprompt_x16.safetensors",
        "2f6ba9628cdd841dc864af0dcb7d42686df5e29f610f3bc670980194b6c75ca2", 16,
        f"ablation of clip-sr-minilm-vgg16-cap45-x16 without the prompt predictor (the released code's wiring), {_HOW}"),
}


def build(*, entry: Any, weights: str | None = None, tile: int | None = None, tile_overlap: int | None = None,
          tile_blend: str = "crop", missing_caption: str = "unsupported", text: str = "caption"):
    from sr_methods.trained import build_shipped

    return build_shipped(entry=entry, weights=weights, tile=tile, tile_overlap=tile_overlap, tile_blend=tile_blend,
                         missing_caption=missing_caption, text=text)


def register(methods: Registry) -> None:
    for name, (file, sha, scale, what) in _SHIPPED.items():
        methods.register(name, "sr_methods.clipsr.catalogue:build", kind="trained", recipe="clip-sr",
                         architecture="CLIP-SR generator (narrow CPU widths) + MiniLM sentence embedding",
                         scales=(scale,), backbone="vgg16", file=file, sha256=sha, licence="MIT", url=None,
                         assets=("minilm-l6-v2", "minilm-l6-v2-tokenizer", "vgg16"), text_guided=True,
                         description=what)
    for family in ("clip-sr-minilm-vgg16-cap45", "clip-sr-minilm-vgg16-cap45-noprompt"):
        members = {s: f"{family}-x{s}" for s in (4, 8, 16)}
        methods.register(family, "sr_methods.family:build_family", kind="family", architecture="CLIP-SR generator",
                         scales=tuple(members), backbone="vgg16", members=members, text_guided=True,
                         assets=("minilm-l6-v2", "minilm-l6-v2-tokenizer"),
                         description=f"{family}-x4/-x8/-x16, one shipped network per scale")
