"""Deviations as data: every recipe field in which a shipped model differs from its paper preset is declared."""

from __future__ import annotations

import dataclasses

import pytest

from facegen import deviations as D
from facegen import registry
from facegen.train import recipes

SHIPPED_MODELS = [s.id for s in registry.REGISTRY.values() if s.family != "baseline"]


def _fields(prefix: str, obj) -> dict[str, object]:
    if dataclasses.is_dataclass(obj):
        items = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    else:
        items = {k: v for k, v in vars(obj).items()
                 if not k.startswith("_") and isinstance(v, (int, float, str, bool, tuple, type(None)))}
    return {f"{prefix}.{k}": v for k, v in items.items()}


def recipe_fields(recipe) -> dict[str, object]:
    return {**_fields("model", recipe.model_config), **_fields("objective", recipe.objective),
            **_fields("train", recipe.train), "recipe.degradation": recipe.degradation, "recipe.augment": recipe.augment,
            "recipe.zoom_out": recipe.zoom_out, "recipe.studio_faces": recipe.studio_faces}


def undeclared(model_id: str, task: str) -> dict[str, tuple[object, object]]:
    """Fields where the shipped recipe differs from the paper preset and no deviation names them."""
    train_id, preset, _ = D.SHIPPED[model_id]
    shipped = recipe_fields(recipes.build(train_id, preset, task, **D.shipped_options(model_id, task)))
    paper = recipe_fields(recipes.build(train_id, D.PAPER_PRESET[preset], task))
    declared = {f for d in D.of(model_id) for f in d.fields}
    ignored = {"train.seed"}
    return {k: (paper.get(k), shipped.get(k)) for k in set(paper) | set(shipped)
            if paper.get(k) != shipped.get(k) and k not in declared and k not in ignored}


@pytest.mark.parametrize("model_id", SHIPPED_MODELS)
def test_every_recipe_difference_from_the_paper_is_declared(model_id: str) -> None:
    assert model_id in D.SHIPPED and model_id in D.DEVIATIONS, f"{model_id} has no deviations entry"
    for task in registry.get(model_id).tasks:
        assert undeclared(model_id, task) == {}, f"{model_id} on {task}: undeclared differences from the paper"


def test_a_new_recipe_option_without_an_entry_fails(monkeypatch) -> None:
    # psgan's extra L1 term is declared; drop that entry and the check must name the field.
    kept = tuple(d for d in D.DEVIATIONS["psgan"] if "objective.l1_weight" not in d.fields)
    monkeypatch.setitem(D.DEVIATIONS, "psgan", kept)
    assert "objective.l1_weight" in undeclared("psgan", "sr-x4")


def test_a_fine_tune_without_its_entry_fails(monkeypatch) -> None:
    # stackedgan's x4 checkpoint is fine-tuned with the identity loss: drop that entry and the check names it.
    kept = tuple(d for d in D.DEVIATIONS["stackedgan"] if "objective.identity_weight" not in d.fields)
    monkeypatch.setitem(D.DEVIATIONS, "stackedgan", kept)
    assert "objective.identity_weight" in undeclared("stackedgan", "sr-x4")


def test_issue_items_are_declared() -> None:
    text = {m: " ".join(f"{d.paper} {d.here}" for d in D.of(m)) for m in D.DEVIATIONS}
    assert "ReLU after every 1x1" in text["stackedgan"]
    assert "jointly" in text["stackedgan"] and "unconditional" in text["stackedgan"]
    assert "grey" in text["psgan"]
    assert "2x up-sampling" in text["p2p-sge"] and "flip" in text["p2p-bilinear"]


def test_bad_area_is_refused() -> None:
    with pytest.raises(ValueError, match="area"):
        D.Deviation("vibes", "a", "b")
