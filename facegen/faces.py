"""Faces in photos: detect, landmark, align to a canonical crop, and paste a processed crop back.

Detection is YuNet (boxes, scores and 5 points), 68-point landmarks are dlib's iBUG 300-W
shape predictor. Alignment is a least-squares similarity transform (Umeyama) from the
detected 5 points onto a template; every crop carries its (2, 3) matrix (and a validity mask where it reaches past the
photo) so that a processed crop, even a super-resolved larger one, can be warped back into the
photo with a feathered mask (:mod:`facegen.paste`).

Coordinates are in pixels with pixel centres at integers (OpenCV's convention). Template
positions are stored as fractions ``u`` of the crop side in continuous coordinates, so a
point lands at pixel ``u * size - 0.5`` for every output size.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from facegen import assets

__all__ = [
    "FaceNotFoundError",
    "Face",
    "Aligned",
    "TEMPLATES",
    "face_box",
    "box_slices",
    "detect",
    "detect_small",
    "scale_face",
    "detect_faces",
    "centred_face",
    "landmarks68",
    "similarity_transform",
    "alignment_matrix",
    "template_points",
    "align",
]


class FaceNotFoundError(ValueError):
    """No face was found in the picture."""


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    ``box`` is (x, y, w, h) in photo pixels; ``points`` is (5, 2) float32 in YuNet's order:
    right eye, left eye, nose tip, right mouth corner, left mouth corner, where "right" is
    the subject's right (the image's left in a frontal photo).
    """

    box: tuple[float, float, float, float]
    score: float
    points: np.ndarray = field(repr=False)

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return (x + w / 2.0, y + h / 2.0)


@dataclass(frozen=True, eq=False)
class Aligned:
    """An aligned crop and the similarity transform that made it.

    ``matrix`` maps photo pixel coordinates to crop pixel coordinates of this ``size``.
    ``valid`` (float32, size x size, in [0, 1]) is the fraction of each crop pixel that lies
    inside the photo: where a crop reaches past the photo, its pixels repeat the photo's edge
    (never a reflection, which would put a mirrored head in the crop) and ``valid`` is 0.
    """

    image: np.ndarray
    matrix: np.ndarray
    size: int
    valid: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]

    @property
    def padded(self) -> bool:
        """True when part of the crop lies outside the photo."""
        return bool(self.valid is not None and (self.valid < 1.0 - 1e-6).any())


# Canonical 5-point positions as fractions of the crop side (continuous coordinates), in
# YuNet order: right eye, left eye, nose tip, right mouth corner, left mouth corner.
TEMPLATES: dict[str, np.ndarray] = {
    # Measured on the 1,000 CelebA-aligned 128x128 faces of the FSRNet validation set
    # (celeba_fsrnet/celeba_val_1000_HR): YuNet (score >= 0.6) found a face in 998 of them;
    # each point p was normalised as (p + 0.5) / 128 and averaged over those 998 faces
    # (per-coordinate standard deviation 0.020-0.044, i.e. 2.5-5.6 px at 128).
    "celeba": np.array(
        [
            [0.36985, 0.37225],
            [0.63908, 0.37078],
            [0.49906, 0.52780],
            [0.39647, 0.64637],
            [0.62624, 0.64748],
        ],
        dtype=np.float64,
    ),
    # The FFHQ 5-point template used by GFPGAN/facexlib for FFHQ-aligned faces, given there at
    # 512x512 in pixels; divided by 512 here.
    "ffhq": np.array(
        [
            [192.98138, 239.94708],
            [318.90277, 240.19360],
            [256.63416, 314.01935],
            [201.26117, 371.41043],
            [313.08905, 371.15118],
        ],
        dtype=np.float64,
    )
    / 512.0,
    # The ArcFace 112x112 template (insightface.utils.face_align.arcface_dst, the crop SFace and
    # ArcFace were trained on), pixel centres converted to fractions: (p + 0.5) / 112.
    "arcface": (
        np.array(
            [
                [38.2946, 51.6963],
                [73.5318, 51.5014],
                [56.0252, 71.7366],
                [41.5493, 92.3655],
                [70.7299, 92.2041],
            ],
            dtype=np.float64,
        )
        + 0.5
    )
    / 112.0,
    # Paper 000's crop rule: eye distance d, a square of side 6.4 d, eyes 3.2 d below the top
    # edge, centred horizontally on the eye midpoint, eyes level. Only the two eyes are used,
    # so the fit is exact: the eyes sit 1/6.4 of the side apart on the horizontal mid-line.
    "expression": np.array(
        [[0.5 - 0.5 / 6.4, 3.2 / 6.4], [0.5 + 0.5 / 6.4, 3.2 / 6.4]],
        dtype=np.float64,
    ),
}

