"""dlib as the headline identity judge of the expression tasks, and the smile-wild protocol: the
verification numbers against a hand computation, the distractors left out for the test identities,
the task's geometry and rows, and the leaderboard's default columns."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from benchmarks import identity_scores, protocols, rows, scoring, testsets
from benchmarks import run as bench
from benchmarks.tasks import TASKS
from facegen.data.wild import LFW_TEST_IDENTITIES
from facegen.expressions import BASIC_EXPRESSIONS
from facegen.tasks import shape


def _unit(deg: float) -> np.ndarray:
    return np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg))], np.float32)


def test_dlib_verification_matches_a_hand_computation() -> None:
    """Two subjects (A with two items, B with one) and two distractors, in 2-D."""
    ref = np.stack([_unit(0), _unit(10), _unit(90)])  # A, A, B
    out = np.stack([_unit(5), _unit(60), _unit(80)])
    dis = np.stack([_unit(40), _unit(180)])
    m = identity_scores.verification_metrics(out, ref, ["A", "A", "B"], dis, suffix="_dlib")
    genuine = [np.cos(np.radians(d)) for d in (5, 50, 10)]
    assert m["id_cosine_dlib"] == pytest.approx(np.mean(genuine), abs=1e-6)
    # impostors: out0 vs B (85 deg), out1 vs B (30), out2 vs A0 and A1 (80, 70), and every output vs the
    # two distractors (35, 175; 20, 120; 40, 100): 10 impostors, the highest at 20 deg. FAR 1 % of 10
    # impostors admits none: accept cosine > cos 20 deg; out0 (5 deg) and out2 (10 deg) pass, out1 (50) not.
    assert m["tar_far1_dlib"] == pytest.approx(200 / 3) and m["tar_far01_dlib"] == pytest.approx(200 / 3)
    assert m["_thresholds"]["tar_far1_dlib"]["threshold"] == pytest.approx(np.cos(np.radians(20)), abs=1e-6)
    assert m["_thresholds"]["tar_far1_dlib"]["n_impostor"] == 10
    # Rank-1 over A0, A1, B and the distractors: out0 -> A (5 deg), out1 -> the distractor at 40 deg
    # (20 deg; A1 is 50 away, B 30), out2 -> B (10 deg): 2 of 3.
    assert m["rank1_dlib"] == pytest.approx(200 / 3)
    assert m["id_faces_dlib"] == 3 and "id_cosine" not in m


def test_items_without_a_face_are_left_out_of_verification() -> None:
    ref = np.stack([_unit(0), _unit(90)])
    out = np.stack([_unit(0), np.full(2, np.nan, np.float32)])
    m = identity_scores.verification_metrics(out, ref, ["A", "B"], np.stack([_unit(180)]))
    assert m["id_faces"] == 1 and m["id_cosine"] == pytest.approx(1.0) and m["tar_far1"] == 100.0


def test_distractors_of_test_identities_are_left_out() -> None:
    e = np.eye(4, dtype=np.float32)
    subjects = np.array(["Kofi_Annan", "Somebody_Else", "Yao_Ming", "Another_One"])
    kept, dropped = identity_scores.distractors_without(e, subjects, LFW_TEST_IDENTITIES)
    assert dropped == 2 and np.array_equal(kept, e[[1, 3]])


def test_judges_filter_distractors_by_the_test_set(monkeypatch) -> None:
    """The wild test set's held-out identities (and any test subject) never serve as impostors."""
    e = np.eye(3, dtype=np.float32)
    monkeypatch.setattr(scoring, "distractor_embeddings", lambda root, enc: (e, np.array(["Yao_Ming", "X", "jaffe:KA"])))
    img = np.zeros((128, 128, 3), np.uint8)
    ts = testsets.TestSet(TASKS["smile-wild"], [img[:64, :64]], [img], subjects=["jaffe:KA"], labels=["happy"], names=["a"],
                 dataset="d", split="s", held_out_identities=LFW_TEST_IDENTITIES)
    judges = scoring.Judges(ts, Path("."), "cpu")
    judges._encoder = object()
    assert np.array_equal(judges.distractors(), e[[1]])


