"""Landmark- and label-guided expression synthesis (paper 004, Li, Qi & Sun, IEEE Access 2021).

Generator: two feature-initialise networks E_ini, one for the face and one for the target's
68-point landmark heatmaps, bring both to a latent feature space (here the ResNet-generator head
that Table 2's decoder mirrors: 7x7 conv, then stride-2 3x3 convs, BatchNorm + ReLU, to
4*ngf channels at a quarter of the size). A stack of migration unit blocks (Fig. 2, Table 1)
moves the target geometry into the image features:

    M_t   = sigmoid(conv_s(F^S_{t-1}))                      (eq. 1)
    F^P_t = M_t * conv_p(F^P_{t-1}) + F^P_{t-1}             (eq. 2)
    F^S_t = conv_s(F^S_{t-1}) || F^P_t                      (eq. 3)

conv_p is Table 1's first path (pad, 3x3 conv, BN, ReLU, dropout, pad, 3x3 conv, BN) and conv_s
its second (the same without the last BN; it maps the concatenated 2C channels back to C from
the second block on). The target expression, one-hot mapped to [-1, 1] maps, is concatenated to
F^P before the decoder of Table 2 (two stride-2 3x3 transposed convolutions with BN + ReLU, then a
reflection-padded 7x7 convolution and tanh). The image and geometry discriminators (Table 3) are
PatchGANs on (source, image) and (image, target heatmaps) pairs; Table 3's BatchNorm on the
14x14 output map is kept, its sigmoid is folded into the loss (BCE with logits).

The paper leaves the number of migration blocks and the dropout rate open: we take 9 blocks and
0.5, the values of the pose-transfer network (Zhu et al., CVPR 2019) whose block this is. The
ablation without the feature-initialise networks replaces each E_ini by a space-to-depth
rearrangement and a 1x1 projection (a linear map to the same latent shape, so the rest of the
network is unchanged); the ablation without the "expression label smooth" module drops the label
maps before the decoder.

Not in the paper (the ``wild`` preset, declared in the model card): residual output (the last
convolution, without tanh and zero at the start, adds a change to the input face) and decoder
up-sampling by 2x nearest-neighbour + 3x3 convolution (Table 2's transposed convolutions drew a
grid over the faces).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from facegen.expressions import BASIC_EXPRESSIONS, EXPRESSIONS, normalise_expression
from facegen.models import heatmaps
from facegen.models.exprgan import ExpressionError, label_indices, tile_maps
from facegen.models.layers import (
    PatchDiscriminator,
    check_image_batch,
    count_parameters,
    init_normal,
    luminance_wrap,
)
from facegen.models.pix2pix import ResizeConv


@dataclass(frozen=True)
class LmkGuidedConfig:
    size: int = 128
    channels: int = 3  # 1 = luminance model (chroma from the input at inference)
    expressions: tuple[str, ...] = ("neutral", *BASIC_EXPRESSIONS)
    n_points: int = 68
    heatmap_sigma: float = 2.0  # pixels at ``size``
    merge_heatmaps: bool = False  # True: one map, the maximum over the 68 (lite: 68x cheaper first layers)
    ngf: int = 64
    n_down: int = 2  # Table 2 up-samples twice: 32x32x256 -> 128x128x64
    n_blocks: int = 9
    dropout: float = 0.5
    feature_init: bool = True  # ablation: False
    label_maps: bool = True  # ablation: False ("w/o expression label smooth")
    ndf: int = 64
    d_layers: int = 3  # stride-2 convolutions of the PatchGANs (Table 3: 3)
    # Not in the paper: the decoder's last convolution (no tanh, zero at the start) adds a change to
    # the input face, so an untrained model returns the input and training only learns the change.
    residual: bool = False
    # Table 2's 3x3 stride-2 transposed convolutions ("transpose"), or 2x nearest-neighbour up-sampling
    # + a 3x3 convolution ("resize", not in the paper): the transposed ones drew a grid over the faces.
    upsample: str = "transpose"
    # The facegen.faces alignment template of the crops it works on: the expression task's 6.4 d
    # square ("expression", the face about 50 px of 128) or the tight 5-point "celeba" crop (not in
    # the paper; the face fills the crop). A model on the tight crop is given the faces cut from the
    # photo by its own template, and its change is pasted back into the task's crop.
    template: str = "expression"

    def __post_init__(self) -> None:
        if self.template not in ("expression", "celeba"):
            raise ValueError(f"template must be 'expression' (the 6.4 d crop) or 'celeba'; got {self.template!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (luminance) or 3 (RGB); got {self.channels}")
        if self.size % 2**self.n_down or self.size // 2**self.d_layers < 4:
            raise ValueError(f"size {self.size} does not fit n_down={self.n_down}, d_layers={self.d_layers}")
        for e in self.expressions:
            if normalise_expression(e) != e:
                raise ValueError(f"expressions must use the vocabulary names {EXPRESSIONS}; got {e!r}")
        if self.n_blocks < 1:
            raise ValueError("need at least one migration unit block")
        if self.upsample not in ("transpose", "resize"):
            raise ValueError(f"upsample must be 'transpose' or 'resize'; got {self.upsample!r}")

    @property
    def n_classes(self) -> int:
        return len(self.expressions)

    @property
    def heat_channels(self) -> int:
        return 1 if self.merge_heatmaps else self.n_points

    @property
    def latent(self) -> int:
        return self.ngf * 2**self.n_down

    @classmethod
    def paper(cls, channels: int = 3, **kw) -> LmkGuidedConfig:
        """Paper 004 at 128 px (Tables 1-3), six expressions plus neutral."""
        return cls(channels=channels, **kw)

    @classmethod
    def lite(cls, channels: int = 1, **kw) -> LmkGuidedConfig:
        """CPU-trainable at 128 px (< 5 MB of generator weights), luminance."""
        return cls(channels=channels, ngf=16, n_blocks=6, ndf=32, merge_heatmaps=True, **kw)

    @classmethod
    def wild(cls, channels: int = 1, **kw) -> LmkGuidedConfig:
        """The lite sizes with residual outputs and resize-convolutions (the ``wild`` recipe: studio
        pairs and LFW photos)."""
        return cls.lite(channels=channels, residual=True, upsample="resize", **kw)

    @classmethod
    def tight(cls, channels: int = 1, **kw) -> LmkGuidedConfig:
        """The ``wild`` sizes on the tight 5-point crop: the face fills the 128 px (about three times
        the face pixels of the 6.4 d crop)."""
        return cls.wild(channels=channels, template="celeba", **kw)

    @classmethod
    def tiny(cls, channels: int = 3, size: int = 32, **kw) -> LmkGuidedConfig:
        """For tests: 8-16 channels, 32 px, three expressions, 2 blocks."""
        kw.setdefault("expressions", ("neutral", "happy", "sad"))
        return cls(size=size, channels=channels, ngf=4, n_blocks=2, ndf=8, d_layers=2, **kw)

    # The paper's ablations (Table 7), on top of any preset.
    def without_feature_init(self) -> LmkGuidedConfig:
        return dataclasses.replace(self, feature_init=False)

    def without_label(self) -> LmkGuidedConfig:
        return dataclasses.replace(self, label_maps=False)


def _feature_init(in_ch: int, c: LmkGuidedConfig) -> nn.Sequential:
    if not c.feature_init:
        k = 2**c.n_down
        return nn.Sequential(nn.PixelUnshuffle(k), nn.Conv2d(in_ch * k * k, c.latent, 1))
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_ch, c.ngf, 7, bias=False), nn.BatchNorm2d(c.ngf),
                               nn.ReLU()]
    ch = c.ngf
    for _ in range(c.n_down):
        layers += [nn.Conv2d(ch, ch * 2, 3, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.ReLU()]
        ch *= 2
    return nn.Sequential(*layers)


def _path(in_ch: int, ch: int, dropout: float, last_norm: bool) -> nn.Sequential:
    """Table 1: pad, 3x3 conv, BN, ReLU, dropout, pad, 3x3 conv (, BN)."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(in_ch, ch, 3, bias=False), nn.BatchNorm2d(ch), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers += [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=not last_norm)]
    if last_norm:
        layers.append(nn.BatchNorm2d(ch))
    return nn.Sequential(*layers)


