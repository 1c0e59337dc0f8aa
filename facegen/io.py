"""Files written whole or not at all, file hashes, and arrays in ``.npz`` / ``.npy`` files.

Every file the project writes that another process may read while it is being written (caches,
results, cards, plots, example photos) goes through :func:`atomic_write_bytes`: the bytes land in
a temporary file beside the target, are flushed to disk, and the file is renamed into place, so a
reader sees the old file or the new one, never half of it, and a killed writer leaves no torn file.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np

FILE_MODE = 0o644  # mkstemp makes owner-only files; what is written here is plain shared data


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by temp file + fsync + rename (creating the parent folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Arrays as an uncompressed ``.npz`` file, written atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str | Path) -> dict[str, np.ndarray] | None:
    """The arrays of an ``.npz`` file (no pickles), or None when it is absent or damaged."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None  # a killed write never lands (writes are atomic), so this is a damaged or foreign file


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """One array as a ``.npy`` file (no pickles), written atomically."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
