"""The benchmark's test sets: each task's inputs, ground truth, subjects and labels, built from the
data root and fingerprinted (the caches and results are keyed by the fingerprints)."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from benchmarks import jitter
from benchmarks.tasks import Task
from facegen.data import aligned_crops, degrade, wild
from facegen.data.records import FaceRecord, load_image
from facegen.data.sets import read_celeba_fsrnet
from facegen.data.splits import task_pairs
from facegen.expressions import BASIC_EXPRESSIONS


def progress_bar(**kw: Any) -> tqdm:
    """A progress bar on stderr that does not flood logs: a refresh every 5 s on a terminal,
    every 60 s when stderr is a file."""
    return tqdm(file=sys.stderr, mininterval=5 if sys.stderr.isatty() else 60, leave=False, **kw)


class BenchmarkError(RuntimeError):
    """One entry (task, model) could not be scored; the message says why."""


# ---------------------------------------------------------------------------------------------
# Test sets
# ---------------------------------------------------------------------------------------------


@dataclass
class TestSet:
    task: Task
    inputs: list[np.ndarray]  # uint8 RGB at task.in_size
    targets: list[np.ndarray]  # uint8 RGB at task.out_size: the ground truth
    subjects: list[str]  # identity of each target
    labels: list[str | None]  # target expression (None for SR)
    names: list[str]  # stable item names (dataset:path)
    dataset: str
    split: str
    item_datasets: list[str] = field(default_factory=list)  # source set of each item
    neutral_keys: list[str] | None = None  # paired tasks: the record key of each item's neutral face
    guides: list[np.ndarray] | None = None  # smile: the neutral face at the output size (the SGE guide)
    info: dict[str, Any] = field(default_factory=dict)  # counts and skipped items, recorded in results
    reference_name: str = "ground truth"  # what the targets are (identity is judged against them)
    fid_reference: list[np.ndarray] | None = None  # FID/KID's real images when not the targets (smile-wild)
    fid_reference_name: str = "the ground truth"
    fid_reference_labels: list[str] | None = None  # wild tasks: the expression of each real reference photo
    held_out_identities: tuple[str, ...] = ()  # LFW identities whose photos may not serve as distractors
    # Expression tasks: the photo record each input was cut from, and each target's (paired), so a
    # model on another crop template (benchmarks.frames) is given faces cut by its own template.
    sources: list[FaceRecord] | None = None
    target_sources: list[FaceRecord] | None = None
    fingerprint: str = ""
    targets_fingerprint: str = ""  # the ground truth alone (shared by tasks with the same targets)

    def __post_init__(self) -> None:
        h = hashlib.sha256()
        h.update(f"{self.task.id}|{self.task.in_size}|{self.task.out_size}|{self.task.degradation}".encode())
        for name, x, y in zip(self.names, self.inputs, self.targets):
            h.update(name.encode())
            h.update(hashlib.sha256(x.tobytes()).digest())
            h.update(hashlib.sha256(y.tobytes()).digest())
        for r in self.fid_reference or []:
            h.update(hashlib.sha256(r.tobytes()).digest())
        self.fingerprint = h.hexdigest()[:16]
        t = hashlib.sha256()
        for name, y in zip(self.names, self.targets):
            t.update(name.encode())
            t.update(hashlib.sha256(y.tobytes()).digest())
        self.targets_fingerprint = t.hexdigest()[:16]
        if not self.item_datasets:
            self.item_datasets = [self.dataset] * len(self.names)


def _sr_testset(task: Task, root: Path, limit: int | None) -> TestSet:
    records = read_celeba_fsrnet(root)[:limit]
    targets = [load_image(r, root) for r in progress_bar(iterable=records, desc=f"{task.id}: reading")]
    bad = [r.key for r, t in zip(records, targets) if t.shape != (task.out_size, task.out_size, 3)]
    if bad:
        raise BenchmarkError(f"{task.id}: {len(bad)} test faces are not {task.out_size}x{task.out_size} (e.g. {bad[0]})")
    inputs = [degrade.bicubic_down(t, task.scale) for t in targets]
    names = [r.key for r in records]
    # The FSRNet faces carry no identity labels: each face is its own identity.
    return TestSet(task, inputs, targets, subjects=names, labels=[None] * len(names), names=names,
                   dataset=task.dataset, split=task.split, info={"n_records": len(records)})


def _sr_jitter_testset(task: Task, root: Path, limit: int | None) -> TestSet:
    """The standard SR faces, each ground truth moved by its seeded similarity transform
    (benchmarks.jitter) before the input is made from it by the task's down-sampling."""
    base = _sr_testset(task, root, limit)
    moved = [jitter.apply(t, jitter.draw(i)) for i, t in enumerate(base.targets)]
    targets = [t for t, _ in moved]
    valid = np.array([m.mean() for _, m in moved])
    info = {**base.info, "jitter": jitter.DESCRIPTION,
            "valid_fraction": {"mean": round(float(valid.mean()), 4), "min": round(float(valid.min()), 4)}}
    return TestSet(task, [degrade.bicubic_down(t, task.scale) for t in targets], targets, subjects=base.subjects,
                   labels=base.labels, names=base.names, dataset=task.dataset, split=task.split, info=info)


