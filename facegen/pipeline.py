"""Photo-level processing shared by the app and scripts: detect -> align -> model -> paste back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from facegen import faces as F
from facegen.data.degrade import bicubic_down
from facegen.inference import load_runner

MAX_OUTPUT_SIDE = 2048  # the output photo is capped so a large upload cannot exhaust memory
LARGE_FACE = 1.25  # a face whose crop spans more than this many model-input sizes is "already large"


class TaskShape(Protocol):
    """What the pipeline needs of a task (benchmarks.tasks.Task satisfies it)."""

    id: str
    in_size: int
    out_size: int
    template: str

    @property
    def scale(self) -> int: ...


@dataclass
class PhotoResult:
    """One model's result on one photo."""

    model_id: str
    image: np.ndarray  # the whole photo with processed faces pasted back (uint8 RGB)
    inputs: list[np.ndarray]  # what the model saw, per face
    outputs: list[np.ndarray]  # what the model produced, per face
    references: list[np.ndarray] = field(default_factory=list)  # sharp face crops (sharp-photo mode)
    low_res_photo: np.ndarray | None = None  # the photo the model's inputs came from
    notes: list[str] = field(default_factory=list)


def resize(image: np.ndarray, factor: float) -> np.ndarray:
    """PIL bicubic resize by ``factor`` (antialiased when shrinking)."""
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if size == (w, h):
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def scale_face(face: F.Face, factor: float) -> F.Face:
    """The same face in the photo resized by ``factor``."""
    x, y, w, h = face.box
    return F.Face(box=(x * factor, y * factor, w * factor, h * factor), score=face.score,
                  points=(face.points * factor).astype(np.float32))


def crop_scale(photo: np.ndarray, face: F.Face, size: int, template: str) -> float:
    """Crop pixels per photo pixel when ``face`` is aligned to ``size`` (< 1: the face is larger)."""
    m = F.align(photo[:1, :1], face, size, template).matrix  # the matrix only; the tiny image saves the warp
    return float(np.sqrt(abs(np.linalg.det(m[:, :2]))))


def super_resolve(photo: np.ndarray, faces: list[F.Face], model_id: str, task: TaskShape, *,
                  sharp: bool = False, paste: bool = True, max_side: int = MAX_OUTPUT_SIDE) -> PhotoResult:
    """Super-resolve every face of ``photo`` with ``model_id`` at the task's factor.

    Default mode: the photo is taken as the low-resolution one and enlarged by the task's
    factor (bicubic background) with each face super-resolved and pasted back. A face model
    works on faces of its input size (e.g. 32 pixels for 4x); when the faces are larger, the
    photo is first reduced so that the largest face has that size, and a note says so.

    ``sharp=True`` ("I have a sharp photo"): each face is aligned at the output size as the
    reference, reduced by the task's factor exactly as the benchmark does, super-resolved, and
    pasted back into the original photo; ``references`` then holds the sharp crops to compare.
    """
    runner = load_runner(model_id, task.id)
    notes: list[str] = []
    if sharp:
        refs = [F.align(photo, face, task.out_size, template=task.template) for face in faces]
        inputs = [bicubic_down(a.image, task.scale) for a in refs]
        outputs = runner(inputs)
        canvas = photo
        if paste:
            for a, out in zip(refs, outputs):
                canvas = F.paste_back(canvas, out, a)
        return PhotoResult(model_id, canvas, inputs, outputs, [a.image for a in refs], None, notes)

    reduce = min(1.0, min(crop_scale(photo, f, task.in_size, task.template) for f in faces[:1]) * LARGE_FACE)
    if reduce < 1.0:
        reduce /= LARGE_FACE  # bring the largest face to exactly the model's input size
        photo = resize(photo, reduce)
        faces = [scale_face(f, reduce) for f in faces]
        notes.append(
            f"The faces are larger than this model's {task.in_size}-pixel input, so the photo was first "
            f"reduced to {reduce:.0%} of its size (the low-resolution input shown) and then enlarged {task.scale}x."
        )
    factor = min(float(task.scale), max_side / max(photo.shape[0], photo.shape[1]))
    if factor < task.scale:
        notes.append(f"The photo was enlarged {factor:.2f}x instead of {task.scale}x to stay within {max_side} pixels.")
    aligned = [F.align(photo, face, task.in_size, template=task.template) for face in faces]
    inputs = [a.image for a in aligned]
    outputs = runner(inputs)
    canvas = resize(photo, factor)
    if paste:
        for a, out in zip(aligned, outputs):
            canvas = F.paste_back(canvas, out, a, photo_scale=factor)
    return PhotoResult(model_id, canvas, inputs, outputs, [], photo, notes)
