"""`python -m benchmarks.run` end to end on a two-face data root built in the test."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from benchmarks import leaderboard
from benchmarks import run as bench


@pytest.fixture
def tiny_root(data_root, tmp_path):
    root = tmp_path / "data"
    hr = root / "celeba_fsrnet" / "celeba_val_1000_HR"
    hr.mkdir(parents=True)
    for p in sorted((data_root / "celeba_fsrnet" / "celeba_val_1000_HR").iterdir())[:2]:
        shutil.copy(p, hr / p.name)
    (root / "lfw").mkdir()
    rows = list(csv.DictReader(open(data_root / "lfw" / "labels.csv")))[:4]
    with open(root / "lfw" / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        (root / "lfw" / r["image"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_root / "lfw" / r["image"], root / "lfw" / r["image"])
    return root


def test_two_face_run_writes_results_and_leaderboard(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bench, "DISTRACTORS", 4)
    monkeypatch.setattr(bench, "LATENCY_FACES", 2)
    results = tmp_path / "results"
    code = bench.main(["--task", "sr-x4", "--data-root", str(tiny_root), "--results", str(results)])
    assert code == 0
    files = sorted(p.name for p in (results / "sr-x4").iterdir())
    assert files == ["bicubic.json", "identity.json", "real.json"]
    r = json.loads((results / "sr-x4" / "bicubic.json").read_text())
    for key in ("task", "model", "n", "metrics", "protocol", "judges", "dataset", "split", "commit", "date",
                "hardware", "seconds", "test_set_fingerprint"):
        assert key in r, key
    assert r["n"] == 2 and r["metrics"]["params"] == 0 and r["metrics"]["latency_ms"] > 0
    assert 15 < r["metrics"]["psnr_y"] < 40 and 0 < r["metrics"]["ssim_y"] < 1
    real = json.loads((results / "sr-x4" / "real.json").read_text())["metrics"]
    assert real["lpips_alex"] == 0 and real["ssim_y"] == pytest.approx(1) and real["id_cosine"] == pytest.approx(1, abs=1e-5)
    with open(results / "leaderboard.csv") as f:
        table = list(csv.DictReader(f))
    assert {row["model"] for row in table} == {"bicubic", "identity", "real"}
    assert "sr-x4" in (results / "leaderboard.md").read_text()
    # a second run reuses the cached outputs and rewrites the same numbers
    assert bench.main(["--task", "sr-x4", "--data-root", str(tiny_root), "--results", str(results)]) == 0
    again = json.loads((results / "sr-x4" / "bicubic.json").read_text())
    assert again["metrics"]["psnr_y"] == r["metrics"]["psnr_y"]


def test_missing_data_root_is_one_clear_line(tmp_path, capsys):
    code = bench.main(["--task", "sr-x4", "--data-root", str(tmp_path / "nowhere"), "--results", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a folder" in err[0]


def test_unknown_model_refused(tmp_path, capsys):
    assert bench.main(["--model", "nope", "--data-root", str(tmp_path), "--results", str(tmp_path / "r")]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_leaderboard_from_result_files(tmp_path):
    for model, v in (("a", 30.0), ("identity", 25.0)):
        leaderboard.write_result({"task": "sr-x2", "model": model, "kind": "model", "n": 3,
                                  "metrics": {"psnr_y": v, "ssim_y": 0.9}}, tmp_path)
    csv_path, md_path = leaderboard.write_leaderboard(tmp_path)
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["model"] for r in rows] == ["a", "identity"] and rows[0]["psnr_y"] == "30.0000"
    assert "*identity* (reference)" in md_path.read_text()
