"""Training recipes: model + objective + optimisation settings + data, per (model id, preset, task).

Every model trains with the one :class:`facegen.train.trainer.Trainer`; what differs per model
family is how its recipe is built, where its data comes from and what its model card says (the
:class:`facegen.train.families.Family` contract). Which models train, with which family, preset
and default task, is read from :data:`facegen.registry.REGISTRY`; this module registers the
built-in families:

- ``sr`` (stackedgan, psgan; tasks ``sr-x2/x4/x8``): presets, data and cards :mod:`facegen.train.sr_recipe`,
  objectives :mod:`facegen.train.sr`;
- ``smile`` (paper 000's five ``p2p-*`` methods; task ``smile``): :mod:`facegen.train.smile`,
  data :mod:`facegen.train.smile_data`;
- ``expression`` (exprgan, exprgan-msd, lmk-guided; task ``expression``):
  objectives :mod:`facegen.train.expression`, presets :mod:`facegen.train.expression_recipe`, data
  :mod:`facegen.train.expression_data`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facegen import registry
from facegen.train import expression_data, expression_recipe, smile, smile_data, sr_recipe
from facegen.train.families import (FAMILIES, Family, Recipe, RecipeError, TrainingData, inference_model,
                                    register)
from facegen.train.fine_tune import InitFrom

__all__ = ["FAMILIES", "Family", "Recipe", "RecipeError", "TrainingData", "inference_model", "build",
           "datasets", "default_preset", "default_task", "family", "model_card", "model_config", "model_ids", "recipe_ids",
           "resolve", "train_summary"]

# -- smile (paper 000) ------------------------------------------------------------------------------


def _sr_only(model_id: str, lr_size: int | None, l1_weight: float | None, degradation: str | None) -> None:
    given = [name for name, v in (("lr_size", lr_size), ("l1_weight", l1_weight), ("degradation", degradation))
             if v is not None]
    if given:
        raise RecipeError(f"{', '.join(given)} can be overridden for the SR models only, not for {model_id}")


def _build_smile(model_id: str, preset: str, task: str, *, steps: int | None = None, batch_size: int | None = None,
                 seed: int = 0, lr_size: int | None = None, l1_weight: float | None = None,
                 degradation: str | None = None, identity_weight: float = 0.0, **train_overrides: Any) -> Recipe:
    _sr_only(model_id, lr_size, l1_weight, degradation)
    pc = smile.smile_pieces(model_id, preset, steps=steps, batch_size=batch_size, seed=seed,
                      identity_weight=identity_weight, **train_overrides)
    # The input is the neutral crop PIL-bicubic down-sampled 2x (smile_data), as the benchmark makes it.
    return Recipe(model_id, preset, task, pc.model_config, pc.objective, pc.train, "bicubic", pc.deviations)


def _smile_datasets(recipe: Recipe, root: str | Path | None, cache_root: str | Path | None,
                    progress: bool) -> TrainingData:
    cfg = recipe.model_config
    wild = recipe.preset in smile.WILD_PRESETS
    train, val = smile_data.datasets(cfg.hr_size, cfg.channels == 1, root, cache_root,
                                     seed=recipe.train.seed, progress=progress, template=cfg.template, wild=wild)
    return TrainingData(train, val, smile_data.data_description(train, val))


def _smile_model_card(recipe: Recipe, steps_done: int, data_desc: str,
                      history: list[dict[str, float]] | None = None) -> str:
    pieces = smile.SmileRecipePieces(recipe.model_id, recipe.preset, recipe.model_config,
                               recipe.objective, recipe.train, recipe.deviations)  # type: ignore[arg-type]
    return smile.smile_model_card(pieces, steps_done, data_desc, history)


# -- expression (papers 001 and 004) --------------------------------------------------------------------


def _build_expression(model_id: str, preset: str, task: str, *, steps: int | None = None,
                      batch_size: int | None = None, seed: int = 0, lr_size: int | None = None,
                      l1_weight: float | None = None, degradation: str | None = None,
                      **train_overrides: Any) -> Recipe:
    _sr_only(model_id, lr_size, l1_weight, degradation)
    cfg, objective, train, deviations = expression_recipe.build(model_id, preset, steps=steps, batch_size=batch_size,
                                                         seed=seed, **train_overrides)
    return Recipe(model_id, preset, task, cfg, objective, train, None, deviations)


def _expression_datasets(recipe: Recipe, root: str | Path | None, cache_root: str | Path | None,
                         progress: bool) -> TrainingData:
    """The expression sets; for ``lmk-guided`` this also stores the expression template fitted to
    the training pairs in the recipe's generator (it is exported with the weights)."""
    # ExprGAN: LFW's labelled faces join the paper and wild presets (the lite one learns the studio faces alone),
    # and only the lite presets add paired samples (the paper reconstructs each face with its own label).
    wild, paper = recipe.preset in expression_recipe.WILD_PRESETS, recipe.preset.startswith("paper")
    data = expression_data.datasets(recipe.model_id, recipe.model_config, root, cache_root, seed=recipe.train.seed,
                                    use_lfw=paper or wild, exprgan_pairs=not (paper or wild), wild_pairs=wild,
                                    progress=progress)
    if data.template is not None:
        template = torch.from_numpy(np.asarray(data.template, dtype=np.float32))
        recipe.objective.G.set_template(template)  # type: ignore[attr-defined]
    return TrainingData(data.train, data.val, data.description)


