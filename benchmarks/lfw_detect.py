"""The subject face of each LFW image, found once and shared by every identity encoder.

Per image: YuNet detection (score >= 0.6, else >= LOW_SCORE); the face whose box centre is
nearest the image centre is the subject (LFW photos are centred on the named person and often
hold bystanders); with no face at all, a fixed centred face (LFW_MEAN_POINTS). The faces of an
image list are cached under the bench cache (:mod:`benchmarks.cache`) in a file keyed by the
list and the detector (model file, OpenCV version and the detection code), so a calibration
detects every image once, whatever the number of encoders, and a later one not at all.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from benchmarks.cache import cache_root, load_npz, save_npz
from facegen import assets
from facegen import faces as F

# Fallback when YuNet finds no face even at a low score: a fixed centred face, the 5 points of
# the average LFW subject (LFW's 250x250 images are centred on the named person), measured as
# the mean YuNet points of the centred face over the 4,798 images of the committed pairs (YuNet
# finds a face at score >= 0.6 in all of them; per-coordinate standard deviation 2.6-6.9 px).
LOW_SCORE = 0.3
LFW_MEAN_POINTS = np.array(
    [
        [102.95, 113.89],
        [148.81, 112.72],
        [125.68, 137.84],
        [108.32, 159.44],
        [146.69, 158.76],
    ],
    dtype=np.float32,
)

# How the subject face of an image was found.
FOUND, LOW, FALLBACK = 0, 1, 2


def subject_face(image: np.ndarray) -> tuple[F.Face, int]:
    """The subject face of one LFW image and how it was found (FOUND, LOW or FALLBACK)."""
    found = F.detect(image)
    status = FOUND
    if not found:
        found = F.detect(image, min_score=LOW_SCORE)
        status = LOW
    if found:
        return F.centred_face(found, image.shape), status
    h, w = image.shape[:2]
    pts = LFW_MEAN_POINTS * np.array([w / 250.0, h / 250.0], np.float32)
    return F.Face(box=(w * 0.25, h * 0.25, w * 0.5, h * 0.5), score=0.0, points=pts), FALLBACK


def detector_version() -> str:
    """The detector behind the cached faces: YuNet's file and hash, OpenCV, and a hash of the
    code that detects and picks the subject (facegen.faces and this module)."""
    code = hashlib.sha256(Path(F.__file__).read_bytes() + Path(__file__).read_bytes()).hexdigest()[:16]
    yunet = assets.ASSETS["yunet"]
    return f"{Path(yunet.path).name} (sha256 {yunet.sha256[:12]}), opencv {cv2.__version__}, code {code}"


def cache_key(names: list[str], version: str) -> str:
    """sha256 (16 hex) of the image list (in its order) and the detector version."""
    h = hashlib.sha256(version.encode())
    for name in names:
        h.update(b"\n" + name.encode())
    return h.hexdigest()[:16]


def cache_file(names: list[str]) -> Path:
    return cache_root() / f"lfw-faces-{cache_key(names, detector_version())}.npz"


def save_faces(path: Path, names: list[str], faces: list[F.Face], status: list[int]) -> None:
    """Write the faces of ``names`` (boxes as float64, points as float32: stored exactly)."""
    save_npz(
        path,
        names=np.array(names, dtype=str),
        box=np.array([f.box for f in faces], dtype=np.float64).reshape(-1, 4),
        score=np.array([f.score for f in faces], dtype=np.float64),
        points=np.stack([f.points for f in faces]).astype(np.float32) if faces else np.zeros((0, 5, 2), np.float32),
        status=np.array(status, dtype=np.int8),
    )


def load_faces(path: Path, names: list[str]) -> tuple[list[F.Face], list[int]] | None:
    """The faces saved for exactly these ``names``, or None (absent, damaged or another list)."""
    z = load_npz(path)
    if z is None or z["names"].tolist() != list(names):
        return None
    faces = [F.Face(box=tuple(float(v) for v in b), score=float(s), points=p)
             for b, s, p in zip(z["box"], z["score"], z["points"])]
    return faces, [int(s) for s in z["status"]]