def test_wild_task_reads_the_smile_geometry_and_has_no_ground_truth_columns() -> None:
    wild, smile = TASKS["smile-wild"], shape("smile")
    assert (wild.in_size, wild.out_size, wild.template) == (smile.in_size, smile.out_size, smile.template)
    keys = [m.key for m in wild.metrics]
    assert not {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "lpips_alex"} & set(keys)
    assert {"expr_acc_fer", "expr_acc_domain", "id_cosine_dlib", "tar_far1_dlib", "id_cosine", "tar_far1",
            "params", "latency_ms"} <= set(keys)
    assert keys.index("tar_far1_dlib") < keys.index("tar_far1")  # dlib first
    assert wild.base == "smile" and not wild.ground_truth
    assert "gallery/probe" in {d.aspect for d in protocols.card("smile-wild").differences}
    for task in ("smile", "expression"):
        keys = [m.key for m in TASKS[task].metrics]
        assert {"id_cosine_dlib", "tar_far1_dlib", "tar_far01_dlib", "rank1_dlib"} <= set(keys)
        assert keys.index("id_cosine_dlib") < keys.index("id_cosine")
    assert all("SFace" in m.title for m in TASKS["smile"].metrics if m.key in ("id_cosine", "tar_far1", "rank1"))
    # the face box's change of light against the input's neutral photo, in the box the smile recipe holds
    assert "light_change" in keys_of("smile-wild") and "light_change" not in keys_of("smile")
    assert scoring.face_box_pixels("celeba", 128) == (27, 27, 104, 102)  # brows to chin, cheek to cheek


def keys_of(task: str) -> list[str]:
    return [m.key for m in TASKS[task].metrics]


def test_wild_rows_are_the_input_and_the_smile_models() -> None:
    img = np.zeros((128, 128, 3), np.uint8)
    ts = testsets.TestSet(TASKS["smile-wild"], [img[:64, :64]], [img], subjects=["a"], labels=["happy"], names=["a"],
                 dataset="d", split="s")
    assert [r.model for r in rows.reference_rows(ts)] == ["identity"]
    units = bench.plan_units(["smile-wild"], None)
    assert units == [bench.Unit("smile-wild")]
    assert bench.Unit(bench.DLIB_DISTRACTORS_UNIT) in bench.prepare_units(units)
    assert bench.Unit(bench.DLIB_DISTRACTORS_UNIT) not in bench.prepare_units(bench.plan_units(["sr-x4"], None))


