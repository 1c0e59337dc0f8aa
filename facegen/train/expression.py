"""Objectives of the expression papers (see :class:`facegen.train.trainer.Objective`).

Batches (from :mod:`facegen.train.expression_data`) hold float [0, 1] NCHW ``lr`` (the source
face) and ``hr`` (the target face: the same image for ExprGAN's reconstruction samples, the
same person's expression for paired samples), ``label`` (N,) int64 indices into the model's
``config.expressions`` (the target's expression) and, for ``lmk-guided``, ``landmarks``
(N, 68, 2) float32: the target's 68 points in crop pixels.

Pretrained feature networks: ExprGAN's identity loss uses VGG-Face conv1_2 ... conv5_2 and
paper 004's perceptual loss VGG19 conv1_2; neither file is obtainable offline here, so both use
the ImageNet VGG16 of :func:`facegen.assets.vgg16_features` at the same-named layers (VGG-Face
has VGG16's architecture, so the layers correspond one to one; for VGG19 conv1_2 is the same
layer of an identical first block, with different trained weights).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facegen import assets, identity, losses, papers, registry
from facegen.models.exprgan import (
    ExprGANCodeDiscriminator,
    ExprGANConfig,
    ExprGANGenerator,
    ExprGANImageDiscriminator,
)
from facegen.models.layers import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    count_parameters,
    init_normal,
    patchgan,
    patchgan_layers_for,
)
from facegen.models.lmk_guided import (
    LmkGuidedConfig,
    LmkGuidedDiscriminators,
    LmkGuidedGenerator,
)
from facegen.train import photo_pairs
from facegen.train.expression_data import TEMPLATE
from facegen.train.trainer import TrainConfig

Batch = dict[str, Tensor]
Logs = dict[str, float]

#: torchvision ``vgg16().features`` indices of the convolutions conv1_2, conv2_2, conv3_2, conv4_2, conv5_2.
VGG16_CONV = {"conv1_2": 2, "conv2_2": 7, "conv3_2": 12, "conv4_2": 19, "conv5_2": 26}
#: beta_l of eq. 1 for those layers. The released ExprGAN divides each layer's mean absolute
#: difference by H_l * W_l of a 224-pixel VGG-Face pass (224^2, 112^2, 56^2, 28^2, 14^2) on 0-255
#: inputs; ours are ImageNet-normalised, about 1 / (255 * 0.226) = 1 / 58 of that scale, hence 58 / (H_l W_l).
EXPRGAN_ID_WEIGHTS = tuple(58.0 / s**2 for s in (224, 112, 56, 28, 14))
#: (l1 L_id, l2 L_Q, l3 L_adv^img, l4 L_adv^z, l5 L_tv) of eq. 4: the released ExprGAN's values.
EXPRGAN_WEIGHTS = (1.0, 1.0, 0.01, 0.01, 0.001)
#: The lite recipe's weights (identity 0.1), learning rate and code barrier (see the deviations in :func:`build`).
LITE_EXPRGAN_WEIGHTS = (0.1, 1.0, 0.01, 0.01, 0.001)
LITE_EXPRGAN_LR = 5e-4
LITE_EXPRGAN_CODE_BARRIER = 0.01


def code_barrier(z: Tensor) -> Tensor:
    """mean(-log(1 - z^2)) of a tanh code z = tanh(a): 2 log cosh(a), about a^2 while |a| is small.

    Its gradient with respect to the pre-activation a is 2 tanh(a), so it keeps pulling a code
    entry back from the tanh's flat ends, where neither the reconstruction nor D_z can move it
    any more (tanh'(a) = 1 - z^2 vanishes). Entries that float32 has already rounded to +-1 stay
    there: the barrier prevents saturation, it does not undo it.
    """
    return -torch.log1p(-z.square().clamp(max=1.0 - 1e-6)).mean()


class FeatureExtractor(nn.Module):
    """Frozen VGG-style ``features`` -> the outputs of chosen layers, for images in [-1, 1].

    Grey images are repeated to three channels; ImageNet normalisation is applied. ReLUs run
    out of place so that a captured convolution output is not overwritten by the next layer.
    """

    def __init__(self, features: nn.Sequential, layers: Sequence[int]) -> None:
        super().__init__()
        self.layers = tuple(sorted(layers))
        self.features = nn.Sequential(*list(features)[: self.layers[-1] + 1]).eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> FeatureExtractor:  # always frozen, always eval
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h = ((x + 1.0) / 2.0 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = F.relu(h) if isinstance(layer, nn.ReLU) else layer(h)
            if i in self.layers:
                out.append(h)
        return out


def vgg16_extractor(layers: Sequence[str]) -> FeatureExtractor:
    """The ImageNet VGG16 (offline asset) at the named conv layers (see :data:`VGG16_CONV`)."""
    return FeatureExtractor(assets.vgg16_features(), [VGG16_CONV[n] for n in layers])


def feature_l1(net: Callable[[Tensor], list[Tensor]], a: Tensor, b: Tensor, weights: Sequence[float]) -> Tensor:
    """sum_l w_l * mean |phi_l(a) - phi_l(b)| with ``b`` the (gradient-free) reference."""
    fa = net(a)
    with torch.no_grad():
        fb = net(b)
    return sum(w * losses.l1(x, y) for w, x, y in zip(weights, fa, fb))  # type: ignore[return-value]


def _frozen_net(make: Callable[[], nn.Module]) -> nn.Module:
    """Build a pretrained loss network without touching the global RNG: it is built lazily, at the
    first generator step of a process, and its random initialisation (overwritten by the loaded
    weights) must not shift the training's random stream, or a resumed run would differ."""
    with torch.random.fork_rng(devices=[]):
        return make()


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


# -------------------------------------------------------------------------------------------------
# ExprGAN (paper 001 and its baseline)


class ExprGANObjective:
    """Eq. 4 of paper 001 (ExprGAN's objective), in two stages.

    G (encoder + decoder) minimises L_pixel + l1 L_id + l2 L_Q + l3 L_adv^img + l4 L_adv^z + l5 L_tv;
    D_img maximises L_adv^img and minimises L_Q (the Q heads share its trunk); D_z maximises L_adv^z
    against the uniform prior on [-1, 1]^code_dim. Stage 1 (``reconstruction``) keeps l3 = l5 = 0
    while both discriminators keep training, stage 2 (``full``) switches them on; weights 1, 1,
    0.01, 0.01, 0.001 are the released ExprGAN's values. The prior on the code (l4) acts from the
    first step: without it the tanh code saturates to +-1 within a few dozen steps of
    reconstruction (every entry, measured on the lite model), its gradient vanishes and the
    encoder stops learning for good. The stage follows the trainer's step: ``reconstruction``
    for the first ``stage1_steps`` steps, then ``full``.
    The trainer reports the step through :meth:`set_step` (exact on resume); without that call
    the objective counts its own generator steps.

    L_id compares the features of the synthesised and the target image at conv1_2 ... conv5_2
    (weights ``id_weights``, default :data:`EXPRGAN_ID_WEIGHTS`) of ``identity_net`` (default: ImageNet VGG16, standing in for
    VGG-Face). L_Q is the squared error of Q's estimate of the expression code, summed over
    classes. ``identity="sface"`` replaces that term by ``1 - cos`` of the SFace embeddings of the two
    images (:func:`facegen.identity.identity_loss`; the ``wild`` recipe). ``id_size`` resizes both images before the identity network (the lite recipe uses 64 px:
    the VGG16 pass at 128 px dominates a CPU step). L_tv is :func:`facegen.losses.total_variation` (the released code uses a squared
    variant). ``barrier_weight`` (0 in the paper's objective) adds that weight times
    :func:`code_barrier` of the identity code to G's loss in both stages. The logs carry
    ``z_saturated``, the fraction of code entries past 0.99 in the batch.
    """

    name = "exprgan"

    def __init__(self, config: ExprGANConfig, *, stage1_steps: int = 0, weights: Sequence[float] = EXPRGAN_WEIGHTS,
                 id_weights: Sequence[float] = EXPRGAN_ID_WEIGHTS,
                 identity_net: nn.Module | None = None, id_size: int | None = None,
                 barrier_weight: float = 0.0, identity: str = "vgg") -> None:
        if identity not in ("vgg", "sface"):
            raise ValueError(f"identity must be 'vgg' or 'sface'; got {identity!r}")
        self.identity = identity
        self.config = config
        self.barrier_weight = float(barrier_weight)
        self.name = "exprgan-msd" if config.encoder == "msd" else "exprgan"
        self.stage1_steps = int(stage1_steps)
        self.weights = tuple(float(w) for w in weights)
        if len(self.weights) != 5:
            raise ValueError("weights are (l1 id, l2 Q, l3 adv_img, l4 adv_z, l5 tv)")
        self.id_weights = tuple(id_weights)
        self.G = ExprGANGenerator(config)
        self.D = ExprGANImageDiscriminator(config)
        self.Dz = ExprGANCodeDiscriminator(config)
        self._g: nn.Module = self.G
        self._d: nn.Module = self.D
        self._dz: nn.Module = self.Dz
        self._identity = identity_net
        self.id_size = id_size
        self.step = 0
        self._cache: tuple[Tensor, ...] | None = None

    # -- protocol ------------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "Dz": self.Dz}

    def bind(self, modules: dict[str, nn.Module]) -> None:
        self._g, self._d, self._dz = modules["G"], modules["D"], modules["Dz"]

    def set_step(self, step: int) -> None:
        """The trainer's step before ``d_loss``; decides the stage."""
        self.step = int(step)

    @property
    def stage(self) -> str:
        return "reconstruction" if self.step < self.stage1_steps else "full"

    @property
    def identity_net(self) -> nn.Module:
        if self._identity is None:
            self._identity = _frozen_net(lambda: vgg16_extractor(tuple(VGG16_CONV)))
        return self._identity.to(_device_of(self.G))

    def _q_loss(self, q: Tensor, code: Tensor) -> Tensor:
        n, k, d = q.shape[0], self.config.n_classes, self.config.rb_dim
        return ((q - code) ** 2).view(n, k, d).mean(dim=(0, 2)).sum()

    def _dz_logits(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """D_z's logits on a fresh draw from the uniform prior and on ``z``, in one batch: D_z's
        batch normalisation must see both together. Run separately, each batch is normalised by its
        own statistics, which erases what tells a saturated code from a uniform one (the spread of
        every projection) and leaves D_z at chance."""
        prior = torch.rand_like(z) * 2.0 - 1.0
        logits = self._dz(torch.cat([prior, z]))
        return logits[: len(z)], logits[len(z):]

    def d_loss(self, batch: Batch) -> tuple[Tensor, Logs]:
        c = self.config
        if batch["lr"].shape[1] != c.channels:
            raise ValueError(f"{self.name} is a {c.channels}-channel model; the batch has {batch['lr'].shape[1]} channels")
        g = self.G
        src, tgt, labels = g.preprocess(batch["lr"]), g.preprocess(batch["hr"]), batch["label"]
        n = src.shape[0]
        magnitude = torch.rand(n, c.rb_dim, device=src.device) * 2.0 - 1.0  # |U(-1, 1)|: the controller takes abs
        code = g.code(labels, magnitude)
        fake, z = self._g(src, code)
        self._cache = (fake, z, tgt, labels, code)
        real_logit, _ = self._d(tgt, labels)
        fake_logit, q_fake = self._d(fake.detach(), labels)
        q = self._q_loss(q_fake, code)
        d_img = losses.gan_d_loss(real_logit, fake_logit)
        prior_logit, z_logit = self._dz_logits(z.detach())
        d_z = losses.gan_d_loss(prior_logit, z_logit)
        logs = {"D_img": float(d_img.detach()), "D_q": float(q.detach()), "D_z": float(d_z.detach())}
        return d_img + q + d_z, logs

    def g_loss(self, batch: Batch) -> tuple[Tensor, Logs]:
        if self._cache is None:
            raise RuntimeError("g_loss needs the generator output of d_loss from the same step")
        fake, z, tgt, labels, code = self._cache
        self._cache = None
        l_id, l_q, l_img, l_z, l_tv = self.weights
        full = self.stage == "full"
        pixel = losses.l1(fake, tgt)
        a, b = fake, tgt
        if self.id_size is not None and self.id_size != fake.shape[-1]:
            a = F.interpolate(fake, size=self.id_size, mode="bilinear", align_corners=False, antialias=True)
            b = F.interpolate(tgt, size=self.id_size, mode="bilinear", align_corners=False, antialias=True)
        if self.identity == "sface":  # 1 - cosine of SFace embeddings (the crop is found from the template)
            ident = identity.identity_loss(fake, tgt, TEMPLATE)
        else:
            ident = feature_l1(self.identity_net, a, b, self.id_weights)
        logit, q_fake = self._d(fake, labels)
        q = self._q_loss(q_fake, code)
        adv_z = losses.gan_g_loss(self._dz_logits(z)[1])
        total = pixel + l_id * ident + l_q * q + l_z * adv_z
        logs = {"G_pixel": float(pixel.detach()), "G_id": float(ident.detach()), "G_q": float(q.detach()),
                "G_adv_z": float(adv_z.detach()), "stage": 1.0 if not full else 2.0,
                "z_saturated": float((z.detach().abs() > 0.99).float().mean())}
        if self.barrier_weight:
            barrier = code_barrier(z)
            total = total + self.barrier_weight * barrier
            logs["G_code"] = float(barrier.detach())
        if full:
            adv_img = losses.gan_g_loss(logit)
            tv = losses.total_variation(fake)
            total = total + l_img * adv_img + l_tv * tv
            logs.update({"G_adv_img": float(adv_img.detach()), "G_tv": float(tv.detach())})
        self.step += 1
        return total, logs


# -------------------------------------------------------------------------------------------------
# Landmark- and label-guided synthesis (paper 004)


class LmkGuidedObjective:
    """Eqs. 4-7 of paper 004: l1 L_GAN + l2 L_per + l3 L_pixel with (l1, l2, l3) = (5, 10, 10).

    L_GAN sums the image discriminator's game on (source, image) pairs and the geometry
    discriminator's on (image, target heatmaps) pairs (cross-entropy, real = 1, generated = 0;
    the generator takes the non-saturating form). L_per is the mean absolute difference of
    conv1_2 features (ImageNet VGG16 standing in for VGG19), L_pixel the mean absolute pixel
    difference to the ground-truth target.

    The ``wild`` recipe (not in the paper; batches of :class:`facegen.train.expression_data.WildExpressionSet`)
    adds pairs of two photos of one person (``registered`` 0), given the expression template fitted
    to their input's landmarks. They take no part in the image and geometry discriminators' games or
    in L_per (a conditional discriminator would tell two photos apart by the background, and no real
    photo has the template's geometry) and are held to their own input instead of compared with their
    target (:func:`facegen.train.photo_pairs.reconstruction`). A third,
    label-conditioned discriminator (``face_gan_weight`` > 0) judges the face box of every image with
    zero mean and unit contrast, with the target label as maps beside it: real = the target photo
    with its label, generated = the output with that label, and the target photo with another
    label (drawn at random) counts as not real too, so the label is what it must read.
    ``perceptual_size`` computes L_per on images resized to that side (CPU budget).
    """

    name = "lmk-guided"

    def __init__(self, config: LmkGuidedConfig, *, weights: Sequence[float] = (5.0, 10.0, 10.0),
                 perceptual_net: nn.Module | None = None, face_gan_weight: float = 0.0,
                 perceptual_size: int | None = None) -> None:
        if face_gan_weight < 0:
            raise ValueError(f"face_gan_weight must be >= 0; got {face_gan_weight}")
        self.config = config
        self.weights = tuple(float(w) for w in weights)
        self.face_gan_weight = float(face_gan_weight)
        self.perceptual_size = perceptual_size
        self.G = LmkGuidedGenerator(config)
        self.D = LmkGuidedDiscriminators(config)
        self.face_box = photo_pairs.face_box(TEMPLATE)
        self.D_face: nn.Module | None = None
        if face_gan_weight > 0:
            rows, cols = photo_pairs.box_slices(self.face_box, config.size)
            side = min(rows.stop - rows.start, cols.stop - cols.start)
            self.D_face = patchgan(config.channels + config.n_classes, config.ndf, patchgan_layers_for(side, config.d_layers))
            init_normal(self.D_face)
        self._g: nn.Module = self.G
        self._d: nn.Module = self.D
        self._d_face: nn.Module | None = self.D_face
        self._perceptual = perceptual_net
        self._cache: tuple[Tensor, ...] | None = None

    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, **({"D_face": self.D_face} if self.D_face is not None else {})}

    def bind(self, modules: dict[str, nn.Module]) -> None:
        self._g, self._d, self._d_face = modules["G"], modules["D"], modules.get("D_face")

    @property
    def perceptual_net(self) -> nn.Module:
        if self._perceptual is None:
            self._perceptual = _frozen_net(lambda: vgg16_extractor(("conv1_2",)))
        return self._perceptual.to(_device_of(self.G))

    def _face_logits(self, image: Tensor, labels: Tensor) -> Tensor:
        assert self._d_face is not None
        box = photo_pairs.normalised_box(image, self.face_box)
        maps = self.G.label_maps(labels, box.shape[2], box.shape[3], box.dtype)
        return self._d_face(torch.cat([box, maps], dim=1))

    def _perceptual_loss(self, fake: Tensor, tgt: Tensor, registered: Tensor | None) -> Tensor:
        if registered is not None:
            keep = registered >= 1
            if not bool(keep.any()):
                return fake.new_zeros(())
            fake, tgt = fake[keep], tgt[keep]
        if self.perceptual_size is not None and self.perceptual_size != fake.shape[-1]:
            size = (self.perceptual_size, self.perceptual_size)
            fake = F.interpolate(fake, size=size, mode="bilinear", align_corners=False, antialias=True)
            tgt = F.interpolate(tgt, size=size, mode="bilinear", align_corners=False, antialias=True)
        return feature_l1(self.perceptual_net, fake, tgt, (1.0,))

    @staticmethod
    def _d_game(real: Tensor, fake: Tensor, registered: Tensor | None) -> Tensor:
        """A discriminator's loss; with ``registered``, on the pairs of one camera only."""
        if registered is None:
            return losses.gan_d_loss(real, fake)
        return losses.weighted_bce(real, 1.0, registered) + losses.weighted_bce(fake, 0.0, registered)

    def d_loss(self, batch: Batch) -> tuple[Tensor, Logs]:
        c = self.config
        if batch["lr"].shape[1] != c.channels:
            raise ValueError(f"lmk-guided is a {c.channels}-channel model; the batch has {batch['lr'].shape[1]} channels")
        src, tgt, labels = batch["lr"] * 2.0 - 1.0, batch["hr"] * 2.0 - 1.0, batch["label"]
        heat = self.G.heatmaps(batch["landmarks"])
        registered = batch.get("registered")
        fake = self._g(src, heat, labels)
        self._cache = (fake, src, tgt, heat, labels)
        d_img = self._d_game(self._d("image", tgt, src), self._d("image", fake.detach(), src), registered)
        d_geo = self._d_game(self._d("geometry", tgt, heat), self._d("geometry", fake.detach(), heat), registered)
        logs = {"D_image": float(d_img.detach()), "D_geometry": float(d_geo.detach())}
        total = d_img + d_geo
        if self._d_face is not None:
            k = c.n_classes
            other = (labels + torch.randint(1, k, labels.shape, device=labels.device)) % k
            real, fake_f = self._face_logits(tgt, labels), self._face_logits(fake.detach(), labels)
            mismatch = self._face_logits(tgt, other)
            d_face = (losses.gan_d_loss(real, fake_f) + losses.gan_d_loss(real, mismatch)) / 2
            logs.update(D_face=float(d_face.detach()), D_face_real=float(real.detach().sigmoid().mean()),
                        D_face_fake=float(fake_f.detach().sigmoid().mean()),
                        D_face_mismatch=float(mismatch.detach().sigmoid().mean()))
            total = total + d_face
        return total, logs

    def g_loss(self, batch: Batch) -> tuple[Tensor, Logs]:
        if self._cache is None:
            raise RuntimeError("g_loss needs the generator output of d_loss from the same step")
        fake, src, tgt, heat, labels = self._cache
        self._cache = None
        registered = batch.get("registered")
        w_gan, w_per, w_pix = self.weights
        adv = sum(losses.gan_g_loss(logits) if registered is None else losses.weighted_bce(logits, 1.0, registered)
                  for logits in (self._d("image", fake, src), self._d("geometry", fake, heat)))
        per = self._perceptual_loss(fake, tgt, registered)
        pix = photo_pairs.reconstruction(fake, tgt, registered, self.face_box, src)
        logs = {"G_adv": float(adv.detach()), "G_per": float(per.detach()), "G_pixel": float(pix.detach())}
        total = w_gan * adv + w_per * per + w_pix * pix
        if self._d_face is not None:
            face = losses.gan_g_loss(self._face_logits(fake, labels))
            logs["G_face"] = float(face.detach())
            total = total + self.face_gan_weight * face
        return total, logs


# -------------------------------------------------------------------------------------------------
# Presets and recipes (wired into facegen.train.recipes by the lead)

MODEL_IDS: tuple[str, ...] = ("exprgan", "exprgan-msd", "lmk-guided")
PRESETS: dict[str, tuple[str, ...]] = {
    "exprgan": ("paper", "lite", "wild", "tiny"),
    "exprgan-msd": ("paper", "lite", "wild", "tiny", "no-unsharp", "paper-no-unsharp", "wild-no-unsharp"),
    "lmk-guided": ("paper", "lite", "wild", "tiny", "no-feature-init", "paper-no-feature-init", "no-label",
                   "paper-no-label"),
}
#: The ``wild`` presets: lmk-guided on the studio pairs and LFW pairs of two photos
#: (expression_data.WildExpressionSet); ExprGAN on paper 001's objective alone (every labelled face,
#: LFW's included, reconstructed with its own label; no pairs) with an SFace identity term.
WILD_PRESETS = ("wild", "wild-no-unsharp")
#: (l1 L_id, l2 L_Q, l3 L_adv^img, l4 L_adv^z, l5 L_tv) of the ExprGAN wild recipe: the released values,
#: L_id being 1 - cos of SFace embeddings.
WILD_EXPRGAN_WEIGHTS = EXPRGAN_WEIGHTS
#: The wild recipe's weight of the label-conditioned face-box discriminator (see LmkGuidedObjective).
WILD_FACE_GAN_WEIGHT = 2.0
#: The wild recipe computes L_per at this side (the VGG pass at 128 px costs half a generator step on a CPU).
WILD_PERCEPTUAL_SIZE = 64


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
    if preset in WILD_PRESETS:
        return LmkGuidedConfig.wild()
    c = {"paper": LmkGuidedConfig.paper, "lite": LmkGuidedConfig.lite, "tiny": LmkGuidedConfig.tiny}[base]()
    if preset.endswith("no-feature-init"):
        c = c.without_feature_init()
    if preset.endswith("no-label"):
        c = c.without_label()
    return c


def build(model_id: str, preset: str, *, steps: int | None = None, batch_size: int | None = None, seed: int = 0,
          stage1_fraction: float = 0.5, **train_overrides):
    """(model config, objective, :class:`TrainConfig`, deviations) of an expression recipe (no data read)."""
    cfg = model_config(model_id, preset)
    deviations: list[str] = []
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
                                       perceptual_size=WILD_PERCEPTUAL_SIZE if wild else None)
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
        f"- input -> output: {config.size} -> {config.size} aligned faces (facegen.faces template 'expression'), "
        + ("luminance (BT.601 Y); chroma from the input" if grey else "RGB"),
        f"- expressions: {', '.join(config.expressions)}",
        "- conditioning: " + ("expression label + intensity in [0, 1] (the expression code's magnitude)"
                              if isinstance(config, ExprGANConfig) else
                              "expression label + target 68-point landmarks (ground truth, a reference photo, or the "
                              "stored per-expression template fitted to the input face, scaled by the intensity)"),
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
