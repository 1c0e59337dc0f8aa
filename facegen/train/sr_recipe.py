"""Presets and recipes of the super-resolution models (papers 002 and 003): each preset's model config,
objective, training schedule and declared departures from the paper, the training data and the
model card. The objectives themselves are in :mod:`facegen.train.sr`.

Super-resolution data: the test faces (``celeba_fsrnet``, all 1,000) are never read here. The
training faces are LFW's 13,233 images plus the 924 colour crops of ``lfw_expressions`` (``studio_faces`` = N:
also N copies of the JAFFE/RaFD training subjects' studio photos of every expression, their held-out people
never), aligned
by :mod:`facegen.faces` with the ``celeba`` template into crops like the CelebA test faces. LFW
is grey, so the lite models work on luminance (BT.601 Y) and take chroma from the bicubic
up-sampling at inference. A few LFW identities are held out as the validation set (subject
disjoint from training). Augmentation: horizontal flip plus a small zoom/shift, as both papers'
training sets are augmented crops of aligned faces.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np

from facegen import papers, registry
from facegen.data import AUGMENTS, SRPairs, aligned_crops, split
from facegen.faces import zoomed
from facegen.identity import card_deviation
from facegen.models.psgan import PSGANConfig
from facegen.models.stackedgan import ABLATION_GRID, StackedSRConfig
from facegen.tasks import SHAPES
from facegen.train.families import Recipe, RecipeError, TrainingData
from facegen.train.sr import PSGANObjective, StackedSRObjective
from facegen.train.trainer import Objective, TrainConfig

SR_TASKS = tuple(t.id for t in SHAPES.values() if t.data_split == "sr")
VAL_IDENTITIES = 40  # LFW identities held out for validation (the last ones in label order)
MIN_ZOOM_OUT = 0.5  # smallest template fraction of the zoomed-out SR training crops


def sr_config(model_id: str, preset: str, task: str, lr_size: int | None) -> Any:
    if task not in SR_TASKS:
        raise RecipeError(f"unknown task {task!r}; SR tasks: {sorted(SR_TASKS)}")
    scale = SHAPES[task].scale
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
    raise RecipeError(f"{model_id!r} is not an SR model")


def build_sr(model_id: str, preset: str, task: str, *, steps: int | None = None, batch_size: int | None = None,
              seed: int = 0, lr_size: int | None = None, l1_weight: float | None = None,
              degradation: str | None = None, identity_weight: float = 0.0, augment: str = "standard",
              zoom_out: tuple[float, ...] = (), studio_faces: int = 0, **train_overrides: Any) -> Recipe:
    if augment not in AUGMENTS:
        raise RecipeError(f"augment must be one of {', '.join(AUGMENTS)}; got {augment!r}")
    zoom_out = tuple(sorted({float(f) for f in zoom_out}, reverse=True))
    if any(not MIN_ZOOM_OUT <= f < 1.0 for f in zoom_out):
        raise RecipeError(f"zoom_out factors must be in [{MIN_ZOOM_OUT:g}, 1); got {zoom_out}")
    cfg = sr_config(model_id, preset, task, lr_size)
    if model_id == "stackedgan":
        # The paper gives no optimiser: Pix2Pix's (Adam 2e-4, beta1 0.5), which it builds on.
        objective: Objective = StackedSRObjective(cfg, l1_weight=100.0 if l1_weight is None else l1_weight,
                                                  identity_weight=identity_weight)
        train = TrainConfig(steps=steps or 20_000, batch_size=batch_size or 16, optimizer="adam",
                            g_lr=2e-4, d_lr=2e-4, betas=(0.5, 0.999), seed=seed)
        deviations = [
            "optimiser, lambda and widths not given by the paper: Pix2Pix's Adam 2e-4 (beta1 0.5), "
            f"lambda = {objective.l1_weight:g}, ngf = ndf = 64 (lite: ngf 16, ndf 32, channel multiplier capped at 4)",
            "the up-sampling stages pass feature maps and emit each stage's image through a 1x1 conv + tanh",
        ]
        if cfg.residual_input:
            deviations.append("global residual: each stage predicts a correction to the LR input bicubic-resized "
                              "to that stage (faster convergence for short CPU training)")
    else:
        # Paper: SGD, lr 0.02 for 60 epochs then 0.005 for 20: the drop at 75 % of the run.
        objective = PSGANObjective(cfg, l1_weight=l1_weight or 0.0, identity_weight=identity_weight)
        train = TrainConfig(steps=steps or 20_000, batch_size=batch_size or 16, optimizer="sgd",
                            g_lr=0.02, d_lr=0.02, lr_milestones=(0.75,), lr_gamma=0.25, seed=seed)
        deviations = ["discriminator strides, dropout rate (0.25) and generator widths after the entry conv are ours"]
        if cfg.shuffle_init == "icnr":
            deviations.append("the convolutions before each pixel shuffle start from ICNR (Aitken et al. 2017: equal "
                              "sub-pixel filters, i.e. conv + nearest-neighbour up-sampling), so training starts free "
                              "of the checkerboard at the shuffle period; the paper names no initialisation (the paper "
                              "preset keeps PyTorch's default)")
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
        paper_opt = (train.optimizer, train.g_lr, train.d_lr)
        train = dataclasses.replace(train, **train_overrides)
        if (train.optimizer, train.g_lr, train.d_lr) != paper_opt:
            deviations.append(f"optimiser {train.optimizer} (G lr {train.g_lr:g}, D lr {train.d_lr:g}) instead of "
                              f"the paper's {paper_opt[0]} (lr {paper_opt[1]:g})")
    if getattr(cfg, "channels", 3) == 1:
        deviations.append(
            "trained on luminance (BT.601 Y) of grey LFW faces and colour crops; chroma from bicubic up-sampling"
        )
    if identity_weight > 0:
        deviations.append(card_deviation(identity_weight, "the super-resolved and the real HR face",
                                         "the CelebA-template crop (its five points)"))
    deviations.append("trained on LFW + lfw_expressions colour crops aligned like the CelebA test faces, not on "
                      + ("CelebA" if model_id == "stackedgan" else "FFHQ"))
    a = AUGMENTS[augment]
    deviations.append(f"training crops augmented ({augment}): horizontal flip, zoom +-{100 * a.scale_jitter:g} %, shift "
                      f"+-{100 * a.shift_jitter:g} %" + (f", rotation +-{a.rotation:g} degrees" if a.rotation else "")
                      + "; the paper states no augmentation")
    if zoom_out:
        deviations.append(
            "besides the crops at the template's size, the same faces aligned at "
            + ", ".join(f"{f:g}" for f in zoom_out) + " of it (the photo around them fills the rest of the crop), "
            "one copy each: smaller faces carry more detail per pixel (bicubic x2 PSNR-Y of the held-out LFW faces: "
            "38.2 dB at the template's size, 33.5 dB at 0.625), so the model also learns the detail of sharp "
            "faces, not only of LFW's soft ones")
    if studio_faces:
        deviations.append(f"also trained on {studio_faces} cop{'y' if studio_faces == 1 else 'ies'} of the JAFFE and "
                          "RaFD training subjects' studio photos (every expression; the people held out of the smile "
                          "and expression tasks never): LFW's faces are enlarged to fill the crop, these are the "
                          "only faces that are sharp at the template's size")
    return Recipe(model_id, preset, task, cfg, objective, train, degradation, tuple(deviations), augment=augment,
                  zoom_out=zoom_out, studio_faces=studio_faces)


def training_records(root: str | Path | None) -> tuple[list, list]:
    """(train, validation) face records for SR: LFW + colour crops; validation = held-out LFW identities."""
    lfw = split("lfw", "sr", root).train
    other = split("lfw_expressions", "sr", root).train
    identities = list(dict.fromkeys(r.subject for r in lfw))
    held = set(identities[-VAL_IDENTITIES:])
    train = [r for r in lfw if r.subject not in held] + other
    val = [r for r in lfw if r.subject in held]
    return train, val


def studio_records(root: str | Path | None) -> list:
    """The JAFFE and RaFD training subjects' photos of every expression (never a held-out person)."""
    return split("jaffe", "sr", root).train + split("rafd_subset", "sr", root).train


