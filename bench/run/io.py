"""Image reading and writing with the documented conversions.

Every image becomes a float32 RGB tensor ``(3, H, W)`` in ``[0, 1]`` on the uint8 grid. Inputs
that are not plain 8-bit RGB are converted, never rejected, by these rules:

- grayscale (L, 1) and palette (P) images: converted to RGB (the gray value in all channels);
- RGBA / LA: the alpha channel is dropped (benchmark images have no meaningful transparency);
- CMYK and YCbCr JPEGs: converted to RGB by Pillow's colour conversion;
- 16-bit PNG/TIFF (gray or RGB): reduced to 8 bits by rounding ``v / 257``;
- EXIF orientation: applied (the image is rotated/flipped upright, as viewers show it).

A file that cannot be decoded (missing, truncated, corrupt, not an image) raises
`ImageReadError` with one line naming the file and the problem, and so does an image above the
pixel limit (`MAX_PIXELS`, 64 megapixels: eight times a 4K frame, four times the largest
benchmark image; a decompression-bomb-sized 12000 x 12000 file would need about 10 GB to score).
The limit is read from the image header before any pixel is decoded; raise it with
``SRBENCH_MAX_PIXELS`` (a number of pixels, or ``0`` for none), ``srbench run --max-pixels`` or
``max_pixels`` in a run spec.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from iqa.errors import SrbenchError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MAX_PIXELS = 64_000_000
_max_pixels_override: list[int | None] = []


@contextmanager
def pixel_limit(limit: int | None) -> Iterator[None]:
    """Within the block, images above ``limit`` pixels are refused (``None`` or 0: no limit)."""
    _max_pixels_override.append(limit if limit else None)
    try:
        yield
    finally:
        _max_pixels_override.pop()


def max_pixels() -> int | None:
    """The pixel limit in force: `pixel_limit`'s, else ``SRBENCH_MAX_PIXELS`` (0: none), else
    `DEFAULT_MAX_PIXELS`."""
    if _max_pixels_override:
        return _max_pixels_override[-1]
    raw = os.environ.get("SRBENCH_MAX_PIXELS", "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        raise SrbenchError(f"SRBENCH_MAX_PIXELS must be a number of pixels (0 for no limit), got {raw!r}") from None
    return value if value > 0 else None


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageReadError(SrbenchError):
    """One image could not be read; the message names the file."""


class DiskFullError(SrbenchError):
    """The disk filled up while writing a run file: the run stops (a rerun after freeing space resumes)."""


def is_disk_full(e: BaseException) -> bool:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(e, OSError) and "no space left on device" in str(e).lower()  # pyarrow: no errno


def disk_full_error(path: Path | str) -> DiskFullError:
    path = Path(path)
    where = next((p for p in [path, *path.parents] if p.exists()), path)
    try:
        dev = _mount_point(where)
    except OSError:
        dev = str(where)
    return DiskFullError(f"no space left on {dev} while writing {path}; free space and rerun the same command "
                         f"(finished images are kept)")


def _mount_point(path: Path) -> str:
    path = path.resolve()
    while not os.path.ismount(path) and path.parent != path:
        path = path.parent
    return str(path)


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
        limit = max_pixels()
        Image.MAX_IMAGE_PIXELS = None  # our own limit (below) replaces Pillow's warning and bomb error
        if limit is not None:
            with Image.open(path) as im:
                w, h = im.size
            if w * h > limit:
                raise ImageReadError(f"{path}: {w}x{h} is {w * h / 1e6:.1f} megapixels, above the limit of "
                                     f"{limit / 1e6:g} (raise it with --max-pixels or SRBENCH_MAX_PIXELS)")
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


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary file beside ``path``; when the block ends normally it is renamed to
    ``path``, otherwise removed, so a reader never sees a half-written file. A full disk, while
    creating or writing it, is a `DiskFullError` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=path.parent)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(path) from None
        raise
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if is_disk_full(e):
            raise disk_full_error(path) from None
        raise


def write_png(x: torch.Tensor | np.ndarray, path: str | Path) -> None:
    """Write an RGB image as PNG atomically (`atomic_path`)."""
    from PIL import Image

    arr = x if isinstance(x, np.ndarray) else to_uint8(x)
    with atomic_path(path, ".png") as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


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


# -- CSV files people open in spreadsheets ---------------------------------------------------------
# A text cell that starts with one of these is run as a formula by Excel, LibreOffice and Google
# Sheets (CSV injection); OWASP's advice is to prefix such a cell with a single quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?%?|[+-]?(inf|nan)|-+", re.IGNORECASE)


def csv_safe(value: object) -> object:
    """``value`` as it may be written into a CSV cell: text that a spreadsheet would run as a
    formula gets a leading ``'``; numbers (and text that is a plain number, or a ``-`` placeholder)
    are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_safe_frame(df: "pd.DataFrame") -> "pd.DataFrame":
    """A copy of ``df`` with every text cell (and column name) passed through `csv_safe`."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = out[col].map(csv_safe)
    out.columns = [csv_safe(c) for c in out.columns]
    return out


def write_csv(df: "pd.DataFrame", path: str | Path) -> None:
    """Write ``df`` as CSV (no index) with formula-like text neutralised (`csv_safe`)."""
    csv_safe_frame(df).to_csv(path, index=False)
