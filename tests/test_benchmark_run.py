"""`python -m benchmarks.run` end to end on a two-face data root built in the test."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from benchmarks import identity_scores, leaderboard, perceptual, scoring, testsets
from benchmarks import rows as bench_rows
from benchmarks import run as bench
from benchmarks.tasks import TASKS
from facegen import registry


def test_two_face_run_writes_results_and_leaderboard(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(scoring, "DISTRACTORS", 4)
    monkeypatch.setattr(bench_rows, "LATENCY_FACES", 2)
    results = tmp_path / "results"
    rows = ["--model", "bicubic", "identity", "real"]  # the harness, whatever else is registered
    code = bench.main(["--task", "sr-x4", "--data-root", str(tiny_root), "--results", str(results), *rows])
    assert code == 0
    files = sorted(p.name for p in (results / "sr-x4").iterdir())
    assert files == ["bicubic.json", "identity.json", "real.json"]
    r = json.loads((results / "sr-x4" / "bicubic.json").read_text())
    for key in ("task", "model", "n", "metrics", "protocol", "judges", "dataset", "split", "commit", "date",
                "hardware", "seconds", "test_set_fingerprint"):
        assert key in r, key
    assert r["n"] == 2 and r["metrics"]["params"] == 0 and r["metrics"]["latency_ms"] > 0
    # PIL bicubic runs outside torch: its MACs are not countable (None), and the counter is named
    assert r["metrics"]["macs_per_face"] is None and "FlopCounterMode" in r["protocol"]["macs"]
    # FID/KID: the backbone's columns, name and exact definition, and the time the computation took
    backbone = perceptual.fid_backbone()
    assert f"fid_{backbone.name}" in r["metrics"] and f"kid_{backbone.name}" in r["metrics"]
    assert r["judges"]["fid_kid"] == backbone.name and r["judges"]["fid_kid_definition"] == backbone.definition
    assert backbone.definition in r["protocol"]["fid_kid"]
    assert 0 < r["timings"]["fid_seconds"] < 60 and 0 < r["timings"]["kid_seconds"] < 60 and r["schema"] == bench.SCHEMA
    assert 15 < r["metrics"]["psnr_y"] < 40 and 0 < r["metrics"]["ssim_y"] < 1
    real = json.loads((results / "sr-x4" / "real.json").read_text())["metrics"]
    assert real["lpips_alex"] == 0 and real["ssim_y"] == pytest.approx(1) and real["id_cosine"] == pytest.approx(1, abs=1e-5)
    # the independent identity judge (dlib) beside SFace: named, on the first faces, 1 on the ground truth
    assert real["id_cosine_dlib"] == pytest.approx(1, abs=1e-5) and real["id_faces_dlib"] == 2
    assert 0 < r["metrics"]["id_cosine_dlib"] < 1 and r["judges"]["identity_independent"].startswith("dlib")
    assert "68 dlib landmarks of the ground truth" in r["protocol"]["identity_dlib"]
    with open(results / "leaderboard.csv") as f:
        table = list(csv.DictReader(f))
    assert {row["model"] for row in table} == {"bicubic", "identity", "real"}
    assert "sr-x4" in (results / "leaderboard.md").read_text()
    # a second run reuses the cached outputs and rewrites the same numbers
    assert bench.main(["--task", "sr-x4", "--data-root", str(tiny_root), "--results", str(results), *rows]) == 0
    again = json.loads((results / "sr-x4" / "bicubic.json").read_text())
    assert again["metrics"]["psnr_y"] == r["metrics"]["psnr_y"]


def _counting_backbone(name: str, calls: list, definition: str = "mean colour of 2x2 cells at 32 px") -> "object":
    """A cheap feature net that records each batch it is given."""
    import torch

    def extract(batch):
        calls.append((name, definition, int(batch.shape[0])))
        return torch.nn.functional.adaptive_avg_pool2d(batch, 2).flatten(1)

    return perceptual.FeatureBackbone(name, 12, extract, 32, definition)


def _judges(ts, root, backbone):
    j = scoring.Judges(ts, root, "cpu")
    j._fid_backbone = backbone
    return j


def test_ground_truth_features_are_computed_once_for_tasks_sharing_it(tiny_root, tmp_path, monkeypatch):
    # sr-x2, sr-x4 and sr-x8 score the same HR faces: their features are extracted once.

    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    calls: list = []
    backbone = _counting_backbone("count", calls)
    sets = [testsets.TESTSETS[t](TASKS[t], tiny_root, None) for t in ("sr-x2", "sr-x4", "sr-x8")]
    assert len({ts.fingerprint for ts in sets}) == 3 and len({ts.targets_fingerprint for ts in sets}) == 1
    feats = [_judges(ts, tiny_root, backbone).features("real", ts.targets) for ts in sets]
    assert len(calls) == 1
    for f in feats[1:]:
        np.testing.assert_array_equal(f, feats[0])
    # each task's outputs differ (other inputs): computed per task; the same outputs twice in a
    # task (the identity row and the bicubic baseline) are computed once
    for ts in sets:
        j = _judges(ts, tiny_root, backbone)
        outs = bench_rows.reference_rows(ts)[0].outputs
        key = "out" + scoring.content_key(outs)
        j.features(key, outs)
        j.features("out" + scoring.content_key([o.copy() for o in outs]), [o.copy() for o in outs])
    assert len(calls) == 1 + len(sets)


def test_feature_cache_key_changes_with_the_backbone(tiny_root, tmp_path, monkeypatch):

    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    ts = testsets.TESTSETS["sr-x4"](TASKS["sr-x4"], tiny_root, None)
    calls: list = []
    a = _counting_backbone("a", calls)
    fa = _judges(ts, tiny_root, a).features("real", ts.targets)
    _judges(ts, tiny_root, a).features("real", ts.targets)
    assert len(calls) == 1  # cached
    b = _counting_backbone("b", calls)
    _judges(ts, tiny_root, b).features("real", ts.targets)
    assert [c[0] for c in calls] == ["a", "b"]  # another name: not the cached features of "a"
    a2 = _counting_backbone("a", calls, definition="another layer")
    fa2 = _judges(ts, tiny_root, a2).features("real", ts.targets)
    assert len(calls) == 3  # same name, other definition: recomputed, never mixed
    np.testing.assert_array_equal(fa, fa2)  # (same network here, so same numbers)
    kinds = {scoring.feature_cache_kind(x) for x in (a, b, a2)}
    assert len(kinds) == 3 and all(k.startswith("feat-") for k in kinds)


def test_lpips_is_cached_by_output_content(tiny_root, tmp_path, monkeypatch):

    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    ts = testsets.TESTSETS["sr-x4"](TASKS["sr-x4"], tiny_root, None)
    outs = bench_rows.reference_rows(ts)[0].outputs
    n = []
    real = perceptual.lpips_distances
    monkeypatch.setattr(perceptual, "lpips_distances", lambda p, t: n.append(1) or real(p, t))
    j = scoring.Judges(ts, tiny_root, "cpu")
    d1 = j.lpips("out" + scoring.content_key(outs), outs)
    d2 = j.lpips("out" + scoring.content_key([o.copy() for o in outs]), [o.copy() for o in outs])
    assert len(n) == 1 and (d1 == d2).all() and (d1 > 0).all()


def test_missing_data_root_is_one_clear_line(tmp_path, capsys):
    code = bench.main(["--task", "sr-x4", "--data-root", str(tmp_path / "nowhere"), "--results", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a folder" in err[0]


def test_unknown_model_refused(tmp_path, capsys):
    assert bench.main(["--model", "nope", "--data-root", str(tmp_path), "--results", str(tmp_path / "r")]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_leaderboard_from_result_files(tmp_path):
    for model, v, kind in (("a", 30.0, "model"), ("identity", 25.0, "reference")):
        leaderboard.write_result({"task": "sr-x2", "model": model, "kind": kind, "n": 3,
                                  "metrics": {"psnr_y": v, "ssim_y": 0.9}}, tmp_path)
    csv_path, md_path = leaderboard.write_leaderboard(tmp_path)
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["model"] for r in rows] == ["a", "identity"] and rows[0]["psnr_y"] == "30.0000"
    assert "*identity* (reference)" in md_path.read_text()



def test_paper_tables_compare_with_their_base_model(tmp_path):
    metrics = {"exprgan": (20.0, 80.0, 30.0, 50.0), "exprgan-msd": (35.5, 90.0, 25.0, 60.0),
               "identity": (0.0, 100.0, 2.0, 100.0), "lmk-guided": (40.0, 100.0, 12.0, 99.0),
               "lmk-guided-no-label": (10.0, 100.0, 14.5, 97.0)}
    for model, (acc, eig, fid, tar) in metrics.items():
        scores = {"expr_acc_domain": acc, "eigenface_acc": eig, "fid_alexnet224": fid, "tar_far1": tar}
        if model.startswith("lmk-guided"):  # Table 7 reads the paper's protocol (target landmarks) only
            leaderboard.write_result({"task": "expression", "model": model, "kind": "model", "n": 2, "variant": "paper",
                                      "given": ["expression", "landmarks"], "metrics": scores}, tmp_path)
            scores = {k: v - 1.0 for k, v in scores.items()}  # the app's protocol: other numbers
        leaderboard.write_result({"task": "expression", "model": model, "kind": "model", "n": 2,
                                  "given": ["expression"], "metrics": scores}, tmp_path)
    assert (tmp_path / "expression" / "lmk-guided@paper.json").is_file()
    md = leaderboard.write_leaderboard(tmp_path)[1].read_text()
    table = md.split("### Paper 001, Table I, measured here")[1].split("###")[0]
    msd = next(line for line in table.splitlines() if line.startswith("| exprgan-msd |"))
    assert "35.5000 (+15.50) | 97.0" in msd and "90.0000 (+10.00) | 100 (10 eigenfaces)" in msd
    assert "25.0000 (-5.00) | 79.1" in msd and msd.endswith("60.0000 (+10.00) |")
    assert "| identity" not in table and "lmk-guided" not in table
    table7 = md.split("### Paper 004, Table 7, measured here")[1].split("##")[0]
    rows = [line for line in table7.splitlines() if line.startswith("| lmk-guided")]
    # The paper's row order (ablations first); FID has a paper column, the other two do not.
    assert rows == ["| lmk-guided-no-label | 14.5000 (+2.50) | 69.48 | 10.0000 (-30.00) | 97.0000 (-2.00) |",
                    "| lmk-guided | 12.0000 | 67.69 | 40.0000 | 99.0000 |"]
    leaderboard.result_path("expression", "exprgan", tmp_path).unlink()
    md = leaderboard.write_leaderboard(tmp_path)[1].read_text()
    assert "Table I" not in md and "Table 7" in md


def test_paper_000_table_reports_the_measured_order(tmp_path):
    psnr = {"p2p-bilinear": 20.5, "p2p-two-step": 19.0, "p2p-serial": 21.0, "p2p-parallel": 20.0, "p2p-sge": 19.5}
    for model, v in psnr.items():
        leaderboard.write_result({"task": "smile", "model": model, "kind": "model", "n": 2,
                                  "metrics": {"psnr_y": v, "ssim_y": 0.7, "expr_acc_fer": 50.0,
                                              "tar_far1_dlib": 90.0}}, tmp_path)
    md = leaderboard.write_leaderboard(tmp_path)[1].read_text()
    table = md.split("### Paper 000, Table II, measured here")[1].split("###")[0]
    assert "| p2p-serial | 21.0000 (+1.50) | 24.39 / 26.17 | 0.7000 (+0.00) | 0.820 / 0.858 |" in table
    assert ("the paper p2p-bilinear < p2p-two-step < p2p-serial < p2p-parallel < p2p-sge; "
            "measured here p2p-two-step < p2p-sge < p2p-parallel < p2p-bilinear < p2p-serial.") in table
    assert "Residual outputs" not in md  # drawn only once the ablation has a row beside its base
    leaderboard.write_result({"task": "smile", "model": "p2p-parallel-no-residual", "kind": "model", "n": 2,
                              "metrics": {"psnr_y": 19.0, "expr_acc_fer": 40.0}}, tmp_path)
    md = leaderboard.write_leaderboard(tmp_path)[1].read_text()
    ablation = md.split("### Residual outputs (a departure from paper 000), measured here")[1].split("##")[0]
    assert "| p2p-parallel-no-residual | 19.0000 (-1.00) |  | 40.0000 (-10.00) |  |  |" in ablation


# ---------------------------------------------------------------------------------------------
# Paired tasks (smile, expression)


def _copy_rows(src, dst, name, keep):
    rows = list(csv.DictReader(open(src / name)))
    kept = [r for r in rows if keep(r)]
    with open(dst / name, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept)
    return kept


@pytest.fixture
def paired_root(tiny_root, data_root):
    """JAFFE and RaFD reduced to one held-out and one training subject each (+ the tiny LFW)."""
    for folder, subjects in (("jaffe", {"KR", "KA"}), ("rafd_subset", {"04", "01"})):
        src, dst = data_root / folder, tiny_root / folder
        dst.mkdir()
        rows = _copy_rows(src, dst, "labels.csv", lambda r: r["subject"] in subjects)
        _copy_rows(src, dst, "pairs_neutral_to_expression.csv", lambda r: r["subject"] in subjects)
        for r in rows:
            (dst / r["image"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / r["image"], dst / r["image"])
    return tiny_root


@pytest.mark.slow
def test_smile_run_on_a_temporary_root(paired_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(identity_scores, "DISTRACTORS", 4)
    results = tmp_path / "results"
    assert bench.main(["--task", "smile", "--data-root", str(paired_root), "--results", str(results)]) == 0
    models = [f"{spec.id}.json" for spec in registry.models_for("smile")]
    assert sorted(p.name for p in (results / "smile").iterdir()) == sorted(["identity.json", "real.json", *models])
    real = json.loads((results / "smile" / "real.json").read_text())
    ident = json.loads((results / "smile" / "identity.json").read_text())
    # only the held-out subjects (KR of JAFFE: 6 neutral->happy pairs; 04 of RaFD: 1 pair)
    assert real["n"] == 7 and real["test_set"]["pairs_per_dataset"] == {"jaffe": 6, "rafd_subset": 1}
    assert real["test_set"]["test_subjects"] == ["jaffe:KR", "rafd_subset:04"]
    for r in (real, ident):
        for key in ("expr_acc_fer", "expr_acc_domain", "id_cosine", "tar_far1", "rank1", "psnr_y", "lpips_alex",
                    "id_cosine_dlib", "tar_far1_dlib", "tar_far01_dlib", "rank1_dlib"):
            assert key in r["metrics"], key
        assert {"expression_fer2013", "expression_domain", "identity", "fid_kid"} <= set(r["judges"])
        assert "expression" in r["protocol"] and "test_set" in r["protocol"]
    cal = real["calibration"]
    assert cal["fer2013"]["n"] == 7 and set(cal["fer2013"]["per_dataset"]) == {"jaffe", "rafd_subset"}
    assert cal["domain"]["per_class"]["happy"]["n"] == 7
    assert real["metrics"]["expr_acc_fer"] == pytest.approx(cal["fer2013"]["accuracy"])
    assert real["metrics"]["rank1"] == 100 and real["metrics"]["id_cosine"] == pytest.approx(1, abs=1e-5)
    assert real["metrics"]["rank1_dlib"] == 100 and real["metrics"]["id_cosine_dlib"] == pytest.approx(1, abs=1e-5)
    assert {"tar_far1_dlib", "tar_far1"} <= set(real["identity_thresholds"]) and "identity_dlib" in real["protocol"]
    # the input is the neutral face: a happy judge should mostly disagree
    assert ident["metrics"]["expr_acc_fer"] < real["metrics"]["expr_acc_fer"]
    assert "expression_detail" in ident and ident["metrics"]["psnr_y"] > 10
    assert "smile" in (results / "leaderboard.md").read_text()


def test_paired_test_sets_are_held_out_and_stable(data_root, tmp_path, monkeypatch):
    from facegen.data.splits import TEST_SUBJECTS, task_pairs

    for task_id, n in (("smile", 34), ("expression", 182)):
        task = TASKS[task_id]
        ts = testsets.TESTSETS[task_id](task, data_root, None)
        assert len(ts.targets) == n and ts.info["pairs_without_face"] == []
        held = {f"{d}:{s}" for (d, t), subs in TEST_SUBJECTS.items() if t == task_id for s in subs}
        train = {f"{p.neutral.dataset}:{p.subject}" for p in task_pairs(task_id, data_root).train}
        assert set(ts.subjects) == held and not set(ts.subjects) & train
        assert ts.inputs[0].shape == (task.in_size, task.in_size, 3) and ts.targets[0].shape == (128, 128, 3)
        again = testsets.TESTSETS[task_id](task, data_root, None)
        assert again.fingerprint == ts.fingerprint and again.names == ts.names
        if task_id == "expression":
            assert {"happy", "sad", "surprise", "fear", "disgust", "angry"} == set(ts.labels)
            imgs, ids = scoring.eigenface_gallery(ts)
            assert len(imgs) == 19 and set(ids) == held


def test_item_conditions_batch_landmarks_and_labels(monkeypatch):
    import numpy as np
    import torch

    task = TASKS["expression"]
    imgs = [np.full((128, 128, 3), i, np.uint8) for i in range(3)]
    ts = testsets.TestSet(task, imgs, imgs, subjects=["a", "b", "c"], labels=["happy", "sad", "happy"],
                       names=["x", "y", "z"], dataset="d", split="s", neutral_keys=["x", "y", "z"])
    lm = np.random.default_rng(0).random((3, 68, 2)).astype(np.float32)
    lm[1] = np.nan  # no landmarks found on this target
    monkeypatch.setattr(bench_rows, "target_landmarks", lambda _ts: lm)
    conds = bench_rows.item_conditions(ts, ("expression", "landmarks"))  # lmk-guided's registry `given`
    assert [c["expression"] for c in conds] == ["happy", "sad", "happy"]
    assert "landmarks" not in conds[1] and np.array_equal(conds[2]["landmarks"], lm[2])
    assert bench_rows.group_key(conds[0]) == bench_rows.group_key(conds[2]) != bench_rows.group_key(conds[1])
    kw = bench_rows.batch_conditions([conds[0], conds[2]], "cpu")
    assert kw["expression"] == "happy" and kw["landmarks"].shape == (2, 68, 2) and kw["landmarks"].dtype == torch.float32
    # a model without these keywords gets none; a smile guide becomes a float NCHW tensor
    assert bench_rows.item_conditions(ts, set()) == [{}, {}, {}]
    ts.guides = imgs
    g = bench_rows.batch_conditions(bench_rows.item_conditions(ts, {"guide"})[:2], "cpu")["guide"]
    assert g.shape == (2, 3, 128, 128) and float(g[1].max()) == pytest.approx(1 / 255)


def test_leaderboard_shows_rounding_level_negatives_as_zero():
    assert leaderboard._fmt(-1e-14) == "0.0000"
    assert leaderboard._fmt(-0.0004) == "-0.0004" and leaderboard._fmt(None) == ""
