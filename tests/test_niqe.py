import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import iqa
from iqa.errors import MissingAssetError, SrbenchError
from tests.helpers import calibra_dir, photo


def synthetic_params(path: Path) -> Path:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(36, 36))
    np.savez(path, mu_pris_param=rng.normal(size=(1, 36)), cov_pris_param=a @ a.T + 36 * np.eye(36),
             gaussian_window=np.ones((7, 7)) / 49)
    return path


def test_niqe_needs_its_parameters_and_says_how_to_get_them():
    with pytest.raises(MissingAssetError, match="srbench assets fetch niqe-pris-params"):
        iqa.create_metric("niqe")


def test_niqe_scores_each_image(tmp_path):
    m = iqa.create_metric("niqe", params=synthetic_params(tmp_path / "p.npz"))
    assert iqa.metric_info("niqe").kind == "nr" and not iqa.metric_info("niqe").higher_better
    x = torch.from_numpy(np.stack([photo(96, 96, 1), photo(96, 96, 2)])).permute(0, 3, 1, 2).float() / 255
    scores = m(x)
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    assert torch.allclose(scores[1:], m(x[1:]), atol=1e-6)  # one score per image, batch-independent
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert not torch.allclose(m(noisy), scores)
    # 96x96 is the smallest size pyiqa's NIQE scores (at 95 it fails inside pyiqa with a padding
    # error); below it, our one-line error instead of that one
    with pytest.raises(SrbenchError, match="95x96 pixels is too small for niqe"):
        m(x[:, :, :, :95])


def test_bad_parameter_file(tmp_path):
    np.savez(tmp_path / "bad.npz", mu_pris_param=np.zeros(5), cov_pris_param=np.eye(5))
    with pytest.raises(SrbenchError, match="mu \\(36,\\) and cov \\(36, 36\\)"):
        iqa.create_metric("niqe", params=tmp_path / "bad.npz")


@pytest.mark.skipif(not os.environ.get("SRBENCH_BASICSR_SDIST"), reason="set SRBENCH_BASICSR_SDIST to basicsr-fixed-1.4.2.tar.gz")
def test_niqe_matches_pyiqa_on_the_calibration_images(tmp_path):
    """pyiqa's own NIQE values on its five TID2013 calibration images (the issue quotes two decimals;
    measured: within 0.0021, the largest on I03), to 0.005."""
    from PIL import Image

    with tarfile.open(os.environ["SRBENCH_BASICSR_SDIST"]) as t:
        member = next(n for n in t.getnames() if n.endswith("basicsr/metrics/niqe_pris_params.npz"))
        (tmp_path / "p.npz").write_bytes(t.extractfile(member).read())
    m = iqa.create_metric("niqe", params=tmp_path / "p.npz")
    base = calibra_dir() / "dist_dir"
    for name, expected in zip(("I03", "I04", "I06", "I08", "I19"), (15.6538, 3.6549, 3.2342, 3.1921, 9.0722)):
        img = next(base.glob(f"{name}*"))
        x = torch.from_numpy(np.asarray(Image.open(img).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
        assert abs(float(m(x)[0]) - expected) < 0.005, name
