"""benchmarks.metrics against references (skimage, BasicSR's formulas, clean-fid) and hand-computed values."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from benchmarks import metrics as M

REPO = Path(__file__).resolve().parent.parent


def _textured(seed: int, shape: tuple[int, ...] = (48, 40, 3)) -> np.ndarray:
    """A smooth gradient plus noise: structure at several scales, values over the whole range."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = 127 + 80 * np.sin(xx / 5.0 + seed) * np.cos(yy / 7.0)
    img = base[..., None] + rng.normal(0, 25, shape if len(shape) == 3 else shape + (1,))
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return img if len(shape) == 3 else img[..., 0]


# ------------------------------------------------------------------------------ PSNR / SSIM


def test_rgb_to_y_hand_values():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_allclose(M.rgb_to_y(img)[0], [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-4)


def test_psnr_constant_offset_hand_value():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = np.full((16, 16, 3), 110, np.uint8)
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-12)
    # On Y the offset is 10 * (65.481 + 128.553 + 24.966) / 255 = 10 * 219 / 255.
    dy = 10 * 219 / 255
    assert M.psnr(a, b, test_y_channel=True) == pytest.approx(10 * math.log10(255**2 / dy**2), abs=1e-4)


def test_psnr_identical_is_inf_and_crop_border_removes_border_errors():
    a = _textured(0)
    assert M.psnr(a, a.copy()) == float("inf")
    b = a.copy()
    b[:2] = 0  # damage only the top two rows
    assert M.psnr(a, b) < 40
    assert M.psnr(a, b, crop_border=2) == float("inf")


def test_psnr_matches_skimage_and_float_inputs_match_uint8():
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _textured(1), _textured(2)
    assert M.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-10)
    assert M.psnr(a / 255.0, b / 255.0) == pytest.approx(M.psnr(a, b), abs=1e-9)
    y_float = M.psnr(a / 255.0, b / 255.0, test_y_channel=True)
    assert y_float == pytest.approx(M.psnr(a, b, test_y_channel=True), abs=1e-4)


