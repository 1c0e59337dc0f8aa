"""Hostile and broken uploads through the app's own upload path, with bounded time and memory.

The corpus is generated here (no binary lives in the repository): empty and text files, truncated
JPEG/PNG, a decompression bomb, animated GIF, 16-bit / CMYK / palette-with-transparency pictures,
an EXIF-rotated photo, a 1x1 picture, a picture without a face, 40 faces, SVG and HTML payloads.
Each must end in a clear sentence (no traceback, no exception class name) or a correct result.
The face photos are scikit-image's public-domain astronaut (and a real test face for the 40-face
case when the data root is present).
"""

from __future__ import annotations

import io
import re
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")

import app  # noqa: E402
from facegen import faces as F  # noqa: E402
from facegen.images import ImageReadError, read_image  # noqa: E402

TIME_LIMIT_S = 60.0  # per upload, generous for a shared 2-core machine; typical cases take < 2 s
MEMORY_LIMIT_MB = 600.0  # growth of the process's resident memory while one upload is handled
# Words that must never reach a person: traceback text and exception class names.
LEAKS = re.compile(r"Traceback|File \"|line \d+|\b[A-Z][A-Za-z]*(Error|Exception)\b|0x[0-9a-f]{6,}")


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def astronaut() -> np.ndarray:
    return np.asarray(Image.open(app.example_photos()[0]).convert("RGB"))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int = 30000) -> bytes:
    """A complete, valid 1-bit ``side`` x ``side`` PNG of zeros: ~110 KB on disk, 900 megapixels."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    parts = [z.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(z.compress(row * (side % 1000)))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
            + _png_chunk(b"IEND", b""))


def exif_rotated_jpeg(photo: np.ndarray) -> bytes:
    """The photo stored turned on its side, with EXIF orientation 6 ("rotate 90 clockwise to view")."""
    stored = Image.fromarray(photo).transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def animated_gif(photo: np.ndarray) -> bytes:
    first = Image.fromarray(photo)
    others = [Image.new("RGB", first.size, c) for c in ((255, 0, 0), (0, 0, 255))]
    return _encode(first, "GIF", save_all=True, append_images=others, duration=100, loop=0)


def palette_with_transparency(photo: np.ndarray) -> bytes:
    im = Image.fromarray(photo).quantize(64)
    return _encode(im, "PNG", transparency=0)


def sixteen_bit_png(photo: np.ndarray) -> bytes:
    grey = np.asarray(Image.fromarray(photo).convert("L"), dtype=np.uint16) * 257
    return _encode(Image.fromarray(grey.astype(np.uint16)), "PNG")  # mode I;16


def forty_faces(face: np.ndarray) -> bytes:
    """40 copies of one face on an 8 x 5 grid with gaps."""
    side, gap = 96, 24
    tile = np.asarray(Image.fromarray(face).resize((side, side), Image.Resampling.LANCZOS))
    canvas = np.full((5 * (side + gap) + gap, 8 * (side + gap) + gap, 3), 200, np.uint8)
    for k in range(40):
        r, c = divmod(k, 8)
        y, x = gap + r * (side + gap), gap + c * (side + gap)
        canvas[y:y + side, x:x + side] = tile
    return _encode(Image.fromarray(canvas), "PNG")


SVG = b"""<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100" height="100" onload="alert(1)">
<script>alert(document.cookie)</script><circle cx="50" cy="50" r="40"/></svg>"""
HTML = b"<!DOCTYPE html><html><body><script>fetch('/x?c='+document.cookie)</script><img src=x onerror=alert(1)></body></html>"


@dataclass(frozen=True)
class Case:
    """One upload: its file name and bytes, and the outcome expected of it.

    ``words``: the user-facing message must contain them (an error is expected); None: a result
    with ``faces`` faces processed is expected.
    """

    name: str
    data: bytes
    words: tuple[str, ...] | None = None
    faces: int = 1


def corpus() -> list[Case]:
    """Every hostile or unusual upload that needs no face data (see :func:`forty_faces_case`)."""
    photo = astronaut()
    jpeg = _encode(Image.fromarray(photo), "JPEG", quality=90)
    png = _encode(Image.fromarray(photo), "PNG")
    return [
        Case("zero-byte.png", b"", ("empty",)),
        Case("text.png", b"hello, this is a shopping list\nmilk\neggs\n", ("text file", "not a photo")),
        Case("truncated.jpg", jpeg[: len(jpeg) // 2], ("damaged or cut short",)),
        Case("truncated.png", png[: len(png) // 2], ("damaged or cut short",)),
        Case("bomb.png", bomb_png(), ("too large",)),
        Case("animated.gif", animated_gif(photo)),
        Case("sixteen-bit.png", sixteen_bit_png(photo)),
        Case("cmyk.jpg", _encode(Image.fromarray(photo).convert("CMYK"), "JPEG", quality=90)),
        Case("palette-transparent.png", palette_with_transparency(photo)),
        Case("exif-rotated.jpg", exif_rotated_jpeg(photo)),
        Case("one-pixel.png", _encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"), ("No face was found",)),
        Case("no-face.jpg", _encode(Image.new("RGB", (320, 240), (90, 140, 200)), "JPEG"), ("No face was found",)),
        Case("drawing.svg", SVG, ("SVG drawing",)),
        Case("page.html", HTML, ("web page",)),
        Case("page-as.png", HTML, ("web page",)),
    ]


def forty_faces_case(data_root: Path) -> Case:
    first = sorted((data_root / "celeba_fsrnet" / "celeba_val_1000_HR").iterdir())[0]
    face = np.asarray(Image.open(first).convert("RGB"))
    return Case("forty-faces.png", forty_faces(face), faces=app.MAX_FACES)


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    return {c.name: c for c in corpus()}


# ---------------------------------------------------------------------------------------------
# Bounded time and memory
# ---------------------------------------------------------------------------------------------


class Bounded:
    """Time a block and sample this process's resident memory (every 2 ms) for its peak growth."""

    def __enter__(self) -> "Bounded":
        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss
        self._peak = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._proc.memory_info().rss)
            self._stop.wait(0.002)

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._proc.memory_info().rss)
        self.peak_mb = (self._peak - self._base) / 2**20

    def check(self) -> None:
        assert self.seconds < TIME_LIMIT_S, f"took {self.seconds:.1f} s"
        assert self.peak_mb < MEMORY_LIMIT_MB, f"memory grew by {self.peak_mb:.0f} MB"


