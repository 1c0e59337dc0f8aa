"""Pix2Pix (Isola et al. 2017): the U-Net generator with skip connections and the 70x70 PatchGAN.

The layout is the reference TensorFlow Pix2Pix generator, whose trainable parameter count is the
54,414,979 that paper 000 reports for Pix2Pix (Table III) at U-Net-256 (ngf = 64, 8 down-sampling
blocks, 256 -> 1 -> 256):

- encoder: ``depth`` blocks of 4x4 stride-2 convolution (no bias) + BatchNorm + LeakyReLU(0.2),
  without BatchNorm in the first block; widths ngf * (1, 2, 4, 8, 8, ...) capped at
  ``ngf * max_mult``. Unlike the PyTorch reference (which counts 1,024 fewer), the innermost
  block has BatchNorm too;
- decoder: 4x4 stride-2 transposed convolutions (no bias) + BatchNorm (+ dropout 0.5 in the
  ``n_dropout`` deepest) + ReLU, each output concatenated with the encoder feature of the same
  size; a last transposed convolution (with bias) + tanh;
- ``out_scale = 2`` (paper 000's expression decoder, which outputs twice the input size): the
  last layer becomes a transposed convolution to ``up_channels`` (with bias) + ReLU and a second
  one to the image (with bias) + tanh. With 128 -> 32 -> 3 this adds exactly the 60,960
  parameters between Table III's Pix2Pix and parallel rows.

``upsample = "resize"`` (not in Pix2Pix; paper 000's ``wild`` preset) replaces every transposed
convolution by 2x nearest-neighbour up-sampling and a 3x3 convolution with the same inputs and
outputs (:class:`ResizeConv`), which cannot draw the transposed convolution's checkerboard.

Every decoder layer can take extra feature maps concatenated to its input (``extra``), which is
how paper 000's self-supervised guidance encoder feeds the decoder. Images inside the networks
are in [-1, 1]; :meth:`UNetGenerator.infer` takes and returns [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from facegen.models.layers import PatchDiscriminator, check_image_batch, init_normal, luminance_wrap  # noqa: F401 (the PatchGAN)


def _is_pow2(v: int) -> bool:
    return v >= 1 and (v & (v - 1)) == 0


def unet_widths(ngf: int, depth: int, max_mult: int = 8) -> tuple[int, ...]:
    """Encoder widths of a Pix2Pix U-Net: ngf * 2^i capped at ngf * max_mult, ``depth`` of them."""
    return tuple(ngf * min(2**i, max_mult) for i in range(depth))


class UNetEncoder(nn.Module):
    """``depth`` stride-2 blocks; returns the feature map of every block, largest first."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        prev = in_channels
        for i, w in enumerate(widths):
            layers: list[nn.Module] = [nn.Conv2d(prev, w, 4, 2, 1, bias=False)]
            if i > 0:
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.LeakyReLU(0.2))
            blocks.append(nn.Sequential(*layers))
            prev = w
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


UPSAMPLING: tuple[str, ...] = ("transpose", "resize")


class ResizeConv(nn.Module):
    """2x nearest-neighbour up-sampling, then a 3x3 convolution: a 2x layer whose every output pixel
    sees the same kernel, so it has no checkerboard (Odena, Dumoulin & Olah, Distill 2016)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def up2x(in_channels: int, out_channels: int, bias: bool, upsample: str) -> nn.Module:
    """A 2x up-sampling convolution: Pix2Pix's 4x4 stride-2 transposed one, or :class:`ResizeConv`."""
    if upsample == "transpose":
        return nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=bias)
    if upsample == "resize":
        return ResizeConv(in_channels, out_channels, bias)
    raise ValueError(f"upsample must be one of {UPSAMPLING}; got {upsample!r}")


