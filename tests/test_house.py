"""The house rules: one contract per model, and the import layering.

A toy model is added exactly as README "Adding a model" says (a model module, a recipe family,
one registry line, one paper row), through the public objects only, and must then appear in the
training CLI, the benchmark's model selection, the app's model lists and the docs' model tables,
and train through the one Trainer and export a checkpoint that loads.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from torch.utils.data import Dataset

import app
import leaderboard_view
from benchmarks import tasks as bench_tasks
from facegen import checkpoint, papers, registry
from facegen.tasks import SHAPES
from facegen.train import families, recipes
from facegen.train.__main__ import main, parse_args
from facegen.train.trainer import TrainConfig

ROOT = Path(__file__).resolve().parent.parent

# -- 1. the model module: a config dataclass and a network with `infer` ---------------------------------


@dataclass(frozen=True)
class ToyConfig:
    scale: int = 4
    lr_size: int = 32
    width: int = 4
    channels: int = 3

    @property
    def hr_size(self) -> int:
        return self.lr_size * self.scale


class ToySR(nn.Module, PyTorchModelHubMixin):
    """Bicubic up-sampling plus a learned residual."""

    config_class = ToyConfig

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.body = nn.Sequential(nn.Conv2d(3, config.width, 3, padding=1), nn.ReLU(), nn.Conv2d(config.width, 3, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        up = F.interpolate(x, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        return up + self.body(up)

    @torch.no_grad()
    def infer(self, x: Tensor) -> Tensor:
        return self(x).clamp(0, 1)


# -- 2. the recipe family: config, build (objective + optimisation), datasets, model card --------------


class ToyObjective:
    name = "toy"

    def __init__(self, config: ToyConfig) -> None:
        self.G = ToySR(config)
        self.D = nn.Sequential(nn.Conv2d(3, 4, 4, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, padding=1))
        self._g, self._d = self.G, self.D

    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def bind(self, modules: dict[str, nn.Module]) -> None:
        self._g, self._d = modules["G"], modules["D"]

    def d_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        fake = self._g(batch["lr"]).detach()
        real, gen = self._d(batch["hr"]), self._d(fake)
        loss = F.softplus(-real).mean() + F.softplus(gen).mean()
        return loss, {"d": float(loss.detach())}

    def g_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        fake = self._g(batch["lr"])
        loss = F.softplus(-self._d(fake)).mean() + F.l1_loss(fake, batch["hr"])
        return loss, {"g": float(loss.detach())}


class ToyPairs(Dataset):
    def __init__(self, n: int, config: ToyConfig) -> None:
        g = torch.Generator().manual_seed(n)
        self.hr = torch.rand(n, 3, config.hr_size, config.hr_size, generator=g)
        self.lr = F.interpolate(self.hr, size=config.lr_size, mode="area")

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"lr": self.lr[i], "hr": self.hr[i]}


def toy_config(model_id: str, preset: str, task: str, lr_size: int | None) -> ToyConfig:
    if preset not in ("tiny", "lite"):
        raise recipes.RecipeError(f"{model_id} has presets tiny and lite; got {preset!r}")
    scale = SHAPES[task].scale
    return ToyConfig(scale, lr_size or (4 if preset == "tiny" else SHAPES[task].in_size), 2 if preset == "tiny" else 8)


def toy_build(model_id: str, preset: str, task: str, *, steps: int | None = None, batch_size: int | None = None,
              seed: int = 0, **options) -> families.Recipe:
    cfg = toy_config(model_id, preset, task, options.get("lr_size"))
    overrides = {k: v for k, v in options.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    train = TrainConfig(steps=steps or 10, batch_size=batch_size or 2, seed=seed, **overrides)
    return families.Recipe(model_id, preset, task, cfg, ToyObjective(cfg), train, "bicubic",
                           ("a toy: not a paper's network",))


def toy_datasets(recipe: families.Recipe, root, cache_root, progress: bool) -> families.TrainingData:
    return families.TrainingData(ToyPairs(4, recipe.model_config), ToyPairs(2, recipe.model_config), "random pairs")


def toy_card(recipe: families.Recipe, steps_done: int, data_desc: str, history=None) -> str:
    return f"# {recipe.model_id} ({recipe.preset}, {recipe.task})\n\n{steps_done} steps on {data_desc}.\n"


TOY_FAMILY = families.Family("toy", ("sr-x2", "sr-x4"), "tiny, lite", toy_config, toy_build, toy_datasets, toy_card)

# -- 3. one registry line, 4. one paper row ---------------------------------------------------------------

TOY = registry.ModelSpec(id="toy-sr", title="Toy residual SR (paper 900)", model_class=ToySR, preset="tiny",
                         paper="900", family="toy", checkpoints={"sr-x4": None}, configs={"sr-x4": ToyConfig()})
TOY_PAPER = papers.Paper("900", "Toy et al.", "Toy, Model: A Toy Face Super-Resolution Network (2025)")


@pytest.fixture
def toy(monkeypatch) -> registry.ModelSpec:
    monkeypatch.setitem(families.FAMILIES, TOY_FAMILY.name, TOY_FAMILY)
    monkeypatch.setitem(registry.REGISTRY, TOY.id, TOY)
    monkeypatch.setitem(papers.PAPERS, TOY_PAPER.number, TOY_PAPER)
    return TOY


def test_toy_model_is_found_everywhere(toy, tmp_path: Path, capsys) -> None:
    # the training CLI: --model choices, default task and preset from the registry, --preset help from the family
    assert "toy-sr" in recipes.model_ids() and "toy-sr" in recipes.recipe_ids()
    assert parse_args(["--model", "toy-sr"]).model == "toy-sr"
    assert recipes.default_task("toy-sr") == "sr-x4" and recipes.default_preset("toy-sr") == "tiny"
    assert recipes.resolve("toy-sr") == ("toy-sr", "tiny", toy)
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "toy-sr" in help_text and "toy models: tiny, lite" in help_text and "sr-x4 for toy-sr" in help_text

    # the benchmark's model selection: the task and its framing-change variant
    served = {t.id for t in bench_tasks.TASKS.values() if toy in registry.models_for(t.base or t.id)}
    assert served == {"sr-x4", "sr-x4-jitter"} and registry.unavailable(toy) is None

    # the app's model lists (no results yet: the first registered model is recommended)
    assert ("Toy residual SR – Toy et al.", "toy-sr") in app.model_choices("sr-x4", tmp_path)
    assert "toy-sr" in app.model_list("sr-x4", tmp_path)["models"]
    assert "toy-sr" not in app.model_list("sr-x2", tmp_path)["models"]

    # the docs' model tables: the papers table (About) and the Models tab
    row = "| 900 | Toy, Model: A Toy Face Super-Resolution Network (2025) | sr-x4: toy-sr |"
    assert row in registry.paper_rows() and row in app.about().splitlines()
    models = leaderboard_view.models_table().set_index("model")
    assert models.loc["toy-sr", "paper"] == "900" and models.loc["toy-sr", "family"] == "toy"


def test_toy_model_trains_and_exports_through_the_cli(toy, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["--model", "toy-sr", "--steps", "1", "--out", str(out), "--no-progress", "--val-every", "1",
                 "--checkpoint-every", "1", "--threads", "1"]) == 0
    manifest = checkpoint.read_manifest(out / "export")
    assert {k: manifest[k] for k in ("model_id", "recipe", "preset", "task")} == {
        "model_id": "toy-sr", "recipe": "toy-sr", "preset": "tiny", "task": "sr-x4"}
    model = checkpoint.load(out / "export", ToySR)
    assert model.config == ToyConfig(4, 4, 2)
    assert (out / "export" / "README.md").read_text().startswith("# toy-sr (tiny, sr-x4)")
    fresh = recipes.build("toy-sr", "tiny", "sr-x4").inference_model()
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))


def test_registry_names_a_registered_family_and_ships_its_preset() -> None:
    for spec in registry.REGISTRY.values():
        if spec.family == registry.BASELINE:
            assert spec.recipe is None
            continue
        assert spec.family in families.FAMILIES, spec.id
        base = registry.get(spec.recipe)
        assert base.family == spec.family and base.recipe == base.id, spec.id
        assert set(spec.tasks) <= set(families.FAMILIES[spec.family].tasks), spec.id
        recipes.model_config(spec.id, spec.preset, spec.tasks[0])  # the shipped preset is a real preset
        assert registry.find(spec.recipe, spec.preset) is spec


def test_every_trained_model_cites_a_paper_from_the_one_table() -> None:
    for spec in registry.REGISTRY.values():
        if spec.family == registry.BASELINE:
            continue
        cited = papers.model_citation(spec.recipe, spec.paper)
        assert cited == papers.PAPERS[spec.paper].citation or spec.recipe in papers.BASELINES, spec.id
    assert papers.model_citation("exprgan", "001").endswith("AAAI 2018 (the baseline of paper 001)")
    assert "doi:10.1016/j.neucom.2020.03.107" in papers.model_citation("stackedgan", "002")


def test_shipped_manifests_still_load_with_their_format_1_manifests() -> None:
    """Version-1 manifests (no recipe or preset) keep loading unchanged; their model id is a registry id."""
    for spec in registry.REGISTRY.values():
        for task, name in spec.checkpoints.items():
            if name is None:
                continue
            folder = registry.CHECKPOINT_ROOT / name
            manifest = checkpoint.read_manifest(folder)
            assert manifest["model_id"] in registry.REGISTRY
            assert registry.get(manifest["model_id"]).recipe == spec.recipe
            assert manifest.get("manifest_version", 1) in (1, checkpoint.MANIFEST_VERSION)


# -- import layering --------------------------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(code: str, module: str, is_package: bool = False) -> set[str]:
    """Every module that ``code`` (the source of ``module``) imports, at any depth (function-local
    imports included): ``import a.b`` gives ``a.b``; ``from a import b`` gives ``a`` and ``a.b`` (b
    may be a module); relative imports are resolved against ``module``."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            found.add(source)
            found |= {f"{source}.{a.name}" for a in node.names}
    return found


def imports_of(path: Path) -> set[str]:
    return imports_in(path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py")


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_imports_in_resolves_every_form() -> None:
    code = ("from facegen import faces\n"
            "def f():\n    from ..data import labels\n    import benchmarks.run\n    from . import layers\n")
    got = imports_in(code, "facegen.models.probe")
    assert {"facegen.faces", "facegen.data.labels", "benchmarks.run", "facegen.models.layers"} <= got
    assert "facegen.data.x" in imports_in("from .. import x\n", "facegen.data.sub", is_package=True)


RULES = [
    ("facegen", ("benchmarks", "app", "leaderboard_view")),
    ("facegen.models", ("facegen.data", "facegen.faces", "facegen.landmarks", "facegen.train")),
]


@pytest.mark.parametrize("package,forbidden", RULES, ids=[r[0] for r in RULES])
def test_import_layering(package: str, forbidden: tuple[str, ...]) -> None:
    files = sorted((ROOT / package.replace(".", "/")).rglob("*.py"))
    assert len(files) > 5
    bad = [f"{_module_name(f)} imports {name}" for f in files for name in sorted(imports_of(f))
           if any(_within(name, p) for p in forbidden)]
    assert not bad, "; ".join(bad)
