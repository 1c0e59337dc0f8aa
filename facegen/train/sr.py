"""Objectives of the two face super-resolution papers (see :class:`facegen.train.trainer.Objective`)."""

from __future__ import annotations

from torch import Tensor, nn

from facegen import identity, losses
from facegen.models.layers import bicubic_resize
from facegen.models.psgan import PSGANConfig, PSGANDiscriminator, PSGANGenerator
from facegen.models.stackedgan import StackedSRConfig, StackedSRDiscriminators, StackedSRGenerator

Batch = dict[str, Tensor]

#: Alignment template of the SR training crops (facegen.train.recipes), which the identity loss maps to SFace's.
IDENTITY_TEMPLATE = "celeba"


def _check_identity_weight(weight: float) -> float:
    if weight < 0:
        raise ValueError(f"identity_weight must be >= 0; got {weight}")
    return weight


def _check(batch: Batch, channels: int, lr_size: int, hr_size: int, who: str) -> None:
    lr, hr = batch["lr"], batch["hr"]
    if lr.shape[1] != channels or hr.shape[1] != channels:
        raise ValueError(f"{who} is a {channels}-channel model; the batch has {lr.shape[1]}-channel images")
    if lr.shape[-1] != lr_size or hr.shape[-1] != hr_size:
        raise ValueError(f"{who} expects {lr_size}->{hr_size} pairs; the batch has {lr.shape[-1]}->{hr.shape[-1]}")


class StackedSRObjective:
    """Paper 002, eqs. 1-10, with images in [-1, 1].

    At each stage s (1 = the LR size, 2, 4, ... = up-sampled) the conditional discriminator D_s
    sees (A_s, image), where A_s is the LR input bicubic-resized to that stage's size (Pix2Pix's
    AB pair). Real images: the HR ground truth at that size (at s = 1 this is the LR input
    itself). L_AB (D only) scores real pairs, L_AB' synthesised ones; at s = 1 the extra L_BB'
    term scores the synthesised LR image against the LR input with an unconditional head.
    G_s minimises L_AB' (+ L_BB' for G1) + lambda * L1; D_s maximises L_AB + L_AB' (+ L_BB').
    The stages are trained jointly (the sum of the per-stage losses), which is what makes the
    network end-to-end; lambda = 100 as in Pix2Pix (the paper does not give it).
    ``identity_weight`` > 0 adds that weight x :func:`facegen.identity.identity_loss` between the
    last stage's output and the HR face (not in the paper; declared in the model card).
    """

    name = "stackedgan"

    def __init__(self, config: StackedSRConfig, l1_weight: float = 100.0, identity_weight: float = 0.0) -> None:
        self.config = config
        self.l1_weight = l1_weight
        self.identity_weight = _check_identity_weight(identity_weight)
        self.G = StackedSRGenerator(config)
        self.D = StackedSRDiscriminators(config)
        self._g: nn.Module = self.G
        self._d: nn.Module = self.D
        self._cache: tuple[list[Tensor], list[Tensor], list[Tensor]] | None = None

    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def bind(self, modules: dict[str, nn.Module]) -> None:
        self._g, self._d = modules["G"], modules["D"]

    def _pyramid(self, batch: Batch) -> tuple[list[Tensor], list[Tensor]]:
        """Real images y_s and conditions A_s of every stage, in [-1, 1]."""
        c = self.config
        lr, hr = batch["lr"], batch["hr"]
        reals, conds = [], []
        for s in c.stages:
            size = c.lr_size * s
            reals.append((lr if s == 1 else bicubic_resize(hr, size)) * 2 - 1)
            conds.append(bicubic_resize(lr, size) * 2 - 1)
        return reals, conds

    def d_loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        c = self.config
        _check(batch, c.channels, c.lr_size, c.hr_size, self.name)
        reals, conds = self._pyramid(batch)
        fakes = self._g(bicubic_resize(batch["lr"], c.hr_size) * 2 - 1)
        self._cache = (fakes, reals, conds)
        total: Tensor = 0.0  # type: ignore[assignment]
        logs: dict[str, float] = {}
        for s, fake, real, cond in zip(c.stages, fakes, reals, conds):
            term = losses.gan_d_loss(self._d(f"x{s}", real, cond), self._d(f"x{s}", fake.detach(), cond))
            logs[f"D{s}"] = float(term.detach())
            total = total + term
        bb = losses.gan_d_loss(self._d("x1_bb", reals[0]), self._d("x1_bb", fakes[0].detach()))
        logs["D1_bb"] = float(bb.detach())
        return total + bb, logs

    def g_loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        if self._cache is None:
            raise RuntimeError("g_loss needs the generator output of d_loss from the same step")
        fakes, reals, conds = self._cache
        self._cache = None
        total: Tensor = 0.0  # type: ignore[assignment]
        logs: dict[str, float] = {}
        for s, fake, real, cond in zip(self.config.stages, fakes, reals, conds):
            adv = losses.gan_g_loss(self._d(f"x{s}", fake, cond))
            rec = losses.l1(fake, real)
            logs[f"G{s}_adv"], logs[f"G{s}_l1"] = float(adv.detach()), float(rec.detach())
            total = total + adv + self.l1_weight * rec
        bb = losses.gan_g_loss(self._d("x1_bb", fakes[0]))
        logs["G1_bb"] = float(bb.detach())
        if self.identity_weight > 0:
            ident = identity.identity_loss(fakes[-1], reals[-1], IDENTITY_TEMPLATE)
            logs["G_id"] = float(ident.detach())
            total = total + self.identity_weight * ident
        return total + bb, logs


