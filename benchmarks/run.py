"""`python -m benchmarks.run`: score every registered model on every task and refresh the leaderboard.

For each task (benchmarks.tasks) it builds the test set from the data root, runs the reference
rows (`identity`: the input returned unchanged, up-sampled bicubically; `real`: the ground
truth) and every registered model serving the task, computes the task's metrics, and writes one
JSON per (task, model) under benchmarks/results/<task>/ atomically, then regenerates
leaderboard.csv and leaderboard.md from all result files.

Model outputs and judge features are cached (FACEGEN_CACHE/bench), keyed by the test set, the
checkpoint hashes and the row, so adding a model does not recompute the others and a killed run
resumes where it stopped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import platform
import subprocess
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

from benchmarks import leaderboard, metrics
from benchmarks.tasks import TASKS, Task
from facegen import assets, checkpoint, registry
from facegen import faces as F
from facegen.data import degrade
from facegen.data.records import load_image
from facegen.data.root import DataRootError, data_root
from facegen.inference import load_runner

REPO = Path(__file__).resolve().parent.parent
LATENCY_FACES = 16  # faces timed one by one (batch 1) for the latency column
DISTRACTORS = 1000  # LFW faces added to every identity gallery and impostor set
SCHEMA = 1


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
    fingerprint: str = ""

    def __post_init__(self) -> None:
        h = hashlib.sha256()
        h.update(f"{self.task.id}|{self.task.in_size}|{self.task.out_size}|{self.task.degradation}".encode())
        for name, x, y in zip(self.names, self.inputs, self.targets):
            h.update(name.encode())
            h.update(hashlib.sha256(x.tobytes()).digest())
            h.update(hashlib.sha256(y.tobytes()).digest())
        self.fingerprint = h.hexdigest()[:16]


def _sr_testset(task: Task, root: Path, limit: int | None) -> TestSet:
    from facegen.data.sets import read_celeba_fsrnet

    records = read_celeba_fsrnet(root)[:limit]
    targets = [load_image(r, root) for r in tqdm(records, desc=f"{task.id}: reading", leave=False)]
    bad = [r.key for r, t in zip(records, targets) if t.shape != (task.out_size, task.out_size, 3)]
    if bad:
        raise BenchmarkError(f"{task.id}: {len(bad)} test faces are not {task.out_size}x{task.out_size} (e.g. {bad[0]})")
    inputs = [degrade.bicubic_down(t, task.scale) for t in targets]
    names = [r.key for r in records]
    # The FSRNet faces carry no identity labels: each face is its own identity.
    return TestSet(task, inputs, targets, subjects=names, labels=[None] * len(names), names=names,
                   dataset=task.dataset, split=task.split)


TESTSETS: dict[str, Callable[[Task, Path, int | None], TestSet]] = {
    "sr-x8": _sr_testset,
    "sr-x4": _sr_testset,
    "sr-x2": _sr_testset,
}


# ---------------------------------------------------------------------------------------------
# Caching
# ---------------------------------------------------------------------------------------------


def cache_root() -> Path:
    root = assets.cache_dir() / "bench"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    checkpoint.atomic_write_bytes(path, buf.getvalue())


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None  # absent or damaged (a killed write never lands: writes are atomic)


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


def _identity_row(ts: TestSet) -> list[np.ndarray]:
    s = ts.task.out_size // ts.task.in_size
    return [x if s == 1 else degrade.bicubic_up(x, s) for x in ts.inputs]


def _checkpoint_hashes(spec: registry.ModelSpec, task: str) -> dict[str, str]:
    folder = spec.checkpoint_dir(task)
    if folder is None:
        return {}
    manifest = checkpoint.read_manifest(folder)
    return {"folder": f"checkpoints/{folder.name}", **manifest.get("sha256", {})}


def _conditions(ts: TestSet, i: int) -> dict[str, Any]:
    return {} if ts.labels[i] is None else {"expression": ts.labels[i]}


def run_model(spec: registry.ModelSpec, ts: TestSet, device: str, batch_size: int) -> RowOutput:
    """The model's outputs on the test set (from the cache when the same model already ran)."""
    ckpt = _checkpoint_hashes(spec, ts.task.id)
    key = hashlib.sha256(json.dumps([spec.id, ts.fingerprint, ckpt, repr(spec.configs.get(ts.task.id))]).encode()).hexdigest()[:16]
    path = cache_root() / ts.task.id / f"{spec.id}-{key}.npz"
    runner = load_runner(spec.id, ts.task.id, device=device)
    cached = _load_npz(path)
    if cached is not None and len(cached["outputs"]) == len(ts.inputs):
        outputs = list(cached["outputs"])
        latency = float(cached["latency_ms"])
    else:
        outputs = []
        groups: dict[tuple, list[int]] = {}
        for i in range(len(ts.inputs)):
            groups.setdefault(tuple(sorted(_conditions(ts, i).items())), []).append(i)
        result: list[np.ndarray | None] = [None] * len(ts.inputs)
        bar = tqdm(total=len(ts.inputs), desc=f"{ts.task.id}: {spec.id}", leave=False)
        for cond, idx in groups.items():
            for j in range(0, len(idx), batch_size):
                chunk = idx[j:j + batch_size]
                outs = runner([ts.inputs[i] for i in chunk], batch_size=batch_size, **dict(cond))
                for i, o in zip(chunk, outs):
                    result[i] = o
                bar.update(len(chunk))
        bar.close()
        outputs = [o for o in result if o is not None]
        latency = _latency_ms(runner, ts)
        _save_npz(path, outputs=np.stack(outputs), latency_ms=np.float64(latency))
    bad = [o.shape for o in outputs if o.shape != (ts.task.out_size, ts.task.out_size, 3)]
    if bad:
        raise BenchmarkError(f"{spec.id} produced {bad[0]} images for {ts.task.id}, expected {ts.task.out_size}^2 RGB")
    kind = "baseline" if spec.family == "baseline" else "model"
    return RowOutput(spec.id, kind, spec.paper, outputs, runner.parameters, latency, key, ckpt)


