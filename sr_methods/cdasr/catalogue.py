"""The catalogue lines of CDASR: ``cdasr-vgg16-x8`` and ``cdasr-vgg16-x16``, a domain-adaptive
module meta-trained by ``srbench train cdasr`` (presets ``cpu-x8``, ``cpu-x16``) on the frozen
``esrgan-thick-x8`` / ``rrdn-x16`` networks (meta ``base``, so a report can set each against its
base). The checkpoints (the DAM alone, float16) ship in ``sr_methods/data``; ``weights=PATH``
runs another one. The name carries the backbone (VGG16, not the paper's CLIP), so the report flags
a VGG16 metric scoring them as circular. Kodak24 figures of the unadapted modules against their
bases are in `bench.train.cdasr` (x8: -0.13 dB PSNR-Y, LPIPS 0.601 against 0.640; x16: slightly
worse than rrdn-x16 but for DISTS). Registered by `sr_methods.catalogue`; nothing here
imports torch."""

from __future__ import annotations

from iqa.registry import Registry

_SHIPPED = {  # scale: (file, sha256 ("" until shipped), base catalogue network)
    8: ("cdasr_vgg16_x8.safetensors", "3156a08f53c20da6dd3f254c567a7fe0092acdcbe44d7328d6920fd089ecd97a",
        "esrgan-thick-x8"),
    16: ("cdasr_vgg16_x16.safetensors", "f96c65c4ad4f80c968a16c891a746339b5a62849fcaa6d73f5300e2da94dd7c7",
         "rrdn-x16"),
}


_STEPS = {8: 150, 16: 100}


def register(methods: Registry) -> None:
    for scale, (file, sha, base) in _SHIPPED.items():
        methods.register(
            f"cdasr-vgg16-x{scale}", "sr_methods.cdasr.method:build", kind="trained", adaptive=True,
            recipe="cdasr", architecture=f"{base} (frozen) + CDASR domain-adaptive module", scales=(scale,),
            backbone="vgg16", base=base, file=file, sha256=sha, licence="MIT", url=None,
            assets=("esrgan-thick-x8", "vgg16"),
            description=f"CDASR x{scale} (Multimedia Systems 2025): a VGG16-embedding-conditioned domain-adaptive "
                        f"module in the frozen {base}, meta-trained (Reptile, LR-only inner loop) on bicubic/bdn/dn/"
                        f"realesrgan x{scale} of T91 + BSDS500 by a CPU preset ({_STEPS[scale]} iterations); adapts "
                        f"its module on target LR images (back-projection + semantic consistency); not the paper's "
                        f"CLIP or schedule")
