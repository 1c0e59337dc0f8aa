"""The recommended model of a task, read from the benchmark's results (never hard-coded).

``recommended_model(task_id)`` is the best shipped model on the task's headline metric
(:func:`benchmarks.protocols.headline`) among the rows that are neither reference rows nor given
privileged inputs (``given`` = none), so it compares like with like and names a model a user
with only a photo can run. A task listed in :data:`PHOTO_PROTOCOL` is judged on that protocol's
results instead (its own when that protocol has none yet). The app pre-selects it in each photo tab.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks import protocols
from benchmarks.leaderboard import RESULTS_DIR, given_of
from benchmarks.tasks import TASKS
from facegen import model_menu, registry


#: Tasks whose recommendation is read from another protocol's results: the ``smile`` test set is 34
#: studio faces of the held-out JAFFE/RaFD subjects, while the app smiles photos like those of
#: ``smile-wild`` (neutral LFW faces of held-out people), where the methods rank differently.
PHOTO_PROTOCOL: dict[str, str] = {"smile": "smile-wild"}


def recommended_model(task_id: str, results_dir: Path = RESULTS_DIR) -> str | None:
    """Id of the best registered, non-reference, non-privileged model on ``task_id`` by its headline
    metric in ``results_dir/<task>/*.json`` (by :data:`PHOTO_PROTOCOL`'s protocol first, when the task
    has one and it has results); None when no such result exists. Ablation entries (a
    paper's model without one of its parts, trained by another entry's recipe) answer a question of
    the paper and are never recommended."""
    if task_id not in TASKS:
        raise KeyError(f"unknown task {task_id!r}; known: {sorted(TASKS)}")
    photo = PHOTO_PROTOCOL.get(task_id)
    best = _best(task_id, photo, results_dir) if photo else None
    return best if best is not None else _best(task_id, task_id, results_dir)


def _best(task_id: str, scored_on: str, results_dir: Path) -> str | None:
    """The best model serving ``task_id`` by the headline of the ``scored_on`` results (see above)."""
    key = protocols.headline(scored_on)
    higher = next(m.higher_is_better for m in TASKS[scored_on].metrics if m.key == key)
    best: tuple[float, str] | None = None
    for path in sorted((Path(results_dir) / scored_on).glob("*.json")):
        try:
            r = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        spec = registry.REGISTRY.get(r.get("model", ""))
        if spec is None or task_id not in spec.tasks or r.get("kind") == "reference" or given_of(r) != "none" \
                or spec.recipe not in (None, spec.id):
            continue
        v = r.get("metrics", {}).get(key)
        if not isinstance(v, (int, float)) or math.isnan(v):
            continue
        score = v if higher else -v
        if best is None or score > best[0]:
            best = (score, r["model"])
    return best[1] if best else None


def offered_default(task_id: str, results_dir: Path = RESULTS_DIR) -> str | None:
    """The model the app ticks for ``task_id``: :func:`recommended_model` when it can run here, else the
    first runnable registered model (no results yet), else None."""
    ids = model_menu.runnable(task_id)
    best = recommended_model(task_id, Path(results_dir))
    return best if best in ids else (ids[0] if ids else None)


def model_choices(task_id: str, results_dir: Path = RESULTS_DIR) -> list[tuple[str, str]]:
    """(name, id) of every model of a task that can run here, the recommended one first."""
    ids = model_menu.runnable(task_id)
    best = offered_default(task_id, results_dir)
    ids.sort(key=lambda m: m != best)
    return [(model_menu.model_name(m), m) for m in ids]
