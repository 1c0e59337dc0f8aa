"""The float SFace port against onnxruntime on the int8 ONNX, on real faces; the identity loss."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from facegen import assets
from facegen import faces as F
from facegen import identity
from facegen.images import read_image
from facegen.models.sface import SFace, dequantize

LFW_FACES = 20
CELEBA_FACES = 5


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private converted-weights cache, so the user's cache is never touched."""
    root = tmp_path_factory.mktemp("facegen-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEGEN_CACHE", str(root))
        mp.setattr(identity, "_models", {})
        yield root


@pytest.fixture(scope="module")
def sface_file() -> Path:
    try:
        return assets.path("sface")
    except assets.AssetError as exc:
        pytest.skip(f"SFace ONNX unavailable: {exc}")


@pytest.fixture(scope="module")
def port(sface_file: Path) -> SFace:
    return assets.sface_model()


@pytest.fixture(scope="module")
def onnx_session(sface_file: Path):
    """onnxruntime on the original int8 graph. The file lists every weight as a graph input too,
    some of them unused; only those graph inputs are dropped (no node changes)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(sface_file))
    g = model.graph
    used = {name for node in g.node for name in node.input}
    inits = {i.name for i in g.initializer}
    keep = [i for i in g.input if i.name in used and i.name not in inits]
    assert [i.name for i in keep] == ["data"]
    del g.input[:]
    g.input.extend(keep)
    assert sum(n.op_type == "DequantizeLinear" for n in g.node) == 29
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def crops(data_root: Path) -> np.ndarray:
    """20 LFW faces (first image of the first identities) and 5 celeba_fsrnet faces, ArcFace-aligned
    at 112 as the benchmark's SFace encoder crops them (YuNet 5 points, facegen.faces.align)."""
    with open(data_root / "lfw" / "labels.csv", newline="") as f:
        files = [data_root / "lfw" / row["image"] for row in csv.DictReader(f)][:LFW_FACES]
    files += sorted((data_root / "celeba_fsrnet" / "celeba_val_1000_HR").glob("*.jpg"))[:CELEBA_FACES]
    out = []
    for file in files:
        img = read_image(file)
        out.append(F.align(img, F.centred_face(F.detect_faces(img), img.shape), 112, "arcface").image)
    return np.stack(out)


def _nchw(crops: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2).astype(np.float32))


def test_dequantize_blocks_match_the_onnx_definition() -> None:
    q = np.array([[1, 2, 3, 4, 5], [-1, -2, -3, -4, -5]], np.int8)
    scale = np.array([[0.5, 2.0, 10.0], [1.0, 0.25, 3.0]], np.float32)
    zp = np.array([[1, 0, 5], [0, -2, 0]], np.int8)
    got = dequantize(q, scale, zp, axis=1, block_size=2)
    want = np.array([[0.0, 0.5, 6.0, 8.0, 0.0], [-1.0, -2.0, -0.25, -0.5, -15.0]], np.float32)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(dequantize(q, np.float32(0.5), None), q.astype(np.float32) * 0.5)
    with pytest.raises(ValueError, match="block scales"):
        dequantize(q, scale[:, :2], zp[:, :2], axis=1, block_size=2)


def test_port_matches_onnxruntime_on_real_faces(port: SFace, onnx_session, crops: np.ndarray) -> None:
    x = _nchw(crops)
    ref = np.concatenate([onnx_session.run(None, {"data": x[i: i + 1]})[0] for i in range(len(x))])
    with torch.no_grad():
        ours = port(torch.from_numpy(x)).numpy()
    cos = (ref * ours).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(ours, axis=1)
    diff = np.abs(ref - ours).max()
    print(f"\nSFace port vs onnxruntime on {len(x)} faces: min cosine {cos.min():.8f}, max |diff| {diff:.3g} "
          f"(feature max |value| {np.abs(ref).max():.3g})")
    assert cos.min() >= 0.999
    assert diff < 1e-3