def test_ssim_constant_images_hand_value():
    # Flat images: no variance, so SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1).
    c1 = (0.01 * 255) ** 2
    a = np.full((20, 20, 3), 100, np.uint8)
    b = np.full((20, 20, 3), 140, np.uint8)
    assert M.ssim(a, b) == pytest.approx((2 * 100 * 140 + c1) / (100**2 + 140**2 + c1), abs=1e-12)
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("test_y_channel", [False, True])
@pytest.mark.parametrize("crop_border", [0, 4])
def test_ssim_matches_skimage(test_y_channel, crop_border):
    # skimage filters the whole image with reflection and then averages the SSIM map without
    # the (win - 1) / 2 = 5 pixel rim: exactly BasicSR's 'valid' positions, so they agree.
    from skimage.metrics import structural_similarity

    a = _textured(3)
    b = np.clip(a.astype(int) + np.random.default_rng(4).integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    ours = M.ssim(a, b, crop_border=crop_border, test_y_channel=test_y_channel)
    c = slice(crop_border, a.shape[0] - crop_border), slice(crop_border, a.shape[1] - crop_border)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if test_y_channel:
        ref = structural_similarity(M.rgb_to_y(a[c]), M.rgb_to_y(b[c]), **kw)
    else:
        ref = structural_similarity(a[c].astype(np.float64), b[c].astype(np.float64), channel_axis=2, **kw)
    assert 0.2 < ours < 0.99
    assert ours == pytest.approx(ref, abs=1e-10)


def _basicsr_ssim_channel(img: np.ndarray, img2: np.ndarray) -> float:
    """BasicSR's ``_ssim`` (basicsr/metrics/psnr_ssim.py), transcribed: cv2.filter2D then [5:-5, 5:-5]."""
    import cv2

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(kernel, kernel.transpose())
    mu1 = cv2.filter2D(img, -1, window)[5:-5, 5:-5]
    mu2 = cv2.filter2D(img2, -1, window)[5:-5, 5:-5]
    mu1_sq, mu2_sq, mu1_mu2 = mu1**2, mu2**2, mu1 * mu2
    sigma1_sq = cv2.filter2D(img**2, -1, window)[5:-5, 5:-5] - mu1_sq
    sigma2_sq = cv2.filter2D(img2**2, -1, window)[5:-5, 5:-5] - mu2_sq
    sigma12 = cv2.filter2D(img * img2, -1, window)[5:-5, 5:-5] - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return float(ssim_map.mean())


def test_ssim_matches_basicsr_formula():
    a, b = _textured(5), _textured(6)
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    ref_rgb = np.mean([_basicsr_ssim_channel(fa[..., i], fb[..., i]) for i in range(3)])
    assert M.ssim(a, b) == pytest.approx(ref_rgb, abs=1e-10)
    ref_y = _basicsr_ssim_channel(M.rgb_to_y(a), M.rgb_to_y(b))
    assert M.ssim(a, b, test_y_channel=True) == pytest.approx(ref_y, abs=1e-10)


def test_grey_images_and_batched_helpers():
    a, b = _textured(7, (32, 32)), _textured(8, (32, 32))
    assert M.ssim(a, b) == pytest.approx(_basicsr_ssim_channel(a.astype(float), b.astype(float)), abs=1e-10)
    # grey input has no Y conversion
    assert M.psnr(a, b, test_y_channel=True) == M.psnr(a, b)
    x, y = [_textured(i) for i in range(3)], [_textured(i + 10) for i in range(3)]
    assert M.psnr_many(x, y, test_y_channel=True) == [M.psnr(p, t, test_y_channel=True) for p, t in zip(x, y)]
    assert M.ssim_many(x, y, crop_border=2) == [M.ssim(p, t, crop_border=2) for p, t in zip(x, y)]


def test_image_errors_are_clear():
    a = _textured(0)
    with pytest.raises(M.MetricError, match="different shapes"):
        M.psnr(a, a[:-1])
    with pytest.raises(M.MetricError, match=r"must be in \[0, 1\]"):
        M.psnr(a.astype(np.float32), a.astype(np.float32))
    with pytest.raises(M.MetricError, match="at least 11x11"):
        M.ssim(a[:10, :10], a[:10, :10])
    with pytest.raises(M.MetricError, match="2 predictions but 1 targets"):
        M.psnr_many([a, a], [a])


# ------------------------------------------------------------------------------ LPIPS


@pytest.fixture(scope="module")
def random_lpips_net():
    """LPIPS's AlexNet layout with random weights: for shape and plumbing checks only."""
    import lpips
    import torch

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False).eval()


def test_lpips_plumbing(random_lpips_net):
    import torch

    a, b = _textured(1, (64, 64, 3)), _textured(2, (64, 64, 3))
    assert M.lpips_distance(a, a, random_lpips_net) == 0.0
    d = M.lpips_distance(a, b, random_lpips_net)
    assert d > 0
    # same number as calling the lpips module directly on [-1, 1] NCHW tensors
    ta = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1
    tb = torch.from_numpy(b).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        assert d == pytest.approx(float(random_lpips_net(ta, tb)), rel=1e-6)
    assert M.lpips_distance(a / 255.0, b / 255.0, random_lpips_net) == pytest.approx(d, rel=1e-5)
    # batched: mixed shapes, batch boundaries, same numbers as one by one
    c = _textured(3, (32, 48, 3))
    preds, targets = [a, b, c, a], [b, a, c[::-1].copy(), a]
    many = M.lpips_distances(preds, targets, random_lpips_net, batch_size=3)
    single = [M.lpips_distance(p, t, random_lpips_net) for p, t in zip(preds, targets)]
    np.testing.assert_allclose(many, single, rtol=1e-5, atol=1e-7)
    with pytest.raises(M.MetricError, match="shapes"):
        M.lpips_distances([a], [c], random_lpips_net)


