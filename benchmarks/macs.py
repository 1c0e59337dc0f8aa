"""Multiply-accumulates per face, counted by PyTorch's own FLOP counter.

:func:`count_macs` runs a callable once under ``torch.utils.flop_counter.FlopCounterMode`` and
returns half the FLOPs it counted. That counter has shape formulas for convolutions (and their
transposes), matrix products (mm, addmm, bmm, baddbmm) and attention: each multiply-accumulate
is 2 FLOPs there, so FLOPs / 2 is exact for those operators. Bias additions, activations,
normalisation, pooling, interpolation and other element-wise work count 0, as in the usual
"MACs" of model-size tables; code outside torch (a PIL resize) is not counted at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

COUNTER = (f"torch.utils.flop_counter.FlopCounterMode (torch {torch.__version__}): convolutions and matrix "
           "products only, MACs = FLOPs / 2; bias, activations, normalisation and resizing not counted")


def count_macs(run: Callable[[], Any]) -> int:
    """Multiply-accumulates of the torch operators that ``run()`` executes (once)."""
    with FlopCounterMode(display=False) as counter:
        run()
    flops = counter.get_total_flops()
    if flops % 2:
        raise ValueError(f"FlopCounterMode counted an odd number of FLOPs ({flops}); not a whole number of MACs")
    return flops // 2


def macs_per_face(runner, face, conditions: dict[str, Any] | None = None) -> int | None:
    """MACs of ``runner`` (a :class:`facegen.inference.Runner`) on one face (uint8 HxWx3 at its
    task's input size) at batch 1, with that face's ``conditions``; None for a model that is not
    a torch module (its work is invisible to the counter)."""
    if not isinstance(runner.model, torch.nn.Module):
        return None
    return count_macs(lambda: runner([face], batch_size=1, **(conditions or {})))
