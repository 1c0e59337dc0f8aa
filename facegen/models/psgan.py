"""Pixel-shuffle GAN for face super-resolution (paper 003, Jiang, Xu & Sun).

Generator: a 2x2 stride-2 entry convolution to 64 channels, 'same' 3x3 convolutions with Tanh,
pixel-shuffle up-sampling stages, and a global residual: the bilinear up-sampling of the
input times a learned scale clamped to [0.2, 0.8]. Inputs and outputs are in ImageNet-normalised
space inside the network (the paper's preprocessing); :meth:`PSGANGenerator.infer` hides that.
Discriminator: a 3x3 stride-2 convolution 3->12, then blocks 12->48->72->48->12->3 with
LeakyReLU, dropout and BatchNorm, then a linear layer and a sigmoid.

What the paper leaves open, and what we chose: the generator's widths after the entry
convolution (64, 128 before the first shuffle; 64, 32 per shuffle stage); the discriminator's
strides (stride 2 while the map is at least 4x4), dropout rate 0.25, BatchNorm on the four
inner blocks; the sigmoid is folded into the loss (``BCEWithLogits``, the same function,
numerically safer) and :meth:`PSGANDiscriminator.probability` applies it explicitly.

Initialisation (a training choice; the paper gives none): ``shuffle_init="default"`` keeps
PyTorch's default initialisation everywhere (the ``paper`` preset, and every checkpoint whose
config predates the field); ``"icnr"`` (the ``lite`` and ``tiny`` presets) initialises each
convolution that feeds a pixel shuffle by ICNR (Aitken et al. 2017, "Checkerboard artifact free
sub-pixel convolution"): one default-initialised kernel per output channel, copied to its r*r
sub-pixel positions, so that at initialisation the conv + shuffle equals a convolution followed
by nearest-neighbour up-sampling and the output carries no checkerboard at the shuffle period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from facegen.models.layers import (
    GREY_MEAN,
    GREY_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalise,
    check_image_batch,
    luminance_wrap,
)


SHUFFLE_INITS = ("default", "icnr")
SHUFFLE = 2  # up-sampling factor of each pixel-shuffle stage


def icnr_(conv: nn.Conv2d, upscale: int = SHUFFLE) -> nn.Conv2d:
    """ICNR initialisation (Aitken et al. 2017) of ``conv``, the convolution before a
    ``PixelShuffle(upscale)``: a default-initialised kernel of ``out / upscale**2`` channels is
    repeated so that every output channel's ``upscale**2`` sub-pixel filters (PixelShuffle reads
    channel ``c * upscale**2 + i * upscale + j`` for sub-pixel (i, j) of channel c) are equal;
    the bias likewise. In place; returns ``conv``."""
    r2 = upscale * upscale
    if conv.out_channels % r2:
        raise ValueError(f"ICNR needs out_channels divisible by {r2}; got {conv.out_channels}")
    sub = nn.Conv2d(conv.in_channels, conv.out_channels // r2, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)  # default (Kaiming-uniform) initialisation, same fan-in
    with torch.no_grad():
        conv.weight.copy_(sub.weight.repeat_interleave(r2, dim=0))
        if conv.bias is not None:
            conv.bias.copy_(sub.bias.repeat_interleave(r2, dim=0))
    return conv


@dataclass(frozen=True)
class PSGANConfig:
    scale: int = 2
    lr_size: int = 64
    channels: int = 3  # 1 = luminance model
    entry_channels: int = 64
    body: tuple[int, ...] = (64, 128)  # 'same' Tanh convs at half the input size
    up_channels: tuple[int, ...] = (64, 32)  # channels after each pixel-shuffle stage
    scale_init: float = 0.5
    scale_min: float = 0.2
    scale_max: float = 0.8
    d_channels: tuple[int, ...] = (12, 48, 72, 48, 12, 3)
    d_dropout: float = 0.25
    shuffle_init: str = "default"  # "default" (PyTorch's) or "icnr" (see module docstring)

    def __post_init__(self) -> None:
        if self.shuffle_init not in SHUFFLE_INITS:
            raise ValueError(f"psgan shuffle_init must be one of {SHUFFLE_INITS}; got {self.shuffle_init!r}")
        if self.scale not in (2, 4, 8):
            raise ValueError(f"psgan scale must be 2, 4 or 8; got {self.scale}")
        if self.lr_size % 2:
            raise ValueError(f"psgan lr_size must be even (2x2 stride-2 entry conv); got {self.lr_size}")
        if len(self.up_channels) != int(math.log2(self.scale)) + 1:
            raise ValueError(
                f"psgan x{self.scale} needs {int(math.log2(self.scale)) + 1} pixel-shuffle stages "
                f"(one to undo the entry stride, one per 2x); got up_channels={self.up_channels}"
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (luminance) or 3 (RGB); got {self.channels}")

    @property
    def hr_size(self) -> int:
        return self.lr_size * self.scale

    @classmethod
    def paper(cls, scale: int = 2, lr_size: int = 512, channels: int = 3) -> "PSGANConfig":
        """Paper sizes: 512 -> 1024 RGB; PyTorch's default initialisation (the paper names none)."""
        return cls(scale=scale, lr_size=lr_size, channels=channels, up_channels=cls._ups(scale))

    @classmethod
    def lite(cls, scale: int = 2, lr_size: int | None = None, channels: int = 1) -> "PSGANConfig":
        """128-pixel outputs (x2 64->128; x4 32->128 by one more shuffle stage), luminance; ICNR."""
        return cls(scale=scale, lr_size=lr_size or 128 // scale, channels=channels, up_channels=cls._ups(scale),
                   shuffle_init="icnr")

    @classmethod
    def tiny(cls, scale: int = 2, lr_size: int = 16, channels: int = 3) -> "PSGANConfig":
        """For tests: 8-16 channels, 32-64 pixel outputs."""
        ups = (16,) + (8,) * int(math.log2(scale))
        return cls(scale=scale, lr_size=lr_size, channels=channels, entry_channels=16, body=(16,),
                   up_channels=ups, d_channels=(8, 16, 8, 3), shuffle_init="icnr")

    @staticmethod
    def _ups(scale: int) -> tuple[int, ...]:
        return (64,) + (32,) * int(math.log2(scale))


