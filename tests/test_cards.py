"""Model cards' benchmark sections (benchmarks.cards)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import cards


def _result(task: str, model: str, psnr: float, **kw) -> dict:
    return {"task": task, "model": model, "n": 1000, "dataset": "celeba_fsrnet", "commit": "abc123",
            "date": "2026-01-02T03:04:05", "hardware": "cpu", "metrics": {"psnr_y": psnr, "lpips_alex": 0.25, **kw}}


def test_section_lists_the_model_then_its_comparisons() -> None:
    results = [_result("sr-x4", "bicubic", 27.5), _result("sr-x4", "stackedgan", 29.0),
               _result("sr-x4", "real", None), _result("sr-x8", "stackedgan", 25.0)]
    text = cards.section("sr-x4", "stackedgan", results)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| row")]
    assert [r.split(" | ")[0] for r in rows] == ["| stackedgan", "| *bicubic*", "| *real*"]
    assert "29.0000" in rows[0] and "27.5000" in rows[1] and "25.0000" not in text
    assert text.startswith(cards.START) and text.endswith(cards.END)
    assert "n = 1000" in text and "commit abc123" in text
    assert cards.section("sr-x2", "stackedgan", results) is None


def test_section_adds_the_protocols_built_on_the_task() -> None:
    results = [_result("sr-x4", "bicubic", 27.5), _result("sr-x4", "stackedgan", 29.0),
               _result("sr-x4-jitter", "stackedgan", 28.5), _result("sr-x4-jitter", "bicubic", 26.0),
               _result("sr-x8-jitter", "stackedgan", 24.0)]
    text = cards.section("sr-x4", "stackedgan", results)
    assert text.count("| row") == 2 and "`sr-x4-jitter`" in text and "28.5000" in text and "26.0000" in text
    assert "24.0000" not in text and text.index("`sr-x4`") < text.index("`sr-x4-jitter`")
    assert cards.section("sr-x4-jitter", "stackedgan", results[2:]).count("| row") == 1


def test_replace_section_is_idempotent_and_keeps_the_rest() -> None:
    card = "# m\n\nbody\n"
    a = cards.replace_section(card, f"{cards.START}\nold\n{cards.END}")
    b = cards.replace_section(a + "\nafter\n", f"{cards.START}\nnew\n{cards.END}")
    assert a.startswith(card.rstrip("\n")) and "old" in a
    assert "old" not in b and "new" in b and b.endswith("after\n") and b.count(cards.START) == 1


def test_update_model_cards_writes_only_registered_checkpoints(tmp_path: Path, monkeypatch) -> None:
    results, ckpts = tmp_path / "results", tmp_path / "checkpoints"
    (results / "sr-x4").mkdir(parents=True)
    for r in (_result("sr-x4", "bicubic", 27.5), _result("sr-x4", "stackedgan", 29.0)):
        (results / "sr-x4" / f"{r['model']}.json").write_text(json.dumps(r))
    (ckpts / "stackedgan-x4").mkdir(parents=True)
    (ckpts / "stackedgan-x4" / "README.md").write_text("# stackedgan\n")
    changed = cards.update_model_cards(results, ckpts)
    assert changed == [ckpts / "stackedgan-x4" / "README.md"]
    text = changed[0].read_text()
    assert "| stackedgan | 29.0000 | 0.2500 |" in text
    assert cards.update_model_cards(results, ckpts) == []  # nothing new: nothing rewritten


def test_cards_carry_the_structured_deviations(tmp_path: Path) -> None:
    results, ckpts = tmp_path / "results", tmp_path / "checkpoints"
    (results / "sr-x4").mkdir(parents=True)
    r = _result("sr-x4", "stackedgan", 29.0)
    (results / "sr-x4" / "stackedgan.json").write_text(json.dumps(r))
    (ckpts / "stackedgan-x4").mkdir(parents=True)
    (ckpts / "stackedgan-x4" / "README.md").write_text("# stackedgan\n")
    cards.update_model_cards(results, ckpts)
    text = (ckpts / "stackedgan-x4" / "README.md").read_text()
    assert text.count(cards.DEV_START) == 1 and "ReLU after every 1x1 convolution" in text
    cards.update_model_cards(results, ckpts)
    assert (ckpts / "stackedgan-x4" / "README.md").read_text() == text  # idempotent