def test_port_matches_opencv_face_recognizer(port: SFace, crops: np.ndarray) -> None:
    """The benchmark's SFace judge (the port) against OpenCV's own ``FaceRecognizerSF`` on the same
    file, which takes BGR crops and swaps them to RGB inside."""
    import cv2

    from benchmarks.judges import SFaceEncoder

    colour = crops[LFW_FACES:]  # the celeba_fsrnet faces (LFW is grey: channel order would not show)
    net = cv2.FaceRecognizerSF.create(str(assets.path("sface")), "")
    ref = np.stack([net.feature(np.ascontiguousarray(c[..., ::-1])).reshape(-1) for c in colour])
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    judge = SFaceEncoder().embed(colour)
    with torch.no_grad():
        swapped = torch.nn.functional.normalize(port(torch.from_numpy(_nchw(colour[..., ::-1]))), dim=1).numpy()
    assert np.abs(judge - ref).max() < 1e-4 and (judge * ref).sum(1).min() >= 0.99999
    assert (ref * swapped).sum(1).min() < 0.999  # BGR order gives another feature


def test_conversion_is_cached_and_bad_input_is_refused(port: SFace, cache: Path) -> None:
    files = list(cache.glob("sface-*.safetensors"))
    assert len(files) == 1
    assert all(not p.requires_grad for p in port.parameters()) and not port.training
    with pytest.raises(ValueError, match="112"):
        port(torch.zeros(1, 3, 64, 64))


def test_training_crops_embed_like_the_arcface_crop(port: SFace, data_root: Path) -> None:
    """A face aligned with the ``celeba`` or paper 000's ``expression`` template (any size), mapped
    by to_sface_input, embeds like the same face's ArcFace crop and unlike another person's."""
    files = ["Colin_Powell/Colin_Powell_0001.jpg", "Serena_Williams/Serena_Williams_0001.jpg"]
    images = [read_image(data_root / "lfw" / f) for f in files]
    found = [F.centred_face(F.detect_faces(img), img.shape) for img in images]
    refs = [identity.sface_embed(torch.from_numpy(_nchw(F.align(img, face, 112, "arcface").image[None]) / 255.0),
                                 "arcface", "[0, 1]") for img, face in zip(images, found)]
    for k, (img, face) in enumerate(zip(images, found)):
        for template, size in (("celeba", 128), ("expression", 128), ("expression", 256)):
            crop = torch.from_numpy(_nchw(F.align(img, face, size, template).image[None]) / 127.5 - 1)
            emb = identity.sface_embed(crop, template, "[-1, 1]")
            same, other = float((emb * refs[k]).sum()), float((emb * refs[1 - k]).sum())
            print(f"\n{files[k]} {template} {size}: cosine {same:.3f} to its ArcFace crop, {other:.3f} to the other")
            assert same > 0.9 and same > other + 0.5, (files[k], template, size, same, other)
            grey = crop.mean(1, keepdim=True)  # luminance crops embed too (LFW is grey already)
            assert float((identity.sface_embed(grey, template) * refs[k]).sum()) > 0.8


def test_identity_loss_backpropagates_to_the_input(port: SFace) -> None:
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(2, 1, 64, 64, generator=gen) * 2 - 1
    fake = (real + 0.3 * torch.randn(real.shape, generator=gen)).clamp(-1, 1).requires_grad_(True)
    loss = identity.identity_loss(fake, real, "expression")
    loss.backward()
    assert 0.0 < float(loss.detach()) < 2.0
    assert fake.grad is not None and torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    assert float(identity.identity_loss(real, real, "expression")) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        identity.identity_loss(fake, real[:1], "expression")
    with pytest.raises(ValueError, match="template"):
        identity.identity_loss(real, real, "nope")
    with pytest.raises(ValueError, match="value_range"):
        identity.sface_embed(real, "expression", "0-255")


def test_folded_batchnorm_is_the_same_function(port: SFace, crops: np.ndarray) -> None:
    from facegen.models.sface import fused

    net = fused(port)
    x = torch.from_numpy(_nchw(crops[:16]))
    with torch.no_grad():
        a, b = port(x), net(x)
    assert float((a - b).abs().max()) < 1e-3 * float(a.abs().max())
    assert float(torch.nn.functional.cosine_similarity(a, b).min()) > 0.99999
    assert isinstance(port.features[0][1], torch.nn.BatchNorm2d)  # the shared port is left as it was
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.features.modules())
