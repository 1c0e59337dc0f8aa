"""Deterministic subject-disjoint train/test splits for the benchmark tasks (SPEC section 2).

The held-out subjects are listed here, by hand, so the split never changes with file order,
seeds or library versions. ``smile`` and ``expression`` hold out the SAME people: the in-domain
expression judge (trained on training subjects) scores both tasks, and a person seen while
training one task must not be a test face of the other.

- JAFFE: 3 of 10 subjects held out (KR, NA, YM: 63 images, 24 neutral->happy and 162
  neutral->expression pairs; every neutral image of a subject pairs with every target image).
- RaFD: 10 of 39 subjects held out, 5 female (04, 14, 22, 31, 57) and 5 male (07, 20, 28, 38, 49):
  30 images, 10 neutral->happy and 20 neutral->{happy, fearful} pairs.
- CelebA-FSRNet: test only (all 1,000 faces) for ``sr-x2/x4/x8``. JAFFE/RaFD (``sr``, with
  ``--studio-faces``): the SR models may train on the training subjects' images of every expression;
  the held-out people never.
- LFW and the LFW-expression colour crops: training only. CelebA's identities were chosen
  disjoint from LFW's by its authors (CelebFaces, Sun et al. 2014), so LFW faces never meet the
  CelebA test faces.
- Expression judges (``judge``): LFW expressions, CK+48 and the FER2013 rows train in full (none
  of them holds a JAFFE or RaFD person); JAFFE/RaFD train on training subjects, test on the
  held-out ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from facegen.data.pairs import ExpressionPair, read_pairs
from facegen.data.records import FaceRecord
from facegen.data.sets import read, read_lfw_expressions
from facegen.expressions import BASIC_EXPRESSIONS
from facegen.tasks import SPLITS as TASKS

JAFFE_TEST_SUBJECTS: tuple[str, ...] = ("KR", "NA", "YM")
RAFD_TEST_SUBJECTS: tuple[str, ...] = ("04", "07", "14", "20", "22", "28", "31", "38", "49", "57")

#: (dataset, task) -> held-out subjects. Same people for smile, expression and judge (see above).
TEST_SUBJECTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("jaffe", "smile"): JAFFE_TEST_SUBJECTS,
    ("rafd_subset", "smile"): RAFD_TEST_SUBJECTS,
    ("jaffe", "expression"): JAFFE_TEST_SUBJECTS,
    ("rafd_subset", "expression"): RAFD_TEST_SUBJECTS,
    ("jaffe", "judge"): JAFFE_TEST_SUBJECTS,
    ("rafd_subset", "judge"): RAFD_TEST_SUBJECTS,
    ("jaffe", "sr"): JAFFE_TEST_SUBJECTS,
    ("rafd_subset", "sr"): RAFD_TEST_SUBJECTS,
}

#: Target expressions of the paired tasks, per dataset.
TASK_EXPRESSIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("jaffe", "smile"): ("happy",),
    ("rafd_subset", "smile"): ("happy",),
    ("jaffe", "expression"): BASIC_EXPRESSIONS,
    ("rafd_subset", "expression"): ("happy", "fear"),
}

#: Whole sets that belong to one side only: "train" or "test".
WHOLE_SETS: dict[tuple[str, str], str] = {
    ("celeba_fsrnet", "sr"): "test",
    ("lfw", "sr"): "train",
    ("lfw_expressions", "sr"): "train",
    ("lfw_expressions", "judge"): "train",
    ("ckplus48", "judge"): "train",
    ("fer2013_partial", "judge"): "train",
}


class SplitError(KeyError):
    """A (dataset, task) combination that has no split."""

    def __str__(self) -> str:  # KeyError quotes its message; a person wants the sentence
        return str(self.args[0])


class Split(NamedTuple):
    train: list[FaceRecord]
    test: list[FaceRecord]


class PairSplit(NamedTuple):
    train: list[ExpressionPair]
    test: list[ExpressionPair]


def datasets_for(task: str) -> tuple[str, ...]:
    """The datasets that take part in ``task``."""
    if task not in TASKS:
        raise SplitError(f"Unknown task {task!r}; tasks: {', '.join(TASKS)}.")
    names = [d for (d, t) in TEST_SUBJECTS if t == task] + [d for (d, t) in WHOLE_SETS if t == task]
    return tuple(dict.fromkeys(names))


def _records(dataset: str, task: str, root: str | Path | None) -> list[FaceRecord]:
    if dataset == "lfw_expressions" and task == "sr":
        # SR trains on the colour crops only; the LFW images come through the `lfw` set.
        return [r for r in read_lfw_expressions(root) if r.get("source") == "other_images"]
    return read(dataset, root)


def split(dataset: str, task: str, root: str | Path | None = None) -> Split:
    """``(train, test)`` records of ``dataset`` for ``task``, disjoint by subject.

    For ``smile`` and ``expression`` only the neutral images and the task's target expressions
    are kept (their pairs: :func:`split_pairs`); ``judge`` keeps every labelled image.
    """
    if (dataset, task) in WHOLE_SETS:
        records = _records(dataset, task, root)
        return Split(records, []) if WHOLE_SETS[dataset, task] == "train" else Split([], records)
    if (dataset, task) not in TEST_SUBJECTS:
        known = sorted(set(TEST_SUBJECTS) | set(WHOLE_SETS))
        raise SplitError(
            f"No split of {dataset!r} for task {task!r}; defined: {', '.join(f'{d}/{t}' for d, t in known)}."
        )
    held_out = set(TEST_SUBJECTS[dataset, task])
    records = _records(dataset, task, root)
    if task in ("smile", "expression"):
        keep = {"neutral", *TASK_EXPRESSIONS[dataset, task]}
        records = [r for r in records if r.expression in keep]
    present = {r.subject for r in records}
    if not held_out <= present:
        raise SplitError(f"{dataset}: held-out subjects {sorted(held_out - present)} are not in the data.")
    return Split(
        [r for r in records if r.subject not in held_out],
        [r for r in records if r.subject in held_out],
    )


def split_pairs(dataset: str, task: str, root: str | Path | None = None) -> PairSplit:
    """Neutral -> target pairs of ``dataset`` (``jaffe`` or ``rafd_subset``) for ``smile`` or
    ``expression``, split by the held-out subjects, in the pairs file's order."""
    if (dataset, task) not in TASK_EXPRESSIONS:
        raise SplitError(
            f"No pairs of {dataset!r} for task {task!r}; paired tasks: "
            + ", ".join(f"{d}/{t}" for d, t in TASK_EXPRESSIONS)
            + "."
        )
    held_out = set(TEST_SUBJECTS[dataset, task])
    wanted = set(TASK_EXPRESSIONS[dataset, task])
    pairs = [p for p in read_pairs(dataset, root) if p.expression in wanted]
    return PairSplit([p for p in pairs if p.subject not in held_out], [p for p in pairs if p.subject in held_out])


def task_pairs(task: str, root: str | Path | None = None) -> PairSplit:
    """All pairs of a paired task (``smile`` or ``expression``): JAFFE then RaFD."""
    train: list[ExpressionPair] = []
    test: list[ExpressionPair] = []
    for dataset in ("jaffe", "rafd_subset"):
        part = split_pairs(dataset, task, root)
        train += part.train
        test += part.test
    return PairSplit(train, test)
