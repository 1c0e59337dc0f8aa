"""A small expression classifier: the benchmark's in-domain expression judge.

Input: grey face crops at ``input_size`` (the square-box crop of
:func:`benchmarks.judges.face_box_crop`, the same crop the FER2013 judge reads), scaled to
[-1, 1]. Four conv stages (two 3x3 conv + BatchNorm + ReLU, then 2x2 max pooling), global
average pooling, dropout and a linear layer to one logit per class. Trained by
``python -m benchmarks.judge_training train-domain`` on training subjects only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from facegen.expressions import JUDGE_CLASSES


@dataclass(frozen=True)
class ExpressionCNNConfig:
    classes: tuple[str, ...] = JUDGE_CLASSES
    input_size: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.3

    @classmethod
    def judge(cls) -> ExpressionCNNConfig:
        """The shipped in-domain judge (about 290k parameters, 64x64 grey)."""
        return cls()

    @classmethod
    def tiny(cls) -> ExpressionCNNConfig:
        """A small variant for fast tests."""
        return cls(input_size=32, channels=(4, 8))


class ExpressionCNN(nn.Module, PyTorchModelHubMixin):
    """(N, 1, S, S) grey faces in [-1, 1] -> (N, len(classes)) logits."""

    config_class = ExpressionCNNConfig

    def __init__(self, config: ExpressionCNNConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        cin = 1
        for cout in config.channels:
            for _ in range(2):
                layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(cin, len(config.classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x).mean(dim=(2, 3))))

    @torch.no_grad()
    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities for preprocessed input (eval mode is the caller's business)."""
        return torch.softmax(self.forward(x), dim=1)


def preprocess(grey: np.ndarray) -> Tensor:
    """uint8 grey crops, (N, S, S) -> float (N, 1, S, S) in [-1, 1]: (x / 255 - 0.5) x 2."""
    arr = np.asarray(grey)
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise ValueError(f"expected uint8 (N, S, S) grey crops, got {arr.dtype} {arr.shape}")
    return (torch.from_numpy(arr.astype(np.float32))[:, None] / 255.0 - 0.5) * 2.0
