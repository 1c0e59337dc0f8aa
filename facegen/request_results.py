"""One request's results in the app: a fresh folder of full-resolution PNGs per request, the labelled
results with their matching inputs (for a before/after comparison), the notes, and progress per step.

Nothing here needs Gradio: the app turns a :class:`RequestResults` into gallery items and a status
line. Result folders live under the system temp folder and are swept after ``RESULT_TTL_S``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

RESULT_TTL_S = 3600  # per-request result files older than this are removed


def face_label(i: int) -> str:
    """The name of the i-th face (0-based, largest first) in labels and the face picker."""
    return f"Face {i + 1}"


def face_index(label: str) -> int | None:
    """0-based index of a face named by :func:`face_label`; None for any other text."""
    m = re.fullmatch(r"Face (\d+)", str(label).strip())
    return int(m.group(1)) - 1 if m else None


def results_root() -> Path:
    return Path(tempfile.gettempdir()) / "facegen-results"


def sweep_old_results(now: float | None = None) -> None:
    """Remove result folders of past requests (older than RESULT_TTL_S); best effort."""
    root = results_root()
    if not root.is_dir():
        return
    now = time.time() if now is None else now
    for d in root.iterdir():
        try:
            if now - d.stat().st_mtime > RESULT_TTL_S:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            continue


class RequestFiles:
    """A fresh folder per request for its full-resolution PNGs: nothing is shared between people."""

    def __init__(self) -> None:
        sweep_old_results()
        results_root().mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="run-", dir=results_root()))
        self._n = 0

    def png(self, image: np.ndarray, name: str) -> str:
        self._n += 1
        slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:60] or "image"
        path = self.dir / f"{self._n:03d}-{slug}.png"
        Image.fromarray(image).save(path, compress_level=3)
        return str(path)


@dataclass
class Shown:
    """One labelled result: its PNG, and the matching input at the same size for the slider."""

    label: str
    after: str
    before: str | None = None


def same_size(image: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``image`` resized (bicubic) to the height and width of ``like``, or as it is when they match."""
    h, w = like.shape[:2]
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BICUBIC))


def status_line(n_faces: int, notes: list[str]) -> str:
    return f"{n_faces} face(s) processed." + "".join(f" {n}" for n in notes)


class RequestResults:
    """Collects one request's labelled results, notes and progress (per model and per face).

    ``progress(fraction, desc=...)`` is called with the request's overall fraction done.
    """

    def __init__(self, progress: Callable[..., object], model_ids: list[str], steps_per_model: int = 1) -> None:
        self.files = RequestFiles()
        self.extra: list[tuple[str, str]] = []
        self.shown: list[Shown] = []
        self.notes: list[str] = []
        self._progress, self._total = progress, max(1, len(model_ids) * steps_per_model)
        self._done = 0

    def tracker(self, label: str) -> Callable[[float, str], None]:
        """A pipeline progress callback for the next step (fraction within the step, description)."""
        done = self._done
        self._done += 1

        def report(fraction: float, what: str) -> None:
            self._progress((done + fraction) / self._total, desc=f"{label}: {what}")

        return report

    def note(self, *notes: str) -> None:
        self.notes.extend(n for n in notes if n not in self.notes)

    def show(self, label: str, image: np.ndarray, before: np.ndarray | str | None = None) -> None:
        if isinstance(before, np.ndarray):
            before = self.files.png(same_size(before, image), f"{label}-before")
        self.shown.append(Shown(label, self.files.png(image, label), before))

    def inputs(self, crops: list[np.ndarray], what: str) -> None:
        self.extra += [(self.files.png(c, f"input-{i}"), f"{what}, {face_label(i)} ({c.shape[1]} px)")
                       for i, c in enumerate(crops)]

    def status(self, n_faces: int) -> str:
        return status_line(n_faces, self.notes)
