"""Training the benchmark's in-domain expression judge (``domain`` of :mod:`benchmarks.judges`):
``python -m benchmarks.judge_training train-domain --data-root DIR --out checkpoints/expression-judge``.

It trains :class:`facegen.models.expression_cnn.ExpressionCNN` on training subjects only, on the
crops the benchmark's judges read (:func:`benchmarks.judges.face_box_crop`), and writes the
checkpoint folder with its card (held-out accuracy beside the independent FER2013 judge's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as TF

from benchmarks.judges import (CROP_RULE, DOMAIN_JUDGE_DIR, ExpressionJudge, FerJudge, TorchJudge, classification_report,
                               face_box_crop)
from facegen import assets, checkpoint
from facegen.data.cache import aligned_crops
from facegen.data.records import load_image
from facegen.data.root import DataRootError, data_root
from facegen.data.splits import JAFFE_TEST_SUBJECTS, RAFD_TEST_SUBJECTS, TEST_SUBJECTS, split
from facegen.io import save_npz
from facegen.models.expression_cnn import JUDGE_CLASSES, ExpressionCNN, ExpressionCNNConfig

#: Sets the in-domain judge trains on, each through ``split(dataset, "judge").train``.
JUDGE_SETS: tuple[str, ...] = ("jaffe", "rafd_subset", "ckplus48", "lfw_expressions", "fer2013_partial")
#: Sets whose benchmark faces the judge scores: their training images go through the task
#: alignment (template "expression", 128 px) first, as benchmark images do.
ALIGNED_SETS: tuple[str, ...] = ("jaffe", "rafd_subset")
#: LFW expression labels are ~54 % neutral and ~45 % happy: at most this many images of a class
#: are drawn (seeded) from that set, the rest of the imbalance is left to the loss weights.
LFW_CAP = 700


@dataclass(frozen=True)
class TrainRecipe:
    epochs: int = 14
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    in_domain_repeat: int = 3  # JAFFE/RaFD training images are seen this many times per epoch
    seed: int = 0


def judge_training_records(root: str | Path | None = None, lfw_cap: int = LFW_CAP, seed: int = 0) -> list:
    """The judge's training records: ``split(d, "judge").train`` of each of :data:`JUDGE_SETS`,
    basic expressions only (no contempt), LFW expressions capped at ``lfw_cap`` per class."""
    out = []
    for ds in JUDGE_SETS:
        recs = [r for r in split(ds, "judge", root).train if r.expression in JUDGE_CLASSES]
        if ds == "lfw_expressions":
            rng = np.random.default_rng(seed)
            keep = []
            for c in JUDGE_CLASSES:
                idx = [i for i, r in enumerate(recs) if r.expression == c]
                if len(idx) > lfw_cap:
                    idx = sorted(rng.choice(idx, size=lfw_cap, replace=False).tolist())
                keep += idx
            recs = [recs[i] for i in sorted(keep)]
        out += recs
    return out


def judge_crops(records: list, progress: bool = False) -> tuple[np.ndarray, np.ndarray, list]:
    """(N, 64, 64) crops, face-found flags and the records kept, prepared as benchmark images are.

    JAFFE/RaFD records are first aligned like benchmark faces (template "expression", 128 px,
    through the aligned-crop cache; records without a face are dropped), then cropped with
    :func:`face_box_crop`; the other sets (already face crops or LFW photos) are cropped directly.
    Cached under ``$FACEGEN_CACHE/judge``.
    """
    h = hashlib.sha256(CROP_RULE.encode())
    for r in records:
        h.update(r.key.encode() + b"\n")
    path = assets.cache_dir() / "judge" / f"crops-{h.hexdigest()[:16]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            keys = set(z["keys"].tolist())
            return z["crops"], z["found"], [r for r in records if r.key in keys]
    aligned = {}
    for ds in ALIGNED_SETS:
        recs = [r for r in records if r.dataset == ds]
        if recs:
            ac = aligned_crops(recs, 128, "expression", progress=progress)
            aligned.update({k: ac.images[i] for i, k in enumerate(ac.keys)})
    crops, found, kept = [], [], []
    for r in records:
        if r.dataset in ALIGNED_SETS:
            if r.key not in aligned:
                continue
            img = np.asarray(aligned[r.key])
        else:
            img = load_image(r)
        c, f = face_box_crop(img)
        crops.append(c)
        found.append(f)
        kept.append(r)
    crops_a, found_a = np.stack(crops), np.array(found, bool)


    save_npz(path, crops=crops_a, found=found_a, keys=np.array([r.key for r in kept]))
    return crops_a, found_a, kept


def _augment(x, gen):
    """Random flip, small rotation/scale/shift and brightness/contrast jitter of (N, 1, S, S) in [-1, 1]."""
    n = x.shape[0]
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(10)
    sc = 1 + (torch.rand(n, generator=gen) * 2 - 1) * 0.08
    tx, ty = ((torch.rand(2, n, generator=gen) * 2 - 1) * 0.06)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.cos(ang) / sc * flip
    theta[:, 0, 1] = -torch.sin(ang) / sc
    theta[:, 1, 0] = torch.sin(ang) / sc * flip
    theta[:, 1, 1] = torch.cos(ang) / sc
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = TF.affine_grid(theta, list(x.shape), align_corners=False)
    x = TF.grid_sample(x, grid, padding_mode="border", align_corners=False)
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.25
    bright = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.15
    return (x * contrast + bright).clamp(-1, 1)



def evaluate_judge(judge: ExpressionJudge, crops: np.ndarray, labels: Sequence[str], groups: Sequence[str]) -> dict:
    """:func:`classification_report` of the judge's predictions on these crops."""
    pred, _ = judge.predict_crops(crops)
    return classification_report(pred, labels, groups, judge.classes)