def _paired_testset(task: Task, root: Path, limit: int | None) -> TestSet:
    """Neutral -> target pairs of the held-out subjects (``task_pairs(task).test``: JAFFE then RaFD),
    both faces aligned with the task's template at the output size (aligned-crop cache); the input
    is the neutral crop, PIL-bicubic down-sampled when the task's input is smaller."""
    pairs = task_pairs(task.id, root).test[:limit]
    if not pairs:
        raise BenchmarkError(f"{task.id}: no test pairs under {root}")
    records = list({r.key: r for p in pairs for r in (p.neutral, p.target)}.values())
    crops = aligned_crops(records, task.out_size, task.template, progress=sys.stderr.isatty())
    row = {k: i for i, k in enumerate(crops.keys)}
    kept = [p for p in pairs if p.neutral.key in row and p.target.key in row]
    if not kept:
        raise BenchmarkError(f"{task.id}: no face found in any test pair")
    neutral = [np.asarray(crops.images[row[p.neutral.key]]) for p in kept]
    targets = [np.asarray(crops.images[row[p.target.key]]) for p in kept]
    inputs = neutral if task.scale == 1 else [degrade.bicubic_down(x, task.scale) for x in neutral]
    per_set: dict[str, int] = {}
    for p in kept:
        per_set[p.neutral.dataset] = per_set.get(p.neutral.dataset, 0) + 1
    per_label: dict[str, int] = {}
    for p in kept:
        per_label[p.expression] = per_label.get(p.expression, 0) + 1
    info = {
        "n_pairs": len(pairs),
        "pairs_per_dataset": per_set,
        "pairs_per_expression": per_label,
        "test_subjects": sorted({f"{p.neutral.dataset}:{p.subject}" for p in kept}),
        "unique_neutral_images": len({p.neutral.key for p in kept}),
        "pairs_without_face": [f"{p.neutral.key}->{p.target.key}" for p in pairs if p not in kept],
        "alignment": f"facegen.faces.align template '{task.template}' at {task.out_size} px (largest YuNet face)",
    }
    return TestSet(
        task, inputs, targets,
        subjects=[f"{p.neutral.dataset}:{p.subject}" for p in kept],
        labels=[p.expression for p in kept],
        names=[f"{p.neutral.key}->{p.target.key}" for p in kept],
        dataset=task.dataset, split=task.split,
        item_datasets=[p.neutral.dataset for p in kept],
        neutral_keys=[p.neutral.key for p in kept],
        guides=neutral if task.scale > 1 else None,
        info=info,
        sources=[p.neutral for p in kept],
        target_sources=[p.target for p in kept],
    )


def _aligned(records: list, task: Task, what: str) -> tuple[list[np.ndarray], list, list[str]]:
    """The records' crops aligned with the task's template at its output size (aligned-crop cache),
    the records kept and the keys of those where no face was found."""
    if not records:
        raise BenchmarkError(f"{task.id}: no {what} under the data root")
    crops = aligned_crops(records, task.out_size, task.template, progress=sys.stderr.isatty())
    row = {k: i for i, k in enumerate(crops.keys)}
    kept = [r for r in records if r.key in row]
    return [np.asarray(crops.images[row[r.key]]) for r in kept], kept, [r.key for r in records if r.key not in row]