# Faces narrower than this (box width, photo pixels) are also searched for on enlarged copies
# of the photo (see detect_small): YuNet alone misses faces below about 20 pixels.
SMALL_FACE = 32

# Pictures are padded to at least this side before detection (see detect).
_MIN_DETECT_SIDE = 64

# Largest intermediate side used to supersample a crop before area down-sampling.
MAX_SUPERSAMPLE_SIDE = 4096

# ---------------------------------------------------------------------------------------------
# Detector and predictor caches. A cv2 FaceDetectorYN keeps its input size as state, so each
# thread gets its own (they are small); the dlib predictor is ~100 MB, so there is one per
# process, and calls into it are serialised with a lock.
_local = threading.local()
_predictor_lock = threading.Lock()
_predictor = None


def _detector() -> cv2.FaceDetectorYN:
    det = getattr(_local, "yunet", None)
    if det is None:
        det = cv2.FaceDetectorYN.create(str(assets.path("yunet")), "", (320, 320), 0.6, 0.3, 5000)
        _local.yunet = det
    return det


def _shape_predictor():
    global _predictor
    if _predictor is None:
        import dlib

        with _predictor_lock:
            if _predictor is None:
                _predictor = dlib.shape_predictor(str(assets.path("dlib68")))
    return _predictor


def check_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(
            f"The {what} must be a uint8 HxWx3 RGB array (got {dtype} of shape {shape}); "
            "read files with facegen.images.read_image."
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"The {what} is empty ({image.shape[1]}x{image.shape[0]} pixels).")
    return np.ascontiguousarray(image)


# ---------------------------------------------------------------------------------------------
# Detection


