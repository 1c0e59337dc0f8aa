"""The smile ``wild`` preset: residual outputs that start as the identity, the tight crop, the
studio + LFW pair mix and the misregistration-tolerant L1 of the LFW pairs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facegen import losses
from facegen.models.layers import bicubic_resize
from facegen.models.pix2pix import ResizeConv, up2x
from facegen.models.smile import SmileConfig, SmileGenerator, SmileTrainNet
from facegen.faces import box_slices, face_box
from facegen.train.photo_pairs import (
    BOX_ANCHOR,
    LIGHT_FREE,
    LIGHT_GRID,
    anchor_weights,
    light_excess,
    reconstruction,
)
from facegen.train.smile import WILD_LIGHT_WEIGHT, SmileObjective, smile_pieces
from facegen.train.smile_data import SmileDataError, SmilePairs, studio_repeat


def _tiny_residual(method: str) -> SmileConfig:
    return dataclasses.replace(SmileConfig.tiny(method, channels=1), residual=True, upsample="resize",
                               template="celeba")


def test_wild_preset() -> None:
    c = SmileConfig.preset("wild", "parallel", "lite")
    assert c.residual and c.template == "celeba" and c.upsample == "resize"
    assert dataclasses.replace(c, residual=False, upsample="transpose", template="expression") == SmileConfig.lite("parallel")
    assert SmileConfig.preset("wild-no-residual", "parallel") == dataclasses.replace(c, residual=False)
    with pytest.raises(ValueError, match="template"):
        dataclasses.replace(c, template="ffhq")
    with pytest.raises(ValueError, match="upsample"):
        dataclasses.replace(c, upsample="bilinear")


def test_resize_convolutions_have_no_checkerboard() -> None:
    # A flat input: every output pixel of a resize-convolution sees the same kernel, so away from the
    # border the output is flat; a stride-2 transposed convolution gives its 2-pixel period.
    torch.manual_seed(0)
    x = torch.ones(1, 8, 8, 8)
    for upsample, flat in (("resize", True), ("transpose", False)):
        layer = up2x(8, 4, True, upsample)
        assert layer(x).shape == (1, 4, 16, 16)
        inner = layer(x)[..., 2:-2, 2:-2].detach()
        assert torch.allclose(inner, inner[..., :1, :1].expand_as(inner), atol=1e-6) == flat, upsample


@pytest.mark.parametrize("method", ["bilinear", "two-step", "parallel", "sge"])
def test_wild_networks_have_no_transposed_convolutions(method: str) -> None:
    net = SmileTrainNet(SmileConfig.wild(method))
    assert not [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert any(isinstance(m, ResizeConv) for m in net.modules())


@pytest.mark.parametrize("method", ["two-step", "serial", "parallel", "sge"])
def test_residual_networks_start_as_the_resized_input(method: str) -> None:
    torch.manual_seed(0)
    g = SmileGenerator(_tiny_residual(method)).eval()
    x = torch.rand(2, 1, 16, 16)
    assert torch.allclose(g.infer(x), bicubic_resize(x, 32), atol=1e-6)
    plain = SmileGenerator(SmileConfig.tiny(method, channels=1)).eval()
    assert (plain.infer(x) - bicubic_resize(x, 32)).abs().max() > 0.05  # the paper's form does not


def test_residual_bilinear_starts_as_the_bilinear_enlargement() -> None:
    g = SmileGenerator(_tiny_residual("bilinear")).eval()
    x = torch.rand(1, 1, 16, 16)
    expected = F.interpolate(x * 2 - 1, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(g.infer(x) * 2 - 1, expected.clamp(-1, 1), atol=1e-6)


def test_residual_training_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    net = SmileTrainNet(_tiny_residual("sge"))
    x, guide = torch.rand(2, 1, 16, 16) * 2 - 1, torch.rand(2, 1, 16, 16) * 2 - 1
    out = net(x, guide)
    up = bicubic_resize((x + 1) / 2, 32) * 2 - 1
    assert torch.allclose(out["hr_fake"], up, atol=1e-6) and torch.allclose(out["sr"], up, atol=1e-6)
    (out["hr_fake"] - 1).abs().mean().backward()
    assert net.net.decoder.last[0].conv.weight.grad.abs().sum() > 0  # the zeroed layer learns


def test_unregistered_pairs_are_held_to_their_input() -> None:
    torch.manual_seed(0)
    fake, real, src = torch.rand(3, 1, 32, 32), torch.rand(3, 1, 32, 32), torch.rand(3, 1, 32, 32)
    rec = reconstruction
    assert torch.allclose(rec(fake, real, None), losses.l1(fake, real))
    assert torch.allclose(rec(fake, real, torch.ones(3), source=src), losses.l1(fake, real))
    box = face_box("celeba")
    held = ((fake - src).abs() * anchor_weights(box, 32)).flatten(1).mean(1)
    assert torch.allclose(rec(fake, real, torch.zeros(3), box, src), held.mean())
    # the other photo (the target) is never compared pixel by pixel: any target costs the same
    assert torch.allclose(rec(fake, 1 - real, torch.zeros(3), box, src), held.mean())
    mixed = rec(fake, real, torch.tensor([1.0, 0.0, 0.0]), box, src)
    assert torch.allclose(mixed, ((fake[0] - real[0]).abs().mean() + held[1:].sum()) / 3)
    with pytest.raises(ValueError, match="source"):
        rec(fake, real, torch.zeros(3))
    # the input at the model's input size is resized to the output's
    smooth = F.interpolate(torch.rand(1, 1, 4, 4), size=32, mode="bilinear", align_corners=False)
    small = F.interpolate(smooth, size=16, mode="bilinear", align_corners=False, antialias=True)
    assert rec(smooth, real[:1], torch.zeros(1), box, small) < 0.02 < rec(smooth, real[:1], torch.zeros(1), box, small.flip(-1))


def test_anchor_weights_are_weak_inside_the_face_box_with_a_ramp() -> None:
    box = face_box("celeba")
    assert 0.15 < box[0] < 0.25 and 0.15 < box[1] < 0.25 and 0.75 < box[2] < 0.85 and 0.75 < box[3] < 0.85
    # a template of the two eyes alone: the mouth placed below them, so the box is the face's
    eyes = face_box("expression")
    assert 0.3 < eyes[0] < 0.35 and 0.65 < eyes[2] < 0.7 and 0.4 < eyes[1] < 0.45 and 0.74 < eyes[3] < 0.8
    w = anchor_weights(box, 128)[0, 0]
    assert w.shape == (128, 128) and float(w[0, 0]) == 1.0 and abs(float(w[64, 64]) - BOX_ANCHOR) < 1e-6
    row = w[64, :64]
    assert bool((row[1:] <= row[:-1] + 1e-6).all())  # falls monotonically into the box...
    ramp = int(((row < 1 - 1e-6) & (row > BOX_ANCHOR + 1e-6)).sum())
    assert 10 <= ramp <= 20  # ...over about an eighth of the side, not in one step
    # a change of the background costs ten times the same change inside the face box
    src = torch.zeros(1, 1, 128, 128)
    top, mid = src.clone(), src.clone()
    top[..., :8, 56:72] = 1.0
    mid[..., 60:68, 56:72] = 1.0
    r = torch.rand(1, 1, 128, 128)
    ratio = reconstruction(top, r, torch.zeros(1), box, src) / reconstruction(mid, r, torch.zeros(1), box, src)
    assert abs(float(ratio) - 1 / BOX_ANCHOR) < 1e-3


def test_the_cgan_sees_registered_pairs_only() -> None:
    logits = torch.tensor([[5.0, 5.0], [-5.0, -5.0]], requires_grad=True)
    only_first = losses.weighted_bce(logits, 1.0, torch.tensor([1.0, 0.0]))
    assert torch.allclose(only_first, F.binary_cross_entropy_with_logits(logits[0], torch.ones(2)))
    none = losses.weighted_bce(logits, 1.0, torch.zeros(2))
    none.backward()
    assert float(none.detach()) == 0.0 and logits.grad.abs().sum() == 0
    torch.manual_seed(0)
    obj = SmileObjective(_tiny_residual("parallel"))
    obj.G.eval(), obj.D.eval()  # no dropout, no batch statistics: items do not mix
    batch = {k: torch.rand(2, 1, s, s) for k, s in (("lr", 16), ("hr", 32), ("lr_target", 16), ("hr_neutral", 32))}
    d_studio, _ = obj.d_loss({**batch, "registered": torch.tensor([1.0, 0.0])})
    obj.g_loss({**batch, "registered": torch.tensor([1.0, 0.0])})
    batch2 = {k: v.clone() for k, v in batch.items()}
    batch2["hr"][1] = 1 - batch2["hr"][1]  # another target for the unregistered item only
    d_changed, _ = obj.d_loss({**batch2, "registered": torch.tensor([1.0, 0.0])})
    assert torch.allclose(d_studio, d_changed)


def test_serial_sr_network_is_held_to_pix2pix_output_on_pairs_of_two_photos() -> None:
    torch.manual_seed(0)
    obj = SmileObjective(dataclasses.replace(_tiny_residual("serial"), residual=False))  # Pix2Pix changes its input
    obj.G.eval(), obj.D.eval()
    batch = {k: torch.rand(2, 1, s, s) for k, s in (("lr", 16), ("hr", 32), ("lr_target", 16), ("hr_neutral", 32))}
    flags = torch.tensor([1.0, 0.0])
    obj.d_loss({**batch, "registered": flags})
    out = {k: v.detach() for k, v in obj._cache[0].items()}
    _, logs = obj.g_loss({**batch, "registered": flags})
    held = reconstruction(out["hr_fake"], batch["hr"] * 2 - 1, flags, obj.face_box, out["lr_fake"])
    to_neutral = reconstruction(out["hr_fake"], batch["hr"] * 2 - 1, flags, obj.face_box, batch["lr"] * 2 - 1)
    assert logs["G_sr"] == pytest.approx(float(held), rel=1e-5)
    assert abs(float(held) - float(to_neutral)) > 1e-3
    assert "held to its own input, Pix2Pix's output" in " ".join(smile_pieces("p2p-serial", "wild").deviations)
    assert "Pix2Pix's output (detached)" not in " ".join(smile_pieces("p2p-parallel", "wild").deviations)


def test_the_face_gan_sees_the_face_box_of_every_pair() -> None:
    torch.manual_seed(0)
    cfg = _tiny_residual("parallel")
    obj = SmileObjective(cfg, face_gan_weight=1.0)
    assert set(obj.modules()) == {"G", "D", "D_face"} and "D_face" not in SmileObjective(cfg).modules()
    obj.G.eval(), obj.D.eval(), obj.D_face.eval()
    batch = {k: torch.rand(2, 1, s, s) for k, s in (("lr", 16), ("hr", 32), ("lr_target", 16), ("hr_neutral", 32))}
    flags = torch.tensor([1.0, 0.0])
    _, logs = obj.d_loss({**batch, "registered": flags})
    assert {"D_face_real", "D_face_fake"} <= set(logs)
    x0, y0, x1, y1 = (round(v * 16) for v in face_box("celeba"))  # judged at the input's 16 px
    assert 0 < x0 < x1 < 16 and 0 < y0 < y1 <= 16
    real = batch["lr_target"] * 2 - 1
    moved = real.clone()
    moved[..., :y0, :] = -real[..., :y0, :]  # the target changed above the face box only
    assert torch.equal(obj._face_logits(real), obj._face_logits(moved))
    inside = real.clone()
    inside[1, :, (y0 + y1) // 2, (x0 + x1) // 2] += 1.0  # the unregistered item's target, inside the box
    assert not torch.equal(obj._face_logits(real), obj._face_logits(inside))
    # a 2x image is judged as its antialiased down-sampling: its finer detail is no cue
    hr = batch["hr"] * 2 - 1
    down = F.interpolate(hr, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(obj._face_logits(hr), obj._face_logits(down))
    # and light is no cue: the same face darker and flatter gets the same logits
    assert torch.allclose(obj._face_logits(real), obj._face_logits(0.5 * real - 0.3), atol=1e-4)
    _, g_logs = obj.g_loss({**batch, "registered": flags})
    assert g_logs["G_face"] > 0
    assert smile_pieces("p2p-bilinear", "wild").objective.face_gan_weight == 1.0
    assert smile_pieces("p2p-bilinear", "lite").objective.D_face is None


def test_pairs_carry_the_registered_flag() -> None:
    crops = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    flagged = SmilePairs(crops, crops, registered=np.array([1, 0, 0], np.float32))
    assert float(flagged[0]["registered"]) == 1.0 and float(flagged[1]["registered"]) == 0.0
    assert "registered" not in SmilePairs(crops, crops)[0]
    with pytest.raises(SmileDataError, match="registered flag"):
        SmilePairs(crops, crops, registered=np.ones(2, np.float32))


def test_studio_repeat_gives_the_studio_share() -> None:
    r = studio_repeat(95, 3835)
    assert r == 10 and 0.18 < 95 * r / (95 * r + 3835) < 0.22
    assert studio_repeat(95, 0) == 1
    with pytest.raises(SmileDataError):
        studio_repeat(0, 10)


def test_light_change_sees_light_moved_not_detail() -> None:
    def light_change(fake, source, box):  # the plain change: no free margin
        return light_excess(fake, source, box, free=0.0)

    box = face_box("celeba")
    rows, cols = box_slices(box, 128)
    src = torch.rand(2, 1, 128, 128) * 2 - 1
    assert torch.allclose(light_change(src, src, box), torch.zeros(2))
    lighter = src.clone()
    lighter[..., rows, cols] += 0.2  # the face made lighter: every block moves by 0.2
    assert torch.allclose(light_change(lighter, src, box), torch.full((2,), 0.2), atol=1e-6)
    band = src.clone()
    band[..., rows, cols.start:cols.start + (cols.stop - cols.start) // LIGHT_GRID] -= 0.4  # one side darker
    assert abs(float(light_change(band, src, box)[0]) - 0.4 / LIGHT_GRID) < 0.01
    detail = src.clone()  # light moved within each block (a fine pattern, as teeth and folds): no cost
    detail[..., rows, cols] += 0.3 * torch.tensor([1.0, -1.0]).repeat(64)[: cols.stop - cols.start]
    assert float(light_change(detail, src, box).max()) < 0.02
    outside = src.clone()
    outside[..., :rows.start, :] += 0.5  # light outside the box is the L1 anchor's business
    assert torch.allclose(light_change(outside, src, box), torch.zeros(2))
    # the training term charges only what a block's change exceeds LIGHT_FREE (4 grey levels)
    assert abs(LIGHT_FREE * 127.5 - 4.0) < 1e-9
    assert torch.allclose(light_excess(lighter, src, box), torch.full((2,), 0.2 - LIGHT_FREE), atol=1e-6)
    slight = src.clone()
    slight[..., rows, cols] += 0.5 * LIGHT_FREE  # a smile's own light: free
    assert torch.allclose(light_excess(slight, src, box), torch.zeros(2))
    # the band: a quarter of the blocks move by 0.4, the rest by nothing
    assert abs(float(light_excess(band, src, box)[0]) - (0.4 - LIGHT_FREE) / LIGHT_GRID) < 0.01
    assert float(light_excess(detail, src, box).max()) < 1e-6
    # it is added to the anchor of pairs of two photos only, with the recipe's weight
    real, w = torch.rand(2, 1, 128, 128), torch.tensor([0.0, 1.0])
    added = reconstruction(lighter, real, w, box, src, light_weight=0.5) - reconstruction(lighter, real, w, box, src)
    assert abs(float(added) - 0.5 * (0.2 - LIGHT_FREE) / 2) < 1e-5
    assert smile_pieces("p2p-parallel", "wild").objective.light_weight == WILD_LIGHT_WEIGHT > 0
    assert smile_pieces("p2p-parallel", "lite").objective.light_weight == 0


def test_wild_deviation_text_names_the_recipes_weights() -> None:
    from facegen.deviations import DEVIATIONS

    text = " ".join(d.here for d in DEVIATIONS["p2p-parallel"])
    assert f"block means, beyond {LIGHT_FREE * 127.5:g} grey levels, weight {WILD_LIGHT_WEIGHT:g})" in text
    assert f"{BOX_ANCHOR:g} inside it" in text


def test_wild_card_declares_the_departures() -> None:
    pieces = smile_pieces("p2p-parallel", "wild", identity_weight=5.0)
    text = " ".join(pieces.deviations)
    assert "tight crop" in text and "residual outputs" in text and "LFW neutral -> happy" in text
    assert "'celeba' crop" in text and "resize-convolutions" in text and "PatchGAN on the face box" in text
    assert "tight crop" not in " ".join(smile_pieces("p2p-parallel", "lite").deviations)


def test_same_person_mask_is_cached(tmp_path, monkeypatch) -> None:
    from facegen.train import smile_data

    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    b = np.stack([a[0], rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)])
    mask = smile_data.cached_same_person(a, b, "celeba", tmp_path)
    assert mask.dtype == bool and mask.shape == (2,) and mask[0]  # a crop is always its own person
    assert len(list(tmp_path.glob("same-person-*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(smile_data, "same_person", fail)
    assert (smile_data.cached_same_person(a, b, "celeba", tmp_path) == mask).all()
    with pytest.raises(AssertionError, match="recomputed"):  # other crops: another entry
        smile_data.cached_same_person(b, a, "celeba", tmp_path)
