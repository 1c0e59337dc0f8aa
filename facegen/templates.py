"""Measure a 5-point alignment template on training faces: ``python -m facegen.templates fit``.

``TEMPLATES["celeba"]`` (facegen.faces) was measured on the 1,000 CelebA/FSRNet *test* faces. This
command measures the shape of the 5 points on faces that are not test faces (LFW, the SR training
set: one image per identity, in label order) and prints a template to compare with it:

1. YuNet (facegen.faces.detect) finds the 5 points of the centred face of each image;
2. the shapes are superimposed by generalised Procrustes analysis (each shape moved by the
   least-squares similarity onto the running mean, until the mean stops changing): the mean
   shape, free of each photo's position, size and roll;
3. the mean shape is placed in the crop by the least-squares similarity onto a framing template
   (default ``celeba``): only the crop's framing (4 numbers: scale, roll, x and y) comes from it,
   the relative positions of the 5 points (the other 6 of the 10 numbers) are measured here.

It prints the template (fractions of the crop side, YuNet order) and its distance to the
framing template in pixels of a 128-pixel crop; it changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from facegen import faces as F
from facegen.data.records import load_image
from facegen.data.root import DataRootError
from facegen.data.splits import split

DEFAULT_FACES = 1000
CROP = 128  # crop side for the pixel distances reported


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def procrustes_mean(shapes: np.ndarray, iterations: int = 50, tol: float = 1e-10) -> np.ndarray:
    """Generalised Procrustes mean of (n, k, 2) point shapes: centred, of unit RMS radius, in the
    orientation of the first shape."""
    shapes = np.asarray(shapes, dtype=np.float64)
    if shapes.ndim != 3 or shapes.shape[2] != 2 or len(shapes) < 1:
        raise ValueError(f"need (n, k, 2) shapes with n >= 1; got {shapes.shape}")

    def normalise(s: np.ndarray) -> np.ndarray:
        s = s - s.mean(0)
        return s / np.sqrt((s**2).sum(1).mean())

    mean = normalise(shapes[0])
    for _ in range(iterations):
        aligned = np.stack([_apply(F.similarity_transform(s, mean), s) for s in shapes])
        new = normalise(aligned.mean(0))
        new = normalise(_apply(F.similarity_transform(new, mean), new))  # keep the orientation
        if np.abs(new - mean).max() < tol:
            return new
        mean = new
    return mean


def fit_template(points: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(template, aligned): the Procrustes mean of ``points`` (n, k, 2) placed onto ``frame`` (k, 2)
    by a least-squares similarity, and every shape aligned onto that template (same units as
    ``frame``)."""
    frame = np.asarray(frame, dtype=np.float64)
    mean = procrustes_mean(points)
    template = _apply(F.similarity_transform(mean, frame), mean)
    aligned = np.stack([_apply(F.similarity_transform(s, template), s) for s in np.asarray(points, np.float64)])
    return template, aligned


def training_points(root: str | Path | None, n: int) -> tuple[np.ndarray, dict]:
    """YuNet 5 points (n', 5, 2) of the centred face in the first image of each of the first ``n``
    LFW identities (label order), and counts."""
    records = split("lfw", "sr", root).train
    first: dict[str, object] = {}
    for r in records:
        first.setdefault(r.subject, r)
    chosen = list(first.values())[:n]
    pts, missed = [], 0
    for r in chosen:
        image = load_image(r, r.root)
        found = F.detect(image)
        if not found:
            missed += 1
            continue
        pts.append(np.asarray(F.centred_face(found, image.shape).points, np.float64))
    if len(pts) < 2:
        raise ValueError(f"YuNet found a face in {len(pts)} of {len(chosen)} LFW images; need at least 2")
    return np.stack(pts), {"images": len(chosen), "faces": len(pts), "no_face": missed}


def report(template: np.ndarray, aligned: np.ndarray, frame_name: str, counts: dict) -> str:
    frame = F.TEMPLATES[frame_name]
    d = (template - frame) * CROP
    spread = aligned.std(0) * CROP
    names = ("right eye", "left eye", "nose tip", "right mouth corner", "left mouth corner")
    lines = [
        f"5-point template measured on {counts['faces']} LFW training faces (first image of each of the first "
        f"{counts['images']} identities, label order; YuNet score >= 0.6, centred face; {counts['no_face']} without a face);",
        f"shape by generalised Procrustes analysis, placed in the crop by a least-squares similarity onto "
        f"TEMPLATES[{frame_name!r}] (framing only: scale, roll, x, y).",
        "",
        "np.array([  # fractions of the crop side, YuNet order",
        *[f"    [{x:.5f}, {y:.5f}],  # {n}" for (x, y), n in zip(template, names)],
        "])",
        "",
        f"difference from TEMPLATES[{frame_name!r}] in pixels of a {CROP}-pixel crop (dx, dy), and the spread "
        "(standard deviation, x and y) of the training faces about the new template:",
        *[f"  {n:>18}: ({dx:+.2f}, {dy:+.2f})  spread ({sx:.2f}, {sy:.2f})"
          for n, (dx, dy), (sx, sy) in zip(names, d, spread)],
        f"  RMS displacement {np.sqrt((d**2).sum(1).mean()):.2f} px, largest {np.sqrt((d**2).sum(1)).max():.2f} px",
        f"  eye distance {np.linalg.norm(template[1] - template[0]) * CROP:.2f} px (framing {np.linalg.norm(frame[1] - frame[0]) * CROP:.2f}); "
        f"eye-to-mouth {np.linalg.norm((template[3:5].mean(0) - template[0:2].mean(0))) * CROP:.2f} px "
        f"(framing {np.linalg.norm((frame[3:5].mean(0) - frame[0:2].mean(0))) * CROP:.2f})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facegen.templates", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="measure the 5-point template on LFW training faces and print it")
    fit.add_argument("--faces", type=int, default=DEFAULT_FACES, help=f"LFW identities to use (default {DEFAULT_FACES})")
    fit.add_argument("--frame", default="celeba", choices=sorted(k for k, v in F.TEMPLATES.items() if len(v) == 5),
                     help="template whose framing (scale, roll, position) the measured shape is placed by")
    fit.add_argument("--data-root", help="face data root (default: $FACEGEN_DATA)")
    args = p.parse_args(argv)
    if args.faces < 2:
        print("error: --faces must be at least 2", file=sys.stderr)
        return 2
    try:
        points, counts = training_points(args.data_root, args.faces)
    except (DataRootError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    template, aligned = fit_template(points, F.TEMPLATES[args.frame])
    print(report(template, aligned, args.frame, counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