def test_lpips_identical_pairs_are_zero_without_the_net(random_lpips_net):
    # The shortcut's premise: the lpips module itself gives exactly 0 for identical images.
    import torch

    a, b = _textured(4, (64, 64, 3)), _textured(5, (64, 64, 3))
    ta = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        assert float(random_lpips_net(ta, ta.clone())) == 0.0

    class Refuses(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, y):
            raise AssertionError("identical pairs must not reach the network")

    assert M.lpips_distances([a, b], [a.copy(), b.copy()], Refuses()) == [0.0, 0.0]
    # a mixed list runs the network on the differing pairs only, in order
    mixed = M.lpips_distances([a, a, b], [a, b, b], random_lpips_net)
    assert mixed[0] == 0.0 and mixed[2] == 0.0 and mixed[1] == pytest.approx(M.lpips_distance(a, b, random_lpips_net))


def _data_root() -> Path:
    env = os.environ.get("FACEGEN_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _synthetic_face(seed: int, size: int = 128) -> np.ndarray:
    """A cartoon face (background waves, skin ellipse, eyes, mouth) whose geometry and colours vary with the seed."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.empty((size, size, 3))
    img[:] = rng.uniform(40, 200, 3)
    img += 30 * np.sin(2 * np.pi * (xx * rng.uniform(1, 3) + yy * rng.uniform(1, 3)))[..., None]
    cx, cy = 0.5 + rng.uniform(-0.05, 0.05), 0.5
    rx, ry = rng.uniform(0.28, 0.36), rng.uniform(0.36, 0.44)
    img[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1] = rng.uniform(120, 230, 3)
    ey, ex, er = cy - ry * rng.uniform(0.2, 0.35), rx * rng.uniform(0.3, 0.5), rng.uniform(0.03, 0.06)
    for side in (-1, 1):
        img[(xx - cx - side * ex) ** 2 + (yy - ey) ** 2 < er**2] = rng.uniform(0, 60, 3)
    my, mw = cy + ry * rng.uniform(0.4, 0.6), rx * rng.uniform(0.3, 0.6)
    img[(abs(xx - cx) < mw) & (abs(yy - my) < 0.02)] = rng.uniform(60, 140, 3)
    img = gaussian_filter(img, (0.8, 0.8, 0)) + rng.normal(0, 3, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _faces() -> tuple[np.ndarray, np.ndarray]:
    """Two different real faces (CelebA 128x128) when the data is present, else two cartoon faces."""
    folder = _data_root() / "celeba_fsrnet" / "celeba_val_1000_HR"
    if folder.is_dir():
        from PIL import Image

        a, b = sorted(folder.iterdir())[:2]
        return np.asarray(Image.open(a).convert("RGB")), np.asarray(Image.open(b).convert("RGB"))
    return _synthetic_face(0), _synthetic_face(1)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return np.clip(np.rint(gaussian_filter(img.astype(float), sigma=(sigma, sigma, 0))), 0, 255).astype(np.uint8)


def test_lpips_with_the_offline_alexnet_orders_noise_blur_other_face():
    from facegen import assets

    if not hasattr(assets, "lpips_network"):
        pytest.skip("facegen.assets.lpips_network is not implemented yet: the offline LPIPS AlexNet is needed")
    net = assets.lpips_network("alex")
    face, other = _faces()
    noisy = np.clip(face + np.random.default_rng(0).normal(0, 4, face.shape), 0, 255).astype(np.uint8)
    blurred = _blur(face, 1.0)
    assert M.lpips_distance(face, face, net) == 0.0
    d_noise = M.lpips_distance(noisy, face)  # default network: the same offline AlexNet
    d_blur = M.lpips_distance(blurred, face, net)
    d_other = M.lpips_distance(other, face, net)
    assert 0 < d_noise < d_blur < d_other, (d_noise, d_blur, d_other)


# ------------------------------------------------------------------------------ FID / KID


def _structured_features(rng: np.random.Generator, n: int, d: int, shift: float, scale: float) -> np.ndarray:
    """Low-rank correlated features plus isotropic noise, non-negative like pooled activations."""
    w = np.random.default_rng(123).standard_normal((min(64, d), d))
    f = scale * rng.standard_normal((n, w.shape[0])) @ w + 0.3 * rng.standard_normal((n, d)) + shift
    return np.abs(f)


def test_fid_matches_cleanfid_sqrtm_full_rank():
    from cleanfid.fid import fid_from_feats

    rng = np.random.default_rng(0)
    f1 = _structured_features(rng, 600, 128, 0.0, 1.0)
    f2 = _structured_features(rng, 500, 128, 0.05, 1.1)
    ours = M.fid_from_features(f1, f2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's deprecation of sqrtm's `disp`
        ref = fid_from_feats(f1, f2)
    assert ours > 1.0
    assert abs(ours - ref) / ref < 1e-6


def test_fid_rank_deficient_covariances():
    # N <= D: both covariances are singular, as for 1,000 Inception features of 2,048 dims;
    # fid_from_features then takes the cross-product route, fid_from_stats the D x D eigh one.
    from cleanfid.fid import fid_from_feats

    rng = np.random.default_rng(1)
    f1 = _structured_features(rng, 150, 256, 0.0, 1.0)
    f2 = _structured_features(rng, 120, 256, 0.02, 1.05)
    ours = M.fid_from_features(f1, f2)
    via_stats = M.fid_from_stats(*M.feature_stats(f1), *M.feature_stats(f2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = fid_from_feats(f1, f2)
    assert ours > 1.0
    assert abs(ours - via_stats) / ours < 1e-9
    assert abs(ours - ref) / ref < 1e-6


def test_fid_hand_values():
    # Diagonal covariances: FID = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert M.fid_from_stats(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, abs=1e-12)
    # Rotating both Gaussians by the same orthogonal matrix changes nothing.
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))
    rotated = M.fid_from_stats(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert rotated == pytest.approx(expected, abs=1e-10)
    f = _structured_features(np.random.default_rng(2), 300, 32, 0.0, 1.0)
    assert abs(M.fid_from_features(f, f)) < 1e-9 * np.trace(np.cov(f, rowvar=False))


@pytest.mark.parametrize("full_kernel", [True, False])
def test_kid_matches_cleanfid_exactly(monkeypatch, full_kernel):
    from cleanfid.fid import kernel_distance

    if not full_kernel:
        monkeypatch.setattr(M, "KID_FULL_KERNEL_MAX", 10)  # force per-subset kernels
    rng = np.random.default_rng(3)
    f1 = _structured_features(rng, 300, 48, 0.0, 1.0)
    f2 = _structured_features(rng, 260, 48, 0.1, 1.0)
    np.random.seed(7)
    ref = kernel_distance(f1, f2, num_subsets=20, max_subset_size=100)
    ours = M.kid_from_features(f1, f2, num_subsets=20, subset_size=100, seed=7)
    assert ref > 0
    assert ours == pytest.approx(ref, rel=1e-10)
    # m = min(N1, N2) when the sets are smaller than subset_size
    np.random.seed(0)
    assert M.kid_from_features(f1, f2, num_subsets=5, seed=0) == pytest.approx(kernel_distance(f1, f2, 5), rel=1e-10)


def test_fid_kid_scores_name_their_backbone_and_warn_on_small_sets():
    rng = np.random.default_rng(4)
    f1 = _structured_features(rng, 40, 16, 0.0, 1.0)
    f2 = _structured_features(rng, 40, 16, 0.5, 1.0)
    with pytest.warns(UserWarning, match="under 1000 images"):
        res = M.fid_kid_from_features(f1, f2, "vgg16", kid_subsets=10)
    assert res.columns() == {"fid_vgg16": res.fid, "kid_vgg16": res.kid}
    assert (res.n_real, res.n_fake, res.backbone) == (40, 40, "vgg16")
    assert res.fid == pytest.approx(M.fid_from_features(f1, f2))
    assert res.fid_seconds > 0 and res.kid_seconds > 0
    big1, big2 = rng.standard_normal((1000, 4)), rng.standard_normal((1000, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(M.fid_kid_from_features(big1, big2, "inception", kid_subsets=2).columns()) == {
            "fid_inception",
            "kid_inception",
        }


def _tiny_extractor(batch):
    """A cheap stand-in feature net in clean-fid's convention: [0,255] NCHW 299x299 -> (N, 48)."""
    import torch

    pooled = torch.nn.functional.adaptive_avg_pool2d(batch, 4)  # (N, 3, 4, 4)
    return torch.sqrt(pooled.flatten(1) + 1.0)


def test_extract_features_equals_cleanfid_pipeline_on_files(tmp_path):
    # clean-fid reads the files, resizes in "clean" mode and calls a custom extractor; our
    # in-memory path must give the same features for the same (uint8) images.
    import torch
    from cleanfid.fid import get_folder_features
    from PIL import Image

    images = [_textured(20, (64, 64, 3)), _textured(21, (50, 70, 3)), _textured(22, (40, 40))]
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
    ref = get_folder_features(
        str(tmp_path), _tiny_extractor, num_workers=0, batch_size=2, device=torch.device("cpu"),
        mode="clean", verbose=False,
    )
    ours = M.extract_features(images, M.FeatureBackbone("tiny", 48, _tiny_extractor), batch_size=2)
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_fid_kid_on_images_uses_the_given_backbone():
    backbone = M.FeatureBackbone("tiny", 48, _tiny_extractor)
    real = [_textured(30 + i, (40, 40, 3)) for i in range(6)]
    fake = [_textured(40 + i, (40, 40, 3)) for i in range(5)]
    with pytest.warns(UserWarning, match="under 1000 images"):
        res = M.fid_kid(real, fake, backbone=backbone, batch_size=4)
    f_real, f_fake = M.extract_features(real, backbone), M.extract_features(fake, backbone)
    assert (res.backbone, res.n_real, res.n_fake) == ("tiny", 6, 5)
    assert res.fid == pytest.approx(M.fid_from_features(f_real, f_fake), rel=1e-9)
    assert res.kid == pytest.approx(M.kid_from_features(f_real, f_fake), rel=1e-9)


@pytest.mark.parametrize("build, name, dim, size", [
    (M.vgg16_backbone, "vgg16", 512, 299), (M.alexnet_backbone, "alexnet224", 256, 224),
])
def test_fallback_backbones_normalise_and_pool_a_given_trunk(build, name, dim, size):
    import torch

    conv = torch.nn.Conv2d(3, dim, 3, stride=8)
    torch.nn.init.normal_(conv.weight)
    backbone = build(features=conv)
    assert (backbone.name, backbone.dim, backbone.size) == (name, dim, size)
    batch = torch.rand(2, 3, size, size) * 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = conv((batch / 255 - mean) / std).mean(dim=(2, 3))
    torch.testing.assert_close(backbone.extract(batch), expected)
    feats = M.extract_features([_textured(0, (32, 32, 3))] * 2, backbone)
    assert feats.shape == (2, dim)


def test_default_backbone_comes_from_assets():
    from facegen import assets

    backbone = M.fid_backbone()
    if assets.inception_available():
        assert (backbone.name, backbone.size) == ("inception", 299)
    else:
        assert (backbone.name, backbone.dim, backbone.size) == ("alexnet224", 256, 224)
        assert "224x224" in backbone.definition and "conv5" in backbone.definition
    feats = M.extract_features([_textured(0, (64, 64, 3))], backbone)
    assert feats.shape == (1, backbone.dim) and np.isfinite(feats).all()


def test_alexnet_backbone_is_the_lpips_alexnet_conv5_pooled():
    # The fallback's trunk is the LPIPS AlexNet (ImageNet weights) through conv5 + ReLU: its
    # features are the mean over space of LPIPS' relu5 activations of the normalised input.
    import torch

    from facegen import assets

    backbone = M.alexnet_backbone()
    assert (backbone.name, backbone.dim, backbone.size) == ("alexnet224", 256, 224)
    batch = torch.rand(2, 3, 224, 224) * 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        relu5 = assets.lpips_network("alex").net((batch / 255 - mean) / std).relu5
    torch.testing.assert_close(backbone.extract(batch), relu5.mean(dim=(2, 3)))
    # the shared LPIPS network is copied, not moved or changed
    assert next(assets.lpips_network("alex").parameters()).requires_grad is False


def test_extract_features_resizes_to_the_backbone_size_as_cleanfid():
    # At a side other than 299 the pre-processing is clean-fid's PIL float bicubic resizer at that side.
    from cleanfid.resize import build_resizer, make_resizer

    seen = []

    def extractor(batch):
        seen.append(tuple(batch.shape))
        return _tiny_extractor(batch)

    images = [_textured(50, (128, 128, 3)), _textured(51, (40, 60))]
    feats = M.extract_features(images, M.FeatureBackbone("tiny224", 48, extractor, 224), batch_size=2)
    assert seen == [(2, 3, 224, 224)]
    import torch

    resize = make_resizer("PIL", False, "bicubic", (224, 224))
    ref = np.stack([resize(images[0]), resize(np.repeat(images[1][..., None], 3, axis=2))])
    expected = _tiny_extractor(torch.from_numpy(ref).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-6)
    np.testing.assert_array_equal(M.clean_resize(images[0], 299), build_resizer("clean")(images[0]))
    np.testing.assert_array_equal(M.clean_resize(images[0]), M.clean_resize(images[0], 299))


@pytest.mark.slow
def test_fid_fast_path_at_inception_size_against_sqrtm():
    """1,000 vs 1,000 features of 2,048 dims: fast path vs clean-fid's sqrtm (times printed; measured
    0.68-0.74 s against sqrtm's 20 s on the 2-core CPU at load ~5, under the 2 s target)."""
    from cleanfid.fid import fid_from_feats

    rng = np.random.default_rng(5)
    f1 = _structured_features(rng, 1000, 2048, 0.0, 1.0)
    f2 = _structured_features(rng, 1000, 2048, 0.05, 1.1)
    t0 = time.perf_counter()
    ours = M.fid_from_features(f1, f2)
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = fid_from_feats(f1, f2)
    t2 = time.perf_counter()
    print(f"fast FID {ours:.6f} in {t1 - t0:.2f} s; scipy sqrtm FID {ref:.6f} in {t2 - t1:.2f} s")
    assert abs(ours - ref) / ref < 1e-6
    assert abs(ours - M.fid_from_stats(*M.feature_stats(f1), *M.feature_stats(f2))) / ours < 1e-9
    # The 2 s target holds on an idle-ish machine; under load both paths slow down alike, so the
    # check is relative: the fast path must stay far below sqrtm (measured ~3.5 % of its time).
    assert t1 - t0 < 0.2 * (t2 - t1)


# ------------------------------------------------------------------------------ identity


def test_cosine_similarity():
    assert M.cosine_similarity(np.array([1.0, 2.0]), np.array([2.0, 4.0])) == pytest.approx(1.0)
    assert M.cosine_similarity(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(0.0)
    assert M.cosine_similarity(np.array([1.0, 1.0]), np.array([-1.0, -1.0])) == pytest.approx(-1.0)
    a, b = np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 1.0], [0.0, 2.0]])
    np.testing.assert_allclose(M.cosine_similarities(a, b), [1 / math.sqrt(2), 1 / math.sqrt(2)])
    with pytest.raises(M.MetricError, match="zero vector"):
        M.cosine_similarity(np.zeros(3), np.ones(3))


