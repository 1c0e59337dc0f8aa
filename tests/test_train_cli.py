"""`python -m facegen.train` for every family: recipes, tiny training runs, export, load, resume.

The fast tests replace the face data by small synthetic sets built with the real dataset
classes (and the ImageNet VGG16 of the expression losses by a tiny random stack); the tests
marked slow read the shared data and the real assets.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facegen import checkpoint, registry
from facegen.data.splits import JAFFE_TEST_SUBJECTS, RAFD_TEST_SUBJECTS
from facegen.models.exprgan import ExprGANGenerator
from facegen.models.layers import count_parameters
from facegen.models.lmk_guided import LmkGuidedGenerator
from facegen.models.psgan import PSGANGenerator
from facegen.models.smile import MODEL_METHODS, PAPER_PARAMETERS, SmileGenerator
from facegen.models.stackedgan import StackedSRGenerator
from facegen.train import expression, expression_data, expression_recipe, fine_tune, recipes, smile_data, sr_recipe
from facegen.train import state as ckpt
from facegen.train.__main__ import main, parse_args
from facegen.train.trainer import TrainConfig, Trainer, seed_everything

torch.set_num_threads(1)

SMILE_IDS = list(MODEL_METHODS)
EXPRESSION_IDS = list(expression_recipe.MODEL_IDS)
EXPORTED_CLASS = {
    **{m: SmileGenerator for m in SMILE_IDS},
    "exprgan": ExprGANGenerator,
    "exprgan-msd": ExprGANGenerator,
    "lmk-guided": LmkGuidedGenerator,
    "stackedgan": StackedSRGenerator,
}


# -- synthetic data through the real dataset classes ---------------------------------------------------


def _faces(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth random uint8 NxSxSx3 images (up-sampled noise), like faces in their frequency content."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=size, mode="bilinear", align_corners=False)
    return (x.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def _landmarks(n: int, size: int, seed: int) -> np.ndarray:
    """(n, 68, 2) points inside the crop; the eyes (36-47) apart, so inter-ocular distances are sane."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0.25 * size, 0.75 * size, (n, 68, 2)).astype(np.float32)
    pts[:, 36:42, 0] = 0.3 * size
    pts[:, 42:48, 0] = 0.7 * size
    return pts


def _smile_sets(hr_size: int, luminance: bool, root, cache_root=None, *, augment=None, seed: int = 0,
                progress: bool = True, template: str = "expression", wild: bool = False):
    neutral, happy = _faces(4, hr_size, 1), _faces(4, hr_size, 2)
    augment = dataclasses.replace(augment or smile_data.SmileAugment(), copies=2)
    return (smile_data.SmilePairs(neutral, happy, luminance, augment, seed=seed),
            smile_data.SmilePairs(neutral[:2], happy[:2], luminance, None))


def _paired(config, n: int, seed: int) -> expression_data.PairedFaces:
    exprs = [e for e in config.expressions if e != "neutral"]
    return expression_data.PairedFaces(
        _faces(n, config.size, seed), _faces(n, config.size, seed + 1), _landmarks(n, config.size, seed),
        _landmarks(n, config.size, seed + 2), tuple(exprs[i % len(exprs)] for i in range(n)),
        tuple(str(i) for i in range(n)))


def _expression_sets(model_id: str, config, root, cache_root=None, *, seed: int = 0, progress: bool = True,
                     **_: object) -> expression_data.ExpressionData:
    exprs, ch = config.expressions, config.channels
    train_pairs, val_pairs = _paired(config, 6, 10), _paired(config, 2, 20)
    val = expression_data.PairedExpressionSet(val_pairs, exprs, ch, flip=False)
    if model_id == "lmk-guided":
        train = expression_data.PairedExpressionSet(train_pairs, exprs, ch, seed=seed)
        return expression_data.ExpressionData(train, val, expression_data.template_displacements(train_pairs, exprs),
                                              "synthetic pairs")
    faces = _faces(6, config.size, 30)
    labels = [config.expressions[i % len(config.expressions)] for i in range(6)]
    train = expression_data.LabelledFaceSet(faces, labels, exprs, ch, pairs=train_pairs, seed=seed)
    return expression_data.ExpressionData(train, val, None, "synthetic labelled faces")


