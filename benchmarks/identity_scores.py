"""Identity verification of a row: the LFW distractors shared by every task, and the verification
metrics (mean genuine cosine, TAR at fixed FAR, Rank-1) of one encoder's embeddings.

Genuine pairs are (output, its reference face): the ground truth on the paired tasks, the neutral
photo the input was made from on ``smile-wild``. Impostor pairs are (output, the reference of every
other test subject) and (output, each LFW distractor that is not a photo of a test subject). The
same function serves SFace and dlib, so the two judges' columns follow one protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Collection

import numpy as np

from benchmarks import judges as J
from benchmarks import verification
from benchmarks.cache import cache_root, load_npz, save_npz
from benchmarks.testsets import progress_bar
from facegen import faces as F
from facegen.data.records import FaceRecord, load_image
from facegen.data.sets import read_lfw

DISTRACTORS = 1000  # LFW faces added to every identity gallery and impostor set
TAR_COLUMNS = {"tar_far1": 0.01, "tar_far01": 0.001}  # column -> nominal FAR
THRESHOLD_SOURCE = ("this row's own impostor pairs on this task (output vs the reference face of every other subject, "
                    "and vs the LFW distractors): accept cosine > the (floor(FAR x impostors) + 1)-th highest impostor "
                    "score; not SFace's LFW-calibrated threshold, which admits more impostors on other photo collections")


def distractor_records(root: Path) -> list[FaceRecord]:
    """The DISTRACTORS LFW photos (a seeded choice, in file order)."""
    records = read_lfw(root)
    pick = np.random.default_rng(0).choice(len(records), size=min(DISTRACTORS, len(records)), replace=False)
    return [records[i] for i in sorted(pick)]


def distractor_embeddings(root: Path, encoder: J.IdentityEncoder) -> tuple[np.ndarray, np.ndarray]:
    """``encoder`` embeddings of DISTRACTORS LFW faces (a seeded choice; the face nearest each
    photo's centre) and the LFW identity of each, cached: every task's identity gallery and impostor
    set share them. dlib's chips are cut at the 68 landmarks found on the photo and embedded in
    one batch (the same descriptors as one at a time)."""
    path = cache_root() / f"lfw-distractors-{encoder.name}-{DISTRACTORS}.npz"
    cached = load_npz(path)
    if cached is not None and "subjects" in cached:
        return cached["e"], cached["subjects"].astype(str)
    crops, subjects, embs = [], [], []
    for r in progress_bar(iterable=distractor_records(root), desc=f"LFW distractors ({encoder.name})"):
        img = load_image(r, root)
        fs = F.detect(img)
        if not fs:
            continue
        crop = encoder.crop(img, F.centred_face(fs, img.shape))
        subjects.append(r.subject)
        if isinstance(encoder, J.DlibResNetEncoder):
            crops.append(crop)
        else:  # SFace one crop at a time, as the committed distractor numbers were made
            embs.append(encoder.embed(crop[None])[0])
    e = encoder.embed(np.stack(crops)) if crops else np.stack(embs)
    s = np.asarray(subjects)
    save_npz(path, e=e, subjects=s)
    return e, s


def distractors_without(embeddings: np.ndarray, subjects: np.ndarray,
                        exclude: Collection[str]) -> tuple[np.ndarray, int]:
    """The distractors that are not photos of the ``exclude`` identities (a photo of a test subject
    would be a false impostor), and how many were left out."""
    keep = ~np.isin(subjects, list(exclude))
    return embeddings[keep], int((~keep).sum())


def threshold_record(point: dict[str, float | int]) -> dict[str, Any]:
    """One TAR's operating point as recorded in the result: threshold, its source and the FAR it has."""
    t = point["threshold"]
    return {"threshold": None if t == -np.inf else round(float(t), 6), "source": "task impostors",
            "far_target": point["far_target"], "far_measured": point["far_measured"],
            "n_genuine": point["n_genuine"], "n_impostor": point["n_impostor"]}


def verification_metrics(emb_out: np.ndarray, emb_ref: np.ndarray, subjects: list[str], distractors: np.ndarray,
                         suffix: str = "") -> dict[str, Any]:
    """Mean genuine cosine, TAR at FAR 1 % / 0.1 % and Rank-1 (over references + distractors), each
    key ending in ``suffix`` ("" for SFace, "_dlib"); ``_thresholds`` holds the operating points.
    Items without an embedding on either side (no face found) are left out and counted."""
    ok = ~np.isnan(emb_out).any(1) & ~np.isnan(emb_ref).any(1)
    out, ref = emb_out[ok], emb_ref[ok]
    subj = np.asarray(subjects)[ok]
    genuine = verification.cosine_similarities(out, ref)
    sims = out @ ref.T  # unit vectors: cosine
    impostor_mask = subj[:, None] != subj[None, :]
    impostors = np.concatenate([sims[impostor_mask], (out @ distractors.T).ravel()])
    scores = np.concatenate([genuine, impostors])
    labels = np.concatenate([np.ones(len(genuine), int), np.zeros(len(impostors), int)])
    gallery = np.concatenate([ref, distractors])
    gallery_ids = list(subj) + [f"distractor{i}" for i in range(len(distractors))]
    points = {key: verification.far_operating_point(scores, labels, far) for key, far in TAR_COLUMNS.items()}
    return {
        f"id_cosine{suffix}": float(genuine.mean()),
        **{key + suffix: 100 * p["tar"] for key, p in points.items()},
        "_thresholds": {key + suffix: threshold_record(p) for key, p in points.items()},
        f"rank1{suffix}": 100 * verification.rank1(out, list(subj), gallery, gallery_ids),
        f"id_faces{suffix}": int(ok.sum()),
    }
