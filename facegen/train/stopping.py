"""Stopping a run on validation: pure functions of the trainer's validation history.

The history is the list of validation rows (``{"step": ..., "psnr": ...}``) a run has written.
``patience`` counts validations: a run stops once that many in a row have not beaten the best one.
"""

from __future__ import annotations

from collections.abc import Sequence


def best_step(history: Sequence[dict[str, float]]) -> int | None:
    """The step of the highest validation PSNR (the earliest of equals); None before any validation."""
    if not history:
        return None
    return int(max(sorted(history, key=lambda h: h["step"]), key=lambda h: h["psnr"])["step"])


def should_stop(history: Sequence[dict[str, float]], patience: int) -> bool:
    """Whether the last ``patience`` validations have all failed to beat the best one (never with 0)."""
    best = best_step(history)
    return bool(patience) and best is not None and sum(h["step"] > best for h in history) >= patience


def export_note(step: int, export_step: int, patience: int, stopped: bool) -> str | None:
    """One sentence on why the exported step is not the run's last step (None when it is)."""
    if export_step == step:
        return None
    why = (f"stopped on validation at step {step}, after {patience} validations without a better PSNR"
           if stopped else f"ended at step {step}")
    return f"the run {why}; this is the EMA generator of step {export_step}, its best validation"