def _normaliser(channels: int) -> Normalise:
    return Normalise(IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else Normalise(GREY_MEAN, GREY_STD)


class PSGANGenerator(nn.Module, PyTorchModelHubMixin):
    """Normalised LR -> normalised HR (see module docstring)."""

    config_class = PSGANConfig

    def __init__(self, config: PSGANConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.norm = _normaliser(c.channels)
        layers: list[nn.Module] = [nn.Conv2d(c.channels, c.entry_channels, 2, 2), nn.Tanh()]
        ch = c.entry_channels
        for w in c.body:
            layers += [nn.Conv2d(ch, w, 3, 1, 1), nn.Tanh()]
            ch = w
        for w in c.up_channels:
            conv = nn.Conv2d(ch, SHUFFLE * SHUFFLE * w, 3, 1, 1)
            if c.shuffle_init == "icnr":
                icnr_(conv)
            layers += [conv, nn.PixelShuffle(SHUFFLE), nn.Tanh()]
            ch = w
        layers.append(nn.Conv2d(ch, c.channels, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self.residual_scale = nn.Parameter(torch.tensor(float(c.scale_init)))

    def forward(self, x: Tensor) -> Tensor:
        """``x``: normalised LR (N, C, h, w) -> normalised HR (N, C, h*scale, w*scale)."""
        up = F.interpolate(x, scale_factor=self.config.scale, mode="bilinear", align_corners=False)
        s = self.residual_scale.clamp(self.config.scale_min, self.config.scale_max)
        return self.body(x) + s * up

    def infer(self, x: Tensor) -> Tensor:
        """Float NCHW RGB (or grey) in [0, 1] at ``lr_size`` -> the same at ``hr_size``.

        A luminance model (``channels=1``) runs on the BT.601 Y channel of an RGB input and takes
        Cb/Cr from the bicubic up-sampling of the input.
        """
        c = self.config
        check_image_batch(x, (1, 3) if c.channels == 1 else (3,), c.lr_size, "psgan")

        def run(inp: Tensor) -> Tensor:
            return self.norm.inverse(self(self.norm(inp))).clamp(0.0, 1.0)

        if c.channels == 1:
            return luminance_wrap(run, x, c.hr_size)
        return run(x)


class PSGANDiscriminator(nn.Module, PyTorchModelHubMixin):
    """Normalised HR image -> one logit per image (sigmoid of it = probability of being real)."""

    config_class = PSGANConfig

    def __init__(self, config: PSGANConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        size = c.hr_size
        layers: list[nn.Module] = []
        ch = c.channels
        last = len(c.d_channels) - 1
        for i, w in enumerate(c.d_channels):
            stride = 2 if size >= 4 else 1
            layers.append(nn.Conv2d(ch, w, 3, stride, 1))
            size = (size + 2 - 3) // stride + 1
            if 0 < i < last:  # BatchNorm on the inner blocks only
                layers.append(nn.BatchNorm2d(w))
            layers += [nn.LeakyReLU(0.2), nn.Dropout(c.d_dropout)]
            ch = w
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(ch * size * size, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape (N, 1)."""
        return self.linear(self.features(x).flatten(1))

    def probability(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self(x))
