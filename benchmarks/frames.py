"""Test faces for a model that cuts faces by its own template (``TaskShape.model_templates``).

Such a model (``lmk-guided`` on the tight 'celeba' crop) is given each test face cut from its photo
by the model's template, as the app cuts it, and its change over that input is pasted back into
the task's crop inside the inner-face mask (:func:`facegen.paste.paste_change`, the app's paste,
with the task's crop standing for the photo). So every row of a task is judged on the same crops.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from benchmarks.testsets import BenchmarkError, TestSet
from facegen.data import aligned_crops
from facegen.data.cache import default_cache_root
from facegen.landmarks import crop_landmarks_cached
from facegen.paste import face_mask, paste_change


@dataclass(frozen=True)
class ModelFrame:
    """The test set's inputs cut by ``template``, with the map from each task crop to its model crop."""

    template: str
    inputs: list[np.ndarray]  # uint8 RGB at the task's input size, cut by ``template``
    task_to_model: np.ndarray  # (n, 2, 3): pixels of the task's input crop -> pixels of the model's


def _crops(records: list, size: int, template: str) -> tuple[np.ndarray, np.ndarray, object]:
    """(images, matrices) of ``records`` in order, and the cache entry; every record must have a face."""
    unique = list({r.key: r for r in records}.values())  # expression-wild asks each photo for six expressions
    crops = aligned_crops(unique, size, template, progress=sys.stderr.isatty())
    row = {k: i for i, k in enumerate(crops.keys)}
    missing = [r.key for r in records if r.key not in row]
    if missing:
        raise BenchmarkError(f"no face found on {missing[0]} with the {template!r} template "
                             f"({len(missing)} test photos)")
    idx = [row[r.key] for r in records]
    return np.asarray(crops.images)[idx], np.asarray(crops.matrices)[idx], crops


def _homogeneous(m: np.ndarray) -> np.ndarray:
    return np.concatenate([m, np.broadcast_to([0.0, 0.0, 1.0], (*m.shape[:-2], 1, 3))], axis=-2)


def model_frame(ts: TestSet, template: str) -> ModelFrame:
    """The inputs of ``ts`` cut from their photos by ``template`` (aligned-crop cache)."""
    task = ts.task
    if ts.sources is None or task.scale != 1:
        raise BenchmarkError(f"{task.id}: its faces cannot be cut by another template (no source photos, or the "
                             f"task changes the size)")
    if template not in (task.template, *task.model_templates):
        raise BenchmarkError(f"{task.id} takes faces cut by {task.template!r} or {task.model_templates}; "
                             f"a model asked for {template!r}")
    images, model_m, _ = _crops(ts.sources, task.in_size, template)
    _, task_m, _ = _crops(ts.sources, task.in_size, task.template)
    to_model = _homogeneous(model_m) @ np.linalg.inv(_homogeneous(task_m))
    return ModelFrame(template, list(images), to_model[:, :2, :])


def target_landmarks(ts: TestSet, template: str) -> np.ndarray:
    """(n, 68, 2) landmarks of each ground-truth target cut by ``template`` (NaN where none is found):
    what a landmark-guided model on that crop is given under the paper's protocol."""
    if ts.target_sources is None:
        raise BenchmarkError(f"{ts.task.id}: no target photos to cut by {template!r}")
    _, _, crops = _crops(ts.target_sources, ts.task.out_size, template)
    pts = crop_landmarks_cached(np.asarray(crops.images), default_cache_root() / "landmarks" / f"{crops.path.name}.npy",
                                progress=sys.stderr.isatty())
    row = {k: i for i, k in enumerate(crops.keys)}
    return pts[[row[r.key] for r in ts.target_sources]]


def into_task_crops(frame: ModelFrame, ts: TestSet, outputs: list[np.ndarray]) -> list[np.ndarray]:
    """Each output's change over its model-frame input, pasted into the task's input crop inside
    the model template's inner-face mask."""
    size = ts.task.out_size
    mask = face_mask(frame.template, size)
    return [paste_change(base, out, inp, m, aligned_size=size, mask=mask)
            for base, out, inp, m in zip(ts.inputs, outputs, frame.inputs, frame.task_to_model)]
