"""Training-state folders: tensors in safetensors, everything else in JSON; written atomically.

A nested state (module/optimiser/scheduler state dicts, RNG states, counters) is split into a
flat ``{key: tensor}`` map for safetensors and a JSON skeleton that marks where each tensor goes
and keeps Python types JSON cannot (tuples, int dict keys, numpy arrays). Nothing is ever
unpickled. A checkpoint is assembled in a hidden temp folder and renamed into place, and the JSON
(written last) records the sha256 of the tensor file, so a folder is either complete or ignored.
The process's random number generators are seeded, read and restored here too (``rng_state``).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from facegen.io import sha256_file

TENSORS = "state.safetensors"
META = "state.json"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


class TrainStateError(RuntimeError):
    """A training checkpoint cannot be read or does not fit the run being resumed."""


def encode(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """Replace tensors in ``obj`` by references into ``tensors``; return a JSON-safe skeleton."""
    if isinstance(obj, torch.Tensor):
        key = prefix
        if key in tensors:
            raise ValueError(f"duplicate state key {key!r}")
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {"__dict__": [[k, encode(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} at {prefix!r} in a training checkpoint")


def decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            key = obj["__tensor__"]
            if key not in tensors:
                raise TrainStateError(f"training checkpoint lacks tensor {key!r}")
            return tensors[key]
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=np.dtype(obj["dtype"]))
        if "__tuple__" in obj:
            return tuple(decode(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {_key(k): decode(v, tensors) for k, v in obj["__dict__"]}
        raise TrainStateError(f"unexpected object in training checkpoint: {sorted(obj)[:5]}")
    return obj


def _key(k: Any) -> Any:
    return tuple(k) if isinstance(k, list) else k


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:08d}"


def tmp_dir(root: Path, step: int) -> Path:
    return root / f".tmp-step-{step:08d}"


def begin(root: Path, step: int) -> Path:
    """Create (afresh) the temp folder a checkpoint of ``step`` is assembled in."""
    tmp = tmp_dir(root, step)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, sort_keys=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def finish(root: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` into the temp folder of ``step``, rename it into place, prune old ones."""
    tmp = tmp_dir(root, step)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = encode(state, tensors, "s")
    save_file(tensors, str(tmp / TENSORS))
    with open(tmp / TENSORS, "rb") as f:
        os.fsync(f.fileno())
    # The JSON goes last and names the tensor file's hash: its presence marks a complete folder.
    write_json(tmp / META, {"format": 1, "step": step, "sha256": sha256_file(tmp / TENSORS), "state": skeleton})
    final = step_dir(root, step)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for old in complete_steps(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(step_dir(root, old), ignore_errors=True)
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def complete_steps(root: Path) -> list[int]:
    """Steps of the checkpoint folders under ``root`` that hold both files (sorted)."""
    if not root.is_dir():
        return []
    steps = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and (p / META).is_file() and (p / TENSORS).is_file():
            steps.append(int(m.group(1)))
    return sorted(steps)


def read(folder: Path) -> dict[str, Any]:
    """Read one checkpoint folder; raise TrainStateError if it is incomplete or damaged."""
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TrainStateError(f"{folder / META}: unreadable ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != 1:
        raise TrainStateError(f"{folder / META}: not a training-state file of format 1")
    if sha256_file(folder / TENSORS) != meta.get("sha256"):
        raise TrainStateError(f"{folder / TENSORS}: sha256 does not match {META} (damaged or partial)")
    tensors = load_file(str(folder / TENSORS))
    return decode(meta["state"], tensors)


def latest(root: Path) -> tuple[int, dict[str, Any]] | None:
    """The newest readable checkpoint under ``root`` as (step, state), skipping damaged ones."""
    for step in reversed(complete_steps(root)):
        try:
            return step, read(step_dir(root, step))
        except TrainStateError:
            continue
    return None


def remove_partials(root: Path) -> None:
    """Delete temp folders left by a run killed mid-checkpoint."""
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".tmp-step-") and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


# -- random number generators ---------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    s: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict[str, Any]) -> None:
    py = s["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state(tuple(s["numpy"]))
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(s["cuda"]))
