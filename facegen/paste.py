"""Paste a processed face crop back into its photo: inverse warp, feathered masks, changes only.

Every :class:`facegen.faces.Aligned` crop carries the (2, 3) matrix that made it, so a processed
crop, even a super-resolved larger one, can be warped back into the photo (or into the photo
enlarged by ``photo_scale``). :func:`paste_back` blends the crop itself; :func:`paste_change`
adds only what the model changed, so the photo keeps its own detail where the face is larger
than the model's output.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from facegen.faces import MAX_SUPERSAMPLE_SIDE, Aligned, check_rgb, finer_grid, matrix_scale, template_points

__all__ = ["scale_matrix", "face_mask", "paste_back", "paste_change"]

def scale_matrix(matrix: np.ndarray, photo_scale: float) -> np.ndarray:
    """Re-express a photo -> crop matrix for the photo up-scaled by ``photo_scale``."""
    p = float(photo_scale)
    if p <= 0:
        raise ValueError(f"photo_scale must be positive, got {photo_scale}")
    # x_orig = (x' + 0.5) / p - 0.5 for pixel centres.
    pre = np.array([[1 / p, 0, (1 / p - 1) / 2], [0, 1 / p, (1 / p - 1) / 2], [0, 0, 1]])
    return np.asarray(matrix, dtype=np.float64) @ pre


def _feather_mask(side_y: int, side_x: int, feather: float) -> np.ndarray:
    """1 inside, falling smoothly (smoothstep) to 0 over ``feather`` of the side at the edges."""
    ys = np.minimum(np.arange(side_y) + 0.5, side_y - np.arange(side_y) - 0.5)
    xs = np.minimum(np.arange(side_x) + 0.5, side_x - np.arange(side_x) - 0.5)
    width = max(feather * min(side_y, side_x), 1e-6)
    ry = np.clip(ys / width, 0, 1)
    rx = np.clip(xs / width, 0, 1)
    ry, rx = ry * ry * (3 - 2 * ry), rx * rx * (3 - 2 * rx)
    return (ry[:, None] * rx[None, :]).astype(np.float32)


def face_mask(template: str, size: int, *, width: float = 1.25, height: float = 1.55, soft: float = 0.25) -> np.ndarray:
    """A feathered ellipse over the inner face of a ``size`` x ``size`` crop aligned with ``template``.

    With d the eye distance of the template, the ellipse is centred 0.6 d below the eyes' midpoint
    (brows to chin) with semi-axes ``width`` d and ``height`` d; it is 1 inside ``1 - soft`` of
    its radius and falls smoothly to 0 at the ellipse. For :func:`paste_back` of models that
    redraw the face but not the hair and background of a loose crop (expression synthesis).
    """
    eyes = template_points(template, size)[:2]
    centre = eyes.mean(0)
    d = float(np.linalg.norm(eyes[1] - eyes[0]))
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    r = np.sqrt(((xs - centre[0]) / (width * d)) ** 2 + ((ys - centre[1] - 0.6 * d) / (height * d)) ** 2)
    t = np.clip((1.0 - r) / soft, 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _crop_to_photo(matrix: Aligned | np.ndarray, crop_side: int, aligned_size: int | None,
                   photo_scale: float) -> np.ndarray:
    """The (2, 3) matrix from pixels of the (up-scaled) photo to pixels of a ``crop_side`` crop."""
    if isinstance(matrix, Aligned):
        if aligned_size is not None and aligned_size != matrix.size:
            raise ValueError(f"aligned_size={aligned_size} disagrees with the Aligned crop's size {matrix.size}")
        aligned_size, m = matrix.size, matrix.matrix
    else:
        if aligned_size is None:
            raise ValueError("pass aligned_size (the crop size the matrix maps to) with a bare matrix, or pass the Aligned")
        m = np.asarray(matrix, dtype=np.float64)
    # photo' -> original photo -> aligned grid -> crop grid.
    return finer_grid(scale_matrix(m, photo_scale), crop_side / aligned_size)


def _paste_mask(crop_shape: tuple[int, ...], matrix: Aligned | np.ndarray, feather: float,
                mask: np.ndarray | None) -> np.ndarray:
    """Feathered crop edges x ``mask`` x the crop's validity (padded pixels are never pasted)."""
    if crop_shape[0] != crop_shape[1]:
        raise ValueError(f"the crop must be square, got {crop_shape[1]}x{crop_shape[0]}")
    if not 0.0 <= feather < 0.5:
        raise ValueError(f"feather must be in [0, 0.5), got {feather}")
    out = _feather_mask(crop_shape[0], crop_shape[1], feather)
    if mask is not None:
        if np.shape(mask) != crop_shape[:2]:
            raise ValueError(f"the mask must be {crop_shape[1]}x{crop_shape[0]} like the crop, got shape {np.shape(mask)}")
        out = out * np.clip(np.asarray(mask, np.float32), 0, 1)
    valid = matrix.valid if isinstance(matrix, Aligned) else None
    if valid is not None:
        if valid.shape != crop_shape[:2]:
            valid = cv2.resize(valid, (crop_shape[1], crop_shape[0]), interpolation=cv2.INTER_LINEAR)
        out = out * np.clip(valid, 0, 1)
    return out.astype(np.float32)