def _tiny_vgg(layers) -> expression.FeatureExtractor:
    """A tiny random stand-in for the VGG16 asset, with as many outputs as layers asked for.

    Seeding here moves the global RNG, as the real asset's random initialisation does: the
    objectives must build their loss networks without touching the training's random stream
    (the resume test fails otherwise)."""
    torch.manual_seed(123)
    seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                        nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    return expression.FeatureExtractor(seq, [0, 2, 5, 7, 9][: len(layers)])


class _SRCrops:
    def __init__(self, images: np.ndarray) -> None:
        self.images = images


@pytest.fixture
def synthetic(monkeypatch):
    """Every family's data (and the VGG16 of the expression losses) replaced by tiny synthetic stand-ins."""
    monkeypatch.setattr(smile_data, "datasets", _smile_sets)
    monkeypatch.setattr(expression_data, "datasets", _expression_sets)
    monkeypatch.setattr(expression, "vgg16_extractor", _tiny_vgg)
    monkeypatch.setattr(sr_recipe, "training_records", lambda root: (list(range(8)), list(range(2))))
    monkeypatch.setattr(sr_recipe, "aligned_crops", lambda records, size, template, cache_root=None,
                        progress=True: _SRCrops(_faces(len(records), size, 5)))


def _run(model_id: str, out: Path, *extra: str) -> int:
    return main(["--model", model_id, "--preset", "tiny", "--batch-size", "2", "--out", str(out),
                 "--checkpoint-every", "2", "--no-progress", "--threads", "1", *extra])


def _initial_generator(model_id: str, preset: str = "tiny") -> nn.Module:
    seed_everything(0)  # as main() does before building the recipe
    return recipes.build(model_id, preset, recipes.default_task(model_id)).inference_model()


# -- the CLI, every model ------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", SMILE_IDS + EXPRESSION_IDS + ["stackedgan"])
def test_cli_trains_exports_and_loads(model_id: str, tmp_path: Path, synthetic, capsys) -> None:
    out = tmp_path / "run"
    assert _run(model_id, out, "--steps", "3", "--val-every", "3") == 0
    printed = capsys.readouterr().out
    cls = EXPORTED_CLASS[model_id]
    folder = out / "export"
    manifest = checkpoint.read_manifest(folder)
    assert (manifest["model_id"], manifest["recipe"], manifest["preset"]) == (model_id, model_id, "tiny")
    assert manifest["task"] == recipes.default_task(model_id) and manifest["manifest_version"] == 2
    g = checkpoint.load(folder, cls)
    assert type(g) is cls

    # the exported network is the inference network of the recipe, trained (EMA moved away from the init)
    init = _initial_generator(model_id)
    assert type(init) is cls and g.config == init.config
    assert init.state_dict().keys() == g.state_dict().keys()
    assert any(not torch.equal(init.state_dict()[k], v) for k, v in g.state_dict().items())
    n = count_parameters(g)
    assert f"{n:,} parameters at inference" in printed
    card = (folder / "README.md").read_text()
    assert f"{n:,}" in card and "3 steps" in card and "Validation at step 3" in card

    # run outputs: resumable checkpoints, logs, validation picture
    assert ckpt.complete_steps(out / "checkpoints") == [2, 3]
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 3 and rows[-1]["img_per_s"] > 0 and np.isfinite(rows[-1]["g_loss"])
    assert (out / "val" / "step-00000003.png").is_file()

    # the exported model's infer: right output size, luminance models keep 3-channel input as RGB
    c = g.config
    with torch.no_grad():
        if cls is SmileGenerator or cls is StackedSRGenerator:
            x = torch.rand(2, 3, c.lr_size, c.lr_size)
            y = g.infer(x)
            assert y.shape == (2, 3, c.hr_size, c.hr_size)
        else:
            x = torch.rand(2, 3, c.size, c.size)
            kw = {"landmarks": torch.from_numpy(_landmarks(2, c.size, 7))} if cls is LmkGuidedGenerator else {}
            y = g.infer(x, c.expressions[1], **kw)
            assert y.shape == (2, 3, c.size, c.size)
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0


