"""Tests for ``iqa.resize``: MATLAB-compatible ``imresize``, bit-exact with MATLAB's uint8 path.

Three kinds of evidence:

- real data: ``imresize(HR, 1/N)`` against the MATLAB-made LR files of Set5, Set14 and Urban100
  (``../shared/data``), 100 % identical pixels required;
- an independent reference written here straight from MATLAB's formulas (a slow per-pixel loop
  over Python floats), compared on random images for many scales, kernels, modes and edge rules;
- golden values worked out by hand for tiny inputs.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iqa.errors import SrbenchError, UnknownNameError
from iqa.resize import imresize, modcrop

# ----------------------------------------------------------------------------------------------
# Independent reference: MATLAB's imresize written out as plain loops (no torch, no vectorised
# kernels), deliberately simple and slow.
# ----------------------------------------------------------------------------------------------

_MATLAB_EPS = 2.0 ** -52
_REF_WIDTH = {"cubic": 4.0, "triangle": 2.0, "box": 1.0, "lanczos2": 4.0, "lanczos3": 6.0}


def _ref_kernel(name: str, t: float) -> float:
    a = abs(t)
    if name == "cubic":
        if a <= 1:
            return 1.5 * a ** 3 - 2.5 * a ** 2 + 1
        if a <= 2:
            return -0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2
        return 0.0
    if name == "triangle":
        if -1 <= t < 0:
            return t + 1
        if 0 <= t <= 1:
            return 1 - t
        return 0.0
    if name == "box":
        return 1.0 if -0.5 <= t < 0.5 else 0.0
    n = {"lanczos2": 2, "lanczos3": 3}[name]
    if a >= n:
        return 0.0
    return (math.sin(math.pi * t) * math.sin(math.pi * t / n) + _MATLAB_EPS) / (math.pi ** 2 * t ** 2 / n + _MATLAB_EPS)


def _ref_contributions(in_len: int, out_len: int, scale: float, kernel: str, antialias: bool, edge: str):
    """Per output pixel: (weights, 0-based input indices), as MATLAB's ``contributions``."""
    width = _REF_WIDTH[kernel]
    stretch = scale < 1 and antialias
    if stretch:
        width = width / scale
    n_taps = math.ceil(width) + 2
    rows = []
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [left + j for j in range(n_taps)]
        if stretch:
            w = [scale * _ref_kernel(kernel, scale * (u - t)) for t in taps]
        else:
            w = [_ref_kernel(kernel, u - t) for t in taps]
        total = sum(w)
        rows.append(([v / total for v in w], taps))
    keep = [j for j in range(n_taps) if any(w[j] != 0 for w, _ in rows)]
    aux = list(range(1, in_len + 1)) + list(range(in_len, 0, -1))
    out = []
    for w, taps in rows:
        idx = []
        for j in keep:
            t = taps[j]
            t = min(max(t, 1), in_len) if edge == "clamp" else aux[(t - 1) % len(aux)]
            idx.append(t - 1)
        out.append(([w[j] for j in keep], idx))
    return out


def _ref_round_uint8(v: float) -> float:
    r = math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)  # half away from zero
    return float(min(max(r, 0), 255))


def _ref_imresize(img: np.ndarray, scale=None, size=None, kernel="cubic", mode="matlab", antialias=True,
                  edge=None, order=None) -> np.ndarray:
    """``img`` uint8 ``(C, H, W)``. Returns uint8 (matlab mode) or float64 in [0, 1] units."""
    edge = edge or ("clamp" if mode == "matlab" else "symmetric")
    c, h, w = img.shape
    if scale is not None:
        scales, out = (scale, scale), (math.ceil(h * scale), math.ceil(w * scale))
    else:
        out, scales = size, (size[0] / h, size[1] / w)
    if order is None:
        order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    planes = [[[float(img[k, i, j]) if mode == "matlab" else img[k, i, j] / 255.0 for j in range(w)]
               for i in range(h)] for k in range(c)]
    for d in order:
        in_len = len(planes[0]) if d == 0 else len(planes[0][0])
        contrib = _ref_contributions(in_len, out[d], scales[d], kernel, antialias, edge)
        new = []
        for p in planes:
            rows, cols = len(p), len(p[0])
            if d == 0:
                q = [[0.0] * cols for _ in range(out[0])]
                for i, (ws, idx) in enumerate(contrib):
                    for j in range(cols):
                        acc = 0.0
                        for wt, t in zip(ws, idx):
                            acc += wt * p[t][j]
                        q[i][j] = _ref_round_uint8(acc) if mode == "matlab" else acc
            else:
                q = [[0.0] * out[1] for _ in range(rows)]
                for i in range(rows):
                    for j, (ws, idx) in enumerate(contrib):
                        acc = 0.0
                        for wt, t in zip(ws, idx):
                            acc += wt * p[i][t]
                        q[i][j] = _ref_round_uint8(acc) if mode == "matlab" else acc
            new.append(q)
        planes = new
    arr = np.array(planes, dtype=np.float64)
    return arr.astype(np.uint8) if mode == "matlab" else arr


