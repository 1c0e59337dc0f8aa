"""Stacked GAN for face super-resolution (paper 002, He et al., Neurocomputing 2020).

The low-resolution (LR) face is bicubic up-sampled to the output size ("blurry HR", A). G1 is a
Pix2Pix U-Net on A that encodes down to 1x1 and decodes, with skip connections, only back to the
LR size; its image B'_1 is judged against the LR input itself (L_BB'). Then one up-sampling
block per 2x: m residual structures of n 1x1 convolutions (+ReLU), then a stride-2
deconvolution; each block emits an image B'_2, B'_4, ... judged by its own discriminator.

What the paper leaves open, and what we chose (written into every model card):
- widths: Pix2Pix's (ngf = ndf = 64, channel multiplier capped at 8) for the U-Net and PatchGAN
  discriminators; the up-sampling blocks carry ``up_channels`` feature maps and emit their
  image through a 1x1 convolution + tanh (StackGAN++-style side outputs), so the stages pass
  features, not 3-channel images, to the next stage;
- the deconvolution is 4x4, stride 2, followed by ReLU; each 1x1 convolution is followed by ReLU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from facegen.models.layers import (
    ResidualStructure,
    bicubic_resize,
    check_image_batch,
    init_normal,
    luminance_wrap,
    patchgan,
    patchgan_layers_for,
)

# Fig. 4 of the paper compares residual-block settings "m x n"; its exact grid is not in the
# text, so the ablation presets cover m, n in 1..4 (the paper's chosen setting is 4 x 4).
ABLATION_GRID: tuple[tuple[int, int], ...] = tuple((m, n) for m in range(1, 5) for n in range(1, 5))


def _is_pow2(v: int) -> bool:
    return v >= 1 and (v & (v - 1)) == 0


@dataclass(frozen=True)
class StackedSRConfig:
    """Sizes and widths of the stacked SR GAN. ``scale`` is 2, 4 or 8; sizes are powers of two."""

    scale: int = 4
    lr_size: int = 32
    channels: int = 3  # 1 = luminance model (see :meth:`StackedSRGenerator.infer`)
    ngf: int = 64
    max_mult: int = 8
    res_m: int = 4  # residual structures per up-sampling block
    res_n: int = 4  # 1x1 convolutions per residual structure
    up_channels: int = 64
    ndf: int = 64
    d_layers: int = 3  # PatchGAN depth at full size (70x70); reduced on small images
    # Not in the paper: each stage predicts a correction added to the LR input bicubic-resized to
    # that stage (a global residual). Off in the paper presets; on in lite, where CPU training
    # is short and starting from the bicubic image converges much faster.
    residual_input: bool = False

    def __post_init__(self) -> None:
        if self.scale not in (2, 4, 8):
            raise ValueError(f"stackedgan scale must be 2, 4 or 8; got {self.scale}")
        if not _is_pow2(self.lr_size) or self.lr_size < 4:
            raise ValueError(f"stackedgan lr_size must be a power of two >= 4; got {self.lr_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (luminance) or 3 (RGB); got {self.channels}")
        if self.res_m < 0 or self.res_n < 1:
            raise ValueError(f"need res_m >= 0 and res_n >= 1; got {self.res_m} x {self.res_n}")

    @property
    def hr_size(self) -> int:
        return self.lr_size * self.scale

    @property
    def stages(self) -> tuple[int, ...]:
        """Scale factor of each emitted image: (1, 2, 4, ...) up to ``scale``."""
        return tuple(2**k for k in range(int(math.log2(self.scale)) + 1))

    @classmethod
    def paper(cls, scale: int = 4, lr_size: int | None = None, channels: int = 3) -> "StackedSRConfig":
        """Paper sizes: x4 64->256 (also 16->64, 32->128 via ``lr_size``), x8 16->128; 4 x 4 blocks."""
        if lr_size is None:
            lr_size = {2: 64, 4: 64, 8: 16}[scale]
        return cls(scale=scale, lr_size=lr_size, channels=channels)

    @classmethod
    def lite(cls, scale: int = 4, lr_size: int | None = None, channels: int = 1) -> "StackedSRConfig":
        """CPU-trainable: 128-pixel outputs (x2 64->128, x4 32->128, x8 16->128), luminance, U-Net at a
        quarter of the paper's width (about 0.9 M generator parameters: a checkpoint of a few MB)."""
        if lr_size is None:
            lr_size = 128 // scale
        return cls(scale=scale, lr_size=lr_size, channels=channels, ngf=16, max_mult=4, up_channels=32, ndf=32,
                   residual_input=True)

    @classmethod
    def tiny(cls, scale: int = 4, lr_size: int = 8, channels: int = 3) -> "StackedSRConfig":
        """For tests: 8-16 channels, outputs of 16-64 pixels."""
        return cls(scale=scale, lr_size=lr_size, channels=channels, ngf=8, max_mult=2, res_m=2, res_n=2,
                   up_channels=8, ndf=8, d_layers=2)

    @classmethod
    def ablation(cls, m: int, n: int, scale: int = 4, lr_size: int = 32, channels: int = 3) -> "StackedSRConfig":
        """Fig. 4 ablation: m residual structures of n 1x1 convolutions per up-sampling block (paper widths)."""
        return cls(scale=scale, lr_size=lr_size, channels=channels, res_m=m, res_n=n)


