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

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facegen import assets, identity, losses
from facegen.faces import box_slices, face_box
from facegen.models.exprgan import (
    ExprGANCodeDiscriminator,
    ExprGANConfig,
    ExprGANGenerator,
    ExprGANImageDiscriminator,
)
from facegen.models.layers import (
    IMAGENET_MEAN,
    IMAGENET_STD,
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
    ``identity_weight`` > 0 adds that weight times ``1 - cos`` of the SFace embeddings of the output
    and its input face (:func:`facegen.identity.identity_loss`; not in the paper).
    """

    name = "lmk-guided"

    def __init__(self, config: LmkGuidedConfig, *, weights: Sequence[float] = (5.0, 10.0, 10.0),
                 perceptual_net: nn.Module | None = None, face_gan_weight: float = 0.0,
                 perceptual_size: int | None = None, identity_weight: float = 0.0) -> None:
        if face_gan_weight < 0 or identity_weight < 0:
            raise ValueError(f"face_gan_weight and identity_weight must be >= 0; got {face_gan_weight}, {identity_weight}")
        self.config = config
        self.weights = tuple(float(w) for w in weights)
        self.face_gan_weight = float(face_gan_weight)
        self.identity_weight = float(identity_weight)
        self.perceptual_size = perceptual_size
        self.G = LmkGuidedGenerator(config)
        self.D = LmkGuidedDiscriminators(config)
        self.face_box = face_box(config.template)
        self.D_face: nn.Module | None = None
        if face_gan_weight > 0:
            rows, cols = box_slices(self.face_box, config.size)
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
        if self.identity_weight > 0:  # the output is held to the person of its input (every pair is one person)
            ident = identity.identity_loss(fake, src, self.config.template)
            logs["G_id"] = float(ident.detach())
            total = total + self.identity_weight * ident
        return total, logs
