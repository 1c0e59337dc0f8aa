"""Neutral face -> smiling face at twice the resolution: the five methods of paper 000's Table II.

Hanano, Seo & Chen 2023. Every method is one :class:`SmileGenerator` (the network used at
inference), chosen by ``SmileConfig.method``:

- ``bilinear`` (Pix2Pix + bilinear, [2]): a Pix2Pix U-Net at the input size, then bilinear 2x;
- ``two-step`` ([5]): that Pix2Pix, then a separately trained SR network (two CNNs);
- ``serial`` ([6]): Pix2Pix followed by the encoder-decoder SR network, trained end to end;
- ``parallel`` ([7]): one encoder shared by an expression decoder that outputs 2x and an SR
  decoder used only in training (multitask); inference = encoder + expression decoder;
- ``sge`` (proposed): the parallel model with a self-supervised guidance encoder (SGE) on each
  side. Each SGE reads the centre crop (1/4 of the area) of the high-resolution neutral image at
  the input size and feeds its features into every layer of its stream's decoder (concatenated
  to the layer's input: U-Net-style skips from the SGE). At inference only the expression-side
  SGE remains.

Table IV's ablations are presets: SGE on the Pix2Pix side only (``sge_sr = False``), on the SR
side only (``sge_pix2pix = False``: at inference this is the parallel generator), and both SGEs
without skip connections (``sge_skips = False``: only the deepest SGE features reach the decoder,
at its bottleneck, as in the SGE's source, PFSeg).

Inference parameter counts of the ``paper`` presets (Table III; asserted in the tests):
bilinear 54,414,979 (exact); serial and two-step 108,890,918 (exact: Pix2Pix + the 2x U-Net
SR network); parallel 54,475,939 (exact); sge 78,777,299 (paper 78,743,102, +0.043 %).

What the paper leaves open, and what we chose:
- Pix2Pix = the reference TensorFlow U-Net-256 (see :mod:`facegen.models.pix2pix`), the only
  layout that gives Table III's 54,414,979;
- the expression decoder's 2x output: one more transposed convolution, 128 -> 32 -> 3 channels
  (exactly Table III's +60,960 of the parallel model);
- the SR network of the serial and two-step methods: the same 2x U-Net (Table III's serial
  count is exactly Pix2Pix + the parallel generator, "the same SR network structure"); the SR
  decoder of the parallel model mirrors its expression decoder;
- the SGE: residual blocks of PFSeg (the SGE's source, ref. [8]): 3x3 conv + norm + LeakyReLU,
  3x3 conv + norm, plus a 1x1 projection + norm, summed and activated; max-pooling 2x between
  blocks, one block per decoder resolution from the guidance size down to 1x1 (9 blocks at 256).
  BatchNorm instead of PFSeg's InstanceNorm, whose statistics vanish on the 1x1 and 2x2 maps.
  Widths are not given: 40, 80, 160 then 320 (a doubling schedule with a cap, as Pix2Pix's),
  the simplest such schedule within 0.1 % of Table III's count;
- at inference the SGE reads the centre crop of the given high-resolution neutral image (the
  paper: the SGE "has the advantage of using the original high-resolution image", which exists
  because the low-resolution input is made from it). Where no such image exists (an upload that
  is only the low-resolution face), the bicubic 2x up-sampling of the input stands in for it:
  :meth:`SmileGenerator.infer` takes ``guide=None`` to mean exactly that.

Luminance models (``channels = 1``, the lite presets; JAFFE and RaFD are grey) run on the BT.601
Y channel of RGB inputs and take Cb/Cr from the bicubic up-sampling of the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from facegen.models.layers import bicubic_resize, check_image_batch, init_normal, luminance_wrap, rgb_to_ycbcr
from facegen.models.pix2pix import UPSAMPLING, Pix2PixConfig, UNetDecoder, UNetEncoder, UNetGenerator, unet_widths

METHODS: tuple[str, ...] = ("bilinear", "two-step", "serial", "parallel", "sge")
#: Registry id -> method.
MODEL_METHODS: dict[str, str] = {
    "p2p-bilinear": "bilinear",
    "p2p-two-step": "two-step",
    "p2p-serial": "serial",
    "p2p-parallel": "parallel",
    "p2p-sge": "sge",
}
#: Table III (inference parameters) of the paper; two-step has no entry there.
PAPER_PARAMETERS: dict[str, int] = {
    "bilinear": 54_414_979,
    "serial": 108_890_918,
    "parallel": 54_475_939,
    "sge": 78_743_102,
}
#: Table IV ablations (Model-2, -3, -4) as preset names.
ABLATIONS: tuple[str, ...] = ("sge-pix2pix-side", "sge-sr-side", "sge-no-skips")


def _is_pow2(v: int) -> bool:
    return v >= 1 and (v & (v - 1)) == 0


@dataclass(frozen=True)
class SmileConfig:
    """Sizes of one of the five methods. Sizes are powers of two; output = 2 x ``lr_size``."""

    method: str = "sge"
    lr_size: int = 256
    channels: int = 3  # 1 = luminance model
    ngf: int = 64
    max_mult: int = 8
    up_channels: int = 32  # width of the expression decoder's extra 2x layer
    dropout: float = 0.5
    n_dropout: int = 3
    sr_ngf: int = 64  # U-Net width of the SR network (two-step, serial)
    sr_max_mult: int = 8
    sge_pix2pix: bool = True  # SGE on the expression (Pix2Pix) side
    sge_sr: bool = True  # SGE on the SR side (training only)
    sge_skips: bool = True  # SGE features into every decoder layer (False: bottleneck only)
    sge_channels: tuple[int, ...] = (40, 80, 160, 320, 320, 320, 320, 320, 320)  # guidance size -> 1x1
    ndf: int = 64
    d_layers: int = 3  # 70x70 PatchGAN at full size
    # Not in the paper (the ``wild`` preset): every image-making network predicts a correction
    # to its input resized to its output size, so an untrained change keeps the person.
    residual: bool = False
    upsample: str = "transpose"  # the decoders' 2x layers: Pix2Pix's transposed convolutions, or "resize"
    template: str = "expression"  # the facegen.faces alignment template of the crops it works on

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown smile method {self.method!r}; methods: {', '.join(METHODS)}")
        if not _is_pow2(self.lr_size) or self.lr_size < 4:
            raise ValueError(f"lr_size must be a power of two >= 4; got {self.lr_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (luminance) or 3 (RGB); got {self.channels}")
        if self.method == "sge" and len(self.sge_channels) != self.depth + 1:
            raise ValueError(
                f"the SGE needs one width per resolution from {self.lr_size} down to 1 "
                f"({self.depth + 1} widths); got {len(self.sge_channels)}"
            )
        if self.upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {UPSAMPLING}; got {self.upsample!r}")
        if self.template not in ("expression", "celeba"):
            raise ValueError(f"template must be 'expression' (the paper's 6.4 d crop) or 'celeba'; got {self.template!r}")
        if self.method == "sge" and not (self.sge_pix2pix or self.sge_sr):
            raise ValueError("an sge model needs an SGE on at least one side; that is the parallel method")

    @property
    def depth(self) -> int:
        return int(math.log2(self.lr_size))

    @property
    def hr_size(self) -> int:
        return 2 * self.lr_size

    @property
    def scale(self) -> int:
        return 2

    @property
    def widths(self) -> tuple[int, ...]:
        return unet_widths(self.ngf, self.depth, self.max_mult)

    @property
    def lr_generator(self) -> bool:
        """True when the expression network works at the input size (bilinear, two-step, serial)."""
        return self.method in ("bilinear", "two-step", "serial")

    @property
    def sr_network(self) -> bool:
        return self.method in ("two-step", "serial")

    @property
    def multitask(self) -> bool:
        return self.method in ("parallel", "sge")

    def p2p_config(self) -> Pix2PixConfig:
        return Pix2PixConfig(size=self.lr_size, channels=self.channels, ngf=self.ngf, max_mult=self.max_mult,
                             out_scale=1, dropout=self.dropout, n_dropout=self.n_dropout, upsample=self.upsample)

    def sr_config(self) -> Pix2PixConfig:
        return Pix2PixConfig(size=self.lr_size, channels=self.channels, ngf=self.sr_ngf, max_mult=self.sr_max_mult,
                             out_scale=2, up_channels=self.up_channels, dropout=self.dropout,
                             n_dropout=self.n_dropout, upsample=self.upsample)

    def guide_extra(self, enabled: bool) -> tuple[int, ...]:
        """Channels the SGE adds to each 2x decoder layer's input (deepest layer first)."""
        n = self.depth + 1
        if self.method != "sge" or not enabled:
            return (0,) * n
        if self.sge_skips:
            return tuple(reversed(self.sge_channels))
        return (self.sge_channels[-1],) + (0,) * (n - 1)

    # -- presets ---------------------------------------------------------------------------------
    @classmethod
    def paper(cls, method: str = "sge") -> "SmileConfig":
        """256 -> 512 RGB, U-Net-256 (Table I; Table III's parameter counts)."""
        return cls(method=method)

    @classmethod
    def lite(cls, method: str = "sge") -> "SmileConfig":
        """64 -> 128 luminance, ngf 16 capped at 64 channels: CPU-trainable, under 5 MB of weights."""
        return cls(method=method, lr_size=64, channels=1, ngf=16, max_mult=4, up_channels=8, sr_ngf=12,
                   sr_max_mult=4, sge_channels=(8, 16, 32, 32, 32, 32, 32), ndf=32)

    @classmethod
    def wild(cls, method: str = "sge") -> "SmileConfig":
        """The lite sizes on the tight ``celeba`` crop (the face fills the 128 px), residual outputs,
        resize-convolutions instead of transposed ones; trained on studio and in-the-wild pairs
        (facegen.train.smile_data)."""
        return replace(cls.lite(method), residual=True, upsample="resize", template="celeba")

    @classmethod
    def wild_no_residual(cls, method: str = "sge") -> "SmileConfig":
        """The ``wild`` preset with each network's own output, no residual: the ablation of the residual outputs."""
        return replace(cls.wild(method), residual=False)

    @classmethod
    def tiny(cls, method: str = "sge", channels: int = 3) -> "SmileConfig":
        """For tests: 16 -> 32, 4-16 channels."""
        return cls(method=method, lr_size=16, channels=channels, ngf=8, max_mult=2, up_channels=8, sr_ngf=8,
                   sr_max_mult=2, sge_channels=(4, 8, 8, 8, 8), ndf=8, d_layers=2)

    @classmethod
    def preset(cls, name: str, method: str = "sge", size: str = "paper") -> "SmileConfig":
        """``paper``, ``lite``, ``wild``, ``wild-no-residual``, ``tiny``, or a Table IV ablation of the
        ``size`` preset (sge only)."""
        if name in ("paper", "lite", "wild", "wild-no-residual", "tiny"):
            return getattr(cls, name.replace("-", "_"))(method)
        if name in ABLATIONS:
            if method != "sge":
                raise ValueError(f"the ablation {name!r} is a variant of the sge method, not of {method!r}")
            base = getattr(cls, size)("sge")
            return {
                "sge-pix2pix-side": replace(base, sge_sr=False),
                "sge-sr-side": replace(base, sge_pix2pix=False),
                "sge-no-skips": replace(base, sge_skips=False),
            }[name]
        raise ValueError(f"unknown smile preset {name!r}; presets: paper, lite, wild, wild-no-residual, tiny, {', '.join(ABLATIONS)}")

    @classmethod
    def sge_pix2pix_side(cls, size: str = "paper") -> "SmileConfig":
        """Table IV Model-2: SGE on the Pix2Pix side only."""
        return cls.preset("sge-pix2pix-side", "sge", size)

    @classmethod
    def sge_sr_side(cls, size: str = "paper") -> "SmileConfig":
        """Table IV Model-3: SGE on the SR side only (inference = the parallel generator)."""
        return cls.preset("sge-sr-side", "sge", size)

    @classmethod
    def sge_no_skips(cls, size: str = "paper") -> "SmileConfig":
        """Table IV Model-4: both SGEs, features only into the decoder's bottleneck."""
        return cls.preset("sge-no-skips", "sge", size)


