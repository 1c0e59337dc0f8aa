"""A model on its own crop template inside a task of another (benchmarks.frames, Runner.template)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from benchmarks import frames, testsets
from benchmarks import rows as bench_rows
from benchmarks.tasks import TASKS
from facegen.paste import face_mask
from facegen.tasks import shape


def _frame(task_to_model: np.ndarray, inputs: list[np.ndarray]) -> frames.ModelFrame:
    return frames.ModelFrame("celeba", inputs, np.asarray(task_to_model, dtype=np.float64))


def _testset(images: list[np.ndarray]) -> testsets.TestSet:
    n = len(images)
    return testsets.TestSet(TASKS["expression"], images, images, subjects=["s"] * n, labels=["happy"] * n,
                            names=[f"x{i}" for i in range(n)], dataset="d", split="s")


def test_expression_task_accepts_the_tight_crop_and_nothing_else():
    assert shape("expression").templates == ("expression", "celeba")
    assert shape("smile").templates == ("celeba",)


def test_unchanged_output_leaves_the_task_crop_exactly_as_it_was():
    rng = np.random.default_rng(0)
    task_crop = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    model_in = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    zoom = np.array([[2.0, 0, -64.0], [0, 2.0, -64.0]])  # the model crop: the task crop's centre, 2x
    out = frames.into_task_crops(_frame(zoom[None], [model_in]), _testset([task_crop]), [model_in])
    assert np.array_equal(out[0], task_crop)


def test_a_change_lands_where_the_matrix_puts_it_inside_the_face_mask_only():
    task_crop = np.full((128, 128, 3), 100, np.uint8)
    model_in = np.full((128, 128, 3), 100, np.uint8)
    brighter = np.full((128, 128, 3), 160, np.uint8)  # the model brightened its whole crop by 60
    zoom = np.array([[2.0, 0, -64.0], [0, 2.0, -64.0]])
    out = frames.into_task_crops(_frame(zoom[None], [model_in]), _testset([task_crop]), [brighter])[0].astype(int)
    # the model crop covers the task crop's central 64 px; the change follows the tight template's
    # inner-face mask, mapped there: 60 at the mask's core, nothing outside the covered square
    mask = cv2.warpAffine(face_mask("celeba", 128), zoom, (128, 128), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR)
    core = mask > 0.999
    assert core.any() and np.abs(out[core] - 160).max() <= 1
    assert (out[:30] == 100).all() and (out[:, :30] == 100).all() and (out[100:] == 100).all()
    assert np.abs((out[..., 0] - 100) - 60 * mask).max() <= 8  # the soft edge follows the mask (feathered)


def test_landmark_conditions_come_from_the_models_crop(monkeypatch):
    imgs = [np.zeros((128, 128, 3), np.uint8)] * 2
    ts = _testset(imgs)
    own, tight = np.zeros((2, 68, 2), np.float32), np.ones((2, 68, 2), np.float32)
    monkeypatch.setattr(bench_rows, "target_landmarks", lambda _ts: own)
    asked = []
    monkeypatch.setattr(frames, "target_landmarks", lambda _ts, t: asked.append(t) or tight)
    assert (bench_rows.item_conditions(ts, ("landmarks",), "expression")[0]["landmarks"] == 0).all()
    assert (bench_rows.item_conditions(ts, ("landmarks",), "celeba")[1]["landmarks"] == 1).all() and asked == ["celeba"]


def test_model_frame_refuses_a_template_the_task_does_not_take():
    ts = _testset([np.zeros((128, 128, 3), np.uint8)])
    with pytest.raises(testsets.BenchmarkError, match="source photos"):
        frames.model_frame(ts, "celeba")
    ts.sources = []
    with pytest.raises(testsets.BenchmarkError, match="ffhq"):
        frames.model_frame(ts, "ffhq")


def test_tight_crops_of_the_expression_test_faces_match_the_task_crops(data_root):
    """On the real test photos: the tight crop, mapped back by the frame's matrix, is the task's
    crop (same face, same place), and pasting an unchanged output gives the task's crop back."""
    task = TASKS["expression"]
    ts = testsets.TESTSETS["expression"](task, data_root, 6)
    frame = frames.model_frame(ts, "celeba")
    assert len(frame.inputs) == len(ts.inputs) and frame.inputs[0].shape == (128, 128, 3)
    inner = face_mask("expression", 128) > 0.5
    for tight, loose, m in zip(frame.inputs, ts.inputs, frame.task_to_model):
        back = cv2.warpAffine(tight, m, (128, 128), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_AREA)
        diff = np.abs(back.astype(int) - loose.astype(int))[inner]
        assert diff.mean() < 6, diff.mean()
        scale = np.sqrt(abs(np.linalg.det(m[:, :2])))
        assert 1.5 < scale < 2.0  # the tight crop: the face 1.5-2x as wide as in the 6.4 d square
    pasted = frames.into_task_crops(frame, ts, frame.inputs)
    assert all(np.array_equal(p, x) for p, x in zip(pasted, ts.inputs))
    lm = frames.target_landmarks(ts, "celeba")
    assert lm.shape == (len(ts.targets), 68, 2) and np.isfinite(lm).all()
    assert 20 < lm[:, :, 0].min() and lm[:, :, 0].max() < 118  # the face fills the tight crop


