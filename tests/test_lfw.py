"""LFW verification: the pure ROC/accuracy maths on scores with known answers, the committed
pairs, the identity encoders, and (slow) the accuracy of SFace on our alignment."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from benchmarks import lfw

# ------------------------------------------------------------------------------- maths
# The ROC / TAR / k-fold maths is benchmarks.metrics (tested in test_metrics.py); here: that
# lfw.evaluate feeds it the pairs' own folds and reports what it computes.


def _embed(pairs: list[lfw.Pair], scores: list[float]) -> dict[str, np.ndarray]:
    """Unit 2-d embeddings giving each pair (a, b) cosine = its score (a on the x axis)."""
    emb = {}
    for p, s in zip(pairs, scores):
        emb[p.a] = np.array([1.0, 0.0])
        emb[p.b] = np.array([s, np.sqrt(1.0 - s * s)])
    return emb


def _pairs(same: list[bool], folds: list[int]) -> list[lfw.Pair]:
    return [lfw.Pair(f, s, f"a{i}.jpg", f"b{i}.jpg") for i, (s, f) in enumerate(zip(same, folds))]


def test_evaluate_uses_the_pairs_folds_not_their_order():
    # Folds 0-8 separate at 0.5; fold 9 alone would pick another threshold but is tested with
    # the one from folds 0-8: its pairs at 0.45 (same) and 0.55 (different) both come out wrong.
    same, folds, scores = [], [], []
    for k in range(9):
        same += [True, True, False, False]
        folds += [k] * 4
        scores += [0.6, 0.7, 0.3, 0.4]
    same += [True, True, False, False]
    folds += [9] * 4
    scores += [0.45, 0.9, 0.55, 0.1]
    pairs = _pairs(same, folds)
    order = np.random.default_rng(0).permutation(len(pairs))  # interleave the folds
    shuffled = [pairs[i] for i in order]
    r = lfw.evaluate(shuffled, _embed(pairs, scores))
    assert np.allclose(r["accuracy_per_fold"][:9], 1.0)
    assert r["accuracy_per_fold"][9] == pytest.approx(0.5)
    assert 0.4 < r["threshold_per_fold"][9] <= 0.6
    assert r["accuracy_mean"] == pytest.approx(0.95)


def test_evaluate_separable_and_mann_whitney_auc():
    rng = np.random.default_rng(3)
    n = 200
    same = [True] * (n // 2) + [False] * (n // 2)
    folds = [i % 10 for i in range(n)]
    g = np.round(np.clip(rng.normal(0.6, 0.2, n // 2), -0.99, 0.99), 1)  # rounding makes ties
    i = np.round(np.clip(rng.normal(0.2, 0.2, n // 2), -0.99, 0.99), 1)
    pairs = _pairs(same, folds)
    r = lfw.evaluate(pairs, _embed(pairs, list(g) + list(i)))
    assert r["auc"] == pytest.approx(mannwhitneyu(g, i).statistic / (len(g) * len(i)), abs=1e-9)
    sep = lfw.evaluate(pairs, _embed(pairs, [0.9] * (n // 2) + [0.1] * (n // 2)))
    assert sep["accuracy_mean"] == 1.0 and sep["auc"] == 1.0
    assert sep["tar_at_far_1e-2"] == 1.0 and sep["tar_at_far_1e-3"] == 1.0


def test_evaluate_rejects_unequal_folds():
    pairs = _pairs([True, False, True], [0, 0, 1])
    with pytest.raises(ValueError, match="equal size"):
        lfw.evaluate(pairs, _embed(pairs, [0.9, 0.1, 0.8]))


# ------------------------------------------------------------------------------- pairs


def test_committed_pairs_are_balanced_and_well_formed():
    pairs = lfw.read_pairs()
    assert len(pairs) == 3000
    for k in range(10):
        fold = [p for p in pairs if p.fold == k]
        assert sum(p.same for p in fold) == 150 and sum(not p.same for p in fold) == 150
    for p in pairs:
        same_id = p.a.split("/")[0] == p.b.split("/")[0]
        assert same_id == p.same and p.a != p.b
        assert not p.a.startswith("/") and p.a.endswith(".jpg")
    keys = {frozenset((p.a, p.b)) for p in pairs}
    assert len(keys) == 3000


def test_committed_pairs_regenerate_exactly(data_root):
    labels = lfw.read_labels(data_root)
    assert lfw.format_pairs(lfw.generate_pairs(labels)) == lfw.PAIRS_FILE.read_text()
    assert all((data_root / "lfw" / p.a).is_file() for p in lfw.read_pairs()[:50])


def test_subset_keeps_all_folds_balanced():
    sub = lfw.subset(lfw.read_pairs(), 600)
    assert len(sub) == 600
    assert {p.fold for p in sub} == set(range(10))
    assert sum(p.same for p in sub) == 300


# ------------------------------------------------------------------------------- encoders


@pytest.mark.parametrize("name", ["sface", "dlib"])
def test_identity_encoders_tell_people_apart(data_root, name):
    from benchmarks.judges import IdentityEncoder, identity_encoder
    from facegen import faces as F
    from facegen.images import read_image

    enc = identity_encoder(name)
    assert isinstance(enc, IdentityEncoder) and enc is identity_encoder(name)
    files = [
        "Colin_Powell/Colin_Powell_0001.jpg",
        "Colin_Powell/Colin_Powell_0002.jpg",
        "Serena_Williams/Serena_Williams_0001.jpg",
        "Serena_Williams/Serena_Williams_0002.jpg",
    ]
    crops = []
    for f in files:
        img = read_image(data_root / "lfw" / f)
        crop = enc.crop(img, F.centred_face(F.detect_faces(img), img.shape))
        assert crop.shape == (enc.crop_size, enc.crop_size, 3) and crop.dtype == np.uint8
        crops.append(crop)
    emb = enc.embed(np.stack(crops))
    assert emb.shape == (4, enc.dim) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sim = emb @ emb.T
    assert min(sim[0, 1], sim[2, 3]) > max(sim[0, 2], sim[0, 3], sim[1, 2], sim[1, 3])
    with pytest.raises(ValueError, match="crops"):
        enc.embed(np.zeros((1, 64, 64, 3), np.uint8))


def test_arcface_unavailable_offline_is_a_clear_error(monkeypatch):
    from benchmarks import judges
    from facegen import assets

    monkeypatch.setattr(assets, "arcface_path", lambda: None)
    with pytest.raises(judges.JudgeUnavailableError, match="cannot be downloaded offline"):
        judges.ArcFaceEncoder()
    with pytest.raises(ValueError, match="unknown identity encoder"):
        judges.identity_encoder("vggface")


# ------------------------------------------------------------------------------- end to end


def test_cli_end_to_end_on_a_few_pairs(data_root, tmp_path):
    pairs = lfw.read_pairs()
    few = [p for p in pairs if p.fold in (0, 1)]
    few = [p for p in few if p.same][:4] + [p for p in few if not p.same][:4]
    few = [lfw.Pair(i % 2, p.same, p.a, p.b) for i, p in enumerate(few)]
    pf = tmp_path / "pairs.txt"
    pf.write_text(lfw.format_pairs(few))
    out = tmp_path / "out"
    assert lfw.main(["--data-root", str(data_root), "--pairs", str(pf), "--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / "lfw-sface.json").read_text())
    assert result["n_pairs"] == 8 and result["images_without_face"] == []
    assert 0.0 <= result["accuracy_mean"] <= 1.0 and result["auc"] > 0.9
    assert (out / "lfw-sface-roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # provenance: the commit that computed it, as in the task results
    from benchmarks.leaderboard import git_commit

    assert result["commit"] == git_commit() and result["commit"] != ""
    assert lfw.main(["--data-root", str(tmp_path / "nowhere"), "--pairs", str(pf), "--out", str(out)]) == 1


def test_calibration_fingerprint_ignores_unrelated_metrics(monkeypatch):
    # The calibration is recomputed when the code behind its numbers changes, not when, say, FID does.
    from benchmarks import metrics as M
    from benchmarks import verification

    class Enc:
        pass

    before = lfw.code_fingerprint(Enc())
    monkeypatch.setattr(M, "fid_from_features", lambda a, b: 0.0)
    assert lfw.code_fingerprint(Enc()) == before
    for name in lfw.VERIFICATION_METRICS:
        assert hasattr(verification, name), name
    src = {"tar_at_far": "def tar_at_far(): return 0\n"}
    import inspect

    real = inspect.getsource
    monkeypatch.setattr(lfw.inspect, "getsource", lambda obj: src.get(getattr(obj, "__name__", ""), None) or real(obj))
    assert lfw.code_fingerprint(Enc()) != before


@pytest.mark.slow
def test_sface_lfw_accuracy_on_a_1000_pair_subset(data_root, tmp_path):
    """SFace on our alignment, 1,000 of the committed pairs (50 + 50 per fold, about 1,600 images,
    about 2 minutes on 2 busy CPU cores).

    Measured: 99.10 +- 0.83 % on this subset, 99.20 +- 0.34 % on all 3,000 pairs
    (``python -m benchmarks.lfw``); held to the >= 98.5 % target (at most 15 errors).
    """
    (r,) = lfw.run(data_root, ["sface"], lfw.PAIRS_FILE, tmp_path, limit=1000, progress=False)
    assert r["n_pairs"] == 1000
    assert r["accuracy_mean"] >= 0.985
    assert r["tar_at_far_1e-2"] >= 0.97
    assert r["images_without_face"] == []
