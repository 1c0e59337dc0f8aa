"""`benchmarks.run`'s lanes: how a run is split over worker processes, and that the split does not
change a number."""

from __future__ import annotations

import json

import pytest

from benchmarks import run as bench
from benchmarks.tasks import TASKS
from facegen import registry

SLOW_REFS = tuple(s.id for s in registry.REGISTRY.values() if s.bench_faces is not None)


def _record(results, task, model, seconds):
    (results / task).mkdir(parents=True, exist_ok=True)
    (results / task / f"{model}.json").write_text(json.dumps({"seconds": seconds}))


def test_units_split_slow_references_from_the_rest():
    units = bench.plan_units(["sr-x4", "sr-x4-jitter", bench.CALIBRATION], None)
    x4 = [u for u in units if u.task == "sr-x4"]
    slow_x4 = [s.id for s in registry.models_for("sr-x4") if s.bench_faces is not None]
    if slow_x4:
        assert [u.slow for u in x4] == [False, True] and x4[1].models == tuple(slow_x4)
        assert set(x4[0].models) == {"identity", "real"} | {s.id for s in registry.models_for("sr-x4")} - set(slow_x4)
    else:
        assert [u.models for u in x4] == [None]
    # the jitter protocols never run the slow references: one unit, every row
    assert [u for u in units if u.task == "sr-x4-jitter"] == [bench.Unit("sr-x4-jitter")]
    assert units[-1] == bench.Unit(bench.CALIBRATION)
    # chosen models: only those (and no slow unit without a slow model)
    picked = bench.plan_units(["sr-x4"], ["bicubic", "identity"])
    assert picked == [bench.Unit("sr-x4", ("bicubic", "identity"))]


def test_lanes_keep_shared_ground_truth_together_and_balance_by_recorded_seconds(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.lfw, "stale_encoders", lambda names, out: [])  # calibration up to date: free
    results = tmp_path / "results"
    for t in ("sr-x8", "sr-x4", "sr-x2"):
        for m in ("identity", "real", "bicubic"):
            _record(results, t, m, 100.0)
    for t in ("sr-x8-jitter", "sr-x4-jitter", "sr-x2-jitter"):
        for m in ("identity", "real", "bicubic"):
            _record(results, t, m, 50.0)
    tasks = ["sr-x8", "sr-x8-jitter", "sr-x4", "sr-x4-jitter", "sr-x2", "sr-x2-jitter", bench.CALIBRATION]
    units = bench.plan_units(tasks, ["identity", "real", "bicubic"])
    lanes = bench.plan_lanes(units, 2, results)
    assert len(lanes) == 2
    standard = [u.task for u in lanes[0] if u.task != bench.CALIBRATION]
    assert standard == ["sr-x8", "sr-x4", "sr-x2"]  # the costliest chain, in task order, in one lane
    assert [u.task for u in lanes[1]] == ["sr-x8-jitter", "sr-x4-jitter", "sr-x2-jitter"]
    assert bench.Unit(bench.CALIBRATION) in lanes[0]  # the calibration runs its own dlib workers: lane 0
    # one lane: everything in it, in task order within each chain
    one = bench.plan_lanes(units, 1, results)
    assert len(one) == 1 and sorted(u.task for u in one[0]) == sorted(tasks)
    # nothing recorded: every row costs the default, and the lanes still hold whole chains
    fresh = bench.plan_lanes(units, 2, tmp_path / "empty")
    for lane in fresh:
        chains = {bench._chain(u) for u in lane}
        assert all(sum(bench._chain(u) == c for u in units) == sum(bench._chain(u) == c for u in lane) for c in chains)


def test_every_task_has_a_chain():
    for t in TASKS:
        assert bench._chain(bench.Unit(t)) == (TASKS[t].dataset, bool(TASKS[t].base), False)


@pytest.mark.slow
def test_two_lanes_write_the_same_numbers_as_one(tiny_root, tmp_path, monkeypatch):
    """sr-x4 and its jitter protocol on 2 faces (4 LFW distractors): once in one process, once in two lanes (the
    second in a spawned worker with one torch thread); every metric agrees to 1e-6 (a network's sums
    split over another number of threads round differently, about 1e-8 here)."""
    rows = ["--model", "bicubic", "identity", "real"]
    out = {}
    for workers in (1, 2):
        monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / f"cache{workers}"))
        results = tmp_path / f"results{workers}"
        code = bench.main(["--task", "sr-x4", "sr-x4-jitter", "--data-root", str(tiny_root),
                           "--results", str(results), "--workers", str(workers), *rows])
        assert code == 0
        out[workers] = {(t, m): json.loads((results / t / f"{m}.json").read_text())["metrics"]
                        for t in ("sr-x4", "sr-x4-jitter") for m in ("bicubic", "identity", "real")}
    for key, m in out[1].items():
        two = out[2][key]
        assert set(two) == set(m)
        for k, v in m.items():
            if k != "latency_ms" and v is not None:
                assert two[k] == pytest.approx(v, rel=1e-6, abs=1e-9), (key, k)
