"""The rows of a task: the reference rows (`identity`, `real`) and each registered model's outputs
on a test set, with its latency, MACs, checkpoint hashes and the test-time inputs it was given.
Outputs are cached by the test set, the checkpoint hashes and the conditions."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchmarks import frames
from benchmarks.cache import cache_root, load_npz, save_npz
from benchmarks.macs import macs_per_face
from benchmarks.testsets import BenchmarkError, TestSet, progress_bar
from facegen import checkpoint, registry
from facegen.data import degrade
from facegen.inference import load_runner
from facegen.landmarks import LandmarkError, crop_landmarks

LATENCY_FACES = 16  # faces timed one by one (batch 1) for the latency column



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
    variant: str = ""  # "" for the model's headline protocol; "paper": its paper's inputs (registry paper_given)
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
    path = cache_root() / ts.task.id / f"landmarks-{ts.fingerprint}.npz"
    cached = load_npz(path)
    if cached is not None and len(cached["lm"]) == len(ts.targets):
        return cached["lm"]
    lm = np.full((len(ts.targets), 68, 2), np.nan, np.float32)
    for i, t in enumerate(progress_bar(iterable=ts.targets, desc=f"{ts.task.id}: target landmarks")):
        try:
            lm[i] = crop_landmarks(t)
        except LandmarkError:
            pass
    save_npz(path, lm=lm)
    return lm


def item_conditions(ts: TestSet, given: set[str] | tuple[str, ...], template: str | None = None) -> list[dict[str, Any]]:
    """Per-item conditions for a model that consumes the ``given`` inputs (its registry ``given``):
    exactly these are passed, so the result records exactly what the model saw.

    ``expression``: the target label (paired tasks); ``guide``: the neutral face at the output
    size (smile: the SGE guide, uint8 HWC); ``landmarks``: the ground-truth target's 68 points
    ((68, 2) float32; items whose target has none get no landmarks, and the model fits its own),
    found on the target cut by the model's crop ``template`` when that is not the task's.
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
        own = template is None or template == ts.task.template
        for c, lm in zip(conds, target_landmarks(ts) if own else frames.target_landmarks(ts, template)):
            if np.isfinite(lm).all():
                c["landmarks"] = lm
    return conds


def group_key(cond: dict[str, Any]) -> tuple:
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


def run_model(spec: registry.ModelSpec, ts: TestSet, device: str, batch_size: int, paper: bool = False) -> RowOutput:
    """The model's outputs on the test set (from the cache when the same model already ran); a
    task with a ``base`` runs the model as registered for its base task. ``paper``: given the
    paper's test-time inputs (registry ``paper_given``) instead of the app's (``given``)."""
    served = ts.task.base or ts.task.id
    ckpt = _checkpoint_hashes(spec, served)
    runner = load_runner(spec.id, served, device=device)
    if paper and not spec.paper_given:
        raise BenchmarkError(f"{spec.id} has no paper protocol of its own (registry paper_given)")
    given = spec.paper_given if paper else spec.given
    frame = None if runner.template == ts.task.template else frames.model_frame(ts, runner.template)
    inputs = ts.inputs if frame is None else frame.inputs
    tag = "conditions-v2:" + ",".join(sorted(given)) + ("" if frame is None else f"|crop:{frame.template}")
    key = hashlib.sha256(json.dumps([spec.id, ts.fingerprint, ckpt, repr(spec.configs.get(served)), tag]).encode()).hexdigest()[:16]
    path = cache_root() / ts.task.id / f"{spec.id}-{key}.npz"
    cached = load_npz(path)
    conds = item_conditions(ts, given, runner.template)
    if cached is not None and len(cached["outputs"]) == len(ts.inputs):
        outputs = list(cached["outputs"])
        latency = float(cached["latency_ms"])
    else:
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(conds):
            groups.setdefault(group_key(c), []).append(i)
        result: list[np.ndarray | None] = [None] * len(ts.inputs)
        bar = progress_bar(total=len(ts.inputs), desc=f"{ts.task.id}: {spec.id}")
        for idx in groups.values():
            for j in range(0, len(idx), batch_size):
                chunk = idx[j:j + batch_size]
                kw = batch_conditions([conds[i] for i in chunk], device)
                outs = runner([inputs[i] for i in chunk], batch_size=len(chunk), **kw)
                for i, o in zip(chunk, outs):
                    result[i] = o
                bar.update(len(chunk))
        bar.close()
        outputs = [o for o in result if o is not None]
        if frame is not None:
            outputs = frames.into_task_crops(frame, ts, outputs)
        latency = _latency_ms(runner, inputs, conds, device)
        save_npz(path, outputs=np.stack(outputs), latency_ms=np.float64(latency))
    bad = [o.shape for o in outputs if o.shape != (ts.task.out_size, ts.task.out_size, 3)]
    if bad:
        raise BenchmarkError(f"{spec.id} produced {bad[0]} images for {ts.task.id}, expected {ts.task.out_size}^2 RGB")
    kind = "baseline" if spec.family == "baseline" else "model"
    row = RowOutput(spec.id, kind, spec.paper, outputs, runner.parameters, latency, key, ckpt,
                    macs=macs_per_face(runner, inputs[0], batch_conditions([conds[0]], device)))
    row.given = tuple(given)
    row.variant = "paper" if paper else ""
    row.notes = {"conditions": sorted({k for c in conds for k in c}),
                 **({} if frame is None else {"crop": f"faces cut by the {frame.template!r} template, the change "
                                                      "pasted into the task's crop (benchmarks.frames)"}),
                 "items_without_target_landmarks": int(sum("landmarks" not in c for c in conds))
                 if "landmarks" in given else None}
    return row


def _latency_ms(runner, inputs: list[np.ndarray], conds: list[dict[str, Any]], device: str) -> float:
    """Median wall time of one face (batch 1) over the first LATENCY_FACES faces, after a warm-up."""
    n = min(LATENCY_FACES, len(inputs))
    runner([inputs[0]], batch_size=1, **batch_conditions([conds[0]], device))
    times = []
    for i in range(n):
        kw = batch_conditions([conds[i]], device)
        t0 = time.perf_counter()
        runner([inputs[i]], batch_size=1, **kw)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def reference_rows(ts: TestSet) -> list[RowOutput]:
    """`identity` (the input, up-sampled) and, where the task has a ground truth, `real`."""
    rows = [RowOutput("identity", "reference", None, _identity_row(ts), 0, None, "identity")]
    if ts.task.ground_truth:
        rows.append(RowOutput("real", "reference", None, list(ts.targets), None, None, "real"))
    return rows

