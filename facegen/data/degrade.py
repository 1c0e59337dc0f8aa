"""Degradations that make low-resolution inputs, and the SR training pairs built from them.

All functions take and return uint8 HxWx3 (or HxW) arrays and are pure.

- :func:`bicubic_down`: PIL bicubic, antialiased (the filter widens with the scale), as SPEC
  section 2 makes every LR test input.
- :func:`gaussian_blur_down`: paper 003's degradation: a 7x7 Gaussian of sigma 5 first, then
  the resize (the paper blurs, then resizes to half the HR size; it does not name the resize
  filter, so PIL bicubic is used as for every other LR input). The blur matches torchvision's
  ``gaussian_blur`` (reflect padding, float blur rounded back to uint8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from facegen.colour import luma


class DegradationError(ValueError):
    """An image size or scale that a degradation cannot handle."""


def _check(img: np.ndarray) -> None:
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise DegradationError(f"Expected a uint8 HxW or HxWxC image, got {img.dtype} of shape {img.shape}.")


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    # np.array (a copy) so callers get a writable array; np.asarray of a PIL image is read-only
    return np.array(Image.fromarray(img).resize((width, height), Image.Resampling.BICUBIC))


def bicubic_down(img: np.ndarray, scale: int) -> np.ndarray:
    """Down-sample by an integer ``scale`` with PIL's antialiased bicubic filter.

    Height and width must be multiples of ``scale`` so that the LR image maps exactly onto the HR.
    """
    _check(img)
    h, w = img.shape[:2]
    if scale < 1 or h % scale or w % scale:
        raise DegradationError(f"A {w}x{h} image cannot be down-sampled by {scale}: size must divide by the scale.")
    return _resize(img, w // scale, h // scale)


def bicubic_up(img: np.ndarray, scale: int) -> np.ndarray:
    """Up-sample by an integer ``scale`` with PIL's bicubic filter."""
    _check(img)
    if scale < 1:
        raise DegradationError(f"Scale must be a positive integer, not {scale}.")
    h, w = img.shape[:2]
    return _resize(img, w * scale, h * scale)


