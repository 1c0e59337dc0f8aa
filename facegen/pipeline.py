"""Photo-level processing shared by the app and scripts: detect -> align -> model -> paste back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from facegen import faces as F
from facegen.inference import load_runner

MAX_OUTPUT_SIDE = 2048  # the output photo is capped so a large upload cannot exhaust memory


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
    notes: list[str] = field(default_factory=list)


def output_scale(shape: tuple[int, ...], scale: float, max_side: int = MAX_OUTPUT_SIDE) -> float:
    """The factor the photo is enlarged by: the model's factor, capped so the result fits max_side."""
    return min(float(scale), max_side / max(shape[0], shape[1]))


def resize(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if size == (w, h):
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def super_resolve(photo: np.ndarray, faces: list[F.Face], model_id: str, task: TaskShape,
                  *, paste: bool = True, max_side: int = MAX_OUTPUT_SIDE) -> PhotoResult:
    """Enlarge ``photo`` by the task's factor (bicubic background) with each face super-resolved.

    Each face is aligned at the model's input size, super-resolved to its output size, and
    pasted back into the enlarged photo with a feathered mask.
    """
    runner = load_runner(model_id, task.id)
    factor = output_scale(photo.shape, task.scale, max_side)
    notes = []
    if factor < task.scale:
        notes.append(f"The photo was enlarged {factor:.2f}x instead of {task.scale}x to stay within {max_side} pixels.")
    aligned = [F.align(photo, face, task.in_size, template=task.template) for face in faces]
    inputs = [a.image for a in aligned]
    outputs = runner(inputs)
    canvas = resize(photo, factor)
    if paste:
        for a, out in zip(aligned, outputs):
            canvas = F.paste_back(canvas, out, a, photo_scale=factor)
    big = [i + 1 for i, face in enumerate(faces) if max(face.box[2], face.box[3]) > 2 * task.in_size]
    if big:
        notes.append(
            f"Face(s) {big} are already larger than the model's {task.in_size}-pixel input, so they were "
            "reduced to it first; super-resolution shows its value on small faces. Use 'I have a sharp "
            "photo' to compare the models against the original."
        )
    return PhotoResult(model_id=model_id, image=canvas, inputs=inputs, outputs=outputs, notes=notes)
