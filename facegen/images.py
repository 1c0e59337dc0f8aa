"""Read any uploaded picture safely into a uint8 RGB array.

Uploads come in every mode a camera, scanner or editor writes: grey, grey + alpha, RGBA,
palettes with a transparent colour, CMYK, 16-bit and float, animated GIF/WebP, rotated JPEGs
that only say so in EXIF. Some are not pictures at all (empty files, HTML or SVG text saved
with an image extension), some are cut short, and some declare enormous sizes to exhaust
memory. :func:`read_image` turns all of them into an ``HxWx3`` uint8 RGB array or an
:class:`ImageReadError` whose message a person understands.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageReadError", "read_image", "DEFAULT_MAX_PIXELS"]

DEFAULT_MAX_PIXELS = 50_000_000

_DAMAGED = ("The picture file is damaged or cut short (truncated) and cannot be decoded; "
            "please upload the complete file.")

# Transparent pixels are shown on white, as a browser shows them on a page.
_BACKGROUND = 255.0


class ImageReadError(ValueError):
    """The input cannot be read as a photo; the message says why in plain words."""


ImageSource = str | Path | bytes | bytearray | memoryview | Image.Image | np.ndarray


def read_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` (path, encoded bytes, PIL image or array) into uint8 ``HxWx3`` RGB.

    EXIF orientation is applied; transparency is composited on white; 16-bit and float data
    are scaled to 8 bits; animations give their first frame. Images with more than
    ``max_pixels`` pixels are refused from their header, before any pixel is decoded.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, Image.Image):
        _check_size(source.size, max_pixels)
        return _from_pil(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageReadError(f"There is no file at {path}.")
        if path.stat().st_size == 0:
            raise ImageReadError("The file is empty (0 bytes), so there is no picture to read.")
        with open(path, "rb") as fh:
            head = fh.read(512)
        with open(path, "rb") as fh:
            return _decode(fh, head, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageReadError("The file is empty (0 bytes), so there is no picture to read.")
        return _decode(io.BytesIO(data), data[:512], max_pixels)
    raise ImageReadError(
        f"Cannot read a picture from a {type(source).__name__}; give a file path, the file's "
        "bytes, a PIL image or a numpy array."
    )


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageReadError(f"The picture declares an empty size ({w}x{h} pixels).")
    if w * h > max_pixels:
        raise ImageReadError(
            f"The picture is too large ({w}x{h} = {w * h / 1e6:.0f} megapixels; the limit is "
            f"{max_pixels / 1e6:.0f} megapixels). Please resize it and try again."
        )


def _describe_text(head: bytes) -> str | None:
    """Name the kind of text document that was given instead of a picture, if it is one."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in text or (text.startswith(b"<?xml") and b"svg" in text):
        return "an SVG drawing (vector text), not a photo; please export it as PNG or JPEG"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return "a web page (HTML text), not a photo"
    if text.startswith(b"<?xml"):
        return "an XML text document, not a photo"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "a text file, not a photo"


def _decode(fh, head: bytes, max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces Pillow's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(fh)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(
            "The picture declares a size far too large to open safely (a possible "
            "decompression bomb). Please resize it and try again."
        ) from exc
    except UnidentifiedImageError as exc:
        kind = _describe_text(head)
        if kind:
            raise ImageReadError(f"The file is {kind}.") from exc
        raise ImageReadError(
            "The file is not a picture in a format we can read (JPEG, PNG, WebP, GIF, BMP, TIFF ...)."
        ) from exc
    except OSError as exc:
        raise ImageReadError(f"The picture could not be opened: {exc}.") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow's parsers raise many types on hostile headers
        # (ValueError, SyntaxError, struct.error, TypeError ... found by fuzzing): all mean a broken file.
        raise ImageReadError(_DAMAGED) from exc
    with im:
        # Pillow has only read the header so far: refuse huge images before decoding.
        _check_size(im.size, max_pixels)
        try:
            if getattr(im, "is_animated", False):
                im.seek(0)
            im.load()
        except Image.DecompressionBombError as exc:
            raise ImageReadError("The picture is too large to open safely.") from exc
        except MemoryError as exc:
            raise ImageReadError("The picture is too large to open safely.") from exc
        except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, EOFError, and from fuzzed TIFF
            # headers also TypeError and OverflowError: a damaged file either way.
            raise ImageReadError(_DAMAGED) from exc
        try:
            return _from_pil(im)
        except MemoryError as exc:
            raise ImageReadError("The picture is too large to open safely.") from exc
        except Exception as exc:  # noqa: BLE001 - a mode or header Pillow decoded but cannot convert
            raise ImageReadError(_DAMAGED) from exc


