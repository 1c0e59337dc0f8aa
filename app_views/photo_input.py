"""The photo upload of a tab and its face picker (Gradio): reading the upload, finding the faces,
choosing which to process, and the controls that show them."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np

from facegen import faces as F
from facegen.example_photos import EXAMPLE_LABELS
from facegen.faces import Face, FaceNotFoundError, detect_faces
from facegen.images import ImageReadError, read_image
from facegen.request_results import face_index, face_label

MAX_PIXELS = 40_000_000  # larger pictures are refused from their header, before decoding
MAX_FACES = 8  # faces processed per photo; the rest are left as they are (with a note)
ALL_FACES = "All faces"
PICKED_FACES = "Only the faces ticked below"


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


def load_photo(source, what: str = "photo") -> np.ndarray:
    if source is None:
        raise gr.Error(f"Please upload a {what} with a face first.")
    try:
        return read_image(source, max_pixels=MAX_PIXELS)
    except ImageReadError as e:
        raise gr.Error(str(e)) from None


def find_faces(photo: np.ndarray) -> tuple[list[Face], list[str]]:
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


def select_faces(found: list[Face], which: str | None, picked: list[str] | None) -> list[Face]:
    """The faces to process: all of them, or those ticked ("Face 1", "Face 2" ... largest first)."""
    if which in (None, "", ALL_FACES):
        return found
    if which != PICKED_FACES:
        raise gr.Error(f"'Which faces' must be {ALL_FACES!r} or {PICKED_FACES!r}.")
    chosen = []
    for p in picked or []:
        k = face_index(p)
        if k is None:
            raise gr.Error(f"{p!r} is not a face of this photo; faces are named 'Face 1', 'Face 2' ...")
        if not 0 <= k < len(found):
            raise gr.Error(f"{p} is not in this photo: {len(found)} face(s) were found.")
        if found[k] not in chosen:
            chosen.append(found[k])
    if not chosen:
        raise gr.Error(f"Tick at least one face, or choose {ALL_FACES!r}.")
    return chosen


def detect_faces_view(photo_file):
    """Crops of the detected faces for the picker (largest first), the face choices and a status line."""
    if photo_file is None:
        return [], gr.CheckboxGroup(value=[], visible=False), ""
    photo = load_photo(photo_file)
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


@dataclass
class PhotoControls:
    photo: gr.Image
    which: gr.Radio
    picked: gr.CheckboxGroup
    faces: gr.Gallery


def photo_input(prefix: str) -> gr.Image:
    return PhotoUpload(label="Photo", type="filepath", sources=["upload", "webcam", "clipboard"], height=300,
                       elem_id=f"{prefix}-photo")


def photo_controls(prefix: str, photo: gr.Image, examples: list[str]) -> PhotoControls:
    """Examples and the face picker (a gallery of the detected faces) of an upload."""
    gr.Examples(examples=[[p] for p in examples], inputs=[photo], api_name=f"{prefix}_load_example",
                example_labels=list(EXAMPLE_LABELS)[: len(examples)])
    with gr.Accordion("Faces", open=True):
        faces = gr.Gallery(label="Detected faces (largest first)", columns=6, height=150, allow_preview=False,
                           object_fit="contain", fit_columns=False)
        which = gr.Radio([ALL_FACES, PICKED_FACES], value=ALL_FACES, label="Which faces")
        # Every possible face name until a photo is read, so an API call may pick faces straight away.
        picked = gr.CheckboxGroup([face_label(i) for i in range(MAX_FACES)], value=[], visible=False,
                                  label="Faces to process (when 'only the faces ticked')")
        found = gr.Markdown()
    photo.change(detect_faces_view, photo, [faces, picked, found], api_name=f"{prefix}_faces")
    return PhotoControls(photo, which, picked, faces)
