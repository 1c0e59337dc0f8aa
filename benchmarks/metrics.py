"""Benchmark metrics as pure, typed functions (SPEC section 2).

Image conventions, stated once and repeated on each function:
- an *image* is a numpy array, ``uint8`` HWC RGB in [0, 255] (or HW grey), or a floating array
  of the same layout in [0, 1]; floating inputs are scaled by 255 before scoring;
- accuracies and rates are fractions in [0, 1] (the leaderboard multiplies by 100).

Metrics on deep features (LPIPS, the FID/KID backbones) are in :mod:`benchmarks.perceptual`;
identity verification and eigenfaces in :mod:`benchmarks.verification`.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from facegen.colour import luma


class MetricError(ValueError):
    """Inputs that a metric cannot score (shape, range, size), explained in one sentence."""


# ---------------------------------------------------------------------------------------------
# Image helpers
# ---------------------------------------------------------------------------------------------


def _as_float255(image: np.ndarray, what: str = "image") -> np.ndarray:
    """uint8 [0,255] or float [0,1] HWC/HW -> float64 [0,255], same layout."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise MetricError(f"{what} must be HW grey or HWC with 1 or 3 channels, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float64)
    if np.issubdtype(image.dtype, np.floating):
        lo, hi = float(image.min()), float(image.max())
        # A float image in [0, 255] passed by mistake would score as nonsense: refuse it.
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise MetricError(
                f"{what} is floating point with values in [{lo:.3g}, {hi:.3g}]; "
                "floating images must be in [0, 1] (pass uint8 for [0, 255])"
            )
        return image.astype(np.float64) * 255.0
    raise MetricError(f"{what} has dtype {image.dtype}; use uint8 in [0, 255] or float in [0, 1]")


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma Y of an RGB image, as BasicSR's ``rgb2ycbcr(img, y_only=True)``.

    Input: uint8 HWC RGB [0,255] or float HWC RGB [0,1]. Output: float64 HW in [16, 235].
    Y = 16 + (65.481 R + 128.553 G + 24.966 B) with R, G, B in [0, 1]. BasicSR evaluates this
    in float32 (its ``to_y_channel``); the same rounding is kept so values match it exactly.
    """
    rgb = _as_float255(image)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise MetricError(f"rgb_to_y needs an HWC RGB image, got shape {rgb.shape}")
    y = luma(rgb.astype(np.float32) / np.float32(255.0), studio=True, method="dot")  # float64 in [16, 235] / 255
    return (y.astype(np.float32) * np.float32(255.0)).astype(np.float64)


def _prepare_pair(
    pred: np.ndarray, target: np.ndarray, crop_border: int, test_y_channel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 HWC [0,255] (HW1 for Y), cropped, after shape checks."""
    a, b = np.asarray(pred), np.asarray(target)
    if a.shape != b.shape:
        raise MetricError(f"images have different shapes: {a.shape} and {b.shape}")
    if crop_border < 0:
        raise MetricError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        if 2 * crop_border >= min(a.shape[0], a.shape[1]):
            raise MetricError(f"crop_border {crop_border} leaves nothing of a {a.shape[:2]} image")
        a = a[crop_border:-crop_border, crop_border:-crop_border, ...]
        b = b[crop_border:-crop_border, crop_border:-crop_border, ...]
    if test_y_channel and a.ndim == 3 and a.shape[2] == 3:
        fa, fb = rgb_to_y(a), rgb_to_y(b)
    else:
        # Grey images have no Y conversion to make: BasicSR scores them as they are.
        fa, fb = _as_float255(a, "prediction"), _as_float255(b, "target")
    if fa.ndim == 2:
        fa, fb = fa[..., None], fb[..., None]
    return fa, fb


def psnr(pred: np.ndarray, target: np.ndarray, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """PSNR in dB, BasicSR's ``calculate_psnr``: 10 log10(255^2 / MSE) over all kept pixels.

    Inputs: uint8 HWC RGB [0,255] (or float [0,1]; HW grey allowed), same shape. ``crop_border``
    pixels are removed on every side first; ``test_y_channel`` scores the BT.601 Y channel
    (see :func:`rgb_to_y`). Identical images give ``inf``.
    """
    a, b = _prepare_pair(pred, target, crop_border, test_y_channel)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0 * 255.0 / mse))


SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


@functools.lru_cache(maxsize=1)
def _gaussian_kernel_1d() -> np.ndarray:
    # cv2.getGaussianKernel(11, 1.5): exp(-(i - 5)^2 / (2 sigma^2)), normalised to sum 1.
    x = np.arange(SSIM_WINDOW, dtype=np.float64) - (SSIM_WINDOW - 1) / 2
    k = np.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    return k / k.sum()


def _filter_valid(x: np.ndarray) -> np.ndarray:
    """11x11 Gaussian filtering of an HW float64 array keeping only 'valid' positions (H-10, W-10).

    BasicSR's cv2.filter2D followed by the [5:-5, 5:-5] crop, as OpenCV's separable filter (the
    window is separable; equal to the 2-D filter to float rounding): positions whose window leaves
    the image are cut, so the border mode never counts.
    """
    k = _gaussian_kernel_1d()
    r = SSIM_WINDOW // 2
    return cv2.sepFilter2D(np.ascontiguousarray(x), cv2.CV_64F, k, k, borderType=cv2.BORDER_REFLECT)[r:-r, r:-r]


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    c1 = (SSIM_K1 * 255) ** 2
    c2 = (SSIM_K2 * 255) ** 2
    mu1, mu2 = _filter_valid(a), _filter_valid(b)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter_valid(a * a) - mu1_sq
    sigma2_sq = _filter_valid(b * b) - mu2_sq
    sigma12 = _filter_valid(a * b) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return float(ssim_map.mean())


def ssim(pred: np.ndarray, target: np.ndarray, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """SSIM in [-1, 1], BasicSR's ``calculate_ssim``.

    Inputs: uint8 HWC RGB [0,255] (or float [0,1]; HW grey allowed), same shape, at least 11x11
    after ``crop_border``. 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, data range
    255, population (not sample) statistics, mean of the SSIM map over the 'valid' positions
    only (the window never leaves the image); RGB is the mean of the per-channel SSIMs;
    ``test_y_channel`` scores the BT.601 Y channel (see :func:`rgb_to_y`).
    """
    a, b = _prepare_pair(pred, target, crop_border, test_y_channel)
    if min(a.shape[0], a.shape[1]) < SSIM_WINDOW:
        raise MetricError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {a.shape[:2]}")
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def _pairwise(
    fn: Callable[..., float], preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], **kwargs: object
) -> list[float]:
    if len(preds) != len(targets):
        raise MetricError(f"{len(preds)} predictions but {len(targets)} targets")
    return [fn(p, t, **kwargs) for p, t in zip(preds, targets)]


def psnr_many(
    preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], crop_border: int = 0, test_y_channel: bool = False
) -> list[float]:
    """:func:`psnr` of each (prediction, target) pair, in order (uint8 HWC RGB images)."""
    return _pairwise(psnr, preds, targets, crop_border=crop_border, test_y_channel=test_y_channel)


def ssim_many(
    preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], crop_border: int = 0, test_y_channel: bool = False
) -> list[float]:
    """:func:`ssim` of each (prediction, target) pair, in order (uint8 HWC RGB images)."""
    return _pairwise(ssim, preds, targets, crop_border=crop_border, test_y_channel=test_y_channel)


