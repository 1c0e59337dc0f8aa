"""The fast LFW calibration: the detection cache (its key, an exact round trip), the shared
single pass over several encoders, and dlib's batched descriptors in worker processes, which
must equal the one-at-a-time descriptors the calibration used to compute."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from benchmarks import dlib_pool, lfw, lfw_detect
from facegen import faces as F

FIVE = [
    "Colin_Powell/Colin_Powell_0001.jpg",
    "Colin_Powell/Colin_Powell_0002.jpg",
    "Serena_Williams/Serena_Williams_0001.jpg",
    "Serena_Williams/Serena_Williams_0002.jpg",
    "George_W_Bush/George_W_Bush_0001.jpg",
]


def test_cache_key_follows_the_image_list_and_the_detector():
    names = ["a/a_0001.jpg", "b/b_0001.jpg"]
    key = lfw_detect.cache_key(names, "yunet v1")
    assert key == lfw_detect.cache_key(list(names), "yunet v1") and len(key) == 16
    assert key != lfw_detect.cache_key(names[::-1], "yunet v1")  # the faces are stored in list order
    assert key != lfw_detect.cache_key(names[:1], "yunet v1")
    assert key != lfw_detect.cache_key(["a/a_0001.jpgb/b_0001.jpg"], "yunet v1")  # names are separated
    assert key != lfw_detect.cache_key(names, "yunet v2")
    version = lfw_detect.detector_version()
    assert "sha256 49f000ec501f" in version and "opencv" in version


def test_saved_faces_load_back_exactly_and_only_for_their_list(tmp_path):
    points = np.random.default_rng(0).random((5, 2), np.float32) * 250
    faces = [
        F.Face(box=(10.123456789, 20.5, 100.0, 120.25), score=0.91, points=points),
        F.Face(box=(62.5, 62.5, 125.0, 125.0), score=0.0, points=lfw_detect.LFW_MEAN_POINTS.copy()),
    ]
    names = ["x/x_0001.jpg", "y/y_0001.jpg"]
    path = tmp_path / "faces.npz"
    lfw_detect.save_faces(path, names, faces, [lfw_detect.FOUND, lfw_detect.FALLBACK])
    got, status = lfw_detect.load_faces(path, names)
    assert status == [lfw_detect.FOUND, lfw_detect.FALLBACK]
    for f, g in zip(faces, got):
        assert g.box == f.box and g.score == f.score and g.points.dtype == np.float32
        assert np.array_equal(g.points, f.points)
    assert lfw_detect.load_faces(path, names[::-1]) is None
    assert lfw_detect.load_faces(tmp_path / "absent.npz", names) is None


def test_subject_face_falls_back_to_the_mean_lfw_face_on_a_blank_image():
    img = np.full((500, 500, 3), 128, np.uint8)
    face, how = lfw_detect.subject_face(img)
    assert how == lfw_detect.FALLBACK and face.score == 0.0
    assert face.box == (125.0, 125.0, 250.0, 250.0)
    assert np.allclose(face.points, lfw_detect.LFW_MEAN_POINTS * 2)


def test_dlib_pool_rejects_zero_workers():
    with pytest.raises(ValueError, match="at least one worker"):
        dlib_pool.DescriptorPool("unused.dat", 0)


def _five(data_root):
    from facegen.images import read_image

    images = [read_image(data_root / "lfw" / n) for n in FIVE]
    return images, [lfw_detect.subject_face(img)[0] for img in images]


def test_batched_dlib_descriptors_equal_one_at_a_time(data_root):
    from benchmarks.judges import identity_encoder
    from facegen import assets

    enc = identity_encoder("dlib")
    images, faces = _five(data_root)
    chips = np.stack([enc.crop(img, f) for img, f in zip(images, faces)])
    one = np.concatenate([enc.embed(c[None]) for c in chips])  # what the calibration computed before
    batch = enc.embed(chips)
    with dlib_pool.DescriptorPool(assets.path("dlib_resnet"), 2) as pool:
        desc, cpu = pool.descriptors(chips)
    assert desc.shape == (5, 128) and desc.dtype == np.float32 and cpu > 0
    from benchmarks.judges import l2_normalise

    assert np.abs(batch - one).max() <= 1e-6
    assert np.abs(l2_normalise(desc) - one).max() <= 1e-6


def test_one_pass_embeds_like_each_encoder_alone_and_caches_the_faces(data_root, tmp_path, monkeypatch):
    from benchmarks.judges import identity_encoder

    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    encoders = [identity_encoder("sface"), identity_encoder("dlib")]
    images, faces = _five(data_root)
    subjects, embedded = lfw.embed_images(FIVE, data_root / "lfw", encoders, threads=2, progress=False)
    assert not subjects.cached and subjects.low_score == [] and subjects.fallback == []
    assert lfw_detect.cache_file(FIVE).is_file()
    for enc, emb in zip(encoders, embedded):
        for img, face, name in zip(images, faces, FIVE):
            want = enc.embed(enc.crop(img, face)[None])[0]
            assert np.abs(emb.embeddings[name] - want).max() <= 1e-6
    again, embedded2 = lfw.embed_images(FIVE, data_root / "lfw", encoders[:1], threads=1, progress=False)
    assert again.cached
    for name in FIVE:
        assert np.array_equal(embedded2[0].embeddings[name], embedded[0].embeddings[name])


def test_calibrate_rescores_only_the_stale_encoders_together(tmp_path, monkeypatch):
    from benchmarks.judges import identity_encoder

    pairs = lfw.read_pairs()
    sface = identity_encoder("sface")
    fresh = {"pairs_sha256": hashlib.sha256(lfw.PAIRS_FILE.read_bytes()).hexdigest(),
             "encoder_version": sface.version, "code_sha256": lfw.code_fingerprint(sface), "n_pairs": len(pairs),
             "encoder": "sface"}
    (tmp_path / "lfw-sface.json").write_text(json.dumps(fresh))
    (tmp_path / "lfw-sface-roc.png").write_bytes(b"png")
    asked = []

    def fake_run(root, names, pairs_file, out_dir, **kw):
        asked.append(list(names))
        return [{"encoder": n} for n in names]

    monkeypatch.setattr(lfw, "run", fake_run)
    got = lfw.calibrate(tmp_path, ["sface", "dlib"], tmp_path)
    assert asked == [["dlib"]]
    assert got == [(fresh, False), ({"encoder": "dlib"}, True)]
    (tmp_path / "lfw-sface-roc.png").unlink()  # a missing plot makes it stale too
    lfw.calibrate(tmp_path, ["sface", "dlib"], tmp_path)
    assert asked[-1] == ["sface", "dlib"]


def test_dlib_chip_at_the_images_own_landmarks_is_the_encoders_crop(data_root):
    """The SR leaderboard's dlib judge cuts outputs at the ground truth's landmarks (benchmarks.judges.dlib_chip);
    at an image's own landmarks that is exactly the encoder's crop, which the LFW calibration measured."""
    from benchmarks.judges import dlib_chip, identity_encoder
    from facegen import faces as F

    enc = identity_encoder("dlib")
    images, faces = _five(data_root)
    for img, f in zip(images[:2], faces[:2]):
        assert np.array_equal(dlib_chip(enc, img, f, F.landmarks68(img, f)), enc.crop(img, f))