def test_lmk_guided_exports_the_fitted_template(tmp_path: Path, synthetic) -> None:
    assert _run("lmk-guided", tmp_path, "--steps", "2", "--val-every", "0") == 0
    g = checkpoint.load(tmp_path / "export", LmkGuidedGenerator)
    cfg = g.config
    expected = expression_data.template_displacements(_paired(cfg, 6, 10), cfg.expressions)
    assert float(g.template_ready) == 1.0
    torch.testing.assert_close(g.template, torch.from_numpy(expected))
    assert float(g.template.abs().sum()) > 0  # not the zeros of an untrained model


def test_cli_resume_is_exact(tmp_path: Path, synthetic) -> None:
    """Two steps, then --resume to four, gives the same weights as four steps in one go."""
    model = "p2p-sge"  # dropout, BatchNorm, random guidance fallback and augmentation: RNG-heavy
    assert _run(model, tmp_path / "full", "--steps", "4", "--val-every", "0") == 0
    assert _run(model, tmp_path / "half", "--steps", "2", "--val-every", "0") == 0
    torch.manual_seed(999)  # a fresh process: everything must come from the checkpoint
    assert _run(model, tmp_path / "half", "--steps", "4", "--val-every", "0", "--resume") == 0
    a = checkpoint.load(tmp_path / "full" / "export", SmileGenerator).state_dict()
    b = checkpoint.load(tmp_path / "half" / "export", SmileGenerator).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cli_stops_on_validation_and_exports_the_best_step(tmp_path: Path, synthetic, monkeypatch, capsys) -> None:
    """--patience ends the run on the validation curve (scripted here) and exports its best step's generator."""
    curve = {2: 20.0, 4: 21.0, 6: 20.5, 8: 22.0}
    seen = []

    def scripted(self):
        seen.append(self.config.val_images)
        row = {"step": float(self.step), "psnr": curve[self.step], "psnr_bicubic": 19.0}
        self.history = [h for h in self.history if h["step"] != row["step"]] + [row]
        return row

    monkeypatch.setattr(Trainer, "validate", scripted)
    assert _run("stackedgan", tmp_path, "--steps", "8", "--val-every", "2", "--patience", "1", "--val-images", "5") == 0
    assert seen == [5, 5, 5]  # validated at steps 2, 4, 6; step 6 did not beat step 4
    note = "the run stopped on validation at step 6, after 1 validations without a better PSNR; this is the EMA " \
           "generator of step 4, its best validation"
    assert note in capsys.readouterr().out
    card = (tmp_path / "export" / "README.md").read_text()
    assert "4 steps" in card and "Validation at step 4" in card and "20.5" not in card
    assert f"- exported: {note}" in card
    assert ckpt.complete_steps(tmp_path / "checkpoints") == [4, 6]
    state = ckpt.latest(tmp_path / "checkpoints")[1]
    g = checkpoint.load(tmp_path / "export", StackedSRGenerator).state_dict()
    assert all(torch.equal(g[k], v) for k, v in state["best_ema"].items())


