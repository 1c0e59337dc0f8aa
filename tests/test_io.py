"""facegen.io (atomic writes, hashes, npz) and facegen.colour (BT.601 luma, both conventions)."""

from __future__ import annotations

import hashlib
import stat

import numpy as np
import pytest
import torch

from facegen import io
from facegen.colour import luma


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.json"
    io.atomic_write_bytes(target, b"{}")
    io.atomic_write_text(target, "[1]")
    assert target.read_text() == "[1]"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]
    assert stat.S_IMODE(target.stat().st_mode) == io.FILE_MODE
    assert io.sha256_file(target) == hashlib.sha256(b"[1]").hexdigest()


def test_npz_round_trip_and_damage(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    io.save_npz(tmp_path / "a.npz", a=a, n=np.int64(3))
    got = io.load_npz(tmp_path / "a.npz")
    assert np.array_equal(got["a"], a) and got["n"] == 3
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert io.load_npz(tmp_path / "bad.npz") is None
    assert io.load_npz(tmp_path / "absent.npz") is None
    io.save_npy(tmp_path / "p.npy", a)
    assert np.array_equal(np.load(tmp_path / "p.npy", allow_pickle=False), a)


def test_luma_full_range_and_studio_known_values():
    rgb = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.float64)
    np.testing.assert_allclose(luma(rgb), [0, 255, 0.299 * 255, 0.587 * 255, 0.114 * 255], rtol=1e-12)
    grey = np.full((4, 4, 3), 77.0)
    assert np.array_equal(luma(grey), np.full((4, 4), 77.0))  # grey keeps its values exactly
    unit = rgb / 255.0
    np.testing.assert_allclose(luma(unit, studio=True) * 255, [16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966],
                               atol=1e-9)
    t = torch.from_numpy(unit.T.copy())[None, :, :, None].float()  # NCHW, channels on axis 1
    np.testing.assert_allclose(luma(t, axis=1, keepdim=True, studio=True)[0, 0, :, 0].numpy(),
                               luma(unit, studio=True), atol=1e-6)
    with pytest.raises(ValueError, match="3 colour channels"):
        luma(np.zeros((4, 4, 4)))


def test_luma_products_agree_with_the_terms_and_keep_axis():
    rng = np.random.default_rng(0)
    x = rng.random((5, 7, 3))
    for studio in (False, True):
        terms = luma(x, studio=studio)
        for method in ("dot", "matmul"):
            got = luma(x, studio=studio, method=method)
            assert got.dtype == np.float64 and got.shape == (5, 7)
            np.testing.assert_allclose(got, terms, rtol=1e-13, atol=1e-15)
            moved = luma(np.moveaxis(x, -1, 0), axis=0, keepdim=True, studio=studio, method=method)
            assert moved.shape == (1, 5, 7) and np.array_equal(moved[0], got)
    # "dot" is BasicSR's rgb2ycbcr (np.dot with the 0-255 weights, offset, then / 255) to the bit
    x32 = x.astype(np.float32)
    assert np.array_equal(luma(x32, studio=True, method="dot"),
                          (np.dot(x32, [65.481, 128.553, 24.966]) + 16.0) / 255.0)
    assert np.array_equal(luma(x, method="matmul"), x @ np.array([0.299, 0.587, 0.114]))
    with pytest.raises(TypeError, match="numpy arrays"):
        luma(torch.zeros(3, 2, 2), axis=0, method="dot")
    with pytest.raises(ValueError, match="'terms', 'dot' or 'matmul'"):
        luma(x, method="sum")
