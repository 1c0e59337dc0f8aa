"""Training data of the expression models (task ``expression``, 128x128 aligned faces).

Paired data (``lmk-guided``, and optionally ExprGAN): same-person neutral -> expression pairs of
the JAFFE and RaFD *training* subjects (:func:`facegen.data.task_pairs`; the test subjects of the
``expression`` task are never read here), aligned with the ``expression`` template of
:mod:`facegen.faces` like the benchmark's faces (or with the model's own crop template, see
``LmkGuidedConfig.template``). The target's 68 landmarks come from
:func:`facegen.models.heatmaps.crop_landmarks` on the aligned target crop and are cached beside
the crop cache.

Unpaired labelled faces (ExprGAN learns by reconstructing a face from its identity code and its
own label): every JAFFE and RaFD image of the training subjects, plus optionally the labelled
LFW faces of ``lfw_expressions`` (in the wild, very imbalanced: classes are re-sampled towards
balance by repetition).

Validation: a few training subjects are held out of training (never a test subject).
All the shared face sets are grey, so the lite models train on luminance (``channels=1``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from facegen.colour import luma
from facegen.data import aligned_crops, split, task_pairs, wild
from facegen.data.cache import default_cache_root
from facegen.expressions import normalise_expression
from facegen.landmarks import crop_landmarks_cached
from facegen.models.heatmaps import fit_template, mean_displacements
from facegen.train.smile_data import cached_same_person

TEMPLATE = "expression"
SIZE = 128
#: Training subjects held out for validation: one JAFFE woman and three RaFD people.
VAL_SUBJECTS: dict[str, tuple[str, ...]] = {"jaffe": ("UY",), "rafd_subset": ("01", "02", "03")}

# iBUG 300-W index of each landmark's mirror image (for horizontal flips).
FLIP_68 = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 21, -1)) + list(range(21, 16, -1))  # brows
    + [27, 28, 29, 30] + [35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
)


class ExpressionDataError(RuntimeError):
    """The training data cannot be assembled (missing faces, no pairs, ...)."""


def flip_landmarks(points: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the horizontally flipped image: x -> width - 1 - x, mirror points swapped."""
    out = points[FLIP_68].copy()
    out[:, 0] = width - 1 - out[:, 0]
    return out


def _to_tensor(img: np.ndarray, channels: int) -> Tensor:
    x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div(255.0)  # a copy: crops may be read-only memmaps
    if channels == 1:
        x = luma(x, axis=0, keepdim=True)
    return x


@dataclass(frozen=True)
class PairedFaces:
    """Aligned neutral/target crops of same-person pairs with the target's landmarks."""

    neutral: np.ndarray  # (M, 128, 128, 3) uint8
    target: np.ndarray  # (M, 128, 128, 3) uint8
    neutral_landmarks: np.ndarray  # (M, 68, 2) float32
    target_landmarks: np.ndarray  # (M, 68, 2) float32
    expressions: tuple[str, ...]  # target expression of each pair
    subjects: tuple[str, ...]


def paired_faces(root: str | Path | None, part: str = "train", cache_root: str | Path | None = None,
                 progress: bool = True, template: str = TEMPLATE) -> PairedFaces:
    """Pairs of the training subjects: ``part`` = "train" (minus :data:`VAL_SUBJECTS`) or "val",
    aligned with ``template``.

    Pairs where a crop or a landmark set is missing are dropped.
    """
    if part not in ("train", "val"):
        raise ValueError(f"part must be 'train' or 'val'; got {part!r}")
    held = {(d, s) for d, subs in VAL_SUBJECTS.items() for s in subs}
    pairs = [p for p in task_pairs("expression", root).train
             if ((p.target.dataset, p.subject) in held) == (part == "val")]
    if not pairs:
        raise ExpressionDataError(f"no {part} pairs for the expression task under the data root")
    return _aligned_pairs(pairs, template, cache_root, progress)[0]


