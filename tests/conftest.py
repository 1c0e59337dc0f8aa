"""Shared fixtures. Tests run on CPU without network; data-backed tests skip without the data."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def _data_root() -> Path:
    env = os.environ.get("FACEGEN_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared face data root (``FACEGEN_DATA``, else ``../shared/data``); skips when absent."""
    root = _data_root()
    if not (root / "README.md").is_file():
        pytest.skip(f"face data not found at {root}: set FACEGEN_DATA to the data root")
    return root


@pytest.fixture
def tiny_root(data_root, tmp_path):
    """A data root of the first two CelebA test faces and four LFW photos (the distractors)."""
    root = tmp_path / "data"
    hr = root / "celeba_fsrnet" / "celeba_val_1000_HR"
    hr.mkdir(parents=True)
    for p in sorted((data_root / "celeba_fsrnet" / "celeba_val_1000_HR").iterdir())[:2]:
        shutil.copy(p, hr / p.name)
    (root / "lfw").mkdir()
    rows = list(csv.DictReader(open(data_root / "lfw" / "labels.csv")))[:4]
    with open(root / "lfw" / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        (root / "lfw" / r["image"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_root / "lfw" / r["image"], root / "lfw" / r["image"])
    return root


def _textured_image(seed: int, shape: tuple[int, ...] = (48, 40, 3)) -> np.ndarray:
    """A smooth gradient plus noise: structure at several scales, values over the whole range."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = 127 + 80 * np.sin(xx / 5.0 + seed) * np.cos(yy / 7.0)
    img = base[..., None] + rng.normal(0, 25, shape if len(shape) == 3 else shape + (1,))
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return img if len(shape) == 3 else img[..., 0]


@pytest.fixture
def textured():
    """``textured(seed, shape)``: a deterministic uint8 test image (gradient + noise)."""
    return _textured_image