def _random_u8(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


def _input_shape(scale: float) -> tuple[int, int]:
    """Odd-ish sizes: output about 6x8 when shrinking, input 3..17 px when enlarging."""
    if scale < 1:
        s = round(1 / scale)
        return 5 * s + 3, 7 * s + 1
    return max(3, 33 // int(scale)) | 1, max(4, 47 // int(scale))


# ----------------------------------------------------------------------------------------------
# Golden values worked out by hand
# ----------------------------------------------------------------------------------------------

def test_hand_golden_triangle_enlarge_by_two():
    # in_len 2 -> 4, scale 2: u = x/2 + 1/4 = 0.75, 1.25, 1.75, 2.25; triangle weights 1/4, 3/4
    # (clamped taps fold onto the edge pixel): [p1, .75 p1 + .25 p2, .25 p1 + .75 p2, p2]
    x = torch.tensor([[0, 255]], dtype=torch.uint8)
    assert imresize(x, size=(1, 4), kernel="triangle").tolist() == [[0, 64, 191, 255]]  # 63.75, 191.25
    f = imresize(x, size=(1, 4), kernel="triangle", mode="float")
    torch.testing.assert_close(f, torch.tensor([[0, 63.75, 191.25, 255]]) / 255, rtol=0, atol=1e-7)
    # the same along the other dimension
    assert imresize(x.t().contiguous(), size=(4, 1), kernel="triangle").tolist() == [[0], [64], [191], [255]]


def test_hand_golden_cubic_shrink_by_two():
    # scale 1/2 with antialiasing: h(t) = cubic(t/2)/2, width 8, taps at t = +-0.5, +-1.5, +-2.5,
    # +-3.5 (the +-4.5 columns are zero everywhere and dropped). Normalised weights (exact dyadic):
    w = [-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875]
    assert sum(w) == 1.0
    p = 253
    row = torch.tensor([[0, 0, 0, p, p, p, p, p]], dtype=torch.uint8)
    # output x -> u = 2x - 1/2, taps 2x-4 .. 2x+3 (1-based, weights w[0..7]), clamped to [1, 8]
    exact = [
        (w[6] + w[7]) * p,  # x=1: taps -2..5, bright 4, 5 -> -11.86
        sum(w[4:]) * p,  # x=2: taps 0..7, bright 4..7 -> 0.5 * 253 = 126.5, a tie
        sum(w[2:]) * p,  # x=3: taps 2..9, bright 4..9 (9 -> 8) -> 264.86, above 255
        sum(w) * p,  # x=4: taps 4..11, all bright -> 253
    ]
    assert exact[1] == 126.5 and exact[3] == 253
    out = imresize(row, size=(1, 4))
    # rounded half away from zero (126.5 -> 127, where round-half-even gives 126), clipped to [0, 255]
    assert out.tolist() == [[0, 127, 255, 253]]
    # float mode: no rounding, no clipping; mirrored edges give the same taps here
    f = imresize(row, size=(1, 4), mode="float", edge="symmetric")
    torch.testing.assert_close(f, torch.tensor([exact], dtype=torch.float32) / 255, rtol=0, atol=1e-6)
    # column orientation, and the same numbers from the reference loop
    col = imresize(row.t().contiguous(), size=(4, 1))
    assert col.flatten().tolist() == [0, 127, 255, 253]
    assert _ref_imresize(row[None].numpy(), size=(1, 4)).flatten().tolist() == [0, 127, 255, 253]


def test_hand_golden_nearest_picks():
    # box kernel, no antialiasing (MATLAB 'nearest'): output x picks input floor(u + 1/2)
    x = torch.arange(12 * 12, dtype=torch.uint8).reshape(12, 12)
    assert torch.equal(imresize(x, 1 / 2, kernel="box"), x[1::2, 1::2])  # u = 2x - 1/2 -> 2x
    assert torch.equal(imresize(x, 1 / 3, kernel="box"), x[1::3, 1::3])  # u = 3x - 1 -> 3x - 1
    assert torch.equal(imresize(x, 1 / 4, kernel="box"), x[2::4, 2::4])  # u = 4x - 3/2 -> 4x - 1
    assert torch.equal(imresize(x, 1 / 4, kernel="nearest"), x[2::4, 2::4])
    # MATLAB 'box' (antialiasing on): the mean of each 2x2 block
    f = imresize(x.float() / 255, 1 / 2, kernel="box", antialias=True, mode="float")
    blocks = x.float().reshape(6, 2, 6, 2).mean(dim=(1, 3)) / 255
    torch.testing.assert_close(f, blocks, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Against the independent reference
# ----------------------------------------------------------------------------------------------

_SCALES = [1 / 2, 1 / 3, 1 / 4, 1 / 8, 1 / 16, 2, 3, 4, 8, 16]
_KERNELS = ["cubic", "triangle", "box", "lanczos3"]
_MODE_EDGE = [("matlab", "clamp"), ("matlab", "symmetric"), ("float", "symmetric"), ("float", "clamp")]


@pytest.mark.parametrize("mode,edge", _MODE_EDGE)
@pytest.mark.parametrize("kernel", _KERNELS)
@pytest.mark.parametrize("scale", _SCALES, ids=lambda s: f"x{s:g}" if s >= 1 else f"1_{round(1 / s)}")
def test_against_reference(scale, kernel, mode, edge):
    h, w = _input_shape(scale)
    seed = zlib.crc32(f"{scale}-{kernel}-{mode}-{edge}".encode())
    x = _random_u8(seed, (3, h, w))
    antialias = kernel != "box"  # the default of both implementations' callers
    ref = _ref_imresize(x.numpy(), scale, kernel=kernel, mode=mode, antialias=antialias, edge=edge)
    out = imresize(x, scale, kernel=kernel, mode=mode, edge=edge)
    assert tuple(out.shape) == ref.shape == (3, math.ceil(h * scale), math.ceil(w * scale))
    if mode == "matlab":
        assert out.dtype == torch.uint8
        diff = (out.numpy().astype(int) - ref.astype(int))
        assert not diff.any(), f"{np.count_nonzero(diff)} of {diff.size} pixels differ, max {np.abs(diff).max()}"
    else:
        assert out.dtype == torch.float32
        np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kernel", ["cubic", "lanczos2", "triangle"])
@pytest.mark.parametrize("size", [(9, 40), (40, 9), (17, 23), (6, 23), (17, 5)])
def test_size_path_against_reference(size, kernel):
    x = _random_u8(7, (2, 17, 23))
    for mode in ("matlab", "float"):
        ref = _ref_imresize(x.numpy(), size=size, kernel=kernel, mode=mode)
        out = imresize(x, size=size, kernel=kernel, mode=mode)
        assert tuple(out.shape[-2:]) == size
        if mode == "matlab":
            assert np.array_equal(out.numpy(), ref)
        else:
            np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-5)


def test_antialias_off_against_reference():
    x = _random_u8(11, (3, 29, 31))
    for kernel in ("cubic", "box", "lanczos3"):
        ref = _ref_imresize(x.numpy(), 1 / 3, kernel=kernel, antialias=False)
        assert np.array_equal(imresize(x, 1 / 3, kernel=kernel, antialias=False).numpy(), ref)
    ref = _ref_imresize(x.numpy(), 1 / 3, kernel="box", antialias=True)
    assert np.array_equal(imresize(x, 1 / 3, kernel="box", antialias=True).numpy(), ref)


def test_dimension_order_smaller_scale_first():
    # H shrinks (9/17) and W grows (40/23): H must go first; the other order gives other pixels
    x = _random_u8(3, (3, 17, 23))
    out = imresize(x, size=(9, 40)).numpy()
    h_first = _ref_imresize(x.numpy(), size=(9, 40), order=(0, 1))
    w_first = _ref_imresize(x.numpy(), size=(9, 40), order=(1, 0))
    assert np.array_equal(out, h_first)
    assert not np.array_equal(out, w_first)
    # and the mirror case: W shrinks, so W first
    out = imresize(x, size=(40, 9)).numpy()
    assert np.array_equal(out, _ref_imresize(x.numpy(), size=(40, 9), order=(1, 0)))
    assert not np.array_equal(out, _ref_imresize(x.numpy(), size=(40, 9), order=(0, 1)))
    # equal scales: rows first
    out = imresize(x, 1 / 3).numpy()
    assert np.array_equal(out, _ref_imresize(x.numpy(), 1 / 3, order=(0, 1)))


def test_float64_input_float_mode():
    x = _random_u8(5, (3, 21, 19))
    ref = _ref_imresize(x.numpy(), 1 / 3, mode="float")
    out = imresize(x.double() / 255, 1 / 3, mode="float")
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Shapes, dtypes, batching
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hw,scale,expected", [
    ((10, 11), 1 / 4, (3, 3)), ((10, 11), 1 / 3, (4, 4)), ((10, 11), 2.5, (25, 28)),
    ((7, 5), 4, (28, 20)), ((1, 1), 1 / 16, (1, 1)), ((255, 256), 1 / 4, (64, 64)),
])
def test_output_size_is_ceil(hw, scale, expected):
    x = _random_u8(0, (1, 3, *hw))
    assert tuple(imresize(x, scale).shape) == (1, 3, *expected)
    assert tuple(imresize(x, scale, mode="float").shape) == (1, 3, *expected)


