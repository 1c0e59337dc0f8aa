"""BT.601 luma, the one implementation, for numpy arrays and torch tensors.

Two conventions are in use and both are ITU-R BT.601:

- full range (JPEG, PIL's ``convert("L")``): ``Y = 0.299 R + 0.587 G + 0.114 B``, in the input's range
  (a grey image keeps its values);
- studio swing (``studio=True``; the Y of YCbCr that BasicSR and the super-resolution papers score PSNR
  on): ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B in [0, 1], so Y lies in
  [16/255, 235/255].
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

FULL_RANGE = (0.299, 0.587, 0.114)
STUDIO = (65.481, 128.553, 24.966)  # per unit of input, in 0-255 output units; offset 16
STUDIO_OFFSET = 16.0

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def luma(rgb: Array, axis: int = -1, keepdim: bool = False, studio: bool = False) -> Array:
    """BT.601 luma of RGB values along ``axis`` (numpy or torch; the result has the input's type).

    ``studio=False``: full range, any input range. ``studio=True``: the Y of studio-swing YCbCr for
    float input in [0, 1] (see the module docstring). ``keepdim`` keeps ``axis`` with length 1.
    """
    axis = axis % rgb.ndim
    if rgb.shape[axis] != 3:
        raise ValueError(f"luma needs 3 colour channels on axis {axis}; got shape {tuple(rgb.shape)}")
    lead = (slice(None),) * axis
    r, g, b = (rgb[lead + ((slice(c, c + 1),) if keepdim else (c,))] for c in range(3))
    if not studio:
        return FULL_RANGE[0] * r + FULL_RANGE[1] * g + FULL_RANGE[2] * b
    if isinstance(rgb, torch.Tensor):  # in the input's precision, as BasicSR's tensor code does
        w = torch.tensor(STUDIO, dtype=rgb.dtype, device=rgb.device) / 255.0
    else:
        w = np.asarray(STUDIO, dtype=rgb.dtype if rgb.dtype.kind == "f" else np.float64) / 255.0
    return r * w[0] + g * w[1] + b * w[2] + STUDIO_OFFSET / 255.0