class PSGANObjective:
    """Paper 003: binary cross-entropy GAN in ImageNet-normalised space.

    D: -log D(HR) - log(1 - D(G(LR))); G: -log D(G(LR)). The paper trains G on the adversarial
    term alone; ``l1_weight > 0`` adds a pixel L1 term (a declared deviation, off in the paper recipe),
    ``identity_weight`` > 0 the SFace identity loss against the HR face (likewise).
    """

    name = "psgan"

    def __init__(self, config: PSGANConfig, l1_weight: float = 0.0, identity_weight: float = 0.0) -> None:
        self.config = config
        self.l1_weight = l1_weight
        self.identity_weight = _check_identity_weight(identity_weight)
        self.G = PSGANGenerator(config)
        self.D = PSGANDiscriminator(config)
        self._g: nn.Module = self.G
        self._d: nn.Module = self.D
        self._cache: tuple[Tensor, Tensor] | None = None

    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def bind(self, modules: dict[str, nn.Module]) -> None:
        self._g, self._d = modules["G"], modules["D"]

    def d_loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        c = self.config
        _check(batch, c.channels, c.lr_size, c.hr_size, self.name)
        norm = self.G.norm
        hr = norm(batch["hr"])
        fake = self._g(norm(batch["lr"]))
        self._cache = (fake, hr)
        real_logits, fake_logits = self._d(hr), self._d(fake.detach())
        loss = losses.gan_d_loss(real_logits, fake_logits)
        return loss, {"D_real": float(real_logits.detach().sigmoid().mean()), "D_fake": float(fake_logits.detach().sigmoid().mean())}

    def g_loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        if self._cache is None:
            raise RuntimeError("g_loss needs the generator output of d_loss from the same step")
        fake, hr = self._cache
        self._cache = None
        adv = losses.gan_g_loss(self._d(fake))
        logs = {"G_adv": float(adv.detach())}
        total = adv
        if self.l1_weight > 0:
            rec = losses.l1(fake, hr)
            logs["G_l1"] = float(rec.detach())
            total = total + self.l1_weight * rec
        if self.identity_weight > 0:
            norm = self.G.norm
            ident = identity.identity_loss(norm.inverse(fake), norm.inverse(hr), IDENTITY_TEMPLATE, "[0, 1]")
            logs["G_id"] = float(ident.detach())
            total = total + self.identity_weight * ident
        return total, logs
