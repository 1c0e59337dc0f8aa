"""The benchmark's on-disk cache: ``$FACEGEN_CACHE/bench`` (default ``~/.cache/facegen/bench``),
arrays stored as ``.npz`` files written atomically, so a killed run never leaves a torn file."""

from __future__ import annotations

from pathlib import Path

from facegen import assets
from facegen.io import load_npz, save_npz

__all__ = ["cache_root", "load_npz", "save_npz"]


def cache_root() -> Path:
    root = assets.cache_dir() / "bench"
    root.mkdir(parents=True, exist_ok=True)
    return root

