"""68-point landmarks of real faces (YuNet detection + dlib), in the pixels of aligned crops.

The landmark-guided models consume landmarks but never find them: the runner
(:class:`facegen.inference.Runner`), the pipeline, the benchmark and the training data call these
functions and pass the points in (see :mod:`facegen.models.heatmaps`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from facegen import faces
from facegen.io import save_npy
from facegen.models.heatmaps import LandmarkError

__all__ = ["CROP_UPSAMPLE", "LandmarkError", "crop_landmarks", "crop_landmarks_cached", "landmarks_of_batch",
           "photo_landmarks"]

# Upsampling of an aligned crop before detection: the 'expression' template's faces are about 50
# pixels wide at 128, small for dlib's 68-point regressor, which works best on faces of 80+ px.
CROP_UPSAMPLE = 4


def crop_landmarks(crop: np.ndarray) -> np.ndarray:
    """The 68 landmarks of the face in an aligned uint8 (H, W, 3) RGB crop, in crop pixels (float32).

    The crop is enlarged ``CROP_UPSAMPLE`` times, the face nearest its centre is detected
    (YuNet) and landmarked (dlib), and the points are mapped back to the crop's pixels.
    Raises :class:`LandmarkError` when no face is found.
    """
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise LandmarkError(f"expected a uint8 (H, W, 3) RGB crop; got {crop.dtype} {crop.shape}")
    k = CROP_UPSAMPLE
    big = cv2.resize(crop, (crop.shape[1] * k, crop.shape[0] * k), interpolation=cv2.INTER_CUBIC)
    found = faces.detect(big, min_score=0.5)
    if not found:
        raise LandmarkError("no face was found in the aligned crop, so its landmarks are unknown")
    face = faces.centred_face(found, big.shape)
    pts = faces.landmarks68(big, face).astype(np.float64)
    return ((pts + 0.5) / k - 0.5).astype(np.float32)


def landmarks_of_batch(x: Tensor) -> Tensor:
    """(N, 68, 2) landmarks of a float NCHW [0, 1] batch of aligned faces (see :func:`crop_landmarks`)."""
    rgb = x if x.shape[1] == 3 else x.expand(-1, 3, -1, -1)
    arr = (rgb.detach().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return torch.from_numpy(np.stack([crop_landmarks(np.ascontiguousarray(a)) for a in arr])).to(x.device)


def photo_landmarks(photo: np.ndarray, size: int = 128, template: str = "expression") -> np.ndarray:
    """68 landmarks of the largest face of a uint8 RGB photo, in pixels of its aligned ``size`` crop.

    For a reference photo in the app: the points are found on the photo itself (dlib on the
    full-resolution face) and mapped by the same similarity transform that :func:`facegen.faces.align`
    uses, so they land where they would in the reference's own aligned crop. Raises
    :class:`facegen.faces.FaceNotFoundError` when the photo has no face.
    """
    face = faces.detect_faces(photo)[0]
    matrix = faces.alignment_matrix(face.points, size, template)
    pts = faces.landmarks68(photo, face).astype(np.float64)
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def crop_landmarks_cached(images: np.ndarray, cache_file: Path, progress: bool = True) -> np.ndarray:
    """(N, 68, 2) landmarks of aligned crops (NaN where no face was found), cached in ``cache_file``."""
    if cache_file.is_file():
        pts = np.load(cache_file, allow_pickle=False)
        if pts.shape == (len(images), 68, 2):
            return pts
    pts = np.full((len(images), 68, 2), np.nan, dtype=np.float32)
    for i in tqdm(range(len(images)), desc="68-point landmarks", disable=not progress):
        try:
            pts[i] = crop_landmarks(np.ascontiguousarray(images[i]))
        except LandmarkError:
            pass
    save_npy(cache_file, pts)
    return pts
