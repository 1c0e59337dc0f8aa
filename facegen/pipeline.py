"""Photo-level processing shared by the app and scripts: faces -> align -> model -> paste back.

Each function takes a loaded :class:`facegen.inference.Runner`, a photo (uint8 RGB) and its
faces, and returns a :class:`PhotoResult`. Models see aligned crops at their input size; what
they return goes back into the photo with :func:`facegen.paste.paste_change`, which adds only the
model's change, so a face larger than the model's output keeps the photo's own detail and the
rest of the photo is untouched (or, when the photo is enlarged, a plain bicubic enlargement).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from facegen import faces as F
from facegen.data.degrade import bicubic_down
from facegen.expressions import BASIC_EXPRESSIONS
from facegen.inference import Runner
from facegen.paste import face_mask, paste_change
from facegen.tasks import TaskShape

MAX_OUTPUT_SIDE = 4096  # enlarged photos are capped so a large upload cannot exhaust memory
LARGE_FACE = 1.25  # a face whose crop spans more than this many model-input sizes is "already large"
TURNED = 0.35  # |nose offset from the eyes' midline| / eye distance above which a face is "strongly turned"

ENLARGE, SHRINK, SHARP = "enlarge", "shrink", "sharp"  # the modes of super_resolve

Progress = Callable[[float, str], None]


@dataclass
class PhotoResult:
    """One model's result on one photo."""

    model_id: str
    image: np.ndarray  # the photo with the processed faces (uint8 RGB); in sharp mode, the comparison strip
    inputs: list[np.ndarray]  # what the model saw, per processed face
    outputs: list[np.ndarray]  # what the model produced, per processed face
    references: list[np.ndarray] = field(default_factory=list)  # sharp face crops (sharp-photo mode)
    before: np.ndarray | None = None  # the photo at the result's size without the model (for before/after)
    notes: list[str] = field(default_factory=list)
    processed: list[int] = field(default_factory=list)  # indices of the faces the model processed


def resize(image: np.ndarray, factor: float) -> np.ndarray:
    """PIL bicubic resize by ``factor`` (antialiased when shrinking)."""
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if size == (w, h):
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def to_size(image: np.ndarray, side: int) -> np.ndarray:
    """A square crop brought to ``side`` pixels the way the models' baselines do (PIL bicubic)."""
    if image.shape[0] == side:
        return image
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC))


def crop_scale(face: F.Face, size: int, template: str) -> float:
    """Crop pixels per photo pixel when ``face`` is aligned to ``size`` (< 1: the face is larger).

    The face is measured as the template measures it (its 5 points), not by the detector's box.
    """
    return F.matrix_scale(F.alignment_matrix(face.points, size, template))