def _warp_into(photo_shape: tuple[int, ...], crop: np.ndarray, mask: np.ndarray, m: np.ndarray):
    """Warp ``crop`` (float32) and ``mask`` by the inverse of ``m`` onto the crop's footprint in the photo.

    Returns ((y0, y1, x0, x1), warped, warped mask), or None when the footprint misses the photo.
    Only the footprint is warped (bounded work on large photos).
    """
    inv = cv2.invertAffineTransform(m)
    c = crop.shape[0]
    corners = np.array([[-0.5, -0.5, 1], [c - 0.5, -0.5, 1], [-0.5, c - 0.5, 1], [c - 0.5, c - 0.5, 1]]) @ inv.T
    H, W = photo_shape[:2]
    x0, y0 = max(0, math.floor(corners[:, 0].min())), max(0, math.floor(corners[:, 1].min()))
    x1, y1 = min(W, math.ceil(corners[:, 0].max()) + 1), min(H, math.ceil(corners[:, 1].max()) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    roi = m.copy()
    roi[:, 2] += roi[:, :2] @ np.array([x0, y0], dtype=np.float64)
    rw, rh = x1 - x0, y1 - y0
    s = matrix_scale(m)
    # Where the crop is finer than the photo, warp onto a k-times finer grid and area-average
    # it down: one interpolation and a box filter, so nothing aliases or blurs twice.
    k = 1
    if s > 1.0 + 1e-6:
        k = max(1, min(math.ceil(s - 1e-6), int(math.sqrt(MAX_SUPERSAMPLE_SIDE**2 / (rw * rh)))))
    if k > 1:
        fine = roi @ np.array([[1 / k, 0, (1 / k - 1) / 2], [0, 1 / k, (1 / k - 1) / 2], [0, 0, 1]])
        size, interp = (rw * k, rh * k), cv2.INTER_LINEAR
    else:
        fine, size = roi, (rw, rh)
        interp = cv2.INTER_CUBIC if s < 1.0 - 1e-6 else cv2.INTER_LINEAR
    warped = cv2.warpAffine(crop, fine, size, flags=interp | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    wmask = cv2.warpAffine(mask, fine, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if k > 1:
        warped = cv2.resize(warped, (rw, rh), interpolation=cv2.INTER_AREA)
        wmask = cv2.resize(wmask, (rw, rh), interpolation=cv2.INTER_AREA)
    return (y0, y1, x0, x1), warped.reshape(rh, rw, -1), np.clip(wmask, 0, 1)[..., None]


def paste_back(
    photo: np.ndarray,
    crop: np.ndarray,
    matrix: Aligned | np.ndarray,
    *,
    aligned_size: int | None = None,
    photo_scale: float = 1.0,
    feather: float = 0.1,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Warp a processed ``crop`` back into ``photo`` with a feathered mask; returns a new photo.

    ``matrix`` is the :class:`Aligned` the crop came from, or its (2, 3) matrix together with
    ``aligned_size`` (the size the matrix maps to). The crop may be larger than that size
    (a super-resolved crop): its scale is ``crop side / aligned_size``. ``photo`` may be the
    original photo up-scaled by ``photo_scale``. ``feather`` is the fraction of the crop side
    over which the mask fades to zero at the crop's edges, so there are no seams. ``mask``
    (float, crop-sized, in [0, 1], e.g. :func:`face_mask`) limits what is pasted further;
    crop pixels outside the photo (an :class:`Aligned`'s ``valid``) are never pasted.
    """
    photo = check_rgb(photo, "photo")
    crop = check_rgb(crop, "crop")
    alpha = _paste_mask(crop.shape, matrix, feather, mask)
    m = _crop_to_photo(matrix, crop.shape[0], aligned_size, photo_scale)
    out = photo.copy()
    placed = _warp_into(photo.shape, crop.astype(np.float32), alpha, m)
    if placed is None:
        return out
    (y0, y1, x0, x1), warped, a = placed
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(np.rint(region * (1 - a) + warped * a), 0, 255).astype(np.uint8)
    return out


def paste_change(
    photo: np.ndarray,
    output: np.ndarray,
    model_input: np.ndarray,
    matrix: Aligned | np.ndarray,
    *,
    aligned_size: int | None = None,
    photo_scale: float = 1.0,
    feather: float = 0.1,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Add only what a model changed to ``photo``: ``output - model_input``, warped back and feathered.

    ``model_input`` is what the model saw, brought to the output's size the way the model's own
    baseline would (bicubic for super-resolution, unchanged for same-size models). Where the face
    in the photo is larger than the model's output, pasting the output itself would replace the
    photo's detail with the model's coarser crop (a blur box); the change carries the model's
    edit while untouched skin, hair and background keep the photo's own resolution. A model that
    changes nothing (e.g. the bicubic baseline) leaves the photo exactly as it was.
    Arguments as :func:`paste_back`.
    """
    photo = check_rgb(photo, "photo")
    output = check_rgb(output, "model output")
    model_input = check_rgb(model_input, "model input")
    if model_input.shape != output.shape:
        raise ValueError(f"the model input must be brought to the output's size {output.shape[:2]} first, "
                         f"got {model_input.shape[:2]}")
    alpha = _paste_mask(output.shape, matrix, feather, mask)
    m = _crop_to_photo(matrix, output.shape[0], aligned_size, photo_scale)
    out = photo.copy()
    change = output.astype(np.float32) - model_input.astype(np.float32)
    placed = _warp_into(photo.shape, change, alpha, m)
    if placed is None:
        return out
    (y0, y1, x0, x1), warped, a = placed
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(np.rint(region + warped * a), 0, 255).astype(np.uint8)
    return out
