"""`python -m benchmarks.run`: score every registered model on every task and refresh the leaderboard.

For each task (benchmarks.tasks) it builds the test set from the data root (benchmarks.testsets),
runs the reference rows (`identity`: the input returned unchanged, up-sampled bicubically; `real`:
the ground truth) and every registered model serving the task (benchmarks.rows), computes the
task's metrics (benchmarks.scoring), and writes one JSON per (task, model) under
benchmarks/results/<task>/ atomically, then regenerates leaderboard.csv and leaderboard.md from
all result files.

The work is split into lanes run side by side in worker processes (``--workers``, default: one
per CPU core, at most 2 on a CPU, each with one torch/OpenCV thread): a lane holds whole chains of
tasks that share ground truth (so the judges' caches of the ground truth are computed once), and
chains go to the least loaded lane by the seconds their previous results recorded. The numbers do
not depend on the lanes: every metric is a function of the cached outputs and features.

Model outputs and judge features are cached (FACEGEN_CACHE/bench), keyed by the test set, the
checkpoint hashes and the row, so adding a model does not recompute the others and a killed run
resumes where it stopped.

The `calibration` pseudo-task (part of the default run; also `--calibrate`) scores the identity
encoders on LFW verification (benchmarks.lfw) into benchmarks/results/calibration/, recomputed
only when the pairs, the encoder version or the code changed. The expression judges'
calibration (accuracy on each paired task's real test images) is in that task's `real` result.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import multiprocessing
import os
import platform
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import cv2
import torch

from benchmarks import judges as J
from benchmarks import leaderboard, lfw, protocols, testsets
from benchmarks.rows import RowOutput, reference_rows, run_model
from benchmarks.identity_scores import distractor_embeddings
from benchmarks.scoring import Judges, protocol, reference_calibration, score_row
from benchmarks.tasks import TASKS
from benchmarks.testsets import TestSet
from facegen import deviations, registry
from facegen.data.root import DataRootError, data_root

CALIBRATION = "calibration"  # the pseudo-task of judge calibrations
CALIBRATION_ENCODERS = ("sface", "dlib")
SCHEMA = 4  # 4: given inputs, deviations, task protocol and TAR operating points recorded (3: FID/KID fallback alexnet224)
DEFAULT_ROW_SECONDS = 60.0  # a row's cost estimate for planning when no previous result records one


# ---------------------------------------------------------------------------------------------
# Provenance
# ---------------------------------------------------------------------------------------------


def hardware(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    text = f"{cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"
    if hasattr(os, "getloadavg"):
        text += f", load average {os.getloadavg()[0]:.1f} at start"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def provenance(device: str) -> dict[str, Any]:
    return {
        "commit": leaderboard.git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(device),
        "device": device,
        "versions": {d: _version(d) for d in ("torch", "lpips", "clean-fid", "opencv-python-headless", "facegen")},
    }



# ---------------------------------------------------------------------------------------------
# One task
# ---------------------------------------------------------------------------------------------


def task_specs(task_id: str, model_ids: list[str] | tuple[str, ...] | None = None) -> list[registry.ModelSpec]:
    """The registered models scored on ``task_id`` (those of ``model_ids`` when given): the models
    of its base task; on a protocol built on another task (``base``: the jitter and wild protocols)
    the ablation entries (trained by another entry's recipe) are left out: they answer a question
    of their paper's own protocol, and each adds minutes to a run."""
    task = TASKS[task_id]
    return [s for s in registry.models_for(task.base or task_id) if (model_ids is None or s.id in model_ids)
            and not (task.base and s.recipe not in (None, s.id))]


def run_task(task_id: str, model_ids: list[str] | None, root: Path, device: str, limit: int | None,
             batch_size: int, results_dir: Path) -> list[str]:
    """Score one task; returns the error lines of entries that failed (empty when all succeeded)."""
    task = TASKS[task_id]
    t0 = time.perf_counter()
    ts = testsets.build(task, root, limit)
    judges = Judges(ts, root, device)
    specs = task_specs(task_id, model_ids)
    for s in list(specs):
        why = registry.unavailable(s)
        if why is not None or (s.bench_faces is not None and task.base):
            specs.remove(s)
            if why is not None:
                print(f"skipping {s.id} on {task_id}: {why}", file=sys.stderr)
    # (name, make the outputs, the test set and judges that score them)
    rows: list[tuple[str, Callable[[], RowOutput], TestSet, Judges]] = []
    if model_ids is None or "identity" in model_ids or "real" in model_ids:
        for r in reference_rows(ts):
            if model_ids is None or r.model in model_ids:
                rows.append((r.model, lambda r=r: r, ts, judges))
    rows += [(s.id, lambda s=s: run_model(s, ts, device, batch_size), ts, judges) for s in specs if s.bench_faces is None]
    rows += [(f"{s.id}@paper", lambda s=s: run_model(s, ts, device, batch_size, paper=True), ts, judges)
             for s in specs if s.bench_faces is None and s.paper_given and not task.base]
    for s in (s for s in specs if s.bench_faces is not None):  # a slow reference: the first faces only
        few = testsets.build(task, root, min(limit or s.bench_faces, s.bench_faces))
        rows.append((s.id, lambda s=s, few=few: run_model(s, few, device, batch_size), few, Judges(few, root, device)))
    errors = []
    prov = provenance(device)
    for name, make, rts, rj in rows:
        start = time.perf_counter()
        try:
            row = make()
            scored = score_row(rts, row, rj)
        except Exception as e:  # one failed entry must not hide the others
            errors.append(f"{task_id}/{name}: {type(e).__name__}: {e}")
            print(f"FAILED {task_id}/{name}: {e}", file=sys.stderr)
            continue
        scores = scored.pop("metrics")
        judge_versions = {"fid_kid": rj.fid_backbone.name, "fid_kid_definition": rj.fid_backbone.definition,
                          "identity": f"{rj.encoder.name}: {rj.encoder.version}"}
        if "id_cosine_dlib" in scores:
            judge_versions["identity_independent"] = f"{rj.dlib.name}: {rj.dlib.version}"
        if "expression" in scored:
            judge_versions.update({f"expression_{n}": j.version for n, j in rj.expression_judges.items()})
            detail = scored.pop("expression")
            if row.model == "real":
                # The judges' own accuracy on the real test images: each judge's ceiling.
                scored["calibration"] = {"what": "expression judges on the real test images (targets) of this task",
                                         **detail}
            else:
                scored["expression_detail"] = detail
            if row.model == "identity" and (cal := reference_calibration(rts, rj)) is not None:
                scored["calibration"] = cal  # a wild task has no `real` row: its real reference photos instead
        result = {
            "schema": SCHEMA,
            "task": task_id,
            "model": row.model,
            "variant": row.variant,
            "kind": row.kind,
            "paper": row.paper,
            "n": len(rts.targets),
            "dataset": rts.dataset,
            "split": rts.split,
            "limit": limit if rts is ts else len(rts.targets),
            "test_set_fingerprint": rts.fingerprint,
            "test_set": rts.info,
            "metrics": scores,
            **scored,
            "protocol": protocol(rts, rj),
            "judges": judge_versions,
            "checkpoint": row.checkpoint,
            "notes": row.notes,
            "given": list(row.given),
            "given_label": registry.given_label(row.given),
            "privileged_inputs": registry.is_privileged(row.given),
            "deviations": [d.as_json() for d in deviations.of(row.model)],
            "task_protocol": protocols.card(task_id).as_json(),
            "seconds": round(time.perf_counter() - start, 2),
            **prov,
        }
        leaderboard.write_result(result, results_dir)
        print(f"{task_id}/{row.model}: " + ", ".join(f"{k}={v:.4g}" for k, v in scores.items() if isinstance(v, float)),
              flush=True)
    print(f"{task_id}: done in {time.perf_counter() - t0:.0f} s")
    return errors


def run_calibration(root: Path, results_dir: Path, threads: int = 2) -> list[str]:
    """LFW verification of each identity encoder into ``results_dir/calibration`` (cached; the
    stale encoders are scored together, each image read and detected once)."""
    out = results_dir / CALIBRATION
    t0 = time.perf_counter()
    try:
        results = lfw.calibrate(root, list(CALIBRATION_ENCODERS), out, threads=threads, progress=True)
    except Exception as e:
        print(f"FAILED {CALIBRATION}: {e}", file=sys.stderr)
        return [f"{CALIBRATION}: {type(e).__name__}: {e}"]
    for r, fresh in results:
        print(f"{CALIBRATION}/lfw-{r['encoder']}: 10-fold accuracy {100 * r['accuracy_mean']:.2f} % "
              f"(+- {100 * r['accuracy_std']:.2f}), TAR@FAR1% {100 * r['tar_at_far_1e-2']:.2f} %, "
              f"TAR@FAR0.1% {100 * r['tar_at_far_1e-3']:.2f} %, {r['n_pairs']} pairs "
              + (f"(crops and embeddings {r['seconds']:.0f} s, reading and detection {r['read_detect_seconds']:.0f} s "
                 "shared)" if fresh else "(up to date, not recomputed)"))
    print(f"{CALIBRATION}: done in {time.perf_counter() - t0:.0f} s")
    return []


def _identity_task(task_id: str) -> bool:
    return any(m.key in ("id_cosine", "tar_far1") for m in TASKS[task_id].metrics)


# ---------------------------------------------------------------------------------------------
# Lanes: the run split over worker processes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """Part of a run: rows of one task (``models`` None: every row), the calibration, or (phase 1)
    preparing what several tasks share: the LFW distractors, or the judges' view of a ground truth."""

    task: str
    models: tuple[str, ...] | None = None
    slow: bool = False  # a slow reference's rows, scored on their own few faces
    prepare: bool = False  # only the judges' caches of this task's ground truth (shared by its group)


def plan_units(tasks: list[str], model_ids: list[str] | None) -> list[Unit]:
    """The run's units in task order; a task's slow references (registry ``bench_faces``) are a
    unit of their own, as they are scored on other (fewer) faces."""
    units = []
    for t in tasks:
        if t == CALIBRATION:
            units.append(Unit(CALIBRATION))
            continue
        task = TASKS[t]
        specs = task_specs(t, model_ids)
        slow = tuple(s.id for s in specs if s.bench_faces is not None and not task.base)
        if not slow:
            units.append(Unit(t, None if model_ids is None else tuple(model_ids)))
            continue
        refs = [r for r in leaderboard.REFERENCE_ROWS if model_ids is None or r in model_ids]
        rest = tuple(refs + [s.id for s in specs if s.id not in slow])
        if rest:
            units.append(Unit(t, rest))
        units.append(Unit(t, slow, slow=True))
    return units


def ground_truth_group(unit: Unit) -> tuple:
    """Tasks of one group score the same ground truth (sr-x2/x4/x8 the same 1,000 faces; their
    jitter protocols the same moved faces; smile and expression, both of JAFFE and RaFD, other
    pairs), whose judge caches are made once for all of them."""
    task = TASKS[unit.task]
    return task.dataset, task.split, task.out_size, task.items, unit.slow


def prepare_units(units: list[Unit]) -> list[Unit]:
    """Phase 1 of a run: the LFW distractors (when a task scores identity) and the ground truth of
    each group of two or more tasks, so that phase 2 can run any task in any lane without two
    lanes computing the same caches."""
    work = [u for u in units if u.task != CALIBRATION and not u.prepare]
    groups: dict[tuple, list[Unit]] = {}
    for u in work:
        if not u.slow:
            groups.setdefault(ground_truth_group(u), []).append(u)
    out = [Unit(DISTRACTORS_UNIT)] if any(_identity_task(u.task) for u in work) else []
    if any(any(m.key == "tar_far1_dlib" for m in TASKS[u.task].metrics) for u in work):
        out.append(Unit(DLIB_DISTRACTORS_UNIT))
    return out + [Unit(g[0].task, prepare=True) for g in groups.values() if len({u.task for u in g}) > 1]


DISTRACTORS_UNIT = "lfw-distractors"
DLIB_DISTRACTORS_UNIT = "lfw-distractors-dlib"  # dlib's view of them, for the tasks dlib verifies


def _recorded_seconds(path: Path, default: float) -> float:
    try:
        return float(json.loads(path.read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return default


def estimate(unit: Unit, results_dir: Path) -> float:
    """Seconds the unit took last time, from the results it wrote (DEFAULT_ROW_SECONDS per row
    without one); the calibration costs what its stale encoders took; a preparation one row."""
    if unit.task in (DISTRACTORS_UNIT, DLIB_DISTRACTORS_UNIT) or unit.prepare:
        return DEFAULT_ROW_SECONDS
    if unit.task == CALIBRATION:
        stale = lfw.stale_encoders(list(CALIBRATION_ENCODERS), results_dir / CALIBRATION)
        return sum(_recorded_seconds(results_dir / CALIBRATION / f"lfw-{n}.json", 10 * DEFAULT_ROW_SECONDS)
                   for n in stale)
    task = TASKS[unit.task]
    refs = tuple(r for r in leaderboard.REFERENCE_ROWS if task.ground_truth or r != "real")
    rows = unit.models or refs + tuple(s.id for s in task_specs(unit.task))
    paper = tuple(m for m in rows if m in registry.REGISTRY and registry.REGISTRY[m].paper_given and not task.base)
    return sum(_recorded_seconds(leaderboard.result_path(unit.task, m, results_dir, v), DEFAULT_ROW_SECONDS)
               for m, v in [(m, "") for m in rows] + [(m, "paper") for m in paper])


def plan_lanes(units: list[Unit], n_lanes: int, results_dir: Path) -> list[list[Unit]]:
    """``units`` over at most ``n_lanes`` lanes, longest first to the least loaded lane (a lane
    keeps the run's order). The calibration (it runs dlib in worker processes of its own) stays
    in lane 0."""
    lanes: list[list[Unit]] = [[] for _ in range(max(1, n_lanes))]
    load = [0.0] * len(lanes)
    costed = sorted(((estimate(u, results_dir), i, u) for i, u in enumerate(units)), key=lambda x: -x[0])
    for cost, i, u in costed:
        lane = 0 if u.task == CALIBRATION else min(range(len(lanes)), key=lambda j: load[j])
        lanes[lane].append((i, u))
        load[lane] += cost
    return [[u for _, u in sorted(lane)] for lane in lanes if lane]


def _prepare(task_id: str, root: Path, device: str, limit: int | None) -> None:
    """The judges' caches of a task's ground truth: face detections, FID/KID features and, when the
    task scores identity, embeddings (computed once, read by every task of the group)."""
    task = TASKS[task_id]
    ts = testsets.build(task, root, limit)
    judges = Judges(ts, root, device)
    judges.features("real", ts.targets)
    if _identity_task(task_id):
        judges.embeddings("real", ts.targets)
    if any(m.key == "id_cosine_dlib" for m in task.metrics):
        judges.dlib_embeddings("real", ts.targets)


def run_lane(units: list[Unit], root: Path, device: str, limit: int | None, batch_size: int, results_dir: Path,
             threads: int | None) -> list[str]:
    """Run ``units`` one after the other (in this process); returns the error lines."""
    if threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    errors: list[str] = []
    for u in units:
        try:
            if u.task == CALIBRATION:
                errors += run_calibration(root, results_dir, threads=2)
            elif u.task in (DISTRACTORS_UNIT, DLIB_DISTRACTORS_UNIT):
                distractor_embeddings(root, J.identity_encoder("sface" if u.task == DISTRACTORS_UNIT else "dlib"))
            elif u.prepare:
                _prepare(u.task, root, device, limit)
            else:
                errors += run_task(u.task, None if u.models is None else list(u.models), root, device, limit,
                                   batch_size, results_dir)
        except Exception as e:
            errors.append(f"{u.task}: {type(e).__name__}: {e}")
            print(f"FAILED {u.task}: {e}", file=sys.stderr)
    return errors


def run_phases(phases: list[list[list[Unit]]], root: Path, device: str, limit: int | None, batch_size: int,
               results_dir: Path) -> list[str]:
    """Each phase's lanes at once (lane 0 in this process, the others in spawned worker processes
    that live for the whole run), one phase after the other."""
    n = max(len(lanes) for lanes in phases)
    threads = max(1, (os.cpu_count() or 1) // n) if n > 1 else None
    args = (root, device, limit, batch_size, results_dir, threads)
    errors: list[str] = []
    if n == 1:
        for lanes in phases:
            errors += run_lane(lanes[0], *args)
        return errors
    with concurrent.futures.ProcessPoolExecutor(n - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for lanes in phases:
            futures = [pool.submit(run_lane, lane, *args) for lane in lanes[1:]]
            errors += run_lane(lanes[0], *args)
            for f in futures:
                try:
                    errors += f.result()
                except Exception as e:  # a worker that died (killed, out of memory)
                    errors.append(f"worker: {type(e).__name__}: {e}")
    return errors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", nargs="*", action="extend", choices=sorted(TASKS) + [CALIBRATION],
                   help=f"tasks to run (default: all, and '{CALIBRATION}')")
    p.add_argument("--calibrate", action="store_true", help=f"also run '{CALIBRATION}' (LFW verification of the identity encoders)")
    p.add_argument("--model", nargs="*", action="extend", help="model ids (and/or 'identity', 'real') to run (default: all)")
    p.add_argument("--data-root", help="face data root (default: $FACEGEN_DATA)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--limit", type=int, help="use only the first N test items (smoke runs; recorded in results)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--results", type=Path, default=leaderboard.RESULTS_DIR, help="results folder")
    p.add_argument("--workers", type=int, default=None,
                   help="lanes run side by side in worker processes (default: one per CPU core, at most 2; 1 on cuda)")
    args = p.parse_args(argv)
    try:
        root = data_root(args.data_root, require=())  # each task checks the sets it reads
    except DataRootError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.model:
        known = set(registry.REGISTRY) | set(leaderboard.REFERENCE_ROWS)
        unknown = sorted(set(args.model) - known)
        if unknown:
            print(f"error: unknown model(s) {unknown}; known: {sorted(known)}", file=sys.stderr)
            return 2
    # The default run includes the calibration; choosing tasks or models leaves it to --calibrate.
    tasks = list(args.task) if args.task else list(TASKS) + ([] if args.model else [CALIBRATION])
    if args.calibrate and CALIBRATION not in tasks:
        tasks.append(CALIBRATION)
    units = plan_units(tasks, args.model)
    workers = args.workers or (1 if args.device == "cuda" else min(2, os.cpu_count() or 1))
    named = [(name, plan_lanes(p, workers, args.results))
             for name, p in (("shared ground truth", prepare_units(units)), ("tasks", units)) if p]
    for name, lanes in named:
        for i, lane in enumerate(lanes):
            print(f"{name}, lane {i}: " + ", ".join(
                ("prepare " if u.prepare else "") + u.task + ("" if u.models is None else f" ({', '.join(u.models)})")
                for u in lane))
    t0 = time.perf_counter()
    errors = run_phases([lanes for _, lanes in named], root, args.device, args.limit, args.batch_size, args.results)
    print(f"all tasks done in {time.perf_counter() - t0:.0f} s")
    leaderboard.write_leaderboard(args.results)
    # The model cards' benchmark sections are a separate, explicit step (`python -m benchmarks.cards`),
    # so a run never edits tracked files besides its results and the next run is not marked dirty by it.
    print("model cards: run `python -m benchmarks.cards` to write these results into checkpoints/*/README.md")
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
