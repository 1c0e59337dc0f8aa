"""Shared fixtures. Tests run on CPU without network; data-backed tests skip without the data."""

from __future__ import annotations

import os
from pathlib import Path

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