class GuidanceResBlock(nn.Module):
    """PFSeg residual block: (3x3 conv, norm, LeakyReLU, 3x3 conv, norm) + (1x1 conv, norm), LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1), nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1), nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class GuidanceEncoder(nn.Module):
    """Self-supervised guidance encoder: a residual block per resolution, max-pooling 2x between.

    Input: the guidance crop at the input size; output: one feature map per resolution from the
    input size down to 1x1, largest first.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        blocks, prev = [], in_channels
        for w in widths:
            blocks.append(GuidanceResBlock(prev, w))
            prev = w
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i, block in enumerate(self.blocks):
            if i:
                x = self.pool(x)
            x = block(x)
            feats.append(x)
        return feats


def guides_for_decoder(feats: list[Tensor], skips: bool) -> list[Tensor | None]:
    """SGE features (largest first) -> the decoder's guidance inputs (deepest layer first)."""
    if skips:
        return list(reversed(feats))
    return [feats[-1]] + [None] * (len(feats) - 1)


def zero_last_layer(module: nn.Module) -> None:
    """Zero the weights and bias of every image-making layer (``last.0``) in ``module``: a residual
    network then starts as the identity (its input resized)."""
    for name, m in module.named_modules():
        if name.endswith("last.0"):
            for p in m.parameters():
                nn.init.zeros_(p)