@pytest.mark.parametrize("model_id", ["stackedgan", "p2p-sge"])
def test_init_from_fine_tunes_an_export(model_id: str, tmp_path: Path, synthetic, capsys) -> None:
    """--init-from starts the generator (and so its EMA) from an export: its weights are the export's,
    the card and the run record say where it started, and a missing export is a sentence."""
    cls = EXPORTED_CLASS[model_id]
    assert _run(model_id, tmp_path / "base", "--steps", "2", "--val-every", "0") == 0
    base = tmp_path / "base" / "export"
    seed_everything(7)
    recipe = recipes.build(model_id, "tiny", recipes.default_task(model_id))
    recipe, init = fine_tune.init_from(recipe, base)
    a, b = checkpoint.load(base, cls).state_dict(), recipe.inference_model().state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k].float(), b[k]) for k in a)
    assert init.sha256 == checkpoint.read_manifest(base)["sha256"][checkpoint.WEIGHTS]
    assert _run(model_id, tmp_path / "tuned", "--steps", "2", "--val-every", "0", "--init-from", str(base)) == 0
    card = (tmp_path / "tuned" / "export" / "README.md").read_text()
    sha = checkpoint.read_manifest(base)["sha256"][checkpoint.WEIGHTS]
    assert f"fine-tuned: the steps above continue the exported checkpoint `export` (weights sha256 {sha[:12]}" in card
    assert "2 steps" in card
    # resuming the fine-tune from another start is refused (the run records its start)
    other = tmp_path / "other"
    assert _run(model_id, other, "--steps", "2", "--val-every", "0", "--seed", "1") == 0
    with pytest.raises(Exception, match="different run"):
        _run(model_id, tmp_path / "tuned", "--steps", "3", "--val-every", "0", "--resume",
             "--init-from", str(other / "export"))
    capsys.readouterr()
    assert _run(model_id, tmp_path / "bad", "--steps", "1", "--init-from", str(tmp_path / "missing")) == 2
    assert "--init-from" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # 0 steps would otherwise mean the preset's default
        _run(model_id, tmp_path / "bad", "--steps", "0")
    assert "at least 1" in capsys.readouterr().err


def test_init_from_keeps_the_started_checkpoints_initialisation_field(tmp_path: Path, synthetic) -> None:
    """A checkpoint trained from PyTorch's default initialisation fine-tunes under a recipe whose preset
    now starts from ICNR: only the initialisation differs, so it is accepted, and the export (config
    and card) keeps saying where its weights came from. Any other config difference is refused."""
    recipe = recipes.build("psgan", "tiny", "sr-x2")
    assert recipe.model_config.shuffle_init == "icnr"
    old = PSGANGenerator(dataclasses.replace(recipe.model_config, shuffle_init="default"))
    checkpoint.save(old, tmp_path / "old", model_id="psgan", card="# psgan\n\n- training: 2 steps\n")
    tuned, init = fine_tune.init_from(recipe, tmp_path / "old")
    assert tuned.model_config.shuffle_init == "default" and tuned.inference_model().config.shuffle_init == "default"
    assert init.training == "training: 2 steps"
    assert _run("psgan", tmp_path / "tuned", "--steps", "1", "--val-every", "0", "--init-from",
                str(tmp_path / "old")) == 0
    assert checkpoint.load(tmp_path / "tuned" / "export", PSGANGenerator).config.shuffle_init == "default"
    assert "shuffle_init = default" in (tmp_path / "tuned" / "export" / "README.md").read_text()
    wider = PSGANGenerator(dataclasses.replace(recipe.model_config, entry_channels=8))
    checkpoint.save(wider, tmp_path / "wider", model_id="psgan", card="# psgan\n")
    with pytest.raises(recipes.RecipeError, match="another configuration"):
        fine_tune.init_from(recipes.build("psgan", "tiny", "sr-x2"), tmp_path / "wider")


