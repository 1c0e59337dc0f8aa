"""Scoring a row: the judge networks, their per-test-set caches, and every metric of a task
(pixel metrics, LPIPS, FID/KID, identity verification, expression judges, eigenfaces), with the
protocol text recorded beside the numbers."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import jitter, metrics, perceptual, verification
from benchmarks import judges as J
from benchmarks.cache import cache_root, load_npz, save_npz
from benchmarks.identity_scores import (DISTRACTORS, THRESHOLD_SOURCE, distractor_embeddings, distractors_without,
                                        verification_metrics)
from benchmarks.macs import COUNTER as MACS_COUNTER
from benchmarks.rows import LATENCY_FACES, RowOutput
from benchmarks.tasks import INDEPENDENT_ID_FACES
from benchmarks.testsets import BenchmarkError, TestSet, progress_bar
from facegen import faces as F

EIGENFACES = 10  # paper 001's k


class Judges:
    """Judge networks and per-test-set caches of what they computed on the ground truth."""

    def __init__(self, ts: TestSet, root: Path, device: str) -> None:
        self.ts = ts
        self.root = root
        self.device = device
        self._fid_backbone: perceptual.FeatureBackbone | None = None
        self._encoder = None
        self._target_faces: list[F.Face | None] | None = None
        self._dlib: J.DlibResNetEncoder | None = None
        self._cache = cache_root() / ts.task.id
        self._expr: dict[str, J.ExpressionJudge] = {}
        self._pixel: dict[str, dict[str, float]] = {}

    def _path(self, kind: str, row_key: str) -> Path:
        """Cache file of one judge's output on one row; the ground truth's (`real`) is keyed by
        the targets alone, so sr-x2/x4/x8 (same 1,000 faces) compute it once."""
        if row_key == "real":
            return cache_root() / "real" / f"{kind}-{self.ts.targets_fingerprint}.npz"
        return self._cache / f"{kind}-{self.ts.fingerprint}-{row_key}.npz"

    # Expression judges -----------------------------------------------------------------------
    @property
    def expression_judges(self) -> dict[str, J.ExpressionJudge]:
        if not self._expr:
            self._expr = {name: J.expression_judge(name) for name in ("fer2013", "domain")}
        return self._expr

    def expressions(self, row_key: str, images: list[np.ndarray]) -> dict[str, Any]:
        """Both judges' probabilities on the row's outputs and whether a face was found in each."""
        versions = json.dumps({n: j.version for n, j in self.expression_judges.items()})
        vkey = hashlib.sha256(versions.encode()).hexdigest()[:12]
        path = self._path(f"expr-{vkey}", row_key)
        cached = load_npz(path)
        if cached is None or len(cached["found"]) != len(images):
            crops, found = J.face_box_crops(images)
            probs = {n: j.predict_crops(crops)[1] for n, j in self.expression_judges.items()}
            save_npz(path, found=found, **{f"p_{n}": p for n, p in probs.items()})
            cached = load_npz(path)
            assert cached is not None
        out: dict[str, Any] = {"found": cached["found"].astype(bool)}
        for n, j in self.expression_judges.items():
            out[n] = [j.classes[i] for i in cached[f"p_{n}"].argmax(1)]
        return out

    # PSNR / SSIM -----------------------------------------------------------------------------
    def pixel_metrics(self, row_key: str, images: list[np.ndarray]) -> dict[str, float]:
        """Mean PSNR and SSIM (Y and RGB) of the outputs against the ground truth, kept for the run
        by the outputs' content (the `identity` and `bicubic` rows of the SR tasks are scored once)."""
        if row_key not in self._pixel:
            gts = self.ts.targets
            self._pixel[row_key] = {
                "psnr_y": float(np.mean([metrics.psnr(o, t, test_y_channel=True) for o, t in zip(images, gts)])),
                "ssim_y": float(np.mean([metrics.ssim(o, t, test_y_channel=True) for o, t in zip(images, gts)])),
                "psnr_rgb": float(np.mean([metrics.psnr(o, t) for o, t in zip(images, gts)])),
                "ssim_rgb": float(np.mean([metrics.ssim(o, t) for o, t in zip(images, gts)])),
            }
        return dict(self._pixel[row_key])

    # FID/KID features ------------------------------------------------------------------------
    @property
    def fid_backbone(self) -> perceptual.FeatureBackbone:
        if self._fid_backbone is None:
            self._fid_backbone = perceptual.fid_backbone(self.device)
        return self._fid_backbone

    def reference_features(self) -> np.ndarray:
        """FID/KID features of the real distribution the outputs are compared with: the ground truth,
        or the task's own reference photos where it has no ground truth (``smile-wild``: real smiles)."""
        if self.ts.fid_reference is None:
            return self.features("real", self.ts.targets)
        return self.features("reference", self.ts.fid_reference)

    def features(self, row_key: str, images: list[np.ndarray]) -> np.ndarray:
        path = self._path(feature_cache_kind(self.fid_backbone), row_key)
        cached = load_npz(path)
        if cached is not None and len(cached["f"]) == len(images):
            return cached["f"]
        f = perceptual.extract_features(images, self.fid_backbone)
        save_npz(path, f=f)
        return f

    # LPIPS -----------------------------------------------------------------------------------
    def lpips(self, row_key: str, images: list[np.ndarray]) -> np.ndarray:
        """LPIPS (AlexNet) of each output to its ground truth, cached by the outputs' content (rows
        with identical outputs, such as `identity` and `bicubic` on the SR tasks, are scored once)."""
        path = self._path("lpips-alex-v0.1", row_key)
        cached = load_npz(path)
        if cached is not None and len(cached["d"]) == len(images):
            return cached["d"]
        d = np.asarray(perceptual.lpips_distances(images, self.ts.targets), np.float64)
        save_npz(path, d=d)
        return d

    # Identity --------------------------------------------------------------------------------
    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = J.identity_encoder("sface")
        return self._encoder

    def target_faces(self) -> list[F.Face | None]:
        """Faces detected on the ground truth; outputs are pixel-aligned with it, so the same
        landmarks crop both (a poor output cannot dodge the identity check by hiding its face).
        Cached by the targets' fingerprint."""
        if self._target_faces is None:
            path = cache_root() / "real" / f"faces-{self.ts.targets_fingerprint}.npz"
            cached = load_npz(path)
            if cached is None or len(cached["found"]) != len(self.ts.targets):
                rows = np.full((len(self.ts.targets), 15), np.nan)
                for i, t in enumerate(progress_bar(iterable=self.ts.targets, desc=f"{self.ts.task.id}: detecting")):
                    fs = F.detect(t)
                    if fs:
                        rows[i] = [*fs[0].box, fs[0].score, *np.asarray(fs[0].points).ravel()]
                save_npz(path, found=~np.isnan(rows[:, 0]), rows=rows)
                cached = {"found": ~np.isnan(rows[:, 0]), "rows": rows}
            self._target_faces = [
                F.Face(box=tuple(float(v) for v in r[:4]), score=float(r[4]), points=r[5:].reshape(5, 2).astype(np.float32))
                if ok else None
                for ok, r in zip(cached["found"], cached["rows"])
            ]
        return self._target_faces

    def embeddings(self, row_key: str, images: list[np.ndarray]) -> np.ndarray:
        path = self._path(f"emb-{self.encoder.name}", row_key)
        cached = load_npz(path)
        if cached is not None and len(cached["e"]) == len(images):
            return cached["e"]
        faces = self.target_faces()
        e = np.full((len(images), self.encoder.dim), np.nan, np.float32)
        ok = [i for i, f in enumerate(faces) if f is not None]
        if ok:
            crops = np.stack([self.encoder.crop(images[i], faces[i]) for i in ok])
            e[ok] = self.encoder.embed(crops)
        save_npz(path, e=e)
        return e

    def distractors(self, encoder: J.IdentityEncoder | None = None) -> np.ndarray:
        """The LFW distractors of ``encoder`` (SFace by default), less any photo of a test subject."""
        e, subjects = distractor_embeddings(self.root, encoder or self.encoder)
        return distractors_without(e, subjects, set(self.ts.subjects) | set(self.ts.held_out_identities))[0]

    # The independent identity judge (dlib) -----------------------------------------------------
    @property
    def dlib(self) -> J.DlibResNetEncoder:
        if self._dlib is None:
            self._dlib = J.identity_encoder("dlib")  # type: ignore[assignment]
        assert self._dlib is not None
        return self._dlib

    def dlib_verifies(self) -> bool:
        """Whether dlib is a full verification judge on this task (every item, TAR and Rank-1), not
        the mean cosine over the first faces of the SR tasks."""
        return any(m.key == "tar_far1_dlib" for m in self.ts.task.metrics)

    def dlib_faces(self) -> int:
        """How many items (the first ones) the dlib judge scores."""
        return len(self.ts.targets) if self.dlib_verifies() else min(INDEPENDENT_ID_FACES, len(self.ts.targets))

    def target_landmarks68(self) -> np.ndarray:
        """dlib's 68 landmarks on the first :meth:`dlib_faces` ground truths (NaN where no face was
        found), cached by the targets' fingerprint: the chips of every row are cut at them."""
        n = self.dlib_faces()
        path = cache_root() / "real" / f"landmarks68-{n}-{self.ts.targets_fingerprint}.npz"
        cached = load_npz(path)
        if cached is not None:
            return cached["p"]
        pts = np.full((n, 68, 2), np.nan, np.float32)
        for i, (t, f) in enumerate(zip(self.ts.targets[:n], self.target_faces()[:n])):
            if f is not None:
                pts[i] = F.landmarks68(t, f)
        save_npz(path, p=pts)
        return pts

    def dlib_embeddings(self, row_key: str, images: list[np.ndarray]) -> np.ndarray:
        """dlib ResNet embeddings of the first :meth:`dlib_faces` outputs, each chip cut at the
        ground truth's 68 landmarks (as SFace's crops are cut at the ground truth's 5 points)."""
        n = self.dlib_faces()
        path = self._path(f"emb-dlib-{n}", row_key)
        cached = load_npz(path)
        if cached is not None and len(cached["e"]) == n:
            return cached["e"]
        faces, pts = self.target_faces()[:n], self.target_landmarks68()
        e = np.full((n, self.dlib.dim), np.nan, np.float32)
        ok = [i for i in range(n) if faces[i] is not None]
        if ok:
            chips = [J.dlib_chip(self.dlib, images[i], faces[i], pts[i]) for i in ok]
            # Repeated chips (the `identity` row of a task whose neutral faces serve several
            # targets) are embedded once: dlib gives a chip the same descriptor in any batch.
            first: dict[bytes, int] = {}  # chip bytes -> position of its first occurrence
            for i, c in enumerate(chips):
                first.setdefault(c.tobytes(), i)
            unique = list(first.values())
            index = [unique.index(first[c.tobytes()]) for c in chips]
            emb = self.dlib.embed(np.stack([chips[i] for i in unique]))
            e[ok] = emb[index]
        save_npz(path, e=e)
        return e