class MigrationUnit(nn.Module):
    """One migration unit block (eqs. 1-3): (F^P, F^S) -> (F^P_t, F^S_t)."""

    def __init__(self, ch: int, first: bool, dropout: float) -> None:
        super().__init__()
        self.conv_p = _path(ch, ch, dropout, last_norm=True)
        self.conv_s = _path(ch if first else 2 * ch, ch, dropout, last_norm=False)

    def forward(self, fp: Tensor, fs: Tensor) -> tuple[Tensor, Tensor]:
        s = self.conv_s(fs)
        mask = torch.sigmoid(s)  # eq. 1
        fp_t = mask * self.conv_p(fp) + fp  # eq. 2
        return fp_t, torch.cat([s, fp_t], dim=1)  # eq. 3


class LmkGuidedGenerator(nn.Module, PyTorchModelHubMixin):
    """(face, target heatmaps, target label) -> face with the target geometry and expression."""

    config_class = LmkGuidedConfig

    def __init__(self, config: LmkGuidedConfig) -> None:
        super().__init__()
        self.config = c = config
        self.init_face = _feature_init(c.channels, c)
        self.init_geo = _feature_init(c.heat_channels, c)
        self.blocks = nn.ModuleList(MigrationUnit(c.latent, i == 0, c.dropout) for i in range(c.n_blocks))
        k = c.n_classes if c.label_maps else 0
        layers: list[nn.Module] = []
        ch = c.latent + k
        for i in range(c.n_down):
            out = c.latent // 2 ** (i + 1)  # Table 2: 128, then 64 channels
            up = (nn.ConvTranspose2d(ch, out, 3, 2, 1, output_padding=1, bias=False) if c.upsample == "transpose"
                  else ResizeConv(ch, out, bias=False))
            layers += [up, nn.BatchNorm2d(out), nn.ReLU()]
            ch = out
        last = nn.Conv2d(ch, c.channels, 7)
        layers += [nn.ReflectionPad2d(3), last, nn.Identity() if c.residual else nn.Tanh()]
        self.decoder = nn.Sequential(*layers)
        # Per-expression mean landmark displacement (in inter-ocular distances), fitted from the
        # training pairs; used when no target landmarks are given (see facegen.models.heatmaps).
        self.register_buffer("template", torch.zeros(c.n_classes, c.n_points, 2))
        self.register_buffer("template_ready", torch.zeros(()))
        init_normal(self, 0.02)
        if c.residual:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def heatmaps(self, points: Tensor) -> Tensor:
        """(N, 68, 2) target landmarks in pixels at ``size`` -> the (N, 68 or 1, size, size) generator input."""
        c = self.config
        return heatmaps.render_heatmaps(points, c.size, c.heatmap_sigma, merge=c.merge_heatmaps)

    def label_maps(self, labels: Tensor, h: int, w: int, dtype: torch.dtype) -> Tensor:
        """One-hot labels as [-1, 1] maps (Fig. 4): 1 on the target class's map, -1 elsewhere."""
        return tile_maps(F.one_hot(labels, self.config.n_classes).to(dtype) * 2.0 - 1.0, h, w)

    def forward(self, x: Tensor, heat: Tensor, labels: Tensor) -> Tensor:
        """``x`` in [-1, 1], ``heat`` (N, 68 or 1, H, W) in [0, 1], ``labels`` (N,) -> image in [-1, 1]."""
        fp, fs = self.init_face(x), self.init_geo(heat)
        for block in self.blocks:
            fp, fs = block(fp, fs)
        if self.config.label_maps:
            fp = torch.cat([fp, self.label_maps(labels, fp.shape[2], fp.shape[3], fp.dtype)], dim=1)
        if self.config.residual:
            return (x + self.decoder(fp)).clamp(-1.0, 1.0)
        return self.decoder(fp)

    def set_template(self, displacements: Tensor) -> None:
        """Store the (K, 68, 2) expression template (see :func:`heatmaps.mean_displacements`)."""
        c = self.config
        if tuple(displacements.shape) != (c.n_classes, c.n_points, 2):
            raise ValueError(f"template must be {(c.n_classes, c.n_points, 2)}; got {tuple(displacements.shape)}")
        self.template.copy_(displacements)
        self.template_ready.fill_(1.0)

    @property
    def fits_template(self) -> bool:
        """Whether the model holds an expression template, so that it can make target landmarks from
        the input faces' own (``source_landmarks`` of :meth:`infer`)."""
        return float(self.template_ready) == 1.0

    def target_landmarks(self, own: Tensor, labels: Tensor, intensity: float = 1.0) -> Tensor:
        """The expression template fitted to faces with (N, 68, 2) landmarks ``own``: (N, 68, 2)."""
        if not self.fits_template:
            raise ExpressionError(
                "this lmk-guided model has no expression template; give target landmarks (e.g. from a reference photo)"
            )
        return heatmaps.fit_template(own, labels, self.template, intensity)

    @torch.no_grad()
    def infer(self, x: Tensor, expression: str | list[str], intensity: float = 1.0,
              landmarks: Tensor | None = None, source_landmarks: Tensor | None = None) -> Tensor:
        """Float NCHW RGB (or grey) in [0, 1] at ``size`` -> the face with ``expression``, same size.

        ``landmarks``: (N, 68, 2) target landmarks in pixels of the aligned crop (the ground
        truth's, or a reference photo's). Without them the model's expression template is fitted
        to ``source_landmarks``, the input faces' own (N, 68, 2) landmarks (found by
        :func:`facegen.landmarks.landmarks_of_batch`; the runner passes them), scaled by
        ``intensity`` in [0, 1]; given landmarks are used as they are. ``intensity`` also scales
        the change the network makes (output = input + intensity x (network output - input); not
        in paper 004, which has no intensity): the template's shift alone moves the output too
        little to see, so 0 returns the input and 1 the network's full change. A luminance model
        (``channels=1``) runs on the BT.601 Y channel of an RGB input and takes Cb/Cr from the input.
        """
        c = self.config
        check_image_batch(x, (1, 3) if c.channels == 1 else (3,), c.size, "lmk-guided")
        if not 0.0 <= float(intensity) <= 1.0:
            raise ExpressionError(f"intensity must lie in [0, 1]; got {intensity}")
        labels = label_indices(expression, c.expressions, x.shape[0], x.device)
        if landmarks is None:
            if source_landmarks is None and self.fits_template:
                raise ExpressionError("give target landmarks, or the input faces' own landmarks "
                                      "(source_landmarks, from facegen.landmarks) to fit the expression template to")
            landmarks = self.target_landmarks(source_landmarks, labels, intensity)  # type: ignore[arg-type]
        if tuple(landmarks.shape) != (x.shape[0], c.n_points, 2):
            raise ExpressionError(f"landmarks must be ({x.shape[0]}, {c.n_points}, 2); got {tuple(landmarks.shape)}")
        heat = self.heatmaps(landmarks.to(x.device, x.dtype))

        t = float(intensity)

        def run(inp: Tensor) -> Tensor:
            out = ((self(inp * 2.0 - 1.0, heat, labels) + 1.0) / 2.0).clamp(0.0, 1.0)
            return out if t == 1.0 else inp + t * (out - inp)

        if c.channels == 1:
            return luminance_wrap(run, x, c.size)
        return run(x)

    @torch.no_grad()
    def infer_batch(self, batch: dict[str, Tensor], intensity: float = 1.0) -> Tensor:
        """:meth:`infer` on a training/validation batch (``lr``, ``label`` indices, target ``landmarks``)."""
        names = [self.config.expressions[int(i)] for i in batch["label"]]
        return self.infer(batch["lr"], names, intensity, landmarks=batch.get("landmarks"))


