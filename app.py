"""facegen demo: upload a face photo, get it super-resolved by every hosted model, side by side.

`python app.py` serves it at http://127.0.0.1:7860 (set GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
to change). `build_demo()` returns the gr.Blocks app for tests and Spaces.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the app makes no calls to outside services

import gradio as gr
import numpy as np
import pandas as pd

from benchmarks import leaderboard
from benchmarks.tasks import TASKS
from facegen import assets, registry
from facegen.faces import Face, FaceNotFoundError, detect_faces
from facegen.images import ImageReadError, read_image
from facegen.pipeline import super_resolve

log = logging.getLogger("facegen.app")

SR_TASKS = ("sr-x2", "sr-x4", "sr-x8")
MAX_UPLOAD = "25mb"
MAX_PIXELS = 40_000_000
MAX_FACES = 8  # faces processed per photo; the rest are left as they are (with a note)
SHARP = "I have a sharp photo (make the low-res input, compare with the original)"
ENLARGE = "Enlarge this photo"


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


def _face_scores(outputs: list[np.ndarray], references: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR/SSIM (Y), LPIPS and identity cosine of super-resolved crops against the sharp ones."""
    from benchmarks import metrics
    from benchmarks.judges import identity_encoder
    from facegen.faces import detect

    enc = identity_encoder("sface")
    cos = []
    for out, ref in zip(outputs, references):
        found = detect(ref)
        if found:  # the same landmarks crop both: the crops are pixel-aligned
            e = enc.embed(np.stack([enc.crop(out, found[0]), enc.crop(ref, found[0])]))
            cos.append(float(e[0] @ e[1]))
    return {
        "PSNR Y (dB)": float(np.mean([metrics.psnr(o, r, test_y_channel=True) for o, r in zip(outputs, references)])),
        "SSIM Y": float(np.mean([metrics.ssim(o, r, test_y_channel=True) for o, r in zip(outputs, references)])),
        "LPIPS": float(np.mean(metrics.lpips_distances(outputs, references))),
        "identity cosine": float(np.mean(cos)) if cos else float("nan"),
    }


def run_super_resolution(photo_file, task_id: str, model_ids: list[str], mode: str, paste: bool,
                         progress=gr.Progress()):
    """Super-resolve every face of the photo with each chosen model.

    Returns a labelled gallery, a per-model score table (sharp-photo mode) and a status line.
    """
    if task_id not in SR_TASKS:
        raise gr.Error(f"Unknown scale {task_id!r}; choose one of {', '.join(SR_TASKS)}.")
    if not model_ids:
        raise gr.Error("Pick at least one model.")
    unknown = [m for m in model_ids if m not in sr_models(task_id)]
    if unknown:
        raise gr.Error(f"Model(s) {', '.join(unknown)} do not serve {task_id}.")
    sharp = mode == SHARP
    photo = _load_photo(photo_file)
    progress(0, desc="Finding faces")
    found, notes = _find_faces(photo)
    task = TASKS[task_id]
    gallery, rows = [], []
    for k, model_id in enumerate(model_ids):
        progress(k / len(model_ids), desc=f"Running {model_id}")
        try:
            result = super_resolve(photo, found, model_id, task, sharp=sharp, paste=paste)
        except Exception:
            log.exception("model %s failed", model_id)
            raise gr.Error(f"The model {model_id} failed on this photo; the error was logged.") from None
        title = registry.get(model_id).title
        if k == 0:
            if sharp:
                gallery += [(ref, f"Original face {i + 1}") for i, ref in enumerate(result.references)]
            gallery += [(inp, f"Low-res input, face {i + 1} ({inp.shape[1]} px)") for i, inp in enumerate(result.inputs)]
        if paste:
            gallery.append((result.image, f"{title}: photo"))
        gallery += [(out, f"{title}: face {i + 1}") for i, out in enumerate(result.outputs)]
        if sharp:
            rows.append({"model": model_id, **_face_scores(result.outputs, result.references)})
        notes.extend(n for n in result.notes if n not in notes)
    progress(1.0)
    table = pd.DataFrame(rows).round(4) if rows else pd.DataFrame()
    return gallery, table, f"{len(found)} face(s) found." + "".join(f" {n}" for n in notes)


