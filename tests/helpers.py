"""Small helpers shared by tests (image files with known faults, tiny datasets)."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image


def photo(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A crop of a real photograph shipped with scikit-image (astronaut), deterministic."""
    import skimage.data

    img = skimage.data.astronaut()
    rng = np.random.default_rng(seed)
    y, x = rng.integers(0, img.shape[0] - h), rng.integers(0, img.shape[1] - w)
    return np.ascontiguousarray(img[y:y + h, x:x + w])


def write_manifest(folder: Path, name: str, body: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""\
        name = "{name}"
        title = "{name} (test)"
        licence = "test"
        homepage = "https://example.invalid/{name}"
        """) + textwrap.dedent(body))
    return path


def paired_manifest(tmp_path: Path, monkeypatch, name: str, scales: list[int], folder_scale: int,
                    extra: str = "", data: str = "data") -> Path:
    """A RealSR-layout paired dataset ``name`` (``Test/{scale}/<id>_HR.png`` with
    ``<id>_LR{scale}.png``): its manifest under ``tmp_path/manifests`` (made current with
    ``SRBENCH_MANIFESTS``) and the empty folder ``tmp_path/data/name/Test/folder_scale``, returned."""
    man = tmp_path / "manifests"
    write_manifest(man, name, f"""
        kind = "paired"
        scales = {scales}
        {extra}
        [layout]
        hr = "Test/{{scale}}/*_HR.png"
        lr = "Test/{{scale}}/{{id}}_LR{{scale}}.png"
        id_regex = "(?P<id>.+)_HR"
        """)
    monkeypatch.setenv("SRBENCH_MANIFESTS", str(man))
    folder = tmp_path / data / name / "Test" / str(folder_scale)
    folder.mkdir(parents=True)
    return folder


def faulty_images(folder: Path) -> dict[str, Path]:
    """One file per kind of fault the runner must survive; returns name -> path."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rgb = photo(64, 80, 1)
    files = {}

    def save(name: str, im: Image.Image, **kw) -> None:
        files[name] = folder / name
        im.save(files[name], **kw)

    save("good.png", Image.fromarray(rgb))
    save("gray.png", Image.fromarray(rgb[..., 1]))
    save("rgba.png", Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])))
    save("palette.png", Image.fromarray(rgb).convert("P"))
    save("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    save("exif.jpg", Image.fromarray(rgb), quality=95, exif=exif)
    files["deep16.png"] = folder / "deep16.png"
    cv2.imwrite(str(files["deep16.png"]), (rgb[..., ::-1].astype(np.uint16) * 257))
    save("tiny.png", Image.fromarray(rgb[:3, :3]))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    files["truncated.png"] = folder / "truncated.png"
    files["truncated.png"].write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    files["garbage.png"] = folder / "garbage.png"
    files["garbage.png"].write_bytes(b"this is not an image at all")
    return files


def tiny_spandrel_checkpoint(path: Path, scale: int = 4, seed: int = 0) -> Path:
    """A tiny random SRVGGNetCompact ("Compact") checkpoint that spandrel recognises."""
    import torch
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    torch.save(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale).state_dict(), path)
    return path


def calibra_dir() -> Path:
    """pyiqa's installed ResultsCalibra folder (TID2013 ref_dir/dist_dir pairs); skips without it."""
    import importlib.util

    import pytest

    spec = importlib.util.find_spec("pyiqa")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pyiqa is not installed (its ResultsCalibra images are the test pairs)")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    for d in (pkg / "ResultsCalibra", pkg.parent / "ResultsCalibra"):
        if (d / "ref_dir").is_dir():
            return d
    pytest.skip("pyiqa's ResultsCalibra images were not found")


TINY_CLIP = {"embed_dim": 32,
             "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
             "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


def tiny_clip(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """A tiny random open_clip model: (config JSON ``srbench-tiny-clip.json``, its weights as safetensors)."""
    import json

    import open_clip
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "srbench-tiny-clip.json"
    config.write_text(json.dumps({**TINY_CLIP}))
    open_clip.add_model_config(config)
    torch.manual_seed(seed)
    model = open_clip.create_model("srbench-tiny-clip", pretrained=None, load_weights=False)
    weights = folder / "srbench-tiny-clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return config, weights


def random_vgg16(path: Path, seed: int = 0) -> Path:
    """A random VGG16 ``features`` state dict (float16 safetensors, torchvision's keys)."""
    import torch
    from safetensors.torch import save_file

    from iqa.weights import vgg16_features

    torch.manual_seed(seed)
    save_file({k: v.half().contiguous() for k, v in vgg16_features().state_dict().items()}, str(path))
    return path


def tiny_rrdn(path: Path, scale: int = 4, seed: int = 0) -> Path:
    """A tiny random RRDN in the converted format (safetensors + config metadata)."""
    import json

    import torch

    from iqa.assets import write_safetensors
    from sr_methods.rrdn import RRDN, RRDNConfig

    torch.manual_seed(seed)
    cfg = RRDNConfig(C=1, D=1, G=4, G0=4, T=1, scale=scale)
    write_safetensors(RRDN(cfg).state_dict(), {"config": json.dumps(cfg.to_dict())}, path)
    return path


def tiny_train_root(root: Path, t91_size: int, kodak_size: int) -> Path:
    """A data root with 3 training photos in train/t91 and 2 validation photos in train/kodak24
    (``size x size+16`` crops of a real photograph)."""
    for folder, n, size in (("train/t91", 3, t91_size), ("train/kodak24", 2, kodak_size)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(photo(size, size + 16, seed=10 * i + len(folder))).save(root / folder / f"im{i}.png")
    return root


def whole_and_resumed(monkeypatch, recipe: type, train, folder: Path) -> tuple[Path, Path]:
    """``(uninterrupted, resumed)`` checkpoints: ``train(name)`` trains into ``folder/name`` and
    returns its checkpoint; the second run dies at step 3 (its ``state.pt`` then holds step 2, the
    configs save every 2 steps) and is run again to the end."""
    import torch

    whole = train("whole")
    run_killed_at(monkeypatch, recipe, 3, lambda: train("killed"))
    assert torch.load(folder / "killed" / "state.pt", weights_only=True)["step"] == 2
    return whole, train("killed")


def run_killed_at(monkeypatch, recipe: type, step: int, run) -> None:
    """``run()`` a training whose recipe dies (KeyboardInterrupt) when it reaches ``step``, as a
    kill would: what was saved before stays, nothing after."""
    import pytest

    real = recipe.step

    def dies(self, lr, hr, k, g, autocast):
        if k == step:
            raise KeyboardInterrupt
        return real(self, lr, hr, k, g, autocast)

    with monkeypatch.context() as m:
        m.setattr(recipe, "step", dies)
        with pytest.raises(KeyboardInterrupt):
            run()