def with_base(config: SmileConfig, out: Tensor, base: Tensor) -> Tensor:
    """``out`` as is, or (residual configs) ``out`` added to ``base`` (the network's input, in
    [-1, 1], resized to the output's size), clamped to [-1, 1]."""
    if not config.residual:
        return out
    if base.shape[-1] != out.shape[-1]:
        base = bicubic_resize((base + 1) / 2, out.shape[-1]) * 2 - 1
    return (base + out).clamp(-1.0, 1.0)


def centre_crop(hr: Tensor, size: int) -> Tensor:
    """The centre ``size`` x ``size`` window of an NCHW batch (1/4 of the area of a 2x image)."""
    h, w = hr.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return hr[..., top:top + size, left:left + size]


class SmileGenerator(nn.Module, PyTorchModelHubMixin):
    """The inference network of one method: neutral face at ``lr_size`` -> smiling face at 2x."""

    config_class = SmileConfig

    def __init__(self, config: SmileConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.lr_generator:
            self.p2p = UNetGenerator(c.p2p_config())
            if c.sr_network:
                self.sr = UNetGenerator(c.sr_config())
        else:
            self.encoder = UNetEncoder(c.channels, c.widths)
            use = c.method == "sge" and c.sge_pix2pix
            self.decoder = UNetDecoder(c.widths, c.channels, 2, c.up_channels, c.dropout, c.n_dropout,
                                       extra=c.guide_extra(use), upsample=c.upsample)
            if use:
                self.sge = GuidanceEncoder(c.channels, c.sge_channels)
        init_normal(self)
        if c.residual:
            zero_last_layer(self)

    @property
    def uses_guide(self) -> bool:
        return hasattr(self, "sge")

    def forward(self, x: Tensor, guide: Tensor | None = None) -> Tensor:
        """``x``: neutral face in [-1, 1] at ``lr_size``; ``guide``: the guidance crop in [-1, 1]
        at ``lr_size`` (used by SGE models only). Returns the smiling face in [-1, 1] at 2x."""
        c = self.config
        if c.lr_generator:
            y = with_base(c, self.p2p(x), x)
            if c.method == "bilinear":
                return F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False).clamp(-1, 1)
            return with_base(c, self.sr(y), y)
        feats = self.encoder(x)
        guides = None
        if self.uses_guide:
            if guide is None:
                raise ValueError("an SGE model needs the guidance crop (centre of the high-resolution neutral face)")
            guides = guides_for_decoder(self.sge(guide), c.sge_skips)
        return with_base(c, self.decoder(feats, guides), x)

    def guide_from(self, x: Tensor, hr: Tensor | None) -> Tensor:
        """Guidance crop in [0, 1]: the centre of ``hr`` (the high-resolution neutral face, 2x),
        or, without one, the centre of the bicubic 2x up-sampling of ``x``."""
        c = self.config
        source = hr if hr is not None else bicubic_resize(x, c.hr_size)
        if tuple(source.shape[-2:]) != (c.hr_size, c.hr_size):
            raise ValueError(f"the guidance image must be {c.hr_size}x{c.hr_size} (2x the input); "
                             f"got {source.shape[-2]}x{source.shape[-1]}")
        return centre_crop(source, c.lr_size)

    def infer(self, x: Tensor, guide: Tensor | None = None) -> Tensor:
        """Float NCHW RGB (or grey) neutral face in [0, 1] at ``lr_size`` -> smiling face at 2x.

        ``guide`` (SGE models): the high-resolution neutral face (float NCHW in [0, 1] at 2x the
        input size) that the input was down-sampled from; the SGE reads its centre crop, as in the
        paper. ``None``: the bicubic 2x up-sampling of the input stands in for it. Other models
        ignore ``guide``. Luminance models run on the BT.601 Y channel and take Cb/Cr from the
        bicubic up-sampling of the input.
        """
        c = self.config
        check_image_batch(x, (1, 3) if c.channels == 1 else (3,), c.lr_size, f"p2p-{c.method}")
        g = None
        if self.uses_guide:
            hr = guide
            if hr is not None:
                if hr.ndim != 4 or hr.shape[0] != x.shape[0]:
                    raise ValueError(f"guide must be an NCHW batch of {x.shape[0]} images; got {tuple(hr.shape)}")
                hr = hr.to(x.device, x.dtype)
                if c.channels == 1 and hr.shape[1] == 3:
                    hr = rgb_to_ycbcr(hr)[:, :1]
                if hr.shape[1] != c.channels:
                    raise ValueError(f"guide has {hr.shape[1]} channels; this model uses {c.channels}")
            g = hr

        def run(inp: Tensor) -> Tensor:
            crop = self.guide_from(inp, g) if self.uses_guide else None
            out = self(inp * 2 - 1, None if crop is None else crop * 2 - 1)
            return ((out + 1) / 2).clamp(0.0, 1.0)

        if c.channels == 1:
            return luminance_wrap(run, x, c.hr_size)
        return run(x)


