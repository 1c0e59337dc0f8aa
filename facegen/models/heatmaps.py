"""68-point landmarks as heatmaps, and expression landmark templates fitted to a face.

Coordinates are crop pixels with pixel centres at integers (the :mod:`facegen.faces`
convention), so a landmark at (x, y) puts the peak (value 1) of its Gaussian on pixel (x, y).

Expression templates: the target landmarks of ``lmk-guided`` come from the ground-truth target
in the benchmark, from a reference photo in the app, or, when there is neither, from a
per-expression mean displacement applied to the input face's own landmarks. The displacement is
learned from same-person neutral -> expression training pairs (:func:`mean_displacements`) in
units of the inter-ocular distance, so it transfers across face sizes; it is stored in the
model's checkpoint as a (K, 68, 2) buffer. Finding landmarks on a face (detector + dlib) is not a
model's job: :mod:`facegen.landmarks` does it, and the runner hands them to the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

N_POINTS = 68
RIGHT_EYE = slice(36, 42)  # iBUG 300-W: the subject's right eye (image left)
LEFT_EYE = slice(42, 48)


class LandmarkError(ValueError):
    """Landmarks could not be found or have the wrong shape."""


def render_heatmaps(points: Tensor, size: int, sigma: float = 2.0, merge: bool = False) -> Tensor:
    """(N, P, 2) landmark positions (x, y) -> (N, P, size, size) Gaussian heatmaps in [0, 1].

    Each map is exp(-d^2 / (2 sigma^2)), 1 on the landmark's pixel. Points that are NaN give an
    all-zero map. ``merge`` takes the per-pixel maximum over the points: (N, 1, size, size).
    """
    if points.ndim != 3 or points.shape[-1] != 2:
        raise LandmarkError(f"landmarks must be (N, P, 2); got {tuple(points.shape)}")
    pts = points.to(torch.float32)
    valid = torch.isfinite(pts).all(-1)  # (N, P)
    pts = torch.where(valid[..., None], pts, torch.zeros_like(pts))
    grid = torch.arange(size, device=pts.device, dtype=torch.float32)
    gx = torch.exp(-((grid[None, None, :] - pts[..., 0:1]) ** 2) / (2 * sigma**2))  # (N, P, W)
    gy = torch.exp(-((grid[None, None, :] - pts[..., 1:2]) ** 2) / (2 * sigma**2))  # (N, P, H)
    maps = gy[..., :, None] * gx[..., None, :] * valid[..., None, None]
    if merge:
        maps = maps.amax(dim=1, keepdim=True)
    return maps.to(points.dtype if points.is_floating_point() else torch.float32)


def interocular(points: Tensor | np.ndarray) -> Tensor:
    """Distance between the two eye centres (means of points 36-41 and 42-47) of (..., 68, 2) landmarks."""
    p = torch.as_tensor(points, dtype=torch.float32)
    return (p[..., RIGHT_EYE, :].mean(-2) - p[..., LEFT_EYE, :].mean(-2)).norm(dim=-1)


def mean_displacements(neutral: np.ndarray, target: np.ndarray, labels: Sequence[str],
                       expressions: Sequence[str]) -> np.ndarray:
    """Per-expression mean landmark displacement (target - neutral) / inter-ocular distance.

    ``neutral`` and ``target`` are (M, 68, 2) landmarks of M same-person pairs in the same aligned
    frame, ``labels`` the target expression of each pair. Returns (len(expressions), 68, 2)
    float32; an expression without pairs (e.g. ``neutral``) gets zeros.
    """
    neutral = np.asarray(neutral, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if neutral.shape != target.shape or neutral.ndim != 3 or neutral.shape[1:] != (N_POINTS, 2):
        raise LandmarkError(f"need two (M, 68, 2) arrays; got {neutral.shape} and {target.shape}")
    if len(labels) != len(neutral):
        raise LandmarkError(f"{len(labels)} labels for {len(neutral)} pairs")
    iod = interocular(neutral).numpy().astype(np.float64)[:, None, None]
    disp = (target - neutral) / np.maximum(iod, 1e-6)
    out = np.zeros((len(expressions), N_POINTS, 2), dtype=np.float32)
    labels = list(labels)
    for k, e in enumerate(expressions):
        rows = [i for i, lab in enumerate(labels) if lab == e]
        if rows:
            out[k] = disp[rows].mean(0)
    return out


def fit_template(points: Tensor, labels: Tensor, displacements: Tensor, intensity: float = 1.0) -> Tensor:
    """Target landmarks of each face: its own (N, 68, 2) landmarks plus ``intensity`` times the
    mean displacement of its target class (``labels``: (N,) indices into ``displacements``),
    scaled by the face's inter-ocular distance."""
    iod = interocular(points).to(points)[:, None, None]
    return points + float(intensity) * displacements.to(points)[labels] * iod
