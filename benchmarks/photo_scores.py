"""The benchmark's scoring applied to one uploaded photo's faces (the app's sharp-photo scores and its
"already looks ..." notes): the same metric and judge functions the benchmark runs, nothing re-implemented."""

from __future__ import annotations

import numpy as np

from benchmarks import judges, metrics, perceptual
from facegen.request_results import face_label


def face_scores(outputs: list[np.ndarray], references: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR/SSIM (Y), LPIPS and identity cosine of super-resolved crops against the sharp ones,
    by the benchmark's own scoring functions."""
    return {
        "PSNR Y (dB)": float(np.mean([metrics.psnr(o, r, test_y_channel=True) for o, r in zip(outputs, references)])),
        "SSIM Y": float(np.mean([metrics.ssim(o, r, test_y_channel=True) for o, r in zip(outputs, references)])),
        "LPIPS": float(np.mean(perceptual.lpips_distances(outputs, references))),
        "identity cosine (SFace)": float(np.nanmean(judges.identity_cosines(outputs, references))),
    }


def already_showing(inputs: list[np.ndarray], target: str) -> list[str]:
    """Notes for faces that the independent FER2013 judge already reads as ``target`` (none when the
    judge's files are not installed)."""
    try:
        judge = judges.expression_judge("fer2013")
    except judges.JudgeUnavailableError:
        return []
    labels, probs = judge.predict(inputs)
    notes = []
    for i, (label, p) in enumerate(zip(labels, probs)):
        if label == target and target != "neutral":
            notes.append(f"{face_label(i)} already looks {target} (the FER2013 expression judge says so with "
                         f"{p[judge.classes.index(target)]:.0%} confidence), so the change may be small.")
    return notes