def model_input_size(runner: Runner, default: int) -> int:
    """The face size the model takes: its config's (lr_)size, else ``default`` (the task's input size)."""
    cfg = getattr(runner.model, "config", None)
    for attr in ("lr_size", "size"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


def model_expressions(runner: Runner) -> tuple[str, ...]:
    """The target expressions a model knows (its config's label order), without 'neutral'."""
    cfg = getattr(runner.model, "config", None)
    return tuple(e for e in getattr(cfg, "expressions", BASIC_EXPRESSIONS) if e != "neutral")


def turn(face: F.Face) -> float:
    """How far the face is turned: the nose tip's offset from the eyes' perpendicular bisector, in eye distances."""
    p = face.points.astype(np.float64)
    eyes = p[1] - p[0]
    d = float(np.linalg.norm(eyes))
    if d < 1e-6:
        return float("inf")
    return abs(float(np.dot(p[2] - (p[0] + p[1]) / 2, eyes / d))) / d


def face_notes(faces: list[F.Face], size: int, template: str) -> list[str]:
    """Sentences about faces a model will not serve well: strongly turned, or far smaller than its input."""
    notes = []
    for i, f in enumerate(faces):
        if turn(f) > TURNED:
            notes.append(f"Face {i + 1} is strongly turned; the models were trained on roughly frontal faces.")
        s = crop_scale(f, size, template)
        if s > 2.0:
            notes.append(f"Face {i + 1} is small: the model's {size}-pixel crop is {s:.1f}x larger than the face, "
                         "so the result cannot hold more detail than the photo has.")
    return notes


def _tensor(crops: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0)


def _step(progress: Progress | None, done: int, total: int, what: str) -> None:
    if progress is not None:
        progress(done / max(total, 1), what)


# ---------------------------------------------------------------------------------------------
# Super-resolution


def super_resolve(photo: np.ndarray, faces: list[F.Face], runner: Runner, task: TaskShape, *,
                  mode: str = ENLARGE, paste: bool = True, max_side: int = MAX_OUTPUT_SIDE,
                  progress: Progress | None = None) -> PhotoResult:
    """Super-resolve the faces of ``photo`` with ``runner`` at the task's factor.

    ``enlarge`` (default): the photo is enlarged by the factor (PIL bicubic; capped at
    ``max_side`` with a note, never below the upload's size); each face small enough for the
    model (its crop at most 1.25x the model's input) is super-resolved and the model's change
    over a bicubic enlargement is added back, so the bicubic model returns exactly the bicubic
    enlargement. Larger faces are left as the bicubic enlargement, with a note saying why.

    ``shrink`` (a demonstration): the photo is first reduced so that its largest face has the
    model's input size, then enlarged as above; the output is smaller than the upload when the
    faces were larger than the model's input.

    ``sharp`` ("I have a sharp photo"): each face is aligned at the output size as the reference,
    reduced by the factor exactly as the benchmark does and super-resolved; ``image`` is a strip
    per face (bicubic-enlarged low-res input | model | original), nothing is pasted.
    """
    if mode not in (ENLARGE, SHRINK, SHARP):
        raise ValueError(f"mode must be {ENLARGE!r}, {SHRINK!r} or {SHARP!r}, got {mode!r}")
    notes: list[str] = []
    n = len(faces)
    if mode == SHARP:
        refs = [F.align(photo, face, task.out_size, template=task.template).image for face in faces]
        inputs = [bicubic_down(r, task.scale) for r in refs]
        outputs = []
        for i, inp in enumerate(inputs):
            _step(progress, i, n, f"{runner.model_id}: face {i + 1} of {n}")
            outputs += runner([inp])
        strips = [np.concatenate([to_size(i, task.out_size), o, r], axis=1) for i, o, r in zip(inputs, outputs, refs)]
        return PhotoResult(runner.model_id, np.concatenate(strips, axis=0), inputs, outputs, refs,
                           notes=["Each row: the low-res input (enlarged bicubically) | the model | the original."],
                           processed=list(range(n)))

    if mode == SHRINK:
        reduce = min(1.0, crop_scale(faces[0], task.in_size, task.template))
        if reduce < 1.0:
            photo = resize(photo, reduce)
            faces = [F.scale_face(f, reduce) for f in faces]
            notes.append(f"Shrink-first demonstration: the photo was reduced to {reduce:.0%} of its size so that the "
                         f"largest face has the model's {task.in_size}-pixel input, then enlarged {task.scale}x.")
    h, w = photo.shape[:2]
    factor = max(1.0, min(float(task.scale), max_side / max(h, w)))
    if factor < task.scale:
        notes.append(f"The photo was enlarged {factor:.2f}x instead of {task.scale}x to stay within {max_side} pixels "
                     "(a larger result would not fit in memory).")
    canvas = resize(photo, factor)
    result = PhotoResult(runner.model_id, canvas, [], [], before=canvas, notes=notes)
    for i, face in enumerate(faces):
        _step(progress, i, n, f"{runner.model_id}: face {i + 1} of {n}")
        if crop_scale(face, task.in_size, task.template) * LARGE_FACE < 1.0:
            continue
        a = F.align(photo, face, task.in_size, template=task.template)
        out = runner([a.image])[0]
        result.inputs.append(a.image)
        result.outputs.append(out)
        result.processed.append(i)
        if paste:
            result.image = paste_change(result.image, out, to_size(a.image, out.shape[0]), a, photo_scale=factor)
    left = [i for i in range(n) if i not in result.processed]
    if left:
        which = ", ".join(f"Face {i + 1}" for i in left)
        notes.append(f"{which} {'is' if len(left) == 1 else 'are'} already larger than the model's {task.in_size}-pixel "
                     f"input, so {'it was' if len(left) == 1 else 'they were'} enlarged by plain bicubic resampling "
                     "(a face model would only lose detail there). Choose the shrink-first demonstration to see the "
                     "model on them.")
    return result


# ---------------------------------------------------------------------------------------------
# Smile and expression


def _paste_faces(photo: np.ndarray, aligned: list[F.Aligned], inputs: list[np.ndarray], outputs: list[np.ndarray],
                 factor: float, template: str) -> np.ndarray:
    """The photo enlarged by ``factor`` with each model change added inside the inner-face mask."""
    canvas = resize(photo, factor)
    for a, inp, out in zip(aligned, inputs, outputs):
        side = out.shape[0]
        canvas = paste_change(canvas, out, to_size(inp, side), a, photo_scale=factor, mask=face_mask(template, side))
    return canvas


def smile_photo(photo: np.ndarray, faces: list[F.Face], runner: Runner, task: TaskShape, *, paste: bool = True,
                max_side: int = MAX_OUTPUT_SIDE, progress: Progress | None = None) -> PhotoResult:
    """Turn every face of ``photo`` into a smiling one at twice the model's input resolution.

    Each face is aligned with the task's template at the model's input size (64 for the shipped
    models); the model returns the smiling face at 2x, whose change over the bicubic-enlarged
    input is added to the inner face (:func:`facegen.paste.face_mask`: brows to chin). The photo
    is enlarged by as much as the output adds to the largest face (at most 2x, capped at
    ``max_side``): a low-resolution photo comes back larger, a photo whose faces are already larger
    than the output keeps its size and its detail. SGE models get the high-resolution neutral
    face as guidance, aligned from the photo at the output size.
    """
    in_size = model_input_size(runner, task.in_size)
    aligned = [F.align(photo, f, in_size, task.template) for f in faces]
    outputs = []
    for i, (f, a) in enumerate(zip(faces, aligned)):
        _step(progress, i, len(faces), f"{runner.model_id}: face {i + 1} of {len(faces)}")
        guide = F.align(photo, f, 2 * in_size, task.template).image
        outputs += runner([a.image], guide=_tensor([guide]))
    out_size = outputs[0].shape[0]
    factor = float(np.clip(crop_scale(faces[0], out_size, task.template), 1.0, out_size / in_size))
    factor = max(1.0, min(factor, max_side / max(photo.shape[:2])))
    notes = face_notes(faces, in_size, task.template)
    if factor > 1.0 + 1e-6:
        notes.append(f"The photo was enlarged {factor:.2f}x to the resolution of the smiling faces.")
    inputs = [a.image for a in aligned]
    before = resize(photo, factor)
    image = _paste_faces(photo, aligned, inputs, outputs, factor, task.template) if paste else before
    return PhotoResult(runner.model_id, image, inputs, outputs, before=before, notes=notes,
                       processed=list(range(len(faces))))


def expression_photo(photo: np.ndarray, faces: list[F.Face], runner: Runner, expression: str, task: TaskShape, *,
                     intensity: float = 1.0, landmarks: np.ndarray | None = None, paste: bool = True,
                     progress: Progress | None = None) -> PhotoResult:
    """Give every face of ``photo`` the target ``expression``; the photo keeps its size.

    Faces are aligned with the model's template (:attr:`Runner.template`: the task's, or the tight
    crop of a model trained on it) at the model's size and the model's change is added to their
    inner face (brows to chin). ``intensity`` in [0, 1] scales ExprGAN's expression
    code (``lmk-guided``: its fitted landmark template and its change to the face, 0 = the input). ``landmarks``: (68, 2) target
    landmarks in the aligned crop's pixels (from a reference photo,
    :func:`facegen.models.heatmaps.photo_landmarks`), used for every face by landmark-guided
    models; None fits the model's expression template to each input face.
    """
    size = model_input_size(runner, task.in_size)
    template = runner.template
    aligned = [F.align(photo, f, size, template) for f in faces]
    conditions: dict = {"expression": expression, "intensity": float(intensity)}
    if landmarks is not None:
        conditions["landmarks"] = torch.from_numpy(np.asarray(landmarks, dtype=np.float32)[None])
    outputs = []
    for i, a in enumerate(aligned):
        _step(progress, i, len(faces), f"{runner.model_id}: {expression}, face {i + 1} of {len(faces)}")
        outputs += runner([a.image], **conditions)
    inputs = [a.image for a in aligned]
    image = _paste_faces(photo, aligned, inputs, outputs, 1.0, template) if paste else photo
    return PhotoResult(runner.model_id, image, inputs, outputs, before=photo,
                       notes=face_notes(faces, size, template), processed=list(range(len(faces))))


def expression_grid(inputs: list[np.ndarray], outputs: dict[str, list[np.ndarray]]) -> np.ndarray:
    """One image per photo: a row per face, columns = the input, then each expression in ``outputs`` order."""
    rows = []
    for i, inp in enumerate(inputs):
        cells = [inp] + [outs[i] for outs in outputs.values()]
        side = max(c.shape[0] for c in cells)
        rows.append(np.concatenate([to_size(c, side) for c in cells], axis=1))
    return np.concatenate(rows, axis=0)