class LmkGuidedDiscriminators(nn.Module, PyTorchModelHubMixin):
    """The image discriminator D_I(source, image) and the geometry discriminator D_G(image, heatmaps)."""

    config_class = LmkGuidedConfig

    def __init__(self, config: LmkGuidedConfig) -> None:
        super().__init__()
        self.config = c = config
        # Table 3: 4x4 convs 64-128-256 (stride 2), 512 (stride 1), 1 (stride 1); BN after all but the
        # first, and on the output map; LeakyReLU 0.2; logits (sigmoid in the loss).
        table3 = dict(max_mult=2**c.d_layers, output_norm=True, init_std=None)
        self.image = PatchDiscriminator(2 * c.channels, c.ndf, c.d_layers, **table3)
        self.geometry = PatchDiscriminator(c.channels + c.heat_channels, c.ndf, c.d_layers, **table3)
        init_normal(self, 0.02)

    def forward(self, which: str, image: Tensor, condition: Tensor) -> Tensor:
        if which == "image":
            return self.image(condition, image)
        if which == "geometry":
            return self.geometry(image, condition)
        raise ValueError(f"discriminator must be 'image' or 'geometry'; got {which!r}")


def parameter_report(config: LmkGuidedConfig) -> dict[str, int]:
    """Parameters of the generator (and its parts) and of the two discriminators."""
    g = LmkGuidedGenerator(config)
    d = LmkGuidedDiscriminators(config)
    return {"generator": count_parameters(g), "feature_init": count_parameters(g.init_face) + count_parameters(g.init_geo),
            "blocks": count_parameters(g.blocks), "decoder": count_parameters(g.decoder),
            "d_image": count_parameters(d.image), "d_geometry": count_parameters(d.geometry)}
