"""Image reading and writing with the documented conversions.

Every image becomes a float32 RGB tensor ``(3, H, W)`` in ``[0, 1]`` on the uint8 grid. Inputs
that are not plain 8-bit RGB are converted, never rejected, by these rules:

- grayscale (L, 1) and palette (P) images: converted to RGB (the gray value in all channels);
- RGBA / LA: the alpha channel is dropped (benchmark images have no meaningful transparency);
- CMYK and YCbCr JPEGs: converted to RGB by Pillow's colour conversion;
- 16-bit PNG/TIFF (gray or RGB): reduced to 8 bits by rounding ``v / 257``;
- EXIF orientation: applied (the image is rotated/flipped upright, as viewers show it).

A file that cannot be decoded (missing, truncated, corrupt, not an image) raises
`ImageReadError` with one line naming the file and the problem.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from iqa.errors import SrbenchError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageReadError(SrbenchError):
    """One image could not be read; the message names the file."""


def _png_header(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) of a PNG file's IHDR chunk; (8, 2) when it cannot be read."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24], head[25]
    return 8, 2


def _read_16bit(path: Path) -> np.ndarray:
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(f"{path}: cannot decode 16-bit image")
    if arr.ndim == 3:
        arr = arr[..., :3][..., ::-1] if arr.shape[2] >= 3 else arr[..., :1].repeat(3, axis=2)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.dtype == np.uint16:
        arr = np.floor(arr.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(arr.astype(np.uint8))


def read_uint8(path: str | Path) -> np.ndarray:
    """Read an image file as an ``(H, W, 3)`` uint8 RGB array (conversions in the module doc)."""
    return read_uint8_gray(path)[0]


def read_uint8_gray(path: str | Path) -> tuple[np.ndarray, bool]:
    """Like `read_uint8`, and whether the file holds a single-channel (grayscale) image.

    Luminance protocols score single-channel files on their gray level, as MATLAB's evaluation
    applies ``rgb2ycbcr`` only to 3-channel images (Set14 has one such file)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    try:
        suffix = path.suffix.lower()
        if suffix == ".png" and _png_header(path)[0] == 16:
            return _read_16bit(path), _png_header(path)[1] in (0, 4)  # colour types 0, 4: gray (+ alpha)
        if suffix in (".tif", ".tiff"):
            with Image.open(path) as im:
                if im.mode.startswith("I;16") or im.mode in ("RGB;16", "RGBA;16"):
                    return _read_16bit(path), im.mode.startswith("I;16")
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode.startswith("I;16") or im.mode == "I":
                arr = np.asarray(im, dtype=np.float64)
                arr = np.floor(arr / 257.0 + 0.5).clip(0, 255).astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=2), True
            if im.mode == "F":
                raise ImageReadError(f"{path}: floating-point images are not supported")
            if im.mode in ("RGBA", "LA", "PA"):  # drop alpha, keep the colour values as they are
                return np.asarray(im.convert("RGBA"), dtype=np.uint8)[..., :3].copy(), im.mode == "LA"
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy(), im.mode in ("L", "1")
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageReadError(f"{path}: cannot read image ({msg})") from None


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float().div_(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint8 (rounded, clipped)."""
    return (x.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file as a float32 ``(3, H, W)`` tensor in [0, 1]."""
    return to_tensor(read_uint8(path))


def read_image_gray(path: str | Path) -> tuple[torch.Tensor, bool]:
    """`read_image`, and whether the file is single-channel (see `read_uint8_gray`)."""
    arr, gray = read_uint8_gray(path)
    return to_tensor(arr), gray


def write_png(x: torch.Tensor | np.ndarray, path: str | Path) -> None:
    """Write an RGB image as PNG atomically (temporary file in the same folder, then rename)."""
    from PIL import Image

    arr = x if isinstance(x, np.ndarray) else to_uint8(x)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(arr).save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def build_dir(target: str | Path, prefix: str) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; when the block ends normally it replaces
    ``target`` (an existing one is removed first), otherwise it is deleted, so an interrupted
    build never leaves a half-written ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{prefix}-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
