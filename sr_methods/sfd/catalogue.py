"""The catalogue lines of SFD-SR: the checkpoints shipped in ``sr_methods/data``, one per scale
(``sfd-sr-vgg16-x4``, ``-x8``, ``-x16``), and the family ``sfd-sr-vgg16`` that serves each scale
with its network. Registered by `sr_methods.catalogue`; nothing here imports torch.

What ships (``srbench train sfd-sr-vgg16``, see `bench.train.sfd_sr`): at x4 and x8 all weights of
idealo's RRDN (``esrgan-thick-x4``/``-x8``) fine-tuned as SFD-SR generators (presets ``cpu``,
``cpu-x8``); at x16 the SFD-SR x8 network followed by the L1-trained x2 stage of ``rrdn-x16``
(``examples/train/sfd-sr-vgg16-x16.toml`` says why). Every file holds all its weights (no asset
needed) and names its parents by sha256. The names keep the paper's ``sfd-sr`` plus the
semantic backbone (VGG16, not the paper's CLIP), so the report flags SFD-IQA-vgg16 scoring them
as circular; the descriptions say what differs from the paper.
"""

from __future__ import annotations

from iqa.registry import Registry

_HOW = ("as an SFD-SR generator (Dong et al., CVPR 2025) against the SFD-IQA VGG16 discriminators, with "
        "L1 + VGG16 perceptual losses (SeD's weights), on T91 + BSDS500 (a CPU preset: not the paper's CLIP "
        "backbone, RRDBNet or schedule)")
_SHIPPED = {  # scale: (file, sha256, what it is)
    4: ("sfd_sr_vgg16_x4.safetensors", "c60e94ac54a6ed020a39667787bb2d8bdef9a771bcd5f48b653946f508693f81",
        f"idealo's x4 RRDN (esrgan-thick-x4, 7.3 M params) fine-tuned 500 steps {_HOW}"),
    8: ("sfd_sr_vgg16_x8.safetensors", "b62919b6ea9f15deee533e041a38e438a53f5bb2790c337d600b94c1fbd26e13",
        f"idealo's x8 RRDN (esrgan-thick-x8, 7.4 M params) fine-tuned 700 steps {_HOW}"),
    16: ("sfd_sr_vgg16_x16.safetensors", "ade39afe7925fa7134532da4cdb730229e5de231fdc97d5680dcb5bbfb6dd330",
         "sfd-sr-vgg16-x8 followed by the L1-trained x2 stage of rrdn-x16, put together without further "
         "training (SFD steps at x16 made Kodak24 LPIPS worse; this composition improves LPIPS and DISTS)"),
}


def register(methods: Registry) -> None:
    for scale, (file, sha, what) in _SHIPPED.items():
        methods.register(f"sfd-sr-vgg16-x{scale}", "sr_methods.trained:build_shipped", kind="trained",
                         recipe="sfd-sr-vgg16", architecture="RRDN" if scale < 16 else "RRDN x8 + x2 stage",
                         scales=(scale,), backbone="vgg16", file=file, sha256=sha, licence="MIT", url=None,
                         assets=(), description=f"SFD-SR x{scale}: {what}")
    methods.register("sfd-sr-vgg16", "sr_methods.family:build_family", kind="family", architecture="RRDN",
                     scales=tuple(_SHIPPED), backbone="vgg16", members={s: f"sfd-sr-vgg16-x{s}" for s in _SHIPPED},
                     assets=(), description="SFD-SR on VGG16 at x4/x8/x16, one shipped network per scale "
                                            "(sfd-sr-vgg16-x4/-x8/-x16)")