def train_domain_judge(root: str | Path, out: Path, recipe: TrainRecipe = TrainRecipe(), threads: int = 1,
                       progress: bool = True) -> dict:
    """Train the in-domain judge on training subjects and save it (config, weights, model card) to ``out``."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    records = judge_training_records(root, seed=recipe.seed)
    held_out = {(ds, s) for (ds, task), subjects in TEST_SUBJECTS.items() if task == "judge" for s in subjects}
    leaked = [r.key for r in records if (r.dataset, r.subject) in held_out]
    if leaked:
        raise RuntimeError(f"{len(leaked)} judge training images are of held-out test subjects, e.g. {leaked[0]}")
    crops, found, kept = judge_crops(records, progress=progress)
    y = np.array([JUDGE_CLASSES.index(r.expression) for r in kept])
    repeat = np.array([recipe.in_domain_repeat if r.dataset in ALIGNED_SETS else 1 for r in kept])
    index = np.repeat(np.arange(len(kept)), repeat)
    counts = np.bincount(y[index], minlength=len(JUDGE_CLASSES)).astype(np.float64)
    weights = torch.tensor(counts.sum() / (len(JUDGE_CLASSES) * np.maximum(counts, 1)), dtype=torch.float32)
    prep_s = time.perf_counter() - t0

    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model = ExpressionCNN(ExpressionCNNConfig.judge())
    x_all = (torch.from_numpy(crops.astype(np.float32))[:, None] / 255.0 - 0.5) * 2.0
    y_all = torch.from_numpy(y)
    steps_per_epoch = math.ceil(len(index) / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=total, pct_start=0.15)
    step = 0
    model.train()
    for epoch in range(recipe.epochs):
        perm = torch.from_numpy(index)[torch.randperm(len(index), generator=gen)]
        run_loss = 0.0
        for i in range(0, len(perm), recipe.batch_size):
            b = perm[i:i + recipe.batch_size]
            logits = model(_augment(x_all[b], gen))
            loss = TF.cross_entropy(logits, y_all[b], weight=weights, label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            run_loss += float(loss.detach()) * len(b)
        if progress:
            print(f"epoch {epoch + 1}/{recipe.epochs}: loss {run_loss / len(perm):.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    model.eval()
    train_s = time.perf_counter() - t0 - prep_s

    # Accuracy on the held-out subjects' images (never seen), prepared as benchmark images are.
    test = [r for ds in ALIGNED_SETS for r in split(ds, "judge", root).test if r.expression in JUDGE_CLASSES]
    t_crops, t_found, t_kept = judge_crops(test)

    class _Wrapped(TorchJudge):
        name = "domain"
        version = "training"
        classes = JUDGE_CLASSES
        _model = model

    report = evaluate_judge(_Wrapped(), t_crops, [r.expression for r in t_kept], [r.dataset for r in t_kept])
    fer = evaluate_judge(FerJudge(), t_crops, [r.expression for r in t_kept], [r.dataset for r in t_kept])
    per_set = {ds: int(sum(r.dataset == ds for r in kept)) for ds in JUDGE_SETS}
    per_class = {c: int(np.sum(y == i)) for i, c in enumerate(JUDGE_CLASSES)}
    info = {
        "train_images": len(kept),
        "train_images_per_set": per_set,
        "train_images_per_class": per_class,
        "train_faces_not_found": int((~found).sum()),
        "steps": step,
        "recipe": recipe.__dict__,
        "prepare_seconds": round(prep_s, 1),
        "train_seconds": round(train_s, 1),
        "threads": threads,
        "heldout": report,
        "heldout_fer2013": fer,
        "heldout_faces_not_found": int((~t_found).sum()),
    }
    checkpoint.save(model, out, model_id="expression-judge", card=_judge_card(info))
    return info


def _judge_card(info: dict) -> str:

    r, f = info["heldout"], info["heldout_fer2013"]
    rows = "\n".join(
        f"| {c} | {v['n']} | {v['accuracy']:.1f} | {f['per_class'].get(c, {}).get('accuracy', float('nan')):.1f} |"
        for c, v in r["per_class"].items()
    )
    sets = "\n".join(
        f"| {d} | {v['n']} | {v['accuracy']:.1f} | {f['per_dataset'][d]['accuracy']:.1f} |" for d, v in r["per_dataset"].items()
    )
    rec = info["recipe"]
    return f"""---
