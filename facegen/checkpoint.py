"""Checkpoint folders: ``config.json`` + ``model.safetensors`` + ``README.md`` (+ ``facegen.json``).

Saving goes through ``huggingface_hub.PyTorchModelHubMixin.save_pretrained`` so a folder is also
a valid Hub model repo. Loading is our own and strict, because checkpoints are untrusted input:
safetensors only (never pickle), the manifest's sha256 must match, the config must fill the
model's dataclass exactly, and every tensor must fit the model built from it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from facegen.io import sha256_file

MANIFEST = "facegen.json"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
#: Manifest format: 1 (model id, classes, hashes); 2 adds the recipe, preset and task it was trained as.
#: Readers accept both; a shipped folder keeps the manifest it was exported with.
MANIFEST_VERSION = 2


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, damaged, or does not fit the model asked for."""


def save(model: torch.nn.Module, folder: str | Path, *, model_id: str, card: str, recipe: str | None = None,
         preset: str | None = None, task: str | None = None) -> Path:
    """Write ``model`` (a PyTorchModelHubMixin module with a dataclass ``config``) to ``folder``.

    ``model_id`` is the registry id; ``recipe``, ``preset`` and ``task`` say how it was trained
    (``python -m facegen.train`` gives all three) and are recorded in the manifest when given.

    The folder is assembled beside the target and renamed into place, so a reader never sees a
    half-written checkpoint and an existing one survives a crash mid-save.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    config = getattr(model, "config", None)
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{type(model).__name__} has no dataclass `config`; cannot save it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (tmp / CARD).write_text(card, encoding="utf-8")
        model.save_pretrained(tmp, config=config)  # type: ignore[attr-defined]
        manifest = {
            "model_id": model_id,
            "class": type(model).__name__,
            "config_class": type(config).__name__,
            "sha256": {name: sha256_file(tmp / name) for name in (CONFIG, WEIGHTS)},
            "manifest_version": MANIFEST_VERSION,
            **{k: v for k, v in (("recipe", recipe), ("preset", preset), ("task", task)) if v is not None},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        old = folder.with_name(f".{folder.name}.old")
        if folder.exists():
            if old.exists():
                shutil.rmtree(old)
            folder.rename(old)
        tmp.rename(folder)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: file is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a checkpoint folder (model id, class name, file hashes; from version 2 also
    the recipe, preset and task it was trained as)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint folder does not exist")
    return _read_json(folder / MANIFEST)


def config_from_dict(config_class: type, data: dict[str, Any], source: Path) -> Any:
    """Build a frozen dataclass config from JSON, refusing unknown or missing fields."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CheckpointError(f"{source}: unknown config fields for {config_class.__name__}: {unknown}")
    required = {
        n for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing = sorted(required - set(data))
    if missing:
        raise CheckpointError(f"{source}: config lacks fields {missing} of {config_class.__name__}")
    # JSON turns tuples into lists; frozen configs use tuples so they stay hashable.
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return config_class(**values)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: config does not fit {config_class.__name__}: {e}") from None


def load(folder: str | Path, model_class: type, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a checkpoint folder into ``model_class`` strictly; raise CheckpointError naming the fault."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("class") != model_class.__name__:
        raise CheckpointError(
            f"{folder / MANIFEST}: checkpoint holds a {manifest.get('class')!r}, "
            f"not a {model_class.__name__!r}"
        )
    hashes = manifest.get("sha256", {})
    for name in (CONFIG, WEIGHTS):
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path}: file is missing")
        if name not in hashes:
            raise CheckpointError(f"{folder / MANIFEST}: no sha256 recorded for {name}")
        if sha256_file(path) != hashes[name]:
            raise CheckpointError(f"{path}: sha256 does not match the manifest (damaged or replaced file)")
    config_class = model_class.config_class
    config = config_from_dict(config_class, _read_json(folder / CONFIG), folder / CONFIG)
    model = model_class(config)
    try:
        state = load_file(str(folder / WEIGHTS), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{folder / WEIGHTS}: not a readable safetensors file ({e})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:5]}")
        if wrong:
            parts.append(
                "shape mismatch " + ", ".join(f"{k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong[:5])
            )
        raise CheckpointError(f"{folder / WEIGHTS}: does not fit {model_class.__name__}({config}): " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()

