"""read_image on every odd upload, generated here with Pillow (no committed binaries)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from facegen.images import ImageReadError, read_image


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gradient(w: int = 64, h: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], -1).astype(np.uint8)


def _check(out: np.ndarray, h: int, w: int) -> None:
    assert out.dtype == np.uint8 and out.shape == (h, w, 3) and out.flags.c_contiguous


def test_rgb_png_and_path(tmp_path):
    rgb = _gradient()
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    for src in (path, str(path), path.read_bytes(), Image.open(path), rgb):
        out = read_image(src)
        _check(out, 48, 64)
        assert np.array_equal(out, rgb)


def test_grey_and_bilevel():
    grey = _gradient()[..., 0]
    out = read_image(_encode(Image.fromarray(grey), "PNG"))
    _check(out, 48, 64)
    assert np.array_equal(out[..., 0], grey) and np.array_equal(out[..., 1], grey)
    out1 = read_image(_encode(Image.fromarray(grey > 127), "PNG"))
    assert set(np.unique(out1)) <= {0, 255}
    # arrays: HxW, HxWx1, bool
    assert np.array_equal(read_image(grey)[..., 2], grey)
    assert np.array_equal(read_image(grey[..., None])[..., 0], grey)
    assert read_image(grey > 127).max() == 255


def test_rgba_composited_on_white():
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :6, 3] = 255  # opaque red-ish on the left
    rgba[:, 6:, 3] = 0  # fully transparent on the right -> white
    out = read_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    _check(out, 10, 12)
    assert (out[:, :6] == [200, 0, 0]).all()
    assert (out[:, 6:] == 255).all()
    half = rgba.copy()
    half[..., 3] = 128
    out = read_image(half)
    assert abs(int(out[0, 0, 0]) - round(200 * 128 / 255 + 255 * 127 / 255)) <= 1
    assert abs(int(out[0, 0, 1]) - round(255 * 127 / 255)) <= 1


def test_la_composited_on_white():
    la = Image.new("LA", (8, 8), (40, 255))
    la.putpixel((0, 0), (40, 0))
    out = read_image(_encode(la, "PNG"))
    _check(out, 8, 8)
    assert (out[0, 0] == 255).all() and (out[1, 1] == 40).all()


def test_palette_with_transparency():
    p = Image.new("P", (6, 4))
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * (254 * 3))
    p.paste(1, (0, 0, 6, 4))
    p.putpixel((0, 0), 0)
    data = _encode(p, "PNG", transparency=0)
    assert Image.open(io.BytesIO(data)).info.get("transparency") == 0
    out = read_image(data)
    _check(out, 4, 6)
    assert (out[0, 0] == 255).all()  # the transparent index shows as white, not black
    assert (out[1, 1] == [10, 200, 30]).all()
    # A palette image without transparency keeps its colours.
    assert (read_image(_encode(p, "PNG"))[0, 0] == 0).all()


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    out = read_image(_encode(cmyk, "JPEG", quality=95))
    _check(out, 16, 16)
    r, g, b = out[8, 8].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_sixteen_bit_png():
    a16 = (np.arange(20 * 30, dtype=np.uint32).reshape(20, 30) * 100).astype(np.uint16)
    im = Image.fromarray(a16)
    assert im.mode.startswith("I;16")
    data = _encode(im, "PNG")
    assert Image.open(io.BytesIO(data)).mode in ("I;16", "I")
    out = read_image(data)
    _check(out, 20, 30)
    expect = np.rint(a16 / 257.0).astype(np.uint8)
    assert np.abs(out[..., 0].astype(int) - expect).max() <= 1
    assert out[..., 0].max() > 200  # not clipped to white, not left at 16-bit scale
    # uint16 arrays are scaled the same way
    assert np.abs(read_image(a16)[..., 0].astype(int) - expect).max() <= 1


def test_int32_and_float_modes():
    i = Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(np.int32), "I")
    out = read_image(i)
    assert out[..., 0].max() == round(63000 / 257)
    f = Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), "F")
    out = read_image(_encode(f, "TIFF"))
    _check(out, 8, 8)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert read_image(np.full((4, 4, 3), 0.5))[0, 0, 0] == 128
    assert read_image(np.full((4, 4), np.nan, np.float32)).max() == 0


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(Image.open(io.BytesIO(buf.getvalue())), "n_frames", 1) == 3
    out = read_image(buf.getvalue())
    _check(out, 10, 10)
    r, g, b = out[5, 5].astype(int)
    assert r > 200 and g < 50 and b < 50


def test_exif_orientation_applied():
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = (255, 0, 0)  # left half red, right half blue
    rgb[:, 20:] = (0, 0, 255)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = _encode(im, "JPEG", quality=95, exif=exif.tobytes())
    out = read_image(data)
    _check(out, 40, 20)  # portrait after rotation
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 60  # top is red (was the left)
    assert out[35, 10, 2] > 200 and out[35, 10, 0] < 60  # bottom is blue


def test_one_pixel_image():
    out = read_image(_encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"))
    assert out.shape == (1, 1, 3) and tuple(out[0, 0]) == (1, 2, 3)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files(fmt):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), fmt)
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(data[: len(data) // 2])


def test_empty_inputs(tmp_path):
    with pytest.raises(ImageReadError, match="empty"):
        read_image(b"")
    empty = tmp_path / "e.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_image(empty)
    with pytest.raises(ImageReadError, match="no file"):
        read_image(tmp_path / "missing.png")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"hello, this is not a picture\n", "text file"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "SVG"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>', "SVG"),
        (b"<!DOCTYPE html><html><body>403 Forbidden</body></html>", "HTML"),
    ],
)
def test_text_renamed_as_image(tmp_path, text, words):
    path = tmp_path / "photo.png"
    path.write_bytes(text)
    with pytest.raises(ImageReadError, match=words):
        read_image(path)


def test_binary_garbage():
    with pytest.raises(ImageReadError, match="not a picture"):
        read_image(bytes(range(256)) * 4)


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels but holds one tiny compressed row (a bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("w", "h"), [(30000, 30000), (9000, 6000)])
def test_decompression_bomb_refused_before_decoding(w, h):
    with pytest.raises(ImageReadError, match="too large"):
        read_image(_png_header_only(w, h))


def test_max_pixels_limit_is_respected():
    data = _encode(Image.new("RGB", (100, 100)), "PNG")
    assert read_image(data, max_pixels=10_000).shape == (100, 100, 3)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(data, max_pixels=9_999)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(np.zeros((100, 101, 3), np.uint8), max_pixels=10_000)


def test_bad_arrays_and_types():
    with pytest.raises(ImageReadError):
        read_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageReadError):
        read_image(np.zeros((4,), np.uint8))
    with pytest.raises(ImageReadError):
        read_image(12345)  # type: ignore[arg-type]


def test_sixteen_bit_colour_png_and_tiff():
    import cv2

    bgr = np.zeros((4, 5, 3), np.uint16)
    bgr[..., 2] = 65535  # red
    bgr[..., 1] = 30000
    ok, png = cv2.imencode(".png", bgr)
    assert ok
    assert tuple(read_image(png.tobytes())[0, 0]) == (255, round(30000 / 257), 0)
    ok, tif = cv2.imencode(".tiff", np.full((4, 4, 3), 40000, np.uint16))
    assert ok
    assert tuple(read_image(tif.tobytes())[0, 0]) == (round(40000 / 257),) * 3


def test_hostile_headers_give_the_damaged_sentence():
    """Headers that made Pillow raise ValueError/TypeError/OverflowError (found by fuzzing)."""
    sig = b"\x89PNG\r\n\x1a\n"
    short_ihdr = sig + struct.pack(">I", 5) + b"IHDR" + b"\x00" * 5 + b"\x00\x00\x00\x00"
    bad_ppm = b"P6\n5\x9b 5\n255\n" + b"\x00" * 75
    for data in (short_ihdr, bad_ppm):
        with pytest.raises(ImageReadError, match="damaged or cut short"):
            read_image(data)


def test_alpha_composite_is_exact_and_small_in_memory():
    import tracemalloc

    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (300, 257, 4), dtype=np.uint8)
    a = rgba[..., 3:4].astype(np.float64) / 255.0
    expected = np.rint(rgba[..., :3] * a + 255.0 * (1.0 - a)).astype(np.uint8)
    assert np.array_equal(read_image(rgba), expected)
    big = np.zeros((4000, 4000, 4), np.uint8)  # 16 megapixels, 64 MB
    tracemalloc.start()
    try:
        out = read_image(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (4000, 4000, 3) and (out == 255).all()
    assert peak < 48e6 + 16e6  # the 48 MB output plus bands, not float copies of the whole picture
