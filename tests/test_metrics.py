"""benchmarks.metrics against references (skimage, BasicSR's formulas, clean-fid) and hand-computed values."""

from __future__ import annotations

import math
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from benchmarks import metrics as M
from benchmarks import perceptual

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ PSNR / SSIM


def test_rgb_to_y_hand_values():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_allclose(M.rgb_to_y(img)[0], [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-4)


def test_rgb_to_y_is_basicsr_to_the_bit():
    """BasicSR's to_y_channel: float32 input in [0, 1], np.dot with the 0-255 weights, Y rounded to float32."""
    img = np.random.default_rng(3).integers(0, 256, (19, 23, 3), dtype=np.uint8)
    x = img.astype(np.float32) / np.float32(255.0)
    ref = ((np.dot(x, [65.481, 128.553, 24.966]) + 16.0) / 255.0).astype(np.float32) * np.float32(255.0)
    assert np.array_equal(M.rgb_to_y(img), ref.astype(np.float64))


def test_psnr_constant_offset_hand_value():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = np.full((16, 16, 3), 110, np.uint8)
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-12)
    # On Y the offset is 10 * (65.481 + 128.553 + 24.966) / 255 = 10 * 219 / 255.
    dy = 10 * 219 / 255
    assert M.psnr(a, b, test_y_channel=True) == pytest.approx(10 * math.log10(255**2 / dy**2), abs=1e-4)


def test_psnr_identical_is_inf_and_crop_border_removes_border_errors(textured):
    a = textured(0)
    assert M.psnr(a, a.copy()) == float("inf")
    b = a.copy()
    b[:2] = 0  # damage only the top two rows
    assert M.psnr(a, b) < 40
    assert M.psnr(a, b, crop_border=2) == float("inf")


def test_psnr_matches_skimage_and_float_inputs_match_uint8(textured):
    from skimage.metrics import peak_signal_noise_ratio

    a, b = textured(1), textured(2)
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
def test_ssim_matches_skimage(test_y_channel, crop_border, textured):
    # skimage filters the whole image with reflection and then averages the SSIM map without
    # the (win - 1) / 2 = 5 pixel rim: exactly BasicSR's 'valid' positions, so they agree.
    from skimage.metrics import structural_similarity

    a = textured(3)
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


def test_ssim_matches_basicsr_formula(textured):
    a, b = textured(5), textured(6)
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    ref_rgb = np.mean([_basicsr_ssim_channel(fa[..., i], fb[..., i]) for i in range(3)])
    assert M.ssim(a, b) == pytest.approx(ref_rgb, abs=1e-10)
    ref_y = _basicsr_ssim_channel(M.rgb_to_y(a), M.rgb_to_y(b))
    assert M.ssim(a, b, test_y_channel=True) == pytest.approx(ref_y, abs=1e-10)


def test_grey_images_and_batched_helpers(textured):
    a, b = textured(7, (32, 32)), textured(8, (32, 32))
    assert M.ssim(a, b) == pytest.approx(_basicsr_ssim_channel(a.astype(float), b.astype(float)), abs=1e-10)
    # grey input has no Y conversion
    assert M.psnr(a, b, test_y_channel=True) == M.psnr(a, b)
    x, y = [textured(i) for i in range(3)], [textured(i + 10) for i in range(3)]
    assert M.psnr_many(x, y, test_y_channel=True) == [M.psnr(p, t, test_y_channel=True) for p, t in zip(x, y)]
    assert M.ssim_many(x, y, crop_border=2) == [M.ssim(p, t, crop_border=2) for p, t in zip(x, y)]


def test_image_errors_are_clear(textured):
    a = textured(0)
    with pytest.raises(M.MetricError, match="different shapes"):
        M.psnr(a, a[:-1])
    with pytest.raises(M.MetricError, match=r"must be in \[0, 1\]"):
        M.psnr(a.astype(np.float32), a.astype(np.float32))
    with pytest.raises(M.MetricError, match="at least 11x11"):
        M.ssim(a[:10, :10], a[:10, :10])
    with pytest.raises(M.MetricError, match="2 predictions but 1 targets"):
        M.psnr_many([a, a], [a])


# ------------------------------------------------------------------------------ light change


def test_light_change_hand_values_and_the_training_term():
    import torch

    from facegen.train.photo_pairs import light_excess

    rng = np.random.default_rng(0)
    face = rng.integers(40, 200, (64, 64, 3), dtype=np.uint8)
    box = (8, 4, 56, 60)  # (top, left, bottom, right), 48 x 56: sides not divisible by 4 blocks of 14
    assert M.light_change(face, face, box) == 0.0
    lighter = face.copy()
    lighter[8:56, 4:60] += 20
    assert abs(M.light_change(lighter, face, box) - 20.0) < 1e-9  # every block 20 grey levels lighter
    flat = np.full((64, 64, 3), 100, np.uint8)
    band = flat.copy()
    band[8:56, 4:18] = 60  # the left quarter of the box 40 levels darker: one block column of four
    assert abs(M.light_change(band, flat, box) - 10.0) < 1e-9
    stripes = flat.copy()
    stripes[8:56, 4:60:2], stripes[8:56, 5:60:2] = 130, 70  # detail inside each block (+30, -30): no light moved
    assert M.light_change(stripes, flat, box) < 1e-9
    outside = flat.copy()
    outside[:8] = 255
    assert M.light_change(outside, flat, box) == 0.0
    # the same number as the wild smile recipe's training term without its free margin, on the same
    # box (block bins as torch's adaptive pooling), in grey levels of full-range luma
    a, b = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)

    def y(img):
        return torch.from_numpy(np.asarray(img, np.float64) @ np.array([0.299, 0.587, 0.114]))[None, None]

    frac = (4 / 64, 8 / 64, 60 / 64, 56 / 64)  # (left, top, right, bottom) fractions, as facegen.faces.face_box
    expected = float(light_excess(y(a), y(b), frac, free=0.0)[0])
    assert abs(M.light_change(a, b, box) - expected) < 1e-6
    with pytest.raises(M.MetricError, match="not inside"):
        M.light_change(a, b, (0, 0, 65, 10))
    with pytest.raises(M.MetricError, match="one size"):
        M.light_change(a, b[:-1], box)


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
    # two sets of the same size, subsets as large: every subset is the whole set (one is computed)
    g1, g2 = f1[:120], f2[:120]
    np.random.seed(0)
    assert M.kid_from_features(g1, g2, num_subsets=30, seed=0) == pytest.approx(kernel_distance(g1, g2, 30),
                                                                                rel=1e-10)


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


