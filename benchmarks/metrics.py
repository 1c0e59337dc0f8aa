"""Benchmark metrics as pure, typed functions (SPEC section 2).

Image conventions, stated once and repeated on each function:
- an *image* is a numpy array, ``uint8`` HWC RGB in [0, 255] (or HW grey), or a floating array
  of the same layout in [0, 1]; floating inputs are scaled by 255 before scoring;
- accuracies and rates are fractions in [0, 1] (the leaderboard multiplies by 100).

Heavy libraries (torch, lpips, clean-fid) are imported inside the functions that need them,
so that ``import benchmarks.metrics`` stays fast.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch


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
    x = rgb.astype(np.float32) / np.float32(255.0)
    y = np.dot(x, [65.481, 128.553, 24.966]) + 16.0
    y = (y / 255.0).astype(np.float32) * np.float32(255.0)
    return y.astype(np.float64)


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
    """11x11 Gaussian filtering of an HW array keeping only 'valid' positions (H-10, W-10).

    The window is separable, so two 1-D passes equal BasicSR's cv2.filter2D followed by the
    [5:-5, 5:-5] crop (to float rounding): positions whose window leaves the image never count.
    """
    k = _gaussian_kernel_1d()
    x = np.lib.stride_tricks.sliding_window_view(x, SSIM_WINDOW, axis=0) @ k
    return np.lib.stride_tricks.sliding_window_view(x, SSIM_WINDOW, axis=1) @ k


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


# ---------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _default_lpips_net() -> torch.nn.Module:
    from facegen import assets

    return assets.lpips_network("alex")


def _images_to_lpips_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 HWC RGB (or HW grey, or float [0,1]) images of one shape -> NCHW float32 in [-1, 1]."""
    import torch

    batch = []
    for image in images:
        x = _as_float255(image)
        if x.ndim == 2:
            x = x[..., None]
        if x.shape[2] == 1:
            x = np.repeat(x, 3, axis=2)
        batch.append(x)
    arr = np.stack(batch).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def lpips_distances(
    preds: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    net: torch.nn.Module | None = None,
    batch_size: int = 16,
) -> list[float]:
    """LPIPS distance (>= 0, lower is closer) of each (prediction, target) pair, in order.

    Images: uint8 HWC RGB [0,255] (or float [0,1]; grey is repeated to 3 channels), each pair
    of one shape; they are scaled to [-1, 1] NCHW as the ``lpips`` package expects. ``net`` is an
    ``lpips.LPIPS`` module; default: ``facegen.assets.lpips_network("alex")`` (AlexNet, offline
    weights). Runs on the device of ``net``'s parameters, without gradients.
    """
    import torch

    if len(preds) != len(targets):
        raise MetricError(f"{len(preds)} predictions but {len(targets)} targets")
    if batch_size < 1:
        raise MetricError(f"batch_size must be >= 1, got {batch_size}")
    # A pair of identical images is at distance exactly 0 (LPIPS sums squared differences of the
    # same network's features of each image): such pairs (the `real` reference row) skip the net.
    out: list[float] = [0.0] * len(preds)
    todo = []
    for k, (p, t) in enumerate(zip(preds, targets)):
        if np.shape(p) != np.shape(t):
            raise MetricError(f"pair {k}: shapes {np.shape(p)} and {np.shape(t)} differ")
        if not (np.asarray(p).dtype == np.asarray(t).dtype and np.array_equal(p, t)):
            todo.append(k)
    if not todo:
        return out
    net = _default_lpips_net() if net is None else net
    device = next(net.parameters()).device
    i = 0
    while i < len(todo):
        # A batch holds pairs of one shape (stacking needs equal shapes).
        shape = np.shape(preds[todo[i]])
        j = i
        while j < len(todo) and j - i < batch_size and np.shape(preds[todo[j]]) == shape:
            j += 1
        idx = todo[i:j]
        a = _images_to_lpips_tensor([preds[k] for k in idx]).to(device)
        b = _images_to_lpips_tensor([targets[k] for k in idx]).to(device)
        with torch.no_grad():
            d = net(a, b)
        for k, v in zip(idx, d.reshape(len(a)).cpu()):
            out[k] = float(v)
        i = j
    return out