license: other
tags: [facial-expression-recognition, benchmark-judge]
---
# expression-judge: the in-domain expression judge of the facegen benchmark

A small CNN ({', '.join(str(c) for c in (16, 32, 64, 128))} channels, two 3x3 conv + BatchNorm + ReLU per
stage, max pooling, global average pooling, dropout 0.3, linear; about 290k parameters) that
tells 7 basic expressions apart (neutral, happy, sad, surprise, fear, disgust, angry) from a
64x64 grey face crop scaled to [-1, 1]. It scores the `smile` and `expression` tasks
(`expr_acc_domain`) beside the independent FER2013 judge.

## Input

`benchmarks.judges.face_box_crop`: the YuNet face nearest the image centre, its box made square
and enlarged by 18 %, grey (BT.601), 64x64 (the whole image when no face is found). Benchmark
images are 128x128 crops aligned with the `expression` template; JAFFE and RaFD training
images go through the same alignment first, so the judge sees training faces exactly as it
sees benchmark faces.

## Data (training subjects only)

`facegen.data.split(dataset, "judge").train` of JAFFE (held-out subjects {', '.join(JAFFE_TEST_SUBJECTS)} excluded),
RaFD (held-out {', '.join(RAFD_TEST_SUBJECTS)} excluded), CK+48, LFW expressions (at most {LFW_CAP} images per
class, seeded, since the labels are ~54 % neutral and ~45 % happy) and the FER2013 rows;
contempt images are left out. {info['train_images']} images: {info['train_images_per_set']};
per class {info['train_images_per_class']}. No face found (whole image used) in
{info['train_faces_not_found']} of them (mostly 48x48 CK+/FER crops).

## Training

`python -m benchmarks.judge_training train-domain --data-root DIR --out checkpoints/expression-judge`
(1 CPU thread, seed {rec['seed']}): AdamW (lr {rec['lr']}, one-cycle schedule, weight decay {rec['weight_decay']}),
batch {rec['batch_size']}, {rec['epochs']} epochs = {info['steps']} steps, class-weighted cross-entropy
(inverse frequency) with label smoothing {rec['label_smoothing']}, JAFFE/RaFD images repeated
{rec['in_domain_repeat']}x per epoch, random flip, rotation (+-10 deg), scale (+-8 %), shift
(+-3 %), brightness and contrast jitter. Preparing the crops took {info['prepare_seconds']} s,
training {info['train_seconds']} s.

## Accuracy on the held-out subjects' images ({r['n']} images of JAFFE/RaFD, never seen)

Overall {r['accuracy']:.1f} % (the FER2013 judge on the same crops: {f['accuracy']:.1f} %).

| dataset | n | in-domain judge (%) | FER2013 judge (%) |
|---|---|---|---|
{sets}

| class | n | in-domain judge (%) | FER2013 judge (%) |
|---|---|---|---|
{rows}

The benchmark also records both judges' accuracy on each task's real test images
(`benchmarks/results/<task>/real.json`, `calibration`).

## Limits

Trained on few posed faces of one ethnicity (JAFFE) or one studio (RaFD) plus noisy in-the-wild
labels; its accuracy on generated faces is only as good as its calibration above suggests.
Data licences: the datasets' own terms (research, non-commercial).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.judge_training", description="Train the benchmark's in-domain expression judge.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train-domain", help="train the in-domain expression judge on training subjects")
    t.add_argument("--data-root", default=None, help="face data root (default: $FACEGEN_DATA)")
    t.add_argument("--out", type=Path, default=DOMAIN_JUDGE_DIR)
    t.add_argument("--epochs", type=int, default=TrainRecipe.epochs)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    try:
        root = data_root(args.data_root, require=JUDGE_SETS + ("lfw",))
    except DataRootError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info = train_domain_judge(root, args.out, TrainRecipe(epochs=args.epochs, seed=args.seed), threads=args.threads)
    r = info["heldout"]
    print(f"saved {args.out}: held-out accuracy {r['accuracy']:.1f} % "
          + ", ".join(f"{d} {v['accuracy']:.1f} %" for d, v in r["per_dataset"].items())
          + f"; FER2013 judge {info['heldout_fer2013']['accuracy']:.1f} %; "
          f"{info['prepare_seconds']} s preparing, {info['train_seconds']} s training")
    print(json.dumps({k: info[k] for k in ("train_images_per_set", "train_images_per_class")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