def _aligned_pairs(pairs: list, template: str, cache_root: str | Path | None, progress: bool) -> tuple[PairedFaces, list]:
    """Crops of both faces of ``pairs`` aligned with ``template`` with their landmarks (both cached),
    and the pairs kept: those where a crop or a landmark set is missing are dropped."""
    records = list({r.key: r for p in pairs for r in (p.neutral, p.target)}.values())
    crops = aligned_crops(records, SIZE, template, cache_root=cache_root, progress=progress)
    croot = Path(cache_root) if cache_root is not None else default_cache_root()
    pts = crop_landmarks_cached(crops.images, croot / "landmarks" / f"{crops.path.name}.npy", progress)
    rows = {k: i for i, k in enumerate(crops.keys)}
    keep = [p for p in pairs if p.neutral.key in rows and p.target.key in rows
            and np.isfinite(pts[rows[p.neutral.key]]).all() and np.isfinite(pts[rows[p.target.key]]).all()]
    if not keep:
        raise ExpressionDataError("no pair has both faces and their landmarks")
    ni = [rows[p.neutral.key] for p in keep]
    ti = [rows[p.target.key] for p in keep]
    return PairedFaces(np.asarray(crops.images)[ni], np.asarray(crops.images)[ti], pts[ni], pts[ti],
                       tuple(p.expression for p in keep), tuple(p.subject for p in keep)), keep


def template_displacements(pairs: PairedFaces, expressions: Sequence[str]) -> np.ndarray:
    """The per-expression mean landmark displacement of ``pairs`` (see :mod:`facegen.models.heatmaps`)."""
    return mean_displacements(pairs.neutral_landmarks, pairs.target_landmarks, pairs.expressions, expressions)


class PairedExpressionSet(Dataset):
    """Items ``{"lr": neutral, "hr": target, "label": index, "landmarks": target points}``.

    Images are float [0, 1] CxHxW (C = 1: BT.601 luminance); ``label`` indexes ``expressions``;
    pairs whose target expression is not in ``expressions`` are dropped. With ``flip`` both images
    and the landmarks are mirrored with probability 1/2, drawn from (seed, epoch, item).
    """

    def __init__(self, pairs: PairedFaces, expressions: Sequence[str], channels: int, flip: bool = True,
                 seed: int = 0) -> None:
        self.pairs = pairs
        self.expressions = tuple(expressions)
        self.rows = [i for i, e in enumerate(pairs.expressions) if e in self.expressions]
        if not self.rows:
            raise ExpressionDataError(f"no pair has a target expression in {self.expressions}")
        self.channels, self.flip, self.seed, self.epoch = channels, flip, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        r = self.rows[i]
        p = self.pairs
        src, tgt, pts = p.neutral[r], p.target[r], p.target_landmarks[r]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        if self.flip and rng.random() < 0.5:
            src, tgt, pts = src[:, ::-1], tgt[:, ::-1], flip_landmarks(pts, src.shape[1])
        return {"lr": _to_tensor(src, self.channels), "hr": _to_tensor(tgt, self.channels),
                "label": torch.tensor(self.expressions.index(p.expressions[r])),
                "landmarks": torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float32))}


def wild_paired_faces(root: str | Path | None, expressions: Sequence[str], cache_root: str | Path | None = None,
                      progress: bool = True, template: str = TEMPLATE) -> PairedFaces:
    """LFW neutral -> expression pairs of two photos of one training person, for every expression of
    ``expressions`` but neutral (:func:`facegen.data.wild.wild_train_pairs`: the held-out people never),
    aligned with ``template``, with both faces' landmarks; pairs that SFace does not verify as one
    person (on their :data:`TEMPLATE` crops, whatever ``template``: the same pairs for every crop),
    or where a crop or a landmark set is missing, are dropped."""
    pairs = [p for e in expressions if e != "neutral" for p in wild.wild_train_pairs(e, root)]
    if not pairs:
        raise ExpressionDataError("no LFW neutral -> expression pair of a training identity under the data root")
    both, kept = _aligned_pairs(pairs, TEMPLATE, cache_root, progress)
    same = cached_same_person(both.neutral, both.target, TEMPLATE, cache_root)
    if not same.any():
        raise ExpressionDataError("no LFW pair shows one person in both photos")
    if template != TEMPLATE:
        return _aligned_pairs([p for p, ok in zip(kept, same) if ok], template, cache_root, progress)[0]
    return PairedFaces(both.neutral[same], both.target[same], both.neutral_landmarks[same],
                       both.target_landmarks[same], tuple(e for e, ok in zip(both.expressions, same) if ok),
                       tuple(x for x, ok in zip(both.subjects, same) if ok))


