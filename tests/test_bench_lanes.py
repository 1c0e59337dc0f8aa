"""`benchmarks.run`'s lanes: how a run is split over worker processes, and that the split does not
change a number."""

from __future__ import annotations

import json

import pytest

from benchmarks import run as bench
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


def test_shared_ground_truth_and_distractors_are_prepared_once():
    units = bench.plan_units(["sr-x8", "sr-x8-jitter", "sr-x4", "sr-x4-jitter", "smile", bench.CALIBRATION], None)
    prep = bench.prepare_units(units)
    # the distractors (SFace's, and dlib's for smile, which dlib verifies), then one preparation per
    # group of tasks that share ground truth (smile is alone)
    both = [bench.Unit(bench.DISTRACTORS_UNIT), bench.Unit(bench.DLIB_DISTRACTORS_UNIT)]
    assert prep == both + [bench.Unit("sr-x8", prepare=True), bench.Unit("sr-x8-jitter", prepare=True)]
    assert bench.prepare_units(bench.plan_units(["smile"], None)) == both
    # smile and expression read the same datasets but score other pairs: nothing shared to prepare
    assert bench.prepare_units(bench.plan_units(["smile", "expression"], None)) == both
    # the SR tasks need no dlib distractors (dlib gives only a mean cosine there)
    assert bench.prepare_units(bench.plan_units(["sr-x4"], None)) == [bench.Unit(bench.DISTRACTORS_UNIT)]
    # the jitter protocols score the first JITTER_FACES faces: another ground truth than sr-x8's
    assert bench.ground_truth_group(bench.Unit("sr-x8-jitter")) != bench.ground_truth_group(bench.Unit("sr-x8"))
    assert bench.ground_truth_group(bench.Unit("sr-x4-jitter")) == bench.ground_truth_group(bench.Unit("sr-x8-jitter"))


def test_lanes_balance_by_recorded_seconds(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.lfw, "stale_encoders", lambda names, out: ["dlib"])
    results = tmp_path / "results"
    seconds = {"sr-x8": 300.0, "sr-x4": 200.0, "sr-x2": 100.0, "sr-x8-jitter": 120.0}
    for t, sec in seconds.items():
        for m in ("identity", "real", "bicubic"):
            _record(results, t, m, sec)
    _record(results, bench.CALIBRATION, "lfw-dlib", 50.0)
    tasks = [*seconds, bench.CALIBRATION]
    units = bench.plan_units(tasks, ["identity", "real", "bicubic"])
    assert bench.estimate(units[0], results) == 900.0 and bench.estimate(units[-1], results) == 50.0
    lanes = bench.plan_lanes(units, 2, results)
    loads = [sum(bench.estimate(u, results) for u in lane) for lane in lanes]
    # longest first to the least loaded lane: 900 | 600, 360 to the second, 300 to the first; the
    # calibration (50) to lane 0 whatever the loads
    assert [[u.task for u in lane] for lane in lanes] == [["sr-x8", "sr-x2", bench.CALIBRATION], ["sr-x4", "sr-x8-jitter"]]
    assert loads == [1250.0, 960.0]
    # a lane keeps the run's order; one lane holds everything
    one = bench.plan_lanes(units, 1, results)
    assert one == [units]
    # the calibration (its own dlib workers) is always in lane 0
    assert all(bench.Unit(bench.CALIBRATION) not in lane for lane in bench.plan_lanes(units, 3, results)[1:])


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