def test_cli_refuses_what_does_not_apply(tmp_path: Path, capsys) -> None:
    assert _run("exprgan", tmp_path, "--lr-size", "32") == 2
    assert "SR models only" in capsys.readouterr().err
    assert _run("p2p-sge", tmp_path, "--task", "sr-x2") == 2
    assert "serves smile" in capsys.readouterr().err
    assert main(["--model", "p2p-bilinear", "--preset", "sge-no-skips", "--out", str(tmp_path)]) == 2
    assert "variant of the sge method" in capsys.readouterr().err
    assert main(["--model", "lmk-guided", "--preset", "no-such", "--out", str(tmp_path)]) == 2
    assert "no-feature-init" in capsys.readouterr().err
    assert not (tmp_path / "export").exists()


# -- exact resume through the trainer, across ExprGAN's stage switch --------------------------------------


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {f"{n}.{k}": v.clone() for n, m in trainer.modules.items() for k, v in m.state_dict().items()}
    out.update({f"ema.{k}": v.clone() for k, v in trainer.ema.model.state_dict().items()})
    for name, opt in trainer.opt.items():
        for i, st in opt.state_dict()["state"].items():
            out.update({f"opt.{name}.{i}.{k}": v.clone() for k, v in st.items() if torch.is_tensor(v)})
    return out


@pytest.mark.parametrize("model_id", ["exprgan-msd", "lmk-guided"])
def test_expression_resume_is_exact(model_id: str, tmp_path: Path, synthetic) -> None:
    def trainer(seed: int, out: Path) -> Trainer:
        seed_everything(seed)
        r = recipes.build(model_id, "tiny", "expression", steps=6, batch_size=2, seed=3, checkpoint_every=3,
                          val_every=0, log_every=1)
        data = recipes.datasets(r, None)
        return Trainer(r.objective, r.train, data.train, out, run_info=recipes.train_summary(r), progress=False)

    full = trainer(0, tmp_path / "full")
    full.fit()
    half = trainer(0, tmp_path / "half")
    half.fit(until=3)  # ExprGAN switches to the full objective at step 3: after the resume
    torch.manual_seed(999)
    resumed = trainer(123, tmp_path / "half")
    resumed.fit(resume=True)
    assert resumed.step == 6
    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# -- recipes ---------------------------------------------------------------------------------------------


def test_recipe_table_covers_every_family() -> None:
    assert set(recipes.recipe_ids()) == {"stackedgan", "psgan", *SMILE_IDS, *EXPRESSION_IDS}
    ablations = {"p2p-parallel-no-residual", "exprgan-msd-no-unsharp", "lmk-guided-no-feature-init",
                 "lmk-guided-no-label"}
    assert set(recipes.model_ids()) == set(recipes.recipe_ids()) | ablations
    assert {m: recipes.default_task(m) for m in SMILE_IDS + EXPRESSION_IDS} == {
        **{m: "smile" for m in SMILE_IDS}, **{m: "expression" for m in EXPRESSION_IDS}}
    assert recipes.default_task("stackedgan") == "sr-x4" and recipes.default_task("psgan") == "sr-x2"
    with pytest.raises(recipes.RecipeError, match="unknown model"):
        recipes.build("nope", "lite", "smile")


def test_registry_ids_resolve_to_recipe_and_preset() -> None:
    """A shipped ablation trains as its recipe at the registry's preset, and the recipe at that
    preset is recorded as that registry entry; a preset the registry does not ship has no entry."""
    assert recipes.resolve("exprgan-msd-no-unsharp") == ("exprgan-msd", "no-unsharp",
                                                         registry.get("exprgan-msd-no-unsharp"))
    assert recipes.resolve("exprgan-msd", "no-unsharp")[2] is registry.get("exprgan-msd-no-unsharp")
    assert recipes.resolve("lmk-guided") == ("lmk-guided", "wild", registry.get("lmk-guided"))
    assert recipes.resolve("stackedgan", "tiny") == ("stackedgan", "tiny", None)
    assert parse_args(["--model", "lmk-guided-no-label"]).preset is None  # main() takes the registry's
    assert recipes.build("lmk-guided-no-label", "no-label", "expression").model_id == "lmk-guided"


