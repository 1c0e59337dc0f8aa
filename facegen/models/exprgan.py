"""ExprGAN (Ding, Sricharan & Chellappa, AAAI 2018) and paper 001's multi-scale dilated variant.

``exprgan`` (paper 001's baseline): an encoder of five 5x5 stride-2 convolution + ReLU blocks
(64, 128, 256, 512, 1024 channels at 128 px) and a fully connected layer to a bounded identity
code g(x) (tanh, 50 dimensions); an expression controller that turns a label y and an intensity
into the expression code c; a decoder from [g(x), c] back to the image; D_img conditioned on the
label, whose trunk also carries the Q network that regresses c from a synthesised image; and D_z,
which pushes g(x) towards the uniform prior on [-1, 1]^50 (an adversarial auto-encoder).

``exprgan-msd`` (paper 001's model): the encoder is the two-channel multi-scale dilated feature
extractor, two parallel channels of five 5x5 down-sampling blocks with dilation 1 and 2 whose
outputs are concatenated before the fully connected layer, and every image is pre-processed by
an unsharp mask before it is rescaled to [-1, 1]. The ablation without the unsharp mask is the
``no_unsharp`` preset.

The expression controller is the released ExprGAN's: for label k and u in [0, 1]^d the code has
d entries per class, ``+u`` in block k and ``-u`` in every other block. Training draws
u = |U(-1, 1)^d| (the Q network must recover it, so its magnitude becomes the intensity of the
expression); at inference every entry of u is the ``intensity`` knob. The controller has no
weights. Paper-sized widths, the decoder (nearest-neighbour 2x + 3x3 convolution blocks with the
code tiled onto every feature map), D_img (5x5 stride-2 convolutions 16-32-64-128 with the
one-hot label tiled onto every map, FC 1024, then the real/fake logit and the Q heads) and D_z
(FC 64-32-16) follow the released ExprGAN code; paper 001 gives no widths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from facegen.expressions import BASIC_EXPRESSIONS, EXPRESSIONS, normalise_expression
from facegen.models.layers import check_image_batch, count_parameters, luminance_wrap


class ExpressionError(ValueError):
    """An expression name the model was not trained on, or a malformed request."""


@dataclass(frozen=True)
class ExprGANConfig:
    size: int = 128
    channels: int = 3  # 1 = luminance model (chroma from the input at inference)
    expressions: tuple[str, ...] = BASIC_EXPRESSIONS  # label order of the one-hot code
    code_dim: int = 50  # identity code g(x)
    rb_dim: int = 5  # expression-code entries per class (the released code's rb_dim)
    enc_channels: tuple[int, ...] = (64, 128, 256, 512, 1024)
    kernel: int = 5
    encoder: str = "plain"  # "plain" (ExprGAN) | "msd" (paper 001: two channels, dilation 1 and 2)
    dilations: tuple[int, ...] = (1, 2)  # msd only: one channel per dilation
    unsharp: bool = False  # paper 001's pre-processing
    unsharp_sigma: float = 1.0
    unsharp_amount: float = 1.0
    gen_channels: int = 1024  # decoder width at the smallest map; halves at every up-sampling
    dec_min: int = 1  # ... but never below this (lite: keeps the full-size layers wide enough to draw a face)
    tile_label: bool = True  # tile c to about code_dim entries before the decoder's FC (released code)
    d_channels: tuple[int, ...] = (16, 32, 64, 128)
    d_fc: int = 1024
    q_shared: int = 128
    q_hidden: int = 64
    dz_channels: tuple[int, ...] = (64, 32, 16)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (luminance) or 3 (RGB); got {self.channels}")
        if self.encoder not in ("plain", "msd"):
            raise ValueError(f"encoder must be 'plain' or 'msd'; got {self.encoder!r}")
        if self.size % 2 ** len(self.enc_channels):
            raise ValueError(f"size {self.size} is not divisible by 2^{len(self.enc_channels)}")
        for e in self.expressions:
            if normalise_expression(e) != e:
                raise ValueError(f"expressions must use the vocabulary names {EXPRESSIONS}; got {e!r}")
        if len(set(self.expressions)) != len(self.expressions) or len(self.expressions) < 2:
            raise ValueError(f"need at least two distinct expressions; got {self.expressions}")

    @property
    def n_classes(self) -> int:
        return len(self.expressions)

    @property
    def expr_dim(self) -> int:
        return self.n_classes * self.rb_dim

    @property
    def bottom(self) -> int:
        return self.size // 2 ** len(self.enc_channels)

    # -- presets -------------------------------------------------------------------------------
    @classmethod
    def paper(cls, channels: int = 3) -> "ExprGANConfig":
        """Released ExprGAN sizes at 128 px, six expressions (Oulu-CASIA's, as papers 001 and ExprGAN use)."""
        return cls(channels=channels)

    @classmethod
    def paper_msd(cls, channels: int = 3, unsharp: bool = True) -> "ExprGANConfig":
        """Paper 001: the ExprGAN above with the two-channel dilated encoder and the unsharp mask."""
        return cls(channels=channels, encoder="msd", unsharp=unsharp)

    @classmethod
    def lite(cls, channels: int = 1, encoder: str = "plain", unsharp: bool = False) -> "ExprGANConfig":
        """CPU-trainable at 128 px (< 5 MB of generator weights); six expressions plus neutral, luminance."""
        return cls(channels=channels, expressions=("neutral", *BASIC_EXPRESSIONS), code_dim=50,
                   enc_channels=(16, 32, 48, 64, 96), gen_channels=64, dec_min=16, encoder=encoder,
                   unsharp=unsharp, d_channels=(16, 32, 64, 128), d_fc=128, q_shared=64, q_hidden=32)

    @classmethod
    def tiny(cls, channels: int = 3, encoder: str = "plain", unsharp: bool = False, size: int = 32) -> "ExprGANConfig":
        """For tests: 8-16 channels, 32 px, three expressions."""
        return cls(size=size, channels=channels, expressions=("neutral", "happy", "sad"), code_dim=8, rb_dim=2,
                   enc_channels=(8, 8, 16, 16, 16), gen_channels=16, encoder=encoder, unsharp=unsharp,
                   d_channels=(8, 16), d_fc=16, q_shared=16, q_hidden=8, dz_channels=(8, 8))


# -------------------------------------------------------------------------------------------------
# Pre-processing and the expression controller


def gaussian_kernel1d(sigma: float) -> Tensor:
    """Normalised 1-D Gaussian of radius ceil(3 sigma)."""
    r = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def unsharp_mask(x: Tensor, sigma: float = 1.0, amount: float = 1.0) -> Tensor:
    """x + amount * (x - GaussianBlur_sigma(x)), clamped to [0, 1]; x is float NCHW in [0, 1].

    The blur pads by reflection, so a constant image is returned unchanged; edges gain a
    darker and a brighter band (their local contrast grows by ``amount``).
    """
    if amount == 0:
        return x
    k = gaussian_kernel1d(sigma).to(x)
    r = k.numel() // 2
    c = x.shape[1]
    if min(x.shape[-2:]) <= r:
        raise ValueError(f"unsharp mask of sigma {sigma} needs images larger than {r} pixels")
    blur = F.pad(x, (r, r, 0, 0), mode="reflect")
    blur = F.conv2d(blur, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    blur = F.pad(blur, (0, 0, r, r), mode="reflect")
    blur = F.conv2d(blur, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return (x + amount * (x - blur)).clamp(0.0, 1.0)


def expression_code(labels: Tensor, magnitude: Tensor, n_classes: int) -> Tensor:
    """ExprGAN's controller F_ctrl: (N,) class indices and (N, d) magnitudes in [0, 1] -> (N, K*d).

    Block k of the code is ``+magnitude`` for the labelled class and ``-magnitude`` elsewhere.
    """
    n, d = magnitude.shape
    sign = torch.full((n, n_classes, 1), -1.0, device=magnitude.device, dtype=magnitude.dtype)
    sign[torch.arange(n, device=labels.device), labels] = 1.0
    return (sign * magnitude.abs().unsqueeze(1)).reshape(n, n_classes * d)


def label_indices(expression: str | list[str] | tuple[str, ...], expressions: tuple[str, ...], n: int,
                  device: torch.device | str = "cpu") -> Tensor:
    """(n,) class indices into ``expressions`` for one name or one name per image."""
    names = [expression] * n if isinstance(expression, str) else list(expression)
    if len(names) != n:
        raise ExpressionError(f"got {len(names)} expression names for {n} images")
    out = []
    for name in names:
        try:
            key = normalise_expression(name)
        except ValueError as e:
            raise ExpressionError(str(e)) from None
        if key not in expressions:
            raise ExpressionError(f"this model synthesises {', '.join(expressions)}; not {name!r}")
        out.append(expressions.index(key))
    return torch.tensor(out, dtype=torch.long, device=device)


def tile_maps(v: Tensor, h: int, w: int) -> Tensor:
    """(N, C) vector -> (N, C, h, w) constant maps."""
    return v[:, :, None, None].expand(-1, -1, h, w)


# -------------------------------------------------------------------------------------------------
# Networks


def _down_chain(in_ch: int, widths: tuple[int, ...], kernel: int, dilation: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    pad = dilation * (kernel - 1) // 2  # 'same' before the stride: each block halves the map exactly
    for w in widths:
        layers += [nn.Conv2d(in_ch, w, kernel, 2, pad, dilation=dilation), nn.ReLU()]
        in_ch = w
    return nn.Sequential(*layers)


class ExprGANEncoder(nn.Module):
    """Image in [-1, 1] -> identity code g(x) in (-1, 1)^code_dim.

    ``plain``: five 5x5 stride-2 conv + ReLU blocks, FC, tanh. ``msd``: one such channel per
    dilation (1 and 2) side by side; their final maps are concatenated and fed to the FC layer.
    """

    def __init__(self, c: ExprGANConfig) -> None:
        super().__init__()
        dilations = (1,) if c.encoder == "plain" else c.dilations
        self.channels = nn.ModuleList(_down_chain(c.channels, c.enc_channels, c.kernel, d) for d in dilations)
        self.fc = nn.Linear(len(dilations) * c.enc_channels[-1] * c.bottom**2, c.code_dim)

    def forward(self, x: Tensor) -> Tensor:
        feats = torch.cat([ch(x) for ch in self.channels], dim=1)
        return torch.tanh(self.fc(feats.flatten(1)))


class ExprGANDecoder(nn.Module):
    """[g(x), c] -> image in [-1, 1]: FC to the smallest map, then nearest 2x + 3x3 conv + ReLU blocks
    (c tiled onto every map), one more 3x3 block at full size, and a 3x3 conv + tanh."""

    def __init__(self, c: ExprGANConfig) -> None:
        super().__init__()
        self.c = c
        self.duplicate = max(1, c.code_dim // c.n_classes) if c.tile_label else 1
        e = c.expr_dim
        self.fc = nn.Linear(c.code_dim + e * self.duplicate, c.gen_channels * c.bottom**2)
        n_up = len(c.enc_channels)
        widths = [max(c.dec_min, c.gen_channels // 2 ** (i + 1)) for i in range(n_up + 1)]
        ch = c.gen_channels
        self.blocks = nn.ModuleList()
        for w in widths:
            self.blocks.append(nn.Conv2d(ch + e, w, 3, 1, 1))
            ch = w
        self.out = nn.Conv2d(ch + e, c.channels, 3, 1, 1)
        self.n_up = n_up

    def forward(self, z: Tensor, code: Tensor) -> Tensor:
        c = self.c
        h = self.fc(torch.cat([z, code.repeat(1, self.duplicate)], dim=1))
        h = F.relu(h.view(-1, c.gen_channels, c.bottom, c.bottom))
        for i, conv in enumerate(self.blocks):
            if i < self.n_up:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = F.relu(conv(torch.cat([h, tile_maps(code, h.shape[2], h.shape[3])], dim=1)))
        return torch.tanh(self.out(torch.cat([h, tile_maps(code, h.shape[2], h.shape[3])], dim=1)))


class ExprGANGenerator(nn.Module, PyTorchModelHubMixin):
    """G = (G_enc, G_dec) with the expression controller; ``forward`` works in [-1, 1]."""

    config_class = ExprGANConfig

    def __init__(self, config: ExprGANConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ExprGANEncoder(config)
        self.decoder = ExprGANDecoder(config)

    def preprocess(self, x01: Tensor) -> Tensor:
        """[0, 1] images -> network input in [-1, 1] (unsharp mask first when the config asks for it)."""
        c = self.config
        if c.unsharp:
            x01 = unsharp_mask(x01, c.unsharp_sigma, c.unsharp_amount)
        return x01 * 2.0 - 1.0

    def code(self, labels: Tensor, magnitude: Tensor) -> Tensor:
        return expression_code(labels, magnitude, self.config.n_classes)

    def forward(self, x: Tensor, code: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` pre-processed in [-1, 1], ``code`` (N, K*d) -> (image in [-1, 1], identity code)."""
        z = self.encoder(x)
        return self.decoder(z, code), z

    @torch.no_grad()
    def infer(self, x: Tensor, expression: str | list[str], intensity: float = 1.0,
              landmarks: Tensor | None = None) -> Tensor:
        """Float NCHW RGB (or grey) in [0, 1] at ``size`` -> the face with ``expression``, same size.

        ``intensity`` in [0, 1] sets every entry of the expression code's active block (0 gives
        the code of no expression). ``landmarks`` is accepted for a uniform interface and
        ignored: ExprGAN is label-driven. A luminance model (``channels=1``) runs on the BT.601
        Y channel of an RGB input and takes Cb/Cr from the input.
        """
        c = self.config
        check_image_batch(x, (1, 3) if c.channels == 1 else (3,), c.size, "exprgan")
        if not 0.0 <= float(intensity) <= 1.0:
            raise ExpressionError(f"intensity must lie in [0, 1]; got {intensity}")
        labels = label_indices(expression, c.expressions, x.shape[0], x.device)
        mag = torch.full((x.shape[0], c.rb_dim), float(intensity), device=x.device, dtype=x.dtype)
        code = self.code(labels, mag)

        def run(inp: Tensor) -> Tensor:
            y, _ = self(self.preprocess(inp), code)
            return ((y + 1.0) / 2.0).clamp(0.0, 1.0)

        if c.channels == 1:
            return luminance_wrap(run, x, c.size)
        return run(x)

    @torch.no_grad()
    def infer_batch(self, batch: dict[str, Tensor], intensity: float = 1.0) -> Tensor:
        """:meth:`infer` on a training/validation batch (``lr`` images, ``label`` indices into ``expressions``)."""
        names = [self.config.expressions[int(i)] for i in batch["label"]]
        return self.infer(batch["lr"], names, intensity)


class ExprGANImageDiscriminator(nn.Module, PyTorchModelHubMixin):
    """D_img(x, y) with the Q network on its trunk.

    Returns (real/fake logit (N, 1), Q's estimate of the expression code (N, K*d) in (-1, 1)).
    The one-hot label is tiled onto the input and onto every convolution's output, and appended
    to the FC features, as in the released code.
    """

    config_class = ExprGANConfig

    def __init__(self, config: ExprGANConfig) -> None:
        super().__init__()
        self.config = c = config
        k = c.n_classes
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        ch, size = c.channels, c.size
        for w in c.d_channels:
            self.convs.append(nn.Conv2d(ch + k, w, c.kernel, 2, c.kernel // 2))
            self.norms.append(nn.BatchNorm2d(w, affine=False))
            ch, size = w, size // 2
        self.fc = nn.Linear((ch + k) * size * size, c.d_fc)
        self.fc_norm = nn.BatchNorm1d(c.d_fc, affine=False)
        self.disc = nn.Linear(c.d_fc + k, 1)
        self.q_shared = nn.Sequential(nn.Linear(c.d_fc + k, c.q_shared), nn.BatchNorm1d(c.q_shared, affine=False),
                                      nn.LeakyReLU(0.2))
        self.q_heads = nn.ModuleList(
            nn.Sequential(nn.Linear(c.q_shared, c.q_hidden), nn.BatchNorm1d(c.q_hidden, affine=False),
                          nn.LeakyReLU(0.2), nn.Linear(c.q_hidden, c.rb_dim), nn.Tanh())
            for _ in range(k)
        )

    def forward(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        y = F.one_hot(labels, self.config.n_classes).to(x.dtype)
        h = x
        for conv, norm in zip(self.convs, self.norms):
            h = F.relu(norm(conv(torch.cat([h, tile_maps(y, h.shape[2], h.shape[3])], dim=1))))
        h = torch.cat([h, tile_maps(y, h.shape[2], h.shape[3])], dim=1)
        shared = torch.cat([F.leaky_relu(self.fc_norm(self.fc(h.flatten(1))), 0.2), y], dim=1)
        q = self.q_shared(shared)
        return self.disc(shared), torch.cat([head(q) for head in self.q_heads], dim=1)


class ExprGANCodeDiscriminator(nn.Module, PyTorchModelHubMixin):
    """D_z: identity code -> logit of "drawn from the uniform prior" (FC + BN + ReLU layers)."""

    config_class = ExprGANConfig

    def __init__(self, config: ExprGANConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        ch = config.code_dim
        for w in config.dz_channels:
            layers += [nn.Linear(ch, w), nn.BatchNorm1d(w, affine=False), nn.ReLU()]
            ch = w
        layers.append(nn.Linear(ch, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


def parameter_report(config: ExprGANConfig) -> dict[str, int]:
    """Parameters of G (encoder, decoder), D_img (+ Q) and D_z of a config."""
    g = ExprGANGenerator(config)
    return {"generator": count_parameters(g), "encoder": count_parameters(g.encoder),
            "decoder": count_parameters(g.decoder), "d_img": count_parameters(ExprGANImageDiscriminator(config)),
            "d_z": count_parameters(ExprGANCodeDiscriminator(config))}