def gaussian_kernel(ksize: int = 7, sigma: float = 5.0) -> np.ndarray:
    """The 1-D Gaussian (float64, sums to 1) of odd length ``ksize``; the 2-D kernel is its outer product."""
    if ksize < 1 or ksize % 2 == 0 or sigma <= 0:
        raise DegradationError(f"Gaussian kernel needs an odd size and sigma > 0, got {ksize} and {sigma}.")
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(img: np.ndarray, ksize: int = 7, sigma: float = 5.0) -> np.ndarray:
    """Separable Gaussian blur with reflect padding (as torchvision), rounded back to uint8."""
    _check(img)
    k = gaussian_kernel(ksize, sigma)
    pad = ksize // 2
    arr = img.astype(np.float64)
    spatial = ((pad, pad), (pad, pad)) + (((0, 0),) if arr.ndim == 3 else ())
    padded = np.pad(arr, spatial, mode="reflect")
    h, w = img.shape[:2]
    rows = sum(k[i] * padded[i : i + h] for i in range(ksize))
    out = sum(k[i] * rows[:, i : i + w] for i in range(ksize))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def gaussian_blur_down(img: np.ndarray, scale: int, ksize: int = 7, sigma: float = 5.0) -> np.ndarray:
    """Paper 003's LR: Gaussian blur (``ksize`` x ``ksize``, ``sigma``) then bicubic resize by 1/``scale``."""
    _check(img)
    h, w = img.shape[:2]
    if scale < 1 or h % scale or w % scale:
        raise DegradationError(f"A {w}x{h} image cannot be down-sampled by {scale}: size must divide by the scale.")
    return _resize(gaussian_blur(img, ksize, sigma), w // scale, h // scale)


DEGRADATIONS = {"bicubic": bicubic_down, "blur": gaussian_blur_down}


def luminance(img: np.ndarray) -> np.ndarray:
    """Y of full-range BT.601 YCbCr (JPEG/PIL convention: 0.299 R + 0.587 G + 0.114 B), float64.

    A grey image (R = G = B) keeps its values exactly, which is why grey sources train on Y.
    """
    rgb = img.astype(np.float64)
    return rgb if rgb.ndim == 2 else luma(rgb)


@dataclass(frozen=True)
class Augment:
    """Training augmentation of HR crops: horizontal flip, a zoom, a shift and (optionally) a rotation."""

    flip: bool = True
    scale_jitter: float = 0.05  # zoom factor drawn from [1 - j, 1 + j]
    shift_jitter: float = 0.03  # shift drawn from [-j, j] x image size, per axis
    rotation: float = 0.0  # rotation about the centre drawn from [-r, r] degrees

    @classmethod
    def none(cls) -> "Augment":
        return cls(flip=False, scale_jitter=0.0, shift_jitter=0.0)


#: Named augmentations of the SR recipes (``--augment``): ``standard``, the small zoom and shift the
#: shipped x2 and psgan checkpoints were trained with, and ``framing``, the framing change of the
#: benchmark's jitter protocols (scale +-15 %, shift +-6 %, rotation +-10 degrees), so that a model
#: meets faces aligned less exactly than its template (small faces in photos) in training.
AUGMENTS = {
    "standard": Augment(),
    "framing": Augment(scale_jitter=0.15, shift_jitter=0.06, rotation=10.0),
}


def augment(img: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """Apply ``aug`` to a uint8 HxWxC image with draws from ``rng`` (same draws -> same output)."""
    flip = aug.flip and rng.random() < 0.5
    zoom = 1.0 + rng.uniform(-aug.scale_jitter, aug.scale_jitter) if aug.scale_jitter > 0 else 1.0
    h, w = img.shape[:2]
    if aug.shift_jitter > 0:
        dx, dy = rng.uniform(-aug.shift_jitter, aug.shift_jitter, size=2) * (w, h)
    else:
        dx = dy = 0.0
    angle = rng.uniform(-aug.rotation, aug.rotation) if aug.rotation > 0 else 0.0  # drawn last: older draws unchanged
    out = img[:, ::-1] if flip else img
    if zoom != 1.0 or dx != 0.0 or dy != 0.0 or angle != 0.0:
        # zoom and rotate about the centre, then shift; edge-repeated borders: no black edges and no mirrored content
        cx, cy = (w - 1) / 2, (h - 1) / 2
        m = cv2.getRotationMatrix2D((cx, cy), angle, zoom) + np.array([[0, 0, dx], [0, 0, dy]])
        out = cv2.warpAffine(
            np.ascontiguousarray(out), m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
        )
    return np.ascontiguousarray(out)


class SRPairs(Dataset):
    """SR training pairs from HR aligned crops (uint8 HxWx3, all the same size).

    Item ``i`` is ``{'lr': float [0,1] CxhxW/s, 'hr': float [0,1] CxHxW}`` with ``C = 3`` (RGB) or
    ``C = 1`` (``luminance=True``: Y of BT.601, for grey sources). The HR crop is augmented first
    (when ``augment`` is given), then degraded. Draws come from a generator seeded by
    ``(seed, epoch, i)``, so an item is the same whatever the worker or order; call
    :meth:`set_epoch` to get fresh augmentations each epoch.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray] | np.ndarray,
        scale: int,
        degradation: str = "bicubic",
        luminance: bool = False,
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        if degradation not in DEGRADATIONS:
            raise DegradationError(f"Unknown degradation {degradation!r}; choose from {', '.join(DEGRADATIONS)}.")
        if len(images) == 0:
            raise DegradationError("SRPairs needs at least one HR image.")
        first = np.asarray(images[0])
        if first.shape[0] % scale or first.shape[1] % scale:
            raise DegradationError(f"HR size {first.shape[1]}x{first.shape[0]} does not divide by scale {scale}.")
        self.images = images
        self.scale = scale
        self.degradation = degradation
        self.luminance = luminance
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def _tensor(self, img: np.ndarray) -> torch.Tensor:
        if self.luminance:
            y = luminance(img) / 255.0
            return torch.from_numpy(y[None].astype(np.float32))
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float() / 255.0

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        hr = np.asarray(self.images[index])
        if hr.ndim == 2:
            hr = np.repeat(hr[:, :, None], 3, axis=2)
        if hr.dtype != np.uint8 or hr.ndim != 3 or hr.shape[2] != 3:
            raise DegradationError(f"HR image {index} must be uint8 HxWx3, got {hr.dtype} {hr.shape}.")
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            hr = augment(hr, self.augment, rng)
        lr = DEGRADATIONS[self.degradation](hr, self.scale)
        return {"lr": self._tensor(lr), "hr": self._tensor(hr)}
