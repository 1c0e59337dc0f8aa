"""Expression networks (papers 001 and 004): shapes, paper equations, pre-processing, landmarks and
heatmaps, checkpoints. Their training (objectives, recipes, data) is in tests/test_expression_training.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from expression_presets import EXPRGAN_PRESETS, LMK_PRESETS
from torch import nn

from facegen import checkpoint, faces, inference, landmarks
from facegen.data import load_image, split
from facegen.models import heatmaps
from facegen.models.exprgan import ExpressionError, ExprGANConfig, ExprGANGenerator, expression_code, unsharp_mask
from facegen.models.layers import PatchDiscriminator, count_parameters, init_normal, rgb_to_ycbcr
from facegen.models.lmk_guided import LmkGuidedConfig, LmkGuidedDiscriminators, LmkGuidedGenerator, MigrationUnit

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- forward


@pytest.mark.parametrize("name", list(EXPRGAN_PRESETS) + list(LMK_PRESETS))
def test_infer_shapes_and_range(name: str) -> None:
    torch.manual_seed(0)
    if name in EXPRGAN_PRESETS:
        c = EXPRGAN_PRESETS[name]
        model = ExprGANGenerator(c).eval()
        kw = {}
    else:
        c = LMK_PRESETS[name]
        model = LmkGuidedGenerator(c).eval()
        kw = {"landmarks": torch.rand(2, 68, 2) * c.size}
    x = torch.rand(2, 3, c.size, c.size)
    y = model.infer(x, ["happy", "sad"], **kw)
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    with pytest.raises(ExpressionError, match="synthesises"):
        model.infer(x, "contempt", **kw)


def test_luminance_model_keeps_input_chroma() -> None:
    torch.manual_seed(0)
    model = ExprGANGenerator(ExprGANConfig.tiny(channels=1)).eval()
    x = torch.rand(1, 3, 32, 32) * 0.5 + 0.25
    y = model.infer(x, "happy")
    # Chroma comes from the input (up to the [0, 1] clamp of the RGB result).
    assert torch.allclose(rgb_to_ycbcr(y)[:, 1:], rgb_to_ycbcr(x)[:, 1:], atol=0.1)


# ----------------------------------------------------------------------------- paper equations


def test_migration_unit_matches_equations() -> None:
    torch.manual_seed(0)
    for first in (True, False):
        block = MigrationUnit(4, first=first, dropout=0.0).eval()
        fp = torch.randn(2, 4, 6, 6)
        fs = torch.randn(2, 4 if first else 8, 6, 6)
        fp_t, fs_t = block(fp, fs)
        s = block.conv_s(fs)
        m = 1.0 / (1.0 + torch.exp(-s))  # eq. 1
        expected_p = m * block.conv_p(fp) + fp  # eq. 2
        expected_s = torch.cat([s, expected_p], dim=1)  # eq. 3
        assert torch.allclose(fp_t, expected_p, atol=1e-6)
        assert torch.allclose(fs_t, expected_s, atol=1e-6)
        assert fs_t.shape[1] == 8  # the next block's conv_s takes 2C channels


def test_expression_code_controller() -> None:
    mag = torch.tensor([[0.5, 0.25], [1.0, 0.0]])
    code = expression_code(torch.tensor([1, 0]), mag, 3)
    assert torch.equal(code[0], torch.tensor([-0.5, -0.25, 0.5, 0.25, -0.5, -0.25]))
    assert torch.equal(code[1], torch.tensor([1.0, 0.0, -1.0, 0.0, -1.0, 0.0]))


def test_intensity_changes_output() -> None:
    torch.manual_seed(0)
    model = ExprGANGenerator(ExprGANConfig.tiny()).eval()
    x = torch.rand(1, 3, 32, 32)
    a, b = model.infer(x, "happy", intensity=0.0), model.infer(x, "happy", intensity=1.0)
    assert (a - b).abs().max() > 1e-4
    assert (model.infer(x, "happy", intensity=1.0) - model.infer(x, "sad", intensity=1.0)).abs().max() > 1e-4
    with pytest.raises(ExpressionError):
        model.infer(x, "happy", intensity=1.5)


def test_lmk_label_maps_are_plus_minus_one() -> None:
    model = LmkGuidedGenerator(LmkGuidedConfig.tiny())
    maps = model.label_maps(torch.tensor([2]), 3, 3, torch.float32)
    assert torch.equal(maps[0, 2], torch.ones(3, 3)) and torch.equal(maps[0, :2], -torch.ones(2, 3, 3))


def test_lmk_guided_depends_on_landmarks_and_label() -> None:
    torch.manual_seed(0)
    model = LmkGuidedGenerator(LmkGuidedConfig.tiny()).eval()
    # The paper's N(0, 0.02) start makes the geometry path's effect vanish below float precision
    # at eval time; larger weights stand in for a trained model.
    init_normal(model, 0.3)
    x = torch.rand(1, 3, 32, 32)
    pts = torch.rand(1, 68, 2) * 31
    base = model.infer(x, "happy", landmarks=pts)
    assert (base - model.infer(x, "happy", landmarks=pts + 3)).abs().max() > 1e-5
    assert (base - model.infer(x, "sad", landmarks=pts)).abs().max() > 1e-5
    with pytest.raises(ExpressionError, match="template"):
        model.infer(x, "happy")  # no template fitted and no landmarks given


# ----------------------------------------------------------------------------- pre-processing


def test_unsharp_mask_constant_and_edges() -> None:
    flat = torch.full((1, 1, 16, 16), 0.4)
    assert torch.allclose(unsharp_mask(flat, 1.0, 1.0), flat, atol=1e-6)
    step = torch.full((1, 1, 16, 16), 0.3)
    step[..., 8:] = 0.7
    out = unsharp_mask(step, 1.0, 1.0)
    # Overshoot on both sides of the edge: darker left of it, brighter right of it.
    assert float(out[0, 0, 8, 7]) < 0.3 - 0.02 and float(out[0, 0, 8, 8]) > 0.7 + 0.02
    assert abs(float(out[0, 0, 8, 7] - out[0, 0, 8, 8])) > 0.4 + 0.04
    # Far from the edge nothing changes.
    assert torch.allclose(out[..., :3], step[..., :3], atol=1e-5)


def test_msd_model_applies_unsharp_mask() -> None:
    c = ExprGANConfig.tiny(encoder="msd", unsharp=True)
    g = ExprGANGenerator(c)
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(g.preprocess(x), unsharp_mask(x, c.unsharp_sigma, c.unsharp_amount) * 2 - 1)
    g0 = ExprGANGenerator(dataclasses.replace(c, unsharp=False))
    assert torch.allclose(g0.preprocess(x), x * 2 - 1)
    assert len(g.encoder.channels) == 2
    assert [m.dilation for m in g.encoder.channels[1] if isinstance(m, nn.Conv2d)] == [(2, 2)] * 5


# ----------------------------------------------------------------------------- landmarks and heatmaps


def test_heatmap_peak_at_landmark() -> None:
    pts = torch.tensor([[[5.0, 9.0], [20.0, 3.0], [float("nan"), 1.0]]])
    maps = heatmaps.render_heatmaps(pts, 32, sigma=1.5)
    assert maps.shape == (1, 3, 32, 32)
    for i, (x, y) in enumerate([(5, 9), (20, 3)]):
        flat = int(maps[0, i].argmax())
        assert (flat % 32, flat // 32) == (x, y)
        assert float(maps[0, i, y, x]) == pytest.approx(1.0)
    assert float(maps[0, 2].abs().max()) == 0.0
    merged = heatmaps.render_heatmaps(pts, 32, sigma=1.5, merge=True)
    assert merged.shape == (1, 1, 32, 32) and float(merged[0, 0, 9, 5]) == pytest.approx(1.0)


def test_template_round_trip() -> None:
    rng = np.random.default_rng(0)
    neutral = rng.uniform(30, 90, size=(6, 68, 2)).astype(np.float32)
    shift = np.zeros((68, 2), np.float32)
    shift[48:68, 1] = 3.0  # mouth moves down 3 px
    target = neutral + shift
    labels = ["happy"] * 6
    disp = heatmaps.mean_displacements(neutral, target, labels, ("neutral", "happy"))
    assert np.allclose(disp[0], 0)
    fitted = heatmaps.fit_template(torch.from_numpy(neutral), torch.ones(6, dtype=torch.long), torch.from_numpy(disp))
    # The mean displacement in inter-ocular units, re-scaled per face, approximates the shift.
    iod = heatmaps.interocular(neutral).numpy()
    expected = neutral + shift[None] * (iod[:, None, None] / iod[:, None, None]).mean()
    assert np.allclose(fitted.numpy().mean(0), expected.mean(0), atol=0.8)
    half = heatmaps.fit_template(torch.from_numpy(neutral), torch.ones(6, dtype=torch.long), torch.from_numpy(disp), 0.5)
    assert torch.allclose(half - torch.from_numpy(neutral), (fitted - torch.from_numpy(neutral)) / 2, atol=1e-5)


def test_lmk_guided_with_template_uses_fitted_landmarks() -> None:
    c = LmkGuidedConfig.tiny()
    model = LmkGuidedGenerator(c).eval()
    disp = torch.zeros(c.n_classes, 68, 2)
    disp[1, 48:, 1] = 0.1
    model.set_template(disp)
    own = torch.rand(1, 68, 2) * 20 + 5
    x = torch.rand(1, 3, 32, 32)
    expected = heatmaps.fit_template(own, torch.tensor([1]), disp, 1.0)
    assert torch.allclose(model.infer(x, "happy", source_landmarks=own), model.infer(x, "happy", landmarks=expected))
    with pytest.raises(ExpressionError, match="own landmarks"):  # the model never looks for landmarks itself
        model.infer(x, "happy")


def test_lmk_guided_intensity_scales_the_change_from_the_input() -> None:
    """0 returns the input (its own geometry), 1 the network's full change, t the share t of that change."""
    c = LmkGuidedConfig.tiny()
    model = LmkGuidedGenerator(c).eval()
    torch.manual_seed(1)
    for p in model.parameters():  # a network that changes the face (a fresh residual one returns its input)
        p.data.normal_(0, 0.2)
    disp = torch.zeros(c.n_classes, 68, 2)
    disp[1, 48:, 1] = 0.1
    model.set_template(disp)
    own = torch.rand(1, 68, 2) * 20 + 5
    x = torch.rand(1, 3, 32, 32)
    full = model.infer(x, "happy", source_landmarks=own)
    assert (full - x).abs().mean() > 0.01
    assert torch.equal(model.infer(x, "happy", 0.0, source_landmarks=own), x)
    half_shift = heatmaps.fit_template(own, torch.tensor([1]), disp, 0.5)
    at_half = model.infer(x, "happy", 0.5, source_landmarks=own)
    assert torch.allclose(at_half, x + 0.5 * (model.infer(x, "happy", landmarks=half_shift) - x), atol=1e-6)


