"""Task geometry, the one source: what a model of each task is given and must return.

The library (training recipes, data splits, the photo pipeline) reads sizes, scales and alignment
templates from here; :mod:`benchmarks.tasks` extends each :class:`TaskShape` with its test set
and metric columns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskShape:
    id: str
    in_size: int  # input side in pixels (low-res / neutral face)
    out_size: int  # output side in pixels
    template: str  # face alignment template of facegen.faces
    data_split: str  # the subject-disjoint split (facegen.data.splits) it trains and tests on
    # Other templates a model of the task may cut its faces by (its config's ``template``): such a
    # model is given faces cut from the photo by its own template, and its change is pasted back into
    # the task's crop (facegen.paste.paste_change), which is where the task is judged.
    model_templates: tuple[str, ...] = ()

    @property
    def templates(self) -> tuple[str, ...]:
        """Every crop template a model of the task may take: the task's own first."""
        return (self.template, *self.model_templates)

    @property
    def scale(self) -> int:
        return self.out_size // self.in_size


def _sr(scale: int) -> TaskShape:
    return TaskShape(f"sr-x{scale}", 128 // scale, 128, "celeba", "sr")


SR_SCALES: tuple[int, ...] = (2, 4, 8)

#: Task id -> geometry, for every task a model is trained for (benchmark variants such as the
#: framing-change tasks reuse the geometry of the task they are based on).
SHAPES: dict[str, TaskShape] = {
    **{t.id: t for t in map(_sr, SR_SCALES)},
    "smile": TaskShape("smile", 64, 128, "celeba", "smile"),  # the shipped (wild) models' crop
    "expression": TaskShape("expression", 128, 128, "expression", "expression", model_templates=("celeba",)),
}

#: The data splits of the tasks, plus ``judge`` (the expression judges' training split).
SPLITS: tuple[str, ...] = (*dict.fromkeys(t.data_split for t in SHAPES.values()), "judge")


def shape(task_id: str) -> TaskShape:
    try:
        return SHAPES[task_id]
    except KeyError:
        raise KeyError(f"unknown task {task_id!r}; known: {sorted(SHAPES)}") from None
