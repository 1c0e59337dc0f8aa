"""The leaderboard's provenance and comparison rules: regeneration, dirty flag, given inputs, protocol
cards, TAR operating points, the recommended model and the app's leaderboard view."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks import cards, leaderboard, protocols, verification
from benchmarks.recommend import recommended_model
from benchmarks.tasks import LPIPS, PSNR_Y, TASKS
from facegen import registry

REPO = Path(__file__).resolve().parent.parent


def test_committed_leaderboard_equals_the_regenerated_one(tmp_path: Path) -> None:
    """`python -m benchmarks.leaderboard` on the committed JSON files reproduces the committed tables."""
    src = leaderboard.RESULTS_DIR
    out = tmp_path / "results"
    for path in src.rglob("*.json"):
        (out / path.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        (out / path.relative_to(src)).write_bytes(path.read_bytes())
    assert leaderboard.main(["--results", str(out)]) == 0
    for name in ("leaderboard.csv", "leaderboard.md"):
        assert (out / name).read_text(encoding="utf-8") == (src / name).read_text(encoding="utf-8"), \
            f"{name} is out of date: run `python -m benchmarks.leaderboard`"


def test_leaderboard_command_refuses_a_missing_folder(tmp_path: Path, capsys) -> None:
    assert leaderboard.main(["--results", str(tmp_path / "nope")]) == 2
    assert "no results folder" in capsys.readouterr().err


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True, capture_output=True)


def test_dirty_flag_covers_untracked_inputs_and_not_results_or_cards(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for rel in ("facegen/a.py", "checkpoints/m/README.md", "checkpoints/m/model.safetensors", "benchmarks/results/x.json"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("v1")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "c")
    clean = leaderboard.git_commit(repo)
    assert len(clean) == 40
    (repo / "benchmarks/results/x.json").write_text("v2")  # the run's own output
    (repo / "checkpoints/m/README.md").write_text("v2")  # the card step's edit
    (repo / "notes.txt").write_text("unrelated")
    assert leaderboard.git_commit(repo) == clean
    (repo / "checkpoints/new").mkdir()
    (repo / "checkpoints/new/model.safetensors").write_text("w")  # an untracked checkpoint
    assert leaderboard.git_commit(repo) == clean + "-dirty"
    (repo / "checkpoints/new/model.safetensors").unlink()
    (repo / "facegen/a.py").write_text("v2")  # tracked code
    assert leaderboard.git_commit(repo) == clean + "-dirty"


def _result(task: str, model: str, kind: str, value: float, given: list[str] | None = None) -> dict:
    r = {"task": task, "model": model, "kind": kind, "paper": None, "n": 4,
         "metrics": {protocols.headline(task): value}}
    if given is not None:
        r["given"] = given
    return r


def test_given_column_and_like_with_like_order(tmp_path: Path) -> None:
    for r in (_result("expression", "lmk-guided", "model", 90.0, ["expression", "landmarks"]),
              _result("expression", "exprgan", "model", 40.0, ["expression"]),
              _result("expression", "exprgan-msd", "model", 50.0, ["expression"]),
              _result("expression", "real", "reference", 95.0, [])):
        leaderboard.write_result(r, tmp_path)
    leaderboard.write_leaderboard(tmp_path)
    lines = (tmp_path / "leaderboard.csv").read_text().splitlines()
    assert lines[0].split(",")[:6] == ["task", "model", "paper", "kind", "given", "n"]
    order = [(line.split(",")[1], line.split(",")[4]) for line in lines[1:]]
    assert order == [("exprgan-msd", "none"), ("exprgan", "none"), ("lmk-guided", "target landmarks"), ("real", "none")]
    md = (tmp_path / "leaderboard.md").read_text()
    assert f"| lmk-guided {leaderboard.PRIVILEGED_MARK} | target landmarks |" in md
    assert "| gallery/probe |" in md  # the task's protocol card beside its table
    assert recommended_model("expression", tmp_path) == "exprgan-msd"  # not the privileged row, not `real`


def test_smile_is_recommended_by_the_photo_protocol(tmp_path: Path) -> None:
    leaderboard.write_result(_result("smile", "p2p-serial", "model", 100.0, []), tmp_path)
    leaderboard.write_result(_result("smile", "p2p-parallel", "model", 91.0, []), tmp_path)
    assert recommended_model("smile", tmp_path) == "p2p-serial"  # no smile-wild results yet: the studio test
    leaderboard.write_result(_result("smile-wild", "p2p-serial", "model", 67.0, []), tmp_path)
    leaderboard.write_result(_result("smile-wild", "p2p-parallel", "model", 80.0, []), tmp_path)
    leaderboard.write_result(_result("smile-wild", "p2p-sge", "model", 81.0, ["guide"]), tmp_path)  # privileged
    leaderboard.write_result(_result("smile-wild", "identity", "reference", 99.0, []), tmp_path)
    assert recommended_model("smile", tmp_path) == "p2p-parallel"
    assert recommended_model("smile-wild", tmp_path) is None  # no model serves the protocol as a task


def test_recommended_model_follows_the_results(tmp_path: Path) -> None:
    assert recommended_model("sr-x4", tmp_path) is None
    leaderboard.write_result(_result("sr-x4", "bicubic", "baseline", 25.0, []), tmp_path)
    leaderboard.write_result(_result("sr-x4", "identity", "reference", 26.0, []), tmp_path)
    assert recommended_model("sr-x4", tmp_path) == "bicubic"
    leaderboard.write_result(_result("sr-x4", "psgan", "model", 27.0, []), tmp_path)
    assert recommended_model("sr-x4", tmp_path) == "psgan"
    with pytest.raises(KeyError, match="unknown task"):
        recommended_model("sr-x3", tmp_path)
    # an ablation entry is never the recommendation, however it scores; nor is a privileged row
    leaderboard.write_result(_result("expression", "lmk-guided", "model", 44.0, ["expression"]), tmp_path)
    leaderboard.write_result(_result("expression", "lmk-guided-no-label", "model", 50.0, ["expression"]), tmp_path)
    leaderboard.write_result({**_result("expression", "lmk-guided", "model", 60.0, ["expression", "landmarks"]),
                              "variant": "paper"}, tmp_path)
    assert recommended_model("expression", tmp_path) == "lmk-guided"


def test_registry_given_inputs() -> None:
    assert registry.given_label(registry.get("p2p-sge").given) == "HR neutral guide"
    assert registry.given_label(registry.get("p2p-serial").given) == "none"  # ignores the guide: not given it
    # lmk-guided's headline protocol is the app's (the label; a template fitted to the input), its
    # paper's adds the ground-truth target's landmarks, a privileged second row
    assert not registry.is_privileged(registry.get("lmk-guided").given)
    assert registry.given_label(registry.get("lmk-guided").paper_given) == "target landmarks"
    assert not registry.is_privileged(registry.get("exprgan").given) and not registry.get("exprgan").paper_given
    assert all(g in registry.GIVEN for s in registry.REGISTRY.values() for g in (*s.given, *s.paper_given))
    assert all(set(s.given) < set(s.paper_given) for s in registry.REGISTRY.values() if s.paper_given)


def test_every_task_has_a_protocol_card() -> None:
    for task in TASKS:
        c = protocols.card(task)
        assert c.headline in {m.key for m in TASKS[task].metrics}
        assert {"test set", "sizes", "degradation", "gallery/probe"} <= {d.aspect for d in c.differences}


def test_far_operating_point_reports_threshold_and_measured_far() -> None:
    genuine = np.array([0.9, 0.8, 0.5, 0.2])
    impostor = np.linspace(0.0, 0.99, 100)  # 100 impostors: FAR 1 % -> threshold = 2nd highest (0.98)
    scores = np.r_[genuine, impostor]
    labels = np.r_[np.ones(4, int), np.zeros(100, int)]
    p = verification.far_operating_point(scores, labels, 0.01)
    assert p["threshold"] == pytest.approx(0.98)
    assert p["far_measured"] == pytest.approx(0.01) and p["tar"] == 0.0
    p = verification.far_operating_point(scores, labels, 0.5)
    assert p["far_measured"] <= 0.5 and p["tar"] == pytest.approx(0.75)
    assert p["tar"] == verification.tar_at_far(scores, labels, 0.5)


def test_view_defaults_to_at_most_eight_columns_and_marks_rows(tmp_path: Path) -> None:
    view = pytest.importorskip("leaderboard_view")
    src = leaderboard.RESULTS_DIR
    for task in TASKS:
        if view.task_rows(src, task).empty:  # a task added since the committed run (the view says so)
            assert list(view.leaderboard_view(src, task).columns) == ["model", "note"]
            continue
        shown = view.default_columns(src, task)
        assert len(shown) + len(view.DEFAULT_ID) <= view.MAX_DEFAULT_COLUMNS
        df = view.leaderboard_view(src, task, columns=["given", *shown])
        assert list(df.columns)[:2] == ["model", "given"] and len(df.columns) <= view.MAX_DEFAULT_COLUMNS
    expr = view.leaderboard_view(src, "expression")
    assert any(m.endswith(leaderboard.PRIVILEGED_MARK) for m in expr["model"])
    for task in TASKS.values():
        legend = view.legend_markdown(task)
        assert all(view.metric_title(task, m.key) in legend for m in task.metrics)
        assert all(m.key in view.METRIC_HELP for m in task.metrics)
    assert "given at test time" in view.models_table().columns


def test_metric_header_is_title_unit_arrow_everywhere() -> None:
    view = pytest.importorskip("leaderboard_view")
    assert PSNR_Y.header == "PSNR (Y) (dB) ↑" and LPIPS.header == "LPIPS (AlexNet) ↓"
    task = TASKS["sr-x4"]
    rows = [{"model": "bicubic", "task": "sr-x4", "n": 3, "metrics": {"psnr_y": 25.0, "lpips_alex": 0.3}}]
    assert "| row | PSNR (Y) (dB) ↑ | LPIPS (AlexNet) ↓ |" in cards.section("sr-x4", "bicubic", rows)
    assert view.metric_title(task, "psnr_y") == PSNR_Y.header and view.metric_title(task, "other") == "other"