def detect(image: np.ndarray, *, min_score: float = 0.6, max_side: int = 1280) -> list[Face]:
    """All faces with score >= ``min_score``, largest box first; [] when there is none.

    Photos larger than ``max_side`` are detected on an area-downscaled copy (bounded time
    and memory); boxes and points are returned in the original photo's pixels.
    """
    image = check_rgb(image)
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s < 1.0:
        sw, sh = max(1, round(w * s)), max(1, round(h * s))
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        sx, sy = sw / w, sh / h
    else:
        small, sx, sy = image, 1.0, 1.0
    # YuNet reads past the input when a side is below its largest stride (32 px) and then
    # reports faces at random coordinates; pad small pictures (bottom/right, black) instead.
    pad_h, pad_w = max(0, _MIN_DETECT_SIDE - small.shape[0]), max(0, _MIN_DETECT_SIDE - small.shape[1])
    if pad_h or pad_w:
        small = cv2.copyMakeBorder(small, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    det = _detector()
    det.setInputSize((small.shape[1], small.shape[0]))
    det.setScoreThreshold(float(min_score))
    _, rows = det.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    faces: list[Face] = []
    for r in [] if rows is None else rows:
        # Box edges scale directly; pixel-centre points map as (p + 0.5) / s - 0.5.
        box = (float(r[0] / sx), float(r[1] / sy), float(r[2] / sx), float(r[3] / sy))
        pts = r[4:14].reshape(5, 2).astype(np.float64)
        pts[:, 0] = (pts[:, 0] + 0.5) / sx - 0.5
        pts[:, 1] = (pts[:, 1] + 0.5) / sy - 0.5
        if not (np.isfinite(box).all() and box[2] > 0 and box[3] > 0 and box[0] < w and box[1] < h
                and box[0] + box[2] > 0 and box[1] + box[3] > 0):
            continue  # not a face inside the picture (e.g. found only in the padding)
        faces.append(Face(box=box, score=float(r[14]), points=pts.astype(np.float32)))
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


def detect_small(image: np.ndarray, *, min_score: float = 0.6, max_side: int = 2560) -> list[Face]:
    """Like :func:`detect`, and also on 2x, 4x and 8x bicubic enlargements of the photo while their
    longest side stays within ``max_side``, so faces down to about 8 pixels are found (YuNet alone
    misses faces below about 20 pixels, the very faces 4x and 8x super-resolution exist for).
    Detections of one face at several scales are merged (the best-scoring box is kept)."""
    image = check_rgb(image)
    h, w = image.shape[:2]
    found = detect(image, min_score=min_score)
    for k in (2, 4, 8):
        if max(h, w) * k > max_side:
            break
        big = cv2.resize(image, (w * k, h * k), interpolation=cv2.INTER_CUBIC)
        # Only small faces come from the enlarged copies: larger ones the photo itself shows, and an
        # enlarged photo makes YuNet see faces in texture (a badge, a fold) at sizes it would not.
        found += [f for f in (scale_face(f, 1.0 / k) for f in detect(big, min_score=min_score, max_side=max_side))
                  if f.box[2] < SMALL_FACE]
    kept: list[Face] = []
    for f in sorted(found, key=lambda f: f.score, reverse=True):
        if all(_iou(f.box, g.box) < 0.3 for g in kept):
            kept.append(f)
    kept.sort(key=lambda f: f.area, reverse=True)
    return kept


def scale_face(face: Face, factor: float) -> Face:
    """The same face in the photo resized by ``factor`` (pixel centres map as (p + 0.5) f - 0.5)."""
    x, y, w, h = face.box
    pts = (face.points.astype(np.float64) + 0.5) * factor - 0.5
    return Face(box=(x * factor, y * factor, w * factor, h * factor), score=face.score, points=pts.astype(np.float32))


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


def detect_faces(image: np.ndarray, *, small: bool = False, **kw) -> list[Face]:
    """Like :func:`detect` (:func:`detect_small` with ``small=True``), but raises
    :class:`FaceNotFoundError` when there is no face."""
    faces = detect_small(image, **kw) if small else detect(image, **kw)
    if not faces:
        raise FaceNotFoundError(
            "No face was found in this picture. Please use a photo where a face is clearly "
            "visible, roughly frontal, and at least about 20 pixels wide."
        )
    return faces


def centred_face(faces: list[Face], shape: tuple[int, ...]) -> Face:
    """The face whose box centre is nearest the image centre (the subject of a centred photo,
    as in LFW, where bystanders are often larger or score higher)."""
    if not faces:
        raise FaceNotFoundError("No face was found in this picture.")
    cy, cx = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    return min(faces, key=lambda f: (f.centre[0] - cx) ** 2 + (f.centre[1] - cy) ** 2)


def landmarks68(image: np.ndarray, face: Face) -> np.ndarray:
    """The 68 iBUG 300-W landmarks of ``face`` as (68, 2) float32 photo pixels (dlib)."""
    import dlib

    image = check_rgb(image)
    # dlib's predictor was trained on boxes of dlib's own HOG detector, which are tighter than
    # YuNet's (they start at the brows, not the hairline); this box is derived from YuNet's.
    rect = dlib.rectangle(*_dlib_box(face, image.shape[1], image.shape[0]))
    predictor = _shape_predictor()
    with _predictor_lock:
        shape = predictor(image, rect)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def _dlib_box(face: Face, width: int, height: int) -> tuple[int, int, int, int]:
    x, y, w, h = face.box
    left, top = x + _DLIB_BOX[0] * w, y + _DLIB_BOX[1] * h
    right, bottom = x + _DLIB_BOX[2] * w, y + _DLIB_BOX[3] * h
    return (round(left), round(top), round(right), round(bottom))


# (left, top, right, bottom) of dlib's HOG-detector box as fractions of the YuNet box: the mean
# over 193 LFW and JAFFE faces found by both detectors (per-value standard deviation 0.05-0.09).
_DLIB_BOX = (-0.034, 0.129, 1.079, 0.966)


# ---------------------------------------------------------------------------------------------
# Alignment


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto
    ``dst`` (both (N, 2), N >= 2), as a (2, 3) float64 matrix (Umeyama 1991, no reflection)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need two (N, 2) point sets with N >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("the source points coincide; no similarity transform is defined")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


#: Mouth centre below the eye centre, in eye distances, for templates that place the eyes alone:
#: measured on the 5-point ``celeba`` template (1.02).
MOUTH_BELOW_EYES = 1.02


def face_box(template: str) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the face in a crop aligned by ``template``, as fractions of
    the side: the box of its 5 points grown by 0.6 eye distances (brows, cheeks, chin). For a
    template of the two eyes alone the mouth is placed :data:`MOUTH_BELOW_EYES` eye distances
    below their centre."""
    pts = np.asarray(template_array(template), dtype=np.float64)
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


def zoomed(template: str, factor: float) -> str:
    """The name of ``template`` with its points scaled by ``factor`` about the crop's centre
    (``factor`` < 1: a smaller face with more of the photo around it), e.g. ``celeba@0.625``."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown alignment template {template!r}; known: {sorted(TEMPLATES)}")
    if not 0.1 <= factor <= 1.0:
        raise ValueError(f"template zoom must be in [0.1, 1]; got {factor!r}")
    return template if factor == 1.0 else f"{template}@{factor:g}"


