"""facegen.templates: the 5-point template measured on training faces (python -m facegen.templates fit)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facegen import faces as F
from facegen import templates as T


def _moved(shape: np.ndarray, scale: float, angle: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return scale * shape @ np.array([[c, -s], [s, c]]).T + np.asarray(shift)


def test_procrustes_recovers_a_shape_seen_through_random_similarities() -> None:
    rng = np.random.default_rng(0)
    truth = F.TEMPLATES["arcface"]  # a 5-point shape unlike the framing template below
    shapes = np.stack([_moved(truth, rng.uniform(50, 200), rng.uniform(-0.5, 0.5), rng.uniform(0, 250, 2))
                       + rng.normal(0, 0.05, (5, 2)) for _ in range(40)])
    template, aligned = T.fit_template(shapes, F.TEMPLATES["celeba"])
    # the shape is the truth's, placed by the least-squares similarity onto the framing template
    want = (F.similarity_transform(truth, F.TEMPLATES["celeba"])[:, :2] @ truth.T).T \
        + F.similarity_transform(truth, F.TEMPLATES["celeba"])[:, 2]
    assert np.abs(template - want).max() * 128 < 0.1  # pixels at 128
    assert aligned.shape == shapes.shape and np.abs(aligned - template).max() * 128 < 0.5
    # the framing template's own shape gives the framing template back
    same, _ = T.fit_template(np.stack([_moved(F.TEMPLATES["celeba"], 90, 0.2, (10, 20))] * 3), F.TEMPLATES["celeba"])
    np.testing.assert_allclose(same, F.TEMPLATES["celeba"], atol=1e-9)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(n, k, 2\)"):
        T.procrustes_mean(np.zeros((3, 5)))


def test_fit_command_on_a_handful_of_lfw_faces(data_root, capsys) -> None:
    assert T.main(["fit", "--faces", "6", "--data-root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert "LFW training faces" in out and "TEMPLATES['celeba']" in out
    rows = [line for line in out.splitlines() if line.strip().startswith("[0.")]
    template = np.array([[float(v) for v in r.split("]")[0].strip(" [").split(",")] for r in rows])
    assert template.shape == (5, 2)
    # a face template: eyes above the nose above the mouth, and within a few pixels of the CelebA one
    assert template[0, 1] < template[2, 1] < template[3, 1] and template[0, 0] < template[1, 0]
    assert np.abs(template - F.TEMPLATES["celeba"]).max() * 128 < 6
    assert T.main(["fit", "--faces", "1", "--data-root", str(data_root)]) == 2
