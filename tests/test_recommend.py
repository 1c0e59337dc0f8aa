"""The app's default model per tab: the task's best shipped model by its headline metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import recommend
from benchmarks.leaderboard import RESULTS_DIR
from facegen import registry


def write(root: Path, task: str, model: str, kind: str, **metrics) -> None:
    (root / task).mkdir(parents=True, exist_ok=True)
    (root / task / f"{model}.json").write_text(json.dumps({"task": task, "model": model, "kind": kind,
                                                           "metrics": metrics}))


def test_best_model_by_headline_metric(tmp_path):
    write(tmp_path, "sr-x4", "a", "model", psnr_y=27.0)
    write(tmp_path, "sr-x4", "b", "model", psnr_y=28.0)
    write(tmp_path, "sr-x4", "c", "model", psnr_y=28.0)
    write(tmp_path, "sr-x4", "real", "reference", psnr_y=99.0)  # references never win
    write(tmp_path, "sr-x4", "identity", "reference", psnr_y=50.0)
    assert recommend.best_model(tmp_path, "sr-x4", ["a", "b", "c", "real", "identity"]) == "b"  # tie: registry order
    assert recommend.best_model(tmp_path, "sr-x4", ["c", "b"]) == "c"
    assert recommend.best_model(tmp_path, "sr-x4", ["a"]) == "a"
    assert recommend.best_model(tmp_path, "sr-x4", ["unscored"]) is None
    assert recommend.best_model(tmp_path, "sr-x8", ["a"]) is None  # no results for the task


def test_every_task_has_a_headline_metric_it_reports():
    from benchmarks.tasks import TASKS

    for task_id, (key, _) in recommend.HEADLINE.items():
        assert key in {m.key for m in TASKS[task_id].metrics}
    assert set(recommend.HEADLINE) >= {t for t in TASKS if registry.models_for(t)}


@pytest.mark.parametrize("task_id", list(recommend.HEADLINE))
def test_committed_results_pick_the_best_shipped_model(task_id):
    key, higher = recommend.HEADLINE[task_id]
    ids = [s.id for s in registry.models_for(task_id)]
    rows = {m: json.loads((RESULTS_DIR / task_id / f"{m}.json").read_text())["metrics"][key]
            for m in ids if (RESULTS_DIR / task_id / f"{m}.json").is_file()}
    if not rows:
        pytest.skip(f"no committed {task_id} results")
    best = recommend.best_model(RESULTS_DIR, task_id, ids)
    assert rows[best] == (max(rows.values()) if higher else min(rows.values()))