def feature_cache_kind(backbone: perceptual.FeatureBackbone) -> str:
    """Cache file prefix of one FID/KID backbone's features: its name and a hash of its definition,
    so features computed another way (another network, layer, or input size) are never reused."""
    digest = hashlib.sha256(f"{backbone.name}|{backbone.dim}|{backbone.size}|{backbone.definition}".encode()).hexdigest()[:12]
    return f"feat-{backbone.name}-{digest}"


def identity_metrics(ts: TestSet, judges: Judges, emb_out: np.ndarray, emb_real: np.ndarray) -> dict[str, Any]:
    """SFace: cosine to the reference face, TAR at FAR 1% / 0.1% and Rank-1 (identity_scores)."""
    return verification_metrics(emb_out, emb_real, ts.subjects, judges.distractors())


def dlib_identity_metrics(judges: Judges, row_key: str, images: list[np.ndarray]) -> dict[str, Any]:
    """The same verification protocol as SFace's, judged by dlib on every item (``*_dlib`` keys)."""
    out, real = judges.dlib_embeddings(row_key, images), judges.dlib_embeddings("real", judges.ts.targets)
    return verification_metrics(out, real, judges.ts.subjects, judges.distractors(judges.dlib), suffix="_dlib")


def independent_identity(judges: Judges, row_key: str, images: list[np.ndarray]) -> dict[str, float | int]:
    """Mean cosine of the dlib embeddings of the first outputs and of their ground truths."""
    out, real = judges.dlib_embeddings(row_key, images), judges.dlib_embeddings("real", judges.ts.targets)
    ok = ~np.isnan(out).any(1) & ~np.isnan(real).any(1)
    return {"id_cosine_dlib": float(verification.cosine_similarities(out[ok], real[ok]).mean()),
            "id_faces_dlib": int(ok.sum())}


