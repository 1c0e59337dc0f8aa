"""Benchmark and deviation sections of the shipped model cards: `python -m benchmarks.cards`.

Each checkpoint folder's ``README.md`` gets, between two markers, a table of its model's row on
the task it serves next to the reference rows (and the bicubic baseline for super-resolution),
with the run's dataset, n, commit and date; and between two other markers the model's
deviations from its paper (:mod:`facegen.deviations`). Writing the cards is its own explicit step,
``python -m benchmarks.cards`` after ``python -m benchmarks.run``: a benchmark run never edits a
tracked file besides its results (the cards are outside what marks a run dirty, by design).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from benchmarks.leaderboard import RESULTS_DIR, _fmt, read_results
from benchmarks.tasks import TASKS
from facegen import deviations
from facegen.io import atomic_write_bytes
from facegen.registry import CHECKPOINT_ROOT, REGISTRY

START = "<!-- benchmark:start -->"
END = "<!-- benchmark:end -->"
DEV_START = "<!-- deviations:start -->"
DEV_END = "<!-- deviations:end -->"
COMPARE_WITH = ("bicubic", "identity", "real")  # rows shown beside the model, when present


def _table(task_id: str, model_id: str, results: list[dict[str, Any]]) -> list[str] | None:
    """The lines of ``model_id``'s table on ``task_id`` (None when it has no result there)."""
    by_model = {r["model"]: r for r in results if r["task"] == task_id and not r.get("variant")}
    mine = by_model.get(model_id)
    if mine is None:
        return None
    task = TASKS[task_id]
    paper = [r for r in results if r["task"] == task_id and r["model"] == model_id and r.get("variant") == "paper"]
    rows = [mine] + paper + [by_model[m] for m in COMPARE_WITH if m in by_model and m != model_id]
    metrics = [m for m in task.metrics if mine.get("metrics", {}).get(m.key) is not None]
    head = ["row"] + [m.header for m in metrics]
    lines = [
        f"`{task_id}` ({task.title}) on {mine.get('dataset', task.dataset)}, n = {mine.get('n')}, "
        f"commit {str(mine.get('commit', '?'))[:12]}, {str(mine.get('date', '?'))[:10]}, {mine.get('hardware', '')}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        name = r["model"] if r is mine else (f"{r['model']} given {r.get('given_label', 'the paper inputs')} "
                                             "(the paper's protocol)" if r in paper else f"*{r['model']}*")
        lines.append("| " + " | ".join([name] + [_fmt(r.get("metrics", {}).get(m.key)) for m in metrics]) + " |")
    return lines


def section(task_id: str, model_id: str, results: list[dict[str, Any]]) -> str | None:
    """Markdown benchmark section of ``model_id`` on ``task_id`` and on the protocols built on it
    (``sr-x4-jitter``, ``smile-wild``: tasks whose ``base`` is ``task_id``); None when it has no
    result on ``task_id``."""
    first = _table(task_id, model_id, results)
    if first is None:
        return None
    lines = [START, "## Benchmark", "", "Written by `python -m benchmarks.run`; the leaderboard has every column and "
             "the judges' versions.", "", *first]
    for variant in (k for k, t in TASKS.items() if t.base == task_id):
        table = _table(variant, model_id, results)
        if table is not None:
            lines += ["", *table]
    lines.append(END)
    return "\n".join(lines)


def replace_section(card: str, new: str, start: str = START, end: str = END) -> str:
    """``card`` with its section between ``start`` and ``end`` replaced by ``new`` (appended when absent)."""
    if start in card and end in card:
        head, rest = card.split(start, 1)
        tail = rest.split(end, 1)[1]
        return head + new + tail
    return card.rstrip("\n") + "\n\n" + new + "\n"


def deviations_section(model_id: str) -> str | None:
    """Markdown deviations section of ``model_id`` (None for models without a paper)."""
    table = deviations.markdown(model_id)
    if not table:
        return None
    return "\n".join([DEV_START, "## Deviations from the paper (structured)", "",
                      "Generated from `facegen.deviations` by `python -m benchmarks.cards`; the leaderboard shows "
                      "the same table.", "", *table, DEV_END])


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
            dev = deviations_section(spec.id)
            if dev is not None:
                text = replace_section(text, dev, DEV_START, DEV_END)
            if text != old:
                atomic_write_bytes(card_path, text.encode("utf-8"))
                changed.append(card_path)
    return changed


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.cards [--results DIR]`: write the results and deviations into the model cards."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.cards", description=main.__doc__)
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default: benchmarks/results)")
    args = p.parse_args(argv)
    for card in update_model_cards(args.results):
        print(f"updated {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
