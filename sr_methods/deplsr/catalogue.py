"""The catalogue lines of DePLSR: ``deplsr-rrdn-vgg16-param-x4`` and its ablation
``deplsr-rrdn-vgg16-param-notokens-x4``, checkpoints of ``srbench train deplsr`` (presets ``cpu``,
``cpu-notokens``) shipped in ``sr_methods/data``. Registered by `sr_methods.catalogue`; nothing
here imports torch.

The name says what differs from the paper: ``rrdn`` (the lighter body: 10 FusionBlocks in idealo's
frozen ``esrgan-thick-x4``, not the paper's RealDAT), ``vgg16-param`` (the offline adaptor: frozen
VGG16 content, degradation "texts" as learned embeddings of their parameters, not CLIP). Each file
holds the fusions and the adaptor's trainable layers (float16); the host RRDN and VGG16 come from
their assets, checked by sha256. The ablation is the same body and training with the fine
degradation tokens zeroed."""

from __future__ import annotations

from iqa.registry import Registry

_HOW = ("trained 700 steps (L1, Adam 2e-4, batch 4 of 192-px HR, realesrgan-x4 LR on the fly, T91 + BSDS500; a CPU "
        "preset, not the paper's 500k steps) on the frozen esrgan-thick-x4 with 10 FusionBlocks, under the frozen "
        "deplsr-vgg16-param adaptor (400 SigLIP steps)")
_SHIPPED = {  # name: (file, sha256, what)
    "deplsr-rrdn-vgg16-param-x4": (
        "deplsr_rrdn_vgg16_param_x4.safetensors",
        "f8980716b549e4597c04b90e87a5a529b54dbf235843ce059f9e6edfd94e4b6a",
        f"DePLSR (Sci. Rep. 2025) x4, content + 5 fine degradation tokens, {_HOW}"),
    "deplsr-rrdn-vgg16-param-notokens-x4": (
        "deplsr_rrdn_vgg16_param_notokens_x4.safetensors",
        "5ddc9ace3e14a7086085b28718b7e4cae586c5e821b3fa573ebe17166f6ac44b",
        f"ablation of deplsr-rrdn-vgg16-param-x4: the fine degradation tokens zeroed (content kept), {_HOW}"),
}


def register(methods: Registry) -> None:
    for name, (file, sha, what) in _SHIPPED.items():
        methods.register(name, "sr_methods.trained:build_shipped", kind="trained", recipe="deplsr",
                         architecture="RRDN (esrgan-thick-x4, frozen) + FusionBlocks", scales=(4,), backbone="vgg16",
                         file=file, sha256=sha, licence="MIT", url=None, assets=("esrgan-thick-x4", "vgg16"),
                         base="esrgan-thick-x4", description=what)