def sr_datasets(recipe: Recipe, root: str | Path | None, cache_root: str | Path | None,
                 progress: bool) -> TrainingData:
    """:class:`facegen.data.SRPairs` of ``recipe``, from cached aligned crops."""
    train_rec, val_rec = training_records(root)
    studio_rec = studio_records(root) if recipe.studio_faces else []
    size = recipe.model_config.hr_size

    def faces(template: str) -> list[np.ndarray]:
        crops = [aligned_crops(train_rec, size, template, cache_root=cache_root, progress=progress).images]
        if studio_rec:
            studio = aligned_crops(studio_rec, size, template, cache_root=cache_root, progress=progress).images
            crops += [studio] * recipe.studio_faces
        return crops

    val_crops = aligned_crops(val_rec, size, "celeba", cache_root=cache_root, progress=progress)
    at_size = faces("celeba")
    images = np.concatenate(at_size + [c for f in recipe.zoom_out for c in faces(zoomed("celeba", f))])
    train = SRPairs(images, recipe.scale, recipe.degradation, recipe.luminance, AUGMENTS[recipe.augment],
                    seed=recipe.train.seed)
    val = SRPairs(val_crops.images, recipe.scale, recipe.degradation, recipe.luminance, None)
    desc = (f"{len(at_size[0]):,} aligned faces (LFW minus {VAL_IDENTITIES} held-out identities, "
            "plus the lfw_expressions colour crops)"
            + (f", {recipe.studio_faces} x {len(at_size[1])} JAFFE/RaFD studio photos of the training subjects"
               if studio_rec else "")
            + (f", each also at {', '.join(f'{f:g}' for f in recipe.zoom_out)} of the template's size"
               if recipe.zoom_out else "")
            + (f" ({len(train):,} crops)" if studio_rec or recipe.zoom_out else "")
            + "; never the celeba_fsrnet test faces")
    return TrainingData(train, val, desc)


def sr_model_card(recipe: Recipe, steps_done: int, data_desc: str,
                   history: list[dict[str, float]] | None = None) -> str:
    c = recipe.model_config
    lines = [
        f"# {recipe.model_id} ({recipe.preset}, {recipe.task})",
        "",
        f"Paper: {papers.model_citation(recipe.model_id, registry.get(recipe.model_id).paper)}.",
        "",
        f"- input -> output: {c.lr_size} -> {c.hr_size} ({c.channels} channel{'s' if c.channels > 1 else ''}"
        + (", luminance; chroma from bicubic up-sampling" if c.channels == 1 else ", RGB") + ")",
        f"- generator parameters at inference: {recipe.parameter_count():,}",
        f"- training data: {data_desc}",
        f"- degradation: {'PIL-style bicubic down-sampling' if recipe.degradation == 'bicubic' else 'Gaussian blur 7x7 sigma 5, then bicubic resize'}",
        f"- training: {steps_done} steps, batch {recipe.train.batch_size}, {recipe.train.optimizer} "
        f"(G lr {recipe.train.g_lr}, D lr {recipe.train.d_lr}"
        + "".join(f", x{recipe.train.lr_gamma:g} at step {round(m * recipe.train.steps)}"
                  for m in recipe.train.lr_milestones)
        + f"), EMA {recipe.train.ema_decay} (weights shipped)",
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