def test_default_columns_lead_with_dlib_on_the_expression_tasks(tmp_path: Path) -> None:
    view = pytest.importorskip("leaderboard_view")
    keys = list(dict.fromkeys(m.key for t in ("smile", "expression", "smile-wild") for m in TASKS[t].metrics))
    with open(tmp_path / "leaderboard.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["task", "model", "paper", "kind", "given", "n", *keys])
        w.writeheader()
        for task in ("smile", "expression", "smile-wild"):
            w.writerow({"task": task, "model": "m", "paper": "000", "kind": "model", "given": "none", "n": 3,
                        **{k: 1.0 for k in keys if any(m.key == k for m in TASKS[task].metrics)}})
    for task in ("smile", "expression", "smile-wild"):
        shown = view.default_columns(tmp_path, task)
        titles = {m.key: view.metric_title(TASKS[task], m.key) for m in TASKS[task].metrics}
        assert len(shown) + len(view.DEFAULT_ID) <= view.MAX_DEFAULT_COLUMNS
        assert titles["id_cosine_dlib"] in shown and titles["tar_far1_dlib"] in shown
        if titles["id_cosine"] in shown:
            assert shown.index(titles["id_cosine_dlib"]) < shown.index(titles["id_cosine"])
        assert "SFace identity loss in training on this task" in view.legend_markdown(TASKS[task])
    smile_wild = TASKS["smile-wild"]
    assert view.metric_title(smile_wild, "light_change") in view.default_columns(tmp_path, "smile-wild")


def test_lfw_distractors_include_test_identities_that_the_wild_protocol_drops(data_root) -> None:
    """The seeded 1,000 distractors hold photos of the held-out identities: the wild protocol must
    (and does) leave them out."""
    recs = identity_scores.distractor_records(data_root)
    subjects = np.array([r.subject for r in recs])
    held = set(LFW_TEST_IDENTITIES)
    kept, dropped = identity_scores.distractors_without(np.zeros((len(recs), 1)), subjects, held)
    assert dropped == sum(s in held for s in subjects) > 0
    assert len(kept) == len(recs) - dropped


def test_expression_wild_asks_each_neutral_photo_for_each_expression(data_root) -> None:
    task = TASKS["expression-wild"]
    assert task.base == "expression" and not task.ground_truth
    assert (task.in_size, task.out_size, task.template) == (shape("expression").in_size, 128, shape("expression").template)
    assert not {"psnr_y", "lpips_alex"} & {m.key for m in task.metrics}
    ts = testsets.build(task, data_root, 3)
    n = len(BASIC_EXPRESSIONS)
    assert len(ts.inputs) == 3 * n and ts.labels == list(BASIC_EXPRESSIONS) * 3
    assert all(ts.inputs[i] is ts.inputs[i - i % n] for i in range(len(ts.inputs)))  # one photo per group of six
    assert all(t is x for t, x in zip(ts.targets, ts.inputs))  # identity is judged against the input photo
    assert set(ts.subjects) <= set(LFW_TEST_IDENTITIES) and ts.held_out_identities == LFW_TEST_IDENTITIES
    assert ts.fid_reference and sum(ts.info["reference_photos_per_expression"].values()) == len(ts.fid_reference)
    assert len(ts.fid_reference_labels) == len(ts.fid_reference)
    assert {e: ts.fid_reference_labels.count(e) for e in BASIC_EXPRESSIONS} == ts.info["reference_photos_per_expression"]


class _Judge:
    """Calls every face with a bright top-left pixel happy, every other face sad."""

    classes = ("happy", "sad")
    version = "stub"

    def predict_crops(self, crops):
        p = np.array([[1.0, 0.0] if c[0, 0, 0] > 100 else [0.0, 1.0] for c in crops])
        return [self.classes[i] for i in p.argmax(1)], p


def test_wild_calibration_judges_the_real_reference_photos_against_their_labels(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path))
    monkeypatch.setattr(scoring.J, "face_box_crops", lambda images: (np.stack(images), np.ones(len(images), bool)))
    img = np.zeros((128, 128, 3), np.uint8)
    bright = img.copy()
    bright[0, 0] = 255
    refs, labels = [bright, img, img, bright], ["happy", "happy", "sad", "sad"]
    task = TASKS["expression-wild"]
    ts = testsets.TestSet(task, [img], [img], subjects=["A"], labels=["happy"], names=["a"], dataset="lfw_expressions",
                          split="s", fid_reference=refs, fid_reference_labels=labels)
    judges = scoring.Judges(ts, Path("."), "cpu")
    judges._expr = {"fer2013": _Judge()}
    cal = scoring.reference_calibration(ts, judges)
    assert cal["fer2013"]["n"] == 4 and cal["fer2013"]["accuracy"] == pytest.approx(50.0)
    assert cal["fer2013"]["per_class"]["happy"]["accuracy"] == pytest.approx(50.0)
    assert cal["what"].startswith("expression judges on the ground truth, against their own labels")
    plain = testsets.TestSet(task, [img], [img], subjects=["A"], labels=["happy"], names=["a"], dataset="d", split="s")
    assert scoring.reference_calibration(plain, scoring.Judges(plain, Path("."), "cpu")) is None


def test_wild_expression_protocol_scores_the_shipped_methods_not_their_ablations() -> None:
    standard = [s.id for s in bench.task_specs("expression")]
    wild_ids = [s.id for s in bench.task_specs("expression-wild")]
    assert {"exprgan", "exprgan-msd", "lmk-guided"} <= set(wild_ids) < set(standard)
    assert "lmk-guided-no-label" in standard and "lmk-guided-no-label" not in wild_ids
    assert [s.id for s in bench.task_specs("sr-x4-jitter")] == [s.id for s in bench.task_specs("sr-x4")]