@pytest.mark.parametrize("model_id", SMILE_IDS + EXPRESSION_IDS)
def test_lite_recipe_counts_the_inference_model(model_id: str) -> None:
    r = recipes.build(model_id, "lite", recipes.default_task(model_id))
    cls = EXPORTED_CLASS[model_id]
    exported = cls(r.model_config)
    assert type(r.inference_model()) is cls
    assert r.parameter_count() == count_parameters(exported)
    assert r.model_config.channels == 1 and r.sizes == ((64, 128) if model_id in SMILE_IDS else (128, 128))
    if model_id in ("p2p-parallel", "p2p-sge"):  # the SR stream trains but is not shipped
        assert count_parameters(r.objective.G) > r.parameter_count()
    summary = recipes.train_summary(r)
    assert json.loads(json.dumps(summary)) == summary  # storable in a training checkpoint as it is
    if model_id.startswith("exprgan"):  # a resume must not continue with another code barrier
        assert summary["barrier_weight"] == 0.01


@pytest.mark.parametrize("method", list(PAPER_PARAMETERS))
def test_paper_smile_recipes_report_table_iii(method: str) -> None:
    model_id = f"p2p-{method}"
    r = recipes.build(model_id, "paper", "smile")
    assert abs(r.parameter_count() - PAPER_PARAMETERS[method]) <= 0.001 * PAPER_PARAMETERS[method]


def test_sr_recipes_unchanged() -> None:
    """The SR recipe fields that a resumed SR run checks (run info, training settings) are as before."""
    r = recipes.build("stackedgan", "lite", "sr-x4", steps=6000, batch_size=16, checkpoint_every=250, val_every=500)
    s = recipes.train_summary(r)
    assert set(s) == {"model_id", "preset", "task", "model_config", "degradation", "l1_weight"}
    assert (s["degradation"], s["l1_weight"], r.scale, r.sizes) == ("bicubic", 100.0, 4, (32, 128))
    assert dataclasses.asdict(r.train) == dataclasses.asdict(TrainConfig(
        steps=6000, batch_size=16, optimizer="adam", g_lr=2e-4, d_lr=2e-4, betas=(0.5, 0.999), seed=0,
        checkpoint_every=250, val_every=500))
    p = recipes.build("psgan", "lite", "sr-x2")
    assert (p.degradation, p.train.optimizer, p.train.lr_milestones) == ("blur", "sgd", (0.75,))
    assert not any("optimiser" in d for d in p.deviations)


def test_optimizer_override_is_a_recorded_deviation() -> None:
    a = parse_args(["--model", "psgan", "--optimizer", "adam"])
    assert (a.optimizer, a.lr) == ("adam", None)
    p = recipes.build("psgan", "lite", "sr-x2", optimizer="adam", g_lr=2e-4, d_lr=2e-4)
    assert (p.train.optimizer, p.train.g_lr, p.train.lr_milestones) == ("adam", 2e-4, (0.75,))
    assert "optimiser adam (G lr 0.0002, D lr 0.0002) instead of the paper's sgd (lr 0.02)" in p.deviations


