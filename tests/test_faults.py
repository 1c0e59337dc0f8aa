"""Faults: `benchmarks.run` and `facegen.train` killed (SIGKILL) at random moments and mid-write.

(a) The benchmark on a two-face data root: after every kill, each result file that was complete
before is still complete (byte-identical or a complete newer version), no half-written file is
visible as a result, leaderboard.csv parses; a final run completes and reuses the cache.
(b) Training on the synthetic sets of tests/test_train_cli.py: killed while it writes a checkpoint
(its temp folder exists) and at random moments, then `--resume`d to the end: every checkpoint
left is complete and readable, and the final weights equal those of an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from facegen import checkpoint
from facegen.models.smile import SmileGenerator
from facegen.train import state as ckpt

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
SEED = 8
RESULT_KEYS = ("task", "model", "n", "metrics", "commit", "date")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def _kill_after(cmd: list[str], env: dict, delay: float, log: Path) -> tuple[bool, float]:
    """Run ``cmd``; SIGKILL it after ``delay`` seconds. Returns (killed, seconds it ran)."""
    t0 = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=delay)
            return False, time.monotonic() - t0
        except subprocess.TimeoutExpired:
            _kill(proc)
            return True, time.monotonic() - t0


# ---------------------------------------------------------------------------------------------
# (a) benchmarks.run
# ---------------------------------------------------------------------------------------------


def _results_snapshot(results: Path) -> dict[str, bytes]:
    return {str(p.relative_to(results)): p.read_bytes() for p in sorted(results.rglob("*")) if p.is_file()}


def _check_results(results: Path, before: dict[str, bytes]) -> None:
    """Every result complete before is complete now; nothing half-written is visible as a result."""
    for rel, old in before.items():
        if not rel.endswith(".json") or Path(rel).name.startswith("."):
            continue
        path = results / rel
        assert path.is_file(), f"{rel} disappeared"
        new = path.read_bytes()
        if new != old:  # a complete newer version: the same row, parsed whole
            r = json.loads(new)
            assert all(k in r for k in RESULT_KEYS) and r["model"] == json.loads(old)["model"], rel
    for p in results.rglob("*"):
        if not p.is_file():
            continue
        if p.name.startswith("."):  # a temp file a kill left behind: never named like a result
            assert not p.name.endswith((".json", ".csv", ".md")), p
            continue
        if p.suffix == ".json":
            r = json.loads(p.read_text())
            assert all(k in r for k in RESULT_KEYS), p
    table = results / "leaderboard.csv"
    if table.exists():
        with open(table, newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows and all(r["task"] and r["model"] for r in rows)


@pytest.mark.slow
def test_benchmark_run_survives_sigkill(tiny_root, tmp_path):
    results, cache = tmp_path / "results", tmp_path / "cache"
    env = {**os.environ, "FACEGEN_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "benchmarks.run", "--task", "sr-x4", "--model", "bicubic", "identity", "real",
           "--data-root", str(tiny_root), "--results", str(results), "--device", "cpu"]
    log = tmp_path / "run.log"

    killed, first = _kill_after(cmd, env, 600, log)
    assert not killed and (results / "sr-x4" / "bicubic.json").is_file(), log.read_text()[-2000:]
    outputs = {p: p.stat().st_mtime_ns for p in (cache / "bench" / "sr-x4").glob("bicubic-*.npz")}
    assert outputs

    rng = random.Random(SEED)
    kills = 0
    for _ in range(4):
        before = _results_snapshot(results)
        killed, _ = _kill_after(cmd, env, rng.uniform(0.5, first), log)
        kills += killed
        _check_results(results, before)
    assert kills >= 2  # most moments land inside a run

    before = _results_snapshot(results)
    killed, last = _kill_after(cmd, env, 600, log)
    assert not killed
    _check_results(results, before)
    assert sorted(p.name for p in (results / "sr-x4").glob("*.json")) == ["bicubic.json", "identity.json", "real.json"]
    # The model's outputs came from the cache written by the first run (not recomputed)...
    assert {p: p.stat().st_mtime_ns for p in outputs} == outputs
    # ...and the numbers are the same.
    a = json.loads(before["sr-x4/bicubic.json"])["metrics"]
    b = json.loads((results / "sr-x4" / "bicubic.json").read_text())["metrics"]
    assert {k: v for k, v in a.items() if k != "latency_ms"} == {k: v for k, v in b.items() if k != "latency_ms"}


# ---------------------------------------------------------------------------------------------
# (b) training
# ---------------------------------------------------------------------------------------------

# facegen.train's CLI on the synthetic sets of tests/test_train_cli.py (the `synthetic` fixture's
# replacements, applied in the child process before main()).
TRAIN = """
import sys
sys.path[:0] = [{repo!r}, {tests!r}]
import test_train_cli as t
from facegen.train import expression, expression_data, smile_data, sr_recipe
smile_data.datasets = t._smile_sets
expression_data.datasets = t._expression_sets
expression.vgg16_extractor = t._tiny_vgg
sr_recipe.training_records = lambda root: (list(range(8)), list(range(2)))
sr_recipe.aligned_crops = (lambda records, size, template, cache_root=None, progress=True:
                           t._SRCrops(t._faces(len(records), size, 5)))
