"""Training recipes: model + objective + optimisation settings + data, per (model id, preset, task).

Super-resolution data: the test faces (``celeba_fsrnet``, all 1,000) are never read here. The
training faces are LFW's 13,233 images plus the 924 colour crops of ``lfw_expressions``, aligned
by :mod:`facegen.faces` with the ``celeba`` template into crops like the CelebA test faces. LFW
is grey, so the lite models work on luminance (BT.601 Y) and take chroma from the bicubic
up-sampling at inference. A few LFW identities are held out as the validation set (subject
disjoint from training). Augmentation: horizontal flip plus a small zoom/shift, as both papers'
training sets are augmented crops of aligned faces.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from facegen.models.layers import count_parameters
from facegen.models.psgan import PSGANConfig
from facegen.models.stackedgan import ABLATION_GRID, StackedSRConfig
from facegen.train.sr import PSGANObjective, StackedSRObjective
from facegen.train.trainer import Objective, TrainConfig

PAPERS = {
    "stackedgan": "He, Zheng, Shen, Guo, Zhou: Facial Image Synthesis and Super-Resolution With Stacked "
    "Generative Adversarial Network, Neurocomputing 2020 (doi:10.1016/j.neucom.2020.03.107)",
    "psgan": "Jiang, Xu, Sun: Image super resolution of Human face images using GAN (pixel-shuffle GAN)",
}
MODEL_IDS = tuple(PAPERS)
TASK_SCALE = {"sr-x2": 2, "sr-x4": 4, "sr-x8": 8}
VAL_IDENTITIES = 40  # LFW identities held out for validation (the last ones in label order)


class RecipeError(ValueError):
    """A model/preset/task combination that has no recipe."""


@dataclass(frozen=True)
class Recipe:
    model_id: str
    preset: str
    task: str
    model_config: Any
    objective: Objective
    train: TrainConfig
    degradation: str  # "bicubic" | "blur"
    deviations: tuple[str, ...]

    @property
    def scale(self) -> int:
        return self.model_config.scale

    @property
    def luminance(self) -> bool:
        return self.model_config.channels == 1

    def parameter_count(self) -> int:
        return count_parameters(self.objective.modules()["G"])


def model_config(model_id: str, preset: str, task: str, lr_size: int | None = None) -> Any:
    """The model config of ``preset`` for ``task`` (``lr_size`` overrides the input size where allowed)."""
    if task not in TASK_SCALE:
        raise RecipeError(f"unknown task {task!r}; SR tasks: {sorted(TASK_SCALE)}")
    scale = TASK_SCALE[task]
    if model_id == "stackedgan":
        if preset == "paper":
            return StackedSRConfig.paper(scale, lr_size)
        if preset == "lite":
            return StackedSRConfig.lite(scale, lr_size)
        if preset == "tiny":
            return StackedSRConfig.tiny(scale, lr_size or 8)
        m = re.fullmatch(r"res(\d)x(\d)", preset)
        if m and (int(m.group(1)), int(m.group(2))) in ABLATION_GRID:
            return StackedSRConfig.ablation(int(m.group(1)), int(m.group(2)), scale, lr_size or 32)
        raise RecipeError(
            f"stackedgan has presets paper, lite, tiny and res<m>x<n> for m, n in 1..4; got {preset!r}"
        )
    if model_id == "psgan":
        if scale not in (2, 4):
            raise RecipeError(f"psgan serves sr-x2 and sr-x4; got {task!r}")
        if preset == "paper":
            return PSGANConfig.paper(scale, lr_size or 512)
        if preset == "lite":
            return PSGANConfig.lite(scale, lr_size)
        if preset == "tiny":
            return PSGANConfig.tiny(scale, lr_size or 16)
        raise RecipeError(f"psgan has presets paper, lite and tiny; got {preset!r}")
    raise RecipeError(f"unknown model {model_id!r}; SR models: {list(MODEL_IDS)}")


def build(model_id: str, preset: str, task: str, *, steps: int | None = None, batch_size: int | None = None,
          seed: int = 0, lr_size: int | None = None, l1_weight: float | None = None,
          degradation: str | None = None, **train_overrides: Any) -> Recipe:
    """Model config, objective and optimisation settings of a recipe (no data is read).

    ``l1_weight`` and ``degradation`` override the paper's choices (recorded as deviations).
    """
    cfg = model_config(model_id, preset, task, lr_size)
    if model_id == "stackedgan":
        # The paper gives no optimiser: Pix2Pix's (Adam 2e-4, beta1 0.5), which it builds on.
        objective: Objective = StackedSRObjective(cfg, l1_weight=100.0 if l1_weight is None else l1_weight)
        train = TrainConfig(steps=steps or 20_000, batch_size=batch_size or 16, optimizer="adam",
                            g_lr=2e-4, d_lr=2e-4, betas=(0.5, 0.999), seed=seed)
        deviations = [
            "optimiser, lambda and widths not given by the paper: Pix2Pix's Adam 2e-4 (beta1 0.5), "
            f"lambda = {objective.l1_weight:g}, ngf = ndf = 64 (lite: 32, channel multiplier capped at 4)",
            "the up-sampling stages pass feature maps and emit each stage's image through a 1x1 conv + tanh",
        ]
        if cfg.residual_input:
            deviations.append("global residual: each stage predicts a correction to the LR input bicubic-resized "
                              "to that stage (faster convergence for short CPU training)")
    else:
        # Paper: SGD, lr 0.02 for 60 epochs then 0.005 for 20: the drop at 75 % of the run.
        objective = PSGANObjective(cfg, l1_weight=l1_weight or 0.0)
        train = TrainConfig(steps=steps or 20_000, batch_size=batch_size or 16, optimizer="sgd",
                            g_lr=0.02, d_lr=0.02, lr_milestones=(0.75,), lr_gamma=0.25, seed=seed)
        deviations = ["discriminator strides, dropout rate (0.25) and generator widths after the entry conv are ours"]
        if l1_weight:
            deviations.append(f"generator loss adds {l1_weight:g} x L1 (normalised space) to the paper's adversarial BCE")
        paper_degradation = "blur"
        if degradation not in (None, paper_degradation):
            deviations.append(f"LR made by {degradation} down-sampling instead of the paper's 7x7 sigma-5 blur + resize "
                              "(the benchmark's LR is bicubic)")
        degradation = degradation or paper_degradation
    if model_id == "stackedgan" and degradation not in (None, "bicubic"):
        deviations.append(f"LR made by {degradation} instead of the paper's bicubic down-sampling")
    if model_id == "stackedgan":
        degradation = degradation or "bicubic"
    if train_overrides:
        train = dataclasses.replace(train, **train_overrides)
    if getattr(cfg, "channels", 3) == 1:
        deviations.append(
            "trained on luminance (BT.601 Y) of grey LFW faces and colour crops; chroma from bicubic up-sampling"
        )
    deviations.append("trained on LFW + lfw_expressions colour crops aligned like the CelebA test faces, not on "
                      + ("CelebA" if model_id == "stackedgan" else "FFHQ"))
    return Recipe(model_id, preset, task, cfg, objective, train, degradation, tuple(deviations))


def training_records(root: str | Path | None) -> tuple[list, list]:
    """(train, validation) face records for SR: LFW + colour crops; validation = held-out LFW identities."""
    from facegen.data import split

    lfw = split("lfw", "sr", root).train
    other = split("lfw_expressions", "sr", root).train
    identities = list(dict.fromkeys(r.subject for r in lfw))
    held = set(identities[-VAL_IDENTITIES:])
    train = [r for r in lfw if r.subject not in held] + other
    val = [r for r in lfw if r.subject in held]
    return train, val


def datasets(recipe: Recipe, root: str | Path | None, cache_root: str | Path | None = None,
             progress: bool = True) -> tuple[Dataset, Dataset]:
    """(train, validation) :class:`facegen.data.SRPairs` of ``recipe``, from cached aligned crops."""
    from facegen.data import Augment, SRPairs, aligned_crops

    train_rec, val_rec = training_records(root)
    size = recipe.model_config.hr_size
    train_crops = aligned_crops(train_rec, size, "celeba", cache_root=cache_root, progress=progress)
    val_crops = aligned_crops(val_rec, size, "celeba", cache_root=cache_root, progress=progress)
    train = SRPairs(train_crops.images, recipe.scale, recipe.degradation, recipe.luminance, Augment(),
                    seed=recipe.train.seed)
    val = SRPairs(val_crops.images, recipe.scale, recipe.degradation, recipe.luminance, None)
    return train, val


def model_card(recipe: Recipe, steps_done: int, data_desc: str, history: list[dict[str, float]] | None = None) -> str:
    """Markdown model card of a trained generator."""
    c = recipe.model_config
    lines = [
        f"# {recipe.model_id} ({recipe.preset}, {recipe.task})",
        "",
        f"Paper: {PAPERS[recipe.model_id]}.",
        "",
        f"- input -> output: {c.lr_size} -> {c.hr_size} ({c.channels} channel{'s' if c.channels > 1 else ''}"
        + (", luminance; chroma from bicubic up-sampling" if c.channels == 1 else ", RGB") + ")",
        f"- generator parameters at inference: {recipe.parameter_count():,}",
        f"- training data: {data_desc}",
        f"- degradation: {'PIL-style bicubic down-sampling' if recipe.degradation == 'bicubic' else 'Gaussian blur 7x7 sigma 5, then bicubic resize'}",
        f"- training: {steps_done} steps, batch {recipe.train.batch_size}, {recipe.train.optimizer} "
        f"(G lr {recipe.train.g_lr}, D lr {recipe.train.d_lr}), EMA {recipe.train.ema_decay} (weights shipped)",
        "",
        "Deviations from the paper:",
        "",
        *[f"- {d}" for d in recipe.deviations],
    ]
    if history:
        last = history[-1]
        lines += ["", f"Validation at step {int(last['step'])} (held-out LFW identities, Y PSNR): "
                  f"{last['psnr']:.2f} dB (bicubic {last['psnr_bicubic']:.2f} dB)"
                  + (f", LPIPS {last['lpips']:.4f} (bicubic {last['lpips_bicubic']:.4f})" if "lpips" in last else "")]
    config = dataclasses.asdict(c)
    lines += ["", "Config:", "", "```", *[f"{k} = {v}" for k, v in config.items()], "```", ""]
    return "\n".join(lines)


def train_summary(recipe: Recipe) -> dict[str, Any]:
    """Scalars recorded in the checkpoint so a resume can check it continues the same recipe."""
    return {"model_id": recipe.model_id, "preset": recipe.preset, "task": recipe.task,
            "model_config": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(recipe.model_config).items()},
            "degradation": recipe.degradation, "l1_weight": recipe.objective.l1_weight}