def test_roc_curve_interleaved_scores():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 0, 1, 0, 1, 0])
    roc = M.roc_curve(scores, labels)
    np.testing.assert_allclose(roc.thresholds, [np.inf, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    np.testing.assert_allclose(roc.tar, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(roc.far, [0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    # AUC = P(genuine score > impostor score) = (3 + 2 + 1) / 9
    assert roc.auc == pytest.approx(6 / 9)
    separable = M.roc_curve(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0]))
    assert separable.auc == pytest.approx(1.0)
    tied = M.roc_curve(np.array([0.5, 0.5, 0.5]), np.array([1, 0, 1]))
    np.testing.assert_allclose(tied.far, [0, 1])
    np.testing.assert_allclose(tied.tar, [0, 1])


def test_tar_at_far_known_counts():
    rng = np.random.default_rng(0)
    impostor = rng.permutation(np.arange(1000) / 1000)  # 0.000 ... 0.999
    # FAR 1 %: k = 10 impostors may pass, threshold = 11th highest impostor = 0.989 (accept > it).
    genuine = np.r_[np.full(37, 0.995), np.full(5, 0.989), np.full(58, 0.5)]
    scores = np.r_[genuine, impostor]
    labels = np.r_[np.ones(100), np.zeros(1000)]
    assert M.tar_at_far(scores, labels, 0.01) == pytest.approx(0.37)
    # FAR 0.1 %: k = 1, threshold = 0.998; nothing genuine above it
    assert M.tar_at_far(scores, labels, 0.001) == 0.0
    # FAR 50 %: threshold = 0.499, every genuine score is above it
    assert M.tar_at_far(scores, labels, 0.5) == 1.0
    far_at_1pct = np.mean(impostor > 0.989)
    assert far_at_1pct <= 0.01
    # perfectly separable: TAR 1 at any FAR, even 0
    sep_scores = np.r_[rng.uniform(0.6, 1, 50), rng.uniform(0, 0.5, 500)]
    sep_labels = np.r_[np.ones(50), np.zeros(500)]
    assert M.tar_at_far(sep_scores, sep_labels, 0.0) == 1.0
    assert M.tar_at_far(sep_scores, sep_labels, 0.01) == 1.0
    with pytest.raises(M.MetricError, match="both genuine"):
        M.tar_at_far(np.ones(3), np.ones(3), 0.01)


def test_tar_at_far_agrees_with_roc_best_point():
    rng = np.random.default_rng(1)
    scores = np.r_[rng.normal(1, 1, 400), rng.normal(-1, 1, 2000)]
    labels = np.r_[np.ones(400), np.zeros(2000)]
    roc = M.roc_curve(scores, labels)
    for far in (0.001, 0.01, 0.1):
        assert M.tar_at_far(scores, labels, far) == pytest.approx(roc.tar[roc.far <= far + 1e-12].max())


def test_rank1():
    gallery = np.eye(3)
    gallery_ids = ["a", "b", "c"]
    probes = np.array([[0.9, 0.1, 0.0], [0.2, 1.0, 0.1], [0.0, 0.3, 0.8], [0.0, 0.9, 0.2]])
    assert M.rank1(probes, ["a", "b", "c", "c"], gallery, gallery_ids) == pytest.approx(0.75)
    assert M.rank1(probes[:3], ["a", "b", "c"], gallery, gallery_ids) == 1.0


def test_verification_10fold_known_answers():
    # each fold of 10 pairs: 5 genuine at 1.0, 4 impostors at 0.0, 1 impostor at 1.0 -> best 0.9
    block_s = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 1.0])
    block_y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    res = M.verification_accuracy_10fold(np.tile(block_s, 10), np.tile(block_y, 10))
    assert res.accuracy == pytest.approx(0.9)
    assert res.std == pytest.approx(0.0)
    assert len(res.fold_accuracies) == 10 and all(0 < t <= 1 for t in res.thresholds)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    s = np.where(y == 1, rng.uniform(0.5, 1, 600), rng.uniform(-1, 0.4, 600))
    assert M.verification_accuracy_10fold(s, y).accuracy == 1.0


# ------------------------------------------------------------------------------ eigenfaces


def test_eigenfaces_two_separated_clusters():
    rng = np.random.default_rng(0)
    dark = [np.clip(60 + rng.normal(0, 10, (16, 16)), 0, 255).astype(np.uint8) for _ in range(8)]
    light = [np.clip(190 + rng.normal(0, 10, (16, 16)), 0, 255).astype(np.uint8) for _ in range(8)]
    train, ids = dark[:5] + light[:5], [0] * 5 + [1] * 5
    test, test_ids = dark[5:] + light[5:], [0] * 3 + [1] * 3
    assert M.eigenface_accuracy(train, ids, test, test_ids, k=3) == 1.0
    assert M.eigenface_accuracy(train, ids, test, [1] * 3 + [0] * 3, k=3) == 0.0
    with pytest.raises(M.MetricError, match="at most 9"):
        M.eigenface_accuracy(train, ids, test, test_ids, k=10)


def test_eigenfaces_against_explicit_computation():
    # Identities = noisy copies of 4 prototypes; enough noise that some test faces are missed.
    rng = np.random.default_rng(1)
    protos = 128 + rng.uniform(-25, 25, (4, 12, 10))

    def sample(i):
        return np.clip(protos[i] + rng.normal(0, 35, protos[i].shape), 0, 255).astype(np.uint8)

    train_ids = [i for i in range(4) for _ in range(5)]
    test_ids = [i for i in range(4) for _ in range(10)]
    train = [sample(i) for i in train_ids]
    test = [sample(i) for i in test_ids]
    k = 6
    # explicit: eigenvectors of the scatter matrix (eigh, not SVD), then loops
    x = np.stack([t.ravel().astype(float) for t in train])
    mean = x.mean(0)
    w, v = np.linalg.eigh((x - mean).T @ (x - mean))
    basis = v[:, np.argsort(w)[::-1][:k]]
    z_train = (x - mean) @ basis
    z_test = [(t.ravel().astype(float) - mean) @ basis for t in test]
    class_means = {c: z_train[np.array(train_ids) == c].mean(0) for c in range(4)}
    pred_mean = [min(class_means, key=lambda c: np.sum((z - class_means[c]) ** 2)) for z in z_test]
    pred_nn = [train_ids[int(np.argmin([np.sum((z - r) ** 2) for r in z_train]))] for z in z_test]
    expected_mean = np.mean(np.array(pred_mean) == test_ids)
    expected_nn = np.mean(np.array(pred_nn) == test_ids)
    assert 0.3 < expected_mean < 1.0 and 0.3 < expected_nn < 1.0
    assert M.eigenface_accuracy(train, train_ids, test, test_ids, k=k) == pytest.approx(expected_mean)
    nearest = M.eigenface_accuracy(train, train_ids, test, test_ids, k=k, classifier="nearest")
    assert nearest == pytest.approx(expected_nn)
    # RGB input is reduced to BT.601 grey: grey replicated into 3 channels gives the same answer
    rgb = [np.repeat(t[..., None], 3, axis=2) for t in train]
    assert M.eigenface_accuracy(rgb, train_ids, test, test_ids, k=k) == pytest.approx(expected_mean)


# ------------------------------------------------------------------------------ classification


def test_accuracy_confusion_per_class():
    target = [0, 0, 0, 1, 1, 2]
    pred = [0, 1, 0, 1, 1, 0]
    assert M.accuracy(pred, target) == pytest.approx(4 / 6)
    cm = M.confusion_matrix(pred, target, num_classes=4)
    np.testing.assert_array_equal(cm, [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert M.per_class_accuracy(pred, target, num_classes=4) == {0: pytest.approx(2 / 3), 1: 1.0, 2: 0.0}
    with pytest.raises(M.MetricError, match=r"\[0, 2\)"):
        M.confusion_matrix([0, 2], [0, 1], num_classes=2)


def test_import_is_light():
    heavy = "('torch', 'lpips', 'cleanfid', 'scipy')"
    code = f"import sys, benchmarks.metrics; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