def test_a_checkpoint_on_a_crop_its_task_does_not_take_is_refused(tmp_path):
    """A smile model trained on the 6.4 d square cannot serve the smile task (tight crop only);
    an expression model on the tight crop can serve the expression task."""
    from facegen import checkpoint, registry
    from facegen.inference import load_runner
    from facegen.models.lmk_guided import LmkGuidedConfig, LmkGuidedGenerator
    from facegen.models.smile import SmileConfig, SmileGenerator

    smile = registry.get("p2p-sge").checkpoints["smile"]
    loose = dataclasses.replace(SmileConfig.tiny("sge"), template="expression")
    checkpoint.save(SmileGenerator(loose), tmp_path / smile,
                    model_id="p2p-sge", card="# test\n")
    with pytest.raises(checkpoint.CheckpointError, match="'expression' template.*crops them by 'celeba'"):
        load_runner("p2p-sge", "smile", checkpoint_root=tmp_path)
    lmk = registry.get("lmk-guided").checkpoints["expression"]
    checkpoint.save(LmkGuidedGenerator(LmkGuidedConfig.tiny(template="celeba")), tmp_path / lmk,
                    model_id="lmk-guided", card="# test\n")
    assert load_runner("lmk-guided", "expression", checkpoint_root=tmp_path).template == "celeba"


def test_the_app_gives_a_model_on_the_tight_crop_faces_cut_by_its_own_template():
    """A model whose config names the tight 'celeba' crop is given faces cut by it (not the task's
    6.4 d square), the reference photo's landmarks are found on that crop, and its change is pasted."""
    app = pytest.importorskip("app")
    from facegen.faces import align, detect
    from facegen.images import read_image
    from facegen.inference import Runner
    from facegen.models.lmk_guided import LmkGuidedConfig, LmkGuidedGenerator

    photo = read_image(app.example_photos()[1])
    faces = detect(photo)
    tight_model = LmkGuidedGenerator(LmkGuidedConfig.tiny(template="celeba")).eval()
    r = Runner("tiny-lmk-tight", "expression", tight_model, "cpu")
    loose = Runner("tiny-lmk", "expression", LmkGuidedGenerator(LmkGuidedConfig.tiny()).eval(), "cpu")
    assert r.template == "celeba" and loose.template == "expression"
    cache: dict = {}
    tight = app._reference_landmarks(photo, 32, "celeba", cache)
    loose = app._reference_landmarks(photo, 32, "expression", cache)
    assert len(cache) == 2 and np.ptp(tight[:, 0]) > 1.4 * np.ptp(loose[:, 0])  # the face fills the tight crop
    res = app.expression_photo(photo, faces, r, "happy", app.TASKS["expression"], landmarks=tight)
    for f, inp in zip(faces, res.inputs):
        assert np.array_equal(inp, align(photo, f, 32, "celeba").image)
    assert res.image.shape == photo.shape and not np.array_equal(res.image, photo)

