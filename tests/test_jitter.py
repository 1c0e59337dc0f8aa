"""benchmarks.jitter (the framing change of the sr-x*-jitter tasks) and its test sets."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import jitter, testsets
from benchmarks.tasks import JITTER_FACES, TASKS
from benchmarks.testsets import TESTSETS
from facegen import registry
from facegen.data import degrade
from facegen.data.sets import read_celeba_fsrnet

RED = (255, 0, 0)


def _framed(size: int = 128, border: int = 10) -> np.ndarray:
    """A face-sized test image: a pure red frame around a green/blue gradient, so any pixel that
    mirrors the inside back across the edge (reflection) has green or blue in it."""
    y, x = np.mgrid[0:size, 0:size]
    img = np.zeros((size, size, 3), np.uint8)
    img[..., 1] = 60 + x
    img[..., 2] = 60 + y
    img[:border] = img[-border:] = RED
    img[:, :border] = img[:, -border:] = RED
    return img


def test_draws_are_deterministic_and_within_the_stated_ranges() -> None:
    draws = [jitter.draw(i) for i in range(500)]
    assert draws == [jitter.draw(i) for i in range(500)]  # same seed, same transforms
    assert draws != [jitter.draw(i, seed=jitter.SEED + 1) for i in range(500)]
    scales = np.array([d.scale for d in draws])
    shifts = np.array([d.shift for d in draws])
    rots = np.array([d.rotation for d in draws])
    assert np.all(np.abs(scales - 1) <= jitter.SCALE) and np.all(np.abs(shifts) <= jitter.SHIFT)
    assert np.all(np.abs(rots) <= jitter.ROTATION)
    # the ranges are used, not just bounded: uniform draws reach near both ends
    assert np.abs(scales - 1).max() > 0.9 * jitter.SCALE and np.abs(rots).max() > 0.9 * jitter.ROTATION
    assert np.abs(shifts).max() > 0.9 * jitter.SHIFT
    with pytest.raises(ValueError, match=">= 0"):
        jitter.draw(-1)


def test_no_reflected_pixels_and_a_true_mask() -> None:
    img = _framed()
    # the strongest framing change in range: shrink, shift and rotate, so outside pixels show
    for j in (jitter.Jitter(1 - jitter.SCALE, (jitter.SHIFT, -jitter.SHIFT), jitter.ROTATION),
              jitter.Jitter(1 - jitter.SCALE, (-jitter.SHIFT, jitter.SHIFT), -jitter.ROTATION)):
        out, valid = jitter.apply(img, j)
        assert out.shape == img.shape and out.dtype == np.uint8 and valid.dtype == bool
        outside = ~valid
        assert 0.1 < outside.mean() < 0.5  # a shrunken, shifted crop leaves a band outside
        # every pixel from outside the crop is the edge colour (replicated), never the mirrored inside
        np.testing.assert_array_equal(out[outside], np.broadcast_to(RED, (int(outside.sum()), 3)))
        # inside the mask, the gradient is still there (the mask is not everything red)
        assert (out[valid][:, 1] > 100).mean() > 0.3
    same, valid = jitter.apply(img, jitter.Jitter(1.0, (0.0, 0.0), 0.0))
    np.testing.assert_array_equal(same, img)
    assert valid.all()
    with pytest.raises(ValueError, match="square uint8"):
        jitter.apply(img[:, :100], jitter.draw(0))


def test_jitter_tasks_follow_their_base_task() -> None:
    for s in (2, 4, 8):
        t, base = TASKS[f"sr-x{s}-jitter"], TASKS[f"sr-x{s}"]
        assert t.base == base.id and (t.in_size, t.out_size) == (base.in_size, base.out_size)
        # every metric of the standard protocol but FID/KID and the dlib cross-check, on the first JITTER_FACES faces
        dropped = {m.key for m in base.metrics} - {m.key for m in t.metrics}
        assert dropped == {"fid_inception", "kid_inception", "fid_alexnet224", "kid_alexnet224", "id_cosine_dlib"}
        assert t.items == JITTER_FACES and base.items is None
        assert "edge replication" in t.split and "whole image" in t.split and f"first {JITTER_FACES}" in t.split
        assert [m.id for m in registry.models_for(t.base)] and "bicubic" in [m.id for m in registry.models_for(t.base)]
    ids = list(TASKS)
    assert ids.index("sr-x4-jitter") == ids.index("sr-x4") + 1  # shown beside the standard protocol


def test_jitter_test_set_is_the_standard_faces_moved(data_root) -> None:
    task = TASKS["sr-x4-jitter"]
    ts = TESTSETS[task.id](task, data_root, 3)
    std = TESTSETS["sr-x4"](TASKS["sr-x4"], data_root, 3)
    assert ts.names == std.names and len(ts.targets) == 3
    for i, (t, x) in enumerate(zip(ts.targets, ts.inputs)):
        want, _ = jitter.apply(std.targets[i], jitter.draw(i))
        np.testing.assert_array_equal(t, want)
        np.testing.assert_array_equal(x, degrade.bicubic_down(want, 4))
    assert 0.5 < ts.info["valid_fraction"]["min"] <= ts.info["valid_fraction"]["mean"] <= 1
    assert ts.fingerprint != std.fingerprint
    # what the benchmark scores: the first JITTER_FACES faces, whatever the run's limit above it
    assert len(testsets.build(task, data_root, 2).targets) == 2
    assert [r.key for r in read_celeba_fsrnet(data_root)][:JITTER_FACES] == testsets.build(task, data_root).names