def _expression_model_card(recipe: Recipe, steps_done: int, data_desc: str,
                           history: list[dict[str, float]] | None = None) -> str:
    return expression_recipe.model_card(recipe.model_id, recipe.preset, recipe.model_config, steps_done=steps_done,
                                 train=recipe.train, data_desc=data_desc, deviations=recipe.deviations,
                                 history=history)


def _smile_config(model_id: str, preset: str, task: str, lr_size: int | None) -> Any:
    _sr_only(model_id, lr_size, None, None)
    return smile.smile_config(model_id, preset)


def _expression_config(model_id: str, preset: str, task: str, lr_size: int | None) -> Any:
    _sr_only(model_id, lr_size, None, None)
    return expression_recipe.model_config(model_id, preset)


# -- the built-in families ----------------------------------------------------------------------------

SR = register(Family("sr", sr_recipe.SR_TASKS, "paper, lite, tiny (stackedgan also res<m>x<n>, m, n in 1..4)",
                     sr_recipe.sr_config, sr_recipe.build_sr, sr_recipe.sr_datasets, sr_recipe.sr_model_card))
SMILE = register(Family("smile", ("smile",), "paper, lite, wild, wild-no-residual, tiny (p2p-sge also the Table IV ablations "
                        "sge-pix2pix-side, sge-sr-side, sge-no-skips at lite size, or paper:/tiny: + ablation)",
                        _smile_config, _build_smile, _smile_datasets, _smile_model_card))
EXPRESSION = register(Family("expression", ("expression",), "paper, lite, wild, tiny (exprgan-msd also no-unsharp, "
                             "paper-no-unsharp, wild-no-unsharp; lmk-guided also no-feature-init, no-label and their paper- forms)",
                             _expression_config, _build_expression, _expression_datasets, _expression_model_card))


# -- derived from the registry ------------------------------------------------------------------------


def model_ids() -> tuple[str, ...]:
    """Registry ids that ``python -m facegen.train --model`` accepts: every registered model of a
    registered family (an ablation entry trains its recipe at its own preset)."""
    return tuple(s.id for s in registry.trainable() if s.family in FAMILIES)


def recipe_ids() -> tuple[str, ...]:
    """The distinct training recipes of the registry (ablation entries share their base's)."""
    return tuple(dict.fromkeys(s.recipe for s in registry.trainable() if s.family in FAMILIES))  # type: ignore[misc]


