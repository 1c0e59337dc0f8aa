"""The record every reader yields, and the one image loader (uint8 HxWx3 RGB)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


class ImageLoadError(RuntimeError):
    """A dataset image is missing or cannot be decoded."""


@dataclass(frozen=True)
class FaceRecord:
    """One face image of a dataset.

    ``path`` is relative to ``root`` (the folder of the set's root: the data root for the shared
    sets, the dataset folder for the public layouts); in-memory sets (FER2013 rows) carry
    ``pixels`` (raw uint8 bytes, ``shape`` HxW) and ``path`` is None. ``root`` does not take part
    in equality or hashing, so a record (and any cache keyed by records) survives moving the data.
    """

    dataset: str
    subject: str
    expression: str | None = None
    path: str | None = None
    pixels: bytes | None = field(default=None, repr=False)
    shape: tuple[int, int] | None = None
    #: dataset-specific columns (e.g. CK+ sequence and frame), as sorted (name, value) pairs
    extra: tuple[tuple[str, str], ...] = ()
    root: Path | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        """A stable identifier: ``dataset:path`` (or ``dataset:#row`` for in-memory rows)."""
        if self.path is not None:
            return f"{self.dataset}:{self.path}"
        return f"{self.dataset}:#{dict(self.extra).get('row', '?')}"

    def get(self, name: str, default: str | None = None) -> str | None:
        """A dataset-specific column from ``extra``."""
        return dict(self.extra).get(name, default)


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """A PIL image in any mode -> uint8 HxWx3 RGB (grey replicated, alpha composited on white)."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: scale to 8 bits instead of clipping (PIL's convert('L') clips at 255).
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(canvas, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def load_image(record: FaceRecord, root: str | Path | None = None) -> np.ndarray:
    """The record's image as uint8 HxWx3 RGB (grey sources replicated to three channels)."""
    if record.pixels is not None:
        if record.shape is None:
            raise ImageLoadError(f"{record.key}: in-memory pixels without a shape.")
        grey = np.frombuffer(record.pixels, dtype=np.uint8).reshape(record.shape)
        return np.repeat(grey[:, :, None], 3, axis=2)
    base = Path(root) if root is not None else record.root
    if record.path is None or base is None:
        raise ImageLoadError(f"{record.key}: the record has no file path or no root to read it from.")
    path = base / record.path
    try:
        with Image.open(path) as img:
            return to_rgb_array(img)
    except FileNotFoundError as err:
        raise ImageLoadError(f"Image {path} is missing (record {record.key}).") from err
    except (OSError, ValueError) as err:
        raise ImageLoadError(f"Image {path} cannot be decoded: {err}") from err
