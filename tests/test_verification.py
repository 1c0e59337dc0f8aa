"""benchmarks.verification (identity verification, eigenfaces) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import metrics as M
from benchmarks import verification

# ------------------------------------------------------------------------------ identity


def test_cosine_similarity():
    assert verification.cosine_similarity(np.array([1.0, 2.0]), np.array([2.0, 4.0])) == pytest.approx(1.0)
    assert verification.cosine_similarity(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(0.0)
    assert verification.cosine_similarity(np.array([1.0, 1.0]), np.array([-1.0, -1.0])) == pytest.approx(-1.0)
    a, b = np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 1.0], [0.0, 2.0]])
    np.testing.assert_allclose(verification.cosine_similarities(a, b), [1 / math.sqrt(2), 1 / math.sqrt(2)])
    with pytest.raises(M.MetricError, match="zero vector"):
        verification.cosine_similarity(np.zeros(3), np.ones(3))


def test_roc_curve_interleaved_scores():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 0, 1, 0, 1, 0])
    roc = verification.roc_curve(scores, labels)
    np.testing.assert_allclose(roc.thresholds, [np.inf, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    np.testing.assert_allclose(roc.tar, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(roc.far, [0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    # AUC = P(genuine score > impostor score) = (3 + 2 + 1) / 9
    assert roc.auc == pytest.approx(6 / 9)
    separable = verification.roc_curve(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0]))
    assert separable.auc == pytest.approx(1.0)
    tied = verification.roc_curve(np.array([0.5, 0.5, 0.5]), np.array([1, 0, 1]))
    np.testing.assert_allclose(tied.far, [0, 1])
    np.testing.assert_allclose(tied.tar, [0, 1])


def test_tar_at_far_known_counts():
    rng = np.random.default_rng(0)
    impostor = rng.permutation(np.arange(1000) / 1000)  # 0.000 ... 0.999
    # FAR 1 %: k = 10 impostors may pass, threshold = 11th highest impostor = 0.989 (accept > it).
    genuine = np.r_[np.full(37, 0.995), np.full(5, 0.989), np.full(58, 0.5)]
    scores = np.r_[genuine, impostor]
    labels = np.r_[np.ones(100), np.zeros(1000)]
    assert verification.tar_at_far(scores, labels, 0.01) == pytest.approx(0.37)
    # FAR 0.1 %: k = 1, threshold = 0.998; nothing genuine above it
    assert verification.tar_at_far(scores, labels, 0.001) == 0.0
    # FAR 50 %: threshold = 0.499, every genuine score is above it
    assert verification.tar_at_far(scores, labels, 0.5) == 1.0
    far_at_1pct = np.mean(impostor > 0.989)
    assert far_at_1pct <= 0.01
    # perfectly separable: TAR 1 at any FAR, even 0
    sep_scores = np.r_[rng.uniform(0.6, 1, 50), rng.uniform(0, 0.5, 500)]
    sep_labels = np.r_[np.ones(50), np.zeros(500)]
    assert verification.tar_at_far(sep_scores, sep_labels, 0.0) == 1.0
    assert verification.tar_at_far(sep_scores, sep_labels, 0.01) == 1.0
    with pytest.raises(M.MetricError, match="both genuine"):
        verification.tar_at_far(np.ones(3), np.ones(3), 0.01)


def test_tar_at_far_agrees_with_roc_best_point():
    rng = np.random.default_rng(1)
    scores = np.r_[rng.normal(1, 1, 400), rng.normal(-1, 1, 2000)]
    labels = np.r_[np.ones(400), np.zeros(2000)]
    roc = verification.roc_curve(scores, labels)
    for far in (0.001, 0.01, 0.1):
        assert verification.tar_at_far(scores, labels, far) == pytest.approx(roc.tar[roc.far <= far + 1e-12].max())


def test_rank1():
    gallery = np.eye(3)
    gallery_ids = ["a", "b", "c"]
    probes = np.array([[0.9, 0.1, 0.0], [0.2, 1.0, 0.1], [0.0, 0.3, 0.8], [0.0, 0.9, 0.2]])
    assert verification.rank1(probes, ["a", "b", "c", "c"], gallery, gallery_ids) == pytest.approx(0.75)
    assert verification.rank1(probes[:3], ["a", "b", "c"], gallery, gallery_ids) == 1.0


def test_verification_10fold_known_answers():
    # each fold of 10 pairs: 5 genuine at 1.0, 4 impostors at 0.0, 1 impostor at 1.0 -> best 0.9
    block_s = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 1.0])
    block_y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    res = verification.verification_accuracy_10fold(np.tile(block_s, 10), np.tile(block_y, 10))
    assert res.accuracy == pytest.approx(0.9)
    assert res.std == pytest.approx(0.0)
    assert len(res.fold_accuracies) == 10 and all(0 < t <= 1 for t in res.thresholds)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    s = np.where(y == 1, rng.uniform(0.5, 1, 600), rng.uniform(-1, 0.4, 600))
    assert verification.verification_accuracy_10fold(s, y).accuracy == 1.0


# ------------------------------------------------------------------------------ eigenfaces


def test_eigenfaces_two_separated_clusters():
    rng = np.random.default_rng(0)
    dark = [np.clip(60 + rng.normal(0, 10, (16, 16)), 0, 255).astype(np.uint8) for _ in range(8)]
    light = [np.clip(190 + rng.normal(0, 10, (16, 16)), 0, 255).astype(np.uint8) for _ in range(8)]
    train, ids = dark[:5] + light[:5], [0] * 5 + [1] * 5
    test, test_ids = dark[5:] + light[5:], [0] * 3 + [1] * 3
    assert verification.eigenface_accuracy(train, ids, test, test_ids, k=3) == 1.0
    assert verification.eigenface_accuracy(train, ids, test, [1] * 3 + [0] * 3, k=3) == 0.0
    with pytest.raises(M.MetricError, match="at most 9"):
        verification.eigenface_accuracy(train, ids, test, test_ids, k=10)


def test_eigenfaces_against_explicit_computation():
    # Identities = noisy copies of 4 prototypes; enough noise that some test faces are missed.
    rng = np.random.default_rng(1)
    protos = 128 + rng.uniform(-25, 25, (4, 12, 10))

    def sample(i):
        return np.clip(protos[i] + rng.normal(0, 35, protos[i].shape), 0, 255).astype(np.uint8)

    train_ids = [i for i in range(4) for _ in range(5)]
    test_ids = [i for i in range(4) for _ in range(10)]
    train = [sample(i) for i in train_ids]
    test = [sample(i) for i in test_ids]
    k = 6
    # explicit: eigenvectors of the scatter matrix (eigh, not SVD), then loops
    x = np.stack([t.ravel().astype(float) for t in train])
    mean = x.mean(0)
    w, v = np.linalg.eigh((x - mean).T @ (x - mean))
    basis = v[:, np.argsort(w)[::-1][:k]]
    z_train = (x - mean) @ basis
    z_test = [(t.ravel().astype(float) - mean) @ basis for t in test]
    class_means = {c: z_train[np.array(train_ids) == c].mean(0) for c in range(4)}
    pred_mean = [min(class_means, key=lambda c: np.sum((z - class_means[c]) ** 2)) for z in z_test]
    pred_nn = [train_ids[int(np.argmin([np.sum((z - r) ** 2) for r in z_train]))] for z in z_test]
    expected_mean = np.mean(np.array(pred_mean) == test_ids)
    expected_nn = np.mean(np.array(pred_nn) == test_ids)
    assert 0.3 < expected_mean < 1.0 and 0.3 < expected_nn < 1.0
    assert verification.eigenface_accuracy(train, train_ids, test, test_ids, k=k) == pytest.approx(expected_mean)
    nearest = verification.eigenface_accuracy(train, train_ids, test, test_ids, k=k, classifier="nearest")
    assert nearest == pytest.approx(expected_nn)
    # RGB input is reduced to BT.601 grey: grey replicated into 3 channels gives the same answer
    rgb = [np.repeat(t[..., None], 3, axis=2) for t in train]
    assert verification.eigenface_accuracy(rgb, train_ids, test, test_ids, k=k) == pytest.approx(expected_mean)