class UNetDecoder(nn.Module):
    """Decoder of the U-Net; ``extra[k]`` channels are concatenated to the input of layer ``k``.

    Layer k (deepest first) works at 2^k times the bottleneck size; there are ``depth`` layers
    for ``out_scale = 1`` and ``depth + 1`` for ``out_scale = 2`` (the last at the input size).
    """

    def __init__(
        self,
        widths: Sequence[int],
        out_channels: int,
        out_scale: int = 1,
        up_channels: int = 32,
        dropout: float = 0.5,
        n_dropout: int = 3,
        extra: Sequence[int] | None = None,
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        if out_scale not in (1, 2):
            raise ValueError(f"the U-Net decoder outputs 1x or 2x the input size; got out_scale={out_scale}")
        depth = len(widths)
        n_layers = depth + (1 if out_scale == 2 else 0)
        extra = tuple(extra) if extra is not None else (0,) * n_layers
        if len(extra) != n_layers:
            raise ValueError(f"extra needs one entry per decoder layer ({n_layers}); got {len(extra)}")
        self.extra = extra
        self.out_scale = out_scale
        ups: list[nn.Module] = []
        prev = widths[-1]
        for j in range(depth - 1):
            out = widths[depth - 2 - j]
            layers: list[nn.Module] = [
                up2x(prev + extra[j], out, False, upsample), nn.BatchNorm2d(out),
            ]
            if j < n_dropout and dropout > 0:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.ReLU())
            ups.append(nn.Sequential(*layers))
            prev = out + widths[depth - 2 - j]  # after concatenating the skip
        self.ups = nn.ModuleList(ups)
        if out_scale == 1:
            self.last = nn.Sequential(up2x(prev + extra[depth - 1], out_channels, True, upsample), nn.Tanh())
            self.extra_up: nn.Module | None = None
        else:
            self.extra_up = nn.Sequential(up2x(prev + extra[depth - 1], up_channels, True, upsample), nn.ReLU())
            self.last = nn.Sequential(up2x(up_channels + extra[depth], out_channels, True, upsample), nn.Tanh())

    def forward(self, feats: Sequence[Tensor], guides: Sequence[Tensor | None] | None = None) -> Tensor:
        """``feats``: the encoder's outputs (largest first); ``guides[k]``: extra input of layer k or None."""
        n = len(self.extra)
        guides = list(guides) if guides is not None else [None] * n

        def cat(x: Tensor, k: int) -> Tensor:
            g = guides[k] if k < len(guides) else None
            if self.extra[k]:
                if g is None:
                    raise ValueError(f"decoder layer {k} expects {self.extra[k]} guidance channels; none given")
                return torch.cat([x, g], dim=1)
            return x

        x = feats[-1]
        for j, up in enumerate(self.ups):
            x = up(cat(x, j))
            x = torch.cat([x, feats[-2 - j]], dim=1)
        k = len(self.ups)
        if self.extra_up is not None:
            x = self.extra_up(cat(x, k))
            k += 1
        return self.last(cat(x, k))


@dataclass(frozen=True)
class Pix2PixConfig:
    """A Pix2Pix U-Net generator (+ its PatchGAN). ``paper()`` is U-Net-256: 54,414,979 parameters."""

    size: int = 256  # input side, a power of two
    channels: int = 3  # 1 = luminance model (see UNetGenerator.infer)
    ngf: int = 64
    max_mult: int = 8
    out_scale: int = 1
    up_channels: int = 32  # width of the extra 2x layer when out_scale = 2
    dropout: float = 0.5
    n_dropout: int = 3
    ndf: int = 64
    d_layers: int = 3  # 70x70 PatchGAN
    upsample: str = "transpose"  # the decoder's 2x layers (see UPSAMPLING)

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {UPSAMPLING}; got {self.upsample!r}")
        if not _is_pow2(self.size) or self.size < 4:
            raise ValueError(f"the U-Net input size must be a power of two >= 4; got {self.size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (luminance) or 3 (RGB); got {self.channels}")
        if self.out_scale not in (1, 2):
            raise ValueError(f"out_scale must be 1 or 2; got {self.out_scale}")

    @property
    def depth(self) -> int:
        """Down-sampling blocks: down to 1x1 (8 for 256 inputs)."""
        return int(math.log2(self.size))

    @property
    def out_size(self) -> int:
        return self.size * self.out_scale

    @property
    def widths(self) -> tuple[int, ...]:
        return unet_widths(self.ngf, self.depth, self.max_mult)

    @classmethod
    def paper(cls, out_scale: int = 1) -> "Pix2PixConfig":
        """U-Net-256 (ngf 64, 8 down-sampling blocks), RGB."""
        return cls(size=256, channels=3, out_scale=out_scale)

    @classmethod
    def lite(cls, out_scale: int = 1) -> "Pix2PixConfig":
        """64-pixel luminance U-Net (6 down-sampling blocks, ngf 16, widths capped at 128)."""
        return cls(size=64, channels=1, ngf=16, out_scale=out_scale, up_channels=8, ndf=16)

    @classmethod
    def tiny(cls, out_scale: int = 1, channels: int = 3) -> "Pix2PixConfig":
        """For tests: 16-pixel inputs, 8-16 channels."""
        return cls(size=16, channels=channels, ngf=8, max_mult=2, out_scale=out_scale, up_channels=8, ndf=8,
                   d_layers=2)


class UNetGenerator(nn.Module, PyTorchModelHubMixin):
    """Pix2Pix U-Net: image in [-1, 1] at ``size`` -> image in [-1, 1] at ``size * out_scale``."""

    config_class = Pix2PixConfig

    def __init__(self, config: Pix2PixConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = UNetEncoder(c.channels, c.widths)
        self.decoder = UNetDecoder(c.widths, c.channels, c.out_scale, c.up_channels, c.dropout, c.n_dropout,
                                   upsample=c.upsample)
        init_normal(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))

    def infer(self, x: Tensor) -> Tensor:
        """Float NCHW RGB (or grey) in [0, 1] at ``size`` -> the same at ``size * out_scale``.

        A luminance model runs on the BT.601 Y of an RGB input and takes Cb/Cr from the bicubic
        up-sampling (or copy) of the input.
        """
        c = self.config
        check_image_batch(x, (1, 3) if c.channels == 1 else (3,), c.size, "pix2pix")

        def run(inp: Tensor) -> Tensor:
            return ((self(inp * 2 - 1) + 1) / 2).clamp(0.0, 1.0)

        return luminance_wrap(run, x, c.out_size) if c.channels == 1 else run(x)
