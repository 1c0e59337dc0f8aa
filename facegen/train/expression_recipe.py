"""Presets and recipes of the expression models (papers 001 and 004): each preset's model config,
objective, training schedule and declared departures from the paper, and the model card. The
objectives themselves are in :mod:`facegen.train.expression`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from facegen import identity, papers, registry
from facegen.models.exprgan import ExprGANConfig, ExprGANGenerator
from facegen.models.layers import count_parameters
from facegen.models.lmk_guided import LmkGuidedConfig, LmkGuidedGenerator
from facegen.train import photo_pairs
from facegen.train.expression import (
    EXPRGAN_WEIGHTS,
    ExprGANObjective,
    LmkGuidedObjective,
)
from facegen.train.trainer import TrainConfig

#: The lite recipe's weights (identity 0.1), learning rate and code barrier (see the deviations in :func:`build`).
LITE_EXPRGAN_WEIGHTS = (0.1, 1.0, 0.01, 0.01, 0.001)
LITE_EXPRGAN_LR = 5e-4
LITE_EXPRGAN_CODE_BARRIER = 0.01

MODEL_IDS: tuple[str, ...] = ("exprgan", "exprgan-msd", "lmk-guided")
PRESETS: dict[str, tuple[str, ...]] = {
    "exprgan": ("paper", "lite", "wild", "tiny"),
    "exprgan-msd": ("paper", "lite", "wild", "tiny", "no-unsharp", "paper-no-unsharp", "wild-no-unsharp"),
    "lmk-guided": ("paper", "lite", "wild", "tight", "tiny", "no-feature-init", "paper-no-feature-init", "no-label",
                   "paper-no-label"),
}
#: The ``wild`` presets: lmk-guided on the studio pairs and LFW pairs of two photos
#: (expression_data.WildExpressionSet); ExprGAN on paper 001's objective alone (every labelled face,
#: LFW's included, reconstructed with its own label; no pairs) with an SFace identity term. ``tight``
#: (lmk-guided): the ``wild`` recipe on the tight 5-point crop.
WILD_PRESETS = ("wild", "wild-no-unsharp", "tight")
#: (l1 L_id, l2 L_Q, l3 L_adv^img, l4 L_adv^z, l5 L_tv) of the ExprGAN wild recipe: the released values,
#: L_id being 1 - cos of SFace embeddings.
WILD_EXPRGAN_WEIGHTS = EXPRGAN_WEIGHTS
#: The wild recipe's weight of the label-conditioned face-box discriminator (see LmkGuidedObjective).
WILD_FACE_GAN_WEIGHT = 2.0
#: The wild recipe computes L_per at this side (the VGG pass at 128 px costs half a generator step on a CPU).
WILD_PERCEPTUAL_SIZE = 64


#: The card's entry of a model on the tight crop (``LmkGuidedConfig.template`` 'celeba').
TIGHT_CROP = ("the tight 5-point 'celeba' crop (the face fills the 128 px; paper 004 does not give its crop, the "
              "expression task's 6.4 d square leaves the face about 50 px): faces are cut from the photo by this "
              "template, and the change is pasted back into the task's crop inside the inner-face mask for the "
              "benchmark, as into the photo in the app; the per-expression landmark templates are measured on the "
              "training pairs' tight crops")


class ExpressionRecipeError(ValueError):
    """A model/preset combination that has no recipe."""


def model_config(model_id: str, preset: str) -> ExprGANConfig | LmkGuidedConfig:
    """The model config of ``preset`` (paper presets are RGB, lite presets luminance)."""
    if model_id not in PRESETS:
        raise ExpressionRecipeError(f"unknown expression model {model_id!r}; known: {list(MODEL_IDS)}")
    if preset not in PRESETS[model_id]:
        raise ExpressionRecipeError(f"{model_id} has presets {', '.join(PRESETS[model_id])}; got {preset!r}")
    base = preset.split("-", 1)[0] if preset.startswith("paper") else ("tiny" if preset == "tiny" else "lite")
    if model_id == "exprgan":
        return {"paper": ExprGANConfig.paper, "lite": ExprGANConfig.lite, "tiny": ExprGANConfig.tiny}[base]()
    if model_id == "exprgan-msd":
        unsharp = not preset.endswith("no-unsharp")
        if preset in WILD_PRESETS:
            return ExprGANConfig.lite(encoder="msd", unsharp=unsharp)
        if base == "paper":
            return ExprGANConfig.paper_msd(unsharp=unsharp)
        if base == "tiny":
            return ExprGANConfig.tiny(encoder="msd", unsharp=True)
        return ExprGANConfig.lite(encoder="msd", unsharp=unsharp)
    if preset == "tight":
        return LmkGuidedConfig.tight()
    if preset in WILD_PRESETS:
        return LmkGuidedConfig.wild()
    c = {"paper": LmkGuidedConfig.paper, "lite": LmkGuidedConfig.lite, "tiny": LmkGuidedConfig.tiny}[base]()
    if preset.endswith("no-feature-init"):
        c = c.without_feature_init()
    if preset.endswith("no-label"):
        c = c.without_label()
    return c


def build(model_id: str, preset: str, *, steps: int | None = None, batch_size: int | None = None, seed: int = 0,
          stage1_fraction: float = 0.5, identity_weight: float = 0.0, **train_overrides):
    """(model config, objective, :class:`TrainConfig`, deviations) of an expression recipe (no data read).

    ``identity_weight`` > 0 (``lmk-guided`` only: the ExprGAN objective has its own identity term)
    adds the SFace identity loss of the output to its input face."""
    cfg = model_config(model_id, preset)
    deviations: list[str] = []
    if identity_weight and isinstance(cfg, ExprGANConfig):
        raise ExpressionRecipeError(f"{model_id} has the identity term of its paper; identity_weight applies to lmk-guided")
    if isinstance(cfg, ExprGANConfig):
        paper = preset.startswith("paper")
        # Paper 001: Adam lr 1e-4, betas (0.5, 0.999); batch 48 as the released ExprGAN's Oulu run.
        lr = 1e-4 if paper else LITE_EXPRGAN_LR
        train = TrainConfig(steps=steps or (40_000 if paper else 8_000), batch_size=batch_size or (48 if paper else 16),
                            optimizer="adam", g_lr=lr, d_lr=lr, betas=(0.5, 0.999), seed=seed)
        wild = preset in WILD_PRESETS
        weights = EXPRGAN_WEIGHTS if paper else (WILD_EXPRGAN_WEIGHTS if wild else LITE_EXPRGAN_WEIGHTS)
        objective: ExprGANObjective | LmkGuidedObjective = ExprGANObjective(
            cfg, stage1_steps=round(stage1_fraction * train.steps), weights=weights,
            id_size=None if paper or wild or cfg.size < 64 else 64,
            barrier_weight=0.0 if paper else LITE_EXPRGAN_CODE_BARRIER, identity="sface" if wild else "vgg")
        deviations += [
            ("identity loss 1 - cosine of SFace embeddings (the 112 px face-recognition crop taken from the aligned "
             "face) in place of VGG-Face features: a face-recognition network, as the paper's, available offline"
             if wild else
             "identity loss on ImageNet VGG16 conv1_2..conv5_2 features (offline asset) in place of VGG-Face"),
            f"two stages in one run: reconstruction for the first {round(stage1_fraction * 100)} % of the steps, "
            "then the full objective (eq. 4) with the released ExprGAN's weights 1, 1, 0.01, 0.01, 0.001",
            "the uniform prior on the identity code (D_z, weight 0.01) acts from the first step, not only in stage 2: "
            "without it the tanh code saturated to +-1 (every entry) within 25 steps and the encoder stopped learning",
            "total variation as the mean absolute difference of neighbours (the released code squares it)",
        ]
        if not paper:
            deviations += [
                f"Adam lr {LITE_EXPRGAN_LR} instead of 1e-4: at 1e-4 the reconstruction still sat at the mean face "
                "after 200 steps, and with the code barrier (next item) 5e-4 reconstructs faster than 2e-4 (training "
                "L1 0.224 against 0.245 over steps 401-500)",
                f"a barrier on the identity code, {LITE_EXPRGAN_CODE_BARRIER} x mean(-log(1 - z^2)), in G's loss (not in "
                "the paper): without it the tanh code saturated to +-1 at lr 2e-4 and 5e-4 alike (97 % of the entries "
                "past 0.99 on training faces after 2,500 steps of batch 8, D_z notwithstanding), which left the encoder "
                "without gradient and made every new face a corner of the code cube",
            ]
        if wild:
            deviations.append("trained as the paper trains: every labelled face (JAFFE and RaFD training subjects and "
                              "LFW's labelled photos but the held-out LFW people) reconstructed from its own code and "
                              "label, no paired targets; classes balanced by repetition (not in the paper)")
        elif not paper:
            deviations += [
                "identity features of 64-pixel versions of both images (CPU budget)",
                f"identity-loss weight {LITE_EXPRGAN_WEIGHTS[0]} instead of 1: with the ImageNet stand-in's feature "
                "scale, weight 1 made L_id five times L_pixel and held the reconstruction at the mean face (L1 0.39 "
                "after 250 steps of batch 8, against 0.25 with weight 0.1, which also reached the same L_id)",
                "trained on the JAFFE and RaFD training subjects only (no LFW): at lite width and this step budget "
                "LFW's 12,759 labelled faces did not help on the held-out validation subjects (exprgan-msd with the "
                "code barrier, step 2,000: reconstruction L1 0.128 with LFW against 0.126 without; SFace cosine of "
                "the synthesised expression to the real one 0.06 against 0.10)",
                "paired samples beside the reconstruction samples: the pixel loss of a neutral face's output with "
                "the same person's photo of the target expression (the paper reconstructs the input alone)",
            ]
        if cfg.encoder == "msd":
            deviations.append("the two dilated channels are concatenated before the FC layer (the paper's fusion is "
                              f"not specified); unsharp mask sigma {cfg.unsharp_sigma}, amount {cfg.unsharp_amount} "
                              "(not given by the paper)" if cfg.unsharp else "ablation: no unsharp mask")
        if "neutral" in cfg.expressions:
            deviations.append("a seventh class, neutral, so neutral training faces can be reconstructed with their own label")
    else:
        train = TrainConfig(steps=steps or (60_000 if preset.startswith("paper") else 8_000), batch_size=batch_size or 16,
                            optimizer="adam", g_lr=2e-4, d_lr=2e-4, betas=(0.5, 0.999), seed=seed)
        wild = preset in WILD_PRESETS
        objective = LmkGuidedObjective(cfg, face_gan_weight=WILD_FACE_GAN_WEIGHT if wild else 0.0,
                                       perceptual_size=WILD_PERCEPTUAL_SIZE if wild else None,
                                       identity_weight=identity_weight)
        if identity_weight:
            deviations.append(identity.card_deviation(identity_weight, "the output and its input face",
                                                      f"the '{cfg.template}' crop"))
        if cfg.template != "expression":
            deviations.append(TIGHT_CROP)
        if wild:
            deviations += [
                "training data: the studio pairs and LFW neutral -> expression pairs of two photos of one person "
                "(see the data line); the LFW pairs are given the expression template fitted to their neutral "
                "photo's own landmarks (the app's protocol), the studio pairs their target's landmarks (the paper's)",
                "LFW pairs are not compared with their target photo: held to their own input by L1 (weight 1 outside "
                f"the face box, {photo_pairs.BOX_ANCHOR:g} inside it), kept out of the image and geometry "
                "discriminators and L_per",
                f"a label-conditioned face-box discriminator (weight {WILD_FACE_GAN_WEIGHT:g}) on every item: the face "
                "box with zero mean and unit contrast beside the target label's maps; real = the target photo with its "
                "label, not real = the output with that label and the target photo with another label",
                "residual output: the decoder's last convolution (no tanh, zero at the start) adds a change to the "
                "input face",
                "2x nearest-neighbour up-sampling + 3x3 convolutions in the decoder in place of Table 2's transposed "
                "convolutions, which drew a grid over the faces",
                f"L_per on {WILD_PERCEPTUAL_SIZE} px versions of both images (CPU budget)",
            ]
        deviations += [
            "perceptual loss on ImageNet VGG16 conv1_2 (offline asset) in place of VGG19 conv1_2",
            f"{cfg.n_blocks} migration unit blocks and dropout {cfg.dropout} (not given by the paper); Adam betas (0.5, 0.999)",
            "feature-initialise networks = the ResNet-generator head that Table 2's decoder mirrors (not tabulated)",
        ]
        if cfg.merge_heatmaps:
            deviations.append("the 68 landmark heatmaps merged into one map (per-pixel maximum) for the generator and "
                              "the geometry discriminator (CPU budget)")
        if not cfg.feature_init:
            deviations.append("ablation: no feature-initialise networks (space-to-depth + 1x1 projection instead)")
        if not cfg.label_maps:
            deviations.append("ablation: no expression label maps before the decoder (w/o expression label smooth)")
    if cfg.channels == 1:
        deviations.append("trained on luminance (BT.601 Y) of the grey JAFFE and RaFD faces; chroma from the input")
    if train_overrides:
        train = dataclasses.replace(train, **train_overrides)
    if not preset.startswith("paper"):
        paper_steps, paper_batch = (40_000, 48) if isinstance(cfg, ExprGANConfig) else (60_000, 16)
        deviations.append(f"CPU budget: {train.steps} steps of batch {train.batch_size} (the paper preset: "
                          f"{paper_steps} steps of batch {paper_batch}) and narrower layers (config below)")
    return cfg, objective, train, tuple(deviations)


def model_card(model_id: str, preset: str, config: ExprGANConfig | LmkGuidedConfig, *, steps_done: int, train,
               data_desc: str, deviations: Sequence[str], history: list[dict[str, float]] | None = None) -> str:
    """Markdown model card of a trained expression generator (``train``: its :class:`TrainConfig`)."""
    gen = ExprGANGenerator(config) if isinstance(config, ExprGANConfig) else LmkGuidedGenerator(config)
    grey = config.channels == 1
    lines = [
        f"# {model_id} ({preset}, expression)",
        "",
        f"Paper: {papers.model_citation(model_id, registry.get(model_id).paper)}.",
        "",
        f"- input -> output: {config.size} -> {config.size} aligned faces (facegen.faces template "
        f"'{getattr(config, 'template', 'expression')}'), "
        + ("luminance (BT.601 Y); chroma from the input" if grey else "RGB"),
        f"- expressions: {', '.join(config.expressions)}",
        "- conditioning: " + ("expression label + intensity in [0, 1] (the expression code's magnitude)"
                              if isinstance(config, ExprGANConfig) else
                              "expression label + target 68-point landmarks (ground truth, a reference photo, or the "
                              "stored per-expression template fitted to the input face, scaled by the intensity, which also scales "
                              "the output's change from the input)"),
        f"- generator parameters at inference: {count_parameters(gen):,}",
        f"- training data: {data_desc}",
        f"- training: {steps_done} steps, batch {train.batch_size}, {train.optimizer} (G lr {train.g_lr}, "
        f"D lr {train.d_lr}, betas {tuple(train.betas)}), EMA {train.ema_decay} (weights shipped)",
        "",
        "Deviations from the paper:",
        "",
        *[f"- {d}" for d in deviations],
    ]
    if history:
        last = history[-1]
        # The trainer's baseline ("bicubic") is the unchanged input face here: same size in and out.
        lines += ["", f"Validation at step {int(last['step'])} (pairs of held-out training subjects, "
                  "against the target expression; PSNR on luminance; `_input`: the unchanged input face): "
                  + ", ".join(f"{k.replace('_bicubic', '_input')} {v:.4g}" for k, v in last.items() if k != "step")]
    lines += ["", "Config:", "", "```", *[f"{k} = {v}" for k, v in dataclasses.asdict(config).items()], "```", ""]
    return "\n".join(lines)
