"""The benchmark's on-disk cache: ``$FACEGEN_CACHE/bench`` (default ``~/.cache/facegen/bench``),
arrays stored as ``.npz`` files written atomically, so a killed run never leaves a torn file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from facegen import assets, checkpoint


def cache_root() -> Path:
    root = assets.cache_dir() / "bench"
    root.mkdir(parents=True, exist_ok=True)
    return root


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    checkpoint.atomic_write_bytes(path, buf.getvalue())


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None  # absent or damaged (a killed write never lands: writes are atomic)
