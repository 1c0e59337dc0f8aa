"""The app's example photos, made from installed packages (no third-party photo lives in the repository)."""

from __future__ import annotations

import io
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from facegen.io import atomic_write_bytes
from facegen.pipeline import resize

EXAMPLE_LABELS = ("astronaut", "two faces", "small photo")


def example_photos(folder: Path | None = None) -> list[str]:
    """scikit-image's public-domain astronaut, a generated two-face photo, and a small low-res copy."""
    folder = folder or Path(tempfile.gettempdir()) / "facegen-examples"
    folder.mkdir(parents=True, exist_ok=True)
    src = resources.files("skimage") / "data" / "astronaut.png"
    with resources.as_file(src) as p:
        astronaut = np.asarray(Image.open(p).convert("RGB"))
    made = {
        "astronaut.png": astronaut,
        "two-faces.png": np.concatenate([astronaut, astronaut[:, ::-1]], axis=1),
        "astronaut-small.png": resize(astronaut, 0.25),
    }
    paths = []
    for name, image in made.items():
        path = folder / name
        if not path.is_file():
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="PNG")
            atomic_write_bytes(path, buf.getvalue())  # a concurrent start never sees half a file
        paths.append(str(path))
    return paths
