"""Paper 000 (neutral -> smiling at 2x): the five methods, the SGE ablations, objective, data, checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facegen import checkpoint
from facegen.models.layers import bicubic_resize, count_parameters, rgb_to_ycbcr
from facegen.models.pix2pix import Pix2PixConfig, UNetGenerator
from facegen.models.smile import (
    ABLATIONS,
    METHODS,
    MODEL_METHODS,
    PAPER_PARAMETERS,
    GuidanceEncoder,
    GuidanceResBlock,
    SmileConfig,
    SmileGenerator,
    SmileTrainNet,
    centre_crop,
)
from facegen.train.smile import SmileObjective, smile_config, smile_pieces
from facegen.train.smile_data import SmileAugment, SmilePairs, recrop, training_pairs, VAL_SUBJECTS

torch.set_num_threads(1)

TINY = [(m, "tiny") for m in METHODS] + [("sge", a) for a in ABLATIONS]


def _tiny(method: str, preset: str, channels: int = 3) -> SmileConfig:
    if preset == "tiny":
        return SmileConfig.tiny(method, channels)
    return dataclasses.replace(SmileConfig.preset(preset, method, "tiny"), channels=channels)


def _batch(c: SmileConfig, n: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(n, c.channels, c.hr_size, c.hr_size, generator=g)
    hr_neutral = torch.rand(n, c.channels, c.hr_size, c.hr_size, generator=g)
    down = lambda t: F.interpolate(t, size=c.lr_size, mode="bicubic", antialias=True).clamp(0, 1)  # noqa: E731
    return {"lr": down(hr_neutral), "hr": hr, "lr_target": down(hr), "hr_neutral": hr_neutral}


def _meta_count(config: SmileConfig) -> int:
    with torch.device("meta"):
        return count_parameters(SmileGenerator(config))


# -- parameter counts at paper size (Table III) ------------------------------------------------------


def test_pix2pix_unet256_count() -> None:
    with torch.device("meta"):
        assert count_parameters(UNetGenerator(Pix2PixConfig.paper())) == 54_414_979
        assert count_parameters(UNetGenerator(Pix2PixConfig.paper(out_scale=2))) == 54_475_939


@pytest.mark.parametrize("method", sorted(PAPER_PARAMETERS))
def test_paper_parameter_counts_match_table_iii(method: str) -> None:
    ours, paper = _meta_count(SmileConfig.paper(method)), PAPER_PARAMETERS[method]
    assert abs(ours - paper) <= 0.001 * paper, f"{method}: {ours:,} vs Table III {paper:,}"
    if method != "sge":
        assert ours == paper  # these three are exact


def test_paper_two_step_and_ablation_counts() -> None:
    # two CNNs at inference: Pix2Pix + the same SR network as the serial method
    assert _meta_count(SmileConfig.paper("two-step")) == 108_890_918
    sge = _meta_count(SmileConfig.paper("sge"))
    assert _meta_count(SmileConfig.sge_pix2pix_side()) == sge  # the SR side is training-only
    assert _meta_count(SmileConfig.sge_sr_side()) == PAPER_PARAMETERS["parallel"]
    no_skips = _meta_count(SmileConfig.sge_no_skips())
    assert PAPER_PARAMETERS["parallel"] < no_skips < sge


def test_paper_architecture_details() -> None:
    with torch.device("meta"):
        g = SmileGenerator(SmileConfig.paper("sge"))
    assert len(g.encoder.blocks) == 8  # U-Net-256: 8 down-sampling blocks
    assert (g.decoder.extra_up[0].in_channels, g.decoder.extra_up[0].out_channels) == (128 + 40 * 2, 32)
    last = g.decoder.last[0]
    assert (last.in_channels, last.out_channels) == (32 + 40, 3)  # the SGE also feeds the last layer
    assert len(g.sge.blocks) == 9  # one residual block per resolution 256 .. 1
    block = g.sge.blocks[3]
    kernels = sorted(m.kernel_size for m in block.modules() if isinstance(m, nn.Conv2d))
    assert kernels == [(1, 1), (3, 3), (3, 3)]


def test_lite_presets_are_small() -> None:
    for method in METHODS:
        n = count_parameters(SmileGenerator(SmileConfig.lite(method)))
        assert n * 4 < 5_000_000, f"{method} lite has {n:,} parameters"
    c = SmileConfig.lite()
    assert (c.lr_size, c.hr_size, c.channels) == (64, 128, 1)


# -- tiny forward/backward ---------------------------------------------------------------------------


@pytest.mark.parametrize("method,preset", TINY)
@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_step_losses_and_gradients(method: str, preset: str, channels: int) -> None:
    torch.manual_seed(0)
    c = _tiny(method, preset, channels)
    obj = SmileObjective(c)
    batch = _batch(c)
    d, d_logs = obj.d_loss(batch)
    d.backward()
    assert torch.isfinite(d) and d_logs
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in obj.D.parameters())
    obj.G.zero_grad()
    g, logs = obj.g_loss(batch)
    g.backward()
    assert torch.isfinite(g) and "G_adv" in logs and "G_l1" in logs and ("G_sr" in logs) == (method != "bilinear")
    for name, p in obj.G.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name} got no gradient"
    out = obj.G.infer(batch["lr"])
    assert out.shape == (2, channels, c.hr_size, c.hr_size) and out.min() >= 0 and out.max() <= 1


def _sr_grads(c: SmileConfig) -> dict[str, bool]:
    """Which top-level parts get gradient from the SR output alone."""
    torch.manual_seed(0)
    net = SmileTrainNet(c)
    b = _batch(c)
    guide = centre_crop(b["hr_neutral"], c.lr_size) * 2 - 1
    out = net(b["lr"] * 2 - 1, guide, b["lr_target"] * 2 - 1)
    key = "hr_fake" if c.method == "serial" else "sr"
    out[key].abs().mean().backward()
    parts: dict[str, bool] = {}
    for name, p in net.named_parameters():
        part = ".".join(name.split(".")[:2]) if name.startswith("net.") else name.split(".")[0]
        parts[part] = parts.get(part, False) or (p.grad is not None and bool(p.grad.abs().sum() > 0))
    return parts


def test_sr_loss_reaches_the_right_modules() -> None:
    # serial: end to end, the SR loss reaches Pix2Pix
    assert _sr_grads(SmileConfig.tiny("serial")) == {"net.p2p": True, "net.sr": True}
    # two-step: the SR network is trained separately, on the real smiling face
    assert _sr_grads(SmileConfig.tiny("two-step")) == {"net.p2p": False, "net.sr": True}
    # parallel: the shared encoder and the SR decoder, not the expression decoder
    assert _sr_grads(SmileConfig.tiny("parallel")) == {"net.encoder": True, "net.decoder": False, "sr_decoder": True}
    # sge: plus the SR-side SGE, not the expression-side one
    assert _sr_grads(SmileConfig.tiny("sge")) == {
        "net.encoder": True, "net.decoder": False, "net.sge": False, "sr_decoder": True, "sr_sge": True,
    }


def test_inference_model_excludes_training_only_parts() -> None:
    c = SmileConfig.tiny("sge")
    train = SmileTrainNet(c)
    assert train.inference_model() is train.net
    assert count_parameters(train) > count_parameters(train.net) == count_parameters(SmileGenerator(c))
    names = {n.split(".")[0] for n, _ in train.net.named_parameters()}
    assert names == {"encoder", "decoder", "sge"}


def test_no_skip_ablation_feeds_only_the_bottleneck() -> None:
    c = SmileConfig.sge_no_skips("tiny")
    g = SmileGenerator(c)
    assert g.decoder.extra[0] == c.sge_channels[-1] and not any(g.decoder.extra[1:])
    full = SmileGenerator(SmileConfig.tiny("sge"))
    assert full.decoder.extra == tuple(reversed(c.sge_channels))


def test_guidance_encoder_shapes() -> None:
    enc = GuidanceEncoder(3, (4, 8, 8, 8, 8))
    feats = enc(torch.rand(2, 3, 16, 16))
    assert [tuple(f.shape[1:]) for f in feats] == [(4, 16, 16), (8, 8, 8), (8, 4, 4), (8, 2, 2), (8, 1, 1)]
    block = GuidanceResBlock(3, 4)
    assert block.shortcut[0].kernel_size == (1, 1)


# -- inference ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_infer_shapes_and_luminance(method: str) -> None:
    torch.manual_seed(0)
    g = SmileGenerator(SmileConfig.tiny(method, channels=1)).eval().requires_grad_(False)
    grey = 0.3 + 0.4 * torch.rand(2, 1, 16, 16)
    x = (grey + torch.tensor([0.04, 0.0, -0.04]).view(1, 3, 1, 1)).clamp(0, 1)  # a faint colour tint
    y = g.infer(x)
    assert y.shape == (2, 3, 32, 32)
    # chroma comes from the bicubic up-sampling of the input (up to clamping at the gamut's edge)
    diff = (rgb_to_ycbcr(y)[:, 1:] - rgb_to_ycbcr(bicubic_resize(x, 32))[:, 1:]).abs()
    assert float(diff.mean()) < 5e-3
    assert g.infer(x[:, :1]).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="16x16"):
        g.infer(torch.rand(1, 3, 20, 20))


def test_bilinear_is_pix2pix_then_bilinear() -> None:
    g = SmileGenerator(SmileConfig.tiny("bilinear")).eval()
    x = torch.rand(1, 3, 16, 16)
    low = g.p2p.infer(x)
    torch.testing.assert_close(g.infer(x), F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False))


def test_sge_guide_at_inference() -> None:
    torch.manual_seed(0)
    g = SmileGenerator(SmileConfig.tiny("sge")).eval()
    hr = torch.rand(2, 3, 32, 32)
    x = F.interpolate(hr, size=16, mode="bicubic", antialias=True).clamp(0, 1)
    with_hr = g.infer(x, guide=hr)
    without = g.infer(x)
    # None means: the bicubic up-sampling of the input stands in for the HR neutral face
    torch.testing.assert_close(without, g.infer(x, guide=bicubic_resize(x, 32)))
    assert (with_hr - without).abs().max() > 1e-4
    with pytest.raises(ValueError, match="32x32"):
        g.infer(x, guide=torch.rand(2, 3, 16, 16))
    # a luminance SGE model takes an RGB guide
    gy = SmileGenerator(SmileConfig.tiny("sge", channels=1)).eval()
    assert gy.infer(x, guide=hr).shape == (2, 3, 32, 32)


def test_centre_crop_is_the_middle_quarter() -> None:
    t = torch.arange(64.0).view(1, 1, 8, 8)
    torch.testing.assert_close(centre_crop(t, 4), t[..., 2:6, 2:6])


# -- checkpoints -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,preset", TINY)
def test_checkpoint_round_trip(method: str, preset: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    c = _tiny(method, preset, channels=1)
    obj = SmileObjective(c)
    # a couple of training steps so BatchNorm statistics and weights move off their initial values
    opt = torch.optim.Adam(obj.G.parameters(), lr=1e-3)
    for s in range(2):
        b = _batch(c, seed=s)
        obj.d_loss(b)
        loss, _ = obj.g_loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model = obj.G.inference_model().eval()
    folder = checkpoint.save(model, tmp_path / "ckpt", model_id=f"p2p-{method}", card="# test\n")
    loaded = checkpoint.load(folder, SmileGenerator)
    assert loaded.config == c
    x = torch.rand(2, 3, c.lr_size, c.lr_size)
    hr = torch.rand(2, 3, c.hr_size, c.hr_size)
    with torch.no_grad():
        torch.testing.assert_close(loaded.infer(x, guide=hr), model.infer(x, guide=hr), atol=1e-6, rtol=0)


# -- configs and recipes -----------------------------------------------------------------------------


def test_config_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown smile method"):
        SmileConfig(method="cycle")
    with pytest.raises(ValueError, match="one width per resolution"):
        SmileConfig(method="sge", lr_size=64)
    with pytest.raises(ValueError, match="variant of the sge method"):
        SmileConfig.preset("sge-no-skips", "parallel")
    with pytest.raises(ValueError, match="needs batch"):
        batch = {"lr": torch.rand(2, 3, 16, 16), "hr": torch.rand(2, 3, 32, 32)}
        SmileObjective(SmileConfig.tiny("parallel")).d_loss(batch)


@pytest.mark.parametrize("model_id", list(MODEL_METHODS))
def test_recipe_pieces(model_id: str) -> None:
    p = smile_pieces(model_id, "tiny", steps=3)
    assert p.model_config.method == MODEL_METHODS[model_id]
    assert p.train.steps == 3 and p.train.g_lr == 2e-4 and p.deviations
    lite = smile_pieces(model_id, "lite")
    assert lite.model_config.lr_size == 64 and lite.train.batch_size > 0
    if model_id == "p2p-sge":
        paper_cfg = smile_config(model_id, "paper:sge-no-skips")
        assert paper_cfg.lr_size == 256 and not paper_cfg.sge_skips


def test_trainer_runs_the_objective(tmp_path: Path) -> None:
    from facegen.train.trainer import TrainConfig, Trainer

    c = SmileConfig.tiny("sge", channels=1)
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (4, c.hr_size, c.hr_size, 3), dtype=np.uint8)
    train = SmilePairs(faces, faces[::-1].copy(), luminance=True, augment=SmileAugment(copies=2))
    val = SmilePairs(faces[:2], faces[2:], luminance=True)
    cfg = TrainConfig(steps=2, batch_size=2, checkpoint_every=0, val_every=2, log_every=1)
    ema = Trainer(SmileObjective(c), cfg, train, tmp_path, val_set=val, progress=False).fit()
    assert (tmp_path / "log.jsonl").is_file()
    assert isinstance(ema.inference_model(), SmileGenerator)


def test_tiny_model_learns_a_pair() -> None:
    """Pixel loss alone: the parallel model fits one pair (the loss drops by more than half)."""
    torch.manual_seed(0)
    c = dataclasses.replace(SmileConfig.tiny("parallel", channels=1), dropout=0.0)
    net = SmileTrainNet(c)
    smooth = F.interpolate(torch.rand(2, 2, 4, 4), size=32, mode="bilinear", align_corners=False)
    hr_neutral, hr = smooth[:, :1], smooth[:, 1:]
    b = {"lr": bicubic_resize(hr_neutral, 16), "hr": hr, "hr_neutral": hr_neutral}
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(60):
        out = net(b["lr"] * 2 - 1)
        loss = (out["hr_fake"] - (b["hr"] * 2 - 1)).abs().mean() + (out["sr"] - (b["hr_neutral"] * 2 - 1)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


# -- data --------------------------------------------------------------------------------------------


def _faces(n: int = 3, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_smile_pairs_items() -> None:
    neutral, happy = _faces(), _faces()[::-1].copy()
    ds = SmilePairs(neutral, happy, luminance=False, augment=SmileAugment())
    assert len(ds) == 3 * 20 and ds.pairs == 3
    it = ds[4]
    assert {k: tuple(v.shape) for k, v in it.items()} == {
        "lr": (3, 16, 16), "hr": (3, 32, 32), "lr_target": (3, 16, 16), "hr_neutral": (3, 32, 32)}
    torch.testing.assert_close(ds[4]["hr"], it["hr"])  # deterministic per (seed, epoch, index)
    ds.set_epoch(1)
    assert not torch.equal(ds[4]["hr"], it["hr"])
    plain = SmilePairs(neutral, happy, luminance=True)
    assert len(plain) == 3
    item = plain[1]
    assert item["hr"].shape == (1, 32, 32)
    expect = (0.299 * happy[1, ..., 0] + 0.587 * happy[1, ..., 1] + 0.114 * happy[1, ..., 2]) / 255.0
    np.testing.assert_allclose(item["hr"][0].numpy(), expect, atol=1e-6)


def test_augmentation_keeps_the_pair_in_register() -> None:
    """Flip and zoom are shared by the two images; only the small N(0, 1 px) crop jitter differs."""
    face = _faces(1, 64)
    ds = SmilePairs(face, face.copy(), luminance=False, augment=SmileAugment(shift_sigma=0.0, zoom=0.05))
    for i in range(len(ds)):
        it = ds[i]
        torch.testing.assert_close(it["hr"], it["hr_neutral"])
    plain = torch.from_numpy(face[0].transpose(2, 0, 1).copy()).float() / 255
    flip_only = SmilePairs(face, face.copy(), luminance=False, augment=SmileAugment(shift_sigma=0.0, zoom=0.0))
    flipped = [bool(torch.equal(flip_only[i]["hr"], plain.flip(-1))) for i in range(20)]
    kept = [bool(torch.equal(flip_only[i]["hr"], plain)) for i in range(20)]
    assert all(a != b for a, b in zip(flipped, kept)) and 3 <= sum(flipped) <= 17
    jitter = SmilePairs(face, face.copy(), luminance=False, augment=SmileAugment(zoom=0.0, flip=False))
    d = (jitter[0]["hr"] - jitter[0]["hr_neutral"]).abs().mean()
    assert 0 < d < 0.1  # sub-pixel shifts at this size


def test_recrop_geometry() -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    img[10, 20] = 255
    assert recrop(img, 0, 0, 0, 1.0) is img
    moved = recrop(img, 2.0, 0.0, 0.0, 1.0)  # window moves right: content moves left
    assert np.unravel_index(moved[..., 0].argmax(), (32, 32)) == (10, 18)


def test_training_pairs_are_subject_disjoint(data_root: Path) -> None:
    from facegen.data import TEST_SUBJECTS

    train, val = training_pairs(data_root)
    held = set(TEST_SUBJECTS["jaffe", "smile"]) | set(TEST_SUBJECTS["rafd_subset", "smile"])
    subjects_train = {p.subject for p in train}
    subjects_val = {p.subject for p in val}
    assert not subjects_train & held and not subjects_val & held
    assert subjects_val == set(VAL_SUBJECTS) and not subjects_train & subjects_val
    assert all(p.neutral.expression == "neutral" and p.target.expression == "happy" for p in train + val)


def test_model_card_counts_the_inference_network() -> None:
    from facegen.train.smile import inference_parameters, smile_model_card

    p = smile_pieces("p2p-sge", "tiny", steps=1)
    n = inference_parameters(p)
    assert n == count_parameters(SmileGenerator(p.model_config)) < count_parameters(p.objective.G)
    card = smile_model_card(p, 1, "synthetic", [{"step": 1.0, "psnr": 20.0, "psnr_bicubic": 19.0}])
    assert f"{n:,}" in card and "Deviations" in card and "guide" in card


def test_guide_fallback_in_training() -> None:
    c = SmileConfig.tiny("sge")
    b = _batch(c)
    paper = SmileObjective(c)._guide(b)
    torch.testing.assert_close(paper, centre_crop(b["hr_neutral"], c.lr_size) * 2 - 1)
    always = SmileObjective(c, guide_fallback=1.0)._guide(b)
    torch.testing.assert_close(always, centre_crop(bicubic_resize(b["lr"], c.hr_size), c.lr_size) * 2 - 1)
    assert smile_pieces("p2p-sge", "lite").objective.guide_fallback == 0.5
    assert smile_pieces("p2p-sge", "tiny").objective.guide_fallback == 0.0