class SmileTrainNet(nn.Module):
    """Everything the generator loss trains: the inference :class:`SmileGenerator` (``net``)
    plus the training-only SR stream of the multitask methods (SR decoder, SR-side SGE).

    :meth:`forward` computes every output a step needs in one call (one call, so that
    distributed wrappers see all parameters); :meth:`inference_model` is what gets exported.
    """

    def __init__(self, config: SmileConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.net = SmileGenerator(config)
        if c.multitask:
            use = c.method == "sge" and c.sge_sr
            self.sr_decoder = UNetDecoder(c.widths, c.channels, 2, c.up_channels, c.dropout, c.n_dropout,
                                          extra=c.guide_extra(use), upsample=c.upsample)
            if use:
                self.sr_sge = GuidanceEncoder(c.channels, c.sge_channels)
            init_normal(self.sr_decoder)
            if use:
                init_normal(self.sr_sge)
            if c.residual:
                zero_last_layer(self.sr_decoder)

    def inference_model(self) -> SmileGenerator:
        return self.net

    def infer(self, x: Tensor, guide: Tensor | None = None) -> Tensor:
        return self.net.infer(x, guide)

    def forward(self, x: Tensor, guide: Tensor | None = None, lr_target: Tensor | None = None) -> dict[str, Tensor]:
        """All in [-1, 1]. ``x``: neutral at ``lr_size``; ``guide``: centre crop of the HR neutral
        at ``lr_size``; ``lr_target``: the smiling face at ``lr_size`` (two-step's SR input).

        Returns ``lr_fake`` (Pix2Pix output at the input size; bilinear/two-step/serial),
        ``hr_fake`` (the smiling face at 2x; serial/parallel/sge), ``sr`` (the SR stream's
        output at 2x: neutral for parallel/sge, the SR of ``lr_target`` for two-step).
        """
        c = self.config
        out: dict[str, Tensor] = {}
        net = self.net
        if c.lr_generator:
            y = with_base(c, net.p2p(x), x)
            out["lr_fake"] = y
            if c.method == "serial":
                out["hr_fake"] = with_base(c, net.sr(y), y)
            elif c.method == "two-step":
                if lr_target is None:
                    raise ValueError("two-step training needs the smiling face at the input size (lr_target)")
                out["sr"] = with_base(c, net.sr(lr_target), lr_target)  # trained on real pairs, separately from Pix2Pix
            return out
        feats = net.encoder(x)
        need_guide = net.uses_guide or hasattr(self, "sr_sge")
        if need_guide and guide is None:
            raise ValueError("SGE training needs the guidance crop of the high-resolution neutral face")
        g_expr = guides_for_decoder(net.sge(guide), c.sge_skips) if net.uses_guide else None
        out["hr_fake"] = with_base(c, net.decoder(feats, g_expr), x)
        g_sr = guides_for_decoder(self.sr_sge(guide), c.sge_skips) if hasattr(self, "sr_sge") else None
        out["sr"] = with_base(c, self.sr_decoder(feats, g_sr), x)
        return out


def parameter_count(config: SmileConfig) -> int:
    """Parameters of the inference network of ``config``."""
    return sum(p.numel() for p in SmileGenerator(config).parameters())


__all__ = [
    "ABLATIONS", "GuidanceEncoder", "GuidanceResBlock", "METHODS", "MODEL_METHODS", "PAPER_PARAMETERS",
    "SmileConfig", "SmileGenerator", "SmileTrainNet", "centre_crop", "guides_for_decoder", "parameter_count",
    "with_base",
]