def test_size_argument_and_per_dimension_scale():
    x = _random_u8(1, (2, 3, 20, 30))
    assert tuple(imresize(x, size=(5, 45)).shape) == (2, 3, 5, 45)
    # size equal to scale*in gives the same pixels as scale
    assert torch.equal(imresize(x, size=(10, 15)), imresize(x, 1 / 2))
    assert torch.equal(imresize(x, size=(20, 30)), x)  # identity for cubic


def test_rank_preserved_and_channels_independent():
    x = _random_u8(2, (2, 4, 13, 17))
    full = imresize(x, 1 / 2)
    assert full.shape == (2, 4, 7, 9)
    assert torch.equal(imresize(x[0], 1 / 2), full[0])
    assert torch.equal(imresize(x[0, 1], 1 / 2), full[0, 1])
    assert imresize(x[0, 1].float() / 255, 2, mode="float").shape == (26, 34)


def test_dtypes_and_float_grid():
    x = _random_u8(4, (2, 3, 23, 29))
    xf = x.float() / 255
    for scale in (1 / 3, 1 / 4, 3):
        out8 = imresize(x, scale)
        outf = imresize(xf, scale)
        assert out8.dtype == torch.uint8 and outf.dtype == torch.float32
        assert torch.equal(outf, out8.float() / 255)  # exactly on the k/255 grid
        assert torch.equal((outf * 255).round().to(torch.uint8), out8)
        assert imresize(x, scale, mode="float").dtype == torch.float32
        assert imresize(xf.double(), scale).dtype == torch.float64
    # float input is mapped to uint8 levels first (x*255 rounded half away from zero)
    nudged = (xf + 0.4 / 255).clamp(0, 1)
    assert torch.equal(imresize(nudged, 1 / 2), imresize(xf, 1 / 2))