def _block_means(x: np.ndarray, grid: int) -> np.ndarray:
    """(grid, grid) means of the blocks of an HW array, bins as torch's adaptive average pooling
    (block i spans floor(i n / grid) to ceil((i + 1) n / grid))."""
    h, w = x.shape
    rows = [(i * h // grid, -(-(i + 1) * h // grid)) for i in range(grid)]
    cols = [(j * w // grid, -(-(j + 1) * w // grid)) for j in range(grid)]
    return np.array([[x[r0:r1, c0:c1].mean() for c0, c1 in cols] for r0, r1 in rows])


def light_change(pred: np.ndarray, reference: np.ndarray, box: tuple[int, int, int, int], grid: int = 4) -> float:
    """How much the light of a region changed, in grey levels: the mean absolute difference of the
    (``grid`` x ``grid``) block means of full-range BT.601 luma inside ``box`` = (top, left, bottom,
    right) pixels of ``pred`` and ``reference`` (uint8 HWC RGB of one size). A face made lighter by
    20 grey levels scores 20; detail moved inside a block (a mouth opened, a fold drawn) scores near 0."""
    a, b = _as_float255(pred, "pred"), _as_float255(reference, "reference")
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise MetricError(f"light_change needs two HWC RGB images of one size; got {a.shape} and {b.shape}")
    top, left, bottom, right = box
    if not (0 <= top < bottom <= a.shape[0] and 0 <= left < right <= a.shape[1]):
        raise MetricError(f"box {box} is not inside a {a.shape[0]}x{a.shape[1]} image")
    diff = (luma(a) - luma(b))[top:bottom, left:right]
    if min(diff.shape) < grid:
        raise MetricError(f"a {diff.shape[0]}x{diff.shape[1]} box cannot be split into {grid}x{grid} blocks")
    return float(np.abs(_block_means(diff, grid)).mean())


# ---------------------------------------------------------------------------------------------
# FID / KID
# ---------------------------------------------------------------------------------------------

FID_MIN_IMAGES = 1000  # below this FID is strongly biased upward: warn
KID_FULL_KERNEL_MAX = 5000  # up to this many rows per set, KID kernels are computed once (memory ~ N^2)


def _check_features(f: np.ndarray, what: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2:
        raise MetricError(f"{what} must be an (N, D) feature matrix, got shape {f.shape}")
    if f.shape[0] < 2:
        raise MetricError(f"{what} has {f.shape[0]} rows; FID/KID need at least 2 images")
    if not np.isfinite(f).all():
        raise MetricError(f"{what} contains NaN or infinite values")
    return f


def _trace_sqrt_from_factors(h1: np.ndarray, h2: np.ndarray) -> float:
    """tr(sqrt(S1 S2)) given factors S1 = h1 h1^T, S2 = h2 h2^T (h: D x r).

    The symmetric PSD matrix sqrt(S1) S2 sqrt(S1) is similar to S1 S2, and its non-zero
    eigenvalues are those of h1^T S2 h1 = c^T c with c = h2^T h1 (r2 x r1). Their square roots
    are the singular values of c: computing them by SVD rather than ``eigvalsh(c^T c)`` keeps
    the many tiny eigenvalues accurate and the exact zeros (rank S2 < rank S1) at rounding
    level, where an eigen-decomposition of the squared product leaves noise of order
    sqrt(eps) x ||S|| in each of them.
    """
    if h1.shape[1] == 0 or h2.shape[1] == 0:
        return 0.0
    return float(np.linalg.svd(h2.T @ h1, compute_uv=False).sum())


def _psd_factor(sigma: np.ndarray) -> np.ndarray:
    """h with h h^T = sigma (D x r) from sigma's eigen-decomposition, over its numerically
    non-zero eigenvalues (r = numerical rank): sqrt(sigma) in the basis of its range."""
    from scipy import linalg

    w, v = linalg.eigh((sigma + sigma.T) / 2, driver="evd", check_finite=False)
    # Rounding leaves eigenvalues of order eps x ||sigma|| where the true ones are 0
    # (sample covariances of N <= D features have rank N - 1): those directions are dropped.
    keep = w > max(w.max(), 0.0) * w.size * np.finfo(np.float64).eps
    return v[:, keep] * np.sqrt(w[keep])


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrt(S1 S2)) for symmetric positive semi-definite S1, S2 (D x D), without ``sqrtm``.

    Eigen-decompositions (``eigh``) of S1 and S2 give their square roots on their ranges;
    the eigenvalues of the symmetric matrix sqrt(S1) S2 sqrt(S1) then come from the SVD of
    the r2 x r1 product of those factors (see :func:`_trace_sqrt_from_factors`).
    """
    return _trace_sqrt_from_factors(_psd_factor(sigma1), _psd_factor(sigma2))


def fid_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)) of two Gaussians.

    mu: (D,) means, sigma: (D, D) covariances of feature vectors (float64). Same value as
    clean-fid's ``frechet_distance`` (scipy ``sqrtm``) through :func:`trace_sqrt_product`.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise MetricError(f"mismatched statistics: means {mu1.shape}, {mu2.shape}; covariances {s1.shape}, {s2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), sample covariance (D, D)) of (N, D) features, as clean-fid's ``np.cov(rowvar=False)``."""
    f = _check_features(features, "features")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID (>= 0) between two (N, D) feature sets: clean-fid's ``fid_from_feats`` without ``sqrtm``.

    Means and unbiased covariances as ``np.cov``. When N1, N2 <= D (e.g. 1,000 Inception
    features of 2,048 dims) the centred features themselves are factors of the covariances
    (S = a^T a / (N - 1)), so the trace term is the sum of the singular values of the
    N2 x N1 matrix b a^T / sqrt((N1 - 1)(N2 - 1)) and no D x D matrix is formed; otherwise
    it comes from the D x D covariances (:func:`trace_sqrt_product`).
    """
    f1 = _check_features(features1, "features1")
    f2 = _check_features(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise MetricError(f"feature dimensions differ: {f1.shape[1]} and {f2.shape[1]}")
    if max(f1.shape[0], f2.shape[0]) > f1.shape[1]:
        mu1, s1 = feature_stats(f1)
        mu2, s2 = feature_stats(f2)
        return fid_from_stats(mu1, s1, mu2, s2)
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a, b = f1 - mu1, f2 - mu2
    diff = mu1 - mu2
    tr1 = float(np.einsum("nd,nd->", a, a)) / (len(a) - 1)
    tr2 = float(np.einsum("nd,nd->", b, b)) / (len(b) - 1)
    h1, h2 = a.T / math.sqrt(len(a) - 1), b.T / math.sqrt(len(b) - 1)
    return float(diff @ diff + tr1 + tr2 - 2.0 * _trace_sqrt_from_factors(h1, h2))


def kid_from_features(
    features1: np.ndarray,
    features2: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> float:
    """KID: unbiased MMD^2 with the kernel (x.y / D + 1)^3, averaged over random subsets.

    Features: (N, D) arrays. Identical to clean-fid's ``kernel_distance(features1, features2,
    num_subsets, subset_size)`` run after ``np.random.seed(seed)``: subsets of
    m = min(N1, N2, subset_size) rows drawn without replacement, features2's first. The kernel
    matrices are computed once on the full sets and indexed per subset (same numbers, far
    fewer multiplications) when both sets have at most ``KID_FULL_KERNEL_MAX`` rows; when both
    sets have exactly ``m`` rows every subset is the whole set, permuted, and one is computed.
    """
    f1 = _check_features(features1, "features1")
    f2 = _check_features(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise MetricError(f"feature dimensions differ: {f1.shape[1]} and {f2.shape[1]}")
    if num_subsets < 1:
        raise MetricError(f"num_subsets must be >= 1, got {num_subsets}")
    d = f1.shape[1]
    m = min(f1.shape[0], f2.shape[0], subset_size)
    if m < 2:
        raise MetricError("KID needs subsets of at least 2 images")
    rng = np.random.RandomState(seed)  # the legacy generator behind np.random.choice
    full = max(f1.shape[0], f2.shape[0]) <= KID_FULL_KERNEL_MAX
    if full:
        k22 = (f2 @ f2.T / d + 1) ** 3
        k11 = (f1 @ f1.T / d + 1) ** 3
        k21 = (f2 @ f1.T / d + 1) ** 3
    if full and m == f1.shape[0] == f2.shape[0]:
        # Every subset holds all the rows of both sets, only permuted, and the statistic is a sum
        # over the rows: every subset gives the same value (to rounding), so one is enough.
        a = k22 + k11
        return float(((a.sum() - np.diag(a).sum()) / (m - 1) - k21.sum() * 2 / m) / m)
    t = 0.0
    for _ in range(num_subsets):
        ix = rng.choice(f2.shape[0], m, replace=False)  # clean-fid: x from features2
        iy = rng.choice(f1.shape[0], m, replace=False)  # then y from features1
        if full:
            kxx, kyy, kxy = k22[np.ix_(ix, ix)], k11[np.ix_(iy, iy)], k21[np.ix_(ix, iy)]
        else:
            x, y = f2[ix], f1[iy]
            kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        a = kxx + kyy
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - kxy.sum() * 2 / m
    return float(t / num_subsets / m)


@dataclass(frozen=True)
class DistributionScores:
    """FID and KID between a real and a generated set, tied to the backbone that produced them."""

    backbone: str  # "inception" or a named fallback such as "alexnet224": never mixed in one column
    fid: float
    kid: float
    n_real: int
    n_fake: int
    fid_seconds: float = 0.0  # wall time of the FID computation from features (the sqrtm-free path)
    kid_seconds: float = 0.0  # wall time of the KID computation from features

    def columns(self) -> dict[str, float]:
        """Leaderboard columns: ``fid_<backbone>`` and ``kid_<backbone>``."""
        return {f"fid_{self.backbone}": self.fid, f"kid_{self.backbone}": self.kid}


def fid_kid_from_features(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    backbone: str,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> DistributionScores:
    """FID and KID from precomputed (N, D) features of the named backbone, with the time each took;
    warns under 1,000 images."""
    real = _check_features(real_features, "real features")
    fake = _check_features(fake_features, "fake features")
    n = min(len(real), len(fake))
    if n < FID_MIN_IMAGES:
        warnings.warn(
            f"FID/KID on {len(real)} real and {len(fake)} generated images: under {FID_MIN_IMAGES} "
            "images FID is biased upward; compare only numbers computed on the same set sizes",
            stacklevel=2,
        )
    t0 = time.perf_counter()
    fid = fid_from_features(real, fake)
    t1 = time.perf_counter()
    kid = kid_from_features(real, fake, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    t2 = time.perf_counter()
    return DistributionScores(backbone=backbone, fid=fid, kid=kid, n_real=len(real), n_fake=len(fake),
                              fid_seconds=t1 - t0, kid_seconds=t2 - t1)



# ---------------------------------------------------------------------------------------------
# Classification (expression judges)
# ---------------------------------------------------------------------------------------------


def _pred_target(pred: Sequence[int], target: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(pred).ravel(), np.asarray(target).ravel()
    if p.shape != t.shape:
        raise MetricError(f"{p.size} predictions but {t.size} targets")
    if p.size == 0:
        raise MetricError("no predictions to score")
    return p, t


def accuracy(pred: Sequence[int], target: Sequence[int]) -> float:
    """Fraction of predicted class indices equal to the target, in [0, 1]."""
    p, t = _pred_target(pred, target)
    return float(np.mean(p == t))


def confusion_matrix(pred: Sequence[int], target: Sequence[int], num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    p, t = _pred_target(pred, target)
    p, t = p.astype(np.int64), t.astype(np.int64)
    if ((p < 0) | (p >= num_classes) | (t < 0) | (t >= num_classes)).any():
        raise MetricError(f"class indices must be in [0, {num_classes})")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(pred: Sequence[int], target: Sequence[int], num_classes: int) -> dict[int, float]:
    """Recall of each class present in ``target`` (class index -> fraction in [0, 1]); absent classes are left out."""
    cm = confusion_matrix(pred, target, num_classes)
    support = cm.sum(axis=1)
    return {c: float(cm[c, c] / support[c]) for c in range(num_classes) if support[c] > 0}


__all__ = [
    "MetricError",
    "rgb_to_y",
    "psnr",
    "ssim",
    "psnr_many",
    "ssim_many",
    "light_change",
    "trace_sqrt_product",
    "fid_from_stats",
    "feature_stats",
    "fid_from_features",
    "kid_from_features",
    "DistributionScores",
    "fid_kid_from_features",
    "accuracy",
    "confusion_matrix",
    "per_class_accuracy",
]

