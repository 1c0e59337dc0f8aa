"""Shared building blocks and colour helpers for the face models.

Colour conventions: images enter and leave the public ``infer`` methods as float NCHW RGB in
[0, 1]. Luminance models (``channels=1``) work on the BT.601 Y channel (studio-swing free, the
full-range JPEG form), and take Cb/Cr from the bicubic up-sampling of the input, as SRCNN does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facegen.colour import luma

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Grey images: the mean of the ImageNet channel statistics, the usual choice for 1-channel inputs.
GREY_MEAN = (0.449,)
GREY_STD = (0.226,)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """Full-range BT.601 (JPEG) YCbCr of float NCHW RGB in [0, 1]; all three planes in [0, 1]."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = luma(x, axis=1, keepdim=True)
    cb = 0.5 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.cat([y, cb, cr], dim=1)


def ycbcr_to_rgb(x: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr`; the result is clamped to [0, 1]."""
    y, cb, cr = x[:, 0:1], x[:, 1:2] - 0.5, x[:, 2:3] - 0.5
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return torch.cat([r, g, b], dim=1).clamp(0.0, 1.0)


def bicubic_resize(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bicubic resize of float NCHW images (anti-aliased when shrinking), clamped to [0, 1]."""
    if isinstance(size, int):
        size = (size, size)
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=shrink).clamp(0.0, 1.0)


def check_image_batch(x: Tensor, channels: tuple[int, ...], size: int, who: str) -> None:
    """Raise ValueError with a readable sentence if ``x`` is not an NCHW batch of the expected size."""
    if x.ndim != 4:
        raise ValueError(f"{who} expects an NCHW batch; got a tensor of shape {tuple(x.shape)}")
    if x.shape[1] not in channels:
        raise ValueError(f"{who} expects {' or '.join(map(str, channels))} channels; got {x.shape[1]}")
    if tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"{who} expects {size}x{size} inputs; got {x.shape[-2]}x{x.shape[-1]}")


def luminance_wrap(run_y, x: Tensor, out_size: int) -> Tensor:
    """Run a 1-channel model ``run_y`` (Y in [0,1] -> Y in [0,1] at ``out_size``) on RGB or grey ``x``.

    For RGB input the chroma (Cb, Cr) comes from the bicubic up-sampling of the input; a
    1-channel input gives a 1-channel output.
    """
    if x.shape[1] == 1:
        return run_y(x)
    ycc = rgb_to_ycbcr(x)
    y = run_y(ycc[:, :1])
    chroma = bicubic_resize(ycc[:, 1:], out_size)
    return ycbcr_to_rgb(torch.cat([y, chroma], dim=1))


class Normalise(nn.Module):
    """(x - mean) / std with fixed per-channel statistics (stored as non-persistent buffers)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def inverse(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean


class ResidualStructure(nn.Module):
    """z + F(z) where F is ``n`` 1x1 convolutions, each followed by ReLU (paper 002, eq. 11)."""

    def __init__(self, channels: int, n: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n):
            layers += [nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=False)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def patchgan(in_channels: int, ndf: int, n_layers: int, max_mult: int = 8, output_norm: bool = False) -> nn.Sequential:
    """Pix2Pix PatchGAN discriminator (4x4 convs, LeakyReLU 0.2, BatchNorm); outputs logits per patch.

    ``n_layers=3`` is the 70x70 PatchGAN; smaller images use fewer stride-2 layers so the
    output map stays at least 2x2. Widths are ``ndf`` times 1, 2, 4, ... capped at ``max_mult``.
    ``output_norm``: the last convolution has no bias and is followed by BatchNorm (paper 004's Table 3).
    """
    layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
    mult = 1
    for i in range(1, n_layers):
        prev, mult = mult, min(2**i, max_mult)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2)]
    prev, mult = mult, min(2**n_layers, max_mult)
    layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=False), nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2)]
    layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 1, bias=not output_norm)] + ([nn.BatchNorm2d(1)] if output_norm else [])
    return nn.Sequential(*layers)


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN (:func:`patchgan`): logits per patch for (condition, image) concatenated on channels.

    ``n_layers = 3`` is the 70x70 PatchGAN of Pix2Pix. ``init_std``: weights drawn by :func:`init_normal`
    at construction; ``None`` leaves PyTorch's defaults for a caller that initialises a larger module.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, max_mult: int = 8,
                 output_norm: bool = False, init_std: float | None = 0.02) -> None:
        super().__init__()
        self.net = patchgan(in_channels, ndf, n_layers, max_mult, output_norm)
        if init_std is not None:
            init_normal(self, init_std)

    def forward(self, condition: Tensor, image: Tensor) -> Tensor:
        return self.net(torch.cat([condition, image], dim=1))


def patchgan_layers_for(size: int, wanted: int = 3) -> int:
    """Stride-2 layers a PatchGAN can have on ``size``-pixel images (keeps a >= 2x2 output map)."""
    n = wanted
    while n > 1 and size // 2**n < 4:
        n -= 1
    return n


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN/Pix2Pix initialisation: conv weights N(0, std), BatchNorm weights N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
