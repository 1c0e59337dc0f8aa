"""The one explicit registry: model id -> spec.

Each spec names its class, the recipe family that trains it (a key of
:data:`facegen.train.families.FAMILIES`, or ``baseline`` for models that are not trained here),
the recipe and preset it ships with (``python -m facegen.train --model ID`` trains exactly that),
the paper it comes from (a key of :data:`facegen.papers.PAPERS`), and for every benchmark task it
serves the checkpoint folder (under ``checkpoints/``) that serves it, or None for models without
weights. The first task listed is the default task of its training command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from facegen import assets
from facegen.papers import PAPERS

from facegen.models.bicubic import Bicubic, BicubicConfig
from facegen.models.exprgan import ExprGANGenerator
from facegen.models.lmk_guided import LmkGuidedGenerator
from facegen.models.psgan import PSGANGenerator
from facegen.models.realesrgan import RealESRGAN, RealESRGANConfig
from facegen.models.smile import SmileGenerator
from facegen.models.stackedgan import StackedSRGenerator

BASELINE = "baseline"  # the family of models that are not trained by facegen.train
CHECKPOINT_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"

#: What a model may be given at test time besides the input face: key -> (label, privileged). A
#: privileged input comes from the ground truth (or what it was made from) and is not available
#: to a user with only a photo; the expression label is the task's instruction, not privileged.
GIVEN: dict[str, tuple[str, bool]] = {
    "expression": ("target label", False),
    "guide": ("HR neutral guide", True),
    "landmarks": ("target landmarks", True),
    "reference": ("reference photo", True),
}


@dataclass(frozen=True)
class ModelSpec:
    id: str
    title: str
    model_class: type
    preset: str  # the recipe preset the shipped checkpoint was trained with (the training default)
    paper: str | None  # seed file number ("002"), None for baselines
    family: str  # "baseline" (not trained here) or a recipe family: "sr" | "smile" | "expression" | ...
    checkpoints: dict[str, str | None] = field(default_factory=dict)  # task id -> folder name
    # Configs of weightless models (no checkpoint folder), by task id.
    configs: dict[str, object] = field(default_factory=dict)
    # Whether an expression intensity in [0, 1] visibly changes the output (the app offers its
    # slider only then; tests/test_pipeline.py measures it on a real face for every model that says so).
    intensity_control: bool = False
    # Test-time inputs the model consumes besides the input face (keys of GIVEN): the benchmark
    # passes exactly these and records them; inputs taken from the ground truth are privileged.
    given: tuple[str, ...] = ()
    # The paper's own test-time inputs where they go beyond ``given`` (what the app gives, the
    # headline protocol): the benchmark scores the model a second time with them, as a row of its own.
    paper_given: tuple[str, ...] = ()
    # Optional third-party files (facegen.assets names) the model needs; without them it is skipped.
    requires: tuple[str, ...] = ()
    # A slow reference is benchmarked on the first N test faces only (its result records n), and on
    # the standard protocols only; None scores every face of every protocol.
    bench_faces: int | None = None
    # The training recipe (a registry id) when this entry is a preset of another entry's recipe,
    # e.g. an ablation; None: the entry's own id (baselines have none).
    recipe: str | None = None

    def __post_init__(self) -> None:
        if self.recipe is None and self.family != BASELINE:
            object.__setattr__(self, "recipe", self.id)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.checkpoints)

    def checkpoint_dir(self, task: str, root: Path = CHECKPOINT_ROOT) -> Path | None:
        if task not in self.checkpoints:
            raise KeyError(f"model {self.id!r} does not serve task {task!r}; it serves {self.tasks}")
        name = self.checkpoints[task]
        return None if name is None else root / name


REGISTRY: dict[str, ModelSpec] = {
    "bicubic": ModelSpec(
        id="bicubic",
        title="Bicubic (PIL)",
        model_class=Bicubic,
        preset="lite",
        paper=None,
        family="baseline",
        checkpoints={"sr-x2": None, "sr-x4": None, "sr-x8": None},
        configs={"sr-x2": BicubicConfig(2), "sr-x4": BicubicConfig(4), "sr-x8": BicubicConfig(8)},
    ),
    "realesrgan": ModelSpec(
        id="realesrgan",
        title="Real-ESRGAN x4plus (general-purpose restorer, not a face model)",
        model_class=RealESRGAN,
        preset="reference",
        paper=None,
        family="baseline",
        checkpoints={"sr-x4": None, "sr-x8": None},
        configs={"sr-x4": RealESRGANConfig(4), "sr-x8": RealESRGANConfig(8)},
        requires=("realesrgan_x4plus", "realesrgan_x4plus_param"),
        bench_faces=50,  # 0.4-1.4 s a face on 2 CPU cores: 1,000 faces would take up to 23 minutes per scale
    ),
    "stackedgan": ModelSpec(
        id="stackedgan",
        title="Stacked GAN (paper 002)",
        model_class=StackedSRGenerator,
        preset="lite",
        paper="002",
        family="sr",
        # sr-x4 first: the default task of `python -m facegen.train --model stackedgan` (the paper's x4)
        checkpoints={"sr-x4": "stackedgan-x4", "sr-x8": "stackedgan-x8", "sr-x2": "stackedgan-x2"},
    ),
    "psgan": ModelSpec(
        id="psgan",
        title="Pixel-shuffle GAN (paper 003)",
        model_class=PSGANGenerator,
        preset="lite",
        paper="003",
        family="sr",
        checkpoints={"sr-x2": "psgan-x2", "sr-x4": "psgan-x4"},
    ),
    "p2p-bilinear": ModelSpec(
        id="p2p-bilinear",
        title="Pix2Pix + bilinear 2x (paper 000, method [2])",
        model_class=SmileGenerator,
        preset="wild",
        paper="000",
        family="smile",
        checkpoints={"smile": "p2p-bilinear"},
    ),
    "p2p-two-step": ModelSpec(
        id="p2p-two-step",
        title="Pix2Pix + separately trained SR network (paper 000, method [5])",
        model_class=SmileGenerator,
        preset="wild",
        paper="000",
        family="smile",
        checkpoints={"smile": "p2p-two-step"},
    ),
    "p2p-serial": ModelSpec(
        id="p2p-serial",
        title="Pix2Pix + SR network end to end (paper 000, method [6])",
        model_class=SmileGenerator,
        preset="wild",
        paper="000",
        family="smile",
        checkpoints={"smile": "p2p-serial"},
    ),
    "p2p-parallel": ModelSpec(
        id="p2p-parallel",
        title="Multitask parallel Pix2Pix + SR (paper 000, method [7])",
        model_class=SmileGenerator,
        preset="wild",
        paper="000",
        family="smile",
        checkpoints={"smile": "p2p-parallel"},
    ),
    "p2p-parallel-no-residual": ModelSpec(
        id="p2p-parallel-no-residual",
        title="Multitask parallel Pix2Pix + SR, networks output the image (residual-output ablation)",
        model_class=SmileGenerator,
        preset="wild-no-residual",
        paper="000",
        family="smile",
        checkpoints={"smile": "p2p-parallel-no-residual"},
        recipe="p2p-parallel",
    ),
    "p2p-sge": ModelSpec(
        id="p2p-sge",
        title="Multitask + self-supervised guidance (paper 000, proposed)",
        model_class=SmileGenerator,
        preset="wild",
        paper="000",
        family="smile",
        checkpoints={"smile": "p2p-sge"},
        given=('guide',),
    ),
    "exprgan": ModelSpec(
        id="exprgan",
        title="ExprGAN, label- and intensity-controlled (paper 001's baseline)",
        model_class=ExprGANGenerator,
        preset="lite",
        paper="001",
        family="expression",
        checkpoints={"expression": "exprgan"},
        intensity_control=True,
        given=('expression',),
    ),
    "exprgan-msd": ModelSpec(
        id="exprgan-msd",
        title="ExprGAN with multi-scale dilated features and unsharp masking (paper 001)",
        model_class=ExprGANGenerator,
        preset="lite",
        paper="001",
        family="expression",
        checkpoints={"expression": "exprgan-msd"},
        intensity_control=True,
        given=('expression',),
    ),
    "exprgan-msd-no-unsharp": ModelSpec(
        id="exprgan-msd-no-unsharp",
        title="ExprGAN with multi-scale dilated features, without unsharp masking (paper 001's ablation)",
        model_class=ExprGANGenerator,
        preset="no-unsharp",
        paper="001",
        family="expression",
        checkpoints={"expression": "exprgan-msd-no-unsharp"},
        recipe="exprgan-msd",
        intensity_control=True,
        given=('expression',),
    ),
    "lmk-guided": ModelSpec(
        id="lmk-guided",
        title="Landmark- and label-guided synthesis (paper 004)",
        model_class=LmkGuidedGenerator,
        preset="wild",
        paper="004",
        family="expression",
        checkpoints={"expression": "lmk-guided"},
        intensity_control=True,
        given=('expression',),
        paper_given=('expression', 'landmarks'),
    ),
    "lmk-guided-no-feature-init": ModelSpec(
        id="lmk-guided-no-feature-init",
        title="Landmark- and label-guided synthesis without the feature-initialise networks (paper 004's ablation)",
        model_class=LmkGuidedGenerator,
        preset="no-feature-init",
        paper="004",
        family="expression",
        checkpoints={"expression": "lmk-guided-no-feature-init"},
        recipe="lmk-guided",
        intensity_control=True,
        given=('expression',),
        paper_given=('expression', 'landmarks'),
    ),
    "lmk-guided-no-label": ModelSpec(
        id="lmk-guided-no-label",
        title="Landmark-guided synthesis without the expression label maps (paper 004's ablation)",
        model_class=LmkGuidedGenerator,
        preset="no-label",
        paper="004",
        family="expression",
        checkpoints={"expression": "lmk-guided-no-label"},
        recipe="lmk-guided",
        intensity_control=True,
        given=('expression',),
        paper_given=('expression', 'landmarks'),
    ),
}


def given_label(given: tuple[str, ...] | list[str]) -> str:
    """The leaderboard's "given" cell: the privileged inputs a row sees, or ``none``."""
    shown = [GIVEN[g][0] for g in given if GIVEN[g][1]]
    return " + ".join(shown) if shown else "none"