@pytest.mark.parametrize("mode", ["matlab", "float"])
@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 2])
def test_batch_equals_loop(mode, scale):
    x = _random_u8(6, (4, 3, 31, 22))
    batch = imresize(x, scale, mode=mode)
    for i in range(len(x)):
        assert torch.equal(batch[i], imresize(x[i : i + 1], scale, mode=mode)[0])


def test_modcrop():
    x = torch.zeros(2, 3, 13, 10)
    assert modcrop(x, 4).shape == (2, 3, 12, 8)
    assert modcrop(x, 1).shape == x.shape
    assert modcrop(x[0, 0], 3).shape == (12, 9)
    y = torch.arange(5 * 7).reshape(5, 7)
    assert torch.equal(modcrop(y, 2), y[:4, :6])  # bottom/right removed
    for bad in (0, -2, 2.0, True, "4"):
        with pytest.raises(SrbenchError, match="modcrop scale"):
            modcrop(x, bad)
    with pytest.raises(SrbenchError):
        modcrop(torch.zeros(5), 2)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_errors():
    x = _random_u8(0, (1, 3, 8, 8))
    with pytest.raises(SrbenchError, match="exactly one of scale and size") as e:
        imresize(x)
    _one_line(e)
    with pytest.raises(SrbenchError, match="exactly one of scale and size"):
        imresize(x, 0.5, size=(4, 4))
    for bad in (0, -0.5, float("nan"), float("inf"), "2", True):
        with pytest.raises(SrbenchError, match="scale must be a positive") as e:
            imresize(x, bad)
        assert repr(bad) in _one_line(e)
    for bad in ((4,), (0, 4), (4.0, 4), "44", (4, -1)):
        with pytest.raises(SrbenchError, match="size must be") as e:
            imresize(x, size=bad)
        _one_line(e)
    with pytest.raises(UnknownNameError, match="'bicubik'.*did you mean 'bicubic'") as e:
        imresize(x, 0.5, kernel="bicubik")
    _one_line(e)
    with pytest.raises(SrbenchError, match="unknown mode 'matlb'.*did you mean 'matlab'"):
        imresize(x, 0.5, mode="matlb")
    with pytest.raises(SrbenchError, match="unknown edge 'mirror'"):
        imresize(x, 0.5, edge="mirror")
    with pytest.raises(SrbenchError, match=r"\(B, C, H, W\).*got \(8,\)"):
        imresize(torch.zeros(8, dtype=torch.uint8), 0.5)
    with pytest.raises(SrbenchError, match="got \\(1, 1, 3, 8, 8\\)"):
        imresize(x[None], 0.5)
    with pytest.raises(SrbenchError, match=r"\[0, 1\].*1\.5"):
        imresize(torch.tensor([[0.25, 1.5]]), 0.5)
    with pytest.raises(SrbenchError, match=r"\[0, 1\]"):
        imresize(torch.full((1, 3, 4, 4), float("nan")), 0.5)
    with pytest.raises(SrbenchError, match=r"\[0, 1\].*-0\.1"):
        imresize(torch.tensor([[-0.1, 0.5]]), 0.5, mode="float")
    with pytest.raises(SrbenchError, match="int32"):
        imresize(x.int(), 0.5)
    with pytest.raises(SrbenchError, match="ndarray"):
        imresize(x.numpy(), 0.5)
    with pytest.raises(SrbenchError, match="antialias"):
        imresize(x, 0.5, antialias="yes")
    with pytest.raises(SrbenchError, match="scale 1e-07 is too small") as e:
        imresize(x, 1e-7)
    _one_line(e)


