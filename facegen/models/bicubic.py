"""The `bicubic` baseline: PIL bicubic up-sampling, the floor every SR model must beat."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class BicubicConfig:
    scale: int = 4


class Bicubic:
    """Up-samples uint8 HWC RGB images by ``config.scale`` with PIL's bicubic filter."""

    config_class = BicubicConfig

    def __init__(self, config: BicubicConfig) -> None:
        self.config = config

    def __call__(self, images: list[np.ndarray]) -> list[np.ndarray]:
        s = self.config.scale
        out = []
        for img in images:
            h, w = img.shape[:2]
            out.append(np.asarray(Image.fromarray(img).resize((w * s, h * s), Image.Resampling.BICUBIC)))
        return out