def _quiet_progress(*_args, **_kw) -> None:
    return None


@dataclass
class Outcome:
    message: str | None  # the user-facing error sentence, or None for a result
    result: tuple | None
    seconds: float
    peak_mb: float


def upload(path: Path) -> Outcome:
    """The SR tab's two events on one upload, as the app runs them: the face picker, then
    super-resolution with the bicubic model at 4x. Any exception other than gr.Error fails."""
    with Bounded() as b:
        try:
            app.detect_faces_view(str(path))
            result = app.run_super_resolution(str(path), app.ALL_FACES, [], "sr-x4", ["bicubic"], app.ENLARGE,
                                              True, progress=_quiet_progress)
            message = None
        except app.gr.Error as e:
            message, result = e.message, None
    b.check()
    return Outcome(message, result, b.seconds, b.peak_mb)


def assert_sentence(message: str) -> None:
    assert message and message[0].isupper() and message.rstrip().endswith((".", ")")), message
    assert not LEAKS.search(message), message


def write(tmp_path: Path, case: Case) -> Path:
    path = tmp_path / case.name
    path.write_bytes(case.data)
    return path


def check_case(case: Case, tmp_path: Path) -> Outcome:
    out = upload(write(tmp_path, case))
    if case.words is not None:
        assert out.message is not None, f"{case.name}: expected a message, got a result"
        assert_sentence(out.message)
        for w in case.words:
            assert w in out.message, (case.name, out.message)
    else:
        assert out.message is None, f"{case.name}: {out.message}"
        info = out.result[5]
        assert info.startswith(f"{case.faces} face(s) processed"), (case.name, info)
    return out


# ---------------------------------------------------------------------------------------------
# The corpus through the app's handlers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [c.name for c in corpus()])
def test_hostile_upload_through_the_handlers(name, cases, tmp_path):
    check_case(cases[name], tmp_path)


