import numpy as np
import pytest

from bench.run.io import ImageReadError, read_image, read_uint8, write_png
from tests.helpers import faulty_images, photo


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return faulty_images(tmp_path_factory.mktemp("faults"))


def test_plain_rgb_round_trip(tmp_path):
    rgb = photo()
    write_png(read_image_from(rgb, tmp_path), tmp_path / "b.png")
    assert np.array_equal(read_uint8(tmp_path / "b.png"), rgb)


def read_image_from(arr, folder):
    from PIL import Image

    Image.fromarray(arr).save(folder / "a.png")
    x = read_image(folder / "a.png")
    assert x.dtype.is_floating_point and x.shape == (3, *arr.shape[:2]) and 0 <= x.min() and x.max() <= 1
    return x


def test_grayscale_and_palette_become_rgb(files):
    gray = read_uint8(files["gray.png"])
    assert gray.shape[2] == 3 and np.array_equal(gray[..., 0], gray[..., 2])
    assert np.array_equal(gray[..., 0], photo(64, 80, 1)[..., 1])
    assert read_uint8(files["palette.png"]).shape == (64, 80, 3)


def test_rgba_drops_alpha(files):
    assert np.array_equal(read_uint8(files["rgba.png"]), photo(64, 80, 1))


def test_16bit_png_rounds_to_8bit(files):
    assert np.array_equal(read_uint8(files["deep16.png"]), photo(64, 80, 1))


def test_cmyk_jpeg_converts(files):
    out = read_uint8(files["cmyk.jpg"])
    assert out.shape == (64, 80, 3)
    assert np.abs(out.astype(int) - photo(64, 80, 1)).mean() < 12  # JPEG + CMYK round trip


def test_exif_orientation_applied(files):
    out = read_uint8(files["exif.jpg"])
    assert out.shape == (80, 64, 3)  # orientation 6: displayed rotated by 90 degrees
    expect = np.rot90(photo(64, 80, 1), k=-1)
    assert np.abs(out.astype(int) - expect).mean() < 6


@pytest.mark.parametrize("name", ["truncated.png", "garbage.png", "missing.png"])
def test_bad_files_raise_one_line_naming_the_file(files, name, tmp_path):
    path = files.get(name, tmp_path / name)
    with pytest.raises(ImageReadError) as e:
        read_uint8(path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
