"""facegen demo: upload a face photo, get it super-resolved by every hosted model, side by side.

`python app.py` serves it at http://127.0.0.1:7860 (set GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
to change). `build_demo()` returns the gr.Blocks app for tests and Spaces.
"""

from __future__ import annotations

import logging
import os

import gradio as gr
import numpy as np

from benchmarks.tasks import TASKS
from facegen import registry
from facegen.faces import Face, FaceNotFoundError, detect_faces
from facegen.images import ImageReadError, read_image
from facegen.pipeline import super_resolve

log = logging.getLogger("facegen.app")

SR_TASKS = ("sr-x2", "sr-x4", "sr-x8")
MAX_UPLOAD = "25mb"
MAX_PIXELS = 40_000_000
MAX_FACES = 8  # faces processed per photo; the rest are left as they are (with a note)


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


def _load_photo(source) -> np.ndarray:
    if source is None:
        raise gr.Error("Please upload a photo with a face first.")
    try:
        return read_image(source, max_pixels=MAX_PIXELS)
    except ImageReadError as e:
        raise gr.Error(str(e)) from None


def _find_faces(photo: np.ndarray) -> tuple[list[Face], list[str]]:
    try:
        found = detect_faces(photo)
    except FaceNotFoundError as e:
        raise gr.Error(str(e)) from None
    notes = []
    if len(found) > MAX_FACES:
        notes.append(f"{len(found)} faces found; the {MAX_FACES} largest were processed.")
        found = found[:MAX_FACES]
    return found, notes


def sr_models(task_id: str) -> list[str]:
    return [spec.id for spec in registry.models_for(task_id)]


def run_super_resolution(photo_file, task_id: str, model_ids: list[str], paste: bool):
    """Super-resolve every face of the photo with each chosen model; returns a labelled gallery."""
    if task_id not in SR_TASKS:
        raise gr.Error(f"Unknown scale {task_id!r}; choose one of {', '.join(SR_TASKS)}.")
    if not model_ids:
        raise gr.Error("Pick at least one model.")
    unknown = [m for m in model_ids if m not in sr_models(task_id)]
    if unknown:
        raise gr.Error(f"Model(s) {', '.join(unknown)} do not serve {task_id}.")
    photo = _load_photo(photo_file)
    found, notes = _find_faces(photo)
    task = TASKS[task_id]
    gallery = []
    for model_id in model_ids:
        try:
            result = super_resolve(photo, found, model_id, task, paste=paste)
        except Exception:
            log.exception("model %s failed", model_id)
            raise gr.Error(f"The model {model_id} failed on this photo; the error was logged.") from None
        title = registry.get(model_id).title
        if paste:
            gallery.append((result.image, f"{title} — photo x{task.scale}"))
        for i, out in enumerate(result.outputs):
            gallery.append((out, f"{title} — face {i + 1}"))
        notes.extend(n for n in result.notes if n not in notes)
    for note in notes:
        gr.Info(note)
    return gallery, f"{len(found)} face(s) found." + ("".join(f" {n}" for n in notes))


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="facegen") as demo:
        gr.Markdown(
            "# facegen\nFace super-resolution and facial-expression synthesis with GANs: "
            "the models of five papers, side by side."
        )
        with gr.Tab("Super-resolution"):
            with gr.Row():
                with gr.Column():
                    sr_in = PhotoUpload(label="Photo", type="filepath", sources=["upload", "webcam", "clipboard"])
                    sr_task = gr.Radio(list(SR_TASKS), value="sr-x4", label="Scale")
                    sr_pick = gr.CheckboxGroup(sr_models("sr-x4"), value=sr_models("sr-x4"), label="Models")
                    sr_paste = gr.Checkbox(value=True, label="Paste faces back into the photo")
                    sr_go = gr.Button("Super-resolve", variant="primary")
                with gr.Column():
                    sr_out = gr.Gallery(label="Results", columns=2, format="png")
                    sr_info = gr.Markdown()
            sr_task.change(
                lambda t: gr.CheckboxGroup(choices=sr_models(t), value=sr_models(t)),
                sr_task, sr_pick, api_name="sr_models",
            )
            sr_go.click(run_super_resolution, [sr_in, sr_task, sr_pick, sr_paste], [sr_out, sr_info],
                        api_name="super_resolve")
    demo.queue(default_concurrency_limit=2, max_size=32)
    return demo


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    build_demo().launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size=MAX_UPLOAD,
    )
