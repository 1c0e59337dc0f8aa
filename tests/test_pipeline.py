"""The photo pipelines on real photos with the shipped models: enlarging never shrinks, untouched
pixels stay the plain enlargement, small faces are found and improved, large faces keep their detail."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmarks import metrics
from benchmarks.judges import identity_cosines
from benchmarks.tasks import TASKS
from facegen import faces as F
from facegen.inference import load_runner
from facegen.pipeline import SHARP, SHRINK, expression_photo, resize, smile_photo, super_resolve
from facegen.paste import face_mask

pytestmark = pytest.mark.slow


def celeba_group(data_root: Path, faces: int = 8) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The first ``faces`` (a multiple of 4) real CelebA test faces (128 px), four to a row on a
    640 px wide canvas, and where each one sits."""
    names = sorted((data_root / "celeba_fsrnet" / "celeba_val_1000_HR").iterdir())[:faces]
    photo = np.full((160 * (faces // 4), 640, 3), 90, np.uint8)
    spots = []
    for i, n in enumerate(names):
        y, x = 16 + 160 * (i // 4), 16 + 160 * (i % 4)
        photo[y:y + 128, x:x + 128] = np.asarray(Image.open(n).convert("RGB"))
        spots.append((y, x))
    return photo, spots


def rafd_group(data_root: Path) -> np.ndarray:
    """Three real RaFD portraits side by side: a 2043x1024 photo with faces about 300 px wide."""
    names = sorted((data_root / "rafd_subset" / "neutral").glob("*.jpg"))[:3]
    return np.concatenate([np.asarray(Image.open(n).convert("RGB")) for n in names], axis=1)


def high_frequency(image: np.ndarray, box) -> float:
    """Mean squared Laplacian of the grey face box: the fine detail a blur box would remove."""
    x, y, w, h = (int(v) for v in box)
    g = cv2.cvtColor(np.ascontiguousarray(image[y:y + h, x:x + w]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float((cv2.Laplacian(g, cv2.CV_32F) ** 2).mean())


@pytest.mark.parametrize("scale,best", [(4, "stackedgan"), (8, "stackedgan")])
def test_small_faces_are_found_enlarged_exactly_and_improved(data_root, scale, best):
    """Faces of 32 px (x4) and 16 px (x8): all found, the output is exactly the factor larger, the
    bicubic model reproduces a plain bicubic enlargement, and the best model beats it on the faces.
    24 faces: on 8, a mean identity gain of about 0.01 (SFace) or 0.002 (dlib) is within the noise."""
    hr, spots = celeba_group(data_root, faces=24)
    photo = resize(hr, 1 / scale)
    faces = F.detect_small(photo)
    assert len(faces) == len(spots)
    task = TASKS[f"sr-x{scale}"]
    plain = resize(photo, scale)
    crops = lambda img: [img[y:y + 128, x:x + 128] for y, x in spots]  # noqa: E731
    psnr = lambda img: np.mean([metrics.psnr(a, b, test_y_channel=True) for a, b in zip(crops(img), crops(hr))])  # noqa: E731
    bicubic = super_resolve(photo, faces, load_runner("bicubic", task.id), task)
    assert bicubic.image.shape == plain.shape and len(bicubic.processed) == len(spots)
    assert abs(psnr(bicubic.image) - psnr(plain)) < 0.1
    model = super_resolve(photo, faces, load_runner(best, task.id), task)
    assert model.image.shape == plain.shape
    assert psnr(model.image) > psnr(plain) + 0.5
    # Identity kept better than by the plain enlargement, by SFace (which both models are fine-tuned
    # with) and by an independent judge (dlib's ResNet, which no model trains with).
    for judge in ("sface", "dlib"):
        cos_model = np.nanmean(identity_cosines(crops(model.image), crops(hr), judge))
        cos_plain = np.nanmean(identity_cosines(crops(plain), crops(hr), judge))
        assert cos_model > cos_plain, judge


def test_enlarging_a_large_photo_never_shrinks_it_and_leaves_large_faces_alone(data_root):
    photo = rafd_group(data_root)
    faces = F.detect_small(photo)
    assert len(faces) == 3
    task = TASKS["sr-x4"]
    res = super_resolve(photo, faces, load_runner("stackedgan", task.id), task, max_side=4096)
    assert res.image.shape[1] == 4096 and res.image.shape[0] >= photo.shape[0]  # capped at 4096, never smaller
    assert np.array_equal(res.image, resize(photo, 4096 / photo.shape[1]))  # large faces: the plain enlargement
    assert res.processed == [] and "already larger" in res.notes[-1] and "4096" in res.notes[0]
    shrunk = super_resolve(photo, faces, load_runner("stackedgan", task.id), task, mode=SHRINK)
    assert shrunk.processed == [0, 1, 2] and shrunk.image.shape[1] < photo.shape[1]  # the explicit demonstration


def test_sharp_mode_compares_aligned_crops(data_root):
    photo = rafd_group(data_root)
    faces = F.detect_small(photo)[:2]
    task = TASKS["sr-x4"]
    res = super_resolve(photo, faces, load_runner("bicubic", task.id), task, mode=SHARP)
    assert res.image.shape == (2 * 128, 3 * 128, 3)  # a row per face: input | model | original
    assert np.array_equal(res.image[:128, 128:256], res.outputs[0])
    assert np.array_equal(res.image[:128, 256:], res.references[0])


@pytest.mark.parametrize("task_id,model_id", [("smile", "p2p-sge"), ("expression", "lmk-guided"),
                                              ("expression", "exprgan-msd")])
def test_large_faces_keep_their_detail(data_root, task_id, model_id):
    """No blur box: inside large faces the result keeps >= 80 % of the photo's high-frequency energy,
    and the photo is never returned smaller."""
    photo = rafd_group(data_root)
    faces = F.detect_small(photo)
    runner = load_runner(model_id, task_id)
    if task_id == "smile":
        res = smile_photo(photo, faces, runner, TASKS[task_id])
    else:
        res = expression_photo(photo, faces, runner, "happy", TASKS[task_id])
    assert res.image.shape == photo.shape
    assert not np.array_equal(res.image, photo)  # the model did change the faces
    for f in faces:
        assert high_frequency(res.image, f.box) >= 0.8 * high_frequency(photo, f.box)


def test_the_intensity_slider_is_offered_only_where_it_visibly_changes_the_face(data_root):
    """Mean absolute change between intensity 0.25 and 1 on a real neutral face, over the inner face
    (the part of the crop the app pastes into the photo): >= 5/255 for every model that offers the
    slider (the app hides it for the others)."""
    from facegen import registry
    from facegen.images import read_image

    photo = read_image(data_root / "jaffe" / "KA.NE1.26.jpg")
    faces = F.detect(photo)[:1]
    task = TASKS["expression"]
    offered = [s.id for s in registry.models_for("expression") if s.intensity_control]
    assert offered
    for model_id in offered:
        runner = load_runner(model_id, "expression")
        weak, full = (expression_photo(photo, faces, runner, "happy", task, intensity=t, paste=False).outputs[0]
                      for t in (0.25, 1.0))
        inner = face_mask(runner.template, weak.shape[0]) > 0.5
        assert np.abs(weak.astype(float) - full).mean(axis=-1)[inner].mean() >= 5, model_id