def test_bomb_is_small_on_disk_and_refused_from_its_header(cases):
    data = cases["bomb.png"].data
    assert len(data) < 200_000
    assert struct.unpack(">II", data[16:24]) == (30000, 30000)  # IHDR: width, height
    with Bounded() as b, pytest.raises(ImageReadError, match="too large"):
        read_image(data, max_pixels=app.MAX_PIXELS)
    assert b.seconds < 1.0 and b.peak_mb < 50


def test_modes_decode_to_the_same_photo(cases):
    photo = astronaut().astype(np.int16)
    grey = np.asarray(Image.fromarray(astronaut()).convert("L"), dtype=np.int16)
    # Lossless modes match exactly; the palette (64 colours) and JPEG are close.
    assert np.array_equal(read_image(cases["sixteen-bit.png"].data)[..., 0], grey)
    assert np.abs(read_image(cases["animated.gif"].data).astype(np.int16) - photo).mean() < 12
    assert np.abs(read_image(cases["cmyk.jpg"].data).astype(np.int16) - photo).mean() < 6
    pal = read_image(cases["palette-transparent.png"].data)
    assert pal.shape == photo.shape and (pal == 255).all(axis=2).any()  # colour 0 shown as white


def test_exif_rotated_photo_is_upright(cases):
    photo = read_image(cases["exif-rotated.jpg"].data)
    ref = astronaut()
    assert photo.shape == ref.shape  # stored 512 wide and tall, but rotated: the same shape is not enough
    assert np.abs(photo.astype(np.int16) - ref).mean() < 6  # ...the pixels match the upright original
    face = F.detect(photo)[0]
    eyes_y, mouth_y = face.points[:2, 1].mean(), face.points[3:, 1].mean()
    assert eyes_y < mouth_y  # the eyes above the mouth: the face is upright
    with Image.open(io.BytesIO(cases["exif-rotated.jpg"].data)) as raw:  # as stored: turned on its side
        stored = np.asarray(raw.convert("RGB"))
    assert np.abs(stored.astype(np.int16) - ref).mean() > 20


def test_forty_faces(data_root, tmp_path):
    out = check_case(forty_faces_case(data_root), tmp_path)
    assert "40 faces found" in out.result[5]
    crops, choices, info = app.detect_faces_view(str(write(tmp_path, forty_faces_case(data_root))))
    assert len(crops) == app.MAX_FACES and info == f"40 face(s) found. Only the {app.MAX_FACES} largest are processed."


# ---------------------------------------------------------------------------------------------
# The same files through a served app (gradio_client), as a stranger would send them
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    demo = app.build_demo(results_dir=tmp_path_factory.mktemp("no-results"))
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                max_file_size=app.MAX_UPLOAD)
    try:
        yield gradio_client.Client(demo.local_url, verbose=False)
    finally:
        demo.close()


SERVED = ["zero-byte.png", "text.png", "truncated.jpg", "bomb.png", "drawing.svg", "page.html", "cmyk.jpg",
          "exif-rotated.jpg"]


@pytest.mark.parametrize("name", SERVED)
def test_hostile_upload_through_the_served_app(name, cases, client, tmp_path):
    case = cases[name]
    path = write(tmp_path, case)
    t0 = time.perf_counter()
    try:
        out = client.predict(gradio_client.handle_file(str(path)), app.ALL_FACES, [], "sr-x4", ["bicubic"],
                             app.ENLARGE, True, api_name="/super_resolve")
        message = None
    except Exception as e:  # noqa: BLE001 - gradio_client's AppError carries the app's message
        message = str(e)
    assert time.perf_counter() - t0 < TIME_LIMIT_S
    if case.words is None:
        assert message is None, message
        assert out[5].startswith(f"{case.faces} face(s) processed")
    else:
        assert message is not None
        assert not LEAKS.search(message), message
        for w in case.words:
            assert w in message, message
    # The app is still up and answers a good photo afterwards.
    _, _, info = client.predict(gradio_client.handle_file(app.example_photos()[0]), api_name="/sr_faces")
    assert info == "1 face(s) found."


# ---------------------------------------------------------------------------------------------
# Property-based: random bytes and random valid pictures of every mode
# ---------------------------------------------------------------------------------------------

SMALL = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIGNATURES = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b"BM",
              b"II*\x00", b"MM\x00*", b"<svg", b"<!DOCTYPE html>"]
MAX_TEST_PIXELS = 250_000


def check_rgb(out: np.ndarray) -> None:
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape[0] * out.shape[1] <= MAX_TEST_PIXELS