def test_runner_gives_a_template_model_the_faces_own_landmarks(monkeypatch) -> None:
    """Finding landmarks is the runner's job (facegen.landmarks), not the model's."""
    c = LmkGuidedConfig.tiny()
    model = LmkGuidedGenerator(c).eval()
    model.set_template(torch.rand(c.n_classes, 68, 2) * 0.1)
    own = torch.rand(1, 68, 2) * 20 + 5
    seen = []
    monkeypatch.setattr(inference, "landmarks_of_batch", lambda x: seen.append(x.shape) or own)
    runner = inference.Runner("lmk-guided", "expression", model, "cpu")
    face = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    x = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 255
    out = runner([face], expression="happy")[0]
    want = model.infer(x, "happy", source_landmarks=own)[0].mul(255).round().byte().permute(1, 2, 0).numpy()
    assert seen == [(1, 3, 32, 32)] and np.array_equal(out, want)
    runner([face], expression="happy", landmarks=own)  # given target landmarks: none are looked for
    assert len(seen) == 1


@pytest.mark.slow
def test_photo_and_crop_landmarks_agree(data_root) -> None:
    record = split("jaffe", "judge", data_root).train[0]
    photo = load_image(record)
    crop = faces.align(photo, faces.detect_faces(photo)[0], 128, "expression").image
    a, b = landmarks.photo_landmarks(photo), landmarks.crop_landmarks(crop)
    assert a.shape == b.shape == (68, 2)
    assert float(np.abs(a - b).mean()) < 1.0  # pixels at 128: two routes to the same points


