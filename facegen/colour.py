"""BT.601 luma, the one implementation, for numpy arrays and torch tensors.

Two conventions are in use and both are ITU-R BT.601:

- full range (JPEG, PIL's ``convert("L")``): ``Y = 0.299 R + 0.587 G + 0.114 B``, in the input's range
  (a grey image keeps its values);
- studio swing (``studio=True``; the Y of YCbCr that BasicSR and the super-resolution papers score PSNR
  on): ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B in [0, 1], so Y lies in
  [16/255, 235/255].

This module imports numpy only (torch tensors are handled without importing torch), so that light
modules such as ``benchmarks.metrics`` can use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

FULL_RANGE = (0.299, 0.587, 0.114)
STUDIO = (65.481, 128.553, 24.966)  # per unit of input, in 0-255 output units; offset 16
STUDIO_OFFSET = 16.0

Array = TypeVar("Array", np.ndarray, "torch.Tensor")

#: How the three weighted channels are added up: ``"terms"`` term by term in the input's precision;
#: ``"dot"`` (``np.dot``) and ``"matmul"`` (``@``) as a product with float64 weights, the studio
#: weights in 0-255 units with the offset and the division by 255 after. The three agree to the last
#: bit or two; each caller keeps the one its recorded numbers were computed with.
Method = Literal["terms", "dot", "matmul"]


def luma(rgb: Array, axis: int = -1, keepdim: bool = False, studio: bool = False,
         method: Method = "terms") -> Array:
    """BT.601 luma of RGB values along ``axis`` (numpy or torch; the result has the input's type).

    ``studio=False``: full range, any input range. ``studio=True``: the Y of studio-swing YCbCr for
    float input in [0, 1] (see the module docstring). ``keepdim`` keeps ``axis`` with length 1.
    ``method="dot"`` is BasicSR's ``rgb2ycbcr`` (``np.dot`` of the image with the weights);
    ``"dot"`` and ``"matmul"`` take numpy arrays only and return float64 (see :data:`Method`).
    """
    axis = axis % rgb.ndim
    if rgb.shape[axis] != 3:
        raise ValueError(f"luma needs 3 colour channels on axis {axis}; got shape {tuple(rgb.shape)}")
    if method != "terms":
        return _luma_product(rgb, axis, keepdim, studio, method)
    lead = (slice(None),) * axis
    r, g, b = (rgb[lead + ((slice(c, c + 1),) if keepdim else (c,))] for c in range(3))
    if not studio:
        return FULL_RANGE[0] * r + FULL_RANGE[1] * g + FULL_RANGE[2] * b
    if isinstance(rgb, np.ndarray):
        w = np.asarray(STUDIO, dtype=rgb.dtype if rgb.dtype.kind == "f" else np.float64) / 255.0
    else:  # a torch tensor: in its precision, as BasicSR's tensor code does
        w = rgb.new_tensor(STUDIO) / 255.0
    return r * w[0] + g * w[1] + b * w[2] + STUDIO_OFFSET / 255.0


def _luma_product(rgb: np.ndarray, axis: int, keepdim: bool, studio: bool, method: Method) -> np.ndarray:
    if method not in ("dot", "matmul"):
        raise ValueError(f"luma's method must be 'terms', 'dot' or 'matmul'; got {method!r}")
    if not isinstance(rgb, np.ndarray):
        raise TypeError(f"luma(method={method!r}) takes numpy arrays; got {type(rgb).__name__}")
    x = np.moveaxis(rgb, axis, -1)
    w = np.asarray(STUDIO if studio else FULL_RANGE, dtype=np.float64)
    y = np.dot(x, w) if method == "dot" else x @ w
    if studio:
        y = (y + STUDIO_OFFSET) / 255.0
    return np.expand_dims(y, axis) if keepdim else y
