"""benchmarks.perceptual's LPIPS against the lpips package's own behaviour and known orderings."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from benchmarks import metrics as M
from benchmarks import perceptual

REPO = Path(__file__).resolve().parent.parent


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


def test_lpips_plumbing(random_lpips_net, textured):
    import torch

    a, b = textured(1, (64, 64, 3)), textured(2, (64, 64, 3))
    assert perceptual.lpips_distance(a, a, random_lpips_net) == 0.0
    d = perceptual.lpips_distance(a, b, random_lpips_net)
    assert d > 0
    # same number as calling the lpips module directly on [-1, 1] NCHW tensors
    ta = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1
    tb = torch.from_numpy(b).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        assert d == pytest.approx(float(random_lpips_net(ta, tb)), rel=1e-6)
    assert perceptual.lpips_distance(a / 255.0, b / 255.0, random_lpips_net) == pytest.approx(d, rel=1e-5)
    # batched: mixed shapes, batch boundaries, same numbers as one by one
    c = textured(3, (32, 48, 3))
    preds, targets = [a, b, c, a], [b, a, c[::-1].copy(), a]
    many = perceptual.lpips_distances(preds, targets, random_lpips_net, batch_size=3)
    single = [perceptual.lpips_distance(p, t, random_lpips_net) for p, t in zip(preds, targets)]
    np.testing.assert_allclose(many, single, rtol=1e-5, atol=1e-7)
    with pytest.raises(M.MetricError, match="shapes"):
        perceptual.lpips_distances([a], [c], random_lpips_net)


def test_lpips_identical_pairs_are_zero_without_the_net(random_lpips_net, textured):
    # The shortcut's premise: the lpips module itself gives exactly 0 for identical images.
    import torch

    a, b = textured(4, (64, 64, 3)), textured(5, (64, 64, 3))
    ta = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        assert float(random_lpips_net(ta, ta.clone())) == 0.0

    class Refuses(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, y):
            raise AssertionError("identical pairs must not reach the network")

    assert perceptual.lpips_distances([a, b], [a.copy(), b.copy()], Refuses()) == [0.0, 0.0]
    # a mixed list runs the network on the differing pairs only, in order
    mixed = perceptual.lpips_distances([a, a, b], [a, b, b], random_lpips_net)
    assert mixed[0] == 0.0 and mixed[2] == 0.0 and mixed[1] == pytest.approx(perceptual.lpips_distance(a, b, random_lpips_net))


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
    assert perceptual.lpips_distance(face, face, net) == 0.0
    d_noise = perceptual.lpips_distance(noisy, face)  # default network: the same offline AlexNet
    d_blur = perceptual.lpips_distance(blurred, face, net)
    d_other = perceptual.lpips_distance(other, face, net)
    assert 0 < d_noise < d_blur < d_other, (d_noise, d_blur, d_other)


