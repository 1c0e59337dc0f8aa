"""Training the expression models (papers 001 and 004): objectives (both ExprGAN stages, the code prior
and barrier), recipes and presets, paired data, model cards. The networks are in tests/test_expression_models.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from expression_presets import EXPRGAN_PRESETS, LMK_PRESETS
from torch import nn

from facegen import losses
from facegen.data.splits import TEST_SUBJECTS
from facegen.models.exprgan import ExprGANCodeDiscriminator, ExprGANConfig
from facegen.models.layers import IMAGENET_MEAN, IMAGENET_STD
from facegen.models.lmk_guided import LmkGuidedConfig
from facegen.train import expression_recipe as ex
from facegen.train import expression_data as ed
from facegen.train.expression import ExprGANObjective, FeatureExtractor, LmkGuidedObjective, code_barrier
from facegen.train.expression_data import FLIP_68, PairedExpressionSet, PairedFaces, flip_landmarks

torch.set_num_threads(1)


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


# ----------------------------------------------------------------------------- objectives


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
    a = torch.tensor([-5.0, -1.0, 0.0, 0.3, 2.0, 5.0], dtype=torch.float64, requires_grad=True)
    value = code_barrier(torch.tanh(a))
    assert torch.allclose(value, (2 * torch.log(torch.cosh(a))).mean())
    value.backward()
    # d/da = 2 tanh(a) / n: at |a| = 5, where tanh' is 1.8e-4, the pull is still ~2 / n.
    assert torch.allclose(a.grad, 2 * torch.tanh(a.detach()) / len(a))
    assert abs(float(a.grad[-1])) > 0.3


def test_exprgan_barrier_weight_enters_the_generator_loss() -> None:
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


# ----------------------------------------------------------------------------- recipes and data


def test_every_preset_has_a_config() -> None:
    for model_id, presets in ex.PRESETS.items():
        for preset in presets:
            c = ex.model_config(model_id, preset)
            assert c.channels == (1 if preset in ("lite", "wild", "tight", "wild-no-unsharp", "no-unsharp", "no-feature-init", "no-label") else 3)
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
    norm = ((x + 1) / 2 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(a, feats[0](norm), atol=1e-6) and float(a.min()) < 0  # not overwritten by the ReLU
    assert torch.allclose(b, feats[2](torch.relu(feats[0](norm))), atol=1e-6)
    assert all(not p.requires_grad for p in ext.parameters())


@pytest.mark.slow
def test_training_pairs_never_hold_test_subjects(data_root) -> None:
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


def test_pairs_on_the_tight_crop_are_the_same_pairs_with_the_face_filling_it(data_root) -> None:
    """``template="celeba"`` (lmk-guided's tight preset): the same validation pairs, each face cut so
    its landmarks span about 1.7x as many pixels as on the 6.4 d square, the eyes on the template."""
    from facegen.faces import template_points

    loose = ed.paired_faces(data_root, "val", progress=False)
    tight = ed.paired_faces(data_root, "val", progress=False, template="celeba")
    assert tight.subjects == loose.subjects and tight.expressions == loose.expressions
    width = lambda pts: np.ptp(pts[..., 0], axis=-1)  # noqa: E731
    ratio = np.median(width(tight.neutral_landmarks) / width(loose.neutral_landmarks))
    assert 1.5 < ratio < 2.0, ratio
    eyes = np.stack([tight.neutral_landmarks[:, 36:42].mean(1), tight.neutral_landmarks[:, 42:48].mean(1)], 1)
    assert np.abs(np.median(eyes, 0) - template_points("celeba", 128)[:2]).max() < 4  # pixels


def test_labelled_faces_never_hold_test_people(data_root) -> None:
    """ExprGAN's reconstruction faces: no expression test subject, and no held-out LFW person
    (the expression-wild protocol's) even though the judges' split keeps them."""
    from facegen.data.wild import LFW_TEST_IDENTITIES

    held = {("jaffe", s) for s in TEST_SUBJECTS["jaffe", "expression"]} | {
        ("rafd_subset", s) for s in TEST_SUBJECTS["rafd_subset", "expression"]}
    with_lfw = ed.labelled_records(data_root, "train", use_lfw=True)
    assert not {(r.dataset, r.subject) for r in with_lfw} & held
    lfw = [r for r in with_lfw if r.dataset == "lfw_expressions"]
    assert len(lfw) > 10_000 and not {r.subject for r in lfw} & set(LFW_TEST_IDENTITIES)
    studio = ed.labelled_records(data_root, "train", use_lfw=False)
    val = ed.labelled_records(data_root, "val", use_lfw=True)
    assert all(r.dataset != "lfw_expressions" for r in studio + val) and len(studio) + len(lfw) == len(with_lfw)
    assert not {r.key for r in val} & {r.key for r in with_lfw}


def test_model_card_names_the_substitutions() -> None:
    for model_id, needle in (("exprgan", "VGG-Face"), ("lmk-guided", "VGG19")):
        cfg, obj, train, deviations = ex.build(model_id, "tiny", steps=4)
        card = ex.model_card(model_id, "tiny", cfg, steps_done=4, train=train, data_desc="test faces",
                             deviations=deviations, history=[{"step": 4.0, "psnr": 20.0}])
        assert needle in card and "psnr 20" in card and f"{model_id} (tiny, expression)" in card


def test_the_tight_preset_is_the_wild_recipe_on_the_tight_crop_and_says_so() -> None:
    from facegen.faces import face_box

    wild, tight = ex.build("lmk-guided", "wild", steps=4), ex.build("lmk-guided", "tight", steps=4)
    assert tight[0] == LmkGuidedConfig.wild(template="celeba") and wild[0].template == "expression"
    assert tight[1].face_box == face_box("celeba") and wild[1].face_box == face_box("expression")
    assert set(tight[3]) - set(wild[3]) == {ex.TIGHT_CROP} and len(tight[3]) == len(wild[3]) + 1
    assert tight[2] == wild[2]
    card = ex.model_card("lmk-guided", "tight", tight[0], steps_done=4, train=tight[2], data_desc="test faces",
                         deviations=tight[3])
    assert "template 'celeba'" in card and "template = celeba" in card and ex.TIGHT_CROP in card
