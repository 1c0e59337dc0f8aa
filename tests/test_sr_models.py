"""stackedgan (paper 002) and psgan (paper 003): shapes, presets, losses, inference, checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from facegen import checkpoint
from facegen.models.layers import count_parameters, rgb_to_ycbcr, ycbcr_to_rgb
from facegen.models.psgan import PSGANConfig, PSGANDiscriminator, PSGANGenerator
from facegen.models.stackedgan import ABLATION_GRID, StackedSRConfig, StackedSRGenerator
from facegen.train import recipes
from facegen.train.sr import PSGANObjective, StackedSRObjective

torch.set_num_threads(1)


def _batch(cfg, n: int = 2) -> dict[str, torch.Tensor]:
    hr = torch.rand(n, cfg.channels, cfg.hr_size, cfg.hr_size)
    lr = torch.nn.functional.interpolate(hr, size=cfg.lr_size, mode="bicubic", antialias=True).clamp(0, 1)
    return {"lr": lr, "hr": hr}


def _step(objective) -> None:
    """One D and one G forward/backward; every generator parameter gets a finite gradient."""
    batch = _batch(objective.config)
    d, _ = objective.d_loss(batch)
    d.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in objective.D.parameters())
    objective.G.zero_grad()
    g, logs = objective.g_loss(batch)
    g.backward()
    grads = [p.grad for p in objective.G.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert torch.isfinite(d) and torch.isfinite(g) and logs


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("channels", [1, 3])
def test_stackedgan_tiny_forward_backward(scale: int, channels: int) -> None:
    cfg = StackedSRConfig.tiny(scale=scale, lr_size=8, channels=channels)
    obj = StackedSRObjective(cfg)
    outs = obj.G(torch.rand(2, channels, cfg.hr_size, cfg.hr_size) * 2 - 1)
    assert [o.shape[-1] for o in outs] == [8 * s for s in cfg.stages]
    assert all(o.shape[:2] == (2, channels) for o in outs)
    _step(obj)
    # D1 has the conditional L_AB/L_AB' head and the unconditional L_BB' head; one head per stage
    assert sorted(obj.D.nets) == sorted([f"x{s}" for s in cfg.stages] + ["x1_bb"])


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_psgan_tiny_forward_backward(scale: int, channels: int) -> None:
    cfg = PSGANConfig.tiny(scale=scale, channels=channels)
    obj = PSGANObjective(cfg, l1_weight=1.0)
    out = obj.G(torch.randn(2, channels, cfg.lr_size, cfg.lr_size))
    assert out.shape == (2, channels, cfg.hr_size, cfg.hr_size)
    assert obj.D(out).shape == (2, 1)
    _step(obj)


def test_psgan_architecture_follows_paper() -> None:
    cfg = PSGANConfig.paper()
    assert (cfg.lr_size, cfg.hr_size) == (512, 1024)
    g, d = PSGANGenerator(cfg), PSGANDiscriminator(cfg)
    entry = g.body[0]
    assert (entry.kernel_size, entry.stride, entry.out_channels) == ((2, 2), (2, 2), 64)
    assert any(isinstance(m, torch.nn.PixelShuffle) for m in g.body)
    assert all(not isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU)) for m in g.body)  # Tanh only
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 12), (12, 48), (48, 72), (72, 48), (48, 12), (12, 3)]
    assert (convs[0].kernel_size, convs[0].stride) == ((3, 3), (2, 2))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.features) == 4
    assert sum(isinstance(m, torch.nn.Dropout) for m in d.features) == 6
    assert d.linear.out_features == 1


def test_psgan_residual_scale_is_clamped() -> None:
    cfg = PSGANConfig.tiny()
    g = PSGANGenerator(cfg)
    x = torch.randn(1, 3, cfg.lr_size, cfg.lr_size)
    up = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    for raw, used in [(5.0, 0.8), (-1.0, 0.2), (0.5, 0.5)]:
        with torch.no_grad():
            g.residual_scale.fill_(raw)
        torch.testing.assert_close(g(x), g.body(x) + used * up)
    with torch.no_grad():
        g.residual_scale.fill_(5.0)
    g(x).sum().backward()
    assert g.residual_scale.grad.item() == 0.0  # pinned at the bound


def test_stackedgan_up_block_structure() -> None:
    cfg = StackedSRConfig.paper(scale=4, lr_size=16)
    g = StackedSRGenerator(cfg)
    assert len(g.up_blocks) == 2  # one per 2x
    block = g.up_blocks[0]
    res = [m for m in block if m.__class__.__name__ == "ResidualStructure"]
    assert len(res) == 4
    convs = [m for m in res[0].body if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(c.kernel_size == (1, 1) for c in convs)
    deconv = [m for m in block if isinstance(m, torch.nn.ConvTranspose2d)][0]
    assert deconv.stride == (2, 2)
    # the U-Net ends at the LR size: decoder from 1x1 up to 16
    assert len(g.decoder) == 4


def test_ablation_grid_parameter_counts() -> None:
    """Each residual structure adds n 1x1 convs of C x C (+ C bias) per up-sampling block."""
    assert (4, 4) in ABLATION_GRID and len(ABLATION_GRID) == 16
    c = 8
    base = dataclasses.replace(StackedSRConfig.tiny(scale=4), up_channels=c)
    counts = {}
    for m, n in [(1, 1), (2, 3), (4, 4)]:
        counts[m, n] = count_parameters(StackedSRGenerator(dataclasses.replace(base, res_m=m, res_n=n)))
    blocks = 2
    for (m, n), v in counts.items():
        assert v - counts[1, 1] == blocks * (m * n - 1) * (c * c + c)
    assert recipes.model_config("stackedgan", "res2x3", "sr-x4").res_m == 2
    with pytest.raises(recipes.RecipeError):
        recipes.model_config("stackedgan", "res9x9", "sr-x4")


PRESETS = [
    ("stackedgan", "paper", "sr-x4", None, (64, 256)),
    ("stackedgan", "paper", "sr-x4", 32, (32, 128)),
    ("stackedgan", "paper", "sr-x4", 16, (16, 64)),
    ("stackedgan", "paper", "sr-x8", None, (16, 128)),
    ("stackedgan", "lite", "sr-x4", None, (32, 128)),
    ("stackedgan", "lite", "sr-x8", None, (16, 128)),
    ("psgan", "paper", "sr-x2", None, (512, 1024)),
    ("psgan", "lite", "sr-x2", None, (64, 128)),
    ("psgan", "lite", "sr-x4", None, (32, 128)),
]


@pytest.mark.parametrize("model_id,preset,task,lr_size,sizes", PRESETS)
def test_presets_build_at_paper_and_lite_sizes(model_id, preset, task, lr_size, sizes, capsys) -> None:
    recipe = recipes.build(model_id, preset, task, lr_size=lr_size)
    cfg = recipe.model_config
    assert (cfg.lr_size, cfg.hr_size) == sizes
    n_g = recipe.parameter_count()
    n_d = count_parameters(recipe.objective.D)
    with capsys.disabled():
        print(f"\n{model_id} {preset} {task} {sizes[0]}->{sizes[1]}: G {n_g:,} D {n_d:,} parameters")
    assert n_g > 0 and n_d > 0
    if cfg.hr_size <= 128:  # cheap enough to run
        g = recipe.objective.G.eval()
        with torch.no_grad():
            y = g.infer(torch.rand(1, 3, cfg.lr_size, cfg.lr_size))
        assert y.shape == (1, 3, cfg.hr_size, cfg.hr_size) and 0 <= y.min() and y.max() <= 1


def test_stackedgan_paper_x4_matches_pix2pix_unet_scale() -> None:
    # The paper gives no parameter count. Its G1 is Pix2Pix's U-Net-256 encoder (54.4 M parameters
    # for the full U-Net); ours stops the decoder at 64x64, so it must be the same order.
    n = count_parameters(StackedSRGenerator(StackedSRConfig.paper(4, 64)))
    assert 40e6 < n < 60e6


def test_luminance_models_take_chroma_from_bicubic() -> None:
    for g in (StackedSRGenerator(StackedSRConfig.tiny(scale=2, channels=1)), PSGANGenerator(PSGANConfig.tiny(channels=1))):
        g.eval()
        c = g.config
        x = torch.rand(2, 3, c.lr_size, c.lr_size)
        with torch.no_grad():
            y = g.infer(x)
            y_grey = g.infer(x[:, :1])
        assert y.shape == (2, 3, c.hr_size, c.hr_size) and y_grey.shape == (2, 1, c.hr_size, c.hr_size)
        chroma = torch.nn.functional.interpolate(rgb_to_ycbcr(x)[:, 1:], size=c.hr_size, mode="bicubic", align_corners=False)
        got = rgb_to_ycbcr(y)[:, 1:]
        inside = (y > 0.01).all(1, keepdim=True) & (y < 0.99).all(1, keepdim=True)  # clamping moves chroma
        assert ((got - chroma).abs() * inside).max() < 1e-4


def test_ycbcr_round_trip() -> None:
    x = torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5, rtol=0)


def test_infer_rejects_wrong_sizes() -> None:
    g = PSGANGenerator(PSGANConfig.tiny())
    with pytest.raises(ValueError, match="16x16"):
        g.infer(torch.rand(1, 3, 20, 20))


@pytest.mark.parametrize("make", [
    lambda: StackedSRGenerator(StackedSRConfig.tiny(scale=4, channels=1)),
    lambda: StackedSRGenerator(dataclasses.replace(StackedSRConfig.tiny(scale=2), residual_input=True)),
    lambda: PSGANGenerator(PSGANConfig.tiny(scale=4)),
], ids=["stackedgan", "stackedgan-residual", "psgan"])
def test_checkpoint_round_trip(tmp_path: Path, make) -> None:
    torch.manual_seed(0)
    g = make().eval()
    c = g.config
    with torch.no_grad():
        for p in g.parameters():  # move away from the initialisation so the test is meaningful
            p.add_(0.01 * torch.randn_like(p))
    folder = checkpoint.save(g, tmp_path / "ckpt", model_id="x", card="# card\n")
    back = checkpoint.load(folder, type(g))
    assert back.config == c
    x = torch.rand(2, 3, c.lr_size, c.lr_size)
    with torch.no_grad():
        torch.testing.assert_close(back.infer(x), g.infer(x), atol=1e-6, rtol=0)
    for k, v in g.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


def test_model_card_lists_deviations_and_parameters() -> None:
    r = recipes.build("psgan", "lite", "sr-x2")
    card = recipes.model_card(r, 123, "faces", [{"step": 123.0, "psnr": 30.0, "psnr_bicubic": 29.0}])
    assert f"{r.parameter_count():,}" in card and "123 steps" in card and "Deviations" in card
    assert "Gaussian blur" in card and "luminance" in card
    assert r.train.optimizer == "sgd" and r.train.lr_factor(r.train.steps - 1) == pytest.approx(0.25)
