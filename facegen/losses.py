"""Adversarial, pixel and smoothness losses as plain functions.

Adversarial losses take discriminator *logits*: ``BCEWithLogits`` equals sigmoid + BCE exactly
and does not overflow when the discriminator is confident.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bce_real(logits: Tensor) -> Tensor:
    """-log D(x): the loss of calling ``logits`` real."""
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def bce_fake(logits: Tensor) -> Tensor:
    """-log(1 - D(x)): the loss of calling ``logits`` fake."""
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def gan_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator cross-entropy: real -> 1, fake -> 0 (Goodfellow et al., eq. 1)."""
    return bce_real(real_logits) + bce_fake(fake_logits)


def gan_g_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss -log D(G(z))."""
    return bce_real(fake_logits)


def weighted_bce(logits: Tensor, target: float, weight: Tensor) -> Tensor:
    """Binary cross-entropy of each item's (patch) logits against ``target``, averaged over the
    items with their ``weight`` (0 or 1); 0, with gradients of zero, when every weight is 0."""
    per = F.binary_cross_entropy_with_logits(
        logits, torch.full_like(logits, target), reduction="none").flatten(1).mean(1)
    w = weight.to(per.dtype).flatten()
    return (w * per).sum() / w.sum().clamp(min=1.0)


def l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference."""
    return (a - b).abs().mean()


def mse(a: Tensor, b: Tensor) -> Tensor:
    return F.mse_loss(a, b)


def total_variation(x: Tensor) -> Tensor:
    """Anisotropic total variation of an NCHW batch, averaged over pixels."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    return dh + dw
