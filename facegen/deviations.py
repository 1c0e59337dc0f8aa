"""Every departure of a shipped model from its paper, as data.

One list per registered model: each :class:`Deviation` names its area (architecture, objective,
optimiser, data, evaluation), what the paper does, what the shipped (lite) recipe does, and the
recipe fields it accounts for (``model.<config field>``, ``objective.<attribute>``,
``train.<TrainConfig field>``, ``recipe.<Recipe field>`` such as ``recipe.degradation``). The model cards' "Deviations" section
(``python -m benchmarks.cards``) and the leaderboard's deviations view are generated from it;
``tests/test_deviations.py`` fails when the shipped recipe differs from the paper preset in a
field that no entry names. :data:`SHIPPED` gives each model's training command as recipe
arguments (the README's table), :data:`TASK_RUNS` the options in which one task's checkpoint differs from
them, and :data:`FINE_TUNES` the second run of the checkpoints that were fine-tuned from that first run's
export.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

AREAS = ("architecture", "objective", "optimiser", "data", "evaluation")


@dataclass(frozen=True)
class Deviation:
    area: str
    paper: str
    here: str
    fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.area not in AREAS:
            raise ValueError(f"deviation area must be one of {AREAS}; got {self.area!r}")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


#: model id -> (recipe model id, preset, recipe options per task) of the shipped checkpoint.
SHIPPED: dict[str, tuple[str, str, dict[str, Any]]] = {
    "stackedgan": ("stackedgan", "lite", {"steps": 3500, "batch_size": 16}),
    "psgan": ("psgan", "lite", {"steps": 3000, "batch_size": 16, "l1_weight": 10.0, "degradation": "bicubic",
                                "optimizer": "adam"}),
    "p2p-bilinear": ("p2p-bilinear", "wild", {"steps": 3000, "batch_size": 8}),
    "p2p-two-step": ("p2p-two-step", "wild", {"steps": 3000, "batch_size": 8}),
    "p2p-serial": ("p2p-serial", "wild", {"steps": 3000, "batch_size": 8}),
    "p2p-parallel": ("p2p-parallel", "wild", {"steps": 3000, "batch_size": 8}),
    "p2p-parallel-no-residual": ("p2p-parallel", "wild-no-residual", {"steps": 3000, "batch_size": 8}),
    "p2p-sge": ("p2p-sge", "wild", {"steps": 3000, "batch_size": 8}),
    "exprgan": ("exprgan", "lite", {"steps": 3000, "batch_size": 8}),
    "exprgan-msd": ("exprgan-msd", "lite", {"steps": 3000, "batch_size": 8}),
    "exprgan-msd-no-unsharp": ("exprgan-msd", "no-unsharp", {"steps": 3000, "batch_size": 8}),
    "lmk-guided": ("lmk-guided", "wild", {"steps": 1200, "batch_size": 8}),
    "lmk-guided-no-feature-init": ("lmk-guided", "no-feature-init", {"steps": 4000, "batch_size": 8}),
    "lmk-guided-no-label": ("lmk-guided", "no-label", {"steps": 4000, "batch_size": 8}),
}

#: (model id, task) -> the recipe options of a fine-tune that follows SHIPPED's run for that task's
#: checkpoint, started from its export (``--init-from``); they replace SHIPPED's options of the same name.
FINE_TUNES: dict[tuple[str, str], dict[str, Any]] = {
    ("stackedgan", "sr-x4"): {"steps": 600, "identity_weight": 5.0},
    ("stackedgan", "sr-x8"): {"steps": 300, "identity_weight": 5.0, "g_lr": 5e-5, "d_lr": 5e-5, "l1_weight": 1000.0,
                              "studio_faces": 8},
    ("psgan", "sr-x4"): {"steps": 2000, "l1_weight": 100.0},
}


#: (model id, task) -> the recipe options in which that task's checkpoint was trained unlike SHIPPED's (its
#: first run; they replace SHIPPED's options of the same name).
TASK_RUNS: dict[tuple[str, str], dict[str, Any]] = {
    ("stackedgan", "sr-x2"): {"steps": 1250, "zoom_out": (0.625,)},
}


def shipped_options(model_id: str, task: str) -> dict[str, Any]:
    """The recipe options of the shipped checkpoint of ``model_id`` on ``task`` (its last run)."""
    return {**SHIPPED[model_id][2], **TASK_RUNS.get((model_id, task), {}), **FINE_TUNES.get((model_id, task), {})}


#: The paper preset each shipped preset is compared with.
PAPER_PRESET = {"lite": "paper", "wild": "paper", "tight": "paper", "wild-no-residual": "paper",
                "no-unsharp": "paper-no-unsharp", "no-feature-init": "paper-no-feature-init",
                "no-label": "paper-no-label"}

_CPU = "CPU budget: the shipped steps and batch size (README table) instead of the paper's schedule"
_GREY = Deviation("data", "colour images", "trained and run on luminance (BT.601 Y); chroma from the input (up-sampled)",
                  ("model.channels",))

_SR_DATA = Deviation("data", "002: CelebA; 003: 350 FFHQ faces; augmentation unstated",
                     "LFW + lfw_expressions colour crops aligned like the CelebA test faces, horizontal flip, zoom "
                     "+-5 % and shift +-3 % (--augment standard)")

_SMILE = (
    Deviation("architecture", "256 px paper networks (widths of Pix2Pix, SGE 40..320 channels)",
              "lite widths: 64 -> 128 px, ngf 16, ndf 32, multiplier capped at 4, SR ngf 12, SGE 8..32 channels",
              ("model.lr_size", "model.ngf", "model.ndf", "model.max_mult", "model.up_channels", "model.sr_ngf",
               "model.sr_max_mult", "model.sge_channels")),
    Deviation("objective", "cGAN conditioned on the input (its own resolution)",
              "the discriminator's condition is the bicubic 2x up-sampling of the 64 px input (the output's size)"),
    Deviation("data", "own video frames (41 people, a straight face turning into a smile), augmentation unstated",
              "JAFFE + RaFD neutral->happy pairs of the training subjects (repeated to a fifth of the items) and "
              "LFW neutral->happy pairs of two photos of one person (facegen.data.wild: at most 20 per person, "
              "held-out people never used, pairs SFace does not verify as one person dropped), horizontal flip and "
              "small zoom/shift. The LFW pairs are in register only up to their 5 landmarks: they are never compared "
              "with their target pixel by pixel, but held to their own input by L1 (weight 1 outside the face box, "
              "0.1 inside it) and by the light inside the face box (its 4x4 block means, beyond 4 grey levels, "
              "weight 1), and take no part in the cGAN", ("objective.face_box", "objective.light_weight")),
    Deviation("objective", "one conditional PatchGAN on (input, image)",
              "also an unconditional PatchGAN on the face box, judged at the input's resolution with each box "
              "given zero mean and unit contrast (real: every pair's target smile), its non-saturating loss added "
              "with weight 1: the pairs of two photos learn the smile from it, not from the cGAN",
              ("objective.face_gan_weight",)),
    Deviation("data", "the face cropped by the 6.4 d square rule (at lite size the face is about 50 px wide)",
              "the tight 5-point 'celeba' crop (the face fills the 128 px); the benchmark's smile protocols and the "
              "app crop the same way", ("model.template",)),
    Deviation("architecture", "2x up-sampling by 4x4 stride-2 transposed convolutions (Pix2Pix)",
              "2x nearest-neighbour up-sampling + a 3x3 convolution in every decoder layer (resize-convolution): "
              "the transposed convolutions drew a 2-pixel grid over the faces; the 3x3 kernels make the networks "
              "about 28 % smaller", ("model.upsample",)),
    _GREY,
    Deviation("optimiser", "Adam 2e-4, batch 20, 12,300 steps", _CPU, ("train.steps", "train.batch_size")),
)
_RESIDUAL = Deviation("architecture", "each network outputs the image",
                      "residual outputs: each image-making network adds its input, bicubic-resized to its output "
                      "size, to its tanh output; the last layers start at zero, so an untrained model returns the "
                      "resized input (the wild-no-residual preset is the same recipe without it)", ("model.residual",))

_EXPR_WIDTHS = ("model.enc_channels", "model.gen_channels", "model.q_hidden", "model.q_shared", "model.dec_min",
                "model.d_fc")
_EXPRGAN = (
    Deviation("architecture", "ExprGAN widths (encoder 64..1024, FC 1024)", "lite widths (encoder 16..96, FC 128)",
              _EXPR_WIDTHS),
    Deviation("architecture", "six expression classes", "a seventh class, neutral, so neutral faces reconstruct",
              ("model.expressions",)),
    Deviation("objective", "identity-preserving loss weight 1 on full-size faces; no code barrier",
              "identity weight 0.1 on 64 px faces and a code barrier (weight 0.01)",
              ("objective.weights", "objective.id_size", "objective.barrier_weight")),
    Deviation("optimiser", "Adam 1e-4, batch 48, 20,000 + 40,000 steps",
              "Adam 5e-4; " + _CPU + "; stage 1 of 4,000 steps",
              ("train.g_lr", "train.d_lr", "train.steps", "train.batch_size", "objective.stage1_steps")),
    Deviation("data", "001: Oulu-CASIA (90 % of 1,440 images), each face reconstructed from its own code and label",
              "the JAFFE + RaFD faces of the training subjects reconstructed with their own label, plus paired "
              "samples: a neutral face's output compared pixel by pixel with the same person's photo of the target "
              "expression (the `wild` preset trains as the paper does)"),
    _GREY,
)

DEVIATIONS: dict[str, tuple[Deviation, ...]] = {
    "stackedgan": (
        Deviation("architecture", "widths not given (Pix2Pix's ngf = ndf = 64)",
                  "lite widths ngf 16, ndf 32, multiplier capped at 4, 32-channel up-sampling stages; 32 px input at x4",
                  ("model.ngf", "model.ndf", "model.max_mult", "model.up_channels", "model.lr_size")),
        Deviation("architecture", "'one or multiple convolutional layers and one Relu' after the up-sampling",
                  "a ReLU after every 1x1 convolution; each stage emits its image through a 1x1 conv + tanh"),
        Deviation("architecture", "each stage synthesises its image",
                  "global residual: each stage predicts a correction to the bicubic-resized LR input",
                  ("model.residual_input",)),
        Deviation("objective", "L_BB' on G1's conditional discriminator",
                  "an extra unconditional discriminator head for L_BB'"),
        Deviation("optimiser", "G1 trained first, then fine-tuned with the up-sampling generators",
                  "all stages trained jointly from the start; Pix2Pix's Adam 2e-4 (beta1 0.5), lambda 100; " + _CPU,
                  ("train.steps", "train.batch_size")),
        Deviation("objective", "pixel (L1) and adversarial losses only",
                  "x4 and x8 each then fine-tuned from its checkpoint with an SFace identity loss, weight 5 (1 - "
                  "cosine of the output's and the HR face's embeddings): x4 600 steps; x8 300 steps at learning rate "
                  "5e-5 with lambda (L1) 1000 instead of 100, so that the pixel term leads at x8, where the "
                  "adversarial term draws detail the 16 px input does not hold; as SFace is also a benchmark judge, "
                  "the leaderboard reports an independent one (dlib) beside it",
                  ("objective.identity_weight", "objective.l1_weight", "train.g_lr", "train.d_lr")),
        Deviation("evaluation", "x4 and x8 (16 -> 64 / 32 -> 128 / 64 -> 256 and 16 -> 128); the stack's 2x image "
                  "is only a step on the way to 4x", "also shipped at x2 (64 -> 128): the same stack with one "
                  "up-sampling stage, trained and benchmarked as a model of its own"),
        Deviation("data", "CelebA faces at the template's size",
                  "stackedgan-x2 also trains on every face aligned again at 0.625 of the template's size (the photo "
                  "around it fills the crop; --zoom-out 0.625): LFW's faces are soft at the template's size (bicubic "
                  "x2 PSNR-Y 38.2 dB on the held-out LFW faces, 33.0 on the CelebA test faces), at 0.625 they carry "
                  "about as much detail per pixel (33.5 dB), and an x2 model needs that detail to learn from",
                  ("recipe.zoom_out",)),
        Deviation("data", "CelebA faces at the template's size",
                  "the x8 fine-tune adds 8 copies of the JAFFE and RaFD training subjects' studio photos (--studio-faces "
                  "8; every expression, the people held out of the smile and expression tasks never): LFW's faces are "
                  "enlarged to fill the crop, these are the only faces sharp at the template's size",
                  ("recipe.studio_faces",)),
        _SR_DATA, _GREY,
    ),
    "psgan": (
        Deviation("architecture", "512 -> 1024 px; discriminator strides, dropout and widths unstated",
                  "32 -> 128 (x4) / 64 -> 128 (x2); strides, dropout 0.25 and widths ours", ("model.lr_size",)),
        Deviation("architecture", "input normalised with ImageNet RGB statistics",
                  "lite: normalised with grey (luminance) statistics"),
        Deviation("objective", "adversarial BCE only",
                  "adds 10 x L1 (normalised space); psgan-x4 then fine-tuned from that checkpoint (2,000 steps) with "
                  "100 x L1", ("objective.l1_weight",)),
        Deviation("optimiser", "SGD lr 0.02 (60 epochs) then 0.005", "Adam; " + _CPU,
                  ("train.optimizer", "train.steps", "train.batch_size")),
        Deviation("data", "7x7 Gaussian blur (sigma 5) + resize", "PIL bicubic down-sampling (the benchmark's LR)",
                  ("recipe.degradation",)),
        Deviation("optimiser", "initialisation unstated (the framework's default)",
                  "the lite recipe initialises each sub-pixel convolution by ICNR (Aitken et al. 2017) against the "
                  "pixel-shuffle checkerboard; psgan-x4 is trained from it (two shuffle-period peaks left on real "
                  "faces, 4.9 and 4.8 against a threshold of 4; 11.9 and more without it), psgan-x2's weights predate "
                  "it (default initialisation, its config says so; no peak measured)",
                  ("model.shuffle_init",)),
        _SR_DATA, _GREY,
    ),
    **{m: _SMILE + (_RESIDUAL,) for m in ("p2p-bilinear", "p2p-two-step", "p2p-parallel")},
    "p2p-serial": _SMILE + (_RESIDUAL,) + (
        Deviation("objective", "L_SR: the SR network's output on Pix2Pix's output against the real smile at 2x",
                  "so on the registered studio pairs; on the LFW pairs of two photos (no 2x target in register) "
                  "the SR network is held to its own input, Pix2Pix's output (detached), by the same L1 and light "
                  "terms: held to the neutral face, it learnt to undo the smile"),
    ),
    "p2p-parallel-no-residual": _SMILE,
    "p2p-sge": _SMILE + (_RESIDUAL,) + (
        Deviation("objective", "the SGE always reads the HR neutral face",
                  "half of the training samples guide the SGE with the up-sampled input instead, so the model also "
                  "runs without the HR face (the app)", ("objective.guide_fallback",)),
        Deviation("evaluation", "guided by the HR neutral face", "benchmark: given the 128 px neutral face "
                  "(privileged; marked on the leaderboard); app: the up-sampled input"),
    ),
    "exprgan": _EXPRGAN,
    "exprgan-msd": _EXPRGAN + (
        Deviation("architecture", "fusion of the two dilated channels unstated", "concatenated before the FC layer"),),
    "exprgan-msd-no-unsharp": _EXPRGAN + (
        Deviation("architecture", "fusion of the two dilated channels unstated", "concatenated before the FC layer"),),
}


_LMK_EVALUATION = Deviation(
    "evaluation", "given the target's landmarks",
    "headline: the target label only, as in the app (the stored expression template fitted to the landmarks "
    "found on the input face); also scored given the ground-truth target's 68 dlib landmarks (the paper's "
    "protocol; privileged, marked on the leaderboard)")


_LMK_INTENSITY = Deviation(
    "evaluation", "no intensity: the target landmarks alone set the expression",
    "an intensity in [0, 1] (the app's slider; 1 in the benchmark) scales the fitted template's landmark shift "
    "and the change the network makes, output = input + intensity x (network output - input): the shift alone "
    "moved the shipped model's output by about 1/255, too little to see")


def _lmk(extra: tuple[Deviation, ...] = ()) -> tuple[Deviation, ...]:
    return (
        Deviation("architecture", "paper widths and 68 separate landmark heatmaps",
                  "lite widths, 6 residual blocks instead of 9; the 68 heatmaps merged into one map (per-pixel maximum)",
                  ("model.ngf", "model.ndf", "model.n_blocks", "model.n_layers", "model.heatmap_sigma", "model.merge_heatmaps")),
        Deviation("objective", "paper loss weights", "lite loss weights (see the recipe)", ("objective.weights",)),
        Deviation("optimiser", "paper schedule", _CPU, ("train.steps", "train.batch_size", "train.g_lr", "train.d_lr")),
        _LMK_EVALUATION, _LMK_INTENSITY, _GREY, *extra,
    )


_LMK_STUDIO = Deviation("data", "CK+ and Oulu-CASIA", "JAFFE + RaFD pairs of the training subjects")
_LMK_WILD = (
    Deviation("data", "CK+ and Oulu-CASIA (studio sequences)",
              "JAFFE + RaFD pairs of the training subjects (a third of the items; given their target's landmarks) "
              "and LFW neutral -> expression pairs of two photos of one person (facegen.data.wild: at most 20 per "
              "person and expression, held-out people never used, pairs SFace does not verify as one person dropped; "
              "classes balanced by repetition, at most 8 copies), given the expression template fitted to the neutral "
              "photo's own landmarks (the app's protocol). The LFW pairs are never compared with their target pixel "
              "by pixel: held to their own input by L1 (weight 1 outside the face box, 0.1 inside it), kept out of "
              "the image and geometry discriminators and the perceptual loss"),
    Deviation("objective", "image and geometry discriminators",
              "also a label-conditioned PatchGAN on the face box of every item (zero mean, unit contrast, the "
              "label's maps beside it; real: the target photo with its label; not real: the output with that label "
              "and the target photo with another label), weight 2: the LFW pairs learn the expression from it",
              ("objective.face_gan_weight",)),
    Deviation("objective", "VGG19 conv1_2 perceptual loss on the 128 px images",
              "on 64 px versions of both images (CPU budget)", ("objective.perceptual_size",)),
    Deviation("architecture", "the decoder outputs the image (tanh)",
              "residual output: its last convolution (no tanh, zero at the start) adds a change to the input face, "
              "so an untrained model returns the input", ("model.residual",)),
    Deviation("architecture", "3x3 stride-2 transposed convolutions in the decoder (Table 2)",
              "2x nearest-neighbour up-sampling + 3x3 convolution: the transposed ones drew a grid over the faces "
              "(seen on LFW photos after 200 steps)", ("model.upsample",)),
)
DEVIATIONS.update({"lmk-guided": _lmk(_LMK_WILD), "lmk-guided-no-feature-init": _lmk((_LMK_STUDIO,)),
                   "lmk-guided-no-label": _lmk((_LMK_STUDIO,))})


def of(model_id: str) -> tuple[Deviation, ...]:
    """The deviations of ``model_id`` (empty for baselines and reference rows)."""
    return DEVIATIONS.get(model_id, ())


def markdown(model_id: str) -> list[str]:
    """A Markdown table of the model's deviations (for its card and the leaderboard)."""
    devs = of(model_id)
    if not devs:
        return []
    lines = ["| area | paper | here |", "|---|---|---|"]
    return lines + [f"| {d.area} | {d.paper} | {d.here} |" for d in devs]