def _spec(model_id: str) -> registry.ModelSpec:
    spec = registry.REGISTRY.get(model_id)
    if spec is None or spec.family not in FAMILIES:
        raise RecipeError(f"unknown model {model_id!r}; trainable models: {', '.join(model_ids())}")
    return spec


def _family(model_id: str) -> Family:
    return FAMILIES[_spec(model_id).family]


def resolve(model_id: str, preset: str | None = None) -> tuple[str, str, registry.ModelSpec | None]:
    """(recipe id, preset, registry entry) of a training request: ``model_id`` is any id of
    :func:`model_ids`; ``preset`` None takes the entry's own. The entry is the one that ships that
    recipe at that preset (None when the registry ships none, e.g. a ``tiny`` run)."""
    spec = _spec(model_id)
    recipe = spec.recipe or spec.id
    preset = preset or spec.preset
    return recipe, preset, (spec if spec.preset == preset else registry.find(recipe, preset))


def _family_of(recipe: Recipe) -> Family:
    return FAMILIES[recipe.family] if recipe.family else _family(recipe.model_id)


def family(model_id: str) -> str:
    """The registered family name (``sr``, ``smile``, ``expression``, ...)."""
    return _family(model_id).name


def default_task(model_id: str) -> str:
    """The first task the registry lists for ``model_id``."""
    return _spec(model_id).tasks[0]


def default_preset(model_id: str) -> str:
    """The preset the registry ships ``model_id`` at."""
    return _spec(model_id).preset


def presets_help() -> str:
    return "; ".join(f"{f.name} models: {f.presets}" for f in FAMILIES.values())


def tasks_help() -> str:
    tasks = dict.fromkeys(t for f in FAMILIES.values() for t in f.tasks)
    defaults = ", ".join(f"{s.tasks[0]} for {s.id}" for s in registry.trainable()
                         if s.family in FAMILIES and s.recipe == s.id)
    return f"{' | '.join(tasks)} (default: the model's first registered task: {defaults})"


def model_config(model_id: str, preset: str, task: str, lr_size: int | None = None) -> Any:
    """The model config of ``preset`` for ``task`` (``lr_size`` overrides the input size of SR models)."""
    fam, model_id = _family(model_id), _spec(model_id).recipe or model_id
    if task not in fam.tasks:
        raise RecipeError(f"{model_id} serves {', '.join(fam.tasks)}; got task {task!r}")
    try:
        return fam.config(model_id, preset, task, lr_size)
    except RecipeError:
        raise
    except ValueError as e:
        raise RecipeError(str(e)) from None


def build(model_id: str, preset: str, task: str, *, steps: int | None = None, batch_size: int | None = None,
          seed: int = 0, lr_size: int | None = None, l1_weight: float | None = None,
          degradation: str | None = None, identity_weight: float | None = None, augment: str | None = None,
          zoom_out: tuple[float, ...] = (), studio_faces: int = 0, **train_overrides: Any) -> Recipe:
    """Model config, objective and optimisation settings of a recipe (no data is read).

    ``model_id`` is any id of :func:`model_ids` (an ablation entry builds its recipe). ``l1_weight``,
    ``degradation`` and ``lr_size`` override the SR papers' choices (recorded as deviations);
    other families refuse them. ``identity_weight`` > 0 adds the SFace identity loss
    (:func:`facegen.identity.identity_loss`, a declared deviation) to the generator objective (SR,
    smile and lmk-guided; the ExprGAN recipes refuse it, their objective has the paper's identity
    term). ``augment`` names the SR training augmentation (:data:`facegen.data.AUGMENTS`);
    ``zoom_out`` adds SR training crops aligned at those fractions of the template's size;
    ``studio_faces`` adds that many copies of the JAFFE/RaFD training subjects' photos to the SR training faces.
    ``train_overrides`` replace :class:`TrainConfig` fields.
    """
    model_config(model_id, preset, task, lr_size)  # clear errors for a bad model/preset/task first
    fam, model_id = _family(model_id), _spec(model_id).recipe or model_id
    if identity_weight:
        if identity_weight < 0:
            raise RecipeError(f"identity_weight must be >= 0; got {identity_weight:g}")
        train_overrides["identity_weight"] = identity_weight
    if augment is not None:
        if fam.name != "sr":
            raise RecipeError(f"augment applies to the SR models, not to {model_id}")
        train_overrides["augment"] = augment
    if zoom_out:
        if fam.name != "sr":
            raise RecipeError(f"zoom_out applies to the SR models, not to {model_id}")
        train_overrides["zoom_out"] = tuple(zoom_out)
    if studio_faces:
        if fam.name != "sr":
            raise RecipeError(f"studio_faces applies to the SR models, not to {model_id}")
        if studio_faces < 0:
            raise RecipeError(f"studio_faces must be >= 0 copies; got {studio_faces}")
        train_overrides["studio_faces"] = int(studio_faces)
    try:
        recipe = fam.build(model_id, preset, task, steps=steps, batch_size=batch_size, seed=seed, lr_size=lr_size,
                           l1_weight=l1_weight, degradation=degradation, **train_overrides)
    except RecipeError:
        raise
    except ValueError as e:  # e.g. an out-of-range TrainConfig setting
        raise RecipeError(f"{model_id} {preset}: {e}") from None
    return dataclasses.replace(recipe, family=fam.name)