def template_array(template: str) -> np.ndarray:
    """The template's points as fractions of the crop side; ``name@factor`` (:func:`zoomed`) scales
    ``name``'s points by ``factor`` about the centre."""
    name, _, zoom = template.partition("@")
    if name not in TEMPLATES:
        raise ValueError(f"unknown alignment template {template!r}; known: {sorted(TEMPLATES)}")
    if not zoom:
        return TEMPLATES[name]
    try:
        factor = float(zoom)
    except ValueError:
        raise ValueError(f"template zoom must be a number; got {template!r}") from None
    zoomed(name, factor)  # checks the range
    return 0.5 + factor * (TEMPLATES[name] - 0.5)


def template_points(template: str, size: int) -> np.ndarray:
    """The template's points in pixel coordinates of a ``size`` x ``size`` crop."""
    return template_array(template) * size - 0.5


def alignment_matrix(points: np.ndarray, size: int, template: str = "celeba") -> np.ndarray:
    """(2, 3) similarity mapping photo pixels to ``size`` crop pixels for these 5 points."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if points.shape[0] != 5:
        raise ValueError(f"need the 5 YuNet points, got {points.shape[0]}")
    dst = template_points(template, size)
    return similarity_transform(points[: len(dst)], dst)


def matrix_scale(matrix: np.ndarray) -> float:
    return math.sqrt(abs(np.linalg.det(np.asarray(matrix)[:, :2])))


def finer_grid(matrix: np.ndarray, k: float) -> np.ndarray:
    """Matrix to an output grid ``k`` times finer: x_k = k (x + 0.5) - 0.5."""
    m = np.array(matrix, dtype=np.float64) * k
    m[:, 2] += (k - 1.0) / 2.0
    return m


def align(image: np.ndarray, face: Face | np.ndarray, size: int, template: str = "celeba") -> Aligned:
    """Crop ``face`` to a ``size`` x ``size`` canonical view.

    Templates: ``celeba`` (the CelebA/FSRNet 128x128 aligned faces, measured), ``ffhq``
    (FFHQ 5-point), ``arcface`` (112x112 identity crops), ``expression`` (paper 000: side
    6.4 d, eyes level and 3.2 d from the top). When the crop shrinks the face, it is warped
    at an integer multiple of ``size`` and area-averaged down, so small crops do not alias.
    Parts of the crop outside the photo repeat its edge pixels and are 0 in ``valid``.
    """
    image = check_rgb(image)
    if int(size) != size or size < 1:
        raise ValueError(f"crop size must be a positive integer, got {size!r}")
    size = int(size)
    points = face.points if isinstance(face, Face) else np.asarray(face)
    matrix = alignment_matrix(points, size, template)
    crop = _warp(image, matrix, size, cv2.BORDER_REPLICATE)
    inside = np.ones(image.shape[:2], dtype=np.float32)
    valid = np.clip(_warp(inside, matrix, size, cv2.BORDER_CONSTANT), 0.0, 1.0)
    return Aligned(image=crop, matrix=matrix, size=size, valid=valid)


def _warp(image: np.ndarray, matrix: np.ndarray, size: int, border: int) -> np.ndarray:
    """``image`` warped by ``matrix`` onto a ``size`` x ``size`` grid. When the warp shrinks, it
    is done at an integer multiple of ``size`` and area-averaged down, so small crops do not alias."""
    scale = matrix_scale(matrix)
    k = 1
    if scale < 1.0:
        k = max(1, min(math.ceil(1.0 / scale - 1e-6), MAX_SUPERSAMPLE_SIDE // size))
    if k > 1:
        big = cv2.warpAffine(image, finer_grid(matrix, k), (size * k, size * k),
                             flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
        return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC if scale > 1.0 else cv2.INTER_LINEAR,
                          borderMode=border, borderValue=0)
