"""`python -m benchmarks.run`: score every registered model on every task and refresh the leaderboard.

For each task (benchmarks.tasks) it builds the test set from the data root, runs the reference
rows (`identity`: the input returned unchanged, up-sampled bicubically; `real`: the ground
truth) and every registered model serving the task, computes the task's metrics, and writes one
JSON per (task, model) under benchmarks/results/<task>/ atomically, then regenerates
leaderboard.csv and leaderboard.md from all result files.

Model outputs and judge features are cached (FACEGEN_CACHE/bench), keyed by the test set, the
checkpoint hashes and the row, so adding a model does not recompute the others and a killed run
resumes where it stopped.

The `calibration` pseudo-task (part of the default run; also `--calibrate`) scores the identity
encoders on LFW verification (benchmarks.lfw) into benchmarks/results/calibration/, recomputed
only when the pairs, the encoder version or the code changed. The expression judges'
calibration (accuracy on each paired task's real test images) is in that task's `real` result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from benchmarks import judges as J
from benchmarks import jitter, leaderboard, lfw, metrics, protocols
from benchmarks.cache import cache_root
from benchmarks.cache import load_npz as _load_npz
from benchmarks.cache import save_npz as _save_npz
from benchmarks.macs import COUNTER as MACS_COUNTER
from benchmarks.macs import macs_per_face
from benchmarks.tasks import TASKS, Task
from facegen import checkpoint, deviations, registry
from facegen import faces as F
from facegen.data import degrade
from facegen.data.records import load_image
from facegen.data.root import DataRootError, data_root
from facegen.inference import load_runner

REPO = Path(__file__).resolve().parent.parent
LATENCY_FACES = 16  # faces timed one by one (batch 1) for the latency column
DISTRACTORS = 1000  # LFW faces added to every identity gallery and impostor set
EIGENFACES = 10  # paper 001's k
CALIBRATION = "calibration"  # the pseudo-task of judge calibrations
CALIBRATION_ENCODERS = ("sface", "dlib")
SCHEMA = 4  # 4: given inputs, deviations, task protocol and TAR operating points recorded (3: FID/KID fallback alexnet224)


def _bar(**kw: Any) -> tqdm:
    """A progress bar on stderr that does not flood logs: a refresh every 5 s on a terminal,
    every 60 s when stderr is a file."""
    return tqdm(file=sys.stderr, mininterval=5 if sys.stderr.isatty() else 60, leave=False, **kw)


class BenchmarkError(RuntimeError):
    """One entry (task, model) could not be scored; the message says why."""


# ---------------------------------------------------------------------------------------------
# Test sets
# ---------------------------------------------------------------------------------------------


@dataclass
class TestSet:
    task: Task
    inputs: list[np.ndarray]  # uint8 RGB at task.in_size
    targets: list[np.ndarray]  # uint8 RGB at task.out_size: the ground truth
    subjects: list[str]  # identity of each target
    labels: list[str | None]  # target expression (None for SR)
    names: list[str]  # stable item names (dataset:path)
    dataset: str
    split: str
    item_datasets: list[str] = field(default_factory=list)  # source set of each item
    neutral_keys: list[str] | None = None  # paired tasks: the record key of each item's neutral face
    guides: list[np.ndarray] | None = None  # smile: the neutral face at the output size (the SGE guide)
    info: dict[str, Any] = field(default_factory=dict)  # counts and skipped items, recorded in results
    fingerprint: str = ""
    targets_fingerprint: str = ""  # the ground truth alone (shared by tasks with the same targets)

    def __post_init__(self) -> None:
        h = hashlib.sha256()
        h.update(f"{self.task.id}|{self.task.in_size}|{self.task.out_size}|{self.task.degradation}".encode())
        for name, x, y in zip(self.names, self.inputs, self.targets):
            h.update(name.encode())
            h.update(hashlib.sha256(x.tobytes()).digest())
            h.update(hashlib.sha256(y.tobytes()).digest())
        self.fingerprint = h.hexdigest()[:16]
        t = hashlib.sha256()
        for name, y in zip(self.names, self.targets):
            t.update(name.encode())
            t.update(hashlib.sha256(y.tobytes()).digest())
        self.targets_fingerprint = t.hexdigest()[:16]
        if not self.item_datasets:
            self.item_datasets = [self.dataset] * len(self.names)


def _sr_testset(task: Task, root: Path, limit: int | None) -> TestSet:
    from facegen.data.sets import read_celeba_fsrnet

    records = read_celeba_fsrnet(root)[:limit]
    targets = [load_image(r, root) for r in _bar(iterable=records, desc=f"{task.id}: reading")]
    bad = [r.key for r, t in zip(records, targets) if t.shape != (task.out_size, task.out_size, 3)]
    if bad:
        raise BenchmarkError(f"{task.id}: {len(bad)} test faces are not {task.out_size}x{task.out_size} (e.g. {bad[0]})")
    inputs = [degrade.bicubic_down(t, task.scale) for t in targets]
    names = [r.key for r in records]
    # The FSRNet faces carry no identity labels: each face is its own identity.
    return TestSet(task, inputs, targets, subjects=names, labels=[None] * len(names), names=names,
                   dataset=task.dataset, split=task.split, info={"n_records": len(records)})


def _sr_jitter_testset(task: Task, root: Path, limit: int | None) -> TestSet:
    """The standard SR faces, each ground truth moved by its seeded similarity transform
    (benchmarks.jitter) before the input is made from it by the task's down-sampling."""
    base = _sr_testset(task, root, limit)
    moved = [jitter.apply(t, jitter.draw(i)) for i, t in enumerate(base.targets)]
    targets = [t for t, _ in moved]
    valid = np.array([m.mean() for _, m in moved])
    info = {**base.info, "jitter": jitter.DESCRIPTION,
            "valid_fraction": {"mean": round(float(valid.mean()), 4), "min": round(float(valid.min()), 4)}}
    return TestSet(task, [degrade.bicubic_down(t, task.scale) for t in targets], targets, subjects=base.subjects,
                   labels=base.labels, names=base.names, dataset=task.dataset, split=task.split, info=info)


