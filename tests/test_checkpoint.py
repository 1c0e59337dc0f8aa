"""Checkpoint folders: round trip, atomic replace, and refusal of every kind of bad folder."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from huggingface_hub import PyTorchModelHubMixin
from safetensors.torch import save_file

from facegen import checkpoint
from facegen.checkpoint import CheckpointError
from facegen.io import sha256_file


@dataclass(frozen=True)
class TinyConfig:
    channels: int = 4
    kernel: tuple[int, int] = (3, 3)


class TinyNet(torch.nn.Module, PyTorchModelHubMixin):
    config_class = TinyConfig

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.conv = torch.nn.Conv2d(3, config.channels, config.kernel)
        self.norm = torch.nn.BatchNorm2d(config.channels)


class OtherNet(TinyNet):
    pass


def _saved(tmp_path, config=TinyConfig()):
    torch.manual_seed(0)
    model = TinyNet(config)
    model.norm.running_mean.uniform_()
    folder = checkpoint.save(model, tmp_path / "tiny", model_id="tiny", card="# tiny\n")
    return model, folder


def test_round_trip_equal(tmp_path):
    model, folder = _saved(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "facegen.json", "model.safetensors"]
    loaded = checkpoint.load(folder, TinyNet)
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), k
    assert not loaded.training
    assert json.loads((folder / "config.json").read_text()) == {"channels": 4, "kernel": [3, 3]}


def test_save_replaces_atomically_and_leaves_no_temp(tmp_path):
    _saved(tmp_path)
    _, folder = _saved(tmp_path, TinyConfig(channels=6))
    assert checkpoint.load(folder, TinyNet).config.channels == 6
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope", TinyNet)
    _, folder = _saved(tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: file is missing"):
        checkpoint.load(folder, TinyNet)


def test_truncated_weights_fail_hash(tmp_path):
    _, folder = _saved(tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="sha256 does not match"):
        checkpoint.load(folder, TinyNet)


def test_wrong_class_refused(tmp_path):
    _, folder = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="holds a 'TinyNet', not a 'OtherNet'"):
        checkpoint.load(folder, OtherNet)


def _rehash(folder):
    manifest = json.loads((folder / "facegen.json").read_text())
    manifest["sha256"] = {n: sha256_file(folder / n) for n in ("config.json", "model.safetensors")}
    (folder / "facegen.json").write_text(json.dumps(manifest))


def test_config_with_unknown_field_refused(tmp_path):
    _, folder = _saved(tmp_path)
    (folder / "config.json").write_text(json.dumps({"channels": 4, "kernel": [3, 3], "evil": 1}))
    _rehash(folder)
    with pytest.raises(CheckpointError, match="unknown config fields"):
        checkpoint.load(folder, TinyNet)


def test_tensors_not_fitting_config_refused(tmp_path):
    _, folder = _saved(tmp_path)
    (folder / "config.json").write_text(json.dumps({"channels": 8, "kernel": [3, 3]}))
    _rehash(folder)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        checkpoint.load(folder, TinyNet)


def test_pickle_disguised_as_safetensors_refused(tmp_path):
    _, folder = _saved(tmp_path)
    torch.save(TinyNet(TinyConfig()).state_dict(), folder / "model.safetensors")
    _rehash(folder)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        checkpoint.load(folder, TinyNet)


def test_extra_tensor_refused(tmp_path):
    model, folder = _saved(tmp_path)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["extra"] = torch.zeros(1)
    save_file(state, str(folder / "model.safetensors"))
    _rehash(folder)
    with pytest.raises(CheckpointError, match="unexpected tensors"):
        checkpoint.load(folder, TinyNet)


# --------------------------------------------------------------------------- untrusted files


class _Exploit:
    """Unpickling this creates ``marker``: proof that a pickle ran code."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_manifest_naming_an_unknown_class_refused(tmp_path):
    _, folder = _saved(tmp_path)
    manifest = json.loads((folder / "facegen.json").read_text())
    manifest["class"] = "os.system"
    (folder / "facegen.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="holds a 'os.system', not a 'TinyNet'"):
        checkpoint.load(folder, TinyNet)


def test_config_naming_a_class_refused(tmp_path):
    """A config cannot pick the class to build (no `_target_`/`architectures` style field)."""
    _, folder = _saved(tmp_path)
    (folder / "config.json").write_text(json.dumps({"channels": 4, "kernel": [3, 3], "_target_": "os.system"}))
    _rehash(folder)
    with pytest.raises(CheckpointError, match=r"unknown config fields for TinyConfig: \['_target_'\]"):
        checkpoint.load(folder, TinyNet)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt"])
def test_pickle_weights_instead_of_safetensors_refused_unopened(tmp_path, name):
    import pickle

    _, folder = _saved(tmp_path)
    marker = tmp_path / "pwned"
    (folder / "model.safetensors").unlink()
    (folder / name).write_bytes(pickle.dumps({"conv.weight": _Exploit(marker)}))
    manifest = json.loads((folder / "facegen.json").read_text())
    manifest["sha256"] = {"config.json": sha256_file(folder / "config.json"),
                          name: sha256_file(folder / name)}
    (folder / "facegen.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="model.safetensors: file is missing"):
        checkpoint.load(folder, TinyNet)
    assert not marker.exists()


def test_pickle_with_code_named_safetensors_never_runs(tmp_path):
    import pickle

    _, folder = _saved(tmp_path)
    marker = tmp_path / "pwned"
    (folder / "model.safetensors").write_bytes(pickle.dumps({"conv.weight": _Exploit(marker)}))
    _rehash(folder)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        checkpoint.load(folder, TinyNet)
    assert not marker.exists()


def test_a_stray_pickle_beside_a_good_checkpoint_is_ignored(tmp_path):
    import pickle

    model, folder = _saved(tmp_path)
    marker = tmp_path / "pwned"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Exploit(marker)))
    loaded = checkpoint.load(folder, TinyNet)
    assert torch.equal(loaded.conv.weight, model.conv.weight) and not marker.exists()


