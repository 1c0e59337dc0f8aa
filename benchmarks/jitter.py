"""The framing change of the ``sr-x*-jitter`` tasks: a seeded random similarity transform of each
ground-truth face, applied before the low-resolution input is made from it.

Per face ``i`` (its index in the test set, so a ``--limit`` run sees the same transforms as the
full run) a generator seeded with ``(SEED, i)`` draws a scale in ``1 +- SCALE``, a shift of
``+- SHIFT`` of the crop side in x and in y, and a rotation of ``+- ROTATION`` degrees, all
uniform. The transform is about the crop centre. Pixels that come from outside the original
crop are filled by edge replication (``cv2.BORDER_REPLICATE``: the nearest border pixel, never
mirrored face content), and a validity mask marks the pixels that come wholly from inside it.
The scores use the whole image, replicated border included, for every row alike; the mask's
coverage is recorded with the test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SEED = 15
SCALE = 0.15  # scale factor drawn in [1 - SCALE, 1 + SCALE]
SHIFT = 0.06  # shift in each axis drawn in [-SHIFT, SHIFT] x crop side
ROTATION = 10.0  # degrees, drawn in [-ROTATION, ROTATION]
DESCRIPTION = (f"a seeded (seed {SEED}, per face index) random similarity transform about the crop centre: scale "
               f"uniform in 1 +- {SCALE:g}, shift uniform in +- {100 * SHIFT:g} % of the crop side in x and y, "
               f"rotation uniform in +- {ROTATION:g} degrees; HR warped by bicubic interpolation, pixels from "
               "outside the crop filled by edge replication (no reflected content); metrics over the whole "
               "image, replicated border included, the same for every row")


@dataclass(frozen=True)
class Jitter:
    scale: float
    shift: tuple[float, float]  # (x, y) as fractions of the crop side
    rotation: float  # degrees, counter-clockwise as seen in the image

    def matrix(self, size: int) -> np.ndarray:
        """(2, 3) float64 map from source pixels to output pixels of a ``size`` crop."""
        c = (size - 1) / 2.0
        m = cv2.getRotationMatrix2D((c, c), self.rotation, self.scale)
        m[:, 2] += np.asarray(self.shift) * size
        return m


def draw(index: int, seed: int = SEED) -> Jitter:
    """The transform of the face at ``index`` (deterministic for ``seed``)."""
    if index < 0:
        raise ValueError(f"face index must be >= 0; got {index}")
    rng = np.random.default_rng([seed, index])
    scale = 1.0 + rng.uniform(-SCALE, SCALE)
    sx, sy = rng.uniform(-SHIFT, SHIFT, 2)
    return Jitter(scale=float(scale), shift=(float(sx), float(sy)), rotation=float(rng.uniform(-ROTATION, ROTATION)))


def apply(image: np.ndarray, jitter: Jitter) -> tuple[np.ndarray, np.ndarray]:
    """(transformed uint8 image, bool validity mask) of a square uint8 (S, S, 3) image."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[0] != image.shape[1]:
        raise ValueError(f"jitter takes a square uint8 (S, S, C) image; got {image.dtype} {image.shape}")
    size = image.shape[0]
    m = jitter.matrix(size)
    out = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(np.ones((size, size), np.float32), m, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return out, inside >= 1.0 - 1e-6