def test_zoom_out_trains_on_each_face_at_the_smaller_sizes_too(synthetic, monkeypatch) -> None:
    asked = []
    monkeypatch.setattr(sr_recipe, "aligned_crops", lambda records, size, template, cache_root=None, progress=True:
                        asked.append(template) or _SRCrops(_faces(len(records), size, 5)))
    assert parse_args(["--model", "psgan", "--zoom-out", "0.8", "0.625"]).zoom_out == [0.8, 0.625]
    r = recipes.build("psgan", "tiny", "sr-x2", zoom_out=(0.625, 0.8, 0.625))
    assert r.zoom_out == (0.8, 0.625) and recipes.train_summary(r)["zoom_out"] == [0.8, 0.625]
    assert any("aligned at 0.8, 0.625 of it" in d for d in r.deviations)
    data = recipes.datasets(r, None)
    assert len(data.train) == 3 * 8 and len(data.val) == 2  # validation stays at the template's size
    assert sorted(asked) == ["celeba", "celeba", "celeba@0.625", "celeba@0.8"]
    assert "each also at 0.8, 0.625 of the template's size (24 crops)" in data.description
    plain = recipes.build("psgan", "tiny", "sr-x2")
    assert plain.zoom_out == () and "zoom_out" not in recipes.train_summary(plain)
    for bad in ((1.0,), (0.3,)):
        with pytest.raises(recipes.RecipeError, match="zoom_out"):
            recipes.build("psgan", "tiny", "sr-x2", zoom_out=bad)
    with pytest.raises(recipes.RecipeError, match="SR models"):
        recipes.build("p2p-sge", "tiny", "smile", zoom_out=(0.8,))


def test_studio_faces_add_copies_of_the_training_subjects_photos(synthetic, monkeypatch) -> None:
    asked = []
    monkeypatch.setattr(sr_recipe, "studio_records", lambda root: list(range(3)))
    monkeypatch.setattr(sr_recipe, "aligned_crops", lambda records, size, template, cache_root=None, progress=True:
                        asked.append((len(records), template)) or _SRCrops(_faces(len(records), size, 5)))
    assert parse_args(["--model", "psgan", "--studio-faces", "4"]).studio_faces == 4
    r = recipes.build("psgan", "tiny", "sr-x2", studio_faces=4, zoom_out=(0.8,))
    assert r.studio_faces == 4 and recipes.train_summary(r)["studio_faces"] == 4
    assert any("4 copies of the JAFFE and RaFD training subjects' studio photos" in d for d in r.deviations)
    data = recipes.datasets(r, None)
    assert len(data.train) == 2 * (8 + 4 * 3) and len(data.val) == 2  # at the template's size and at 0.8
    assert sorted(asked) == [(2, "celeba"), (3, "celeba"), (3, "celeba@0.8"), (8, "celeba"), (8, "celeba@0.8")]
    assert "4 x 3 JAFFE/RaFD studio photos of the training subjects" in data.description
    plain = recipes.build("psgan", "tiny", "sr-x2")
    assert plain.studio_faces == 0 and "studio_faces" not in recipes.train_summary(plain)
    with pytest.raises(recipes.RecipeError, match="copies"):
        recipes.build("psgan", "tiny", "sr-x2", studio_faces=-1)
    with pytest.raises(recipes.RecipeError, match="SR models"):
        recipes.build("p2p-sge", "tiny", "smile", studio_faces=1)


def test_studio_records_are_the_training_subjects_of_every_expression(data_root: Path) -> None:
    studio = sr_recipe.studio_records(data_root)
    assert {r.dataset for r in studio} == {"jaffe", "rafd_subset"} and len(studio) == 213 - 63 + 117 - 30
    assert not {r.subject for r in studio} & (set(JAFFE_TEST_SUBJECTS) | set(RAFD_TEST_SUBJECTS))
    assert len({r.expression for r in studio}) == 7


# -- the real data path (slow: reads the shared faces, real VGG16) ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("model_id", ["p2p-sge", "lmk-guided"])
def test_cli_on_the_shared_data(model_id: str, data_root: Path, tmp_path: Path) -> None:
    rc = main(["--model", model_id, "--preset", "lite", "--data-root", str(data_root), "--steps", "2",
               "--batch-size", "2", "--out", str(tmp_path), "--checkpoint-every", "0", "--val-every", "2",
               "--no-progress", "--threads", "1"])
    assert rc == 0
    g = checkpoint.load(tmp_path / "export", EXPORTED_CLASS[model_id])
    card = (tmp_path / "export" / "README.md").read_text()
    assert "never the" in card and "Validation at step 2" in card
    if model_id == "lmk-guided":
        assert float(g.template_ready) == 1.0
