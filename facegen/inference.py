"""uint8 RGB faces in -> uint8 RGB faces out, for every registered model; batched, no_grad.

Models load lazily from their checkpoint folders and are cached per (model, task, device), so
the app and the benchmark share one loading path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facegen import checkpoint, registry
from facegen.landmarks import landmarks_of_batch
from facegen.tasks import shape

_cache: dict[tuple[str, str, str, str], "Runner"] = {}
_lock = threading.Lock()


@dataclass
class Runner:
    """A loaded model ready to process aligned face crops of one task."""

    model_id: str
    task: str
    model: object
    device: str

    @property
    def template(self) -> str:
        """The alignment template of the faces the model takes: its config's, else its task's."""
        return getattr(getattr(self.model, "config", None), "template", None) or shape(self.task).template

    @property
    def parameters(self) -> int:
        """Parameter count at inference (0 for parameter-free baselines)."""
        if isinstance(self.model, torch.nn.Module):
            return sum(p.numel() for p in self.model.parameters())
        return 0

    def __call__(self, faces: list[np.ndarray], batch_size: int = 16, **conditions) -> list[np.ndarray]:
        """Process uint8 (H, W, 3) RGB crops at the task's input size; returns uint8 RGB crops.

        ``conditions`` go to the model's ``infer``; a tensor or list with one entry per face
        (a guide image, target landmarks, per-face expressions) is split into the same batches.
        A model that fits an expression template to the faces' own landmarks (``fits_template``)
        and is given no target ``landmarks`` gets the faces' own as ``source_landmarks``
        (:func:`facegen.landmarks.landmarks_of_batch`): finding landmarks is not the model's job.
        """
        for f in faces:
            if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
                raise ValueError(f"expected uint8 (H, W, 3) RGB faces, got {f.dtype} {f.shape}")
        if not isinstance(self.model, torch.nn.Module):
            return self.model(faces)
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for i in range(0, len(faces), batch_size):
                x = torch.from_numpy(np.stack(faces[i:i + batch_size])).to(self.device)
                x = x.permute(0, 3, 1, 2).float().div(255.0)
                batch = {k: _per_face(v, len(faces), i, i + batch_size, self.device) for k, v in conditions.items()}
                if getattr(self.model, "fits_template", False) and batch.get("landmarks") is None \
                        and "source_landmarks" not in batch:
                    batch["source_landmarks"] = landmarks_of_batch(x)
                y = self.model.infer(x, **batch)  # type: ignore[attr-defined]
                y = y.clamp(0, 1).mul(255.0).round().byte().permute(0, 2, 3, 1).cpu().numpy()
                out.extend(list(y))
        return out


def _per_face(value, n: int, start: int, stop: int, device: str):
    """``value[start:stop]`` when it holds one entry per face, else ``value`` (shared by all);
    tensors on ``device``."""
    if isinstance(value, (torch.Tensor, list, tuple)) and len(value) == n:
        value = value[start:stop]
    return value.to(device) if isinstance(value, torch.Tensor) else value


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_runner(model_id: str, task: str, *, device: str | None = None,
                checkpoint_root: Path | None = None) -> Runner:
    """The cached runner of ``model_id`` for ``task`` (loads its checkpoint on first use)."""
    spec = registry.get(model_id)
    device = device or default_device()
    root = checkpoint_root or registry.CHECKPOINT_ROOT
    key = (model_id, task, device, str(root))
    with _lock:
        if key in _cache:
            return _cache[key]
        folder = spec.checkpoint_dir(task, root)
        if folder is None:
            model = spec.model_class(spec.configs[task])
            if isinstance(model, torch.nn.Module):
                model.eval()  # inference statistics, as a loaded checkpoint has
        else:
            model = checkpoint.load(folder, spec.model_class, device=device)
            crop = getattr(getattr(model, "config", None), "template", None)
            if crop is not None and crop not in shape(task).templates:
                raise checkpoint.CheckpointError(
                    f"{folder} was trained on faces cropped by the {crop!r} template, but the {task} task crops them "
                    f"by {' or '.join(map(repr, shape(task).templates))}: its outputs would be wrong. Retrain it, or "
                    f"use a checkpoint of this release.")
        runner = Runner(model_id=model_id, task=task, model=model, device=device)
        _cache[key] = runner
        return runner
