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
from benchmarks import judges, leaderboard, metrics, recommend
from benchmarks.tasks import TASKS, Task
from facegen import assets, papers, registry
from facegen import faces as F
from facegen.faces import Face, FaceNotFoundError, detect_faces
from facegen.images import ImageReadError, read_image
from facegen.inference import Runner, load_runner
from facegen.models.exprgan import BASIC_EXPRESSIONS, ExpressionError
from facegen.landmarks import LandmarkError, photo_landmarks
from facegen.pipeline import (ENLARGE as ENLARGE_MODE, MAX_OUTPUT_SIDE, SHARP as SHARP_MODE, SHRINK as SHRINK_MODE,
                              expression_grid,
                              expression_photo, model_expressions, model_input_size, resize, smile_photo,
                              super_resolve)

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
ENLARGE = "Enlarge this photo"
SHRINK = "Shrink first so the faces fit the model (a demonstration)"
SHARP = "I have a sharp photo (make the low-res input, compare with the original)"
SR_MODES = {ENLARGE: ENLARGE_MODE, SHRINK: SHRINK_MODE, SHARP: SHARP_MODE}
ALL_FACES = "All faces"
PICKED_FACES = "Only the faces ticked below"
ALL_EXPRESSIONS = "all (grid)"
# Gallery captions wrap instead of being cut off ("Stacked GAN – He et al.: Face 1" on a phone too).
CSS = ".caption-label { white-space: normal !important; max-width: 100% !important; overflow: visible !important; }"


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
    """Detected faces, largest first, at most MAX_FACES (small photos are also searched enlarged, so
    faces down to about 8 pixels are found; large ones on a downscaled copy)."""
    try:
        found = detect_faces(photo, small=True)
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
        found = F.detect_small(photo)
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


def _runnable(task_id: str) -> list[str]:
    """Ids of the task's models that can run here (optional third-party files installed), registry order."""
    return [s.id for s in registry.models_for(task_id) if registry.unavailable(s) is None]


def _check_models(task_id: str, model_ids: list[str] | None) -> list[str]:
    available = _runnable(task_id)
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


def model_name(model_id: str) -> str:
    """A person's name for a model: what it is and whose paper, e.g. "Stacked GAN – He et al."."""
    spec = registry.get(model_id)
    name = re.sub(r"\s*\([^)]*\)$", "", spec.title)
    authors = papers.PAPERS[spec.paper].authors if spec.paper in papers.PAPERS else ""
    return f"{name} – {authors}" if authors else name


def model_choices(task_id: str, results_dir: Path) -> list[tuple[str, str]]:
    """(name, id) of every model of a task that can run here, the recommended one first."""
    ids = _runnable(task_id)
    best = recommended_model(task_id, results_dir)
    ids.sort(key=lambda m: m != best)
    return [(model_name(m), m) for m in ids]


def recommended_model(task_id: str, results_dir: Path) -> str | None:
    """The task's best shipped model on the leaderboard (:func:`benchmarks.recommend.recommended_model`,
    read from ``results_dir``); the first registered model when there are no results yet."""
    ids = _runnable(task_id)
    best = recommend.recommended_model(task_id, Path(results_dir))
    return best if best in ids else (ids[0] if ids else None)


def _model_failed(model_id: str):
    log.exception("model %s failed", model_id)
    return gr.Error(f"The model {model_id} failed on this photo; the error was logged.")


