"""Tests of sr_methods: registry, interpolation baselines, the spandrel adapter, tiling, CRAFT x4.

Tiny random spandrel models are built here through spandrel's architecture classes; the real CRAFT
checkpoint and Set5 come from ../shared (skipped when absent). No test touches the network.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iqa.errors import MissingAssetError, SrbenchError, UnknownNameError
from sr_methods import (
    METHODS,
    SRMethod,
    UnsupportedScaleError,
    create_method,
    list_methods,
    method_info,
)
from sr_methods.spandrel_adapter import load_state_dict, pad_to
from sr_methods.tiling import tile_starts, tiled_upscale
from sr_methods.weights import resolve_weights

REPO = Path(__file__).resolve().parents[1]
CRAFT_SHA256 = "a3d57001df7e856be6b4e3553d77be3b038609f34db5d41b43c3e6c67756a381"


# ----------------------------------------------------------------------------------------- helpers

def load_png(path: Path) -> torch.Tensor:
    arr = np.array(Image.open(path).convert("RGB"))
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255.0


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int) -> torch.Tensor:
    """BasicSR PSNR on the BT.601 Y channel (0..255); ``iqa.fr.psnr`` when present."""
    try:
        from iqa.fr import psnr
    except ImportError:
        def y(x: torch.Tensor) -> torch.Tensor:
            x = x.double() * 255.0
            return (16.0 + (65.481 * x[:, 0] + 128.553 * x[:, 1] + 24.966 * x[:, 2]) / 255.0)

        c = crop_border
        a, b = y(sr)[:, c:-c, c:-c], y(hr)[:, c:-c, c:-c]
        mse = ((a - b) ** 2).mean(dim=(1, 2))
        return 10 * torch.log10(255.0 ** 2 / mse)
    return psnr(sr, hr, crop_border=crop_border, y_channel=True)


def on_grid(x: torch.Tensor) -> bool:
    return bool(((x * 255) - (x * 255).round()).abs().max() < 1e-4)


def tiny_compact(path: Path, scale: int = 2, channels: int = 3, wrap: bool = False, seed: int = 0) -> Path:
    """A tiny random SRVGGNetCompact checkpoint (spandrel's "Compact"), .pth or .safetensors."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    net = Compact(num_in_ch=channels, num_out_ch=channels, num_feat=8, num_conv=2, upscale=scale)
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(path))
    else:
        torch.save({"params": sd} if wrap else sd, path)
    return path


