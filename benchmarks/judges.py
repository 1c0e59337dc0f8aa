"""Pretrained networks that judge generated faces, independent of the models being judged.

Identity encoders
    One interface, :class:`IdentityEncoder`: each encoder knows how it wants a face cropped
    (``crop``) and turns a batch of such crops into L2-normalised embeddings (``embed``), so
    cosine similarity is a dot product. :func:`identity_encoder` builds one by name:

    - ``sface`` (default): OpenCV Zoo SFace (int8 ONNX, 128-d) on the 112x112 ArcFace crop;
    - ``dlib``: dlib's ResNet (128-d) on dlib's own 150x150 chip from the 68 landmarks;
    - ``arcface``: InsightFace buffalo_l ArcFace R50 (512-d), only when its model folder
      has been downloaded (not obtainable offline).

    Their LFW verification accuracy (``python -m benchmarks.lfw``) is their calibration.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from facegen import assets
from facegen import faces as F

__all__ = [
    "JudgeUnavailableError",
    "IdentityEncoder",
    "SFaceEncoder",
    "DlibResNetEncoder",
    "ArcFaceEncoder",
    "IDENTITY_ENCODERS",
    "identity_encoder",
    "l2_normalise",
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
    """SFace (OpenCV Zoo 2021dec, int8) through ``cv2.FaceRecognizerSF``: 128-d.

    Crop: the ArcFace 112x112 5-point template (what ``FaceRecognizerSF.alignCrop`` does),
    made here with :func:`facegen.faces.align` so it shares our antialiased warp.
    """

    name = "sface"
    crop_size = 112
    dim = 128
    template = "arcface"

    def __init__(self) -> None:
        file = assets.path("sface")
        self.version = f"{file.name} (sha256 {assets.ASSETS['sface'].sha256[:12]}), opencv {cv2.__version__}"
        self._net = cv2.FaceRecognizerSF.create(str(file), "")
        self._lock = threading.Lock()  # one cv2 dnn network: forward passes must not overlap

    def crop(self, image: np.ndarray, face: F.Face) -> np.ndarray:
        return F.align(image, face, self.crop_size, self.template).image

    def embed(self, crops: np.ndarray) -> np.ndarray:
        crops = _check_crops(crops, self.crop_size, "SFace")
        out = np.empty((len(crops), self.dim), np.float32)
        with self._lock:
            for i, c in enumerate(crops):
                # FaceRecognizerSF takes BGR (it swaps to RGB inside, as OpenCV images are BGR).
                out[i] = self._net.feature(np.ascontiguousarray(c[..., ::-1])).reshape(-1)
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
