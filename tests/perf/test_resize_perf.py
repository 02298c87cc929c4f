"""Opt-in timings of ``iqa.resize.imresize`` (run with ``pytest -m perf tests/perf``).

One Urban100 image (about 1024x768) shrunk by 4, in both modes and from uint8 and float input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iqa.resize import imresize

pytestmark = pytest.mark.perf


@pytest.fixture(scope="module")
def urban_image(shared_data: Path) -> torch.Tensor:
    path = min((shared_data / "urban100" / "HR").glob("*.png"))
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].contiguous()


@pytest.mark.parametrize("mode", ["matlab", "float"])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_x4_down_urban100(benchmark, urban_image, mode, dtype):
    x = urban_image if dtype == "uint8" else urban_image.float() / 255
    out = benchmark(imresize, x, 1 / 4, mode=mode)
    assert out.shape[-2:] == (-(-x.shape[-2] // 4), -(-x.shape[-1] // 4))


@pytest.mark.parametrize("scale", [2, 4])
def test_upscale_urban100_lr(benchmark, urban_image, scale):
    lr = imresize(urban_image, 1 / 4)
    out = benchmark(imresize, lr, scale)
    assert out.shape[-1] == lr.shape[-1] * scale
