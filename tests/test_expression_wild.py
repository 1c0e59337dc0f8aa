"""The ``wild`` recipe of ``lmk-guided`` (paper 004): residual outputs, studio pairs beside LFW pairs
of two photos of one person, and the label-conditioned face-box discriminator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_expression_training import _step, lmk_batch, tiny_features

from facegen.models import heatmaps
from facegen.models.lmk_guided import LmkGuidedConfig, LmkGuidedGenerator
from facegen.models.pix2pix import ResizeConv
from facegen.train import expression_recipe as ex
from facegen.train.expression import LmkGuidedObjective
from facegen.train.expression_data import FLIP_68, PairedFaces, WildExpressionSet

torch.set_num_threads(1)
EXPRS = ("neutral", "happy", "sad")


def _wild_batch(c: LmkGuidedConfig, registered: list[float]) -> dict[str, torch.Tensor]:
    b = lmk_batch(c, len(registered))
    b["registered"] = torch.tensor(registered)
    return b


def test_residual_generator_starts_as_the_input() -> None:
    c = LmkGuidedConfig.tiny(residual=True)
    g = LmkGuidedGenerator(c).eval()
    x = torch.rand(2, 3, c.size, c.size) * 2 - 1
    heat = g.heatmaps(torch.rand(2, 68, 2) * (c.size - 1))
    assert torch.equal(g(x, heat, torch.tensor([1, 2])), x)
    assert not isinstance(g.decoder[-1], torch.nn.Tanh) and isinstance(LmkGuidedGenerator(LmkGuidedConfig.tiny()).decoder[-1], torch.nn.Tanh)
    assert ex.model_config("lmk-guided", "wild").residual and not ex.model_config("lmk-guided", "lite").residual


def test_wild_decoder_up_samples_by_resize_convolutions() -> None:
    wild = ex.model_config("lmk-guided", "wild")
    assert wild.upsample == "resize" and ex.model_config("lmk-guided", "lite").upsample == "transpose"
    kinds = {type(m) for m in LmkGuidedGenerator(LmkGuidedConfig.tiny(upsample="resize")).decoder}
    assert ResizeConv in kinds and torch.nn.ConvTranspose2d not in kinds
    assert torch.nn.ConvTranspose2d in {type(m) for m in LmkGuidedGenerator(LmkGuidedConfig.tiny()).decoder}
    with pytest.raises(ValueError, match="upsample"):
        LmkGuidedConfig.tiny(upsample="bilinear")


def _pairs(n: int, labels: tuple[str, ...], seed: int, size: int = 32) -> PairedFaces:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, size=(n, size, size, 3), dtype=np.uint8)
    pts = rng.uniform(8, size - 8, size=(n, 68, 2)).astype(np.float32)
    return PairedFaces(img, img[::-1].copy(), pts, pts[::-1].copy() + 1.0, labels, tuple(f"p{i}" for i in range(n)))


def test_wild_set_gives_lfw_pairs_the_fitted_template_and_studio_pairs_their_target() -> None:
    studio = _pairs(2, ("happy", "sad"), 0)
    lfw = _pairs(5, ("happy", "happy", "happy", "happy", "sad"), 1)
    template = np.random.default_rng(2).normal(0, 0.1, size=(3, 68, 2)).astype(np.float32)
    ds = WildExpressionSet(studio, lfw, EXPRS, template, channels=1, studio_share=0.5, max_repeat=3, flip=False)
    counts = ds.counts()
    assert counts["lfw"] == {"happy": 4, "sad": 3}  # the rare class repeated (capped at 3 copies)
    assert sum(counts["studio"].values()) == 2 * round(7 / 2)  # about half of the items
    for j, (s, i) in enumerate(ds.index):
        item = ds[j]
        assert item["lr"].shape == (1, 32, 32) and float(item["registered"]) == (1.0 if s == 0 else 0.0)
        p = (studio, lfw)[s]
        if s == 0:
            assert np.allclose(item["landmarks"].numpy(), p.target_landmarks[i])
        else:
            own = torch.from_numpy(p.neutral_landmarks[i:i + 1])
            want = heatmaps.fit_template(own, item["label"][None], torch.from_numpy(template))[0]
            assert torch.allclose(item["landmarks"], want)
            assert not torch.allclose(item["landmarks"], own[0])


def test_wild_set_flips_images_and_both_landmark_sets_together() -> None:
    studio = _pairs(1, ("happy",), 0)
    lfw = _pairs(1, ("sad",), 1)
    template = np.random.default_rng(2).normal(0, 0.1, size=(3, 68, 2)).astype(np.float32)
    plain = WildExpressionSet(studio, lfw, EXPRS, template, channels=3, flip=False)
    flips = WildExpressionSet(studio, lfw, EXPRS, template, channels=3, flip=True)
    j = next(j for j, (s, _) in enumerate(flips.index) if s == 1)
    seen = set()
    for epoch in range(10):
        flips.set_epoch(epoch)
        a, b = plain[j], flips[j]
        if torch.equal(a["lr"], b["lr"]):
            seen.add("plain")
            continue
        seen.add("flipped")
        assert torch.equal(b["lr"], a["lr"].flip(-1)) and torch.equal(b["hr"], a["hr"].flip(-1))
        assert np.allclose(b["landmarks"].numpy()[:, 0], 31 - a["landmarks"].numpy()[FLIP_68, 0])
        assert np.allclose(b["landmarks"].numpy()[:, 1], a["landmarks"].numpy()[FLIP_68, 1])
    assert seen == {"plain", "flipped"}


def test_wild_objective_keeps_photo_pairs_out_of_the_paired_games_and_the_pixel_target() -> None:
    c = LmkGuidedConfig.tiny(channels=1, residual=True)
    torch.manual_seed(0)
    obj = LmkGuidedObjective(c, perceptual_net=tiny_features(), face_gan_weight=2.0, perceptual_size=16)
    assert set(obj.modules()) == {"G", "D", "D_face"}
    batch = _wild_batch(c, [1.0, 0.0, 0.0, 1.0])
    d, g = _step(obj, batch)
    assert np.isfinite(d) and np.isfinite(g)
    for m in obj.modules().values():
        m.eval()  # no dropout or batch statistics: the two passes below see the same networks

    def losses_with(target: torch.Tensor) -> dict[str, float]:
        b = {**batch, "hr": target}
        _, dl = obj.d_loss(b)
        _, gl = obj.g_loss(b)
        return {**dl, **gl}

    base = losses_with(batch["hr"])
    moved = batch["hr"].clone()
    moved[1:3] = 1 - moved[1:3]  # the photo pairs' targets only
    other = losses_with(moved)
    for key in ("D_image", "D_geometry", "G_pixel", "G_per"):  # photo pairs reach none of these
        assert other[key] == pytest.approx(base[key], abs=1e-6), key
    assert other["D_face"] != pytest.approx(base["D_face"], abs=1e-6)  # the face-box discriminator sees every target


def test_face_discriminator_reads_the_label() -> None:
    """The face-box discriminator sees the label as maps beside the face and is trained on a real
    face with another label as not real."""
    c = LmkGuidedConfig.tiny(channels=1, residual=True)
    torch.manual_seed(0)
    obj = LmkGuidedObjective(c, perceptual_net=tiny_features(), face_gan_weight=1.0)
    _, logs = obj.d_loss(_wild_batch(c, [1.0, 0.0]))
    assert {"D_face", "D_face_real", "D_face_fake", "D_face_mismatch"} <= set(logs)
    assert obj._d_face[0].in_channels == c.channels + c.n_classes


def test_wild_recipe_declares_its_departures() -> None:
    cfg, obj, train, deviations = ex.build("lmk-guided", "wild", steps=10)
    assert obj.face_gan_weight == ex.WILD_FACE_GAN_WEIGHT and obj.perceptual_size == ex.WILD_PERCEPTUAL_SIZE
    text = " ".join(deviations)
    for words in ("two photos", "face-box discriminator", "residual output", "template fitted"):
        assert words in text, words
    cfg, obj, train, deviations = ex.build("lmk-guided", "lite", steps=10)
    assert obj.D_face is None and obj.perceptual_size is None and "residual" not in " ".join(deviations)