def lpips_distance(a: np.ndarray, b: np.ndarray, net: torch.nn.Module | None = None) -> float:
    """LPIPS distance of two images (uint8 HWC RGB [0,255], same shape); see :func:`lpips_distances`."""
    return lpips_distances([a], [b], net=net)[0]


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
    fewer multiplications) when both sets have at most ``KID_FULL_KERNEL_MAX`` rows.
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
class FeatureBackbone:
    """A feature network for FID/KID, in clean-fid's extractor convention.

    ``extract`` maps an NCHW float32 batch in [0, 255] at ``size`` x ``size`` (clean-fid's
    "clean" resize to that side; 299 for Inception) to (N, dim) features; ``name`` names the
    leaderboard columns (``fid_<name>``, ``kid_<name>``) and must change whenever the
    ``definition`` (network, layer, pooling, input size) does, so that numbers computed two
    ways never share a column or a cache entry.
    """

    name: str
    dim: int
    extract: Callable[[torch.Tensor], torch.Tensor]
    size: int = 299
    definition: str = ""


def inception_backbone(device: str = "cpu") -> FeatureBackbone:
    """clean-fid's Inception-V3 (pool3, 2048-d) from its local torchscript file; never downloads."""
    import torch
    from cleanfid.inception_torchscript import InceptionV3W

    from facegen import assets

    file = assets.inception_path("clean")
    if not file.is_file():
        raise MetricError(f"clean-fid's Inception weights are not at {file} (they are an online-only asset)")
    model = InceptionV3W(str(file.parent), download=False, resize_inside=False).to(device).eval()

    def extract(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(batch.to(device))

    return FeatureBackbone("inception", 2048, extract, 299, INCEPTION_DEFINITION)


INCEPTION_DEFINITION = (
    "clean-fid's Inception-V3 torchscript (pt_inception-2015-12-05), pool3 2048-d; input: clean-fid 'clean' "
    "resize to 299x299 (PIL bicubic, antialiased, float per channel, no quantisation)"
)
VGG16_DEFINITION = (
    "VGG16 ImageNet conv features (torchvision vgg16().features, through conv5_3 + ReLU + max-pool; weights "
    "of the lpips_vgg16 asset), global-average-pooled to 512-d; input: clean-fid 'clean' resize to 299x299 "
    "(PIL bicubic, antialiased, float per channel), /255, ImageNet mean/std normalisation"
)
ALEXNET_SIZE = 224  # AlexNet's ImageNet training resolution
ALEXNET_DEFINITION = (
    "AlexNet ImageNet conv features (torchvision alexnet().features[:12], through conv5 + ReLU, before the "
    "last max-pool; weights of the lpips_alex asset, the LPIPS backbone), global-average-pooled to 256-d; "
    f"input: clean-fid 'clean' resize to {ALEXNET_SIZE}x{ALEXNET_SIZE} (PIL bicubic, antialiased, float per "
    "channel, no quantisation), /255, ImageNet mean/std normalisation"
)


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_backbone(device: str = "cpu", features: torch.nn.Module | None = None) -> FeatureBackbone:
    """Fallback: VGG16 ImageNet conv features, global-average-pooled to 512-d.

    ``features`` maps ImageNet-normalised NCHW RGB to (N, 512, h, w) feature maps; default
    ``facegen.assets.vgg16_features()`` (offline weights). Input batches follow clean-fid's
    convention ([0, 255] at 299x299); they are scaled to [0, 1] and normalised with the
    ImageNet mean and std first.
    """
    if features is None:
        from facegen import assets

        features = assets.vgg16_features()
    return _pooled_imagenet_backbone("vgg16", 512, features, device, 299, VGG16_DEFINITION)


def _pooled_imagenet_backbone(name: str, dim: int, features: torch.nn.Module, device: str, size: int,
                              definition: str) -> FeatureBackbone:
    """``features`` on [0, 255] batches scaled to [0, 1] and ImageNet-normalised, global-average-pooled."""
    import torch

    features = features.to(device).eval()
    mean = torch.tensor(_IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def extract(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = (batch.to(device) / 255.0 - mean) / std
            return features(x).mean(dim=(2, 3))

    return FeatureBackbone(name, dim, extract, size, definition)


def _alexnet_conv5() -> torch.nn.Module:
    """torchvision ``alexnet().features[:12]`` (conv1 ... conv5 + ReLU) with the ImageNet weights of
    the LPIPS AlexNet (``facegen.assets.lpips_network("alex")``), copied so the shared LPIPS
    instance is never moved or modified."""
    import copy

    import torch

    from facegen import assets

    net = assets.lpips_network("alex").net
    layers = [m for s in (net.slice1, net.slice2, net.slice3, net.slice4, net.slice5) for m in s]
    return copy.deepcopy(torch.nn.Sequential(*layers)).eval().requires_grad_(False)


def alexnet_backbone(device: str = "cpu", features: torch.nn.Module | None = None) -> FeatureBackbone:
    """Fallback ``alexnet224``: AlexNet ImageNet conv5 features at 224x224, global-average-pooled to 256-d.

    ``features`` maps ImageNet-normalised NCHW RGB to (N, 256, h, w) maps; default: AlexNet's
    convolutional trunk through conv5 + ReLU with the LPIPS asset's ImageNet weights (see
    :data:`ALEXNET_DEFINITION`). Input batches are [0, 255] at 224x224 (clean-fid's "clean"
    resize to AlexNet's training resolution); they are scaled to [0, 1] and normalised with
    the ImageNet mean and std first. About 10x cheaper per image than VGG16 at 299x299 on CPU.
    """
    features = _alexnet_conv5() if features is None else features
    return _pooled_imagenet_backbone(f"alexnet{ALEXNET_SIZE}", 256, features, device, ALEXNET_SIZE,
                                     ALEXNET_DEFINITION)


def fid_backbone(device: str = "cpu") -> FeatureBackbone:
    """Inception when ``facegen.assets.inception_available()``, else the named fallback
    ``alexnet224`` (:func:`alexnet_backbone`; chosen over VGG16 at 299x299 for its cost: the
    benchmark extracts features of several thousand images per run on a CPU)."""
    from facegen import assets

    if assets.inception_available():
        return inception_backbone(device)
    return alexnet_backbone(device)


def clean_resize(image: np.ndarray, size: int = 299) -> np.ndarray:
    """clean-fid's "clean" pre-processing of one image: uint8 HWC RGB (or HW grey) -> float32 size x size x 3 [0,255].

    Each channel is resized with PIL bicubic (antialiased) in float, without quantising
    after the resize (``cleanfid.resize.make_resizer("PIL", False, "bicubic", (size, size))``;
    at 299, clean-fid's own ``build_resizer("clean")``).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        # clean-fid reads uint8 files; quantise the same way a saved PNG would be.
        image = np.clip(np.rint(_as_float255(image)), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise MetricError(f"images must be HWC RGB or HW grey, got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)  # as PIL's convert("RGB") in clean-fid's reader
    if size < 1:
        raise MetricError(f"resize side must be >= 1, got {size}")
    return _clean_resizer(size)(image)


@functools.lru_cache(maxsize=4)
def _clean_resizer(size: int) -> Callable[[np.ndarray], np.ndarray]:
    from cleanfid.resize import build_resizer, make_resizer

    if size == 299:
        return build_resizer("clean")
    return make_resizer("PIL", False, "bicubic", (size, size))


def extract_features(
    images: Sequence[np.ndarray], backbone: FeatureBackbone, batch_size: int = 32
) -> np.ndarray:
    """(N, dim) float64 features of uint8 HWC RGB images: :func:`clean_resize` to ``backbone.size``, then ``backbone.extract``."""
    import torch

    if len(images) == 0:
        raise MetricError("no images to extract features from")
    out = []
    for i in range(0, len(images), batch_size):
        batch = np.stack([clean_resize(im, backbone.size) for im in images[i : i + batch_size]])
        t = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
        out.append(backbone.extract(t).detach().cpu().numpy().astype(np.float64))
    feats = np.concatenate(out)
    if feats.shape[1] != backbone.dim:
        raise MetricError(f"backbone {backbone.name!r} gave {feats.shape[1]}-d features, expected {backbone.dim}")
    return feats


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
    import time

    t0 = time.perf_counter()
    fid = fid_from_features(real, fake)
    t1 = time.perf_counter()
    kid = kid_from_features(real, fake, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    t2 = time.perf_counter()
    return DistributionScores(backbone=backbone, fid=fid, kid=kid, n_real=len(real), n_fake=len(fake),
                              fid_seconds=t1 - t0, kid_seconds=t2 - t1)


def fid_kid(
    real_images: Sequence[np.ndarray],
    fake_images: Sequence[np.ndarray],
    backbone: FeatureBackbone | None = None,
    batch_size: int = 32,
    seed: int = 0,
) -> DistributionScores:
    """FID and KID between two image sets (uint8 HWC RGB), clean-fid "clean" mode.

    ``backbone``: default :func:`fid_backbone` (Inception when its weights are present, else
    AlexNet at 224x224); the result carries its name. Warns under 1,000 images.
    """
    backbone = fid_backbone() if backbone is None else backbone
    real = extract_features(real_images, backbone, batch_size)
    fake = extract_features(fake_images, backbone, batch_size)
    return fid_kid_from_features(real, fake, backbone.name, seed=seed)


# ---------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two embedding vectors (D,), in [-1, 1]."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise MetricError(f"embeddings have different sizes: {a.size} and {b.size}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise MetricError("cosine similarity of a zero vector is undefined")
    return float(np.clip(a @ b / (na * nb), -1.0, 1.0))


def cosine_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) embedding matrices -> (N,) in [-1, 1]."""
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    if a.shape != b.shape:
        raise MetricError(f"embedding matrices have different shapes: {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    if (na == 0).any() or (nb == 0).any():
        raise MetricError("cosine similarity of a zero vector is undefined")
    return np.clip(np.einsum("nd,nd->n", a, b) / (na * nb), -1.0, 1.0)


def _scores_labels(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise MetricError(f"{s.size} scores but {y.size} labels")
    if not np.isin(y, (0, 1)).all():
        raise MetricError("labels must be 1 (genuine: same identity) or 0 (impostor)")
    y = y.astype(bool)
    if not y.any() or y.all():
        raise MetricError("verification needs both genuine (1) and impostor (0) pairs")
    return s, y


@dataclass(frozen=True)
class RocCurve:
    """ROC of a verifier that accepts a pair when its score >= threshold.

    ``thresholds`` decrease from +inf (nothing accepted); ``far[i]`` and ``tar[i]`` are the
    fractions of impostor and genuine pairs accepted at ``thresholds[i]`` (non-decreasing).
    """

    thresholds: np.ndarray
    far: np.ndarray
    tar: np.ndarray

    @property
    def auc(self) -> float:
        """Area under the TAR-vs-FAR curve (trapezoids), in [0, 1]."""
        return float(np.sum(np.diff(self.far) * (self.tar[1:] + self.tar[:-1]) / 2))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> RocCurve:
    """ROC from similarity scores (higher = more alike) and labels (1 genuine, 0 impostor)."""
    s, y = _scores_labels(scores, labels)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # one point per distinct score: accepting everything >= that score
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    return RocCurve(
        thresholds=np.r_[np.inf, s[last]],
        far=np.r_[0.0, fp / (~y).sum()],
        tar=np.r_[0.0, tp / y.sum()],
    )


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> float:
    """TAR (fraction of genuine pairs accepted) at a target false accept rate ``far`` in [0, 1].

    Convention: a pair is accepted when score > t, and t is the (k+1)-th highest impostor
    score with k = floor(far x number of impostors) (the impostor quantile). This is the
    most permissive threshold whose FAR is <= the target, i.e. the best TAR that keeps
    FAR <= far; ties at t are rejected. With fewer than 1/far impostors k = 0 and the TAR is
    that at FAR = 0 (genuine scores above every impostor score).
    """
    return far_operating_point(scores, labels, far)["tar"]


def far_operating_point(scores: np.ndarray, labels: np.ndarray, far: float) -> dict[str, float | int]:
    """The operating point behind :func:`tar_at_far`: ``threshold`` (accept score > threshold;
    -inf when every pair is accepted), ``tar``, the FAR it actually has on these impostors
    (``far_measured`` <= ``far``), and the pair counts."""
    if not 0.0 <= far <= 1.0:
        raise MetricError(f"far must be in [0, 1], got {far}")
    s, y = _scores_labels(scores, labels)
    impostor = np.sort(s[~y])[::-1]
    # 1e-9 absorbs binary rounding such as 0.29 * 100 = 28.999999999999996
    k = int(math.floor(far * impostor.size + 1e-9))
    t = -math.inf if k >= impostor.size else float(impostor[k])
    return {"threshold": t, "tar": float(np.mean(s[y] > t)), "far_target": far,
            "far_measured": float(np.mean(impostor > t)), "n_genuine": int(y.sum()), "n_impostor": int(impostor.size)}


def rank1(
    probe_emb: np.ndarray, probe_ids: Sequence[object], gallery_emb: np.ndarray, gallery_ids: Sequence[object]
) -> float:
    """Rank-1 identification rate in [0, 1]: fraction of probes whose most cosine-similar gallery
    embedding has the probe's identity. Embeddings: (N, D) probes and (M, D) gallery rows."""
    p = np.atleast_2d(np.asarray(probe_emb, np.float64))
    g = np.atleast_2d(np.asarray(gallery_emb, np.float64))
    pid, gid = np.asarray(probe_ids), np.asarray(gallery_ids)
    if p.shape[0] != pid.size or g.shape[0] != gid.size:
        raise MetricError("each embedding row needs exactly one identity label")
    if p.shape[1] != g.shape[1]:
        raise MetricError(f"probe and gallery embeddings differ in size: {p.shape[1]} and {g.shape[1]}")
    if p.shape[0] == 0 or g.shape[0] == 0:
        raise MetricError("rank-1 needs at least one probe and one gallery embedding")
    pn = np.linalg.norm(p, axis=1, keepdims=True)
    gn = np.linalg.norm(g, axis=1, keepdims=True)
    if (pn == 0).any() or (gn == 0).any():
        raise MetricError("cosine similarity of a zero vector is undefined")
    sim = (p / pn) @ (g / gn).T
    return float(np.mean(gid[np.argmax(sim, axis=1)] == pid))


@dataclass(frozen=True)
class VerificationResult:
    """k-fold verification accuracy: ``accuracy`` is the mean over folds, in [0, 1]."""

    accuracy: float
    std: float
    fold_accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]  # the threshold chosen on the other folds, per test fold


def _best_threshold(s: np.ndarray, y: np.ndarray) -> float:
    """Threshold t (accept s >= t) with the highest accuracy on (s, y); midpoints between scores."""
    u = np.unique(s)
    cands = np.r_[u[0] - 1.0, (u[:-1] + u[1:]) / 2, u[-1] + 1.0]
    gen, imp = np.sort(s[y]), np.sort(s[~y])
    accepted_gen = gen.size - np.searchsorted(gen, cands, side="left")
    rejected_imp = np.searchsorted(imp, cands, side="left")
    acc = (accepted_gen + rejected_imp) / s.size
    return float(cands[int(np.argmax(acc))])  # first (lowest) of equally good thresholds


def verification_accuracy_10fold(scores: np.ndarray, labels: np.ndarray, n_folds: int = 10) -> VerificationResult:
    """LFW-style k-fold verification accuracy of similarity scores (1 genuine, 0 impostor).

    Pairs are split into ``n_folds`` contiguous folds in the given order (as LFW's pairs file,
    and scikit-learn's KFold without shuffling); for each fold the threshold that maximises
    accuracy on the other folds (candidates: midpoints between distinct scores; accept
    score >= t) is applied to it. Pass the pairs interleaved or shuffled deterministically.
    """
    s, y = _scores_labels(scores, labels)
    if n_folds < 2 or s.size < n_folds:
        raise MetricError(f"{n_folds}-fold verification needs at least {max(n_folds, 2)} pairs and 2 folds")
    folds = np.array_split(np.arange(s.size), n_folds)
    accs, ths = [], []
    for test in folds:
        train = np.ones(s.size, bool)
        train[test] = False
        t = _best_threshold(s[train], y[train])
        accs.append(float(np.mean((s[test] >= t) == y[test])))
        ths.append(t)
    return VerificationResult(float(np.mean(accs)), float(np.std(accs)), tuple(accs), tuple(ths))


# ---------------------------------------------------------------------------------------------
# Eigenfaces (paper 001's PCA recognition protocol)
# ---------------------------------------------------------------------------------------------


def _grey_matrix(images: Sequence[np.ndarray], what: str) -> np.ndarray:
    """Images (uint8 HWC RGB / HW grey, or float [0,1]) of one size -> (N, H*W) float64 grey [0,255]."""
    rows = []
    for image in images:
        x = _as_float255(image, what)
        if x.ndim == 3:
            # ITU-R BT.601 luma, as PIL's convert("L") (without its rounding)
            x = x[..., 0] if x.shape[2] == 1 else x @ np.array([0.299, 0.587, 0.114])
        rows.append(x.ravel())
    if not rows:
        raise MetricError(f"no {what}s given")
    if len({r.size for r in rows}) != 1:
        raise MetricError(f"{what}s must all have the same size")
    return np.stack(rows)


def eigenface_accuracy(
    train_images: Sequence[np.ndarray],
    train_ids: Sequence[object],
    test_images: Sequence[np.ndarray],
    test_ids: Sequence[object],
    k: int = 10,
    classifier: Literal["class_mean", "nearest"] = "class_mean",
) -> float:
    """Eigenface recognition accuracy in [0, 1] (Turk & Pentland 1991; paper 001 uses k = 10).

    Images: uint8 HWC RGB or HW grey (or float [0,1]), all of one size; converted to grey
    (BT.601 luma), flattened, centred on the training mean, and projected onto the top ``k``
    principal components of the training set (SVD). A test image gets the identity at the
    minimum Euclidean distance in that space: to the mean projection of each training
    identity (``class_mean``, Turk & Pentland's face classes and the textbook minimum-distance
    classifier) or to the nearest single training image (``nearest``).
    """
    x_train = _grey_matrix(train_images, "training image")
    x_test = _grey_matrix(test_images, "test image")
    y_train, y_test = np.asarray(train_ids), np.asarray(test_ids)
    if x_train.shape[0] != y_train.size or x_test.shape[0] != y_test.size:
        raise MetricError("each image needs exactly one identity label")
    if x_train.shape[1] != x_test.shape[1]:
        raise MetricError("training and test images must have the same size")
    rank = min(x_train.shape[0] - 1, x_train.shape[1])
    if not 1 <= k <= rank:
        raise MetricError(
            f"k = {k} eigenfaces asked, but {x_train.shape[0]} training images give at most {rank}"
        )
    mean = x_train.mean(axis=0)
    _, _, vt = np.linalg.svd(x_train - mean, full_matrices=False)
    basis = vt[:k].T  # (H*W, k): the eigenfaces
    z_train = (x_train - mean) @ basis
    z_test = (x_test - mean) @ basis
    if classifier == "class_mean":
        labels = np.unique(y_train)
        refs = np.stack([z_train[y_train == c].mean(axis=0) for c in labels])
    elif classifier == "nearest":
        labels, refs = y_train, z_train
    else:
        raise MetricError(f"classifier must be 'class_mean' or 'nearest', got {classifier!r}")
    d2 = ((z_test[:, None, :] - refs[None, :, :]) ** 2).sum(axis=2)
    return float(np.mean(labels[np.argmin(d2, axis=1)] == y_test))


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
    "lpips_distance",
    "lpips_distances",
    "trace_sqrt_product",
    "fid_from_stats",
    "feature_stats",
    "fid_from_features",
    "kid_from_features",
    "FeatureBackbone",
    "inception_backbone",
    "vgg16_backbone",
    "alexnet_backbone",
    "fid_backbone",
    "clean_resize",
    "extract_features",
    "DistributionScores",
    "fid_kid_from_features",
    "fid_kid",
    "cosine_similarity",
    "cosine_similarities",
    "RocCurve",
    "roc_curve",
    "tar_at_far",
    "rank1",
    "VerificationResult",
    "verification_accuracy_10fold",
    "eigenface_accuracy",
    "accuracy",
    "confusion_matrix",
    "per_class_accuracy",
]