def test_float_mode_is_differentiable_and_empty_batch_works():
    x = torch.rand(2, 3, 12, 10, requires_grad=True)
    y = imresize(x, 1 / 2, mode="float")
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert torch.equal(y.detach(), imresize(x.detach(), 1 / 2, mode="float"))
    assert imresize(torch.zeros(0, 3, 10, 10, dtype=torch.uint8), 1 / 2).shape == (0, 3, 5, 5)


# ----------------------------------------------------------------------------------------------
# Enlarging
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("s", [2, 3, 4, 8])
def test_box_integer_upscale_replicates_pixels(s):
    x = _random_u8(s, (2, 3, 7, 5))
    rep = x.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)
    assert torch.equal(imresize(x, s, kernel="box"), rep)
    assert torch.equal(imresize(x, s, kernel="nearest"), rep)
    assert torch.equal(imresize(x.float() / 255, s, kernel="box", mode="float"), rep.float() / 255)


def test_down_then_up_round_trip(shared_data: Path):
    hr = _load(shared_data / "set5" / "HR_mod4" / "img_001.png")
    for mode in ("matlab", "float"):
        x = hr.float()[None] / 255
        small = imresize(x, 1 / 4, mode=mode).clamp(0, 1)  # float mode overshoots [0, 1] slightly
        back = imresize(small, 4, mode=mode)
        assert back.shape == x.shape
        assert torch.isfinite(back).all()
        mse = float(((back.clamp(0, 1) - x) ** 2).mean())
        assert 10 * math.log10(1 / mse) > 20  # a blurry but faithful copy


