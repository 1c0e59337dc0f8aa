"""The registry: ids, tasks, checkpoints present, and every entry loads and runs on its task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.tasks import TASKS
from facegen import registry
from facegen.inference import load_runner


def test_bicubic_first_and_serves_every_sr_task():
    first = next(iter(registry.REGISTRY))
    assert first == "bicubic"
    assert registry.get("bicubic").tasks == ("sr-x2", "sr-x4", "sr-x8")


def test_unknown_ids_give_clear_errors():
    with pytest.raises(KeyError, match="unknown model"):
        registry.get("nope")
    with pytest.raises(KeyError, match="does not serve task"):
        registry.get("bicubic").checkpoint_dir("smile")


@pytest.mark.parametrize("spec", list(registry.REGISTRY.values()), ids=list(registry.REGISTRY))
def test_entry_is_consistent(spec):
    assert spec.id and spec.title and spec.family in {"baseline", "sr", "smile", "expression"}
    for task in spec.tasks:
        assert task in TASKS
        folder = spec.checkpoint_dir(task)
        if folder is None:
            assert task in spec.configs
        else:
            assert (folder / "model.safetensors").is_file(), f"{spec.id}/{task}: shipped checkpoint missing"


@pytest.mark.parametrize(
    "model_id,task", [(s.id, t) for s in registry.REGISTRY.values() for t in s.tasks if TASKS[t].id.startswith("sr")]
)
def test_sr_entry_runs(model_id, task):
    t = TASKS[task]
    runner = load_runner(model_id, task, device="cpu")
    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, (t.in_size, t.in_size, 3), dtype=np.uint8) for _ in range(2)]
    out = runner(faces)
    assert len(out) == 2 and all(o.shape == (t.out_size, t.out_size, 3) and o.dtype == np.uint8 for o in out)


def test_conditions_are_split_with_the_batches():
    from facegen.inference import Runner
    from facegen.models.smile import SmileConfig, SmileGenerator

    cfg = SmileConfig.tiny("sge")
    model = SmileGenerator(cfg).eval()
    runner = Runner(model_id="tiny-sge", task="smile", model=model, device="cpu")
    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, (cfg.lr_size, cfg.lr_size, 3), dtype=np.uint8) for _ in range(5)]
    guide = torch.rand(5, 3, 2 * cfg.lr_size, 2 * cfg.lr_size)
    whole = runner(faces, batch_size=5, guide=guide)
    split = runner(faces, batch_size=2, guide=guide)  # batches of 2, 2, 1 with their own guides
    assert all(np.array_equal(a, b) for a, b in zip(whole, split))


@pytest.mark.parametrize(
    "model_id,task", [(s.id, t) for s in registry.REGISTRY.values() for t in s.tasks if t in ("smile", "expression")]
)
def test_smile_and_expression_entries_run(model_id, task, data_root):
    from facegen import faces as F
    from facegen.images import read_image

    t = TASKS[task]
    runner = load_runner(model_id, task, device="cpu")
    photo = read_image(data_root / "jaffe" / "KA.NE1.26.jpg")
    face = F.detect_faces(photo)[0]
    size = getattr(runner.model.config, "lr_size", None) or runner.model.config.size
    crop = F.align(photo, face, size, t.template).image
    if task == "smile":
        guide = torch.from_numpy(F.align(photo, face, 2 * size, t.template).image).permute(2, 0, 1)[None] / 255.0
        out = runner([crop], guide=guide)
        assert out[0].shape == (2 * size, 2 * size, 3)
    else:
        out = runner([crop, crop], expression=["happy", "surprise"])
        assert all(o.shape == (size, size, 3) for o in out) and not np.array_equal(out[0], out[1])
    assert all(o.dtype == np.uint8 for o in out)
