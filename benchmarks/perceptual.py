"""Metrics computed on deep features: LPIPS, and the feature backbones of FID/KID.

The networks come from :mod:`facegen.assets` (offline weights, checked by sha256); the FID/KID
arithmetic on their features is in :mod:`benchmarks.metrics`. Image conventions as there: uint8
HWC RGB in [0, 255] (or float in [0, 1]; grey repeated to three channels).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.metrics import DistributionScores, MetricError, _as_float255, fid_kid_from_features
from facegen import assets



@functools.lru_cache(maxsize=1)
def _default_lpips_net() -> torch.nn.Module:

    return assets.lpips_network("alex")


def _images_to_lpips_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 HWC RGB (or HW grey, or float [0,1]) images of one shape -> NCHW float32 in [-1, 1]."""
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
    file = assets.inception_path("clean")
    if not file.is_file():
        raise MetricError(f"clean-fid's Inception weights are not at {file} (they are an online-only asset)")
    from cleanfid.inception_torchscript import InceptionV3W  # FID's package: the app (LPIPS only) runs without it

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

        features = assets.vgg16_features()
    return _pooled_imagenet_backbone("vgg16", 512, features, device, 299, VGG16_DEFINITION)


def _pooled_imagenet_backbone(name: str, dim: int, features: torch.nn.Module, device: str, size: int,
                              definition: str) -> FeatureBackbone:
    """``features`` on [0, 255] batches scaled to [0, 1] and ImageNet-normalised, global-average-pooled."""
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
    from cleanfid.resize import build_resizer, make_resizer  # FID's package: the app (LPIPS only) runs without it

    if size == 299:
        return build_resizer("clean")
    return make_resizer("PIL", False, "bicubic", (size, size))


def extract_features(
    images: Sequence[np.ndarray], backbone: FeatureBackbone, batch_size: int = 32
) -> np.ndarray:
    """(N, dim) float64 features of uint8 HWC RGB images: :func:`clean_resize` to ``backbone.size``, then ``backbone.extract``."""
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


