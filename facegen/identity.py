"""Differentiable SFace identity embeddings and the identity-feature loss on training tensors.

Training tensors in this project are template-aligned face crops, NCHW, RGB or luminance, in
[-1, 1] (the generators' space) or [0, 1] (the batches). SFace wants the 112x112 ArcFace crop in
RGB 0..255. :func:`to_sface_input` makes it without landmarks: the similarity that maps the
crop's alignment template onto the ArcFace template (least squares over the points both share:
the two eyes for paper 000's ``expression`` crop, all five for ``celeba``/``ffhq``/``arcface``) is
applied with ``grid_sample`` (bilinear; an antialiased resize first when the crop shrinks), so
the gradient reaches every input pixel. Grey crops are repeated to three channels.

:func:`identity_loss` is ``1 - cos(SFace(fake), SFace(real))`` averaged over the batch, with the
float SFace port of :func:`facegen.assets.sface_model` (frozen, eval mode; the real image's
embedding is a constant).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facegen import assets
from facegen.faces import TEMPLATES, similarity_transform
from facegen.models.sface import INPUT_SIZE

VALUE_RANGES = {"[-1, 1]": (-1.0, 1.0), "[0, 1]": (0.0, 1.0)}

_models: dict[str, nn.Module] = {}
_lock = threading.Lock()


def sface(device: torch.device | str = "cpu") -> nn.Module:
    """The frozen float SFace on ``device``, one shared instance per device in this process."""
    key = str(torch.device(device))
    with _lock:
        if key not in _models:
            _models[key] = assets.sface_model().to(device)
        return _models[key]


def crop_theta(template: str) -> Tensor:
    """(2, 3) ``affine_grid`` matrix: ArcFace-crop coordinates -> ``template``-crop coordinates.

    Both in ``align_corners=False`` normalised coordinates ([-1, 1] from edge to edge), so it holds
    for any input and output size.
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown alignment template {template!r}; known: {sorted(TEMPLATES)}")
    src = TEMPLATES[template]
    dst = TEMPLATES["arcface"][: len(src)]  # the templates list their points in the same order
    m = similarity_transform(dst, src)  # fractions of the ArcFace crop -> fractions of this crop
    a, t = m[:, :2], m[:, 2]
    # x_in = 2 (a u + t) - 1 with u = (x_out + 1) / 2
    theta = np.concatenate([a, (a @ np.ones(2) + 2 * t - 1)[:, None]], axis=1)
    return torch.from_numpy(theta.astype(np.float32))


def _check(images: Tensor, value_range: str) -> tuple[float, float]:
    if value_range not in VALUE_RANGES:
        raise ValueError(f"value_range must be one of {sorted(VALUE_RANGES)}; got {value_range!r}")
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3) \
            or images.shape[-1] != images.shape[-2] or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"the identity embedding takes square float NCHW face crops with 1 or 3 channels; got {shape}")
    return VALUE_RANGES[value_range]


def to_sface_input(images: Tensor, template: str, value_range: str = "[-1, 1]") -> Tensor:
    """``template``-aligned crops (N, 1|3, S, S) in ``value_range`` -> (N, 3, 112, 112) RGB in 0..255."""
    lo, hi = _check(images, value_range)
    x = (images.float() - lo) * (255.0 / (hi - lo))
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    theta = crop_theta(template).to(x.device)
    side = x.shape[-1]
    # Input pixels per output pixel; shrink with an antialiased resize first when above 1.
    step = math.sqrt(abs(float(torch.linalg.det(theta[:, :2])))) * side / INPUT_SIZE
    if step > 1.0:
        x = F.interpolate(x, size=max(1, round(side / step)), mode="bilinear", align_corners=False, antialias=True)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), [x.shape[0], 3, INPUT_SIZE, INPUT_SIZE], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def sface_embed(images: Tensor, template: str, value_range: str = "[-1, 1]") -> Tensor:
    """L2-normalised 128-d SFace embeddings of aligned crops (differentiable in ``images``)."""
    feats = sface(images.device)(to_sface_input(images, template, value_range))
    return F.normalize(feats, dim=1)


def identity_loss(fake: Tensor, real: Tensor, template: str, value_range: str = "[-1, 1]") -> Tensor:
    """Mean over the batch of ``1 - cos(SFace(fake), SFace(real))``; the gradient flows into ``fake`` only."""
    if fake.shape != real.shape:
        raise ValueError(f"fake and real must have the same shape; got {tuple(fake.shape)} and {tuple(real.shape)}")
    with torch.no_grad():
        target = sface_embed(real, template, value_range)
    return (1.0 - (sface_embed(fake, template, value_range) * target).sum(dim=1)).mean()


def card_deviation(weight: float, pair: str, crop: str) -> str:
    """Model-card line of the optional SFace identity loss (shared by the recipe families)."""
    return (f"generator loss adds {weight:g} x L_id, 1 - cosine of the 128-d SFace embeddings of {pair} (OpenCV "
            f"Zoo SFace 2021dec, its int8 ONNX dequantized to a frozen float network; the 112x112 ArcFace crop "
            f"is taken from {crop}); the paper has no identity term")
