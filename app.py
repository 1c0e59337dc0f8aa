"""facegen demo: upload a face photo; super-resolve it, make it smile, or give it another expression,
with every hosted model side by side; and the benchmark's leaderboard.

`python app.py` serves it at http://127.0.0.1:7860 (set GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to
change). `build_demo()` returns the gr.Blocks app for tests and Spaces. Models come from
facegen.registry: a model registered for a task appears in its tab without any change here.

This file holds only the Gradio app: the three photo handlers (`run_*`, which turn every failure into
a gr.Error sentence) and the tabs. What they call has no Gradio in it: the photo pipelines in
facegen.pipeline, per-request result files in facegen.request_results, model names in
facegen.model_menu, the sharp-photo scores (the benchmark's own metric functions) in
benchmarks.photo_scores. The upload / face picker and the results panel are in app_views; the
Leaderboard and Models tabs in leaderboard_view.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the app makes no calls to outside services

import gradio as gr
import numpy as np
import pandas as pd
import torch

import leaderboard_view
from app_views.photo_input import (ALL_FACES, MAX_FACES, MAX_PIXELS, PICKED_FACES, PhotoUpload,  # noqa: F401
                                   detect_faces_view, find_faces, load_photo, photo_controls, photo_input,
                                   select_faces)
from app_views.result_panel import present, result_panel, show_comparison  # noqa: F401
from benchmarks import leaderboard
from benchmarks.photo_scores import already_showing, face_scores
from benchmarks.recommend import model_choices, offered_default as recommended_model
from benchmarks.tasks import TASKS
from facegen import assets, registry
from facegen.example_photos import example_photos
from facegen.expressions import BASIC_EXPRESSIONS
from facegen.faces import FaceNotFoundError
from facegen.images import read_image  # noqa: F401
from facegen.inference import Runner, load_runner
from facegen.model_menu import intensity_models, model_name, runnable
from facegen.models.exprgan import ExpressionError
from facegen.landmarks import LandmarkError, photo_landmarks
from facegen.memory import releasing_freed_memory
from facegen.pipeline import (ENLARGE as ENLARGE_MODE, MAX_OUTPUT_SIDE, SHARP as SHARP_MODE,  # noqa: F401
                              SHRINK as SHRINK_MODE, expression_grid, expression_photo, model_expressions,
                              model_input_size, resize, smile_photo, super_resolve)
from facegen.request_results import RESULT_TTL_S, RequestFiles, RequestResults, face_label

try:  # ZeroGPU Spaces: model calls run inside spaces.GPU; elsewhere the handlers run as they are
    import spaces

    gpu = spaces.GPU
except ImportError:  # not on a Space

    def gpu(fn):
        return fn


log = logging.getLogger("facegen.app")

SR_TASKS = ("sr-x2", "sr-x4", "sr-x8")
MAX_UPLOAD = "25mb"  # launch(max_file_size=...): larger uploads are refused by the server
CONCURRENCY = 2  # requests processed at once; the rest wait in a queue of at most QUEUE_SIZE
QUEUE_SIZE = 32
ENLARGE = "Enlarge this photo"
SHRINK = "Shrink first so the faces fit the model (a demonstration)"
SHARP = "I have a sharp photo (make the low-res input, compare with the original)"
SR_MODES = {ENLARGE: ENLARGE_MODE, SHRINK: SHRINK_MODE, SHARP: SHARP_MODE}
ALL_EXPRESSIONS = "all (grid)"
# Gallery captions wrap instead of being cut off ("Stacked GAN – He et al.: Face 1" on a phone too).
CSS = ".caption-label { white-space: normal !important; max-width: 100% !important; overflow: visible !important; }"


# ---------------------------------------------------------------------------------------------
# Models and the three photo handlers
# ---------------------------------------------------------------------------------------------


def _check_models(task_id: str, model_ids: list[str] | None) -> list[str]:
    available = runnable(task_id)
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


def _model_failed(model_id: str):
    log.exception("model %s failed", model_id)
    return gr.Error(f"The model {model_id} failed on this photo; the error was logged.")


@gpu
@releasing_freed_memory
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
    photo = load_photo(photo_file)
    progress(0, desc="Finding faces")
    found, notes = find_faces(photo)
    chosen = select_faces(found, which, picked)
    task = TASKS[task_id]
    run = RequestResults(progress, model_ids)
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
            rows.append({"model": model_id, **face_scores(result.outputs, result.references)})
        elif paste:
            run.show(f"{name}: photo", result.image, result.before)
        for i, inp, out in zip(result.processed, result.inputs, result.outputs):
            run.show(f"{name}: {face_label(i)}", out, inp)
        run.note(*result.notes)
    progress(1.0)
    table = gr.Dataframe(pd.DataFrame(rows).round(4) if rows else None, visible=bool(rows))
    gallery, compare, pair, download, state = present(run)
    return gallery, compare, pair, download, table, run.status(len(chosen)), state


@gpu
@releasing_freed_memory
def run_smile(photo_file, which: str, picked: list[str], model_ids: list[str], paste: bool,
              progress=gr.Progress()):
    """Make the chosen faces smile at twice the resolution, with each chosen model."""
    model_ids = _check_models("smile", model_ids)
    photo = load_photo(photo_file)
    progress(0, desc="Finding faces")
    found, notes = find_faces(photo)
    chosen = select_faces(found, which, picked)
    run = RequestResults(progress, model_ids)
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
            run.note(*already_showing(result.inputs, "happy"))
        if paste:
            run.show(f"{name}: photo", result.image, result.before)
        for i, (inp, out) in enumerate(zip(result.inputs, result.outputs)):
            run.show(f"{name}: {face_label(i)}", out, inp)
        run.note(*result.notes)
    progress(1.0)
    gallery, compare, pair, download, state = present(run)
    return gallery, compare, pair, download, run.status(len(chosen)), state


def _reference_landmarks(reference: np.ndarray | None, size: int, template: str,
                         cache: dict[tuple[int, str], np.ndarray]) -> np.ndarray | None:
    if reference is None:
        return None
    if (size, template) not in cache:
        try:
            cache[size, template] = photo_landmarks(reference, size=size, template=template)
        except (FaceNotFoundError, LandmarkError):
            raise gr.Error("No face was found in the reference photo, so its expression cannot be copied; "
                           "use a photo with one clearly visible face, or remove the reference.") from None
    return cache[size, template]


@gpu
@releasing_freed_memory
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
    photo = load_photo(photo_file)
    reference = None if reference_file is None else load_photo(reference_file, "reference photo")
    progress(0, desc="Finding faces")
    found, notes = find_faces(photo)
    chosen = select_faces(found, which, picked)
    run = RequestResults(progress, model_ids, len(targets))
    run.note(*notes)
    task = TASKS["expression"]
    lmk_cache: dict[tuple[int, str], np.ndarray] = {}
    for k, model_id in enumerate(model_ids):
        runner = _runner(model_id, "expression")
        name = model_name(model_id)
        known = model_expressions(runner)
        landmarks = _reference_landmarks(reference, model_input_size(runner, task.in_size), runner.template, lmk_cache)
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
                run.note(*already_showing(inputs, targets[0]))
        if len(targets) > 1 and per_expr:
            grid = expression_grid(inputs, per_expr)
            run.show(f"{name}: all expressions (rows: faces; columns: input, {', '.join(per_expr)})", grid)
    if intensity < 1.0:
        ignored = [m for m in model_ids if m not in intensity_models(model_ids)]
        if ignored:
            run.note(f"The intensity changes {', '.join(ignored)} too little to see, so it is offered only for "
                     f"{', '.join(intensity_models(list(registry.REGISTRY))) or 'no model'}.")
    progress(1.0)
    gallery, compare, pair, download, state = present(run)
    return gallery, compare, pair, download, run.status(len(chosen)), state


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
        *registry.paper_rows(),
        "",
        "### Third-party pretrained files",
        "",
        *assets.markdown_table(),
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
# The app: one small function per tab
# ---------------------------------------------------------------------------------------------


def _no_model_note(task_id: str) -> str:
    if registry.models_for(task_id):
        return ""
    return (f"**No model is shipped for the {task_id} task yet.** The tab is ready: models registered for "
            f"`{task_id}` in `facegen/registry.py` appear here automatically.")


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
            photo = photo_input("sr")
            go = gr.Button("Super-resolve", variant="primary")
            task = gr.Radio(list(SR_TASKS), value="sr-x4", label="Scale")
            models = _models_picker("sr-x4", results_dir)
            mode = gr.Radio(list(SR_MODES), value=ENLARGE, label="Mode")
            paste = gr.Checkbox(value=True, label="Paste faces back into the photo")
            pc = photo_controls("sr", photo, examples)
        with gr.Column():
            gallery, compare, slider, download, info, state = result_panel("sr")
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
            photo = photo_input("smile")
            go = gr.Button("Make them smile", variant="primary", interactive=bool(registry.models_for("smile")))
            models = _models_picker("smile", results_dir)
            paste = gr.Checkbox(value=True, label="Paste faces back into the photo")
            pc = photo_controls("smile", photo, examples)
        with gr.Column():
            gallery, compare, slider, download, info, state = result_panel("smile")
    go.click(run_smile, [pc.photo, pc.which, pc.picked, models, paste],
             [gallery, compare, slider, download, info, state], api_name="smile", show_progress_on=[info])


def _expression_tab(examples: list[str], results_dir: Path) -> None:
    gr.Markdown("Neutral face in, another expression out (papers 001 and 004). " + _no_model_note("expression"))
    with gr.Row():
        with gr.Column():
            photo = photo_input("expression")
            go = gr.Button("Change the expression", variant="primary",
                           interactive=bool(registry.models_for("expression")))
            target = gr.Dropdown(list(BASIC_EXPRESSIONS) + [ALL_EXPRESSIONS], value="happy", label="Target expression")
            models = _models_picker("expression", results_dir)
            shown = bool(intensity_models(models.value or []))
            intensity = gr.Slider(0.0, 1.0, value=1.0, step=0.05, visible=shown,
                                  label="Intensity: 1 = the full expression; 0 = the input face (lmk-guided) or the "
                                        "neutral expression code (ExprGAN)")
            reference = PhotoUpload(label="Reference expression photo (optional; guides the lmk-guided models)",
                                    type="filepath", sources=["upload", "webcam", "clipboard"], height=200)
            paste = gr.Checkbox(value=True, label="Paste faces back into the photo")
            pc = photo_controls("expression", photo, examples)
        with gr.Column():
            gallery, compare, slider, download, info, state = result_panel("expression")
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
