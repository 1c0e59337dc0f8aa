"""The shared GAN trainer on synthetic data: learning, exact resume, crash safety, two processes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from facegen.models.psgan import PSGANConfig
from facegen.models.stackedgan import StackedSRConfig
from facegen.train import state as ckpt
from facegen.train import stopping
from facegen.train.sr import PSGANObjective, StackedSRObjective
from facegen.train.trainer import TrainConfig, Trainer, epoch_batches, psnr, seed_everything

torch.set_num_threads(1)


class SmoothFaces(Dataset):
    """Smooth random images (up-sampled noise) and their bicubic down-samplings; fixed per index."""

    def __init__(self, n: int, hr: int, scale: int, channels: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        base = torch.rand(n, channels, hr // 4, hr // 4, generator=g)
        self.hr = F.interpolate(base, size=(hr, hr), mode="bilinear", align_corners=False).clamp(0, 1)
        self.lr = F.interpolate(self.hr, scale_factor=1 / scale, mode="bicubic", antialias=True,
                                align_corners=False).clamp(0, 1)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        # a flip that depends on (epoch, index) only, like facegen.data.SRPairs
        flip = (i + self.epoch) % 2 == 1
        lr, hr = self.lr[i], self.hr[i]
        return {"lr": lr.flip(-1) if flip else lr, "hr": hr.flip(-1) if flip else hr}


def _stacked(seed: int = 0) -> StackedSRObjective:
    seed_everything(seed)
    return StackedSRObjective(StackedSRConfig.tiny(scale=2, lr_size=8))


def _psgan(seed: int = 0) -> PSGANObjective:
    seed_everything(seed)
    return PSGANObjective(PSGANConfig.tiny(scale=2, lr_size=8), l1_weight=10.0)


def _data(objective) -> SmoothFaces:
    c = objective.config
    return SmoothFaces(24, c.hr_size, c.scale, c.channels)


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=8, batch_size=4, checkpoint_every=4, val_every=0, log_every=1, ema_decay=0.9, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _all_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {}
    for name, m in trainer.modules.items():
        for k, v in trainer.accelerator.unwrap_model(m).state_dict().items():
            out[f"{name}.{k}"] = v.detach().clone()
    for k, v in trainer.ema.model.state_dict().items():
        out[f"ema.{k}"] = v.detach().clone()
    for name, opt in trainer.opt.items():
        for idx, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    out[f"opt.{name}.{idx}.{k}"] = v.detach().clone()
    return out


def _assert_equal_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume (max diff {(a[k].float() - b[k].float()).abs().max()})"


def test_lr_schedule_and_data_order() -> None:
    c = TrainConfig(steps=80, g_lr=0.02, lr_milestones=(0.75,), lr_gamma=0.25)
    assert c.lr_factor(0) == 1.0 and c.lr_factor(59) == 1.0 and c.lr_factor(60) == 0.25 and c.lr_factor(79) == 0.25
    a = epoch_batches(10, 3, seed=1, epoch=0, rank=0, world=1)
    assert a == epoch_batches(10, 3, seed=1, epoch=0, rank=0, world=1)
    assert a != epoch_batches(10, 3, seed=1, epoch=1, rank=0, world=1)
    assert len(a) == 3 and len({i for b in a for i in b}) == 9
    r0 = {i for b in epoch_batches(10, 2, 1, 0, 0, 2) for i in b}
    r1 = {i for b in epoch_batches(10, 2, 1, 0, 1, 2) for i in b}
    assert not r0 & r1 and len(r0) == len(r1) == 4


def test_psnr_known_value() -> None:
    a = torch.zeros(1, 1, 4, 4)
    b = torch.full((1, 1, 4, 4), 0.1)
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-4)  # mse 0.01 -> 20 dB


def test_training_reduces_reconstruction_loss(tmp_path: Path) -> None:
    obj = _stacked()
    tr = Trainer(obj, _cfg(steps=60, checkpoint_every=0, g_lr=3e-3, d_lr=3e-3), _data(obj), tmp_path, progress=False)
    seed_everything(0)
    logs = [tr.train_step(b) for b, _ in zip(tr._batches(), range(60))]
    first = sum(l["G2_l1"] for l in logs[:5]) / 5
    last = sum(l["G2_l1"] for l in logs[-5:]) / 5
    assert all(math.isfinite(l["d_loss"]) and math.isfinite(l["g_loss"]) for l in logs)
    assert last < 0.75 * first, (first, last)


@pytest.mark.parametrize("make", [_stacked, _psgan], ids=["stackedgan", "psgan"])
def test_exact_resume(tmp_path: Path, make) -> None:
    # psgan: SGD with an LR drop at 75 %, dropout and BatchNorm (RNG-heavy); stackedgan: Adam.
    kw = dict(optimizer="sgd", g_lr=0.02, d_lr=0.02, lr_milestones=(0.75,), lr_gamma=0.25) if make is _psgan else {}
    obj = make(0)
    full = Trainer(obj, _cfg(**kw), _data(obj), tmp_path / "full", progress=False)
    full.fit()
    reference = _all_state(full)

    obj = make(0)
    half = Trainer(obj, _cfg(**kw), _data(obj), tmp_path / "half", progress=False)
    half.fit(until=4)
    assert ckpt.complete_steps(tmp_path / "half" / "checkpoints") == [4]
    # a fresh process: different initial weights and RNG, everything must come from the checkpoint
    obj = make(123)
    torch.manual_seed(999)
    resumed = Trainer(obj, _cfg(**kw), _data(obj), tmp_path / "half", progress=False)
    resumed.fit(resume=True)
    assert resumed.step == 8
    _assert_equal_states(reference, _all_state(resumed))


def test_partial_checkpoints_are_ignored(tmp_path: Path) -> None:
    obj = _stacked()
    full = Trainer(obj, _cfg(), _data(obj), tmp_path / "full", progress=False)
    full.fit()
    reference = _all_state(full)

    obj = _stacked()
    Trainer(obj, _cfg(), _data(obj), tmp_path / "run", progress=False).fit(until=4)
    root = tmp_path / "run" / "checkpoints"
    good = ckpt.step_dir(root, 4)
    # killed while writing step 6: temp folder with a partial tensor file
    tmp = ckpt.tmp_dir(root, 6)
    tmp.mkdir()
    (tmp / ckpt.TENSORS).write_bytes((good / ckpt.TENSORS).read_bytes()[:100])
    # a step folder without its JSON (not complete) and one whose tensors were damaged
    (root / "step-00000007").mkdir()
    (root / "step-00000007" / ckpt.TENSORS).write_bytes(b"partial")
    bad = root / "step-00000005"
    bad.mkdir()
    (bad / ckpt.META).write_text((good / ckpt.META).read_text())
    data = bytearray((good / ckpt.TENSORS).read_bytes())
    data[-1] ^= 0xFF
    (bad / ckpt.TENSORS).write_bytes(bytes(data))
    with pytest.raises(ckpt.TrainStateError):
        ckpt.read(bad)

    obj = _stacked(7)
    resumed = Trainer(obj, _cfg(), _data(obj), tmp_path / "run", progress=False)
    resumed.fit(resume=True)
    _assert_equal_states(reference, _all_state(resumed))
    assert not tmp.exists()


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    obj = _stacked()
    Trainer(obj, _cfg(), _data(obj), tmp_path, progress=False).fit(until=4)
    obj = _stacked()
    other = Trainer(obj, _cfg(g_lr=1e-3), _data(obj), tmp_path, progress=False)
    with pytest.raises(ckpt.TrainStateError, match="g_lr"):
        other.fit(resume=True)


def test_state_codec_round_trip() -> None:
    import random

    import numpy as np

    state = {"a": (1, 2.5, None), 3: [torch.arange(4), {"x": np.arange(3, dtype=np.uint32)}], "py": random.getstate()}
    tensors: dict[str, torch.Tensor] = {}
    back = ckpt.decode(json.loads(json.dumps(ckpt.encode(state, tensors, "s"))), tensors)
    assert back["a"] == (1, 2.5, None) and torch.equal(back[3][0], torch.arange(4))
    assert back[3][1]["x"].dtype == np.uint32 and back["py"][1] == state["py"][1]
    with pytest.raises(TypeError):
        ckpt.encode({"f": object()}, {}, "s")


def test_validation_plots_and_log(tmp_path: Path) -> None:
    obj = _psgan()
    data = _data(obj)
    tr = Trainer(obj, _cfg(steps=4, val_every=2, val_images=3), data, tmp_path, val_set=data, progress=False)
    tr.fit()
    assert (tmp_path / "val" / "curve.png").stat().st_size > 1000
    assert (tmp_path / "val" / "step-00000004.png").is_file()
    assert [h["step"] for h in tr.history] == [2.0, 4.0]
    assert all(h["psnr_bicubic"] > 10 for h in tr.history)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all("img_per_s" in r and "G_adv" in r for r in rows)


class _Scripted(Trainer):
    """Validation PSNR read from a script by step: the stopping rule is under test, not the networks."""

    curve = {2: 20.0, 4: 22.0, 6: 21.0, 8: 21.5, 10: 23.0, 12: 22.0, 14: 22.5, 16: 22.9, 18: 24.0, 20: 25.0}

    def validate(self) -> dict[str, float]:
        row = {"step": float(self.step), "psnr": self.curve[self.step], "psnr_bicubic": 20.0}
        self.history = [h for h in self.history if h["step"] != row["step"]] + [row]
        return row


def _ema_at(tmp_path: Path, step: int) -> dict[str, torch.Tensor]:
    obj = _stacked()
    plain = Trainer(obj, _cfg(steps=20), _data(obj), tmp_path / f"plain-{step}", progress=False)
    return {k: v.clone() for k, v in plain.fit(until=step).state_dict().items()}


def test_a_run_stops_on_validation_and_returns_its_best_generator(tmp_path: Path) -> None:
    obj = _stacked()
    cfg = _cfg(steps=20, val_every=2, patience=2)
    run = _Scripted(obj, cfg, _data(obj), tmp_path / "run", val_set=_data(obj), progress=False)
    best = run.fit()
    # step 4 (22 dB) is not beaten at steps 6 and 8: the run ends at 8 and returns step 4's EMA generator
    assert (run.step, run.best_step, run.export_step) == (8, 4, 4)
    assert ckpt.complete_steps(tmp_path / "run" / "checkpoints") == [4, 8]
    reference = _ema_at(tmp_path, 4)
    assert all(torch.equal(v, reference[k]) for k, v in best.state_dict().items())
    assert not all(torch.equal(v, reference[k]) for k, v in run.ema.model.state_dict().items())

    # The same command again trains no further and returns the same generator (the best one is in the checkpoint).
    obj = _stacked(5)
    again = _Scripted(obj, cfg, _data(obj), tmp_path / "run", val_set=_data(obj), progress=False)
    back = again.fit(resume=True)
    assert again.step == 8 and all(torch.equal(v, reference[k]) for k, v in back.state_dict().items())

    # More patience may be given on resume: 23 dB at step 10 is the new best, 12-16 do not beat it.
    obj = _stacked(5)
    longer = _Scripted(obj, _cfg(steps=20, val_every=2, patience=3), _data(obj), tmp_path / "run",
                       val_set=_data(obj), progress=False)
    longer.fit(resume=True)
    assert (longer.step, longer.export_step) == (16, 10)
    assert longer.export_note == ("the run stopped on validation at step 16, after 3 validations without a better "
                                  "PSNR; this is the EMA generator of step 10, its best validation")

    # A run that reaches its last step first still returns its best validation's generator.
    obj = _stacked()
    short = _Scripted(obj, _cfg(steps=14, val_every=2, patience=3), _data(obj), tmp_path / "short",
                      val_set=_data(obj), progress=False)
    short.fit()
    assert (short.step, short.export_step) == (14, 10) and short.export_note.startswith("the run ended at step 14;")


def test_stopping_rule_on_a_history() -> None:
    h = [{"step": 2.0, "psnr": 20.0}, {"step": 4.0, "psnr": 21.0}, {"step": 6.0, "psnr": 21.0}, {"step": 8.0, "psnr": 20.5}]
    assert stopping.best_step(h) == 4 and stopping.best_step([]) is None  # the earliest of equal bests
    assert stopping.should_stop(h, 2) and not stopping.should_stop(h, 3) and not stopping.should_stop(h, 0)
    assert stopping.export_note(8, 8, 2, True) is None


def test_without_patience_every_step_runs_and_the_last_generator_is_returned(tmp_path: Path) -> None:
    obj = _stacked()
    run = _Scripted(obj, _cfg(steps=12, val_every=2), _data(obj), tmp_path, val_set=_data(obj), progress=False)
    last = run.fit()
    assert (run.step, run.export_step, run.best_step) == (12, 12, 10) and last is run.ema.model
    assert run.export_note is None
    with pytest.raises(ValueError, match="patience"):
        _cfg(patience=-1)


def _ddp_worker(out: str) -> None:
    from accelerate.state import AcceleratorState

    # The forked worker inherits the parent's single-process Accelerate state (a singleton set
    # by earlier tests); drop it so this process joins the two-process group.
    AcceleratorState._reset_state(reset_partial_state=True)
    torch.set_num_threads(1)
    obj = _stacked(0)
    tr = Trainer(obj, _cfg(steps=3, checkpoint_every=3), _data(obj), out, progress=False)
    tr.fit()
    g = {f"G.{k}": v.clone() for k, v in tr.generator.state_dict().items()}
    g.update({f"ema.{k}": v.clone() for k, v in tr.ema.model.state_dict().items()})
    torch.save(g, os.path.join(out, f"g{tr.rank}.pt"))
    assert tr.world == 2


@pytest.mark.slow
def test_two_processes_keep_replicas_equal(tmp_path: Path) -> None:
    from accelerate import debug_launcher

    debug_launcher(_ddp_worker, args=(str(tmp_path),), num_processes=2)
    # these files were written by this test's own processes a moment ago
    g0 = torch.load(tmp_path / "g0.pt", weights_only=True)
    g1 = torch.load(tmp_path / "g1.pt", weights_only=True)
    obj = _stacked(0)
    init = obj.G.state_dict()
    assert any(not torch.equal(init[k], g0[f"G.{k}"]) for k in init)  # it trained
    for k in g0:
        assert torch.equal(g0[k], g1[k]), k
    assert ckpt.complete_steps(tmp_path / "checkpoints") == [3]


class _Staged(StackedSRObjective):
    """An objective using the optional hooks: ``set_step`` and ``preview``."""

    def __init__(self) -> None:
        seed_everything(0)
        super().__init__(StackedSRConfig.tiny(scale=2, lr_size=8))
        self.steps_seen: list[int] = []
        self.previews = 0

    def set_step(self, step: int) -> None:
        self.steps_seen.append(step)

    def preview(self, g, batch):
        self.previews += 1
        return batch["hr"] * 0.5, g.infer(batch["lr"]), batch["hr"]


def test_optional_objective_hooks(tmp_path: Path) -> None:
    obj = _Staged()
    data = _data(obj)
    tr = Trainer(obj, _cfg(steps=4, val_every=2, checkpoint_every=0), data, tmp_path, val_set=data, progress=False)
    tr.fit()
    assert obj.steps_seen == [0, 1, 2, 3] and obj.previews == 2
    assert tr.history[-1]["psnr_bicubic"] < 20  # bicubic would give > 25 dB; the preview's baseline (half brightness) was used