def _face_scores(outputs: list[np.ndarray], references: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR/SSIM (Y), LPIPS and identity cosine of super-resolved crops against the sharp ones,
    by the benchmark's own scoring functions."""
    return {
        "PSNR Y (dB)": float(np.mean([metrics.psnr(o, r, test_y_channel=True) for o, r in zip(outputs, references)])),
        "SSIM Y": float(np.mean([metrics.ssim(o, r, test_y_channel=True) for o, r in zip(outputs, references)])),
        "LPIPS": float(np.mean(metrics.lpips_distances(outputs, references))),
        "identity cosine (SFace)": float(np.nanmean(judges.identity_cosines(outputs, references))),
    }


def _status(n_faces: int, notes: list[str]) -> str:
    return f"{n_faces} face(s) processed." + "".join(f" {n}" for n in notes)


class _Run:
    """Collects one request's labelled results, notes and progress (per model and per face)."""

    def __init__(self, progress, model_ids: list[str], steps_per_model: int = 1) -> None:
        self.files = RequestFiles()
        self.extra: list[tuple[str, str]] = []
        self.shown: list[Shown] = []
        self.notes: list[str] = []
        self._progress, self._total = progress, max(1, len(model_ids) * steps_per_model)
        self._done = 0

    def tracker(self, label: str):
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
            before = self.files.png(_same_size(before, image), f"{label}-before")
        self.shown.append(Shown(label, self.files.png(image, label), before))

    def inputs(self, crops: list[np.ndarray], what: str) -> None:
        self.extra += [(self.files.png(c, f"input-{i}"), f"{what}, {face_label(i)} ({c.shape[1]} px)")
                       for i, c in enumerate(crops)]


@gpu
def run_super_resolution(photo_file, which: str, picked: list[str], task_id: str, model_ids: list[str],
                         mode: str, paste: bool, progress=gr.Progress()):
    """Super-resolve the chosen faces of the photo with each chosen model.

    Returns the labelled gallery, the compare choices, the before/after pair, the PNG to
    download, the per-model scores (sharp-photo mode), a status line and the results state.
    """
    if task_id not in SR_TASKS:
        raise gr.Error(f"Unknown scale {task_id!r}; choose one of {', '.join(SR_TASKS)}.")
    if mode not in SR_MODES:
        raise gr.Error(f"Unknown mode {mode!r}; choose one of: {'; '.join(SR_MODES)}.")
    model_ids = _check_models(task_id, model_ids)
    photo = _load_photo(photo_file)
    progress(0, desc="Finding faces")
    found, notes = _find_faces(photo)
    chosen = select_faces(found, which, picked)
    task = TASKS[task_id]
    run = _Run(progress, model_ids)
    run.note(*notes)
    rows = []
    for k, model_id in enumerate(model_ids):
        runner = _runner(model_id, task_id)
        try:
            result = super_resolve(photo, chosen, runner, task, mode=SR_MODES[mode], paste=paste,
                                   progress=run.tracker(model_name(model_id)))
        except Exception:
            raise _model_failed(model_id) from None
        name = model_name(model_id)
        if k == 0:
            if mode == SHARP:
                run.extra += [(run.files.png(r, f"original-{i}"), f"Original {face_label(i)}")
                              for i, r in enumerate(result.references)]
            run.inputs(result.inputs, "Low-res input")
        if mode == SHARP:
            run.show(f"{name}: low-res input | model | original", result.image)
            rows.append({"model": model_id, **_face_scores(result.outputs, result.references)})
        elif paste:
            run.show(f"{name}: photo", result.image, result.before)
        for i, inp, out in zip(result.processed, result.inputs, result.outputs):
            run.show(f"{name}: {face_label(i)}", out, inp)
        run.note(*result.notes)
    progress(1.0)
    table = gr.Dataframe(pd.DataFrame(rows).round(4) if rows else None, visible=bool(rows))
    gallery, compare, pair, download, state = _present(run.shown, run.extra)
    return gallery, compare, pair, download, table, _status(len(chosen), run.notes), state


def _already_showing(inputs: list[np.ndarray], target: str) -> list[str]:
    """Notes for faces that the independent FER2013 judge already reads as ``target``."""
    try:
        judge = judges.expression_judge("fer2013")
    except judges.JudgeUnavailableError:
        return []
    labels, probs = judge.predict(inputs)
    notes = []
    for i, (label, p) in enumerate(zip(labels, probs)):
        if label == target and target != "neutral":
            notes.append(f"{face_label(i)} already looks {target} (the FER2013 expression judge says so with "
                         f"{p[judge.classes.index(target)]:.0%} confidence), so the change may be small.")
    return notes


@gpu
def run_smile(photo_file, which: str, picked: list[str], model_ids: list[str], paste: bool,
              progress=gr.Progress()):
    """Make the chosen faces smile at twice the resolution, with each chosen model."""
    model_ids = _check_models("smile", model_ids)
    photo = _load_photo(photo_file)
    progress(0, desc="Finding faces")
    found, notes = _find_faces(photo)
    chosen = select_faces(found, which, picked)
    run = _Run(progress, model_ids)
    run.note(*notes)
    for k, model_id in enumerate(model_ids):
        runner = _runner(model_id, "smile")
        name = model_name(model_id)
        try:
            result = smile_photo(photo, chosen, runner, TASKS["smile"], paste=paste, progress=run.tracker(name))
        except Exception:
            raise _model_failed(model_id) from None
        if k == 0:
            run.inputs(result.inputs, "Input")
            run.note(*_already_showing(result.inputs, "happy"))
        if paste:
            run.show(f"{name}: photo", result.image, result.before)
        for i, (inp, out) in enumerate(zip(result.inputs, result.outputs)):
            run.show(f"{name}: {face_label(i)}", out, inp)
        run.note(*result.notes)
    progress(1.0)
    gallery, compare, pair, download, state = _present(run.shown, run.extra)
    return gallery, compare, pair, download, _status(len(chosen), run.notes), state


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


def intensity_models(model_ids: list[str]) -> list[str]:
    """The models among ``model_ids`` whose output the intensity slider visibly changes."""
    return [m for m in model_ids if m in registry.REGISTRY and registry.get(m).intensity_control]


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
    run = _Run(progress, model_ids, len(targets))
    run.note(*notes)
    task = TASKS["expression"]
    lmk_cache: dict[int, np.ndarray] = {}
    for k, model_id in enumerate(model_ids):
        runner = _runner(model_id, "expression")
        name = model_name(model_id)
        known = model_expressions(runner)
        landmarks = _reference_landmarks(reference, model_input_size(runner, task.in_size), lmk_cache)
        per_expr: dict[str, list[np.ndarray]] = {}
        inputs: list[np.ndarray] = []
        unknown = [t for t in targets if t not in known]
        if unknown:
            run.note(f"{model_id} knows only {', '.join(known)}, so {', '.join(unknown)} "
                     f"{'was' if len(unknown) == 1 else 'were'} skipped.")
        for target in targets:
            report = run.tracker(name)
            if target not in known:
                continue
            try:
                result = expression_photo(photo, chosen, runner, target, task, intensity=intensity,
                                          landmarks=landmarks, paste=paste, progress=report)
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
                run.show(f"{name}: {target}, photo", result.image, result.before)
            if len(targets) == 1:
                for i, (inp, out) in enumerate(zip(result.inputs, result.outputs)):
                    run.show(f"{name}: {target}, {face_label(i)}", out, inp)
            run.note(*result.notes)
        if k == 0 and inputs:
            run.inputs(inputs, "Input")
            if len(targets) == 1:
                run.note(*_already_showing(inputs, targets[0]))
        if len(targets) > 1 and per_expr:
            grid = expression_grid(inputs, per_expr)
            run.show(f"{name}: all expressions (rows: faces; columns: input, {', '.join(per_expr)})", grid)
    if intensity < 1.0:
        ignored = [m for m in model_ids if m not in intensity_models(model_ids)]
        if ignored:
            run.note(f"The intensity changes {', '.join(ignored)} too little to see, so it is offered only for "
                     f"{', '.join(intensity_models(list(registry.REGISTRY))) or 'no model'}.")
    progress(1.0)
    gallery, compare, pair, download, state = _present(run.shown, run.extra)
    return gallery, compare, pair, download, _status(len(chosen), run.notes), state


# ---------------------------------------------------------------------------------------------
# About (the Leaderboard and Models tabs live in leaderboard_view)
# ---------------------------------------------------------------------------------------------


def about() -> str:
    lines = [
        "facegen hosts the GAN models of five face-synthesis papers behind one app and one benchmark.",
        "",
        "### Papers",
        "",
        "| # | paper | models |",
        "|---|---|---|",
    ]
    lines += registry.paper_rows()
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


def _photo_input(prefix: str) -> gr.Image:
    return PhotoUpload(label="Photo", type="filepath", sources=["upload", "webcam", "clipboard"], height=300,
                       elem_id=f"{prefix}-photo")


def _photo_controls(prefix: str, photo: gr.Image, examples: list[str]) -> _PhotoControls:
    """Examples and the face picker (a gallery of the detected faces) of an upload."""
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
    """Progress and notes first, then the labelled results, the before/after slider of a chosen one,
    and its full-resolution PNG."""
    info = gr.Markdown(elem_id=f"{prefix}-info", min_height=40)
    gallery = gr.Gallery(label="Results", columns=2, height=420, format="png", object_fit="contain",
                         elem_id=f"{prefix}-results")
    compare = gr.Dropdown([], label="Compare before / after", interactive=True)
    slider = gr.ImageSlider(label="Before / after", type="filepath", height=420, elem_id=f"{prefix}-slider")
    download = gr.DownloadButton("Download the full-resolution PNG", value=None, elem_id=f"{prefix}-download")
    state = gr.State([])
    compare.change(show_comparison, [compare, state], [slider, download], api_name=f"{prefix}_compare")
    return gallery, compare, slider, download, info, state


def _models_picker(task_id: str, results_dir: Path) -> gr.CheckboxGroup:
    """Every model of the task, the recommended one ticked (the others are opt-in, side by side)."""
    best = recommended_model(task_id, results_dir)
    return gr.CheckboxGroup(model_choices(task_id, results_dir), value=[best] if best else [],
                            label="Models (the recommended one is ticked; tick others to compare side by side)",
                            info="The recommended model is the task's best shipped model on the leaderboard.")


def model_list(task_id: str, results_dir: Path) -> dict:
    """The models of a task for API callers: ids in display order, names, and the recommended one."""
    if task_id not in TASKS:
        raise gr.Error(f"Unknown task {task_id!r}; choose one of {', '.join(TASKS)}.")
    choices = model_choices(task_id, results_dir)
    return {"task": task_id, "models": [m for _, m in choices], "names": {m: n for n, m in choices},
            "recommended": recommended_model(task_id, results_dir)}


def _list_endpoints(results_dir: Path) -> None:
    """Stateless model lists, one per tab (they change nothing in the session)."""

    def sr_models(task: str = "sr-x4") -> dict:
        """The super-resolution models of a scale (sr-x2, sr-x4 or sr-x8) and the recommended one."""
        if task not in SR_TASKS:
            raise gr.Error(f"Unknown scale {task!r}; choose one of {', '.join(SR_TASKS)}.")
        return model_list(task, results_dir)

    def smile_models() -> dict:
        """The smile models and the recommended one."""
        return model_list("smile", results_dir)

    def expression_models() -> dict:
        """The expression models, the recommended one, and those the intensity slider changes."""
        out = model_list("expression", results_dir)
        return {**out, "intensity": intensity_models(out["models"])}

    gr.api(sr_models, api_name="sr_models")
    gr.api(smile_models, api_name="smile_models")
    gr.api(expression_models, api_name="expression_models")


def _sr_tab(examples: list[str], results_dir: Path) -> None:
    with gr.Row():
        with gr.Column():
            photo = _photo_input("sr")
            go = gr.Button("Super-resolve", variant="primary")
            task = gr.Radio(list(SR_TASKS), value="sr-x4", label="Scale")
            models = _models_picker("sr-x4", results_dir)
            mode = gr.Radio(list(SR_MODES), value=ENLARGE, label="Mode")
            paste = gr.Checkbox(value=True, label="Paste faces back into the photo")
            pc = _photo_controls("sr", photo, examples)
        with gr.Column():
            gallery, compare, slider, download, info, state = _result_panel("sr")
            scores = gr.Dataframe(label="Scores against the original (sharp-photo mode)", interactive=False,
                                  visible=False)

    def pick_scale(task_id: str) -> gr.CheckboxGroup:
        best = recommended_model(task_id, results_dir)
        return gr.CheckboxGroup(choices=model_choices(task_id, results_dir), value=[best] if best else [])

    task.change(pick_scale, task, models, api_visibility="private")
    go.click(run_super_resolution, [pc.photo, pc.which, pc.picked, task, models, mode, paste],
             [gallery, compare, slider, download, scores, info, state], api_name="super_resolve",
             show_progress_on=[info])


def _smile_tab(examples: list[str], results_dir: Path) -> None:
    gr.Markdown("Neutral face in, smiling face out at twice the resolution (paper 000). " + _no_model_note("smile"))
    with gr.Row():
        with gr.Column():
            photo = _photo_input("smile")
            go = gr.Button("Make them smile", variant="primary", interactive=bool(registry.models_for("smile")))
            models = _models_picker("smile", results_dir)
            paste = gr.Checkbox(value=True, label="Paste faces back into the photo")
            pc = _photo_controls("smile", photo, examples)
        with gr.Column():
            gallery, compare, slider, download, info, state = _result_panel("smile")
    go.click(run_smile, [pc.photo, pc.which, pc.picked, models, paste],
             [gallery, compare, slider, download, info, state], api_name="smile", show_progress_on=[info])


def _expression_tab(examples: list[str], results_dir: Path) -> None:
    gr.Markdown("Neutral face in, another expression out (papers 001 and 004). " + _no_model_note("expression"))
    with gr.Row():
        with gr.Column():
            photo = _photo_input("expression")
            go = gr.Button("Change the expression", variant="primary",
                           interactive=bool(registry.models_for("expression")))
            target = gr.Dropdown(list(BASIC_EXPRESSIONS) + [ALL_EXPRESSIONS], value="happy", label="Target expression")
            models = _models_picker("expression", results_dir)
            shown = bool(intensity_models(models.value or []))
            intensity = gr.Slider(0.0, 1.0, value=1.0, step=0.05, visible=shown,
                                  label="Intensity (ExprGAN models: 0 = neutral code, 1 = the full expression)")
            reference = PhotoUpload(label="Reference expression photo (optional; guides the lmk-guided models)",
                                    type="filepath", sources=["upload", "webcam", "clipboard"], height=200)
            paste = gr.Checkbox(value=True, label="Paste faces back into the photo")
            pc = _photo_controls("expression", photo, examples)
        with gr.Column():
            gallery, compare, slider, download, info, state = _result_panel("expression")
    models.change(lambda ids: gr.Slider(visible=bool(intensity_models(ids or []))), models, intensity,
                  api_visibility="private")
    go.click(run_expression, [pc.photo, pc.which, pc.picked, models, target, intensity, reference, paste],
             [gallery, compare, slider, download, info, state], api_name="expression", show_progress_on=[info])


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
            _sr_tab(examples, results_dir)
        with gr.Tab("Smile"):
            _smile_tab(examples, results_dir)
        with gr.Tab("Expression"):
            _expression_tab(examples, results_dir)
        with gr.Tab("Leaderboard"):
            leaderboard_view.leaderboard_tab(results_dir, lambda: RequestFiles().dir)
        with gr.Tab("Models"):
            leaderboard_view.models_tab()
        with gr.Tab("About"):
            gr.Markdown(about())
        _list_endpoints(results_dir)  # after the tabs: anything between them would split the tab bar
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
        css=CSS,
    )


if __name__ == "__main__":
    main()
