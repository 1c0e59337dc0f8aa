"""Expression models (papers 001 and 004): shapes, equations, pre-processing, losses, checkpoints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from facegen import checkpoint, inference, landmarks, losses
from facegen.models import heatmaps
from facegen.models.exprgan import (
    ExpressionError,
    ExprGANCodeDiscriminator,
    ExprGANConfig,
    ExprGANGenerator,
    expression_code,
    unsharp_mask,
)
from facegen.models.layers import init_normal
from facegen.models.lmk_guided import LmkGuidedConfig, LmkGuidedGenerator, MigrationUnit
from facegen.train.expression import ExprGANObjective, FeatureExtractor, LmkGuidedObjective

torch.set_num_threads(1)

EXPRGAN_PRESETS = {
    "exprgan": ExprGANConfig.tiny(),
    "exprgan-grey": ExprGANConfig.tiny(channels=1),
    "exprgan-msd": ExprGANConfig.tiny(encoder="msd", unsharp=True),
    "exprgan-msd-no-unsharp": ExprGANConfig.tiny(encoder="msd", unsharp=False),
}
LMK_PRESETS = {
    "lmk-guided": LmkGuidedConfig.tiny(),
    "lmk-guided-grey": LmkGuidedConfig.tiny(channels=1),
    "lmk-guided-no-feature-init": LmkGuidedConfig.tiny().without_feature_init(),
    "lmk-guided-no-label": LmkGuidedConfig.tiny().without_label(),
    "lmk-guided-merged-heatmaps": LmkGuidedConfig.tiny(merge_heatmaps=True),
}


def tiny_features() -> FeatureExtractor:
    """A small random VGG-like stack (the real VGG16 is an asset; tests stay offline and fast)."""
    torch.manual_seed(123)
    feats = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(inplace=True))
    return FeatureExtractor(feats, [2, 5])


def exprgan_batch(c: ExprGANConfig, n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, c.channels, c.size, c.size, generator=g)
    return {"lr": x, "hr": x.clone(), "label": torch.arange(n) % c.n_classes}


def lmk_batch(c: LmkGuidedConfig, n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"lr": torch.rand(n, c.channels, c.size, c.size, generator=g),
            "hr": torch.rand(n, c.channels, c.size, c.size, generator=g),
            "label": torch.arange(n) % c.n_classes,
            "landmarks": torch.rand(n, 68, 2, generator=g) * (c.size - 1)}


def _step(obj, batch) -> tuple[float, float]:
    """One D and one G loss + backward, as the trainer runs them; every parameter gets a gradient."""
    mods = obj.modules()
    for m in mods.values():
        m.train()
    d, _ = obj.d_loss(batch)
    d.backward()
    g, _ = obj.g_loss(batch)
    for m in mods.values():
        m.zero_grad()
    g.backward()
    grads = [p.grad for p in mods["G"].parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    return float(d.detach()), float(g.detach())


# ----------------------------------------------------------------------------- forward / backward


@pytest.mark.parametrize("name", list(EXPRGAN_PRESETS))
@pytest.mark.parametrize("stage1_steps", [10, 0])  # stage 1 (reconstruction) and stage 2 (full)
def test_exprgan_objective_both_stages(name: str, stage1_steps: int) -> None:
    c = EXPRGAN_PRESETS[name]
    torch.manual_seed(0)
    obj = ExprGANObjective(c, stage1_steps=stage1_steps, identity_net=tiny_features())
    assert obj.stage == ("reconstruction" if stage1_steps else "full")
    d, g = _step(obj, exprgan_batch(c))
    assert np.isfinite(d) and np.isfinite(g)
    # The discriminators learn in both stages: D_z and D_img (with Q) get gradients from d_loss.
    obj2 = ExprGANObjective(c, stage1_steps=stage1_steps, identity_net=tiny_features())
    loss, logs = obj2.d_loss(exprgan_batch(c))
    loss.backward()
    assert all(p.grad is not None for p in obj2.Dz.parameters())
    assert {"D_img", "D_q", "D_z"} <= set(logs)
    g_loss, g_logs = obj2.g_loss(exprgan_batch(c))
    assert ("G_adv_img" in g_logs) == (stage1_steps == 0)


def test_exprgan_stage_switch_follows_step() -> None:
    obj = ExprGANObjective(ExprGANConfig.tiny(), stage1_steps=3, identity_net=tiny_features())
    obj.set_step(2)
    assert obj.stage == "reconstruction"
    obj.set_step(3)
    assert obj.stage == "full"


@pytest.mark.parametrize("name", list(LMK_PRESETS))
def test_lmk_guided_objective(name: str) -> None:
    c = LMK_PRESETS[name]
    torch.manual_seed(0)
    obj = LmkGuidedObjective(c, perceptual_net=tiny_features())
    d, g = _step(obj, lmk_batch(c))
    assert np.isfinite(d) and np.isfinite(g)


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
    from facegen.models.layers import rgb_to_ycbcr

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


# ----------------------------------------------------------------------------- heatmaps


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
    from facegen.models.layers import count_parameters

    configs = [ExprGANConfig.lite(), ExprGANConfig.lite(encoder="msd", unsharp=True), LmkGuidedConfig.lite()]
    for c in configs:
        model = ExprGANGenerator(c) if isinstance(c, ExprGANConfig) else LmkGuidedGenerator(c)
        assert count_parameters(model) * 4 < 5_000_000, c


# ----------------------------------------------------------------------------- recipes and data


def test_every_preset_has_a_config() -> None:
    from facegen.train import expression as ex

    for model_id, presets in ex.PRESETS.items():
        for preset in presets:
            c = ex.model_config(model_id, preset)
            assert c.channels == (1 if preset in ("lite", "no-unsharp", "no-feature-init", "no-label") else 3)
    assert ex.model_config("exprgan-msd", "no-unsharp").unsharp is False
    assert ex.model_config("exprgan-msd", "lite").unsharp is True
    assert ex.model_config("lmk-guided", "paper-no-label").label_maps is False
    assert ex.model_config("lmk-guided", "no-feature-init").feature_init is False
    with pytest.raises(ex.ExpressionRecipeError):
        ex.model_config("exprgan", "no-unsharp")
    cfg, obj, train, deviations = ex.build("exprgan", "paper", steps=10)
    assert obj.stage1_steps == 5 and train.g_lr == 1e-4 and any("VGG-Face" in d for d in deviations)
    assert obj.weights == (1.0, 1.0, 0.01, 0.01, 0.001) and train.batch_size == 48 and obj.barrier_weight == 0.0
    cfg, obj, train, deviations = ex.build("exprgan-msd", "lite", steps=10)
    assert obj.weights == ex.LITE_EXPRGAN_WEIGHTS and train.g_lr == ex.LITE_EXPRGAN_LR
    assert obj.barrier_weight == ex.LITE_EXPRGAN_CODE_BARRIER and any("barrier" in d for d in deviations)
    assert any("identity-loss weight 0.1" in d for d in deviations) and any("no LFW" in d for d in deviations)
    cfg, obj, train, deviations = ex.build("lmk-guided", "tiny", steps=10)
    assert obj.weights == (5.0, 10.0, 10.0) and train.g_lr == 2e-4 and train.batch_size == 16


def test_flip_permutation_is_a_mirror() -> None:
    from facegen.train.expression_data import FLIP_68, flip_landmarks

    assert sorted(FLIP_68.tolist()) == list(range(68))
    assert np.array_equal(FLIP_68[FLIP_68], np.arange(68))  # an involution
    assert set(FLIP_68[36:42].tolist()) == set(range(42, 48)) and FLIP_68[0] == 16 and FLIP_68[48] == 54
    # A symmetric face (x mirrored about the centre line) is its own mirror image.
    rng = np.random.default_rng(0)
    half = rng.uniform(0, 60, size=(68, 2)).astype(np.float32)
    pts = np.zeros((68, 2), np.float32)
    for i in range(68):
        j = FLIP_68[i]
        if i < j:
            pts[i] = half[i]
            pts[j] = (127 - half[i, 0], half[i, 1])
        elif i == j:
            pts[i] = (63.5, half[i, 1])
    assert np.allclose(flip_landmarks(pts, 128), pts)
    assert np.allclose(flip_landmarks(flip_landmarks(half, 128), 128), half)


def test_paired_set_flips_images_and_landmarks_together() -> None:
    from facegen.train.expression_data import FLIP_68, PairedExpressionSet, PairedFaces

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(3, 32, 32, 3), dtype=np.uint8)
    pts = rng.uniform(0, 31, size=(3, 68, 2)).astype(np.float32)
    pairs = PairedFaces(img, img[::-1].copy(), pts, pts[::-1].copy(), ("happy", "sad", "contempt"), ("a", "b", "c"))
    ds = PairedExpressionSet(pairs, ("neutral", "happy", "sad"), channels=3, flip=True)
    assert len(ds) == 2  # contempt is not one of the model's expressions
    flipped = plain = 0
    for epoch in range(8):
        ds.set_epoch(epoch)
        item = ds[0]
        src = (item["lr"].permute(1, 2, 0) * 255).round().byte().numpy()
        if np.array_equal(src, img[0]):
            plain += 1
            assert np.allclose(item["landmarks"].numpy(), pts[2])
        else:
            flipped += 1
            assert np.array_equal(src, img[0][:, ::-1])
            assert np.allclose(item["landmarks"].numpy()[:, 0], 31 - pts[2][FLIP_68, 0])
        assert int(item["label"]) == 1
    assert flipped and plain


def test_feature_extractor_keeps_pre_relu_outputs() -> None:
    torch.manual_seed(0)
    feats = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3, padding=1))
    ext = FeatureExtractor(feats, [0, 2])
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    a, b = ext(x)
    from facegen.models.layers import IMAGENET_MEAN, IMAGENET_STD

    norm = ((x + 1) / 2 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(a, feats[0](norm), atol=1e-6) and float(a.min()) < 0  # not overwritten by the ReLU
    assert torch.allclose(b, feats[2](torch.relu(feats[0](norm))), atol=1e-6)
    assert all(not p.requires_grad for p in ext.parameters())


@pytest.mark.slow
def test_training_pairs_never_hold_test_subjects(data_root) -> None:
    from facegen.data.splits import TEST_SUBJECTS
    from facegen.train import expression_data as ed

    held = set(TEST_SUBJECTS["jaffe", "expression"]) | set(TEST_SUBJECTS["rafd_subset", "expression"])
    train = ed.paired_faces(data_root, "train", progress=False)
    val = ed.paired_faces(data_root, "val", progress=False)
    assert not (set(train.subjects) | set(val.subjects)) & held
    assert not set(train.subjects) & set(val.subjects)
    assert len(train.subjects) > 300 and np.isfinite(train.target_landmarks).all()
    template = ed.template_displacements(train, ("neutral", "happy", "surprise"))
    # Smiles widen the mouth (corners 48 and 54 move apart); surprise drops the jaw (point 8 moves down).
    assert template[1, 54, 0] - template[1, 48, 0] > 0.05 and template[2, 8, 1] > 0.05
    assert np.allclose(template[0], 0)


@pytest.mark.slow
def test_photo_and_crop_landmarks_agree(data_root) -> None:
    from facegen import faces
    from facegen.data import load_image, split

    record = split("jaffe", "judge", data_root).train[0]
    photo = load_image(record)
    crop = faces.align(photo, faces.detect_faces(photo)[0], 128, "expression").image
    a, b = landmarks.photo_landmarks(photo), landmarks.crop_landmarks(crop)
    assert a.shape == b.shape == (68, 2)
    assert float(np.abs(a - b).mean()) < 1.0  # pixels at 128: two routes to the same points


def test_model_card_names_the_substitutions() -> None:
    from facegen.train import expression as ex

    for model_id, needle in (("exprgan", "VGG-Face"), ("lmk-guided", "VGG19")):
        cfg, obj, train, deviations = ex.build(model_id, "tiny", steps=4)
        card = ex.model_card(model_id, "tiny", cfg, steps_done=4, train=train, data_desc="test faces",
                             deviations=deviations, history=[{"step": 4.0, "psnr": 20.0}])
        assert needle in card and "psnr 20" in card and f"{model_id} (tiny, expression)" in card


def test_exprgan_code_prior_acts_in_stage_one() -> None:
    # Without the prior on the identity code in stage 1, the lite model's tanh code went to +-1 in
    # every entry within a few dozen steps of reconstruction on real faces and never recovered.
    c = ExprGANConfig.tiny(channels=1)
    batch = exprgan_batch(c)
    torch.manual_seed(0)
    obj = ExprGANObjective(c, stage1_steps=1000, identity_net=tiny_features())
    torch.manual_seed(1)  # the same random expression magnitudes and prior samples both times
    obj.d_loss(batch)
    g1, logs = obj.g_loss(batch)
    assert obj.stage == "reconstruction" and "G_adv_z" in logs and "G_adv_img" not in logs
    with torch.no_grad():  # a D_z that finds every code fake: the stage-1 generator loss must feel it
        for p in obj.Dz.parameters():
            p.zero_()
        list(obj.Dz.parameters())[-1].fill_(-5.0)
    torch.manual_seed(1)
    obj.d_loss(batch)
    g2, logs2 = obj.g_loss(batch)
    assert logs2["G_adv_z"] > logs["G_adv_z"] and float(g2) > float(g1)


def test_code_discriminator_tells_saturated_codes_from_the_prior() -> None:
    # D_z must see prior samples and codes in one batch: with its batch normalisation run on each
    # separately it stayed at chance (loss 2 ln 2 = 1.386) while the lite model's code saturated.
    c = ExprGANConfig.lite()
    obj = ExprGANObjective(c, identity_net=tiny_features())

    def train(joint: bool) -> float:
        torch.manual_seed(0)
        obj.Dz = obj._dz = ExprGANCodeDiscriminator(c)
        opt = torch.optim.Adam(obj.Dz.parameters(), lr=1e-3, betas=(0.5, 0.999))
        for _ in range(300):
            z = torch.sign(torch.randn(8, c.code_dim)) * 0.995  # a saturated code
            if joint:
                prior_logit, z_logit = obj._dz_logits(z)
            else:
                prior_logit, z_logit = obj.Dz(torch.rand_like(z) * 2 - 1), obj.Dz(z)
            loss = losses.gan_d_loss(prior_logit, z_logit)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(loss.detach())

    assert train(joint=False) > 1.3
    assert train(joint=True) < 0.8


def test_code_barrier_is_two_log_cosh_and_pulls_saturated_entries_back() -> None:
    from facegen.train.expression import code_barrier

    a = torch.tensor([-5.0, -1.0, 0.0, 0.3, 2.0, 5.0], dtype=torch.float64, requires_grad=True)
    value = code_barrier(torch.tanh(a))
    assert torch.allclose(value, (2 * torch.log(torch.cosh(a))).mean())
    value.backward()
    # d/da = 2 tanh(a) / n: at |a| = 5, where tanh' is 1.8e-4, the pull is still ~2 / n.
    assert torch.allclose(a.grad, 2 * torch.tanh(a.detach()) / len(a))
    assert abs(float(a.grad[-1])) > 0.3


def test_exprgan_barrier_weight_enters_the_generator_loss() -> None:
    from facegen.train.expression import code_barrier

    c = ExprGANConfig.tiny(channels=1)
    batch = exprgan_batch(c)
    totals = []
    for weight in (0.0, 0.5):
        torch.manual_seed(0)
        obj = ExprGANObjective(c, stage1_steps=10, identity_net=tiny_features(), barrier_weight=weight)
        torch.manual_seed(1)
        obj.d_loss(batch)
        z = obj._cache[1].detach()
        total, logs = obj.g_loss(batch)
        totals.append(float(total))
        assert ("G_code" in logs) == (weight > 0) and 0.0 <= logs["z_saturated"] <= 1.0
    assert totals[1] - totals[0] == pytest.approx(0.5 * float(code_barrier(z)), rel=1e-4)
