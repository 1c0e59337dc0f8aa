"""benchmarks.macs: multiply-accumulates per face from torch's FlopCounterMode, against hand counts."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmarks.macs import COUNTER, count_macs, macs_per_face
from facegen.inference import Runner
from facegen.models.bicubic import Bicubic, BicubicConfig
from facegen.models.psgan import PSGANConfig, PSGANGenerator


def test_conv_and_linear_match_the_hand_count() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1, stride=2),
                          nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    x = torch.randn(1, 3, 16, 16)
    # output elements x (in channels x kernel area), per conv; in x out for the linear layer
    hand = 8 * 16 * 16 * (3 * 3 * 3) + 4 * 8 * 8 * (8 * 1 * 1) + (4 * 8 * 8) * 10
    assert hand == 55296 + 2048 + 2560
    with torch.inference_mode():
        assert count_macs(lambda: model(x)) == hand
        assert count_macs(lambda: model(torch.randn(2, 3, 16, 16))) == 2 * hand  # per batch: linear in N
    assert "FlopCounterMode" in COUNTER and torch.__version__ in COUNTER


def test_runner_macs_per_face() -> None:
    cfg = PSGANConfig.tiny(scale=2, lr_size=16, channels=1)  # entry 16, body (16,), ups (16, 8)
    torch.manual_seed(0)
    runner = Runner("psgan", "sr-x2", PSGANGenerator(cfg).eval(), "cpu")
    face = np.zeros((16, 16, 3), np.uint8)
    hand = (16 * 8 * 8 * (1 * 2 * 2)          # entry conv 2x2 stride 2 at 8x8
            + 16 * 8 * 8 * (16 * 9)           # body 16 -> 16 at 8x8
            + 64 * 8 * 8 * (16 * 9)           # 16 -> 4*16 before the first shuffle, at 8x8
            + 32 * 16 * 16 * (16 * 9)         # 16 -> 4*8 before the second shuffle, at 16x16
            + 1 * 32 * 32 * (8 * 9))          # last conv 8 -> 1 at 32x32
    assert macs_per_face(runner, face) == hand
    # a baseline outside torch (PIL) is not countable: None, not 0
    assert macs_per_face(Runner("bicubic", "sr-x2", Bicubic(BicubicConfig(2)), "cpu"), face) is None
