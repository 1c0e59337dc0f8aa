"""LFW face verification: the calibration of the identity encoders and the proof of alignment.

``python -m benchmarks.lfw [--data-root DIR] [--encoder sface|dlib|arcface ...] [--pairs FILE]
[--regenerate-pairs] [--out DIR] [--limit N]``

Pairs: LFW's own pairs.txt is not part of the data, so 3,000 pairs (1,500 same-person,
1,500 different-person, 10 folds of 150 + 150) are drawn from ``lfw/labels.csv`` with a seeded
generator and committed as ``benchmarks/lfw_pairs.txt`` (image names relative to ``lfw/``).

Per image: YuNet detection; the face whose box centre is nearest the image centre is the
subject (LFW photos are centred on the named person and often hold bystanders); the
encoder's own crop; its embedding. Each image is read once and its face detected once for all
the encoders calibrated together, and the faces are cached (:mod:`benchmarks.lfw_detect`);
dlib's network runs in worker processes (:mod:`benchmarks.dlib_pool`). Pairs are scored by cosine similarity. Accuracy follows
LFW's protocol: for each fold, the threshold that maximises accuracy on the other nine folds
is tested on it; mean and standard deviation over the ten folds. The ROC over all pairs gives
TAR at FAR 1 % and 0.1 % and the AUC. The maths is :mod:`benchmarks.metrics`
(``verification_accuracy_10fold``, ``roc_curve``, ``tar_at_far``). Results:
``lfw-<encoder>.json`` and ``lfw-<encoder>-roc.png``.

:func:`calibrate` is what ``python -m benchmarks.run`` calls: it rescores an encoder only when
the pairs, the encoder's version or the code that produces the numbers changed, and rescores
the stale encoders together.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import hashlib
import inspect
import io
import json
import os
import platform
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from benchmarks import dlib_pool, lfw_detect, verification
from benchmarks.judges import DlibResNetEncoder, identity_encoder, l2_normalise
from benchmarks.leaderboard import git_commit
from benchmarks.lfw_detect import LOW_SCORE
from facegen import assets, faces
from facegen.images import read_image
from facegen.io import atomic_write_bytes

PAIRS_FILE = Path(__file__).with_name("lfw_pairs.txt")
PAIRS_SEED = 20180101
N_FOLDS = 10
PAIRS_PER_FOLD = 150  # of each kind

# ============================================================================================
# Pairs


@dataclass(frozen=True)
class Pair:
    fold: int
    same: bool
    a: str  # image name relative to lfw/
    b: str


def read_labels(data_root: Path) -> dict[str, list[str]]:
    """identity -> sorted image names (relative to lfw/) from ``lfw/labels.csv``."""
    file = Path(data_root) / "lfw" / "labels.csv"
    if not file.is_file():
        raise FileNotFoundError(f"LFW labels not found at {file}: pass --data-root or set FACEGEN_DATA")
    by_id: dict[str, list[str]] = defaultdict(list)
    with open(file, newline="") as fh:
        for row in csv.DictReader(fh):
            by_id[row["identity"]].append(row["image"])
    return {k: sorted(v) for k, v in sorted(by_id.items())}


def generate_pairs(labels: dict[str, list[str]], seed: int = PAIRS_SEED) -> list[Pair]:
    """10 folds x (150 same + 150 different) distinct pairs, deterministic for a given seed.

    Same-person pairs: an identity with >= 2 images drawn uniformly, then two of its images.
    Different-person pairs: two identities drawn uniformly from all, one image of each.
    """
    rng = np.random.default_rng(seed)
    ids = sorted(labels)
    multi = [i for i in ids if len(labels[i]) >= 2]
    n = N_FOLDS * PAIRS_PER_FOLD
    same: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    while len(same) < n:
        imgs = labels[multi[int(rng.integers(len(multi)))]]
        i, j = sorted(int(v) for v in rng.choice(len(imgs), size=2, replace=False))
        key = (imgs[i], imgs[j])
        if key not in seen:
            seen.add(key)
            same.append(key)
    diff: list[tuple[str, str]] = []
    while len(diff) < n:
        p, q = (ids[int(v)] for v in rng.choice(len(ids), size=2, replace=False))
        key = (labels[p][int(rng.integers(len(labels[p])))], labels[q][int(rng.integers(len(labels[q])))])
        if key not in seen and key[::-1] not in seen:
            seen.add(key)
            diff.append(key)
    pairs = []
    for k in range(N_FOLDS):
        sl = slice(k * PAIRS_PER_FOLD, (k + 1) * PAIRS_PER_FOLD)
        pairs += [Pair(k, True, a, b) for a, b in same[sl]]
        pairs += [Pair(k, False, a, b) for a, b in diff[sl]]
    return pairs


def format_pairs(pairs: list[Pair], seed: int = PAIRS_SEED) -> str:
    lines = [
        "# LFW verification pairs: 10 folds x (150 same-person + 150 different-person).",
        f"# Generated from lfw/labels.csv by `python -m benchmarks.lfw --regenerate-pairs` (seed {seed}).",
        "# Image names are relative to the lfw/ folder of the data root.",
        "# fold\tsame\timage_a\timage_b",
    ]
    lines += [f"{p.fold}\t{int(p.same)}\t{p.a}\t{p.b}" for p in pairs]
    return "\n".join(lines) + "\n"


def read_pairs(file: Path = PAIRS_FILE) -> list[Pair]:
    pairs = []
    for n, line in enumerate(Path(file).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 4 or parts[1] not in ("0", "1"):
            raise ValueError(f"{file}:{n}: expected 'fold<TAB>same(0/1)<TAB>image_a<TAB>image_b'")
        pairs.append(Pair(int(parts[0]), parts[1] == "1", parts[2], parts[3]))
    return pairs


def subset(pairs: list[Pair], n: int) -> list[Pair]:
    """A deterministic balanced subset of about ``n`` pairs: in every fold, its first
    ``n // 20`` same-person and first ``n // 20`` different-person pairs (all ten folds kept)."""
    m = max(1, n // (2 * N_FOLDS))
    out, count = [], defaultdict(int)
    for p in pairs:
        if count[(p.fold, p.same)] < m:
            count[(p.fold, p.same)] += 1
            out.append(p)
    return out


# ============================================================================================
# Embedding the images


CHUNK = 128  # images read, cropped and embedded together


@dataclass(frozen=True)
class Embedded:
    embeddings: dict[str, np.ndarray]
    seconds: float  # wall time for this encoder's crops and embeddings of all images
    cpu_seconds: float  # CPU time of the same work (all threads, and the worker processes for dlib)


@dataclass(frozen=True)
class Subjects:
    """How the subject faces were found (benchmarks.lfw_detect) and the images read."""

    low_score: list[str]  # found only below the usual score threshold (LOW_SCORE <= score < 0.6)
    fallback: list[str]  # no face at all: the fixed centred LFW_MEAN_POINTS were used
    cached: bool  # the faces came from the detection cache
    seconds: float  # wall time for reading (decoding) all images and, unless cached, detecting them


def _embedders(encoders: list, threads: int, stack: contextlib.ExitStack) -> list:
    """One function per encoder: crops -> (unit embeddings, CPU seconds spent in worker processes).
    dlib's network runs in ``threads`` worker processes (benchmarks.dlib_pool); the others run in
    this process one crop at a time (OpenCV's int8 SFace gives wrong features for a batch of more
    than one crop: measured, features up to 1e32 off)."""
    out = []
    for enc in encoders:
        if isinstance(enc, DlibResNetEncoder):
            pool = stack.enter_context(dlib_pool.DescriptorPool(assets.path("dlib_resnet"), threads))

            def embed(crops, pool=pool):
                desc, cpu = pool.descriptors(crops)
                return l2_normalise(desc), cpu
        else:

            def embed(crops, enc=enc):
                return np.concatenate([enc.embed(c[None]) for c in crops]), 0.0
        out.append(embed)
    return out


def embed_images(names: list[str], lfw_dir: Path, encoders: list, *, threads: int = 2,
                 progress: bool = True) -> tuple[Subjects, list[Embedded]]:
    """Embed each LFW image's subject face with every encoder (judges.IdentityEncoder): each image
    is read once and its face detected once (or taken from the detection cache) for all of them."""
    cache = lfw_detect.cache_file(names)
    loaded = lfw_detect.load_faces(cache, names)
    faces, status = loaded if loaded is not None else ([], [])
    emb: list[dict[str, np.ndarray]] = [{} for _ in encoders]
    wall, cpu = [0.0] * len(encoders), [0.0] * len(encoders)
    read_seconds = 0.0
    bar = None
    if progress:
        # Few updates when stderr is a log file rather than a terminal.
        bar = tqdm(total=len(names), desc="LFW " + "+".join(e.name for e in encoders), unit="img",
                   file=sys.stderr, mininterval=5 if sys.stderr.isatty() else 60)
    with contextlib.ExitStack() as stack:
        embedders = _embedders(encoders, threads, stack)
        for start in range(0, len(names), CHUNK):
            chunk = names[start : start + CHUNK]
            t0 = time.perf_counter()
            images = [read_image(lfw_dir / n) for n in chunk]
            if loaded is None:
                for img in images:
                    face, how = lfw_detect.subject_face(img)
                    faces.append(face)
                    status.append(how)
            read_seconds += time.perf_counter() - t0
            for k, (enc, embed) in enumerate(zip(encoders, embedders)):
                t0, c0 = time.perf_counter(), time.process_time()
                crops = np.stack([enc.crop(img, f) for img, f in zip(images, faces[start : start + CHUNK])])
                e, worker_cpu = embed(crops)
                emb[k].update(zip(chunk, e))
                wall[k] += time.perf_counter() - t0
                cpu[k] += time.process_time() - c0 + worker_cpu
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    if loaded is None:
        lfw_detect.save_faces(cache, names, faces, status)
    subjects = Subjects(
        [n for n, s in zip(names, status) if s == lfw_detect.LOW],
        [n for n, s in zip(names, status) if s == lfw_detect.FALLBACK],
        loaded is not None,
        read_seconds,
    )
    return subjects, [Embedded(e, w, c) for e, w, c in zip(emb, wall, cpu)]


def evaluate(pairs: list[Pair], emb: dict[str, np.ndarray]) -> dict:
    """Verification numbers for these pairs from unit embeddings (pairs in folds of equal size)."""
    pairs = sorted(pairs, key=lambda p: p.fold)  # stable: each fold stays in the file's order
    folds = np.array([p.fold for p in pairs])
    sizes = np.unique(folds, return_counts=True)[1]
    if len(sizes) < 2 or (sizes != sizes[0]).any():
        raise ValueError(f"LFW pairs must form at least two folds of equal size; got fold sizes {sizes.tolist()}")
    a = np.stack([emb[p.a] for p in pairs])
    b = np.stack([emb[p.b] for p in pairs])
    scores = np.sum(a * b, axis=1)
    labels = np.array([p.same for p in pairs], dtype=int)
    # Folds are contiguous and equally long, so metrics' contiguous k-fold split is the pairs' folds.
    v = verification.verification_accuracy_10fold(scores, labels, n_folds=len(sizes))
    r = verification.roc_curve(scores, labels)
    return {
        "accuracy_mean": v.accuracy,
        "accuracy_std": v.std,
        "accuracy_per_fold": list(v.fold_accuracies),
        "threshold_per_fold": list(v.thresholds),
        "tar_at_far_1e-2": verification.tar_at_far(scores, labels, 1e-2),
        "tar_at_far_1e-3": verification.tar_at_far(scores, labels, 1e-3),
        "auc": r.auc,
        "_scores": scores,
        "_labels": labels,
        "_roc": r,
    }


def plot_roc(curves: dict[str, verification.RocCurve], file: Path, title: str = "LFW verification") -> None:
    """ROC curves (TAR against FAR on a log axis) as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for label, r in curves.items():
        far = np.maximum(r.far, 1e-4)
        ax.step(far, r.tar, where="post", label=label)
    for x in (1e-3, 1e-2):
        ax.axvline(x, color="grey", lw=0.5, ls=":")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0.5, 1.001)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(file, buf.getvalue())


# The benchmarks.metrics functions a calibration's numbers come from (see evaluate()).
VERIFICATION_METRICS = ("_scores_labels", "RocCurve", "roc_curve", "tar_at_far", "VerificationResult",
                        "_best_threshold", "verification_accuracy_10fold")


def code_fingerprint(encoder) -> str:
    """sha256 (16 hex) of the code behind a calibration: this module, the subject-face detection,
    the dlib worker pool, the face detector/aligner, the encoder's class source and the
    verification metrics it scores with (only those: a change to, say, FID does not make the
    calibration stale)."""
    h = hashlib.sha256()
    for src in (Path(__file__), Path(lfw_detect.__file__), Path(dlib_pool.__file__), Path(faces.__file__)):
        h.update(src.read_bytes())
    for fn in VERIFICATION_METRICS:
        h.update(inspect.getsource(getattr(verification, fn)).encode())
    h.update(inspect.getsource(type(encoder)).encode())
    return h.hexdigest()[:16]


def _current_results(encoder_names: list[str], out_dir: Path, pairs_file: Path) -> dict[str, dict]:
    """The up-to-date calibration result of each encoder that has one (same pairs file, encoder
    version and code, with its ROC plot)."""
    n_pairs = len(read_pairs(pairs_file))
    pairs_sha = hashlib.sha256(Path(pairs_file).read_bytes()).hexdigest()
    current: dict[str, dict] = {}
    for name in encoder_names:
        encoder = identity_encoder(name)
        file = out_dir / f"lfw-{encoder.name}.json"
        want = {"pairs_sha256": pairs_sha, "encoder_version": encoder.version, "code_sha256": code_fingerprint(encoder)}
        if file.is_file() and (out_dir / f"lfw-{encoder.name}-roc.png").is_file():
            try:
                old = json.loads(file.read_text())
            except (OSError, json.JSONDecodeError):
                old = {}
            if all(old.get(k) == v for k, v in want.items()) and old.get("n_pairs") == n_pairs:
                current[name] = old
    return current


def stale_encoders(encoder_names: list[str], out_dir: Path, pairs_file: Path = PAIRS_FILE) -> list[str]:
    """The encoders whose calibration :func:`calibrate` would recompute."""
    current = _current_results(encoder_names, Path(out_dir), pairs_file)
    return [n for n in encoder_names if n not in current]


def calibrate(data_root: Path, encoder_names: list[str], out_dir: Path, *, pairs_file: Path = PAIRS_FILE,
              threads: int = 2, progress: bool = True) -> list[tuple[dict, bool]]:
    """``lfw-<encoder>.json`` (+ ROC PNG) under ``out_dir`` for each encoder, recomputed only when
    the pairs file, the encoder's version or the code changed; the stale ones are computed
    together (one read and one detection per image). Returns (result, recomputed) per encoder."""
    current = _current_results(encoder_names, Path(out_dir), pairs_file)
    stale = [n for n in encoder_names if n not in current]
    fresh = dict(zip(stale, run(data_root, stale, pairs_file, out_dir, threads=threads, progress=progress))) if stale else {}
    return [(current[n], False) if n in current else (fresh[n], True) for n in encoder_names]


def run(data_root: Path, encoder_names: list[str], pairs_file: Path, out_dir: Path, *, limit: int | None = None,
        threads: int = 2, progress: bool = True) -> list[dict]:
    """Score the pairs with each encoder; write JSON + ROC PNG per encoder under ``out_dir``;
    return the results in the order of ``encoder_names``."""
    cv2.setNumThreads(threads)
    pairs = read_pairs(pairs_file)
    if limit is not None:
        pairs = subset(pairs, limit)
    lfw_dir = Path(data_root) / "lfw"
    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    missing = [n for n in names if not (lfw_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} LFW images of the pairs are missing under {lfw_dir}, e.g. {missing[0]}")
    encoders = [identity_encoder(n) for n in encoder_names]
    subjects, embedded = embed_images(names, lfw_dir, encoders, threads=threads, progress=progress)
    return [_write_result(pairs, pairs_file, names, encoder, subjects, emb, out_dir, limit, threads)
            for encoder, emb in zip(encoders, embedded)]


def _write_result(pairs: list[Pair], pairs_file: Path, names: list[str], encoder, subjects: Subjects, emb: Embedded,
                  out_dir: Path, limit: int | None, threads: int) -> dict:
    res = evaluate(pairs, emb.embeddings)
    result = {
        "benchmark": "lfw-verification",
        "encoder": encoder.name,
        "encoder_version": encoder.version,
        "crop": f"{encoder.crop_size}x{encoder.crop_size} ({getattr(encoder, 'template', 'dlib face chip from 68 landmarks')})",
        "detector": "YuNet face_detection_yunet_2023mar_int8bq, score >= 0.6; face nearest the image centre",
        "pairs_file": pairs_file.name,
        "pairs_sha256": hashlib.sha256(Path(pairs_file).read_bytes()).hexdigest(),
        "code_sha256": code_fingerprint(encoder),
        "n_pairs": len(pairs),
        "n_same": int(sum(p.same for p in pairs)),
        "n_images": len(names),
        "protocol": "cosine similarity; 10-fold accuracy, threshold chosen on 9 folds and tested on the 10th; "
        "ROC over all pairs; TAR at FAR f: accept score > the (floor(f * impostors) + 1)-th highest impostor score "
        "(benchmarks.metrics)",
        **{k: v for k, v in res.items() if not k.startswith("_")},
        "images_low_score_face": subjects.low_score,
        "images_without_face": subjects.fallback,
        "fallback": f"faces found only at score >= {LOW_SCORE} are used as found; with no face at all, "
        "the fixed centred 5 points LFW_MEAN_POINTS (the average centred LFW face) are used",
        "timing": "seconds, ms_per_image, cpu_ms_per_image: this encoder's crops and embeddings; read_detect_seconds: "
        "reading the images and detecting their faces, once for all the encoders calibrated together "
        "(detect_cached: faces from the bench cache)",
        "seconds": round(emb.seconds, 2),
        "ms_per_image": round(1000 * emb.seconds / len(names), 2),
        "cpu_ms_per_image": round(1000 * emb.cpu_seconds / len(names), 2),
        "read_detect_seconds": round(subjects.seconds, 2),
        "detect_cached": subjects.cached,
        "cpu_threads": threads,
        "hardware": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".strip(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
    }
    stem = f"lfw-{encoder.name}" + (f"-{len(pairs)}" if limit is not None else "")
    atomic_write_bytes(out_dir / f"{stem}.json", (json.dumps(result, indent=2) + "\n").encode())
    plot_roc({f"{encoder.name} (acc {100 * res['accuracy_mean']:.2f} %, AUC {res['auc']:.4f})": res["_roc"]},
             out_dir / f"{stem}-roc.png", title=f"LFW verification, {len(pairs):,} pairs")
    return result


def _default_data_root() -> Path:
    env = os.environ.get("FACEGEN_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.lfw", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=None, help="data root holding lfw/ (default: $FACEGEN_DATA)")
    ap.add_argument("--encoder", nargs="+", default=["sface"], choices=["sface", "dlib", "arcface"],
                    help="one or more encoders, calibrated together (each image read and detected once)")
    ap.add_argument("--pairs", type=Path, default=PAIRS_FILE)
    ap.add_argument("--regenerate-pairs", action="store_true", help="draw the pairs again from labels.csv and write --pairs")
    ap.add_argument("--out", type=Path, default=Path("outputs"), help="folder for the JSON and the ROC PNG")
    ap.add_argument("--limit", type=int, default=None, help="score a balanced subset of N pairs (N/20 of each kind per fold)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    root = args.data_root or _default_data_root()
    try:
        if args.regenerate_pairs:
            pairs = generate_pairs(read_labels(root))
            atomic_write_bytes(args.pairs, format_pairs(pairs).encode())
            print(f"wrote {len(pairs)} pairs to {args.pairs}")
        results = run(root, list(dict.fromkeys(args.encoder)), args.pairs, args.out, limit=args.limit,
                      threads=args.threads, progress=not args.no_progress)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(
            f"LFW {r['encoder']}: {r['n_pairs']} pairs, 10-fold accuracy {100 * r['accuracy_mean']:.2f} "
            f"± {100 * r['accuracy_std']:.2f} %, TAR@FAR1% {100 * r['tar_at_far_1e-2']:.2f} %, "
            f"TAR@FAR0.1% {100 * r['tar_at_far_1e-3']:.2f} %, AUC {r['auc']:.5f}; {r['ms_per_image']} ms/image "
            f"wall, {r['cpu_ms_per_image']} ms CPU ({r['cpu_threads']} threads) to crop and embed, "
            f"{r['read_detect_seconds']} s to read and detect all images; {len(r['images_without_face'])} images "
            f"without a face (+{len(r['images_low_score_face'])} found only at score >= {LOW_SCORE}); "
            f"results in {args.out}/"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
