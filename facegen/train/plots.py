"""Validation pictures: an image grid (bicubic | output | ground truth) and the PSNR/LPIPS curve."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from facegen.io import atomic_write_bytes


def save_grid(path: Path, columns: list[Tensor]) -> None:
    """Write a PNG whose rows are images and whose columns are the given NCHW [0, 1] batches."""
    cols = []
    for t in columns:
        t = t.detach().float().cpu().clamp(0, 1)
        if t.shape[1] == 1:
            t = t.repeat(1, 3, 1, 1)
        cols.append(torch.cat(list(t), dim=1))  # stack the batch vertically
    grid = torch.cat(cols, dim=2)
    arr = (grid.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())


def save_curves(path: Path, history: list[dict[str, float]]) -> None:
    """Write PSNR (and LPIPS when measured) against step, with the baseline (bicubic SR or the input) dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    has_lpips = all("lpips" in h for h in history) and history
    panels = [("psnr", "PSNR (dB, Y)")] + ([("lpips", "LPIPS (alex)")] if has_lpips else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        ax.plot(steps, [h[key] for h in history], marker="o", label="model (EMA)")
        ax.plot(steps, [h[f"{key}_bicubic"] for h in history], ls="--", marker="x", label="baseline (bicubic / input)")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
