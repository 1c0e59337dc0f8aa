"""facegen.data.degrade: the degradations, the training augmentation and the SR training pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facegen.data import (
    Augment,
    DegradationError,
    SRPairs,
    bicubic_down,
    bicubic_up,
    gaussian_blur,
    gaussian_blur_down,
    gaussian_kernel,
)

# ------------------------------------------------------------------------------------------
# degradations


def _img(h=64, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_bicubic_down_equals_pil_and_up_shapes():
    img = _img()
    for s in (2, 4, 8):
        want = np.asarray(Image.fromarray(img).resize((48 // s, 64 // s), Image.Resampling.BICUBIC))
        got = bicubic_down(img, s)
        assert got.shape == (64 // s, 48 // s, 3) and np.array_equal(got, want)
    assert bicubic_up(bicubic_down(img, 4), 4).shape == img.shape
    with pytest.raises(DegradationError, match="divide"):
        bicubic_down(_img(30, 30), 4)


def test_gaussian_kernel_and_blur():
    k = gaussian_kernel(7, 5.0)
    assert k.shape == (7,) and abs(k.sum() - 1) < 1e-12 and np.allclose(k, k[::-1])
    assert abs(np.outer(k, k).sum() - 1) < 1e-12
    img = _img()
    from torchvision.transforms.functional import gaussian_blur as tv_blur

    ref = tv_blur(torch.from_numpy(img).permute(2, 0, 1), [7, 7], [5.0, 5.0]).permute(1, 2, 0).numpy()
    assert np.abs(gaussian_blur(img).astype(int) - ref.astype(int)).max() <= 1
    # paper 003's order: blur first, then resize
    assert np.array_equal(gaussian_blur_down(img, 2), bicubic_down(gaussian_blur(img), 2))
    assert gaussian_blur_down(img, 2).shape == (32, 24, 3)
    # blurring removes high frequencies: a noise image loses most of its variance
    assert gaussian_blur(img).std() < 0.3 * img.std()


def test_constant_image_stays_constant():
    img = np.full((32, 32, 3), 137, np.uint8)
    for out in (bicubic_down(img, 4), bicubic_up(img, 2), gaussian_blur(img), gaussian_blur_down(img, 2)):
        assert np.all(out == 137)


# ------------------------------------------------------------------------------------------
# SR pairs


def test_srpairs_shapes_ranges_and_determinism():
    hr = np.stack([_img(32, 32, seed=i) for i in range(4)])
    plain = SRPairs(hr, scale=4)
    item = plain[1]
    assert item["hr"].shape == (3, 32, 32) and item["lr"].shape == (3, 8, 8)
    assert item["hr"].dtype == torch.float32 and 0 <= item["lr"].min() and item["lr"].max() <= 1
    assert torch.equal(item["lr"], torch.from_numpy(bicubic_down(hr[1], 4)).permute(2, 0, 1).float() / 255)
    assert torch.equal(item["hr"], torch.from_numpy(hr[1]).permute(2, 0, 1).float() / 255)

    a = SRPairs(hr, scale=2, degradation="blur", augment=Augment(), seed=3)
    b = SRPairs(hr, scale=2, degradation="blur", augment=Augment(), seed=3)
    assert all(torch.equal(a[i]["lr"], b[i]["lr"]) and torch.equal(a[i]["hr"], b[i]["hr"]) for i in range(4))
    # a different seed or epoch draws different augmentations
    c = SRPairs(hr, scale=2, degradation="blur", augment=Augment(), seed=4)
    assert any(not torch.equal(a[i]["hr"], c[i]["hr"]) for i in range(4))
    b.set_epoch(1)
    assert any(not torch.equal(a[i]["hr"], b[i]["hr"]) for i in range(4))
    # augmentation keeps shapes and range
    assert a[0]["lr"].shape == (3, 16, 16) and 0 <= a[0]["hr"].min() and a[0]["hr"].max() <= 1

    flip_only = SRPairs(hr, scale=2, augment=Augment(flip=True, scale_jitter=0, shift_jitter=0), seed=0)
    for i in range(4):
        out = flip_only[i]["hr"]
        ref = torch.from_numpy(hr[i]).permute(2, 0, 1).float() / 255
        assert torch.equal(out, ref) or torch.equal(out, ref.flip(-1))


def test_augment_framing_rotates_about_the_centre_and_keeps_the_standard_draws():
    import cv2

    from facegen.data import AUGMENTS
    from facegen.data.degrade import augment

    img = _img(32, 32, seed=1)
    # rotation alone: the drawn angle (the only draw) about the centre, borders edge-repeated
    rot = Augment(flip=False, scale_jitter=0, shift_jitter=0, rotation=10.0)
    angle = np.random.default_rng(7).uniform(-10, 10)
    want = cv2.warpAffine(img, cv2.getRotationMatrix2D((15.5, 15.5), angle, 1.0), (32, 32), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)
    assert np.array_equal(augment(img, rot, np.random.default_rng(7)), want) and not np.array_equal(want, img)
    # the standard augmentation draws and warps as before rotation existed (zoom about the centre, then shift)
    rng = np.random.default_rng(3)
    flip, zoom, (dx, dy) = rng.random() < 0.5, 1 + rng.uniform(-0.05, 0.05), rng.uniform(-0.03, 0.03, size=2) * 32
    src = np.ascontiguousarray(img[:, ::-1] if flip else img)
    m = np.array([[zoom, 0, (1 - zoom) * 15.5 + dx], [0, zoom, (1 - zoom) * 15.5 + dy]])
    want = cv2.warpAffine(src, m, (32, 32), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    assert np.array_equal(augment(img, AUGMENTS["standard"], np.random.default_rng(3)), want)
    assert AUGMENTS["framing"] == Augment(scale_jitter=0.15, shift_jitter=0.06, rotation=10.0)


def test_srpairs_luminance_mode():
    grey = np.repeat(_img(16, 16)[:, :, :1], 3, axis=2)
    ds = SRPairs([grey], scale=2, luminance=True)
    item = ds[0]
    assert item["hr"].shape == (1, 16, 16) and item["lr"].shape == (1, 8, 8)
    # the Y of a grey image is the grey value itself
    assert torch.allclose(item["hr"][0], torch.from_numpy(grey[..., 0]).float() / 255, atol=1e-6)
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[..., 0] = 255  # pure red: Y = 0.299
    assert torch.allclose(SRPairs([colour], scale=2, luminance=True)[0]["hr"], torch.full((1, 4, 4), 0.299))
    with pytest.raises(DegradationError, match="Unknown degradation"):
        SRPairs([grey], scale=2, degradation="jpeg")