def _paired_testset(task: Task, root: Path, limit: int | None) -> TestSet:
    """Neutral -> target pairs of the held-out subjects (``task_pairs(task).test``: JAFFE then RaFD),
    both faces aligned with the task's template at the output size (aligned-crop cache); the input
    is the neutral crop, PIL-bicubic down-sampled when the task's input is smaller."""
    from facegen.data import aligned_crops
    from facegen.data.splits import task_pairs

    pairs = task_pairs(task.id, root).test[:limit]
    if not pairs:
        raise BenchmarkError(f"{task.id}: no test pairs under {root}")
    records = list({r.key: r for p in pairs for r in (p.neutral, p.target)}.values())
    crops = aligned_crops(records, task.out_size, task.template, progress=sys.stderr.isatty())
    row = {k: i for i, k in enumerate(crops.keys)}
    kept = [p for p in pairs if p.neutral.key in row and p.target.key in row]
    if not kept:
        raise BenchmarkError(f"{task.id}: no face found in any test pair")
    neutral = [np.asarray(crops.images[row[p.neutral.key]]) for p in kept]
    targets = [np.asarray(crops.images[row[p.target.key]]) for p in kept]
    inputs = neutral if task.scale == 1 else [degrade.bicubic_down(x, task.scale) for x in neutral]
    per_set: dict[str, int] = {}
    for p in kept:
        per_set[p.neutral.dataset] = per_set.get(p.neutral.dataset, 0) + 1
    per_label: dict[str, int] = {}
    for p in kept:
        per_label[p.expression] = per_label.get(p.expression, 0) + 1
    info = {
        "n_pairs": len(pairs),
        "pairs_per_dataset": per_set,
        "pairs_per_expression": per_label,
        "test_subjects": sorted({f"{p.neutral.dataset}:{p.subject}" for p in kept}),
        "unique_neutral_images": len({p.neutral.key for p in kept}),
        "pairs_without_face": [f"{p.neutral.key}->{p.target.key}" for p in pairs if p not in kept],
        "alignment": f"facegen.faces.align template '{task.template}' at {task.out_size} px (largest YuNet face)",
    }
    return TestSet(
        task, inputs, targets,
        subjects=[f"{p.neutral.dataset}:{p.subject}" for p in kept],
        labels=[p.expression for p in kept],
        names=[f"{p.neutral.key}->{p.target.key}" for p in kept],
        dataset=task.dataset, split=task.split,
        item_datasets=[p.neutral.dataset for p in kept],
        neutral_keys=[p.neutral.key for p in kept],
        guides=neutral if task.scale > 1 else None,
        info=info,
    )


TESTSETS: dict[str, Callable[[Task, Path, int | None], TestSet]] = {
    "sr-x8": _sr_testset,
    "sr-x4": _sr_testset,
    "sr-x2": _sr_testset,
    "sr-x8-jitter": _sr_jitter_testset,
    "sr-x4-jitter": _sr_jitter_testset,
    "sr-x2-jitter": _sr_jitter_testset,
    "smile": _paired_testset,
    "expression": _paired_testset,
}


# ---------------------------------------------------------------------------------------------
# Caching
# ---------------------------------------------------------------------------------------------


# cache_root, _save_npz and _load_npz: benchmarks.cache.


# ---------------------------------------------------------------------------------------------
# Rows: reference rows and models
# ---------------------------------------------------------------------------------------------


@dataclass
class RowOutput:
    model: str
    kind: str  # "reference" | "baseline" | "model"
    paper: str | None
    outputs: list[np.ndarray]
    params: int | None
    latency_ms: float | None
    key: str  # cache key of the outputs (what produced them)
    checkpoint: dict[str, str] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # recorded in the result (conditions given)
    given: tuple[str, ...] = ()  # test-time inputs consumed besides the input face (registry.GIVEN keys)
    macs: int | None = None  # multiply-accumulates for one face (benchmarks.macs), None when not countable


def _identity_row(ts: TestSet) -> list[np.ndarray]:
    s = ts.task.out_size // ts.task.in_size
    return [x if s == 1 else degrade.bicubic_up(x, s) for x in ts.inputs]


def _checkpoint_hashes(spec: registry.ModelSpec, task: str) -> dict[str, str]:
    folder = spec.checkpoint_dir(task)
    if folder is None:
        return {}
    manifest = checkpoint.read_manifest(folder)
    return {"folder": f"checkpoints/{folder.name}", **manifest.get("sha256", {})}


