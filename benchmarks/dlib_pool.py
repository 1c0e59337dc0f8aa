"""dlib ResNet face descriptors of aligned chips in worker processes.

dlib's CPU network runs on one core (the dlib build used here has no BLAS) and holds the GIL,
so threads do not help; ``workers`` processes, each with its own copy of the network, embed
batches of chips side by side. A batch of chips gives exactly the descriptors of the same chips
one at a time (tests/test_lfw_fast.py), so the numbers do not depend on the batching or the
number of workers. Workers are spawned (not forked): they import only numpy and dlib.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

BATCH = 16  # chips per call into dlib (its own batch size for aligned chips)

_net = None  # the worker process's network


def _load(model_file: str) -> None:
    global _net
    import dlib

    _net = dlib.face_recognition_model_v1(model_file)


def _descriptors(chips: np.ndarray) -> tuple[np.ndarray, float]:
    """(N, 150, 150, 3) uint8 RGB chips -> ((N, 128) float32 descriptors, CPU seconds used)."""
    c0 = time.process_time()
    vecs = _net.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
    out = np.array([np.asarray(v) for v in vecs], dtype=np.float32).reshape(len(chips), -1)
    return out, time.process_time() - c0


class DescriptorPool:
    """``with DescriptorPool(model_file, workers) as pool: desc, cpu = pool.descriptors(chips)``."""

    def __init__(self, model_file: Path, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"need at least one worker process, got {workers}")
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_load, initargs=(str(model_file),))

    def descriptors(self, chips: np.ndarray) -> tuple[np.ndarray, float]:
        """Raw (not normalised) float32 descriptors of the chips, in order, and the workers' CPU seconds."""
        batches = [chips[i : i + BATCH] for i in range(0, len(chips), BATCH)]
        results = list(self._executor.map(_descriptors, batches))
        if not results:
            return np.zeros((0, 128), np.float32), 0.0
        return np.concatenate([r[0] for r in results]), sum(r[1] for r in results)

    def close(self) -> None:
        self._executor.shutdown()

    def __enter__(self) -> DescriptorPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