# ----------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("name", ["exprgan", "exprgan-msd", "lmk-guided", "lmk-guided-no-feature-init"])
def test_save_load_round_trip(tmp_path, name: str) -> None:
    torch.manual_seed(0)
    if name.startswith("exprgan"):
        c = EXPRGAN_PRESETS[name]
        model, cls, kw = ExprGANGenerator(c), ExprGANGenerator, {}
    else:
        c = LMK_PRESETS[name]
        model, cls = LmkGuidedGenerator(c), LmkGuidedGenerator
        model.set_template(torch.randn(c.n_classes, 68, 2) * 0.05)
        kw = {"landmarks": torch.rand(2, 68, 2) * c.size}
    # A few training-mode forwards so the BatchNorm statistics are not their initial values.
    model.train()
    with torch.no_grad():
        for _ in range(2):
            if name.startswith("exprgan"):
                model(torch.rand(2, c.channels, c.size, c.size) * 2 - 1, model.code(torch.tensor([0, 1]), torch.rand(2, c.rb_dim)))
            else:
                model(torch.rand(2, 3, c.size, c.size), torch.rand(2, 68, c.size, c.size), torch.tensor([0, 1]))
    model.eval()
    folder = checkpoint.save(model, tmp_path / name, model_id=name, card=f"# {name}\n")
    loaded = checkpoint.load(folder, cls)
    assert loaded.config == c
    for k, v in model.state_dict().items():
        assert torch.allclose(v.float(), loaded.state_dict()[k].float(), atol=1e-6), k
    x = torch.rand(2, 3, c.size, c.size)
    assert torch.allclose(model.infer(x, "happy", **kw), loaded.infer(x, "happy", **kw), atol=1e-6)


