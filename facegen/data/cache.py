"""Aligned-crop cache: face alignment runs once per image and the crops are kept on disk.

One entry per (dataset, template, size, record list): a folder under
``$FACEGEN_CACHE/aligned/`` (default ``~/.cache/facegen``) named
``<dataset>-<template>-<size>-<hash>`` holding ``images.npy`` (N x size x size x 3 uint8,
opened memory-mapped so large sets do not fill RAM), ``matrices.npy`` (N x 2 x 3 photo -> crop
transforms, NaN when the aligner gives none) and ``index.json`` (record keys in order, skipped
keys, settings). The hash covers the record keys in order, the template, the size and the
aligner's id, so any change makes a new entry. The folder is written under a temporary name
and renamed into place, so a crash never leaves a half-written entry.

The aligner is injectable: any callable ``(image, record, size, template) -> crop or None``,
where the crop is a uint8 ``size`` x ``size`` x 3 array or an object with ``.image`` (and
``.matrix``); None means "no face" and the record is skipped and counted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from facegen.assets import cache_dir
from facegen.data.records import FaceRecord, load_image
from facegen.faces import align, detect

CACHE_VERSION = 1

Aligner = Callable[[np.ndarray, FaceRecord, int, str], Any]


class CacheError(RuntimeError):
    """A cache entry is unreadable or does not match what was asked for."""


def _centred(record: FaceRecord) -> bool:
    # LFW photos often show several people; the labelled subject is the one centred by LFW's
    # funnelling, so pick the face nearest the image centre instead of the largest.
    return record.dataset == "lfw" or (record.path or "").startswith("lfw/")


class FaceAligner:
    """The default aligner: :func:`facegen.faces.detect` + :func:`facegen.faces.align`.

    Takes the largest face, or for LFW images the face whose box centre is nearest the image
    centre. Returns None when no face is found.
    """

    cache_id = "facegen.faces/v1"

    def __init__(self, min_score: float = 0.6) -> None:
        self.min_score = min_score

    def __call__(self, image: np.ndarray, record: FaceRecord, size: int, template: str) -> Any:
        faces = detect(image, min_score=self.min_score)
        if not faces:
            return None
        face = faces[0]
        if _centred(record):
            cy, cx = (image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2
            face = min(faces, key=lambda f: (f.centre[0] - cx) ** 2 + (f.centre[1] - cy) ** 2)
        return align(image, face, size, template)


@dataclass(frozen=True)
class AlignedCrops:
    """Crops of the records where a face was found, in record order."""

    images: np.ndarray  # (N, size, size, 3) uint8, memory-mapped
    matrices: np.ndarray  # (N, 2, 3) float64
    keys: tuple[str, ...]  # record keys of the crops, same order as images
    skipped: tuple[str, ...]  # record keys where no face was found
    path: Path

    def __len__(self) -> int:
        return len(self.keys)

    def index_of(self, key: str) -> int:
        """Row of the crop of the record with this key (KeyError when it was skipped)."""
        try:
            return self.keys.index(key)
        except ValueError:
            raise KeyError(f"{key} has no crop (skipped: {key in self.skipped}).") from None


def default_cache_root() -> Path:
    """``$FACEGEN_CACHE/aligned`` (default ``~/.cache/facegen/aligned``)."""
    return cache_dir() / "aligned"


def cache_key(records: Sequence[FaceRecord], size: int, template: str, aligner_id: str) -> str:
    """sha256 (hex, 16 chars) of the record keys in order + template + size + aligner id."""
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}\n{template}\n{size}\n{aligner_id}\n".encode())
    for r in records:
        h.update(r.key.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def _dataset_name(records: Sequence[FaceRecord]) -> str:
    names = sorted({r.dataset for r in records})
    return "+".join(names) if len(names) <= 3 else f"{names[0]}+{len(names) - 1}more"


def _open(entry: Path) -> AlignedCrops:
    try:
        index = json.loads((entry / "index.json").read_text(encoding="utf-8"))
        images = np.load(entry / "images.npy", mmap_mode="r", allow_pickle=False)
        matrices = np.load(entry / "matrices.npy", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise CacheError(f"Cache entry {entry} is unreadable ({err}); delete the folder to rebuild it.") from err
    keys = tuple(index["keys"])
    if images.shape[0] != len(keys) or matrices.shape[0] != len(keys):
        raise CacheError(f"Cache entry {entry} is inconsistent; delete the folder to rebuild it.")
    return AlignedCrops(images=images, matrices=matrices, keys=keys, skipped=tuple(index["skipped"]), path=entry)


def aligned_crops(
    records: Sequence[FaceRecord],
    size: int,
    template: str = "celeba",
    cache_root: str | Path | None = None,
    aligner: Aligner | None = None,
    progress: bool = True,
) -> AlignedCrops:
    """Aligned ``size`` x ``size`` crops of ``records``, computed once and then read from the cache.

    Records where the aligner finds no face are skipped; their keys are in ``.skipped`` and their
    number is printed when the entry is built.
    """
    if not records:
        raise CacheError("aligned_crops needs at least one record.")
    aligner = aligner if aligner is not None else FaceAligner()
    aligner_id = getattr(aligner, "cache_id", None) or (
        f"{type(aligner).__module__}.{getattr(aligner, '__qualname__', type(aligner).__qualname__)}"
    )
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    name = f"{_dataset_name(records)}-{template}-{size}-{cache_key(records, size, template, aligner_id)}"
    entry = root / name
    if (entry / "index.json").is_file():
        return _open(entry)

    root.mkdir(parents=True, exist_ok=True)
    crops: list[np.ndarray] = []
    matrices: list[np.ndarray] = []
    keys: list[str] = []
    skipped: list[str] = []
    for record in tqdm(records, desc=f"aligning {name}", unit="img", disable=not progress):
        result = aligner(load_image(record), record, size, template)
        if result is None:
            skipped.append(record.key)
            continue
        crop = np.asarray(getattr(result, "image", result))
        if crop.shape != (size, size, 3) or crop.dtype != np.uint8:
            raise CacheError(
                f"Aligner returned {crop.dtype} {crop.shape} for {record.key}; expected uint8 {(size, size, 3)}."
            )
        matrix = getattr(result, "matrix", None)
        crops.append(crop)
        matrices.append(
            np.full((2, 3), np.nan) if matrix is None else np.asarray(matrix, dtype=np.float64).reshape(2, 3)
        )
        keys.append(record.key)

    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        images = np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)
        np.save(tmp / "images.npy", images, allow_pickle=False)
        np.save(tmp / "matrices.npy", np.stack(matrices) if matrices else np.zeros((0, 2, 3)), allow_pickle=False)
        index = {
            "version": CACHE_VERSION,
            "dataset": _dataset_name(records),
            "template": template,
            "size": size,
            "aligner": aligner_id,
            "count": len(keys),
            "keys": keys,
            "skipped": skipped,
        }
        (tmp / "index.json").write_text(json.dumps(index), encoding="utf-8")
        try:
            os.replace(tmp, entry)  # atomic; fails if another process already built the entry
        except OSError:
            if not (entry / "index.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if skipped and progress:
        print(f"aligned {len(keys)} of {len(records)} images; no face found in {len(skipped)} (skipped).")
    return _open(entry)