from facegen.train.__main__ import main
sys.exit(main(sys.argv[1:]))
"""
STEPS = 24


def _train_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", TRAIN.format(repo=str(REPO), tests=str(TESTS)), "--model", "p2p-sge",
            "--preset", "tiny", "--batch-size", "2", "--out", str(out), "--checkpoint-every", "1", "--no-progress",
            "--threads", "1", "--steps", str(STEPS), "--val-every", "0", *extra]


def _kill_mid_checkpoint(cmd: list[str], root: Path, min_step: int, log: Path, timeout: float = 300) -> int | None:
    """Run ``cmd`` and SIGKILL it as soon as a checkpoint temp folder of step >= ``min_step`` exists.
    Returns that step, or None when the run ended first."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    names = os.listdir(root)
                except FileNotFoundError:
                    names = []
                for n in names:
                    if n.startswith(".tmp-step-") and int(n[-8:]) >= min_step:
                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait(timeout=60)
                        return int(n[-8:])
            return None
        finally:
            _kill(proc)


def _check_checkpoints(root: Path) -> list[int]:
    steps = ckpt.complete_steps(root)
    for s in steps:  # every folder that looks complete reads back (hash checked)
        assert ckpt.read(ckpt.step_dir(root, s))["step"] == s
    return steps


@pytest.mark.slow
def test_training_killed_mid_checkpoint_resumes_exactly(tmp_path):
    log = tmp_path / "train.log"
    full, broken = tmp_path / "full", tmp_path / "broken"
    assert subprocess.run(_train_cmd(full), cwd=REPO, capture_output=True, timeout=600).returncode == 0

    root = broken / "checkpoints"
    caught = []
    # Killed twice while a checkpoint is being written (its temp folder exists)...
    for min_step in (3, 8):
        step = _kill_mid_checkpoint(_train_cmd(broken, "--resume"), root, min_step, log)
        assert step is not None, log.read_text()[-2000:]
        caught.append(step)
        steps = _check_checkpoints(root)
        assert steps and max(steps) <= step  # (== only when the rename landed before the signal)
    # ...and at random moments (seeded).
    rng = random.Random(SEED)
    for _ in range(2):
        _kill_after(_train_cmd(broken, "--resume"), dict(os.environ), rng.uniform(2.0, 15.0), log)
        _check_checkpoints(root)
    assert subprocess.run(_train_cmd(broken, "--resume"), cwd=REPO, capture_output=True, timeout=600).returncode == 0
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-step-")]  # partials cleaned on resume
    a = checkpoint.load(full / "export", SmileGenerator).state_dict()
    b = checkpoint.load(broken / "export", SmileGenerator).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
