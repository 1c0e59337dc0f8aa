"""The one recipe contract: a model family is a registered :class:`Family` object.

A registry entry (:class:`facegen.registry.ModelSpec`) names its family (``spec.family``, a key
of :data:`FAMILIES`), its recipe (``spec.recipe``) and its preset; the training CLI, the default
task and the preset help are derived from the registry and these objects. A family supplies:

- ``config(recipe_id, preset, task, lr_size)``: the model config of a preset (no objective built);
- ``build(recipe_id, preset, task, **options)``: a :class:`Recipe` (config, objective, optimisation
  settings, deviations from the paper; no data read);
- ``datasets(recipe, root, cache_root, progress)``: the training and validation sets;
- ``model_card(recipe, steps_done, data_desc, history)``: the exported folder's Markdown card.

Registering a family is one :func:`register` call (or a ``FAMILIES`` entry); the built-in ones
(``sr``, ``smile``, ``expression``) are registered by :mod:`facegen.train.recipes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from facegen.models.layers import count_parameters
from facegen.train.trainer import Objective, TrainConfig


class RecipeError(ValueError):
    """A model/preset/task combination that has no recipe."""


def inference_model(generator: nn.Module) -> nn.Module:
    """What to export of a trained generator: ``generator.inference_model()`` where the generator
    carries training-only parts (the smile models' :class:`facegen.models.smile.SmileTrainNet`),
    else the generator itself."""
    get = getattr(generator, "inference_model", None)
    return get() if callable(get) else generator


@dataclass(frozen=True)
class Recipe:
    model_id: str  # the recipe id (a registry id whose ``recipe`` is itself)
    preset: str
    task: str
    model_config: Any
    objective: Objective
    train: TrainConfig
    degradation: str | None  # SR and smile inputs: "bicubic" | "blur"; None for expression models (no LR input)
    deviations: tuple[str, ...]
    family: str = ""  # the FAMILIES key that built it (filled in by facegen.train.recipes.build)
    augment: str = "standard"  # SR: the training augmentation (facegen.data.AUGMENTS key)
    zoom_out: tuple[float, ...] = ()  # SR: also train on crops aligned at these fractions of the template's size
    studio_faces: int = 0  # SR: also train on this many copies of the JAFFE/RaFD training subjects' photos

    @property
    def scale(self) -> int:
        if not hasattr(self.model_config, "scale"):
            raise RecipeError(f"{self.model_id} keeps the input size; it has no scale factor")
        return self.model_config.scale

    @property
    def luminance(self) -> bool:
        return self.model_config.channels == 1

    @property
    def sizes(self) -> tuple[int, int]:
        """(input, output) side in pixels."""
        c = self.model_config
        if hasattr(c, "lr_size"):
            return c.lr_size, c.hr_size
        return c.size, c.size

    def inference_model(self) -> nn.Module:
        """The (untrained) network that gets exported: the generator without training-only parts."""
        return inference_model(self.objective.modules()["G"])

    def parameter_count(self) -> int:
        """Parameters of the exported network (the smile multitask models' SR stream is training-only)."""
        return count_parameters(self.inference_model())


@dataclass(frozen=True)
class TrainingData:
    """The data of a recipe: training and validation sets and a line for the model card."""

    train: Dataset
    val: Dataset
    description: str


@dataclass(frozen=True)
class Family:
    """How the recipes of one model family are configured, built, fed and described."""

    name: str
    tasks: tuple[str, ...]  # facegen.tasks ids its recipes can serve
    presets: str  # for help and error messages
    config: Callable[[str, str, str, int | None], Any]
    build: Callable[..., Recipe]
    datasets: Callable[[Recipe, Any, Any, bool], TrainingData]
    model_card: Callable[[Recipe, int, str, Any], str]


#: Family name (``ModelSpec.family``) -> family. Weightless baselines have no family here.
FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` to :data:`FAMILIES` (refusing a second family of the same name)."""
    if family.name in FAMILIES and FAMILIES[family.name] is not family:
        raise ValueError(f"a recipe family named {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family