def content_key(images: list[np.ndarray]) -> str:
    """sha256 (16 hex) of a list of images' shapes and bytes."""
    h = hashlib.sha256()
    for im in images:
        h.update(repr(im.shape).encode())
        h.update(np.ascontiguousarray(im).tobytes())
    return h.hexdigest()[:16]


def face_box_pixels(template: str, size: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the face box (brows to chin, cheek to cheek) of a ``size`` px
    crop aligned by ``template``: the box the wild smile recipe holds the light of."""
    rows, cols = F.box_slices(F.face_box(template), size)
    return rows.start, cols.start, rows.stop, cols.stop


def score_row(ts: TestSet, row: RowOutput, judges: Judges) -> dict[str, Any]:
    """Every metric of the task for one row's outputs."""
    task, outs, gts = ts.task, row.outputs, ts.targets
    keys = {m.key for m in task.metrics}
    # Judge caches are keyed by the outputs' content: rows with identical outputs (the `identity`
    # row and the `bicubic` baseline of the SR tasks) are judged once.
    ck = "real" if row.model == "real" else "out" + content_key(outs)
    m: dict[str, Any] = {}
    if {"psnr_y", "ssim_y"} & keys:  # tasks with a ground truth to compare pixels with
        m.update(judges.pixel_metrics(ck, outs))
        if row.model == "real":
            m["psnr_y"] = m["psnr_rgb"] = None  # infinite against itself
    if "lpips_alex" in keys:
        m["lpips_alex"] = float(np.mean(judges.lpips(ck, outs)))
    backbone = judges.fid_backbone.name
    ref = judges.reference_features()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the result records n; the leaderboard shows it
        dist = metrics.fid_kid_from_features(ref, judges.features(ck, outs), backbone,
                                             kid_subset_size=min(1000, len(outs), len(ref)))
    m.update(dist.columns())
    # From features: FID by the sqrtm-free path (benchmarks.metrics.fid_from_features), KID over 100 subsets.
    details: dict[str, Any] = {"timings": {"fid_seconds": round(dist.fid_seconds, 4), "kid_seconds": round(dist.kid_seconds, 4)}}
    thresholds: dict[str, Any] = {}
    if {"id_cosine", "tar_far1"} & keys:
        ident = identity_metrics(ts, judges, judges.embeddings(ck, outs), judges.embeddings("real", gts))
        thresholds.update(ident.pop("_thresholds"))
        m.update(ident)
    if "tar_far1_dlib" in keys:
        ident = dlib_identity_metrics(judges, ck, outs)
        thresholds.update(ident.pop("_thresholds"))
        m.update(ident)
    elif "id_cosine_dlib" in keys:
        m.update(independent_identity(judges, ck, outs))
    if thresholds:
        details["identity_thresholds"] = {k: v for k, v in thresholds.items() if k in keys}
    if {"expr_acc_fer", "expr_acc_domain"} & keys:
        pred = judges.expressions(ck, outs)
        labels = [str(x) for x in ts.labels]
        m["expr_acc_fer"] = 100 * float(np.mean([p == t for p, t in zip(pred["fer2013"], labels)]))
        m["expr_acc_domain"] = 100 * float(np.mean([p == t for p, t in zip(pred["domain"], labels)]))
        m["expr_faces"] = int(pred["found"].sum())
        details["expression"] = {
            name: {**J.classification_report(pred[name], labels, ts.item_datasets, list(j.classes)),
                   "version": j.version}
            for name, j in judges.expression_judges.items()
        }
        details["expression"]["no_face_found"] = {
            "count": int((~pred["found"]).sum()),
            "items": [n for n, f in zip(ts.names, pred["found"]) if not f],
            "rule": "the whole image is judged when YuNet finds no face",
        }
    if "light_change" in keys:  # against the reference face (smile-wild: the neutral photo the input was made from)
        box = face_box_pixels(task.template, task.out_size)
        m["light_change"] = float(np.mean([metrics.light_change(o, t, box) for o, t in zip(outs, gts)]))
    if "eigenface_acc" in keys:
        m["eigenface_acc"] = eigenface_metric(ts, outs)
    m["params"] = row.params
    m["latency_ms"] = row.latency_ms
    m["macs_per_face"] = row.macs
    return {"metrics": {k: v for k, v in m.items() if k in keys or k in ("id_faces", "id_faces_dlib", "expr_faces")}, **details}


def reference_calibration(ts: TestSet, judges: Judges) -> dict[str, Any] | None:
    """Both expression judges on a wild task's real reference photos, against their own labels: what
    the judges find on real photos of each expression, the ceiling beside which the models' outputs
    are read (None when the task has no labelled reference photos)."""
    if not ts.fid_reference or ts.fid_reference_labels is None:
        return None
    images, labels = list(ts.fid_reference), [str(x) for x in ts.fid_reference_labels]
    pred = judges.expressions("ref" + content_key(images), images)
    groups = [ts.dataset] * len(images)
    return {"what": f"expression judges on {ts.fid_reference_name}, against their own labels (the in-domain judge "
                    "trained on every lfw_expressions photo, these included; the FER2013 judge never saw them)",
            **{name: {**J.classification_report(pred[name], labels, groups, list(j.classes)), "version": j.version}
               for name, j in judges.expression_judges.items()}}


def eigenface_gallery(ts: TestSet) -> tuple[list[np.ndarray], list[str]]:
    """Paper 001's eigenface training set: every distinct real neutral face (the inputs) of the
    test subjects, at the output size, labelled by subject."""
    if ts.neutral_keys is None:
        raise BenchmarkError(f"{ts.task.id}: eigenface accuracy needs paired test items")
    seen: dict[str, int] = {}
    for i, k in enumerate(ts.neutral_keys):
        seen.setdefault(k, i)
    s = ts.task.scale
    images = [ts.inputs[i] if s == 1 else ts.guides[i] for i in seen.values()]  # type: ignore[index]
    return images, [ts.subjects[i] for i in seen.values()]


def eigenface_metric(ts: TestSet, outputs: list[np.ndarray]) -> float | None:
    """Eigenface (k = EIGENFACES) recognition accuracy (%) of the outputs by subject; None when
    the gallery is too small for k eigenfaces (smoke runs with --limit)."""
    images, ids = eigenface_gallery(ts)
    if len(images) <= EIGENFACES:
        return None
    return 100 * verification.eigenface_accuracy(images, ids, outputs, ts.subjects, k=EIGENFACES)


def protocol(ts: TestSet, judges: Judges) -> dict[str, Any]:
    keys = {m.key for m in ts.task.metrics}
    ref = ts.reference_name
    left_out = ("; LFW distractors of the test identities are left out (a photo of the same person would be a "
                "false impostor)" if ts.held_out_identities else "")
    pairs = (f"genuine = (output, its {ref}); impostors = (output, {ref} of every other subject) + (output, "
             f"{DISTRACTORS} LFW distractors){left_out}; TAR thresholds: {THRESHOLD_SOURCE} (identity_thresholds: "
             f"threshold, FAR measured)")
    dlib_chips = ("dlib ResNet (dlib_face_recognition_resnet_model_v1) embeddings of dlib's 150x150 chips (padding 0.25) "
                  f"cut at the 68 dlib landmarks of the {ref}")
    out = {
        **({"psnr_ssim": "BasicSR convention: Y of ITU-R BT.601 YCbCr (and RGB), crop_border 0, SSIM 11x11 Gaussian "
                         "sigma 1.5"} if "psnr_y" in keys else {}),
        **({"lpips": "lpips package, AlexNet, v0.1 heads (offline weights from facegen.assets)"} if "lpips_alex" in keys else {}),
        "fid_kid": (f"backbone {judges.fid_backbone.name}: {judges.fid_backbone.definition}; FID from the features' "
                    f"means and covariances (trace term by eigh + SVD, benchmarks.metrics.fid_from_features, equal to "
                    f"scipy sqrtm to 1e-6 relative); KID: cubic polynomial kernel, 100 subsets of min(1000, n); "
                    f"against {ts.fid_reference_name}"),
        "identity": (f"{judges.encoder.name} embeddings of crops from the landmarks detected on the {ref} (a training "
                     f"loss of some models: facegen.deviations); {pairs}; Rank-1 over {ref}s + distractors"),
        **({"identity_dlib": (f"the headline identity judge, which no model trains with: {dlib_chips}, on every item; "
                              f"the same protocol as {judges.encoder.name}: {pairs}")}
           if "tar_far1_dlib" in keys else
           {"identity_dlib": (f"independent judge beside {judges.encoder.name}: {dlib_chips}, on the first "
                              f"{judges.dlib_faces()} items; mean cosine of (output, its {ref})")}
           if "id_cosine_dlib" in keys else {}),
        "input": ts.task.degradation,
        **({"framing": f"benchmarks.jitter: {jitter.DESCRIPTION}"} if "jitter" in ts.info else {}),
        "latency": f"median wall time per face at batch 1 over {LATENCY_FACES} faces",
        "macs": f"multiply-accumulates for the first face at batch 1 (conditions included), counted by {MACS_COUNTER}",
    }
    if ts.neutral_keys is not None:
        out["test_set"] = (f"task_pairs('{ts.task.id}').test: neutral -> target pairs of the held-out subjects "
                           f"(facegen.data.splits.TEST_SUBJECTS), both aligned with template '{ts.task.template}' at "
                           f"{ts.task.out_size} px; subjects are person ids (dataset:subject)")
    if "test_set_rule" in ts.info:
        out["test_set"] = ts.info["test_set_rule"]
    if any(m.key == "expr_acc_fer" for m in ts.task.metrics):
        out["expression"] = (f"accuracy (%) of each judge's prediction against the target label; judges read "
                             f"benchmarks.judges.face_box_crop ({J.CROP_RULE}); the whole image when no face is found "
                             f"(counted in expression.no_face_found)")
    if any(m.key == "eigenface_acc" for m in ts.task.metrics):
        out["eigenface"] = (f"paper 001: k = {EIGENFACES} eigenfaces (PCA of BT.601 grey pixels) of the distinct real "
                            f"neutral faces of the test subjects (the task inputs, {ts.task.out_size} px, "
                            f"{ts.info.get('unique_neutral_images')} images), each output classified by subject with the "
                            f"minimum-distance (class-mean) classifier; accuracy (%) against its subject")
    return out