def _read_or_sentence(data: bytes) -> None:
    try:
        out = read_image(data, max_pixels=MAX_TEST_PIXELS)
    except ImageReadError as e:
        assert_sentence(str(e))
        return
    check_rgb(out)


@SMALL
@given(prefix=st.sampled_from(SIGNATURES), body=st.binary(max_size=2048))
def test_random_bytes_never_escape(prefix, body):
    _read_or_sentence(prefix + body)


def _small_files() -> list[bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    files = [_encode(rgb, f) for f in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO")]
    files += [_encode(rgb.convert("CMYK"), "TIFF"), _encode(rgb.convert("L"), "TIFF", compression="tiff_lzw")]
    return files


SMALL_FILES = _small_files()


@SMALL
@given(which=st.integers(0, len(SMALL_FILES) - 1),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.floats(0.05, 1.0)))
def test_damaged_files_never_escape(which, flips, cut):
    """Valid small files of every format with random bytes overwritten (headers included) and cut short."""
    data = bytearray(SMALL_FILES[which])
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: max(1, int(len(data) * cut))]
    _read_or_sentence(bytes(data))


def _valid_image(mode: str, w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode in ("RGB", "RGBA", "CMYK", "LA"):
        ch = {"RGB": 3, "RGBA": 4, "CMYK": 4, "LA": 2}[mode]
        a = rng.integers(0, 256, (h, w, ch), dtype=np.uint8)
        base = "RGBA" if ch == 4 else ("RGB" if ch == 3 else None)
        if mode == "LA":
            return Image.merge("LA", [Image.fromarray(a[..., 0]), Image.fromarray(a[..., 1])])
        im = Image.fromarray(a, base)
        return im if mode == base else Image.frombytes(mode, (w, h), a.tobytes())
    if mode in ("L", "P"):
        im = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8))
        return im if mode == "L" else im.convert("P")
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.uint16))
    if mode == "I":
        return Image.fromarray(rng.integers(-(2**31), 2**31 - 1, (h, w)).astype(np.int32))
    if mode == "F":
        return Image.fromarray(rng.normal(0, 100, (h, w)).astype(np.float32))
    raise AssertionError(mode)


# Formats that store each mode (Pillow's writers).
FORMATS = {"L": ["PNG", "JPEG", "GIF", "BMP", "TIFF"], "LA": ["PNG", "TIFF"], "P": ["PNG", "GIF", "BMP"],
           "RGB": ["PNG", "JPEG", "WEBP", "BMP", "TIFF"], "RGBA": ["PNG", "WEBP", "TIFF"],
           "CMYK": ["JPEG", "TIFF"], "I;16": ["PNG", "TIFF"], "I": ["PNG", "TIFF"], "F": ["TIFF"]}


@SMALL
@given(mode=st.sampled_from(sorted(FORMATS)), w=st.integers(1, 300), h=st.integers(1, 300),
       seed=st.integers(0, 2**16), pick=st.integers(0, 4), cut=st.sampled_from([None, 0.3, 0.9]))
def test_random_valid_images_read_as_rgb(mode, w, h, seed, pick, cut):
    im = _valid_image(mode, w, h, seed)
    fmt = FORMATS[mode][pick % len(FORMATS[mode])]
    data = _encode(im, fmt)
    if cut is not None:  # the same file cut short: a clear sentence, or (when only trailers went) the picture
        _read_or_sentence(data[: max(1, int(len(data) * cut))])
        return
    out = read_image(data)
    assert out.dtype == np.uint8 and out.shape == (h, w, 3)
    assert read_image(im).shape == (h, w, 3)  # the PIL image itself, as the webcam/clipboard path gives


@SMALL
@given(mode=st.sampled_from(sorted(FORMATS)), w=st.integers(1, 200), h=st.integers(1, 200), seed=st.integers(0, 99))
def test_random_images_through_the_sr_upload_path(mode, w, h, seed, tmp_path_factory):
    im = _valid_image(mode, w, h, seed)
    path = tmp_path_factory.mktemp("prop") / "upload.png"
    path.write_bytes(_encode(im, FORMATS[mode][0]))
    out = upload(path)  # no face in noise: a sentence; never another exception
    if out.message is not None:
        assert_sentence(out.message)