# ----------------------------------------------------------------------------------------------
# Real data: the MATLAB-made benchmark LR files
# ----------------------------------------------------------------------------------------------

def _load(path: Path) -> torch.Tensor:
    """uint8 ``(C, H, W)`` for RGB files, ``(H, W)`` for grayscale ones (the mode is kept)."""
    img = Image.open(path)
    assert img.mode in ("RGB", "L"), f"{path}: unexpected mode {img.mode}"
    a = torch.from_numpy(np.array(img))
    return a.permute(2, 0, 1).contiguous() if a.ndim == 3 else a


_COMBOS = [("set5", 2), ("set5", 3), ("set5", 4), ("set14", 2), ("set14", 3), ("set14", 4), ("urban100", 4)]


@pytest.mark.parametrize("dataset,scale", _COMBOS, ids=[f"{d}-x{s}" for d, s in _COMBOS])
def test_matlab_lr_files_bit_exact(shared_data: Path, dataset: str, scale: int, record_property):
    hr_dir = shared_data / dataset / ("HR" if dataset == "urban100" else f"HR_mod{scale}")
    lr_dir = shared_data / dataset / "LR_bicubic_matlab" / f"X{scale}"
    files = sorted(hr_dir.glob("*.png"))
    assert files and len(files) == len(list(lr_dir.glob("*.png")))
    # variants: both rules (the default) and neither (MATLAB's double path); on the small sets also
    # only rule (a) (mirrored edges) and only rule (b) (no rounding), to show that both matter
    variants = {"matlab": {}, "float": {"mode": "float"}}
    if dataset != "urban100":  # Urban100 is 100 large images: keep the test quick
        variants.update({"a_only": {"edge": "symmetric"}, "b_only": {"mode": "float", "edge": "clamp"}})
    same = dict.fromkeys(variants, 0)
    maxdiff = dict.fromkeys(variants, 0)
    total = 0
    for f in files:
        hr, lr = _load(f), _load(lr_dir / f.name)  # paired by file name; grayscale stays grayscale
        assert hr.ndim == lr.ndim, f.name
        assert hr.shape[-2] % scale == 0 and hr.shape[-1] % scale == 0, f.name
        total += lr.numel()
        for name, kw in variants.items():
            out = imresize(hr, 1 / scale, **kw)
            if out.is_floating_point():  # float mode: to uint8 as a PNG writer would
                out = (out.clamp(0, 1) * 255).round().to(torch.uint8)
            assert out.shape == lr.shape, f"{f.name}: {tuple(out.shape)} vs {tuple(lr.shape)}"
            d = (out.int() - lr.int()).abs()
            same[name] += int((d == 0).sum())
            maxdiff[name] = max(maxdiff[name], int(d.max()))
    share = {k: v / total for k, v in same.items()}
    summary = ", ".join(f"{k} {share[k]:.4%} identical (max diff {maxdiff[k]})" for k in variants)
    msg = f"{dataset} x{scale}, {len(files)} images: {summary}"
    print(msg)
    for k in variants:
        record_property(f"identical_{k}", round(share[k], 6))
        record_property(f"maxdiff_{k}", maxdiff[k])
    assert same["matlab"] == total, msg
    assert share["float"] < 0.97, msg  # the contrast: a float port misses many pixels


# ----------------------------------------------------------------------------------------------
# Device
# ----------------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = _random_u8(9, (2, 3, 101, 77))
    for kw in ({}, {"mode": "float"}, {"kernel": "lanczos3"}):
        for scale in (1 / 4, 3):
            cpu = imresize(x, scale, **kw)
            gpu = imresize(x.cuda(), scale, **kw)
            assert gpu.device.type == "cuda"
            if cpu.dtype == torch.uint8:
                assert torch.equal(gpu.cpu(), cpu)
            else:
                torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-5)
