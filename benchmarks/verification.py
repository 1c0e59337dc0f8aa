"""Identity verification and recognition metrics on embeddings (cosine, ROC, TAR at a FAR,
Rank-1, 10-fold LFW accuracy) and paper 001's eigenface recognition protocol: pure functions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from benchmarks.metrics import MetricError, _as_float255
from facegen.colour import luma

# ---------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two embedding vectors (D,), in [-1, 1]."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise MetricError(f"embeddings have different sizes: {a.size} and {b.size}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise MetricError("cosine similarity of a zero vector is undefined")
    return float(np.clip(a @ b / (na * nb), -1.0, 1.0))


def cosine_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) embedding matrices -> (N,) in [-1, 1]."""
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    if a.shape != b.shape:
        raise MetricError(f"embedding matrices have different shapes: {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    if (na == 0).any() or (nb == 0).any():
        raise MetricError("cosine similarity of a zero vector is undefined")
    return np.clip(np.einsum("nd,nd->n", a, b) / (na * nb), -1.0, 1.0)


def _scores_labels(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise MetricError(f"{s.size} scores but {y.size} labels")
    if not np.isin(y, (0, 1)).all():
        raise MetricError("labels must be 1 (genuine: same identity) or 0 (impostor)")
    y = y.astype(bool)
    if not y.any() or y.all():
        raise MetricError("verification needs both genuine (1) and impostor (0) pairs")
    return s, y


@dataclass(frozen=True)
class RocCurve:
    """ROC of a verifier that accepts a pair when its score >= threshold.

    ``thresholds`` decrease from +inf (nothing accepted); ``far[i]`` and ``tar[i]`` are the
    fractions of impostor and genuine pairs accepted at ``thresholds[i]`` (non-decreasing).
    """

    thresholds: np.ndarray
    far: np.ndarray
    tar: np.ndarray

    @property
    def auc(self) -> float:
        """Area under the TAR-vs-FAR curve (trapezoids), in [0, 1]."""
        return float(np.sum(np.diff(self.far) * (self.tar[1:] + self.tar[:-1]) / 2))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> RocCurve:
    """ROC from similarity scores (higher = more alike) and labels (1 genuine, 0 impostor)."""
    s, y = _scores_labels(scores, labels)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # one point per distinct score: accepting everything >= that score
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    return RocCurve(
        thresholds=np.r_[np.inf, s[last]],
        far=np.r_[0.0, fp / (~y).sum()],
        tar=np.r_[0.0, tp / y.sum()],
    )


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> float:
    """TAR (fraction of genuine pairs accepted) at a target false accept rate ``far`` in [0, 1].

    Convention: a pair is accepted when score > t, and t is the (k+1)-th highest impostor
    score with k = floor(far x number of impostors) (the impostor quantile). This is the
    most permissive threshold whose FAR is <= the target, i.e. the best TAR that keeps
    FAR <= far; ties at t are rejected. With fewer than 1/far impostors k = 0 and the TAR is
    that at FAR = 0 (genuine scores above every impostor score).
    """
    return far_operating_point(scores, labels, far)["tar"]


def far_operating_point(scores: np.ndarray, labels: np.ndarray, far: float) -> dict[str, float | int]:
    """The operating point behind :func:`tar_at_far`: ``threshold`` (accept score > threshold;
    -inf when every pair is accepted), ``tar``, the FAR it actually has on these impostors
    (``far_measured`` <= ``far``), and the pair counts."""
    if not 0.0 <= far <= 1.0:
        raise MetricError(f"far must be in [0, 1], got {far}")
    s, y = _scores_labels(scores, labels)
    impostor = np.sort(s[~y])[::-1]
    # 1e-9 absorbs binary rounding such as 0.29 * 100 = 28.999999999999996
    k = int(math.floor(far * impostor.size + 1e-9))
    t = -math.inf if k >= impostor.size else float(impostor[k])
    return {"threshold": t, "tar": float(np.mean(s[y] > t)), "far_target": far,
            "far_measured": float(np.mean(impostor > t)), "n_genuine": int(y.sum()), "n_impostor": int(impostor.size)}


def rank1(
    probe_emb: np.ndarray, probe_ids: Sequence[object], gallery_emb: np.ndarray, gallery_ids: Sequence[object]
) -> float:
    """Rank-1 identification rate in [0, 1]: fraction of probes whose most cosine-similar gallery
    embedding has the probe's identity. Embeddings: (N, D) probes and (M, D) gallery rows."""
    p = np.atleast_2d(np.asarray(probe_emb, np.float64))
    g = np.atleast_2d(np.asarray(gallery_emb, np.float64))
    pid, gid = np.asarray(probe_ids), np.asarray(gallery_ids)
    if p.shape[0] != pid.size or g.shape[0] != gid.size:
        raise MetricError("each embedding row needs exactly one identity label")
    if p.shape[1] != g.shape[1]:
        raise MetricError(f"probe and gallery embeddings differ in size: {p.shape[1]} and {g.shape[1]}")
    if p.shape[0] == 0 or g.shape[0] == 0:
        raise MetricError("rank-1 needs at least one probe and one gallery embedding")
    pn = np.linalg.norm(p, axis=1, keepdims=True)
    gn = np.linalg.norm(g, axis=1, keepdims=True)
    if (pn == 0).any() or (gn == 0).any():
        raise MetricError("cosine similarity of a zero vector is undefined")
    sim = (p / pn) @ (g / gn).T
    return float(np.mean(gid[np.argmax(sim, axis=1)] == pid))


@dataclass(frozen=True)
class VerificationResult:
    """k-fold verification accuracy: ``accuracy`` is the mean over folds, in [0, 1]."""

    accuracy: float
    std: float
    fold_accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]  # the threshold chosen on the other folds, per test fold


def _best_threshold(s: np.ndarray, y: np.ndarray) -> float:
    """Threshold t (accept s >= t) with the highest accuracy on (s, y); midpoints between scores."""
    u = np.unique(s)
    cands = np.r_[u[0] - 1.0, (u[:-1] + u[1:]) / 2, u[-1] + 1.0]
    gen, imp = np.sort(s[y]), np.sort(s[~y])
    accepted_gen = gen.size - np.searchsorted(gen, cands, side="left")
    rejected_imp = np.searchsorted(imp, cands, side="left")
    acc = (accepted_gen + rejected_imp) / s.size
    return float(cands[int(np.argmax(acc))])  # first (lowest) of equally good thresholds


def verification_accuracy_10fold(scores: np.ndarray, labels: np.ndarray, n_folds: int = 10) -> VerificationResult:
    """LFW-style k-fold verification accuracy of similarity scores (1 genuine, 0 impostor).

    Pairs are split into ``n_folds`` contiguous folds in the given order (as LFW's pairs file,
    and scikit-learn's KFold without shuffling); for each fold the threshold that maximises
    accuracy on the other folds (candidates: midpoints between distinct scores; accept
    score >= t) is applied to it. Pass the pairs interleaved or shuffled deterministically.
    """
    s, y = _scores_labels(scores, labels)
    if n_folds < 2 or s.size < n_folds:
        raise MetricError(f"{n_folds}-fold verification needs at least {max(n_folds, 2)} pairs and 2 folds")
    folds = np.array_split(np.arange(s.size), n_folds)
    accs, ths = [], []
    for test in folds:
        train = np.ones(s.size, bool)
        train[test] = False
        t = _best_threshold(s[train], y[train])
        accs.append(float(np.mean((s[test] >= t) == y[test])))
        ths.append(t)
    return VerificationResult(float(np.mean(accs)), float(np.std(accs)), tuple(accs), tuple(ths))


# ---------------------------------------------------------------------------------------------
# Eigenfaces (paper 001's PCA recognition protocol)
# ---------------------------------------------------------------------------------------------


def _grey_matrix(images: Sequence[np.ndarray], what: str) -> np.ndarray:
    """Images (uint8 HWC RGB / HW grey, or float [0,1]) of one size -> (N, H*W) float64 grey [0,255]."""
    rows = []
    for image in images:
        x = _as_float255(image, what)
        if x.ndim == 3:
            # ITU-R BT.601 luma, as PIL's convert("L") (without its rounding)
            x = x[..., 0] if x.shape[2] == 1 else luma(x, method="matmul")
        rows.append(x.ravel())
    if not rows:
        raise MetricError(f"no {what}s given")
    if len({r.size for r in rows}) != 1:
        raise MetricError(f"{what}s must all have the same size")
    return np.stack(rows)


def eigenface_accuracy(
    train_images: Sequence[np.ndarray],
    train_ids: Sequence[object],
    test_images: Sequence[np.ndarray],
    test_ids: Sequence[object],
    k: int = 10,
    classifier: Literal["class_mean", "nearest"] = "class_mean",
) -> float:
    """Eigenface recognition accuracy in [0, 1] (Turk & Pentland 1991; paper 001 uses k = 10).

    Images: uint8 HWC RGB or HW grey (or float [0,1]), all of one size; converted to grey
    (BT.601 luma), flattened, centred on the training mean, and projected onto the top ``k``
    principal components of the training set (SVD). A test image gets the identity at the
    minimum Euclidean distance in that space: to the mean projection of each training
    identity (``class_mean``, Turk & Pentland's face classes and the textbook minimum-distance
    classifier) or to the nearest single training image (``nearest``).
    """
    x_train = _grey_matrix(train_images, "training image")
    x_test = _grey_matrix(test_images, "test image")
    y_train, y_test = np.asarray(train_ids), np.asarray(test_ids)
    if x_train.shape[0] != y_train.size or x_test.shape[0] != y_test.size:
        raise MetricError("each image needs exactly one identity label")
    if x_train.shape[1] != x_test.shape[1]:
        raise MetricError("training and test images must have the same size")
    rank = min(x_train.shape[0] - 1, x_train.shape[1])
    if not 1 <= k <= rank:
        raise MetricError(
            f"k = {k} eigenfaces asked, but {x_train.shape[0]} training images give at most {rank}"
        )
    mean = x_train.mean(axis=0)
    _, _, vt = np.linalg.svd(x_train - mean, full_matrices=False)
    basis = vt[:k].T  # (H*W, k): the eigenfaces
    z_train = (x_train - mean) @ basis
    z_test = (x_test - mean) @ basis
    if classifier == "class_mean":
        labels = np.unique(y_train)
        refs = np.stack([z_train[y_train == c].mean(axis=0) for c in labels])
    elif classifier == "nearest":
        labels, refs = y_train, z_train
    else:
        raise MetricError(f"classifier must be 'class_mean' or 'nearest', got {classifier!r}")
    d2 = ((z_test[:, None, :] - refs[None, :, :]) ** 2).sum(axis=2)
    return float(np.mean(labels[np.argmin(d2, axis=1)] == y_test))


