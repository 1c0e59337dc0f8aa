"""LFW verification: the pure ROC/accuracy maths on scores with known answers, the committed
pairs, the identity encoders, and (slow) the accuracy of SFace on our alignment."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from benchmarks import lfw

# ------------------------------------------------------------------------------- maths


def test_hand_computed_roc():
    # genuine 0.9 0.8 0.4; impostor 0.7 0.3 0.2 0.1
    s = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1])
    y = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    r = lfw.roc(s, y)
    assert np.allclose(r.far, [0, 0, 0, 0.25, 0.25, 0.5, 0.75, 1.0])
    assert np.allclose(r.tar, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1, 1])
    assert lfw.tar_at_far(s, y, 0.0) == pytest.approx(2 / 3)
    assert lfw.tar_at_far(s, y, 0.24) == pytest.approx(2 / 3)
    assert lfw.tar_at_far(s, y, 0.25) == pytest.approx(1.0)
    # P(genuine > impostor): 4 + 4 + 3 of 12 pairs
    assert lfw.auc(s, y) == pytest.approx(11 / 12)
    # best single threshold: accept >= 0.4..0.7 gives 6/7 right (only 0.7 wrong)
    thr = lfw.best_threshold(s, y)
    assert 0.3 < thr <= 0.4
    assert lfw.accuracy_at(s, y, thr) == pytest.approx(6 / 7)


def test_separable_and_uninformative_scores():
    y = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    s = np.r_[np.linspace(0.6, 1.0, 50), np.linspace(-1.0, 0.5, 50)]
    assert lfw.auc(s, y) == 1.0 and lfw.tar_at_far(s, y, 0.0) == 1.0
    assert lfw.accuracy_at(s, y, lfw.best_threshold(s, y)) == 1.0
    tied = np.zeros(100)
    assert lfw.auc(tied, y) == pytest.approx(0.5)
    assert lfw.tar_at_far(tied, y, 0.5) == 0.0  # accepting anything accepts every impostor
    assert lfw.accuracy_at(tied, y, lfw.best_threshold(tied, y)) == pytest.approx(0.5)
    reversed_ = -s
    assert lfw.auc(reversed_, y) == 0.0


def test_auc_equals_mann_whitney_with_ties():
    rng = np.random.default_rng(3)
    g = np.round(rng.normal(1.0, 1.0, 300), 1)  # rounding makes many ties
    i = np.round(rng.normal(0.0, 1.0, 500), 1)
    s, y = np.r_[g, i], np.r_[np.ones(300, bool), np.zeros(500, bool)]
    u = mannwhitneyu(g, i).statistic
    assert lfw.auc(s, y) == pytest.approx(u / (300 * 500), abs=1e-12)


def test_tar_at_far_against_brute_force():
    rng = np.random.default_rng(4)
    s = np.r_[rng.normal(2, 1, 400), rng.normal(0, 1, 1000)]
    y = np.r_[np.ones(400, bool), np.zeros(1000, bool)]
    for far in (0.001, 0.01, 0.1):
        best = 0.0
        for t in np.unique(s):
            if np.mean(s[~y] >= t) <= far:
                best = max(best, np.mean(s[y] >= t))
        assert lfw.tar_at_far(s, y, far) == pytest.approx(best)


def test_best_threshold_against_brute_force():
    rng = np.random.default_rng(5)
    s = np.r_[rng.normal(1, 1, 70), rng.normal(0, 1, 90)]
    y = np.r_[np.ones(70, bool), np.zeros(90, bool)]
    brute = max(np.mean((s >= t) == y) for t in np.r_[np.unique(s), np.inf])
    assert lfw.accuracy_at(s, y, lfw.best_threshold(s, y)) == pytest.approx(brute)


def test_kfold_threshold_comes_from_the_other_folds():
    # Folds 0-8 are separated at 0.5; fold 9 alone would pick another threshold, but is
    # tested with 0.5: its pairs at 0.45 (same) and 0.55 (different) both come out wrong.
    s, y, f = [], [], []
    for k in range(9):
        s += [0.6, 0.7, 0.3, 0.4]
        y += [1, 1, 0, 0]
        f += [k] * 4
    s += [0.45, 0.9, 0.55, 0.1]
    y += [1, 1, 0, 0]
    f += [9] * 4
    accs, thrs = lfw.kfold_accuracy(np.array(s), np.array(y), np.array(f))
    assert len(accs) == 10
    assert np.allclose(accs[:9], 1.0)
    assert 0.4 < thrs[9] <= 0.6 and accs[9] == pytest.approx(0.5)


def test_maths_rejects_bad_input():
    with pytest.raises(ValueError):
        lfw.roc(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ValueError):
        lfw.auc(np.array([0.1, np.nan]), np.array([1, 0]))
    with pytest.raises(ValueError):
        lfw.kfold_accuracy(np.array([0.1, 0.2]), np.array([1, 0]), np.array([0, 0]))


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
    assert lfw.main(["--data-root", str(tmp_path / "nowhere"), "--pairs", str(pf), "--out", str(out)]) == 1


@pytest.mark.slow
def test_sface_lfw_accuracy_on_a_1000_pair_subset(data_root, tmp_path):
    """SFace on our alignment, 1,000 of the committed pairs (50 + 50 per fold, about 1,600 images,
    about 2 minutes on 2 busy CPU cores).

    Measured: 99.10 +- 0.83 % on this subset, 99.20 +- 0.34 % on all 3,000 pairs
    (``python -m benchmarks.lfw``); held to the >= 98.5 % target (at most 15 errors).
    """
    r = lfw.run(data_root, "sface", lfw.PAIRS_FILE, tmp_path, limit=1000, progress=False)
    assert r["n_pairs"] == 1000
    assert r["accuracy_mean"] >= 0.985
    assert r["tar_at_far_1e-2"] >= 0.97
    assert r["images_without_face"] == []
