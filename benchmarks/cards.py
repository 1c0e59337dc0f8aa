"""Benchmark sections of the shipped model cards, written from the result files.

Each checkpoint folder's ``README.md`` gets, between two markers, a table of its model's row on
the task it serves next to the reference rows (and the bicubic baseline for super-resolution),
with the run's dataset, n, commit and date. ``python -m benchmarks.run`` rewrites these
sections after every run, so a card never quotes a number the results do not hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.leaderboard import RESULTS_DIR, _fmt, read_results
from benchmarks.tasks import TASKS
from facegen.checkpoint import atomic_write_bytes
from facegen.registry import CHECKPOINT_ROOT, REGISTRY

START = "<!-- benchmark:start -->"
END = "<!-- benchmark:end -->"
COMPARE_WITH = ("bicubic", "identity", "real")  # rows shown beside the model, when present


def section(task_id: str, model_id: str, results: list[dict[str, Any]]) -> str | None:
    """Markdown benchmark section of ``model_id`` on ``task_id`` (None when it has no result)."""
    by_model = {r["model"]: r for r in results if r["task"] == task_id}
    mine = by_model.get(model_id)
    if mine is None:
        return None
    task = TASKS[task_id]
    rows = [mine] + [by_model[m] for m in COMPARE_WITH if m in by_model and m != model_id]
    metrics = [m for m in task.metrics if mine.get("metrics", {}).get(m.key) is not None]
    head = ["row"] + [m.title + (f" ({m.unit})" if m.unit else "") + (" ↑" if m.higher_is_better else " ↓")
                      for m in metrics]
    lines = [
        START,
        "## Benchmark",
        "",
        f"`{task_id}` ({task.title}) on {mine.get('dataset', task.dataset)}, n = {mine.get('n')}, "
        f"commit {str(mine.get('commit', '?'))[:12]}, {str(mine.get('date', '?'))[:10]}, {mine.get('hardware', '')}. "
        "Written by `python -m benchmarks.run`; the leaderboard has every column and the judges' versions.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        name = r["model"] if r is mine else f"*{r['model']}*"
        lines.append("| " + " | ".join([name] + [_fmt(r.get("metrics", {}).get(m.key)) for m in metrics]) + " |")
    lines.append(END)
    return "\n".join(lines)


def replace_section(card: str, new: str) -> str:
    """``card`` with its benchmark section replaced by ``new`` (appended when absent)."""
    if START in card and END in card:
        head, rest = card.split(START, 1)
        tail = rest.split(END, 1)[1]
        return head + new + tail
    return card.rstrip("\n") + "\n\n" + new + "\n"


def update_model_cards(results_root: Path = RESULTS_DIR, checkpoint_root: Path = CHECKPOINT_ROOT) -> list[Path]:
    """Rewrite the benchmark section of every registered checkpoint's card; returns the cards changed."""
    results = read_results(results_root)
    changed = []
    for spec in REGISTRY.values():
        for task_id, folder in spec.checkpoints.items():
            if folder is None:
                continue
            card_path = checkpoint_root / folder / "README.md"
            new = section(task_id, spec.id, results)
            if new is None or not card_path.is_file():
                continue
            old = card_path.read_text(encoding="utf-8")
            text = replace_section(old, new)
            if text != old:
                atomic_write_bytes(card_path, text.encode("utf-8"))
                changed.append(card_path)
    return changed