def datasets(recipe: Recipe, root: str | Path | None, cache_root: str | Path | None = None,
             progress: bool = True) -> TrainingData:
    """Training and validation sets of ``recipe`` (subject-disjoint; never a test subject)."""
    return _family_of(recipe).datasets(recipe, root, cache_root, progress)


def model_card(recipe: Recipe, steps_done: int, data_desc: str, history: list[dict[str, float]] | None = None,
               init: InitFrom | None = None, export_note: str | None = None) -> str:
    """Markdown model card of a trained generator (``init``: the checkpoint it was fine-tuned from;
    ``export_note``: why ``steps_done``, the exported step, is not where the run ended)."""
    card = _family_of(recipe).model_card(recipe, steps_done, data_desc, history)
    extra = []
    if export_note is not None:
        extra.append(f"- exported: {export_note}")
    if init is not None:
        extra.append(f"- fine-tuned: the steps above continue {init.describe()}")
    if not extra:
        return card
    lines = card.splitlines()
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("- training:")), len(lines))
    lines[at:at] = extra
    return "\n".join(lines) + ("\n" if card.endswith("\n") else "")


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def train_summary(recipe: Recipe) -> dict[str, Any]:
    """Scalars recorded in the checkpoint so a resume can check it continues the same recipe."""
    summary: dict[str, Any] = {
        "model_id": recipe.model_id, "preset": recipe.preset, "task": recipe.task,
        "model_config": {k: _plain(v) for k, v in dataclasses.asdict(recipe.model_config).items()},
        "degradation": recipe.degradation,
    }
    if getattr(recipe.objective, "identity_weight", 0.0):  # absent when 0: older runs resume unchanged
        summary["identity_weight"] = recipe.objective.identity_weight  # type: ignore[attr-defined]
    if recipe.augment != "standard":  # likewise
        summary["augment"] = recipe.augment
    if recipe.zoom_out:  # likewise
        summary["zoom_out"] = list(recipe.zoom_out)
    if recipe.studio_faces:  # likewise
        summary["studio_faces"] = recipe.studio_faces
    if _family_of(recipe).name == "sr":
        summary["l1_weight"] = recipe.objective.l1_weight  # type: ignore[attr-defined]
        return summary
    # Loss settings of the other objectives (ExprGAN's stage switch follows --steps, so it may change).
    for name in ("l1_weight", "sr_weight", "guide_fallback", "weights", "id_weights", "id_size", "barrier_weight"):
        if hasattr(recipe.objective, name):
            summary[name] = _plain(getattr(recipe.objective, name))
    return summary
