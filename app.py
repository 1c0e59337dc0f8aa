"""facegen demo: upload a face photo; super-resolve it, make it smile, or give it another expression,
with every hosted model side by side; and the benchmark's leaderboard.

`python app.py` serves it at http://127.0.0.1:7860 (set GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to
change). `build_demo()` returns the gr.Blocks app for tests and Spaces. Models come from
facegen.registry: a model registered for a task appears in its tab without any change here.

The photo pipelines (`smile_photo`, `expression_photo`) are plain functions of arrays and a model
runner, usable without Gradio; the `run_*` handlers around them turn every failure into a gr.Error
sentence.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the app makes no calls to outside services

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

import leaderboard_view
from benchmarks import leaderboard
from benchmarks.tasks import TASKS, Task
from facegen import assets, registry
from facegen import faces as F
from facegen.faces import Face, FaceNotFoundError, detect_faces
from facegen.images import ImageReadError, read_image
from facegen.inference import Runner, load_runner
from facegen.models.exprgan import BASIC_EXPRESSIONS, ExpressionError
from facegen.models.heatmaps import LandmarkError, photo_landmarks
from facegen.pipeline import MAX_OUTPUT_SIDE, PhotoResult, crop_scale, resize, scale_face, super_resolve

try:  # ZeroGPU Spaces: model calls run inside spaces.GPU; elsewhere the handlers run as they are
    import spaces

    gpu = spaces.GPU  # the repository's own spaces/ folder has no GPU: AttributeError below
except (ImportError, AttributeError):  # not on a Space

    def gpu(fn):
        return fn


log = logging.getLogger("facegen.app")

SR_TASKS = ("sr-x2", "sr-x4", "sr-x8")
MAX_UPLOAD = "25mb"  # launch(max_file_size=...): larger uploads are refused by the server
MAX_PIXELS = 40_000_000  # larger pictures are refused from their header, before decoding
MAX_FACES = 8  # faces processed per photo; the rest are left as they are (with a note)
RESULT_TTL_S = 3600  # per-request result files older than this are removed
CONCURRENCY = 2  # requests processed at once; the rest wait in a queue of at most QUEUE_SIZE
QUEUE_SIZE = 32
SHARP = "I have a sharp photo (make the low-res input, compare with the original)"
ENLARGE = "Enlarge this photo"
ALL_FACES = "All faces"
PICKED_FACES = "Only the faces ticked below"
ALL_EXPRESSIONS = "all (grid)"


# ---------------------------------------------------------------------------------------------
# Photos, faces and result files
# ---------------------------------------------------------------------------------------------


class PhotoUpload(gr.Image):
    """An image input that hands the app the uploaded file untouched.

    gr.Image would decode the upload itself, where an unreadable file fails before the app can
    explain why; facegen.images.read_image does the decoding with clear messages instead.
    """

    is_template = True  # use gr.Image's front-end

    def preprocess(self, payload):  # type: ignore[override]
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):  # webcam / clipboard
            return super().preprocess(payload)
        return payload.path


def _load_photo(source, what: str = "photo") -> np.ndarray:
    if source is None:
        raise gr.Error(f"Please upload a {what} with a face first.")
    try:
        return read_image(source, max_pixels=MAX_PIXELS)
    except ImageReadError as e:
        raise gr.Error(str(e)) from None


def _find_faces(photo: np.ndarray) -> tuple[list[Face], list[str]]:
    """Detected faces, largest first, at most MAX_FACES (detection runs on a downscaled copy of large photos)."""
    try:
        found = detect_faces(photo)
    except FaceNotFoundError as e:
        raise gr.Error(str(e)) from None
    notes = []
    if len(found) > MAX_FACES:
        notes.append(f"{len(found)} faces found; the {MAX_FACES} largest were processed.")
        found = found[:MAX_FACES]
    return found, notes


def face_label(i: int) -> str:
    return f"Face {i + 1}"


def select_faces(found: list[Face], which: str | None, picked: list[str] | None) -> list[Face]:
    """The faces to process: all of them, or those ticked ("Face 1", "Face 2" ... largest first)."""
    if which in (None, "", ALL_FACES):
        return found
    if which != PICKED_FACES:
        raise gr.Error(f"'Which faces' must be {ALL_FACES!r} or {PICKED_FACES!r}.")
    chosen = []
    for p in picked or []:
        m = re.fullmatch(r"Face (\d+)", str(p).strip())
        if not m:
            raise gr.Error(f"{p!r} is not a face of this photo; faces are named 'Face 1', 'Face 2' ...")
        k = int(m.group(1)) - 1
        if not 0 <= k < len(found):
            raise gr.Error(f"{p} is not in this photo: {len(found)} face(s) were found.")
        if found[k] not in chosen:
            chosen.append(found[k])
    if not chosen:
        raise gr.Error(f"Tick at least one face, or choose {ALL_FACES!r}.")
    return chosen


def _results_root() -> Path:
    return Path(tempfile.gettempdir()) / "facegen-results"


def _sweep_old_results(now: float | None = None) -> None:
    """Remove result folders of past requests (older than RESULT_TTL_S); best effort."""
    root = _results_root()
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
        _sweep_old_results()
        _results_root().mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="run-", dir=_results_root()))
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


def _same_size(image: np.ndarray, like: np.ndarray) -> np.ndarray:
    h, w = like.shape[:2]
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BICUBIC))


def _present(shown: list[Shown], extra_gallery: list[tuple[str, str]]):
    """Gallery items, the compare choices, the first comparison and its PNG, and the state to keep."""
    gallery = extra_gallery + [(s.after, s.label) for s in shown]
    comparable = [s for s in shown if s.before is not None]
    choices = [s.label for s in comparable]
    first = comparable[0] if comparable else None
    state = [s.__dict__ for s in shown]
    return (
        gallery,
        gr.Dropdown(choices=choices, value=first.label if first else None),
        (first.before, first.after) if first else None,
        first.after if first else (shown[0].after if shown else None),
        state,
    )


def show_comparison(label: str | None, state: list[dict] | None):
    """The before/after pair and the downloadable PNG of the chosen result."""
    for s in state or []:
        if s["label"] == label:
            pair = (s["before"], s["after"]) if s["before"] else None
            return pair, s["after"]
    if label:
        raise gr.Error(f"There is no result named {label!r}; run a model first.")
    return None, None


def detect_faces_view(photo_file):
    """Crops of the detected faces for the picker (largest first), the face choices and a status line."""
    if photo_file is None:
        return [], gr.CheckboxGroup(value=[], visible=False), ""
    photo = _load_photo(photo_file)
    try:
        found = F.detect(photo)
    except ValueError as e:
        raise gr.Error(str(e)) from None
    if not found:
        return [], gr.CheckboxGroup(choices=[], value=[], visible=False), (
            "No face was found in this picture. Please use a photo where a face is clearly visible, "
            "roughly frontal, and at least about 20 pixels wide.")
    shown = found[:MAX_FACES]
    crops = [(F.align(photo, f, 128, "celeba").image, face_label(i)) for i, f in enumerate(shown)]
    labels = [face_label(i) for i in range(len(shown))]
    more = f" Only the {MAX_FACES} largest are processed." if len(found) > MAX_FACES else ""
    return crops, gr.CheckboxGroup(choices=labels, value=labels, visible=True), f"{len(found)} face(s) found.{more}"


def _check_models(task_id: str, model_ids: list[str] | None) -> list[str]:
    available = [s.id for s in registry.models_for(task_id)]
    if not available:
        raise gr.Error(f"No model is shipped for the {task_id} task yet, so there is nothing to run here.")
    if not model_ids:
        raise gr.Error("Pick at least one model.")
    unknown = [m for m in model_ids if m not in available]
    if unknown:
        raise gr.Error(f"Model(s) {', '.join(unknown)} do not serve {task_id}; available: {', '.join(available)}.")
    return list(model_ids)


def _runner(model_id: str, task_id: str) -> Runner:
    try:
        return load_runner(model_id, task_id)
    except Exception:
        log.exception("loading %s for %s failed", model_id, task_id)
        raise gr.Error(f"The model {model_id} could not be loaded; the error was logged.") from None


def model_input_size(runner: Runner, task: Task) -> int:
    """The face size the model takes: its config's (lr_)size, else the task's input size."""
    cfg = getattr(runner.model, "config", None)
    for attr in ("lr_size", "size"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return task.in_size


def _tensor(crops: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0)


# ---------------------------------------------------------------------------------------------
# Photo pipelines (no Gradio): smile and expression
# ---------------------------------------------------------------------------------------------


def smile_photo(photo: np.ndarray, faces: list[Face], runner: Runner, task: Task = TASKS["smile"], *,
                paste: bool = True, max_side: int = MAX_OUTPUT_SIDE) -> PhotoResult:
    """Turn every face of ``photo`` into a smiling one at twice the model's input resolution.

    Each face is aligned with the task's template (paper 000's crop) at the model's input size
    (64 for the shipped models); the model returns the smiling face at 2x (128), whose inner face
    (:func:`facegen.faces.face_mask`: brows to chin) is pasted back; hair and background stay the
    photo's own. The photo is enlarged by as much as the output adds to the largest face (at most
    2x, capped at ``max_side`` pixels): a low-resolution photo comes back twice as large, while a
    photo whose faces are already larger than the output keeps its size. SGE models get the
    high-resolution neutral face as guidance, aligned from the photo at the output size.
    """
    in_size = model_input_size(runner, task)
    notes: list[str] = []
    aligned = [F.align(photo, f, in_size, task.template) for f in faces]
    guide = [F.align(photo, f, 2 * in_size, task.template).image for f in faces]
    outputs = runner([a.image for a in aligned], batch_size=len(aligned), guide=_tensor(guide))
    out_size = outputs[0].shape[0]
    # Photo pixels per output-crop pixel of the largest face: enlarge until they match, at most 2x.
    per_pixel = crop_scale(photo, faces[0], out_size, task.template)
    factor = float(np.clip(per_pixel, 1.0, out_size / in_size))
    factor = min(factor, max_side / max(photo.shape[:2]))
    if factor < 1.0:
        notes.append(f"The photo was reduced to {factor:.0%} of its size to stay within {max_side} pixels.")
    elif factor > 1.0 + 1e-6:
        notes.append(f"The photo was enlarged {factor:.2f}x to the resolution of the smiling faces.")
    canvas = resize(photo, factor)
    if paste:
        for a, out in zip(aligned, outputs):
            canvas = F.paste_back(canvas, out, a, photo_scale=factor, mask=F.face_mask(task.template, out.shape[0]))
    return PhotoResult(runner.model_id, canvas, [a.image for a in aligned], outputs, [], photo, notes)


def model_expressions(runner: Runner) -> tuple[str, ...]:
    """The target expressions a model knows (its config's label order), without 'neutral'."""
    cfg = getattr(runner.model, "config", None)
    return tuple(e for e in getattr(cfg, "expressions", BASIC_EXPRESSIONS) if e != "neutral")


def expression_photo(photo: np.ndarray, faces: list[Face], runner: Runner, expression: str,
                     task: Task = TASKS["expression"], *, intensity: float = 1.0,
                     landmarks: np.ndarray | None = None, paste: bool = True,
                     max_side: int = MAX_OUTPUT_SIDE) -> PhotoResult:
    """Give every face of ``photo`` the target ``expression``.

    Faces are aligned with the task's template at the model's size and their inner face (brows
    to chin) pasted back into the photo at its own size (reduced only to stay within
    ``max_side``). ``intensity`` in [0, 1] scales ExprGAN's expression code (and the fitted landmark template of ``lmk-guided``).
    ``landmarks``: (68, 2) target landmarks in the aligned crop's pixels (from a reference photo,
    :func:`facegen.models.heatmaps.photo_landmarks`), used for every face by landmark-guided
    models; None fits the model's expression template to each input face.
    """
    size = model_input_size(runner, task)
    notes: list[str] = []
    aligned = [F.align(photo, f, size, task.template) for f in faces]
    conditions: dict = {"expression": expression, "intensity": float(intensity)}
    if landmarks is not None:
        pts = np.asarray(landmarks, dtype=np.float32)
        conditions["landmarks"] = torch.from_numpy(np.repeat(pts[None], len(aligned), axis=0))
    outputs = runner([a.image for a in aligned], batch_size=len(aligned), **conditions)
    factor = min(1.0, max_side / max(photo.shape[:2]))
    if factor < 1.0:
        notes.append(f"The photo was reduced to {factor:.0%} of its size to stay within {max_side} pixels.")
    canvas = resize(photo, factor)
    if paste:
        for a, out in zip(aligned, outputs):
            canvas = F.paste_back(canvas, out, a, photo_scale=factor, mask=F.face_mask(task.template, out.shape[0]))
    return PhotoResult(runner.model_id, canvas, [a.image for a in aligned], outputs, [], photo, notes)


def expression_grid(inputs: list[np.ndarray], outputs: dict[str, list[np.ndarray]]) -> np.ndarray:
    """One image per photo: a row per face, columns = the input, then each expression in ``outputs`` order."""
    rows = []
    for i, inp in enumerate(inputs):
        cells = [inp] + [outs[i] for outs in outputs.values()]
        side = max(c.shape[0] for c in cells)
        cells = [c if c.shape[0] == side else resize(c, side / c.shape[0]) for c in cells]
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


# ---------------------------------------------------------------------------------------------
# Gradio handlers of the model tabs
# ---------------------------------------------------------------------------------------------


def _model_failed(model_id: str):
    log.exception("model %s failed", model_id)
    return gr.Error(f"The model {model_id} failed on this photo; the error was logged.")


def _face_scores(outputs: list[np.ndarray], references: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR/SSIM (Y), LPIPS and identity cosine of super-resolved crops against the sharp ones."""
    from benchmarks import metrics
    from benchmarks.judges import identity_encoder

    enc = identity_encoder("sface")
    cos = []
    for out, ref in zip(outputs, references):
        found = F.detect(ref)
        if found:  # the same landmarks crop both: the crops are pixel-aligned
            e = enc.embed(np.stack([enc.crop(out, found[0]), enc.crop(ref, found[0])]))
            cos.append(float(e[0] @ e[1]))
    return {
        "PSNR Y (dB)": float(np.mean([metrics.psnr(o, r, test_y_channel=True) for o, r in zip(outputs, references)])),
        "SSIM Y": float(np.mean([metrics.ssim(o, r, test_y_channel=True) for o, r in zip(outputs, references)])),
        "LPIPS": float(np.mean(metrics.lpips_distances(outputs, references))),
        "identity cosine": float(np.mean(cos)) if cos else float("nan"),
    }


def _status(n_faces: int, notes: list[str]) -> str:
    return f"{n_faces} face(s) processed." + "".join(f" {n}" for n in notes)


@gpu
def run_super_resolution(photo_file, which: str, picked: list[str], task_id: str, model_ids: list[str],
                         mode: str, paste: bool, progress=gr.Progress()):
    """Super-resolve the chosen faces of the photo with each chosen model.

    Returns the labelled gallery, the compare choices, the before/after pair, the PNG to
    download, the per-model scores (sharp-photo mode), a status line and the results state.
    """
    if task_id not in SR_TASKS:
        raise gr.Error(f"Unknown scale {task_id!r}; choose one of {', '.join(SR_TASKS)}.")
    model_ids = _check_models(task_id, model_ids)
    sharp = mode == SHARP
    photo = _load_photo(photo_file)
    progress(0, desc="Finding faces")
    found, notes = _find_faces(photo)
    chosen = select_faces(found, which, picked)
    task = TASKS[task_id]
    files = RequestFiles()
    extra, shown, rows = [], [], []
    before_photo: str | None = None
    for k, model_id in enumerate(model_ids):
        progress(k / len(model_ids), desc=f"Running {model_id}")
        _runner(model_id, task_id)
        try:
            result = super_resolve(photo, chosen, model_id, task, sharp=sharp, paste=paste)
        except Exception:
            raise _model_failed(model_id) from None
        title = registry.get(model_id).title
        if k == 0:
            if sharp:
                extra += [(files.png(r, f"original-{i}"), f"Original {face_label(i)}")
                          for i, r in enumerate(result.references)]
            extra += [(files.png(inp, f"input-{i}"), f"Low-res input, {face_label(i)} ({inp.shape[1]} px)")
                      for i, inp in enumerate(result.inputs)]
        if paste:
            if before_photo is None:
                base = photo if sharp else _same_size(result.low_res_photo, result.image)
                before_photo = files.png(base, "before-photo")
            shown.append(Shown(f"{title}: photo", files.png(result.image, f"{model_id}-photo"), before_photo))
        for i, (inp, out) in enumerate(zip(result.inputs, result.outputs)):
            shown.append(Shown(f"{title}: {face_label(i)}", files.png(out, f"{model_id}-face-{i}"),
                               files.png(_same_size(inp, out), f"input-{i}-up")))
        if sharp:
            rows.append({"model": model_id, **_face_scores(result.outputs, result.references)})
        notes.extend(n for n in result.notes if n not in notes)
    progress(1.0)
    table = gr.Dataframe(pd.DataFrame(rows).round(4) if rows else None, visible=bool(rows))
    gallery, compare, pair, download, state = _present(shown, extra)
    return gallery, compare, pair, download, table, _status(len(chosen), notes), state


@gpu
def run_smile(photo_file, which: str, picked: list[str], model_ids: list[str], paste: bool,
              progress=gr.Progress()):
    """Make the chosen faces smile at twice the resolution, with each chosen model."""
    model_ids = _check_models("smile", model_ids)
    photo = _load_photo(photo_file)
    progress(0, desc="Finding faces")
    found, notes = _find_faces(photo)
    chosen = select_faces(found, which, picked)
    files = RequestFiles()
    extra, shown = [], []
    for k, model_id in enumerate(model_ids):
        progress(k / len(model_ids), desc=f"Running {model_id}")
        runner = _runner(model_id, "smile")
        try:
            result = smile_photo(photo, chosen, runner, paste=paste)
        except Exception:
            raise _model_failed(model_id) from None
        title = registry.get(model_id).title
        if k == 0:
            extra += [(files.png(inp, f"input-{i}"), f"Neutral input, {face_label(i)} ({inp.shape[1]} px)")
                      for i, inp in enumerate(result.inputs)]
        if paste:
            shown.append(Shown(f"{title}: photo", files.png(result.image, f"{model_id}-photo"),
                               files.png(_same_size(photo, result.image), f"{model_id}-before")))
        for i, (inp, out) in enumerate(zip(result.inputs, result.outputs)):
            shown.append(Shown(f"{title}: {face_label(i)}", files.png(out, f"{model_id}-face-{i}"),
                               files.png(_same_size(inp, out), f"input-{i}-up")))
        notes.extend(n for n in result.notes if n not in notes)
    progress(1.0)
    gallery, compare, pair, download, state = _present(shown, extra)
    return gallery, compare, pair, download, _status(len(chosen), notes), state


def _reference_landmarks(reference: np.ndarray | None, size: int, cache: dict[int, np.ndarray]) -> np.ndarray | None:
    if reference is None:
        return None
    if size not in cache:
        try:
            cache[size] = photo_landmarks(reference, size=size, template=TASKS["expression"].template)
        except (FaceNotFoundError, LandmarkError):
            raise gr.Error("No face was found in the reference photo, so its expression cannot be copied; "
                           "use a photo with one clearly visible face, or remove the reference.") from None
    return cache[size]


@gpu
def run_expression(photo_file, which: str, picked: list[str], model_ids: list[str], expression: str,
                   intensity: float, reference_file, paste: bool, progress=gr.Progress()):
    """Give the chosen faces the target expression (or every expression, as a grid) with each chosen model.

    ``reference_file`` (optional): a photo whose face's landmarks guide landmark-driven models.
    """
    model_ids = _check_models("expression", model_ids)
    targets = list(BASIC_EXPRESSIONS) if expression == ALL_EXPRESSIONS else [expression]
    if expression != ALL_EXPRESSIONS and expression not in BASIC_EXPRESSIONS:
        raise gr.Error(f"Unknown expression {expression!r}; choose one of {', '.join(BASIC_EXPRESSIONS)} "
                       f"or {ALL_EXPRESSIONS!r}.")
    if intensity is None or not 0.0 <= float(intensity) <= 1.0:
        raise gr.Error("The intensity must lie between 0 and 1.")
    photo = _load_photo(photo_file)
    reference = None if reference_file is None else _load_photo(reference_file, "reference photo")
    progress(0, desc="Finding faces")
    found, notes = _find_faces(photo)
    chosen = select_faces(found, which, picked)
    files = RequestFiles()
    extra, shown = [], []
    lmk_cache: dict[int, np.ndarray] = {}
    befores: dict[tuple[int, ...], str] = {}  # the input photo at each output size, written once
    steps = len(model_ids) * len(targets)
    for k, model_id in enumerate(model_ids):
        runner = _runner(model_id, "expression")
        title = registry.get(model_id).title
        known = model_expressions(runner)
        landmarks = _reference_landmarks(reference, model_input_size(runner, TASKS["expression"]), lmk_cache)
        per_expr: dict[str, list[np.ndarray]] = {}
        inputs: list[np.ndarray] = []
        unknown = [t for t in targets if t not in known]
        if unknown:
            notes.append(f"{model_id} knows only {', '.join(known)}, so {', '.join(unknown)} "
                         f"{'was' if len(unknown) == 1 else 'were'} skipped.")
        for j, target in enumerate(targets):
            progress((k * len(targets) + j) / steps, desc=f"{model_id}: {target}")
            if target not in known:
                continue
            try:
                result = expression_photo(photo, chosen, runner, target, intensity=intensity,
                                          landmarks=landmarks, paste=paste)
            except LandmarkError:
                raise gr.Error(f"{model_id} could not find the landmarks of a face to fit its '{target}' template; "
                               "add a reference photo or use a larger, frontal face.") from None
            except ExpressionError as e:  # e.g. a landmark model without a template and no reference photo
                raise gr.Error(f"{model_id}: {e}.") from None
            except Exception:
                raise _model_failed(model_id) from None
            inputs = result.inputs
            per_expr[target] = result.outputs
            if paste:
                if result.image.shape not in befores:
                    befores[result.image.shape] = files.png(_same_size(photo, result.image), "before-photo")
                shown.append(Shown(f"{title}: {target}, photo", files.png(result.image, f"{model_id}-{target}"),
                                   befores[result.image.shape]))
            if len(targets) == 1:
                for i, (inp, out) in enumerate(zip(result.inputs, result.outputs)):
                    shown.append(Shown(f"{title}: {target}, {face_label(i)}",
                                       files.png(out, f"{model_id}-{target}-face-{i}"),
                                       files.png(_same_size(inp, out), f"input-{i}")))
            notes.extend(n for n in result.notes if n not in notes)
        if k == 0 and inputs:
            extra += [(files.png(inp, f"input-{i}"), f"Input, {face_label(i)} ({inp.shape[1]} px)")
                      for i, inp in enumerate(inputs)]
        if len(targets) > 1 and per_expr:
            grid = expression_grid(inputs, per_expr)
            shown.append(Shown(f"{title}: all expressions (rows: faces; columns: input, {', '.join(per_expr)})",
                               files.png(grid, f"{model_id}-grid")))
    progress(1.0)
    gallery, compare, pair, download, state = _present(shown, extra)
    return gallery, compare, pair, download, _status(len(chosen), notes), state


# ---------------------------------------------------------------------------------------------
# About (the Leaderboard and Models tabs live in leaderboard_view)
# ---------------------------------------------------------------------------------------------


PAPERS = (
    ("000", "Hanano, Seo, Chen: Generation of High-Resolution Facial Expression Images Using a Super-Resolution "
            "Technique and Self-Supervised Guidance (2023)", "smile: p2p-bilinear, p2p-two-step, p2p-serial, "
            "p2p-parallel, p2p-sge"),
    ("001", "Nimitha U. et al.: Enhancing Facial Expression Synthesis through GAN with Multi-Scale Dilated Feature "
            "Extraction and Edge-Enhanced Facial Features", "expression: exprgan, exprgan-msd, "
            "exprgan-msd-no-unsharp"),
    ("002", "He, Zheng, Shen, Guo, Zhou: Facial Image Synthesis and Super-Resolution With Stacked GAN "
            "(Neurocomputing 2020)", "super-resolution: stackedgan"),
    ("003", "Jiang, Xu, Sun: Image super resolution of Human face images using GAN", "super-resolution: psgan"),
    ("004", "Li, Qi, Sun: Facial Landmarks and Expression Label Guided Photorealistic Facial Expression Synthesis "
            "(IEEE Access 2021)", "expression: lmk-guided, lmk-guided-no-feature-init, "
            "lmk-guided-no-label"),
)


def about() -> str:
    lines = [
        "facegen hosts the GAN models of five face-synthesis papers behind one app and one benchmark.",
        "",
        "### Papers",
        "",
        "| # | paper | models |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {title} | {models} |" for n, title, models in PAPERS]
    lines += [
        "",
        "### Third-party pretrained files",
        "",
        "| file | what | licence |",
        "|---|---|---|",
    ]
    for a in assets.ASSETS.values():
        lines.append(f"| `{a.package}`: `{a.path}` | {a.description} | {a.licence} |")
    lines += [
        "",
        "### Data",
        "",
        "Benchmarks use CelebA (FSRNet's 1,000 test faces), JAFFE, RaFD, CK+48, LFW, FER2013 and ORL under "
        "their original research / non-commercial terms; no dataset image ships with the app. The example "
        "photo is scikit-image's astronaut (Eileen Collins, NASA, public domain), written out at start-up.",
        "",
        "### Privacy",
        "",
        "Uploaded photos are processed in memory; result files live in a per-request temporary folder and are "
        "deleted after an hour. The app calls no outside service.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Examples (from installed packages or generated; no third-party photo lives in the repository)
# ---------------------------------------------------------------------------------------------


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
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(buf.getvalue())
            os.replace(tmp, path)  # atomic: a concurrent start never sees half a file
        paths.append(str(path))
    return paths


# ---------------------------------------------------------------------------------------------
# The app: one small function per tab
# ---------------------------------------------------------------------------------------------


def _no_model_note(task_id: str) -> str:
    if registry.models_for(task_id):
        return ""
    return (f"**No model is shipped for the {task_id} task yet.** The tab is ready: models registered for "
            f"`{task_id}` in `facegen/registry.py` appear here automatically.")


@dataclass
class _PhotoControls:
    photo: gr.Image
    which: gr.Radio
    picked: gr.CheckboxGroup
    faces: gr.Gallery


def _photo_controls(prefix: str, examples: list[str]) -> _PhotoControls:
    """Upload / webcam / clipboard, examples, and the face picker (a gallery of the detected faces)."""
    photo = PhotoUpload(label="Photo", type="filepath", sources=["upload", "webcam", "clipboard"], height=320)
    gr.Examples(examples=[[p] for p in examples], inputs=[photo], api_name=f"{prefix}_load_example",
                example_labels=["astronaut", "two faces", "small photo"][: len(examples)])
    with gr.Accordion("Faces", open=True):
        faces = gr.Gallery(label="Detected faces (largest first)", columns=6, height=150, allow_preview=False,
                           object_fit="contain", fit_columns=False)
        which = gr.Radio([ALL_FACES, PICKED_FACES], value=ALL_FACES, label="Which faces")
        # Every possible face name until a photo is read, so an API call may pick faces straight away.
        picked = gr.CheckboxGroup([face_label(i) for i in range(MAX_FACES)], value=[], visible=False,
                                  label="Faces to process (when 'only the faces ticked')")
        found = gr.Markdown()
    photo.change(detect_faces_view, photo, [faces, picked, found], api_name=f"{prefix}_faces")
    return _PhotoControls(photo, which, picked, faces)


def _result_panel(prefix: str):
    """Labelled results, the before/after slider of a chosen one, and its full-resolution PNG."""
    gallery = gr.Gallery(label="Results", columns=3, height=420, format="png", object_fit="contain",
                         elem_id=f"{prefix}-results")
    compare = gr.Dropdown([], label="Compare before / after", interactive=True)
    slider = gr.ImageSlider(label="Before / after", type="filepath", height=420, elem_id=f"{prefix}-slider")
    download = gr.DownloadButton("Download the full-resolution PNG", value=None)
    info = gr.Markdown()
    state = gr.State([])
    compare.change(show_comparison, [compare, state], [slider, download], api_name=f"{prefix}_compare")
    return gallery, compare, slider, download, info, state


def _models_picker(task_id: str) -> gr.CheckboxGroup:
    ids = [s.id for s in registry.models_for(task_id)]
    return gr.CheckboxGroup(ids, value=ids, label="Models (results side by side)")


def _sr_tab(examples: list[str]) -> None:
    with gr.Row():
        with gr.Column():
            pc = _photo_controls("sr", examples)
            task = gr.Radio(list(SR_TASKS), value="sr-x4", label="Scale")
            mode = gr.Radio([ENLARGE, SHARP], value=ENLARGE, label="Mode")
            models = _models_picker("sr-x4")
            paste = gr.Checkbox(value=True, label="Paste faces back into the photo")
            go = gr.Button("Super-resolve", variant="primary")
        with gr.Column():
            gallery, compare, slider, download, info, state = _result_panel("sr")
            scores = gr.Dataframe(label="Scores against the original (sharp-photo mode)", interactive=False,
                                  visible=False)
    task.change(lambda t: _models_picker_update(t), task, models, api_name="sr_models")
    go.click(run_super_resolution, [pc.photo, pc.which, pc.picked, task, models, mode, paste],
             [gallery, compare, slider, download, scores, info, state], api_name="super_resolve")


def _models_picker_update(task_id: str) -> gr.CheckboxGroup:
    if task_id not in TASKS:
        raise gr.Error(f"Unknown task {task_id!r}.")
    ids = [s.id for s in registry.models_for(task_id)]
    return gr.CheckboxGroup(choices=ids, value=ids)


def _smile_tab(examples: list[str]) -> None:
    gr.Markdown("Neutral face in, smiling face out at twice the resolution (paper 000). " + _no_model_note("smile"))
    with gr.Row():
        with gr.Column():
            pc = _photo_controls("smile", examples)
            models = _models_picker("smile")
            paste = gr.Checkbox(value=True, label="Paste faces back into the photo")
            go = gr.Button("Make them smile", variant="primary", interactive=bool(registry.models_for("smile")))
        with gr.Column():
            gallery, compare, slider, download, info, state = _result_panel("smile")
    go.click(run_smile, [pc.photo, pc.which, pc.picked, models, paste],
             [gallery, compare, slider, download, info, state], api_name="smile")


def _expression_tab(examples: list[str]) -> None:
    gr.Markdown("Neutral face in, another expression out (papers 001 and 004). " + _no_model_note("expression"))
    with gr.Row():
        with gr.Column():
            pc = _photo_controls("expression", examples)
            models = _models_picker("expression")
            target = gr.Dropdown(list(BASIC_EXPRESSIONS) + [ALL_EXPRESSIONS], value="happy", label="Target expression")
            intensity = gr.Slider(0.0, 1.0, value=1.0, step=0.05,
                                  label="Intensity (ExprGAN: the expression code; lmk-guided: the template's shift)")
            reference = PhotoUpload(label="Reference expression photo (optional; guides the lmk-guided models)",
                                    type="filepath", sources=["upload", "webcam", "clipboard"], height=200)
            paste = gr.Checkbox(value=True, label="Paste faces back into the photo")
            go = gr.Button("Change the expression", variant="primary",
                           interactive=bool(registry.models_for("expression")))
        with gr.Column():
            gallery, compare, slider, download, info, state = _result_panel("expression")
    go.click(run_expression, [pc.photo, pc.which, pc.picked, models, target, intensity, reference, paste],
             [gallery, compare, slider, download, info, state], api_name="expression")


def build_demo(results_dir: Path | None = None) -> gr.Blocks:
    """The whole app. ``results_dir``: benchmark results to show (default benchmarks/results)."""
    results_dir = Path(results_dir or os.environ.get("FACEGEN_RESULTS") or leaderboard.RESULTS_DIR)
    examples = example_photos()
    with gr.Blocks(title="facegen", delete_cache=(RESULT_TTL_S, RESULT_TTL_S)) as demo:
        gr.Markdown(
            "# facegen\nFace super-resolution and facial-expression synthesis with GANs: the models of five "
            "papers, side by side, and how they score on one benchmark."
        )
        with gr.Tab("Super-resolution"):
            _sr_tab(examples)
        with gr.Tab("Smile"):
            _smile_tab(examples)
        with gr.Tab("Expression"):
            _expression_tab(examples)
        with gr.Tab("Leaderboard"):
            leaderboard_view.leaderboard_tab(results_dir, lambda: RequestFiles().dir)
        with gr.Tab("Models"):
            leaderboard_view.models_tab()
        with gr.Tab("About"):
            gr.Markdown(about())
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    # One share of the cores per concurrent request: more threads than cores made a CPU model run
    # 100x slower on a busy 2-core machine (spinning threads), fewer leave cores idle.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // CONCURRENCY))
    build_demo().launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size=MAX_UPLOAD,
        theme=gr.themes.Soft(),
    )


if __name__ == "__main__":
    main()