class StackedSRGenerator(nn.Module, PyTorchModelHubMixin):
    """G1 (U-Net to LR size) followed by one up-sampling block per 2x; returns every stage's image."""

    config_class = StackedSRConfig

    def __init__(self, config: StackedSRConfig) -> None:
        super().__init__()
        self.config = config
        c, hr, lr = config, config.hr_size, config.lr_size
        levels = int(math.log2(hr))  # encoder goes down to 1x1 like Pix2Pix
        enc_ch = [c.ngf * min(2**i, c.max_mult) for i in range(levels)]
        self.encoder = nn.ModuleList()
        for i in range(levels):
            if i == 0:
                self.encoder.append(nn.Conv2d(c.channels, enc_ch[0], 4, 2, 1))
                continue
            layers: list[nn.Module] = [nn.LeakyReLU(0.2), nn.Conv2d(enc_ch[i - 1], enc_ch[i], 4, 2, 1, bias=i == levels - 1)]
            if i < levels - 1:  # no BatchNorm on the 1x1 bottleneck (Pix2Pix)
                layers.append(nn.BatchNorm2d(enc_ch[i]))
            self.encoder.append(nn.Sequential(*layers))
        # Decoder from 1x1 up to the LR size; output at size s gets the encoder's channels at s.
        self.enc_size = [hr // 2 ** (i + 1) for i in range(levels)]
        self.decoder = nn.ModuleList()
        in_ch = enc_ch[-1]
        size = 1
        while size < lr:
            size *= 2
            out_ch = enc_ch[self.enc_size.index(size)]
            self.decoder.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch)))
            in_ch = 2 * out_ch  # concatenated with the encoder skip of the same size
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(in_ch, c.up_channels, 3, 1, 1))
        self.to_image = nn.ModuleList([self._to_image()])
        self.up_blocks = nn.ModuleList()
        for _ in c.stages[1:]:
            self.up_blocks.append(nn.Sequential(
                *[ResidualStructure(c.up_channels, c.res_n) for _ in range(c.res_m)],
                nn.ConvTranspose2d(c.up_channels, c.up_channels, 4, 2, 1),
                nn.ReLU(),
            ))
            self.to_image.append(self._to_image())
        init_normal(self)

    def _to_image(self) -> nn.Module:
        return nn.Sequential(nn.Conv2d(self.config.up_channels, self.config.channels, 1), nn.Tanh())

    def forward(self, blurry: Tensor) -> list[Tensor]:
        """``blurry``: the bicubic-up-sampled LR in [-1, 1] at the output size -> images in [-1, 1]
        at every stage (LR size, 2x, ..., output size); with ``residual_input`` the images are
        corrections added to ``blurry`` resized to each stage (and may leave [-1, 1] slightly)."""
        skips: dict[int, Tensor] = {}
        h = blurry
        for size, layer in zip(self.enc_size, self.encoder):
            h = layer(h)
            skips[size] = h
        for layer in self.decoder:
            h = layer(h)
            h = torch.cat([h, skips[h.shape[-1]]], dim=1)
        h = self.head(h)
        images = [self.to_image[0](h)]
        for block, to_image in zip(self.up_blocks, self.to_image[1:]):
            h = block(h)
            images.append(to_image(h))
        if self.config.residual_input:
            images = [img + self._resize(blurry, img.shape[-1]) for img in images]
        return images

    @staticmethod
    def _resize(x: Tensor, size: int) -> Tensor:
        if x.shape[-1] == size:
            return x
        return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)

    def blurry_input(self, lr: Tensor) -> Tensor:
        """LR in [0, 1] -> the generator's input: bicubic up-sampled to the output size, in [-1, 1]."""
        return bicubic_resize(lr, self.config.hr_size) * 2.0 - 1.0

    def infer(self, x: Tensor) -> Tensor:
        """Float NCHW RGB (or grey) in [0, 1] at ``lr_size`` -> the same at ``hr_size``.

        A luminance model (``channels=1``) runs on the BT.601 Y channel of an RGB input and takes
        Cb/Cr from the bicubic up-sampling of the input.
        """
        c = self.config
        check_image_batch(x, (1, 3) if c.channels == 1 else (3,), c.lr_size, "stackedgan")

        def run(inp: Tensor) -> Tensor:
            return ((self(self.blurry_input(inp))[-1] + 1.0) * 0.5).clamp(0.0, 1.0)

        if c.channels == 1:
            return luminance_wrap(run, x, c.hr_size)
        return run(x)


class StackedSRDiscriminators(nn.Module, PyTorchModelHubMixin):
    """D1, D2, D4, ...: conditional PatchGANs on (A at that scale, image); D1 also has an
    unconditional head for L_BB' (synthesised LR image vs the LR input)."""

    config_class = StackedSRConfig

    def __init__(self, config: StackedSRConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.nets = nn.ModuleDict()
        for s in c.stages:
            size = c.lr_size * s
            n = patchgan_layers_for(size, c.d_layers)
            self.nets[f"x{s}"] = patchgan(2 * c.channels, c.ndf, n)
        self.nets["x1_bb"] = patchgan(c.channels, c.ndf, patchgan_layers_for(c.lr_size, c.d_layers))
        init_normal(self)

    def forward(self, name: str, image: Tensor, condition: Tensor | None = None) -> Tensor:
        """Patch logits of discriminator ``name`` ("x1", "x2", ..., or "x1_bb") on ``image``."""
        inp = image if condition is None else torch.cat([condition, image], dim=1)
        return self.nets[name](inp)