class _Evil:
    """A pickle payload: unpickling it runs ``touch MARKER``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


# ---------------------------------------------------------------------------------------- registry

def test_list_and_info_without_building():
    names = list_methods()
    assert {"nearest", "bilinear", "bicubic", "lanczos", "craft-x4"} <= set(names)
    assert names == sorted(names) and len(METHODS) == len(names)
    info = method_info("bicubic")
    assert info["kind"] == "interpolation" and info["scales"] is None and info["kernel"] == "cubic"
    assert info["options"] == ["mode"] and info["backbone"] is None
    craft = method_info("CRAFT-X4")  # case-insensitive
    assert craft["scales"] == (4,) and craft["architecture"] == "CRAFT" and craft["sha256"] == CRAFT_SHA256
    assert craft["licence"] == "MIT" and craft["file"] == "craft_x4.pth"
    assert {"weights", "tile", "tile_overlap", "half"} <= set(craft["options"])
    sp = method_info("spandrel:/models/4x_foo.pth")
    assert sp["name"] == "spandrel:4x_foo" and sp["scales"] is None


def test_unknown_name_did_you_mean():
    with pytest.raises(UnknownNameError, match=r"unknown method 'bicubc'; did you mean 'bicubic'"):
        create_method("bicubc")
    with pytest.raises(UnknownNameError, match="craft-x4"):
        method_info("craft-x2")
    with pytest.raises(SrbenchError, match="names no file"):
        create_method("spandrel:")


def test_unknown_options_raise():
    with pytest.raises(SrbenchError, match=r"unknown option 'foo' for method 'bicubic'.*accepted: mode"):
        create_method("bicubic", foo=1)
    with pytest.raises(SrbenchError, match=r"did you mean 'mode'"):
        create_method("nearest", mdoe="float")
    with pytest.raises(SrbenchError, match=r"unknown option 'tiles'.*did you mean 'tile'"):
        create_method("craft-x4", tiles=64)  # rejected before any file is looked for
    with pytest.raises(SrbenchError, match=r"unknown option 'weights' for method 'spandrel:/nonexistent/x.pth'"):
        create_method("spandrel:/nonexistent/x.pth", weights="y")
    with pytest.raises(SrbenchError, match=r"mode .* got 'double'"):
        create_method("bicubic", mode="double")


def test_supports_and_unsupported_scale_messages(tmp_path):
    bic = create_method("bicubic")
    assert isinstance(bic, SRMethod) and bic.scales is None and bic.backbone is None
    assert bic.supports(1) and bic.supports(16) and not bic.supports(0) and not bic.supports(2.0)
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(UnsupportedScaleError, match=r"method 'bicubic' does not support scale 0 \(supported scales: any integer >= 1\)"):
        bic.upscale(x, 0)
    with pytest.raises(SrbenchError, match="scale must be an int, got 2.0"):
        bic.upscale(x, 2.0)

    net = create_method(f"spandrel:{tiny_compact(tmp_path / 'tiny_x2.pth', scale=2)}")
    assert net.name == "spandrel:tiny_x2" and net.scales == (2,)
    assert net.supports(2) and not net.supports(4)
    with pytest.raises(UnsupportedScaleError) as err:
        net.upscale(x, 4)
    msg = str(err.value)
    assert msg == "method 'spandrel:tiny_x2' does not support scale 4 (supported scales: 2)"
    assert "\n" not in msg and isinstance(err.value, SrbenchError)


def test_input_checks():
    m = create_method("bilinear")
    with pytest.raises(SrbenchError, match=r"lr must have shape \(B, 3, H, W\), got \(3, 8, 8\)"):
        m.upscale(torch.rand(3, 8, 8), 2)
    with pytest.raises(SrbenchError, match=r"lr must lie in \[0, 1\]"):
        m.upscale(torch.rand(1, 3, 8, 8) * 2, 2)
    with pytest.raises(SrbenchError, match="must be a float tensor"):
        m.upscale(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 2)


def test_provenance_dicts(tmp_path):
    p = create_method("bicubic", mode="float").provenance()
    assert p == {"name": "bicubic", "scales": None, "backbone": None, "kind": "interpolation", "kernel": "cubic",
                 "mode": "float", "implementation": "iqa.resize.imresize"}
    path = tiny_compact(tmp_path / "net.pth", scale=3)
    m = create_method(f"spandrel:{path}", tile=16)
    p = m.provenance()
    assert p["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert p["weights"] == str(path.resolve()) and p["architecture"] == "RealESRGAN Compact"
    assert p["params"] == sum(t.numel() for t in torch.load(path, weights_only=True).values())
    assert p["scales"] == [3] and p["dtype"] == "float32" and p["tile"] == 16 and p["tile_overlap"] == 8
    import json

    json.dumps(p)  # goes into the run manifest as it is


# ----------------------------------------------------------------------------------- interpolation

@pytest.mark.parametrize("name", ["nearest", "bilinear", "bicubic", "lanczos"])
@pytest.mark.parametrize("mode", ["matlab", "float"])
def test_interpolation_shapes(name, mode):
    m = create_method(name, mode=mode)
    x = torch.rand(2, 3, 7, 5)
    for s in (2, 3, 4, 8, 16):
        y = m.upscale(x, s)
        assert y.shape == (2, 3, 7 * s, 5 * s) and y.dtype == torch.float32
        assert 0 <= float(y.min()) and float(y.max()) <= 1
    if mode == "matlab":
        assert on_grid(y)


def test_bicubic_matlab_on_uint8_grid(shared_data):
    lr = load_png(shared_data / "set5/LR_bicubic_matlab/X4/img_002.png")
    hr = load_png(shared_data / "set5/HR_mod4/img_002.png")
    sr = create_method("bicubic").upscale(lr, 4)
    assert sr.shape == hr.shape and on_grid(sr)
    sr_float = create_method("bicubic", mode="float").upscale(lr, 4)
    assert not on_grid(sr_float)
    # rounding/clipping after each pass and the edge rule (clamp vs mirror) separate the two paths;
    # near saturated edges by a few levels, on average by a fraction of one
    assert float((sr - sr_float).abs().mean()) < 0.5 / 255
    # a sanity figure: bicubic x4 on Set5 'bird' is far below any learned SR method
    assert 25 < float(psnr_y(sr, hr, 4)[0]) < 40


def test_nearest_replicates_pixels():
    g = torch.randint(0, 256, (2, 3, 5, 7)).float() / 255  # on the uint8 grid
    x = torch.rand(1, 3, 6, 4)
    for s in (2, 3, 4):
        want_g = g.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
        assert torch.equal(create_method("nearest").upscale(g, s), want_g)
        want_x = x.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
        assert torch.equal(create_method("nearest", mode="float").upscale(x, s), want_x)


def test_import_is_cheap():
    code = (
        "import sys, torch\n"
        "import sr_methods\n"
        "assert 'spandrel' not in sys.modules, 'import sr_methods imported spandrel'\n"
        "sr_methods.list_methods(); sr_methods.method_info('craft-x4')\n"
        "sr_methods.create_method('bicubic').upscale(torch.rand(1, 3, 4, 4), 2)\n"
        "bad = [m for m in ('spandrel', 'bench') if m in sys.modules or any(k.startswith(m + '.') for k in sys.modules)]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, r.stderr


def test_sr_methods_never_imports_bench():
    for f in (REPO / "sr_methods").glob("*.py"):
        text = f.read_text()
        assert "import bench" not in text and "from bench" not in text, f


# ---------------------------------------------------------------------------------------- spandrel

@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_spandrel_tiny_model_pth_and_safetensors(tmp_path, suffix):
    path = tiny_compact(tmp_path / f"tiny{suffix}", scale=2)
    m = create_method(f"spandrel:{path}", device="cpu")
    x = torch.rand(2, 3, 9, 11)
    y = m.upscale(x, 2)
    assert y.shape == (2, 3, 18, 22) and y.dtype == torch.float32
    assert 0 <= float(y.min()) and float(y.max()) <= 1 and not y.is_inference()
    # the adapter gives what spandrel's own descriptor gives
    with torch.inference_mode():
        want = m.descriptor(x)
    assert torch.allclose(y, want, atol=1e-6)


def test_spandrel_same_weights_same_output(tmp_path):
    a = create_method(f"spandrel:{tiny_compact(tmp_path / 'a.pth', wrap=True)}")  # {"params": ...} is unwrapped
    b = create_method(f"spandrel:{tiny_compact(tmp_path / 'b.safetensors')}")
    x = torch.rand(1, 3, 6, 6)
    assert torch.equal(a.upscale(x, 2), b.upscale(x, 2))


def test_spandrel_gray_model_gets_luma_and_returns_rgb(tmp_path):
    m = create_method(f"spandrel:{tiny_compact(tmp_path / 'gray.pth', scale=3, channels=1)}")
    y = m.upscale(torch.rand(1, 3, 5, 6), 3)
    assert y.shape == (1, 3, 15, 18)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])


def test_spandrel_size_requirements_pad_and_crop(tmp_path):
    from spandrel.architectures.SAFMN import SAFMN

    torch.manual_seed(0)
    torch.save(SAFMN(dim=8, n_blocks=1, ffn_scale=2.0, upscaling_factor=2).state_dict(), tmp_path / "safmn.pth")
    m = create_method(f"spandrel:{tmp_path / 'safmn.pth'}")
    assert m.descriptor.size_requirements.multiple_of == 8
    seen = []
    m.descriptor.model.register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape)))
    y = m.upscale(torch.rand(1, 3, 13, 21), 2)
    assert y.shape == (1, 3, 26, 42) and seen == [(1, 3, 16, 24)]


def test_pad_to_mirrors_symmetrically():
    x = torch.arange(3.0).view(1, 1, 1, 3)
    assert pad_to(x, 1, 8).flatten().tolist() == [0, 1, 2, 2, 1, 0, 0, 1]
    x = torch.arange(4.0).view(1, 1, 4, 1)
    assert pad_to(x, 6, 1).flatten().tolist() == [0, 1, 2, 3, 3, 2]
    assert pad_to(torch.ones(1, 1, 1, 1), 3, 2).shape == (1, 1, 3, 2)


def test_malicious_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"params": {"body.0.weight": torch.zeros(1)}, "payload": _Evil(marker)}, path)
    with pytest.raises(SrbenchError) as err:
        create_method(f"spandrel:{path}")
    msg = str(err.value)
    assert "refused" in msg and str(path) in msg and "system" in msg and "\n" not in msg
    with pytest.raises(SrbenchError, match="refused"):
        load_state_dict(path)
    assert not marker.exists(), "loading the checkpoint ran its payload"
    # the payload is real: an unrestricted load would have run it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_spandrel_bad_files(tmp_path):
    with pytest.raises(MissingAssetError, match="weights file not found: .*nope.pth"):
        create_method(f"spandrel:{tmp_path / 'nope.pth'}")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(SrbenchError, match=r"unsupported weights file type '\.onnx'"):
        create_method(f"spandrel:{tmp_path / 'model.onnx'}")
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "unknown.pth")
    with pytest.raises(SrbenchError, match="spandrel does not recognise the architecture of .*unknown.pth"):
        create_method(f"spandrel:{tmp_path / 'unknown.pth'}")
    (tmp_path / "broken.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(SrbenchError, match="cannot load .*broken.safetensors as safetensors"):
        create_method(f"spandrel:{tmp_path / 'broken.safetensors'}")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(SrbenchError, match="expected a state dict, found a list"):
        create_method(f"spandrel:{tmp_path / 'list.pth'}")


def test_spandrel_half_needs_cuda(tmp_path):
    m = create_method(f"spandrel:{tiny_compact(tmp_path / 't.pth')}", half=True)
    with pytest.raises(SrbenchError, match="half=True needs a CUDA device"):
        m.upscale(torch.rand(1, 3, 4, 4), 2)
    with pytest.raises(SrbenchError, match="half must be True or False"):
        create_method(f"spandrel:{tmp_path / 't.pth'}", half=1)


# ------------------------------------------------------------------------------ named-entry weights

@pytest.fixture
def empty_weight_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "w").mkdir()
    return tmp_path


def test_named_entry_missing_weights(empty_weight_dirs):
    t = empty_weight_dirs
    with pytest.raises(MissingAssetError) as err:
        create_method("craft-x4")
    msg = str(err.value)
    assert "craft_x4.pth" in msg and str(t / "w") in msg and str(t / "cache" / "weights") in msg
    assert str(t / "cache" / "assets") in msg and "srbench assets fetch craft-x4" in msg
    assert "weights=" in msg and "SRBENCH_WEIGHTS" in msg and "\n" not in msg
    with pytest.raises(MissingAssetError, match="not found: .*elsewhere.pth"):
        create_method("craft-x4", weights=t / "elsewhere.pth")


def test_named_entry_bad_sha256(empty_weight_dirs):
    t = empty_weight_dirs
    wrong = tiny_compact(t / "w" / "craft_x4.pth", scale=4)
    actual = hashlib.sha256(wrong.read_bytes()).hexdigest()
    with pytest.raises(SrbenchError) as err:
        create_method("craft-x4")  # found in $SRBENCH_WEIGHTS
    msg = str(err.value)
    assert msg.startswith("sha256 mismatch") and CRAFT_SHA256 in msg and actual in msg and "\n" not in msg
    with pytest.raises(SrbenchError, match=f"expected {CRAFT_SHA256}, got {actual}"):
        create_method("craft-x4", weights=wrong)


def test_resolve_weights_search_order_and_download(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SRBENCH_WEIGHTS", raising=False)
    src = tiny_compact(tmp_path / "src.pth")
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):  # stands in for the network
        calls.append((url, dst))
        Path(dst).write_bytes(src.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path, got = resolve_weights("m.pth", sha, url="https://example.invalid/m.pth")
    assert path == tmp_path / "cache" / "weights" / "m.pth" and got == sha and path.read_bytes() == src.read_bytes()
    assert Path(calls[0][1]).parent == path.parent and Path(calls[0][1]).name != "m.pth"  # temp file, then rename
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.pth"]
    resolve_weights("m.pth", sha, url="https://example.invalid/m.pth")  # cached: no second download
    assert len(calls) == 1
    # $SRBENCH_WEIGHTS comes before the cache; a folder given as weights= is searched for the file
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "m.pth").write_bytes(src.read_bytes())
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    assert resolve_weights("m.pth", sha)[0] == tmp_path / "w" / "m.pth"
    assert resolve_weights("m.pth", sha, weights=tmp_path / "w")[0] == tmp_path / "w" / "m.pth"
    # a download with the wrong content is rejected and leaves nothing behind
    with pytest.raises(SrbenchError, match="sha256 mismatch"):
        resolve_weights("n.pth", "0" * 64, url="https://example.invalid/n.pth")
    assert not any(p.name.startswith((".n.pth", "n.pth")) for p in path.parent.iterdir())


# ------------------------------------------------------------------------------------------ tiling

def test_tile_starts_cover_and_align():
    for length in (1, 16, 17, 47, 48, 49, 100, 131):
        for tile, overlap, align in ((16, 4, 1), (48, 16, 16), (32, 8, 8), (20, 19, 1)):
            starts = tile_starts(length, tile, overlap, align)
            assert starts[0] == 0 and min(starts[-1] + tile, length) == length
            assert all(s % align == 0 for s in starts)
            assert all(min(a + tile, length) - b >= overlap for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize("blend", ["crop", "feather"])
def test_tiling_is_exact_for_local_ops(blend):
    torch.manual_seed(1)
    x = torch.rand(2, 3, 37, 53)

    def nearest(t: torch.Tensor) -> torch.Tensor:
        return t.repeat_interleave(3, dim=2).repeat_interleave(3, dim=3)

    for tile, overlap in ((8, 2), (16, 4), (13, 0), (64, 16)):
        out = tiled_upscale(nearest, x, 3, tile, overlap, blend=blend)
        if blend == "crop":
            assert torch.equal(out, nearest(x))
        else:  # weights that sum to one, up to float rounding
            assert torch.allclose(out, nearest(x), atol=1e-6, rtol=0)
    # bicubic has a 2-pixel support: with overlap/2 >= 2 the crop stitching is bit-exact
    from iqa.resize import imresize

    def bicubic(t: torch.Tensor) -> torch.Tensor:
        return imresize(t, 2, kernel="cubic", mode="matlab")

    if blend == "crop":
        assert torch.equal(tiled_upscale(bicubic, x, 2, 16, 8, blend=blend), bicubic(x))


def test_tiling_checks():
    def f(t: torch.Tensor) -> torch.Tensor:
        return t

    with pytest.raises(SrbenchError, match="overlap .* must be smaller than the tile"):
        tiled_upscale(f, torch.rand(1, 3, 8, 8), 1, 8, 8)
    with pytest.raises(SrbenchError, match="blend must be one of"):
        tiled_upscale(f, torch.rand(1, 3, 8, 8), 1, 8, 2, blend="avg")
    with pytest.raises(SrbenchError, match="tile function returned"):
        tiled_upscale(f, torch.rand(1, 3, 8, 8), 2, 4, 1)


def test_spandrel_tiled_matches_untiled_for_small_cnn(tmp_path):
    # 4 stacked 3x3 convolutions see 4 LR pixels around each pixel; overlap 16 keeps 8 of context
    m = create_method(f"spandrel:{tiny_compact(tmp_path / 't.pth', scale=2)}")
    mt = create_method(f"spandrel:{tmp_path / 't.pth'}", tile=24, tile_overlap=16)
    x = torch.rand(1, 3, 50, 70)
    assert torch.allclose(mt.upscale(x, 2), m.upscale(x, 2), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------- real CRAFT x4

@pytest.fixture(scope="module")
def craft_set5(craft_weights, shared_data):
    """CRAFT x4 (named entry, weights= path) on Set5: [(name, lr, hr, sr)], computed once."""
    m = create_method("craft-x4", weights=craft_weights)
    out = []
    for lr_path in sorted((shared_data / "set5/LR_bicubic_matlab/X4").glob("*.png")):
        lr, hr = load_png(lr_path), load_png(shared_data / "set5/HR_mod4" / lr_path.name)
        out.append((lr_path.name, lr, hr, m.upscale(lr, 4)))
    return m, out


@pytest.mark.slow
def test_craft_x4_set5_psnr(craft_set5):
    m, results = craft_set5
    p = m.provenance()
    assert m.name == "craft-x4" and m.scales == (4,)
    assert p["sha256"] == CRAFT_SHA256 and p["architecture"] == "CRAFT" and p["licence"] == "MIT"
    assert 740_000 < p["params"] < 760_000
    scores = []
    for name, lr, hr, sr in results:
        assert sr.shape == hr.shape and sr.dtype == torch.float32
        sr8 = (sr * 255).round() / 255  # the saved-PNG convention
        scores.append(float(psnr_y(sr8, hr, 4)[0]))
    mean = sum(scores) / len(scores)
    print(f"\nCRAFT x4 Set5 PSNR-Y (crop 4, uint8): {mean:.3f} dB; per image "
          + ", ".join(f"{n} {s:.2f}" for (n, *_), s in zip(results, scores)))
    assert 32.3 < mean < 32.6, mean  # published: 32.52 dB


@pytest.mark.slow
def test_craft_spandrel_path_equals_named_entry(craft_weights, craft_set5):
    m = create_method(f"spandrel:{craft_weights}")
    assert m.name == "spandrel:craft_x4" and m.scales == (4,)
    assert m.provenance()["sha256"] == CRAFT_SHA256
    _, results = craft_set5
    _, lr, _, sr = results[2]  # img_003, 64 x 64: the quickest
    assert torch.equal(m.upscale(lr, 4), sr)


@pytest.mark.slow
def test_craft_tiled_close_to_untiled(craft_weights, craft_set5):
    """Tiles of 48 LR pixels with 16 of overlap on a 64 x 64 real image, against untiled output.

    CRAFT mixes information across the whole image (channel attention), so tiling cannot be exact;
    the bound is PSNR(tiled, untiled) > 45 dB on RGB and a mean absolute difference < 1/255
    (measured: about 59 dB and 0.1/255, max difference a few levels).
    """
    from iqa.fr import psnr

    _, results = craft_set5
    name, lr, _, sr = results[2]
    for blend in ("crop", "feather"):
        mt = create_method("craft-x4", weights=craft_weights, tile=48, tile_overlap=16, tile_blend=blend)
        out = mt.upscale(lr, 4)
        diff = (out - sr).abs()
        p = float(psnr(out, sr, y_channel=False)[0])
        print(f"\nCRAFT tiled ({blend}, tile 48, overlap 16) vs untiled on {name}: max |d| "
              f"{float(diff.max()) * 255:.2f}/255, mean |d| {float(diff.mean()) * 255:.4f}/255, PSNR {p:.2f} dB")
        assert p > 45 and float(diff.mean()) < 1 / 255


# --------------------------------------------------------------------------------------------- GPU

@pytest.mark.gpu
def test_gpu_half_and_device_roundtrip(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    path = tiny_compact(tmp_path / "t.pth", scale=2)
    x = torch.rand(1, 3, 20, 24)
    cpu = create_method(f"spandrel:{path}").upscale(x, 2)
    gpu = create_method(f"spandrel:{path}", device="cuda")
    y = gpu.upscale(x, 2)  # CPU input, CUDA model: output comes back on the input's device
    assert y.device.type == "cpu" and torch.allclose(y, cpu, atol=1e-4)
    half = create_method(f"spandrel:{path}", device="cuda", half=True, tile=8, tile_overlap=4)
    assert half.provenance()["dtype"] == "float16"
    yh = half.upscale(x.cuda(), 2)
    assert yh.device.type == "cuda" and yh.dtype == torch.float32
    # against the same tiles in float32 on the CPU: 8-pixel tiles with a 4-pixel overlap are
    # narrower than the network's receptive field, so tiled and whole-image outputs differ
    # (0.024 at most, measured on an H100, in float32 as in float16); float16 adds < 1e-3
    tiled = create_method(f"spandrel:{path}", tile=8, tile_overlap=4).upscale(x, 2)
    assert torch.allclose(yh.cpu(), tiled, atol=2e-3)
    bic_gpu = create_method("bicubic", device="cuda").upscale(x.cuda(), 4).cpu()
    assert float((bic_gpu - create_method("bicubic").upscale(x, 4)).abs().max()) <= 1 / 255 + 1e-6


def test_family_method_serves_each_scale_with_its_member():
    import torch

    import sr_methods
    from sr_methods.family import FamilyMethod

    fam = FamilyMethod("fam", {4: sr_methods.create_method("nearest"), 2: sr_methods.create_method("bicubic")})
    assert fam.scales == (2, 4)
    lr = torch.rand(1, 3, 12, 10)
    assert torch.equal(fam.upscale(lr, 2), sr_methods.create_method("bicubic").upscale(lr, 2))
    assert torch.equal(fam.upscale(lr, 4), sr_methods.create_method("nearest").upscale(lr, 4))
    with pytest.raises(sr_methods.UnsupportedScaleError, match="supported scales: 2, 4"):
        fam.upscale(lr, 3)
    assert set(fam.provenance()["members"]) == {"x2", "x4"}


def test_family_without_weights_names_every_missing_file():
    import sr_methods
    from iqa.errors import MissingAssetError

    with pytest.raises(MissingAssetError) as e:
        sr_methods.create_method("esrgan-thick")
    msg = str(e.value)
    assert "srbench assets fetch esrgan-thick-x2 esrgan-thick-x3 esrgan-thick-x4 esrgan-thick-x8" in msg
    assert "\n" not in msg


def test_options_in_a_method_name():
    from sr_methods import _merge_options, split_options

    assert split_options("ioda[base=craft-x4, crop=48, lr=1e-5, x=true]") == (
        "ioda", {"base": "craft-x4", "crop": 48, "lr": 1e-5, "x": True})
    assert split_options("bicubic") == ("bicubic", {}) and split_options("spandrel:a[1].pth") == ("spandrel:a[1].pth", {})
    for bad, msg in (("ioda[base]", "key=value pairs"), ("ioda[a=1,a=2]", "given twice")):
        with pytest.raises(SrbenchError, match=msg):
            split_options(bad)
    with pytest.raises(SrbenchError, match="both in the name and as an option"):
        _merge_options("ioda[crop=4]", {"crop": 8})
    with pytest.raises(SrbenchError, match="unknown option 'nope' for method 'bicubic'"):
        create_method("bicubic[nope=1]")