class WildExpressionSet(Dataset):
    """The ``wild`` recipe's items: studio pairs and LFW pairs of two photos of one person.

    Items ``{"lr", "hr", "label", "landmarks", "registered"}``: ``landmarks`` are what the generator
    is given (a studio pair: its target's, as in the paper; an LFW pair: the expression ``template``
    fitted to the neutral photo's own landmarks, as the app does); ``registered`` is 1 for studio pairs (one camera, one pose: compared with the target pixel by
    pixel) and 0 for LFW pairs (held to their input; see :mod:`facegen.train.photo_pairs`).
    LFW classes are balanced by repetition (at most ``max_repeat`` copies of a pair) and the studio
    pairs repeated to about ``studio_share`` of the items. Flips mirror images and landmarks.
    """

    def __init__(self, studio: PairedFaces, lfw: PairedFaces, expressions: Sequence[str], template: np.ndarray,
                 channels: int, studio_share: float = 1 / 3, max_repeat: int = 8, flip: bool = True,
                 seed: int = 0) -> None:
        self.expressions = tuple(expressions)
        self.sets = (studio, lfw)
        self.template = torch.from_numpy(np.asarray(template, dtype=np.float32))
        by_class: dict[str, list[int]] = {}
        for i, e in enumerate(lfw.expressions):
            if e in self.expressions:
                by_class.setdefault(e, []).append(i)
        if not by_class:
            raise ExpressionDataError(f"no LFW pair has a target expression in {self.expressions}")
        most = max(len(v) for v in by_class.values())
        wild_index = [(1, i) for rows in by_class.values() for _ in range(min(max_repeat, max(1, most // len(rows))))
                      for i in rows]
        studio_rows = [i for i, e in enumerate(studio.expressions) if e in self.expressions]
        if not studio_rows:
            raise ExpressionDataError(f"no studio pair has a target expression in {self.expressions}")
        reps = max(1, round(studio_share / (1 - studio_share) * len(wild_index) / len(studio_rows)))
        self.index = [(0, i) for _ in range(reps) for i in studio_rows] + wild_index
        self.channels, self.flip, self.seed, self.epoch = channels, flip, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def counts(self) -> dict[str, dict[str, int]]:
        """Items per source and class (for the model card)."""
        out: dict[str, dict[str, int]] = {"studio": {}, "lfw": {}}
        for s, i in self.index:
            e = self.sets[s].expressions[i]
            part = out["studio" if s == 0 else "lfw"]
            part[e] = part.get(e, 0) + 1
        return out

    def __getitem__(self, j: int) -> dict[str, Tensor]:
        s, i = self.index[j]
        p = self.sets[s]
        label = self.expressions.index(p.expressions[i])
        src, tgt = p.neutral[i], p.target[i]
        if s == 0:
            given = p.target_landmarks[i]
        else:  # the app's target geometry: the template fitted to the neutral photo's own landmarks
            own = torch.from_numpy(np.ascontiguousarray(p.neutral_landmarks[i:i + 1], dtype=np.float32))
            given = fit_template(own, torch.tensor([label]), self.template)[0].numpy()
        rng = np.random.default_rng([self.seed, self.epoch, j])
        if self.flip and rng.random() < 0.5:
            w = src.shape[1]
            src, tgt = src[:, ::-1], tgt[:, ::-1]
            given = flip_landmarks(given, w)
        return {"lr": _to_tensor(src, self.channels), "hr": _to_tensor(tgt, self.channels),
                "label": torch.tensor(label),
                "landmarks": torch.from_numpy(np.ascontiguousarray(given, dtype=np.float32)),
                "registered": torch.tensor(1.0 if s == 0 else 0.0)}


class LabelledFaceSet(Dataset):
    """ExprGAN's reconstruction samples ``{"lr": x, "hr": x, "label": y}`` (+ optional paired samples).

    ``faces`` (N, H, W, 3) uint8 with one expression name each; classes outside ``expressions``
    are dropped. ``balance`` repeats the items of rare classes so that every class appears about
    as often as the largest one, capped at ``max_repeat`` copies of an item. ``pairs`` (optional)
    appends neutral -> expression samples of the same people (``hr`` = the target).
    """

    def __init__(self, faces: np.ndarray, labels: Sequence[str], expressions: Sequence[str], channels: int,
                 pairs: PairedFaces | None = None, balance: bool = True, max_repeat: int = 20, flip: bool = True,
                 seed: int = 0) -> None:
        self.faces, self.expressions = faces, tuple(expressions)
        self.labels = [normalise_expression(x) for x in labels]
        base = [i for i, e in enumerate(self.labels) if e in self.expressions]
        if not base:
            raise ExpressionDataError(f"no labelled face has an expression in {self.expressions}")
        index: list[tuple[str, int]] = [("face", i) for i in base]
        if balance:
            by_class: dict[str, list[int]] = {}
            for i in base:
                by_class.setdefault(self.labels[i], []).append(i)
            most = max(len(v) for v in by_class.values())
            for rows in by_class.values():
                reps = min(max_repeat, most // len(rows)) - 1
                index += [("face", i) for _ in range(reps) for i in rows]
        self.pairs = pairs
        if pairs is not None:
            index += [("pair", i) for i, e in enumerate(pairs.expressions) if e in self.expressions]
        self.index = index
        self.channels, self.flip, self.seed, self.epoch = channels, flip, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def class_counts(self) -> dict[str, int]:
        """Items per class after balancing (for the model card)."""
        out: dict[str, int] = {}
        for kind, i in self.index:
            e = self.labels[i] if kind == "face" else self.pairs.expressions[i]  # type: ignore[union-attr]
            out[e] = out.get(e, 0) + 1
        return out

    def __getitem__(self, j: int) -> dict[str, Tensor]:
        kind, i = self.index[j]
        if kind == "face":
            src = tgt = self.faces[i]
            label = self.labels[i]
        else:
            assert self.pairs is not None
            src, tgt, label = self.pairs.neutral[i], self.pairs.target[i], self.pairs.expressions[i]
        rng = np.random.default_rng([self.seed, self.epoch, j])
        if self.flip and rng.random() < 0.5:
            src, tgt = src[:, ::-1], tgt[:, ::-1]
        return {"lr": _to_tensor(src, self.channels), "hr": _to_tensor(tgt, self.channels),
                "label": torch.tensor(self.expressions.index(label))}


def labelled_records(root: str | Path | None, part: str = "train", use_lfw: bool = True) -> list:
    """The labelled face records ExprGAN reconstructs: JAFFE and RaFD training subjects (minus or
    only the validation subjects, by ``part``), plus, for ``part="train"`` and ``use_lfw``, the
    labelled LFW photos of every person but the held-out ones (:data:`facegen.data.wild.LFW_TEST_IDENTITIES`)."""
    held = {(d, s) for d, subs in VAL_SUBJECTS.items() for s in subs}
    records = []
    for dataset in ("jaffe", "rafd_subset"):
        # The `judge` split keeps every labelled image; its test subjects are the expression task's.
        records += [r for r in split(dataset, "judge", root).train if ((dataset, r.subject) in held) == (part == "val")]
    if part == "train" and use_lfw:
        held_out = set(wild.LFW_TEST_IDENTITIES)
        records += [r for r in split("lfw_expressions", "judge", root).train if r.subject not in held_out]
    return [r for r in records if r.expression is not None]


def labelled_faces(root: str | Path | None, part: str = "train", use_lfw: bool = True,
                   cache_root: str | Path | None = None, progress: bool = True) -> tuple[np.ndarray, list[str]]:
    """Aligned crops and expression names of :func:`labelled_records` (faces not found left out)."""
    records = labelled_records(root, part, use_lfw)
    crops = aligned_crops(records, SIZE, TEMPLATE, cache_root=cache_root, progress=progress)
    by_key = {r.key: r for r in records}
    return np.asarray(crops.images), [by_key[k].expression for k in crops.keys]  # type: ignore[misc]


def fingerprint(*arrays: np.ndarray) -> str:
    """Short sha256 of arrays (recorded in run info so a resume checks it continues on the same data)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(json.dumps([list(a.shape), str(a.dtype)]).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ExpressionData:
    """What a training run of an expression model needs from the data."""

    train: Dataset
    val: Dataset
    template: np.ndarray | None  # (K, 68, 2) for lmk-guided: set with ``G.set_template`` before training
    description: str  # for the model card


def datasets(model_id: str, config, root: str | Path | None, cache_root: str | Path | None = None, *,
             use_lfw: bool = True, exprgan_pairs: bool = True, wild_pairs: bool = False, seed: int = 0,
             progress: bool = True) -> ExpressionData:
    """Training and validation sets of ``model_id`` with ``config`` (its expressions and channels).

    ``lmk-guided``: the paired set (validation: the pairs of :data:`VAL_SUBJECTS`) and the
    expression template fitted on the training pairs. ExprGAN models: labelled faces (JAFFE and
    RaFD training subjects, plus the LFW expression faces when ``use_lfw``), class-balanced by
    repetition, plus (``exprgan_pairs``) the neutral -> expression pairs; validation = the
    validation subjects' pairs.
    """
    exprs, ch = tuple(config.expressions), config.channels
    crop = getattr(config, "template", TEMPLATE)
    train_pairs = paired_faces(root, "train", cache_root, progress, crop)
    val_pairs = paired_faces(root, "val", cache_root, progress, crop)
    val = PairedExpressionSet(val_pairs, exprs, ch, flip=False)
    if model_id == "lmk-guided" and wild_pairs:
        template = template_displacements(train_pairs, exprs)
        lfw = wild_paired_faces(root, exprs, cache_root, progress, crop)
        train = WildExpressionSet(train_pairs, lfw, exprs, template, ch, seed=seed)
        counts = train.counts()
        desc = (f"{len(train_pairs.expressions)} same-person neutral -> expression pairs of the JAFFE and RaFD training "
                f"subjects and {len(lfw.expressions)} LFW neutral -> expression pairs of two photos of one training "
                f"person (SFace-verified; the held-out LFW people never), {len(train)} items: studio {counts['studio']}, "
                f"LFW {counts['lfw']} (classes balanced by repetition); validation: {len(val)} studio pairs of held-out "
                "training subjects; never the expression test subjects")
        return ExpressionData(train, val, template, desc)
    if model_id == "lmk-guided":
        train = PairedExpressionSet(train_pairs, exprs, ch, flip=True, seed=seed)
        desc = (f"{len(train)} same-person neutral -> expression pairs of the JAFFE and RaFD training subjects "
                f"(validation: {len(val)} pairs of held-out training subjects); never the expression test subjects")
        return ExpressionData(train, val, template_displacements(train_pairs, exprs), desc)
    faces, labels = labelled_faces(root, "train", use_lfw, cache_root, progress)
    train = LabelledFaceSet(faces, labels, exprs, ch, pairs=train_pairs if exprgan_pairs else None, seed=seed)
    desc = (f"{len(faces)} labelled faces (JAFFE and RaFD training subjects" + (", LFW expressions" if use_lfw else "")
            + f") reconstructed with their own label, class-balanced by repetition to {len(train)} items"
            + (f" including {len(train_pairs.expressions)} neutral -> expression pairs" if exprgan_pairs else "")
            + f"; per class {train.class_counts()}; never the expression test subjects")
    return ExpressionData(train, val, None, desc)