def target_landmarks(ts: TestSet) -> np.ndarray:
    """(n, 68, 2) float32 landmarks of each ground-truth target in crop pixels (NaN where none is
    found): what `lmk-guided` is given at test time. Cached per test set."""
    from facegen.landmarks import LandmarkError, crop_landmarks

    path = cache_root() / ts.task.id / f"landmarks-{ts.fingerprint}.npz"
    cached = _load_npz(path)
    if cached is not None and len(cached["lm"]) == len(ts.targets):
        return cached["lm"]
    lm = np.full((len(ts.targets), 68, 2), np.nan, np.float32)
    for i, t in enumerate(_bar(iterable=ts.targets, desc=f"{ts.task.id}: target landmarks")):
        try:
            lm[i] = crop_landmarks(t)
        except LandmarkError:
            pass
    _save_npz(path, lm=lm)
    return lm


def item_conditions(ts: TestSet, given: set[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """Per-item conditions for a model that consumes the ``given`` inputs (its registry ``given``):
    exactly these are passed, so the result records exactly what the model saw.

    ``expression``: the target label (paired tasks); ``guide``: the neutral face at the output
    size (smile: the SGE guide, uint8 HWC); ``landmarks``: the ground-truth target's 68 points
    ((68, 2) float32; items whose target has none get no landmarks, and the model fits its own).
    Arrays are stacked into tensors per batch by :func:`batch_conditions`.
    """
    def want(k: str) -> bool:
        return k in given

    conds: list[dict[str, Any]] = [{} for _ in ts.inputs]
    if want("expression"):
        for c, label in zip(conds, ts.labels):
            if label is not None:
                c["expression"] = label
    if ts.guides is not None and want("guide"):
        for c, g in zip(conds, ts.guides):
            c["guide"] = g
    if ts.task.id == "expression" and want("landmarks"):
        for c, lm in zip(conds, target_landmarks(ts)):
            if np.isfinite(lm).all():
                c["landmarks"] = lm
    return conds


def _group_key(cond: dict[str, Any]) -> tuple:
    scalars = tuple(sorted((k, v) for k, v in cond.items() if not isinstance(v, np.ndarray)))
    arrays = tuple(sorted(k for k, v in cond.items() if isinstance(v, np.ndarray)))
    return scalars, arrays


def batch_conditions(conds: list[dict[str, Any]], device: str) -> dict[str, Any]:
    """One batch's keyword arguments: scalars as they are (equal within a batch), arrays stacked
    into tensors (uint8 HWC images -> float NCHW in [0, 1]; other arrays -> float32)."""
    out: dict[str, Any] = {}
    for k, v in conds[0].items():
        if not isinstance(v, np.ndarray):
            out[k] = v
            continue
        arr = np.stack([c[k] for c in conds])
        if arr.dtype == np.uint8 and arr.ndim == 4:
            out[k] = torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).float().div(255.0)
        else:
            out[k] = torch.from_numpy(arr.astype(np.float32)).to(device)
    return out


def run_model(spec: registry.ModelSpec, ts: TestSet, device: str, batch_size: int) -> RowOutput:
    """The model's outputs on the test set (from the cache when the same model already ran); a
    task with a ``base`` runs the model as registered for its base task."""
    served = ts.task.base or ts.task.id
    ckpt = _checkpoint_hashes(spec, served)
    runner = load_runner(spec.id, served, device=device)
    tag = "conditions-v2:" + ",".join(sorted(spec.given))
    key = hashlib.sha256(json.dumps([spec.id, ts.fingerprint, ckpt, repr(spec.configs.get(served)), tag]).encode()).hexdigest()[:16]
    path = cache_root() / ts.task.id / f"{spec.id}-{key}.npz"
    cached = _load_npz(path)
    conds = item_conditions(ts, spec.given)
    if cached is not None and len(cached["outputs"]) == len(ts.inputs):
        outputs = list(cached["outputs"])
        latency = float(cached["latency_ms"])
    else:
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(conds):
            groups.setdefault(_group_key(c), []).append(i)
        result: list[np.ndarray | None] = [None] * len(ts.inputs)
        bar = _bar(total=len(ts.inputs), desc=f"{ts.task.id}: {spec.id}")
        for idx in groups.values():
            for j in range(0, len(idx), batch_size):
                chunk = idx[j:j + batch_size]
                kw = batch_conditions([conds[i] for i in chunk], device)
                outs = runner([ts.inputs[i] for i in chunk], batch_size=len(chunk), **kw)
                for i, o in zip(chunk, outs):
                    result[i] = o
                bar.update(len(chunk))
        bar.close()
        outputs = [o for o in result if o is not None]
        latency = _latency_ms(runner, ts, conds, device)
        _save_npz(path, outputs=np.stack(outputs), latency_ms=np.float64(latency))
    bad = [o.shape for o in outputs if o.shape != (ts.task.out_size, ts.task.out_size, 3)]
    if bad:
        raise BenchmarkError(f"{spec.id} produced {bad[0]} images for {ts.task.id}, expected {ts.task.out_size}^2 RGB")
    kind = "baseline" if spec.family == "baseline" else "model"
    row = RowOutput(spec.id, kind, spec.paper, outputs, runner.parameters, latency, key, ckpt,
                    macs=macs_per_face(runner, ts.inputs[0], batch_conditions([conds[0]], device)))
    row.given = tuple(spec.given)
    row.notes = {"conditions": sorted({k for c in conds for k in c}),
                 "items_without_target_landmarks": int(sum("landmarks" not in c for c in conds))
                 if "landmarks" in spec.given else None}
    return row


def _latency_ms(runner, ts: TestSet, conds: list[dict[str, Any]], device: str) -> float:
    """Median wall time of one face (batch 1) over the first LATENCY_FACES faces, after a warm-up."""
    n = min(LATENCY_FACES, len(ts.inputs))
    runner([ts.inputs[0]], batch_size=1, **batch_conditions([conds[0]], device))
    times = []
    for i in range(n):
        kw = batch_conditions([conds[i]], device)
        t0 = time.perf_counter()
        runner([ts.inputs[i]], batch_size=1, **kw)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def reference_rows(ts: TestSet) -> list[RowOutput]:
    return [
        RowOutput("identity", "reference", None, _identity_row(ts), 0, None, "identity"),
        RowOutput("real", "reference", None, list(ts.targets), None, None, "real"),
    ]


# ---------------------------------------------------------------------------------------------
# Judges and metrics
# ---------------------------------------------------------------------------------------------


class Judges:
    """Judge networks and per-test-set caches of what they computed on the ground truth."""

    def __init__(self, ts: TestSet, root: Path, device: str) -> None:
        self.ts = ts
        self.root = root
        self.device = device
        self._fid_backbone: metrics.FeatureBackbone | None = None
        self._encoder = None
        self._target_faces: list[F.Face | None] | None = None
        self._cache = cache_root() / ts.task.id
        self._expr: dict[str, J.ExpressionJudge] = {}

    def _path(self, kind: str, row_key: str) -> Path:
        """Cache file of one judge's output on one row; the ground truth's (`real`) is keyed by
        the targets alone, so sr-x2/x4/x8 (same 1,000 faces) compute it once."""
        if row_key == "real":
            return cache_root() / "real" / f"{kind}-{self.ts.targets_fingerprint}.npz"
        return self._cache / f"{kind}-{self.ts.fingerprint}-{row_key}.npz"

    # Expression judges -----------------------------------------------------------------------
    @property
    def expression_judges(self) -> dict[str, J.ExpressionJudge]:
        if not self._expr:
            self._expr = {name: J.expression_judge(name) for name in ("fer2013", "domain")}
        return self._expr

    def expressions(self, row_key: str, images: list[np.ndarray]) -> dict[str, Any]:
        """Both judges' probabilities on the row's outputs and whether a face was found in each."""
        versions = json.dumps({n: j.version for n, j in self.expression_judges.items()})
        vkey = hashlib.sha256(versions.encode()).hexdigest()[:12]
        path = self._path(f"expr-{vkey}", row_key)
        cached = _load_npz(path)
        if cached is None or len(cached["found"]) != len(images):
            crops, found = J.face_box_crops(images)
            probs = {n: j.predict_crops(crops)[1] for n, j in self.expression_judges.items()}
            _save_npz(path, found=found, **{f"p_{n}": p for n, p in probs.items()})
            cached = _load_npz(path)
            assert cached is not None
        out: dict[str, Any] = {"found": cached["found"].astype(bool)}
        for n, j in self.expression_judges.items():
            out[n] = [j.classes[i] for i in cached[f"p_{n}"].argmax(1)]
        return out

    # FID/KID features ------------------------------------------------------------------------
    @property
    def fid_backbone(self) -> metrics.FeatureBackbone:
        if self._fid_backbone is None:
            self._fid_backbone = metrics.fid_backbone(self.device)
        return self._fid_backbone

    def features(self, row_key: str, images: list[np.ndarray]) -> np.ndarray:
        path = self._path(feature_cache_kind(self.fid_backbone), row_key)
        cached = _load_npz(path)
        if cached is not None and len(cached["f"]) == len(images):
            return cached["f"]
        f = metrics.extract_features(images, self.fid_backbone)
        _save_npz(path, f=f)
        return f

    # LPIPS -----------------------------------------------------------------------------------
    def lpips(self, row_key: str, images: list[np.ndarray]) -> np.ndarray:
        """LPIPS (AlexNet) of each output to its ground truth, cached by the outputs' content (rows
        with identical outputs, such as `identity` and `bicubic` on the SR tasks, are scored once)."""
        path = self._path("lpips-alex-v0.1", row_key)
        cached = _load_npz(path)
        if cached is not None and len(cached["d"]) == len(images):
            return cached["d"]
        d = np.asarray(metrics.lpips_distances(images, self.ts.targets), np.float64)
        _save_npz(path, d=d)
        return d

    # Identity --------------------------------------------------------------------------------
    @property
    def encoder(self):
        if self._encoder is None:
            from benchmarks.judges import identity_encoder

            self._encoder = identity_encoder("sface")
        return self._encoder

    def target_faces(self) -> list[F.Face | None]:
        """Faces detected on the ground truth; outputs are pixel-aligned with it, so the same
        landmarks crop both (a poor output cannot dodge the identity check by hiding its face).
        Cached by the targets' fingerprint."""
        if self._target_faces is None:
            path = cache_root() / "real" / f"faces-{self.ts.targets_fingerprint}.npz"
            cached = _load_npz(path)
            if cached is None or len(cached["found"]) != len(self.ts.targets):
                rows = np.full((len(self.ts.targets), 15), np.nan)
                for i, t in enumerate(_bar(iterable=self.ts.targets, desc=f"{self.ts.task.id}: detecting")):
                    fs = F.detect(t)
                    if fs:
                        rows[i] = [*fs[0].box, fs[0].score, *np.asarray(fs[0].points).ravel()]
                _save_npz(path, found=~np.isnan(rows[:, 0]), rows=rows)
                cached = {"found": ~np.isnan(rows[:, 0]), "rows": rows}
            self._target_faces = [
                F.Face(box=tuple(float(v) for v in r[:4]), score=float(r[4]), points=r[5:].reshape(5, 2).astype(np.float32))
                if ok else None
                for ok, r in zip(cached["found"], cached["rows"])
            ]
        return self._target_faces

    def embeddings(self, row_key: str, images: list[np.ndarray]) -> np.ndarray:
        path = self._path(f"emb-{self.encoder.name}", row_key)
        cached = _load_npz(path)
        if cached is not None and len(cached["e"]) == len(images):
            return cached["e"]
        faces = self.target_faces()
        e = np.full((len(images), self.encoder.dim), np.nan, np.float32)
        ok = [i for i, f in enumerate(faces) if f is not None]
        if ok:
            crops = np.stack([self.encoder.crop(images[i], faces[i]) for i in ok])
            e[ok] = self.encoder.embed(crops)
        _save_npz(path, e=e)
        return e

    def distractors(self) -> np.ndarray:
        """SFace embeddings of DISTRACTORS LFW faces (deterministic choice, centred face)."""
        from facegen.data.sets import read_lfw

        path = cache_root() / f"lfw-distractors-{self.encoder.name}-{DISTRACTORS}.npz"
        cached = _load_npz(path)
        if cached is not None:
            return cached["e"]
        records = read_lfw(self.root)
        rng = np.random.default_rng(0)
        pick = rng.choice(len(records), size=min(DISTRACTORS, len(records)), replace=False)
        embs = []
        for i in _bar(iterable=sorted(pick), desc="LFW distractors"):
            img = load_image(records[i], self.root)
            fs = F.detect(img)
            if not fs:
                continue
            centre = np.array(img.shape[1::-1]) / 2
            face = min(fs, key=lambda f: np.hypot(f.box[0] + f.box[2] / 2 - centre[0], f.box[1] + f.box[3] / 2 - centre[1]))
            embs.append(self.encoder.embed(self.encoder.crop(img, face)[None])[0])
        e = np.stack(embs)
        _save_npz(path, e=e)
        return e


def feature_cache_kind(backbone: metrics.FeatureBackbone) -> str:
    """Cache file prefix of one FID/KID backbone's features: its name and a hash of its definition,
    so features computed another way (another network, layer, or input size) are never reused."""
    digest = hashlib.sha256(f"{backbone.name}|{backbone.dim}|{backbone.size}|{backbone.definition}".encode()).hexdigest()[:12]
    return f"feat-{backbone.name}-{digest}"


def identity_metrics(ts: TestSet, judges: Judges, emb_out: np.ndarray, emb_real: np.ndarray) -> dict[str, float]:
    """Cosine to the real image, TAR at FAR 1% / 0.1% and Rank-1 (distractors in gallery and impostors)."""
    ok = ~np.isnan(emb_out).any(1) & ~np.isnan(emb_real).any(1)
    out, real = emb_out[ok], emb_real[ok]
    subj = np.asarray(ts.subjects)[ok]
    dis = judges.distractors()
    genuine = metrics.cosine_similarities(out, real)
    sims = out @ real.T  # unit vectors: cosine
    impostor_mask = subj[:, None] != subj[None, :]
    impostors = np.concatenate([sims[impostor_mask], (out @ dis.T).ravel()])
    scores = np.concatenate([genuine, impostors])
    labels = np.concatenate([np.ones(len(genuine), int), np.zeros(len(impostors), int)])
    gallery = np.concatenate([real, dis])
    gallery_ids = list(subj) + [f"distractor{i}" for i in range(len(dis))]
    points = {key: metrics.far_operating_point(scores, labels, far) for key, far in TAR_COLUMNS.items()}
    return {
        "id_cosine": float(genuine.mean()),
        **{key: 100 * p["tar"] for key, p in points.items()},
        "_thresholds": {key: threshold_record(p) for key, p in points.items()},
        "rank1": 100 * metrics.rank1(out, list(subj), gallery, gallery_ids),
        "id_faces": int(ok.sum()),
    }


TAR_COLUMNS = {"tar_far1": 0.01, "tar_far01": 0.001}  # column -> nominal FAR
THRESHOLD_SOURCE = ("this row's own impostor pairs on this task (output vs the ground truth of every other subject, "
                    "and vs the LFW distractors): accept cosine > the (floor(FAR x impostors) + 1)-th highest impostor "
                    "score; not SFace's LFW-calibrated threshold, which admits more impostors on other photo collections")


def threshold_record(point: dict[str, float | int]) -> dict[str, Any]:
    """One TAR's operating point as recorded in the result: threshold, its source and the FAR it has."""
    t = point["threshold"]
    return {"threshold": None if t == -np.inf else round(float(t), 6), "source": "task impostors",
            "far_target": point["far_target"], "far_measured": point["far_measured"],
            "n_genuine": point["n_genuine"], "n_impostor": point["n_impostor"]}


def content_key(images: list[np.ndarray]) -> str:
    """sha256 (16 hex) of a list of images' shapes and bytes."""
    h = hashlib.sha256()
    for im in images:
        h.update(repr(im.shape).encode())
        h.update(np.ascontiguousarray(im).tobytes())
    return h.hexdigest()[:16]


def score_row(ts: TestSet, row: RowOutput, judges: Judges) -> dict[str, Any]:
    """Every metric of the task for one row's outputs."""
    task, outs, gts = ts.task, row.outputs, ts.targets
    keys = {m.key for m in task.metrics}
    # Judge caches are keyed by the outputs' content: rows with identical outputs (the `identity`
    # row and the `bicubic` baseline of the SR tasks) are judged once.
    ck = "real" if row.model == "real" else "out" + content_key(outs)
    m: dict[str, Any] = {}
    m["psnr_y"] = float(np.mean([metrics.psnr(o, t, test_y_channel=True) for o, t in zip(outs, gts)])) if row.model != "real" else None
    m["ssim_y"] = float(np.mean([metrics.ssim(o, t, test_y_channel=True) for o, t in zip(outs, gts)]))
    m["psnr_rgb"] = float(np.mean([metrics.psnr(o, t) for o, t in zip(outs, gts)])) if row.model != "real" else None
    m["ssim_rgb"] = float(np.mean([metrics.ssim(o, t) for o, t in zip(outs, gts)]))
    m["lpips_alex"] = float(np.mean(judges.lpips(ck, outs)))
    backbone = judges.fid_backbone.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the result records n; the leaderboard shows it
        dist = metrics.fid_kid_from_features(judges.features("real", gts), judges.features(ck, outs), backbone,
                                             kid_subset_size=min(1000, len(outs)))
    m.update(dist.columns())
    # From features: FID by the sqrtm-free path (benchmarks.metrics.fid_from_features), KID over 100 subsets.
    details: dict[str, Any] = {"timings": {"fid_seconds": round(dist.fid_seconds, 4), "kid_seconds": round(dist.kid_seconds, 4)}}
    if {"id_cosine", "tar_far1"} & keys:
        ident = identity_metrics(ts, judges, judges.embeddings(ck, outs), judges.embeddings("real", gts))
        details["identity_thresholds"] = {k: v for k, v in ident.pop("_thresholds").items() if k in keys}
        m.update(ident)
    if {"expr_acc_fer", "expr_acc_domain"} & keys:
        pred = judges.expressions(ck, outs)
        labels = [str(x) for x in ts.labels]
        m["expr_acc_fer"] = 100 * float(np.mean([p == t for p, t in zip(pred["fer2013"], labels)]))
        m["expr_acc_domain"] = 100 * float(np.mean([p == t for p, t in zip(pred["domain"], labels)]))
        m["expr_faces"] = int(pred["found"].sum())
        details["expression"] = {
            name: {**J.classification_report(pred[name], labels, ts.item_datasets, list(j.classes)),
                   "version": j.version}
            for name, j in judges.expression_judges.items()
        }
        details["expression"]["no_face_found"] = {
            "count": int((~pred["found"]).sum()),
            "items": [n for n, f in zip(ts.names, pred["found"]) if not f],
            "rule": "the whole image is judged when YuNet finds no face",
        }
    if "eigenface_acc" in keys:
        m["eigenface_acc"] = eigenface_metric(ts, outs)
    m["params"] = row.params
    m["latency_ms"] = row.latency_ms
    m["macs_per_face"] = row.macs
    return {"metrics": {k: v for k, v in m.items() if k in keys or k in ("id_faces", "expr_faces")}, **details}


def eigenface_gallery(ts: TestSet) -> tuple[list[np.ndarray], list[str]]:
    """Paper 001's eigenface training set: every distinct real neutral face (the inputs) of the
    test subjects, at the output size, labelled by subject."""
    if ts.neutral_keys is None:
        raise BenchmarkError(f"{ts.task.id}: eigenface accuracy needs paired test items")
    seen: dict[str, int] = {}
    for i, k in enumerate(ts.neutral_keys):
        seen.setdefault(k, i)
    s = ts.task.scale
    images = [ts.inputs[i] if s == 1 else ts.guides[i] for i in seen.values()]  # type: ignore[index]
    return images, [ts.subjects[i] for i in seen.values()]


def eigenface_metric(ts: TestSet, outputs: list[np.ndarray]) -> float | None:
    """Eigenface (k = EIGENFACES) recognition accuracy (%) of the outputs by subject; None when
    the gallery is too small for k eigenfaces (smoke runs with --limit)."""
    images, ids = eigenface_gallery(ts)
    if len(images) <= EIGENFACES:
        return None
    return 100 * metrics.eigenface_accuracy(images, ids, outputs, ts.subjects, k=EIGENFACES)


# ---------------------------------------------------------------------------------------------
# Provenance
# ---------------------------------------------------------------------------------------------


def hardware(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    text = f"{cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"
    if hasattr(os, "getloadavg"):
        text += f", load average {os.getloadavg()[0]:.1f} at start"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def provenance(device: str) -> dict[str, Any]:
    return {
        "commit": leaderboard.git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(device),
        "device": device,
        "versions": {d: _version(d) for d in ("torch", "lpips", "clean-fid", "opencv-python-headless", "facegen")},
    }


def protocol(ts: TestSet, judges: Judges) -> dict[str, Any]:
    out = {
        "psnr_ssim": "BasicSR convention: Y of ITU-R BT.601 YCbCr (and RGB), crop_border 0, SSIM 11x11 Gaussian sigma 1.5",
        "lpips": "lpips package, AlexNet, v0.1 heads (offline weights from facegen.assets)",
        "fid_kid": (f"backbone {judges.fid_backbone.name}: {judges.fid_backbone.definition}; FID from the features' "
                    f"means and covariances (trace term by eigh + SVD, benchmarks.metrics.fid_from_features, equal to "
                    f"scipy sqrtm to 1e-6 relative); KID: cubic polynomial kernel, 100 subsets of min(1000, n)"),
        "identity": (f"{judges.encoder.name} embeddings of crops from the landmarks detected on the ground truth; "
                     f"genuine = (output, its ground truth); impostors = (output, ground truth of every other subject) "
                     f"+ (output, {DISTRACTORS} LFW distractors); Rank-1 over ground truths + distractors; "
                     f"TAR thresholds: {THRESHOLD_SOURCE} (identity_thresholds: threshold, FAR measured)"),
        "input": ts.task.degradation,
        **({"framing": f"benchmarks.jitter: {jitter.DESCRIPTION}"} if ts.task.base else {}),
        "latency": f"median wall time per face at batch 1 over {LATENCY_FACES} faces",
        "macs": f"multiply-accumulates for the first face at batch 1 (conditions included), counted by {MACS_COUNTER}",
    }
    if ts.neutral_keys is not None:
        out["test_set"] = (f"task_pairs('{ts.task.id}').test: neutral -> target pairs of the held-out subjects "
                           f"(facegen.data.splits.TEST_SUBJECTS), both aligned with template '{ts.task.template}' at "
                           f"{ts.task.out_size} px; subjects are person ids (dataset:subject)")
    if any(m.key == "expr_acc_fer" for m in ts.task.metrics):
        out["expression"] = (f"accuracy (%) of each judge's prediction against the target label; judges read "
                             f"benchmarks.judges.face_box_crop ({J.CROP_RULE}); the whole image when no face is found "
                             f"(counted in expression.no_face_found)")
    if any(m.key == "eigenface_acc" for m in ts.task.metrics):
        out["eigenface"] = (f"paper 001: k = {EIGENFACES} eigenfaces (PCA of BT.601 grey pixels) of the distinct real "
                            f"neutral faces of the test subjects (the task inputs, {ts.task.out_size} px, "
                            f"{ts.info.get('unique_neutral_images')} images), each output classified by subject with the "
                            f"minimum-distance (class-mean) classifier; accuracy (%) against its subject")
    return out


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def run_task(task_id: str, model_ids: list[str] | None, root: Path, device: str, limit: int | None,
             batch_size: int, results_dir: Path) -> list[str]:
    """Score one task; returns the error lines of entries that failed (empty when all succeeded)."""
    task = TASKS[task_id]
    if task_id not in TESTSETS:
        return [f"{task_id}: no test-set builder yet"]
    t0 = time.perf_counter()
    ts = TESTSETS[task_id](task, root, limit)
    judges = Judges(ts, root, device)
    specs = [s for s in registry.models_for(task.base or task_id) if model_ids is None or s.id in model_ids]
    for s in list(specs):
        why = registry.unavailable(s)
        if why is not None or (s.bench_faces is not None and task.base):
            specs.remove(s)
            if why is not None:
                print(f"skipping {s.id} on {task_id}: {why}", file=sys.stderr)
    # (name, make the outputs, the test set and judges that score them)
    rows: list[tuple[str, Callable[[], RowOutput], TestSet, Judges]] = []
    if model_ids is None or "identity" in model_ids or "real" in model_ids:
        for r in reference_rows(ts):
            if model_ids is None or r.model in model_ids:
                rows.append((r.model, lambda r=r: r, ts, judges))
    rows += [(s.id, lambda s=s: run_model(s, ts, device, batch_size), ts, judges) for s in specs if s.bench_faces is None]
    for s in (s for s in specs if s.bench_faces is not None):  # a slow reference: the first faces only
        few = TESTSETS[task_id](task, root, min(limit or s.bench_faces, s.bench_faces))
        rows.append((s.id, lambda s=s, few=few: run_model(s, few, device, batch_size), few, Judges(few, root, device)))
    errors = []
    prov = provenance(device)
    for name, make, rts, rj in rows:
        start = time.perf_counter()
        try:
            row = make()
            scored = score_row(rts, row, rj)
        except Exception as e:  # one failed entry must not hide the others
            errors.append(f"{task_id}/{name}: {type(e).__name__}: {e}")
            print(f"FAILED {task_id}/{name}: {e}", file=sys.stderr)
            continue
        scores = scored.pop("metrics")
        judge_versions = {"fid_kid": rj.fid_backbone.name, "fid_kid_definition": rj.fid_backbone.definition,
                          "identity": f"{rj.encoder.name}: {rj.encoder.version}"}
        if "expression" in scored:
            judge_versions.update({f"expression_{n}": j.version for n, j in rj.expression_judges.items()})
            detail = scored.pop("expression")
            if row.model == "real":
                # The judges' own accuracy on the real test images: each judge's ceiling.
                scored["calibration"] = {"what": "expression judges on the real test images (targets) of this task",
                                         **detail}
            else:
                scored["expression_detail"] = detail
        result = {
            "schema": SCHEMA,
            "task": task_id,
            "model": row.model,
            "kind": row.kind,
            "paper": row.paper,
            "n": len(rts.targets),
            "dataset": rts.dataset,
            "split": rts.split,
            "limit": limit if rts is ts else len(rts.targets),
            "test_set_fingerprint": rts.fingerprint,
            "test_set": rts.info,
            "metrics": scores,
            **scored,
            "protocol": protocol(rts, rj),
            "judges": judge_versions,
            "checkpoint": row.checkpoint,
            "notes": row.notes,
            "given": list(row.given),
            "given_label": registry.given_label(row.given),
            "privileged_inputs": registry.is_privileged(row.given),
            "deviations": [d.as_json() for d in deviations.of(row.model)],
            "task_protocol": protocols.card(task_id).as_json(),
            "seconds": round(time.perf_counter() - start, 2),
            **prov,
        }
        leaderboard.write_result(result, results_dir)
        print(f"{task_id}/{row.model}: " + ", ".join(f"{k}={v:.4g}" for k, v in scores.items() if isinstance(v, float)),
              flush=True)
    print(f"{task_id}: done in {time.perf_counter() - t0:.0f} s")
    return errors


def run_calibration(root: Path, results_dir: Path) -> list[str]:
    """LFW verification of each identity encoder into ``results_dir/calibration`` (cached; the
    stale encoders are scored together, each image read and detected once)."""
    out = results_dir / CALIBRATION
    t0 = time.perf_counter()
    try:
        results = lfw.calibrate(root, list(CALIBRATION_ENCODERS), out, threads=2, progress=True)
    except Exception as e:
        print(f"FAILED {CALIBRATION}: {e}", file=sys.stderr)
        return [f"{CALIBRATION}: {type(e).__name__}: {e}"]
    for r, fresh in results:
        print(f"{CALIBRATION}/lfw-{r['encoder']}: 10-fold accuracy {100 * r['accuracy_mean']:.2f} % "
              f"(+- {100 * r['accuracy_std']:.2f}), TAR@FAR1% {100 * r['tar_at_far_1e-2']:.2f} %, "
              f"TAR@FAR0.1% {100 * r['tar_at_far_1e-3']:.2f} %, {r['n_pairs']} pairs "
              + (f"(crops and embeddings {r['seconds']:.0f} s, reading and detection {r['read_detect_seconds']:.0f} s "
                 "shared)" if fresh else "(up to date, not recomputed)"))
    print(f"{CALIBRATION}: done in {time.perf_counter() - t0:.0f} s")
    return []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", nargs="*", action="extend", choices=sorted(TASKS) + [CALIBRATION],
                   help=f"tasks to run (default: all, and '{CALIBRATION}')")
    p.add_argument("--calibrate", action="store_true", help=f"also run '{CALIBRATION}' (LFW verification of the identity encoders)")
    p.add_argument("--model", nargs="*", action="extend", help="model ids (and/or 'identity', 'real') to run (default: all)")
    p.add_argument("--data-root", help="face data root (default: $FACEGEN_DATA)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--limit", type=int, help="use only the first N test items (smoke runs; recorded in results)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--results", type=Path, default=leaderboard.RESULTS_DIR, help="results folder")
    args = p.parse_args(argv)
    try:
        root = data_root(args.data_root, require=())  # each task checks the sets it reads
    except DataRootError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.model:
        known = set(registry.REGISTRY) | set(leaderboard.REFERENCE_ROWS)
        unknown = sorted(set(args.model) - known)
        if unknown:
            print(f"error: unknown model(s) {unknown}; known: {sorted(known)}", file=sys.stderr)
            return 2
    errors = []
    # The default run includes the calibration; choosing tasks or models leaves it to --calibrate.
    tasks = list(args.task) if args.task else list(TASKS) + ([] if args.model else [CALIBRATION])
    if args.calibrate and CALIBRATION not in tasks:
        tasks.append(CALIBRATION)
    for task_id in tasks:
        if task_id == CALIBRATION:
            errors += run_calibration(root, args.results)
            continue
        try:
            errors += run_task(task_id, args.model, root, args.device, args.limit, args.batch_size, args.results)
        except Exception as e:
            errors.append(f"{task_id}: {type(e).__name__}: {e}")
            print(f"FAILED {task_id}: {e}", file=sys.stderr)
    leaderboard.write_leaderboard(args.results)
    # The model cards' benchmark sections are a separate, explicit step (`python -m benchmarks.cards`),
    # so a run never edits tracked files besides its results and the next run is not marked dirty by it.
    print("model cards: run `python -m benchmarks.cards` to write these results into checkpoints/*/README.md")
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