# ---------------------------------------------------------------------------------------------
# Leaderboard, models, about
# ---------------------------------------------------------------------------------------------


def leaderboard_table(task_id: str, search: str = "") -> pd.DataFrame:
    """The leaderboard rows of one task from benchmarks/results/leaderboard.csv (never computed here)."""
    path = leaderboard.RESULTS_DIR / "leaderboard.csv"
    if not path.is_file():
        return pd.DataFrame({"message": ["No results yet: run `python -m benchmarks.run`."]})
    df = pd.read_csv(path)
    df = df[df["task"] == task_id].dropna(axis=1, how="all")
    if search:
        df = df[df["model"].str.contains(search, case=False, regex=False)]
    df = df.copy()
    df["model"] = [f"{m} (reference)" if m in leaderboard.REFERENCE_ROWS else m for m in df["model"]]
    return df.drop(columns=["task"])


def model_cards() -> str:
    cards = sorted(registry.CHECKPOINT_ROOT.glob("*/README.md"))
    if not cards:
        return "No trained checkpoints are shipped yet; the `bicubic` baseline needs none."
    parts = []
    for card in cards:
        text = card.read_text(encoding="utf-8")
        if text.startswith("---"):  # drop the YAML header of the Hub model card
            text = text.split("---", 2)[-1]
        parts.append(f"## {card.parent.name}\n\n{text.strip()}")
    return "\n\n---\n\n".join(parts)


def about() -> str:
    lines = [
        "facegen hosts the GAN models of five face-synthesis papers behind one app and one benchmark.",
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
        "their original research / non-commercial terms; no dataset image ships with the app.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------


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
                    sr_mode = gr.Radio([ENLARGE, SHARP], value=ENLARGE, label="Mode")
                    sr_pick = gr.CheckboxGroup(sr_models("sr-x4"), value=sr_models("sr-x4"), label="Models")
                    sr_paste = gr.Checkbox(value=True, label="Paste faces back into the photo")
                    sr_go = gr.Button("Super-resolve", variant="primary")
                with gr.Column():
                    sr_out = gr.Gallery(label="Results", columns=3, format="png")
                    sr_scores = gr.Dataframe(label="Scores against the original (sharp-photo mode)", interactive=False)
                    sr_info = gr.Markdown()
            sr_task.change(lambda t: gr.CheckboxGroup(choices=sr_models(t), value=sr_models(t)),
                           sr_task, sr_pick, api_name="sr_models")
            sr_go.click(run_super_resolution, [sr_in, sr_task, sr_pick, sr_mode, sr_paste],
                        [sr_out, sr_scores, sr_info], api_name="super_resolve")
        with gr.Tab("Leaderboard"):
            gr.Markdown("Scores from `benchmarks/results/`, written by `python -m benchmarks.run`. "
                        "`identity` is the input returned unchanged (up-sampled); `real` is the ground truth.")
            with gr.Row():
                lb_task = gr.Dropdown(list(TASKS), value="sr-x4", label="Task")
                lb_search = gr.Textbox(label="Search models")
            lb_table = gr.Dataframe(leaderboard_table("sr-x4"), interactive=False)
            lb_task.change(leaderboard_table, [lb_task, lb_search], lb_table, api_name="leaderboard")
            lb_search.change(leaderboard_table, [lb_task, lb_search], lb_table, api_name="leaderboard_search")
        with gr.Tab("Models"):
            gr.Markdown(model_cards())
        with gr.Tab("About"):
            gr.Markdown(about())
    demo.queue(default_concurrency_limit=2, max_size=32)
    return demo


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    build_demo().launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size=MAX_UPLOAD,
    )