def test_extract_features_equals_cleanfid_pipeline_on_files(tmp_path, textured):
    # clean-fid reads the files, resizes in "clean" mode and calls a custom extractor; our
    # in-memory path must give the same features for the same (uint8) images.
    import torch
    from cleanfid.fid import get_folder_features
    from PIL import Image

    images = [textured(20, (64, 64, 3)), textured(21, (50, 70, 3)), textured(22, (40, 40))]
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
    ref = get_folder_features(
        str(tmp_path), _tiny_extractor, num_workers=0, batch_size=2, device=torch.device("cpu"),
        mode="clean", verbose=False,
    )
    ours = perceptual.extract_features(images, perceptual.FeatureBackbone("tiny", 48, _tiny_extractor), batch_size=2)
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_fid_kid_on_images_uses_the_given_backbone(textured):
    backbone = perceptual.FeatureBackbone("tiny", 48, _tiny_extractor)
    real = [textured(30 + i, (40, 40, 3)) for i in range(6)]
    fake = [textured(40 + i, (40, 40, 3)) for i in range(5)]
    with pytest.warns(UserWarning, match="under 1000 images"):
        res = perceptual.fid_kid(real, fake, backbone=backbone, batch_size=4)
    f_real, f_fake = perceptual.extract_features(real, backbone), perceptual.extract_features(fake, backbone)
    assert (res.backbone, res.n_real, res.n_fake) == ("tiny", 6, 5)
    assert res.fid == pytest.approx(M.fid_from_features(f_real, f_fake), rel=1e-9)
    assert res.kid == pytest.approx(M.kid_from_features(f_real, f_fake), rel=1e-9)


@pytest.mark.parametrize("build, name, dim, size", [
    (perceptual.vgg16_backbone, "vgg16", 512, 299), (perceptual.alexnet_backbone, "alexnet224", 256, 224),
])
def test_fallback_backbones_normalise_and_pool_a_given_trunk(build, name, dim, size, textured):
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
    feats = perceptual.extract_features([textured(0, (32, 32, 3))] * 2, backbone)
    assert feats.shape == (2, dim)


def test_default_backbone_comes_from_assets(textured):
    from facegen import assets

    backbone = perceptual.fid_backbone()
    if assets.inception_available():
        assert (backbone.name, backbone.size) == ("inception", 299)
    else:
        assert (backbone.name, backbone.dim, backbone.size) == ("alexnet224", 256, 224)
        assert "224x224" in backbone.definition and "conv5" in backbone.definition
    feats = perceptual.extract_features([textured(0, (64, 64, 3))], backbone)
    assert feats.shape == (1, backbone.dim) and np.isfinite(feats).all()


def test_alexnet_backbone_is_the_lpips_alexnet_conv5_pooled():
    # The fallback's trunk is the LPIPS AlexNet (ImageNet weights) through conv5 + ReLU: its
    # features are the mean over space of LPIPS' relu5 activations of the normalised input.
    import torch

    from facegen import assets

    backbone = perceptual.alexnet_backbone()
    assert (backbone.name, backbone.dim, backbone.size) == ("alexnet224", 256, 224)
    batch = torch.rand(2, 3, 224, 224) * 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        relu5 = assets.lpips_network("alex").net((batch / 255 - mean) / std).relu5
    torch.testing.assert_close(backbone.extract(batch), relu5.mean(dim=(2, 3)))
    # the shared LPIPS network is copied, not moved or changed
    assert next(assets.lpips_network("alex").parameters()).requires_grad is False


def test_extract_features_resizes_to_the_backbone_size_as_cleanfid(textured):
    # At a side other than 299 the pre-processing is clean-fid's PIL float bicubic resizer at that side.
    from cleanfid.resize import build_resizer, make_resizer

    seen = []

    def extractor(batch):
        seen.append(tuple(batch.shape))
        return _tiny_extractor(batch)

    images = [textured(50, (128, 128, 3)), textured(51, (40, 60))]
    feats = perceptual.extract_features(images, perceptual.FeatureBackbone("tiny224", 48, extractor, 224), batch_size=2)
    assert seen == [(2, 3, 224, 224)]
    import torch

    resize = make_resizer("PIL", False, "bicubic", (224, 224))
    ref = np.stack([resize(images[0]), resize(np.repeat(images[1][..., None], 3, axis=2))])
    expected = _tiny_extractor(torch.from_numpy(ref).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-6)
    np.testing.assert_array_equal(perceptual.clean_resize(images[0], 299), build_resizer("clean")(images[0]))
    np.testing.assert_array_equal(perceptual.clean_resize(images[0]), perceptual.clean_resize(images[0], 299))


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