# Ways Python code can unpickle; each needs weights_only / allow_pickle=False or the restricted unpickler.
_PICKLE_CALLS = re.compile(
    r"torch\.load\((?![^)]*weights_only\s*=\s*True)|torch\.jit\.load|pickle\.loads?\(|Unpickler|cPickle|dill|joblib"
    r"|allow_pickle\s*=\s*True|np\.load\((?![^)]*allow_pickle\s*=\s*False)|numpy\.load\((?![^)]*allow_pickle\s*=\s*False)"
    r"|pd\.read_pickle|from_pretrained\([^)]*use_safetensors\s*=\s*False"
)


def test_no_pickle_in_the_load_path():
    """No product code can unpickle, except facegen/asset_networks.py's numpy-only unpickler (third-party
    asset conversion at install time), which is tested to refuse code in tests/test_assets.py."""
    root = Path(__file__).resolve().parent.parent
    files = [root / "app.py", *sorted((root / "app_views").rglob("*.py")), *sorted((root / "facegen").rglob("*.py")),
             *sorted((root / "benchmarks").rglob("*.py"))]
    found = []
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if _PICKLE_CALLS.search(code):
                found.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    allowed = [f for f in found if f.startswith("facegen/asset_networks.py:") and "_NumpyOnlyUnpickler" in f]
    assert sorted(set(found) - set(allowed)) == [], found
    assert allowed, "the restricted unpickler moved; check this test still guards it"
    # The restricted unpickler hands out a fixed table of callables and refuses everything else.
    from facegen import asset_networks

    assert set(asset_networks._numpy_globals()) == {("numpy.core.multiarray", "_reconstruct"),
                                            ("numpy._core.multiarray", "_reconstruct"),
                                            ("numpy", "ndarray"), ("numpy", "dtype")}
