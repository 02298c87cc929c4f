"""The catalogue of metrics: one line per metric. Factories are imported lazily.

``assets`` names the pretrained files (``iqa.assets.ASSETS``) a metric needs; ``srbench run``
fetches them when they are missing (unless offline).
"""

from __future__ import annotations

from .registry import Registry

METRICS: Registry = Registry("metric")

_INF = float("inf")

# name, factory, kind, higher_better, range, backbone, description
METRICS.register("psnr", "iqa.fr:PSNR", kind="fr", higher_better=True, range=(0.0, _INF), backbone=None,
                 description="peak signal-to-noise ratio in dB (protocol decides Y/RGB and border)")
METRICS.register("ssim", "iqa.fr:SSIM", kind="fr", higher_better=True, range=(-1.0, 1.0), backbone=None,
                 description="structural similarity, 11x11 Gaussian window (sigma 1.5), as BasicSR/MATLAB")
METRICS.register("psnr-b2", "iqa.fr:PSNR", kind="fr", higher_better=True, range=(0.0, _INF), backbone=None,
                 defaults={"crop_border": 2},
                 description="PSNR with a border of 2 px at every scale (DePLSR's published x4 figures); Y/RGB "
                             "and rounding from the protocol")
METRICS.register("ssim-b2", "iqa.fr:SSIM", kind="fr", higher_better=True, range=(-1.0, 1.0), backbone=None,
                 defaults={"crop_border": 2},
                 description="SSIM with a border of 2 px at every scale (DePLSR's published x4 figures); Y/RGB "
                             "and rounding from the protocol")
METRICS.register("lpips", "iqa.lpips:LPIPS", kind="fr", higher_better=False, range=(0.0, _INF), backbone="alexnet",
                 assets=("alexnet",), description="LPIPS v0.1 with the AlexNet backbone")
METRICS.register("lpips-vgg", "iqa.lpips:LPIPS_VGG", kind="fr", higher_better=False, range=(0.0, _INF),
                 backbone="vgg16", assets=("vgg16",), description="LPIPS v0.1 with the VGG16 backbone")
METRICS.register("dists", "iqa.dists:DISTS", kind="fr", higher_better=False, range=(0.0, 1.0), backbone="vgg16",
                 assets=("vgg16",), description="DISTS (structure and texture similarity on VGG16 features)")
METRICS.register("niqe", "iqa.niqe:NIQE", kind="nr", higher_better=False, range=(0.0, _INF), backbone=None,
                 assets=("niqe-pris-params",),
                 description="NIQE naturalness, no reference (pyiqa's code, MATLAB's pristine model)")

# SFD-IQA (iqa/sfd.py): opinion-unaware NR metric from trained semantic feature discriminators
_SFD_DESC = "SFD-IQA, opinion-unaware NR score in [0, 1] from SFD discriminators"
METRICS.register("sfd-iqa-vgg16", "iqa.sfd:sfd_iqa_vgg16", kind="nr", higher_better=True, range=(0.0, 1.0),
                 backbone="vgg16", assets=("vgg16",), description=_SFD_DESC + " on VGG16 (shipped checkpoint)")
METRICS.register("sfd-iqa-vgg16-featd", "iqa.sfd:sfd_iqa_vgg16", kind="nr", higher_better=True, range=(0.0, 1.0),
                 backbone="vgg16", assets=("vgg16",), defaults={"mode": "featd", "name": "sfd-iqa-vgg16-featd"},
                 description="SFD-IQA ablation: the Feat-D half alone (VGG16)")
METRICS.register("sfd-iqa-vgg16-lpp", "iqa.sfd:sfd_iqa_vgg16", kind="nr", higher_better=True, range=(0.0, 1.0),
                 backbone="vgg16", assets=("vgg16",), defaults={"mode": "lpp", "name": "sfd-iqa-vgg16-lpp"},
                 description="SFD-IQA ablation: the anchor-pair (LPP) half alone (VGG16)")
METRICS.register("sfd-iqa-vgg16-logit", "iqa.sfd:sfd_iqa_vgg16", kind="nr", higher_better=True,
                 range=(float("-inf"), float("inf")), backbone="vgg16", assets=("vgg16",),
                 defaults={"logodds": True, "name": "sfd-iqa-vgg16-logit"},
                 description="SFD-IQA as log-odds (the same order, unbounded; readable where the score saturates)")
METRICS.register("sfd-iqa", "iqa.sfd:sfd_iqa_clip", kind="nr", higher_better=True, range=(0.0, 1.0),
                 backbone="ViT-B-16", description=_SFD_DESC + " on CLIP ViT-B/16 (needs a trained checkpoint)")

# no-reference baselines (iqa/nr_baselines.py, iqa/clipiqa.py)
METRICS.register("piqe", "iqa.nr_baselines:PIQE", kind="nr", higher_better=False, range=(0.0, 100.0), backbone=None,
                 description="PIQE, training-free block distortion score (pyiqa's code), 0 best .. 100 worst")
METRICS.register("brisque", "iqa.nr_baselines:BRISQUE", kind="nr", higher_better=False, range=(-_INF, _INF),
                 backbone=None, assets=("brisque-live",),
                 description="BRISQUE with the original LIVE-trained SVR (about 0 best .. 100 worst)")
METRICS.register("clipiqa", "iqa.clipiqa:CLIPIQA", kind="nr", higher_better=True, range=(0.0, 1.0), backbone="ViT-B-16",
                 description="CLIP-IQA zero-shot, P('Good photo.' vs 'Bad photo.'), open_clip ViT-B-16 (openai)")