def is_privileged(given: tuple[str, ...] | list[str]) -> bool:
    return any(GIVEN[g][1] for g in given)


def get(model_id: str) -> ModelSpec:
    try:
        return REGISTRY[model_id]
    except KeyError:
        raise KeyError(f"unknown model {model_id!r}; known: {sorted(REGISTRY)}") from None


def unavailable(spec: ModelSpec) -> str | None:
    """Why ``spec`` cannot run here (an optional third-party file is not installed), or None."""
    for name in spec.requires:
        try:
            assets.path(name)
        except assets.AssetError as e:
            return str(e)
    check = getattr(spec.model_class, "runtime_problem", None)  # native libraries a wheel cannot bring
    return check() if check is not None else None


def trainable() -> list[ModelSpec]:
    """Registered models that a recipe family trains (every family but ``baseline``), registry order."""
    return [spec for spec in REGISTRY.values() if spec.family != BASELINE]


def find(recipe: str, preset: str) -> ModelSpec | None:
    """The registry entry that ships ``recipe`` at ``preset``, or None."""
    return next((s for s in REGISTRY.values() if s.recipe == recipe and s.preset == preset), None)


def paper_models(number: str) -> str:
    """What the project ships of a paper, by task ("smile: p2p-bilinear, p2p-sge; ...")."""
    by_task: dict[str, list[str]] = {}
    for spec in REGISTRY.values():
        if spec.paper == number:
            by_task.setdefault(", ".join(spec.tasks), []).append(spec.id)
    return "; ".join(f"{tasks}: {', '.join(ids)}" for tasks, ids in by_task.items())


def paper_rows() -> list[str]:
    """The rows of the docs' table of papers and their models (``| # | paper | models |``, Markdown),
    from PAPERS and the registry."""
    return [f"| {p.number} | {p.citation} | {paper_models(p.number)} |" for p in PAPERS.values()]


def models_for(task: str) -> list[ModelSpec]:
    """Registered models serving ``task``, in registry order."""
    return [spec for spec in REGISTRY.values() if task in spec.checkpoints]