def _latency_ms(runner, ts: TestSet) -> float:
    """Median wall time of one face (batch 1) over the first LATENCY_FACES faces, after a warm-up."""
    n = min(LATENCY_FACES, len(ts.inputs))
    runner([ts.inputs[0]], batch_size=1, **_conditions(ts, 0))
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        runner([ts.inputs[i]], batch_size=1, **_conditions(ts, i))
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

    # FID/KID features ------------------------------------------------------------------------
    @property
    def fid_backbone(self) -> metrics.FeatureBackbone:
        if self._fid_backbone is None:
            self._fid_backbone = metrics.fid_backbone(self.device)
        return self._fid_backbone

    def features(self, row_key: str, images: list[np.ndarray]) -> np.ndarray:
        name = self.fid_backbone.name
        path = self._cache / f"feat-{name}-{self.ts.fingerprint}-{row_key}.npz"
        cached = _load_npz(path)
        if cached is not None and len(cached["f"]) == len(images):
            return cached["f"]
        f = metrics.extract_features(images, self.fid_backbone)
        _save_npz(path, f=f)
        return f

    # Identity --------------------------------------------------------------------------------
    @property
    def encoder(self):
        if self._encoder is None:
            from benchmarks.judges import identity_encoder

            self._encoder = identity_encoder("sface")
        return self._encoder

    def target_faces(self) -> list[F.Face | None]:
        """Faces detected on the ground truth; outputs are pixel-aligned with it, so the same
        landmarks crop both (a poor output cannot dodge the identity check by hiding its face)."""
        if self._target_faces is None:
            found = []
            for t in self.ts.targets:
                fs = F.detect(t)
                found.append(fs[0] if fs else None)
            self._target_faces = found
        return self._target_faces

    def embeddings(self, row_key: str, images: list[np.ndarray]) -> np.ndarray:
        path = self._cache / f"emb-{self.encoder.name}-{self.ts.fingerprint}-{row_key}.npz"
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
        for i in tqdm(sorted(pick), desc="LFW distractors", leave=False):
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
    return {
        "id_cosine": float(genuine.mean()),
        "tar_far1": 100 * metrics.tar_at_far(scores, labels, 0.01),
        "tar_far01": 100 * metrics.tar_at_far(scores, labels, 0.001),
        "rank1": 100 * metrics.rank1(out, list(subj), gallery, gallery_ids),
        "id_faces": int(ok.sum()),
    }