def _from_pil(im: Image.Image) -> np.ndarray:
    try:
        im = ImageOps.exif_transpose(im) or im
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the picture itself
        pass
    mode = im.mode
    if mode == "RGB":
        return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        return _composite_rgba(np.asarray(im.convert("RGBA"), dtype=np.uint8))
    if mode.startswith("I;16") or mode == "I":
        return _grey_to_rgb(_scale_integer(np.asarray(im), sixteen_bit=mode.startswith("I;16")))
    if mode == "F":
        return _grey_to_rgb(_scale_float(np.asarray(im, dtype=np.float64)))
    if mode == "1":
        return _grey_to_rgb(np.asarray(im.convert("L"), dtype=np.uint8))
    # L, P, CMYK, YCbCr, LAB, HSV: Pillow's own conversion is right for these.
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def _composite_rgba(rgba: np.ndarray, band_pixels: int = 1 << 18) -> np.ndarray:
    """uint8 RGBA over white, exactly round(rgb * a / 255 + 255 * (1 - a / 255)), in bands of rows.

    Integer arithmetic in bands keeps the extra memory to a few MB: float32 copies of a
    40-megapixel RGBA upload took over 2 GB per request.
    """
    h, w = rgba.shape[:2]
    out = np.empty((h, w, 3), np.uint8)
    rows = max(1, band_pixels // max(w, 1))
    for y in range(0, h, rows):
        band = rgba[y:y + rows].astype(np.uint32)
        a = band[..., 3:4]
        # (x + 127) // 255 rounds x / 255 to nearest; x / 255 is never exactly halfway (255 is odd).
        out[y:y + rows] = (band[..., :3] * a + int(_BACKGROUND) * (255 - a) + 127) // 255
    return out


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))


def _scale_integer(a: np.ndarray, *, sixteen_bit: bool) -> np.ndarray:
    a = a.astype(np.int64)
    # 32-bit "I" images hold 16-bit PNG/TIFF data in practice; plain 8-bit values stay as they are.
    if sixteen_bit or a.max(initial=0) > 255:
        return np.clip(np.rint(np.clip(a, 0, 65535) / 257.0), 0, 255).astype(np.uint8)
    return np.clip(a, 0, 255).astype(np.uint8)


def _scale_float(a: np.ndarray) -> np.ndarray:
    a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
    # Float pictures are either in [0, 1] (the usual convention) or already in [0, 255].
    if a.size and a.min() >= 0.0 and a.max() <= 1.0:
        a = a * 255.0
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _from_array(a: np.ndarray, max_pixels: int) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageReadError(
            f"An array of shape {a.shape} is not a picture; expected HxW grey, HxWx3 RGB or HxWx4 RGBA."
        )
    _check_size((a.shape[1], a.shape[0]), max_pixels)
    if a.dtype == np.uint8:
        u8 = a
    elif a.dtype == np.bool_:
        u8 = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        u8 = np.rint(a / 257.0).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        u8 = _scale_integer(a, sixteen_bit=False)
    elif np.issubdtype(a.dtype, np.floating):
        u8 = _scale_float(a.astype(np.float64))
    else:
        raise ImageReadError(f"An array of type {a.dtype} is not a picture.")
    if u8.ndim == 2:
        return _grey_to_rgb(u8)
    if u8.shape[2] == 4:
        return _composite_rgba(u8)
    return np.ascontiguousarray(u8)