def _wild_testset(task: Task, root: Path, limit: int | None) -> TestSet:
    """``smile-wild``: the neutral LFW photos of the held-out identities (facegen.data.wild), aligned
    and degraded as the ``smile`` task does (its template and sizes); no ground-truth smile exists, so
    the targets are the aligned neutral photos themselves (identity is judged against the face the
    input was made from) and FID/KID compare with the real happy photos of the same identities."""
    neutral, kept, missed = _aligned(wild.wild_test_faces("neutral", root)[:limit], task, "neutral test photos")
    happy, happy_kept, happy_missed = _aligned(wild.wild_test_faces("happy", root, per_identity=None), task,
                                               "happy photos of the test identities")
    inputs = [degrade.bicubic_down(x, task.scale) for x in neutral]
    info = {
        "n_photos": len(kept) + len(missed),
        "identities": len({r.subject for r in kept}),
        "photos_without_face": missed,
        "happy_reference_photos": len(happy_kept),
        "happy_photos_without_face": happy_missed,
        "alignment": f"facegen.faces.align template '{task.template}' at {task.out_size} px (the LFW face nearest the "
                     f"photo's centre), as the smile task",
        "test_set_rule": (f"facegen.data.wild.wild_test_faces('neutral'): the first "
                          f"{wild.TEST_FACES_PER_IDENTITY} neutral LFW photos of each of the "
                          f"{len(wild.LFW_TEST_IDENTITIES)} held-out identities (LFW_TEST_IDENTITIES); each output's "
                          f"target label is happy; subjects are LFW identities"),
    }
    return TestSet(task, inputs, neutral, subjects=[r.subject for r in kept], labels=["happy"] * len(kept),
                   names=[r.key for r in kept], dataset=task.dataset, split=task.split, guides=neutral, info=info,
                   reference_name="neutral photo the input was made from",
                   fid_reference=happy,
                   fid_reference_name=f"the {len(happy)} real happy LFW photos of the test identities",
                   fid_reference_labels=["happy"] * len(happy),
                   held_out_identities=wild.LFW_TEST_IDENTITIES)


def _expression_wild_testset(task: Task, root: Path, limit: int | None) -> TestSet:
    """``expression-wild``: each neutral LFW photo of the held-out identities (facegen.data.wild),
    aligned as the ``expression`` task does, asked for each of the six basic expressions; the targets
    are the neutral photos themselves (identity is judged against the face the input was made from)
    and FID/KID compare with the real non-neutral photos of the same identities."""
    neutral, kept, missed = _aligned(wild.wild_test_faces("neutral", root)[:limit], task, "neutral test photos")
    records = [r for e in BASIC_EXPRESSIONS for r in wild.wild_test_faces(e, root, per_identity=None)]
    real, found, real_missed = _aligned(records, task, "non-neutral photos of the test identities")
    per_expression = {e: sum(r.expression == e for r in found) for e in BASIC_EXPRESSIONS}
    items = [(x, r, e) for x, r in zip(neutral, kept) for e in BASIC_EXPRESSIONS]
    info = {
        "n_photos": len(kept) + len(missed),
        "identities": len({r.subject for r in kept}),
        "photos_without_face": missed,
        "expressions": list(BASIC_EXPRESSIONS),
        "reference_photos_per_expression": per_expression,
        "reference_photos_without_face": real_missed,
        "alignment": f"facegen.faces.align template '{task.template}' at {task.out_size} px (the LFW face nearest the "
                     f"photo's centre), as the expression task",
        "test_set_rule": (f"facegen.data.wild.wild_test_faces('neutral'): the first {wild.TEST_FACES_PER_IDENTITY} "
                          f"neutral LFW photos of each of the {len(wild.LFW_TEST_IDENTITIES)} held-out identities "
                          f"(LFW_TEST_IDENTITIES), each asked for each of the {len(BASIC_EXPRESSIONS)} basic "
                          f"expressions (one item per photo and expression); subjects are LFW identities"),
    }
    return TestSet(task, [x for x, _, _ in items], [x for x, _, _ in items], subjects=[r.subject for _, r, _ in items],
                   labels=[e for _, _, e in items], names=[f"{r.key}->{e}" for _, r, e in items],
                   dataset=task.dataset, split=task.split, info=info,
                   reference_name="neutral photo the input was made from",
                   fid_reference=real,
                   fid_reference_name=f"the {len(real)} real non-neutral LFW photos of the test identities",
                   fid_reference_labels=[r.expression for r in found],
                   held_out_identities=wild.LFW_TEST_IDENTITIES,
                   sources=[r for _, r, _ in items])


TESTSETS: dict[str, Callable[[Task, Path, int | None], TestSet]] = {
    "sr-x8": _sr_testset,
    "sr-x4": _sr_testset,
    "sr-x2": _sr_testset,
    "sr-x8-jitter": _sr_jitter_testset,
    "sr-x4-jitter": _sr_jitter_testset,
    "sr-x2-jitter": _sr_jitter_testset,
    "smile": _paired_testset,
    "expression": _paired_testset,
    "smile-wild": _wild_testset,
    "expression-wild": _expression_wild_testset,
}


def build(task: Task, root: Path, limit: int | None = None) -> TestSet:
    """The task's test set: its first ``task.items`` items (all when None), at most ``limit``."""
    caps = [n for n in (limit, task.items) if n is not None]
    if task.id not in TESTSETS:
        raise BenchmarkError(f"{task.id}: no test-set builder")
    return TESTSETS[task.id](task, root, min(caps) if caps else None)