def score_row(ts: TestSet, row: RowOutput, judges: Judges) -> dict[str, Any]:
    """Every metric of the task for one row's outputs."""
    task, outs, gts = ts.task, row.outputs, ts.targets
    keys = {m.key for m in task.metrics}
    m: dict[str, Any] = {}
    m["psnr_y"] = float(np.mean([metrics.psnr(o, t, test_y_channel=True) for o, t in zip(outs, gts)])) if row.model != "real" else None
    m["ssim_y"] = float(np.mean([metrics.ssim(o, t, test_y_channel=True) for o, t in zip(outs, gts)]))
    m["psnr_rgb"] = float(np.mean([metrics.psnr(o, t) for o, t in zip(outs, gts)])) if row.model != "real" else None
    m["ssim_rgb"] = float(np.mean([metrics.ssim(o, t) for o, t in zip(outs, gts)]))
    m["lpips_alex"] = float(np.mean(metrics.lpips_distances(outs, gts)))
    backbone = judges.fid_backbone.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the result records n; the leaderboard shows it
        dist = metrics.fid_kid_from_features(judges.features("real", gts), judges.features(row.key, outs), backbone,
                                             kid_subset_size=min(1000, len(outs)))
    m.update(dist.columns())
    if {"id_cosine", "tar_far1"} & keys:
        m.update(identity_metrics(ts, judges, judges.embeddings(row.key, outs), judges.embeddings("real", gts)))
    m["params"] = row.params
    m["latency_ms"] = row.latency_ms
    return {k: v for k, v in m.items() if k in keys or k == "id_faces"}


# ---------------------------------------------------------------------------------------------
# Provenance
# ---------------------------------------------------------------------------------------------


def _git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def hardware(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    text = f"{cpu}, {torch.get_num_threads()} torch threads"
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
        "commit": _git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(device),
        "device": device,
        "versions": {d: _version(d) for d in ("torch", "lpips", "clean-fid", "opencv-python-headless", "facegen")},
    }


def protocol(ts: TestSet, judges: Judges) -> dict[str, Any]:
    return {
        "psnr_ssim": "BasicSR convention: Y of ITU-R BT.601 YCbCr (and RGB), crop_border 0, SSIM 11x11 Gaussian sigma 1.5",
        "lpips": "lpips package, AlexNet, v0.1 heads (offline weights from facegen.assets)",
        "fid_kid": f"clean-fid 'clean' resize, backbone {judges.fid_backbone.name}, KID subsets of min(1000, n)",
        "identity": (f"{judges.encoder.name} embeddings of crops from the landmarks detected on the ground truth; "
                     f"genuine = (output, its ground truth); impostors = (output, ground truth of every other subject) "
                     f"+ (output, {DISTRACTORS} LFW distractors); Rank-1 over ground truths + distractors"),
        "input": ts.task.degradation,
        "latency": f"median wall time per face at batch 1 over {LATENCY_FACES} faces",
    }


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
    specs = [s for s in registry.models_for(task_id) if model_ids is None or s.id in model_ids]
    rows: list[tuple[str, Callable[[], RowOutput]]] = []
    if model_ids is None or "identity" in model_ids or "real" in model_ids:
        for r in reference_rows(ts):
            if model_ids is None or r.model in model_ids:
                rows.append((r.model, lambda r=r: r))
    rows += [(s.id, lambda s=s: run_model(s, ts, device, batch_size)) for s in specs]
    errors = []
    prov = provenance(device)
    for name, make in rows:
        start = time.perf_counter()
        try:
            row = make()
            scores = score_row(ts, row, judges)
        except Exception as e:  # one failed entry must not hide the others
            errors.append(f"{task_id}/{name}: {type(e).__name__}: {e}")
            print(f"FAILED {task_id}/{name}: {e}", file=sys.stderr)
            continue
        result = {
            "schema": SCHEMA,
            "task": task_id,
            "model": row.model,
            "kind": row.kind,
            "paper": row.paper,
            "n": len(ts.targets),
            "dataset": ts.dataset,
            "split": ts.split,
            "limit": limit,
            "test_set_fingerprint": ts.fingerprint,
            "metrics": scores,
            "protocol": protocol(ts, judges),
            "judges": {"fid_kid": judges.fid_backbone.name, "identity": f"{judges.encoder.name}: {judges.encoder.version}"},
            "checkpoint": row.checkpoint,
            "seconds": round(time.perf_counter() - start, 2),
            **prov,
        }
        leaderboard.write_result(result, results_dir)
        print(f"{task_id}/{row.model}: " + ", ".join(f"{k}={v:.4g}" for k, v in scores.items() if isinstance(v, float)))
    print(f"{task_id}: done in {time.perf_counter() - t0:.0f} s")
    return errors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", nargs="*", choices=sorted(TASKS), help="tasks to run (default: all)")
    p.add_argument("--model", nargs="*", help="model ids (and/or 'identity', 'real') to run (default: all)")
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
    for task_id in args.task or list(TASKS):
        try:
            errors += run_task(task_id, args.model, root, args.device, args.limit, args.batch_size, args.results)
        except Exception as e:
            errors.append(f"{task_id}: {type(e).__name__}: {e}")
            print(f"FAILED {task_id}: {e}", file=sys.stderr)
    leaderboard.write_leaderboard(args.results)
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