def test_lite_presets_fit_the_size_budget() -> None:
    configs = [ExprGANConfig.lite(), ExprGANConfig.lite(encoder="msd", unsharp=True), LmkGuidedConfig.lite()]
    for c in configs:
        model = ExprGANGenerator(c) if isinstance(c, ExprGANConfig) else LmkGuidedGenerator(c)
        assert count_parameters(model) * 4 < 5_000_000, c


def test_lmk_guided_discriminators_are_table_3_patchgans() -> None:
    """Paper 004's Table 3 through the one PatchDiscriminator: widths 64-128-256-512 (uncapped), no bias and
    BatchNorm on the one-channel output map, (condition, image) order per discriminator."""
    c = LmkGuidedConfig.paper()
    d = LmkGuidedDiscriminators(c)
    convs = [m for m in d.image.net if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 128, 256, 512, 1] and convs[-1].bias is None
    assert isinstance(d.image.net[-1], nn.BatchNorm2d) and isinstance(d, nn.Module)
    assert isinstance(d.image, PatchDiscriminator) and d.geometry.net[0].in_channels == c.channels + c.heat_channels
    x, y = torch.rand(1, c.channels, 64, 64), torch.rand(1, c.channels, 64, 64)
    d.eval()
    assert torch.equal(d("image", x, y), d.image.net(torch.cat([y, x], 1)))
    wide = PatchDiscriminator(6, 8, 4, max_mult=16, output_norm=True)
    assert [m.out_channels for m in wide.net if isinstance(m, nn.Conv2d)] == [8, 16, 32, 64, 128, 1]
