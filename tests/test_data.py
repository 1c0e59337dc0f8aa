"""facegen.data: readers, labels, splits, pairs, crop cache, layouts (degradations and SR pairs: test_degrade.py)."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegen.data import (
    EXPRESSIONS,
    TEST_SUBJECTS,
    CacheError,
    DataRootError,
    FaceRecord,
    LayoutError,
    SplitError,
    UnknownLabelError,
    aligned_crops,
    data_root,
    datasets_for,
    expression_index,
    iter_pairs,
    load_image,
    normalise_expression,
    read,
    read_celeba,
    read_ckplus,
    read_ffhq,
    read_image_folder,
    read_lfw_expressions,
    read_pairs,
    split,
    split_pairs,
    task_pairs,
)
from facegen.data.splits import JAFFE_TEST_SUBJECTS, RAFD_TEST_SUBJECTS


def _h(items: list[str]) -> str:
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------
# data root


def test_data_root_from_flag_and_env(tmp_path, monkeypatch):
    for name in ("jaffe", "lfw"):
        (tmp_path / name).mkdir()
    monkeypatch.delenv("FACEGEN_DATA", raising=False)
    assert data_root(tmp_path, require=("jaffe", "lfw")) == tmp_path.resolve()
    monkeypatch.setenv("FACEGEN_DATA", str(tmp_path))
    assert data_root(None, require=("jaffe",)) == tmp_path.resolve()
    # the flag wins over the environment
    other = tmp_path / "other"
    (other / "jaffe").mkdir(parents=True)
    assert data_root(other, require=("jaffe",)) == other.resolve()


def test_data_root_errors_are_sentences(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEGEN_DATA", raising=False)
    with pytest.raises(DataRootError, match="FACEGEN_DATA"):
        data_root()
    (tmp_path / "jaffe").mkdir()
    with pytest.raises(DataRootError, match=r"lacks the folder\(s\) rafd_subset/.*FACEGEN_DATA"):
        data_root(tmp_path, require=("jaffe", "rafd_subset"))
    with pytest.raises(DataRootError, match="lacks the folder"):
        data_root(tmp_path)  # default: every shared set
    with pytest.raises(DataRootError, match="is not a folder"):
        data_root(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------
# labels


def test_label_vocabulary_and_aliases():
    assert EXPRESSIONS == ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt")
    cases = {
        "happiness": "happy", "HA": "happy", "sadness": "sad", "anger": "angry", "fearful": "fear",
        "surprised": "surprise", "disgusted": "disgust", "contemptuous": "contempt", "Neutral": "neutral",
    }
    for name, want in cases.items():
        assert normalise_expression(name) == want
    assert expression_index("anger") == 6
    with pytest.raises(UnknownLabelError, match="not known"):
        normalise_expression("bored")


# ------------------------------------------------------------------------------------------
# readers of the shared sets

COUNTS = {  # images, subjects
    "jaffe": (213, 10),
    "rafd_subset": (117, 39),
    "ckplus48": (981, 118),
    "lfw": (13233, 5749),
    "lfw_expressions": (13683, 5619),
    "celeba_fsrnet": (1000, 1000),
    "fer2013_partial": (1167, 1167),
    "att_orl": (400, 40),
}
SHAPES = {
    "jaffe": (256, 256, 3),
    "rafd_subset": (1024, 681, 3),
    "ckplus48": (48, 48, 3),
    "lfw": (250, 250, 3),
    "celeba_fsrnet": (128, 128, 3),
    "fer2013_partial": (48, 48, 3),
    "att_orl": (28, 23, 3),
}
GREY = {"jaffe", "rafd_subset", "ckplus48", "lfw", "fer2013_partial", "att_orl"}


@pytest.mark.parametrize("dataset", sorted(COUNTS))
def test_reader_counts_labels_and_loader(data_root, dataset):
    records = read(dataset, data_root)
    n, subjects = COUNTS[dataset]
    assert len(records) == n
    assert len({r.subject for r in records}) == subjects
    assert len({r.key for r in records}) == n  # keys are unique
    assert all(r.dataset == dataset for r in records)
    assert all(r.expression is None or r.expression in EXPRESSIONS for r in records)
    img = load_image(records[0])
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    if dataset in SHAPES:
        assert img.shape == SHAPES[dataset]
    if dataset in GREY:
        assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 0], img[..., 2])


def test_label_counts_follow_the_mapping(data_root):
    jaffe = Counter(r.expression for r in read("jaffe", data_root))
    assert jaffe == {"fear": 32, "happy": 31, "sad": 31, "angry": 30, "neutral": 30, "surprise": 30, "disgust": 29}
    ck = Counter(r.expression for r in read("ckplus48", data_root))
    assert ck == {"surprise": 249, "happy": 207, "disgust": 177, "angry": 135, "sad": 84, "fear": 75, "contempt": 54}
    rafd = Counter(r.expression for r in read("rafd_subset", data_root))
    assert rafd == {"neutral": 39, "happy": 39, "fear": 39}
    lfwx = Counter(r.expression for r in read("lfw_expressions", data_root))
    assert lfwx == {
        "neutral": 6864, "happy": 5694, "surprise": 368, "sad": 267, "angry": 252, "disgust": 208,
        "fear": 21, "contempt": 9,
    }
    assert len(read_lfw_expressions(data_root, include_other=False)) == 12759
    assert all(r.expression is None for r in read("lfw", data_root))


def test_fer_rows_decode_to_48x48(data_root):
    records = read("fer2013_partial", data_root)
    first = load_image(records[0])
    assert first.shape == (48, 48, 3)
    # the first values of the first row of fer2013.csv: "70 80 82 72 58 ..."
    assert first[0, :5, 0].tolist() == [70, 80, 82, 72, 58]
    assert records[0].expression == "angry" and records[2].expression == "fear"
    assert Counter(r.expression for r in records)["happy"] == 272


def test_pairs(data_root):
    jaffe = read_pairs("jaffe", data_root)
    rafd = read_pairs("rafd_subset", data_root)
    assert len(jaffe) == 549 and len(rafd) == 78
    for p in jaffe + rafd:
        assert p.neutral.expression == "neutral" and p.expression != "neutral"
        assert p.neutral.subject == p.target.subject == p.subject
    assert Counter(p.expression for p in rafd) == {"happy": 39, "fear": 39}
    happy = list(iter_pairs("jaffe", data_root, expressions=["happiness"], subjects={"KA"}))
    assert happy and all(p.expression == "happy" and p.subject == "KA" for p in happy)


# ------------------------------------------------------------------------------------------
# splits


def test_test_subject_lists_are_pinned():
    assert JAFFE_TEST_SUBJECTS == ("KR", "NA", "YM")
    assert RAFD_TEST_SUBJECTS == ("04", "07", "14", "20", "22", "28", "31", "38", "49", "57")
    for (dataset, _task), subjects in TEST_SUBJECTS.items():
        assert subjects == (JAFFE_TEST_SUBJECTS if dataset == "jaffe" else RAFD_TEST_SUBJECTS)


PINNED = {  # sha256[:16] of the test record keys, in order; counts
    ("jaffe", "smile"): ("a0519d771f4b28cd", 44, 17),
    ("rafd_subset", "smile"): ("021675472c1de14d", 58, 20),
    ("jaffe", "expression"): ("b14bff451b8c789a", 150, 63),
    ("rafd_subset", "expression"): ("75b4717843fb2d57", 87, 30),
    ("jaffe", "judge"): ("b14bff451b8c789a", 150, 63),
    ("rafd_subset", "judge"): ("75b4717843fb2d57", 87, 30),
}


@pytest.mark.parametrize("dataset,task", sorted(PINNED))
def test_splits_are_subject_disjoint_and_stable(data_root, dataset, task):
    first = split(dataset, task, data_root)
    again = split(dataset, task, data_root)
    assert [r.key for r in first.test] == [r.key for r in again.test]
    train_subjects = {r.subject for r in first.train}
    test_subjects = {r.subject for r in first.test}
    assert not train_subjects & test_subjects
    assert test_subjects == set(TEST_SUBJECTS[dataset, task])
    digest, n_train, n_test = PINNED[dataset, task]
    assert (_h([r.key for r in first.test]), len(first.train), len(first.test)) == (digest, n_train, n_test)


def test_task_pairs_counts_and_disjointness(data_root):
    smile = task_pairs("smile", data_root)
    expr = task_pairs("expression", data_root)
    assert (len(smile.train), len(smile.test)) == (98, 34)
    assert (len(expr.train), len(expr.test)) == (445, 182)
    assert _h([f"{p.neutral.key}>{p.target.key}" for p in smile.test]) == "9a74e59eeab12677"
    assert _h([f"{p.neutral.key}>{p.target.key}" for p in expr.test]) == "e1933223af8f9396"
    assert {p.expression for p in smile.test} == {"happy"}
    assert {p.expression for p in split_pairs("rafd_subset", "expression", data_root).test} == {"happy", "fear"}
    assert len({p.expression for p in split_pairs("jaffe", "expression", data_root).test}) == 6
    for part in (smile, expr):
        assert not {p.subject for p in part.train} & {p.subject for p in part.test}


def test_training_sets_exclude_test_subjects(data_root):
    held_out = {("jaffe", s) for s in JAFFE_TEST_SUBJECTS} | {("rafd_subset", s) for s in RAFD_TEST_SUBJECTS}
    for dataset in datasets_for("judge"):
        for r in split(dataset, "judge", data_root).train:
            assert (r.dataset, r.subject) not in held_out
    sr = {d: split(d, "sr", data_root) for d in datasets_for("sr")}
    assert len(sr["celeba_fsrnet"].test) == 1000 and not sr["celeba_fsrnet"].train
    assert len(sr["lfw"].train) == 13233 and not sr["lfw"].test
    assert len(sr["lfw_expressions"].train) == 924
    for dataset in ("jaffe", "rafd_subset"):  # SR trains on the training subjects of every expression
        assert sr[dataset].train and all((dataset, r.subject) not in held_out for r in sr[dataset].train)
        assert len(sr[dataset].train) + len(sr[dataset].test) == len(split(dataset, "judge", data_root).train
                                                                      + split(dataset, "judge", data_root).test)


def test_split_refuses_unknown_combinations():
    with pytest.raises(SplitError, match="No split of 'att_orl'"):
        split("att_orl", "smile")
    with pytest.raises(SplitError, match="Unknown task"):
        datasets_for("colourise")


# ------------------------------------------------------------------------------------------
# aligned-crop cache


def _write_png(path: Path, value: int, size=(40, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


class FakeAligner:
    """Centre-crops and resizes; 'no face' for images whose first pixel is 0."""

    cache_id = "fake/v1"

    def __init__(self):
        self.calls = 0

    def __call__(self, image, record, size, template):
        self.calls += 1
        if image[0, 0, 0] == 0:
            return None
        return np.asarray(Image.fromarray(image).resize((size, size)))


def test_aligned_crop_cache_runs_once_and_counts_skips(tmp_path):
    for i in range(5):
        _write_png(tmp_path / "imgs" / f"{i}.png", 0 if i == 2 else 10 * (i + 1))
    records = read_image_folder(tmp_path / "imgs", dataset="toy")
    aligner = FakeAligner()
    cache = tmp_path / "cache"
    crops = aligned_crops(records, 16, "celeba", cache_root=cache, aligner=aligner, progress=False)
    assert aligner.calls == 5
    assert crops.images.shape == (4, 16, 16, 3) and crops.images.dtype == np.uint8
    assert crops.skipped == ("toy:2.png",) and len(crops) == 4
    assert crops.keys == ("toy:0.png", "toy:1.png", "toy:3.png", "toy:4.png")
    assert int(crops.images[crops.index_of("toy:3.png")][0, 0, 0]) == 40
    assert np.isnan(crops.matrices).all()  # a plain-array aligner gives no transform

    again = aligned_crops(records, 16, "celeba", cache_root=cache, aligner=aligner, progress=False)
    assert aligner.calls == 5  # read from the cache: no second alignment
    assert np.array_equal(np.asarray(again.images), np.asarray(crops.images)) and again.path == crops.path
    assert again.path.name.startswith("toy-celeba-16-")
    # another size, template or record list is another entry
    aligned_crops(records, 8, "celeba", cache_root=cache, aligner=aligner, progress=False)
    aligned_crops(records[:3], 16, "celeba", cache_root=cache, aligner=aligner, progress=False)
    assert aligner.calls == 5 + 5 + 3
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 3 and not any(n.startswith(".") for n in entries)  # no temporaries left


def test_aligned_crop_cache_rejects_bad_aligner_output(tmp_path):
    _write_png(tmp_path / "imgs" / "a.png", 50)
    records = read_image_folder(tmp_path / "imgs")
    with pytest.raises(CacheError, match="expected uint8"):
        aligned_crops(records, 16, cache_root=tmp_path / "c", aligner=lambda im, r, s, t: im, progress=False)
    assert not any((tmp_path / "c").iterdir())


def test_aligned_crops_with_the_real_aligner(data_root, tmp_path):
    pytest.importorskip("facegen.faces")
    from facegen.data.cache import FaceAligner

    jaffe = read("jaffe", data_root)[:2]
    # Alex_Sink_0001 shows two people; the larger face (centre ~(204, 90)) is not the subject,
    # the labelled one is centred (~(125, 131)) as LFW centres its subject.
    sink = [r for r in read("lfw", data_root) if r.path == "lfw/Alex_Sink/Alex_Sink_0001.jpg"]
    crops = aligned_crops(jaffe + sink, 64, "celeba", cache_root=tmp_path, aligner=FaceAligner(), progress=False)
    assert crops.images.shape == (3, 64, 64, 3) and not crops.skipped
    assert np.isfinite(crops.matrices).all()
    from facegen.faces import align, detect

    photo = load_image(sink[0])
    faces = detect(photo)
    assert len(faces) >= 2
    centred = min(faces, key=lambda f: (f.centre[0] - 124.5) ** 2 + (f.centre[1] - 124.5) ** 2)
    assert centred is not faces[0]  # the largest face is not the subject here
    assert np.array_equal(crops.images[2], align(photo, centred, 64, "celeba").image)
    assert not np.array_equal(crops.images[2], align(photo, faces[0], 64, "celeba").image)
    # JAFFE images hold one face: eyes of the crop are level and the face fills the crop centre
    for i in range(2):
        assert crops.images[i].std() > 10


# ------------------------------------------------------------------------------------------
# public layouts


def test_image_folder_layout(tmp_path):
    _write_png(tmp_path / "alice" / "1.png", 10)
    _write_png(tmp_path / "alice" / "deep" / "2.jpg", 20)
    _write_png(tmp_path / "loose.png", 30)
    (tmp_path / "notes.txt").write_text("not an image")
    records = read_image_folder(tmp_path)
    assert [r.path for r in records] == ["alice/1.png", "alice/deep/2.jpg", "loose.png"]
    assert [r.subject for r in records] == ["alice", "alice", "loose"]
    assert load_image(records[0]).shape == (40, 40, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="holds no images"):
        read_image_folder(tmp_path / "empty")


def test_celeba_layout(tmp_path):
    for i in range(1, 5):
        _write_png(tmp_path / "img_align_celeba" / f"{i:06d}.jpg", 40 * i, size=(178, 218))
    (tmp_path / "Eval").mkdir()
    (tmp_path / "Eval" / "list_eval_partition.txt").write_text(
        "000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n"
    )
    (tmp_path / "identity_CelebA.txt").write_text("000001.jpg 7\n000002.jpg 7\n000003.jpg 9\n000004.jpg 11\n")
    allr = read_celeba(tmp_path)
    assert len(allr) == 4 and [r.get("partition") for r in allr] == ["train", "train", "val", "test"]
    assert [r.subject for r in read_celeba(tmp_path, "train")] == ["7", "7"]
    test = read_celeba(tmp_path, "test")
    assert [r.path for r in test] == ["img_align_celeba/000004.jpg"]
    assert load_image(test[0]).shape == (218, 178, 3)
    (tmp_path / "Eval" / "list_eval_partition.txt").write_text("000001.jpg 5\n")
    with pytest.raises(LayoutError, match="line 1"):
        read_celeba(tmp_path)


def test_ffhq_layouts(tmp_path):
    official = tmp_path / "official"
    for n in (0, 1, 1000):
        _write_png(official / "images1024x1024" / f"{n // 1000 * 1000:05d}" / f"{n:05d}.png", 100)
    _write_png(official / "thumbnails128x128" / "00000" / "00000.png", 100)  # ignored
    records = read_ffhq(official)
    assert [r.path for r in records] == [
        "images1024x1024/00000/00000.png", "images1024x1024/00000/00001.png", "images1024x1024/01000/01000.png",
    ]
    flat = tmp_path / "flat"
    for n in (10, 2):
        _write_png(flat / f"{n:05d}.png", 100)
    assert [r.subject for r in read_ffhq(flat)] == ["00002", "00010"]


def test_ckplus_layout(tmp_path):
    seq = tmp_path / "cohn-kanade-images" / "S005" / "001"
    for f in range(1, 12):
        _write_png(seq / f"S005_001_{f:08d}.png", 10 * f)
    emo = tmp_path / "Emotion" / "S005" / "001"
    emo.mkdir(parents=True)
    (emo / "S005_001_00000011_emotion.txt").write_text("   3.0000000e+00\n")
    # an unlabelled sequence is left out
    _write_png(tmp_path / "cohn-kanade-images" / "S010" / "002" / "S010_002_00000001.png", 5)
    records = read_ckplus(tmp_path)
    assert [(r.path, r.expression, r.get("frame")) for r in records] == [
        ("cohn-kanade-images/S005/001/S005_001_00000001.png", "neutral", "1"),
        ("cohn-kanade-images/S005/001/S005_001_00000011.png", "disgust", "11"),
    ]
    assert all(r.subject == "S005" for r in records)
    assert [r.expression for r in read_ckplus(tmp_path, include_neutral=False)] == ["disgust"]
    assert load_image(records[1])[0, 0, 0] == 110
    (emo / "S005_001_00000011_emotion.txt").write_text("9.0\n")
    with pytest.raises(LayoutError, match="outside 0..7"):
        read_ckplus(tmp_path)


def test_records_survive_moving_the_root(tmp_path):
    a = FaceRecord(dataset="x", subject="s", path="p.png", root=tmp_path)
    b = FaceRecord(dataset="x", subject="s", path="p.png", root=tmp_path / "elsewhere")
    assert a == b and hash(a) == hash(b) and a.key == "x:p.png"
