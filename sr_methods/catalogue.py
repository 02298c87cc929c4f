"""The catalogue of SR methods: one line per method. Factories are imported lazily.

Every factory takes the registry entry as ``entry=`` plus the user's options as keyword arguments;
``create_method`` rejects options a factory does not name. Metadata per entry:

- ``kind``: ``"interpolation"`` or ``"spandrel"`` (a named network loaded through spandrel);
- ``scales``: supported integer scales, ``None`` for any;
- ``backbone``: guidance backbone of CLIP-guided methods, else ``None``;
- named networks: ``architecture`` (spandrel's name), ``file``, ``sha256``, ``licence``, ``url``
  (``None``: never downloaded; the file must be supplied, see ``sr_methods.weights``).

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
                 licence="MIT", url=None,
                 description="CRAFT (Li et al., ICCV 2023), lightweight x4 SR for bicubic degradation")
