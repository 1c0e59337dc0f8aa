"""Losses for training pairs made of two photos of one person (the ``wild`` recipes).

Two photos of one person differ in background, hair, pose and light, and no alignment makes them
agree pixel by pixel: an L1 with such a target teaches the average of its positions, a face of
lower contrast. So a pair of two photos is never compared with its target pixel by pixel. It is
held to its own input instead (:func:`reconstruction`), weakly inside the face box
(:func:`face_box`, :func:`anchor_weights`), and learns the expression from a discriminator that
sees only the face box, with zero mean and unit contrast (:func:`normalised_box`), where light
and background are no cue. Shared by the smile (paper 000) and expression (paper 004) recipes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from facegen import faces as F
from facegen import losses
from facegen.models.layers import bicubic_resize

#: Items whose ``registered`` flag is 0 (two photos of one person) are held to their own input by
#: L1: with weight 1 outside the face box, and with this weight inside it, where the expression is made.
BOX_ANCHOR = 0.1
#: Mouth centre below the eye centre, in eye distances, for templates that place the eyes alone:
#: measured on the 5-point ``celeba`` template (1.02).
MOUTH_BELOW_EYES = 1.02


def face_box(template: str) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the face in a crop aligned by ``template``, as fractions of
    the side: the box of its 5 points grown by 0.6 eye distances (brows, cheeks, chin). For a
    template of the two eyes alone the mouth is placed :data:`MOUTH_BELOW_EYES` eye distances
    below their centre."""
    pts = np.asarray(F.TEMPLATES[template], dtype=np.float64)
    d = float(np.linalg.norm(pts[1] - pts[0]))
    if len(pts) == 2:
        centre = pts.mean(0)
        pts = np.vstack([pts, centre + (0.0, MOUTH_BELOW_EYES * d)])
    m = 0.6 * d
    (x0, y0), (x1, y1) = pts.min(0) - m, pts.max(0) + m
    return (max(0.0, float(x0)), max(0.0, float(y0)), min(1.0, float(x1)), min(1.0, float(y1)))


def box_slices(box: tuple[float, float, float, float], size: int) -> tuple[slice, slice]:
    """(rows, columns) of ``box`` in a ``size`` px image."""
    x0, y0, x1, y1 = (round(v * size) for v in box)
    return slice(y0, y1), slice(x0, x1)


def anchor_weights(box: tuple[float, float, float, float], size: int) -> Tensor:
    """(1, 1, size, size) weights of the L1 that holds a pair of two photos to its input: 1 outside
    the face ``box``, :data:`BOX_ANCHOR` inside it, with a linear ramp of an eighth of the side
    across its edge (a hard edge would let the output change up to a visible seam)."""
    rows, cols = box_slices(box, size)
    inside = torch.zeros(1, 1, size, size)
    inside[..., rows, cols] = 1.0
    k = max(1, size // 8) | 1  # odd, so the ramp is centred on the edge
    inside = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(inside, (k // 2,) * 4, mode="replicate"), k, 1)
    return 1.0 - (1.0 - BOX_ANCHOR) * inside


def reconstruction(fake: Tensor, real: Tensor, registered: Tensor | None,
                   box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
                   source: Tensor | None = None) -> Tensor:
    """The pixel loss: L1 with the target for registered items. Items with ``registered`` 0 (two
    photos of one person) are not compared with their target at all; they are held to their own
    input (``source``, the model's input in [-1, 1], bicubic-resized to the output's size) by L1
    weighted by :func:`anchor_weights` (weak inside the face ``box``)."""
    if registered is None or bool((registered >= 1).all()):
        return losses.l1(fake, real)
    if source is None:
        raise ValueError("pairs of two photos are held to the input face: pass source")
    if source.shape[-1] != fake.shape[-1]:
        source = bicubic_resize((source + 1) / 2, fake.shape[-1]) * 2 - 1
    full = (fake - real).abs().flatten(1).mean(1)
    weights = anchor_weights(box, fake.shape[-1]).to(fake)
    anchor = ((fake - source).abs() * weights).flatten(1).mean(1)
    w = registered.to(fake.dtype).flatten()
    return (w * full + (1 - w) * anchor).mean()


def normalised_box(image: Tensor, box: tuple[float, float, float, float], size: int | None = None) -> Tensor:
    """The face ``box`` of an NCHW ``image`` (resized to ``size`` px first when given), each with
    zero mean and unit contrast: what a face-box discriminator judges, so that light is no cue."""
    if size is not None and image.shape[-1] != size:
        image = torch.nn.functional.interpolate(image, size=(size, size), mode="bilinear", align_corners=False,
                                                antialias=True)
    crop = image[(..., *box_slices(box, image.shape[-1]))]
    mean = crop.mean(dim=(1, 2, 3), keepdim=True)
    std = crop.std(dim=(1, 2, 3), keepdim=True)
    return (crop - mean) / (std + 1e-3)
