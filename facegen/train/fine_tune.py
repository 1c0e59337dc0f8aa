"""Fine-tunes: a run that starts its generator from an exported checkpoint (``--init-from``).

:func:`init_from` loads the checkpoint into a recipe's generator and says where the run started
(:class:`InitFrom`, which the model card and the resumable run record name).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from facegen import checkpoint
from facegen.train.families import Recipe, RecipeError

__all__ = ["INIT_ONLY_FIELDS", "InitFrom", "init_from"]


@dataclasses.dataclass(frozen=True)
class InitFrom:
    """An exported checkpoint a run starts its generator from (a fine-tune)."""

    folder: str  # as given on the command line
    sha256: str  # of its weights file
    training: str  # its own card's training line

    def describe(self) -> str:
        return (f"the exported checkpoint `{Path(self.folder).name}` (weights sha256 {self.sha256[:12]}; "
                f"{self.training})")


#: Model config fields that only choose how a network is initialised: a fine-tune keeps the started-from
#: checkpoint's value (its weights came from that initialisation), so the export's config stays true.
INIT_ONLY_FIELDS = ("shuffle_init",)


def init_from(recipe: Recipe, folder: str | Path) -> tuple[Recipe, InitFrom]:
    """Load an exported checkpoint of the same network and configuration into ``recipe``'s
    generator (its exported part), before the trainer copies it into the EMA; returns the recipe
    (with the checkpoint's :data:`INIT_ONLY_FIELDS`) and where it started. Any checkpoint fault, or
    another network or configuration, is a :class:`RecipeError` naming it."""
    folder = Path(folder)
    target = recipe.inference_model()
    try:
        loaded = checkpoint.load(folder, type(target))
        manifest = checkpoint.read_manifest(folder)
    except checkpoint.CheckpointError as e:
        raise RecipeError(f"--init-from: {e}") from None
    theirs, mine = dataclasses.asdict(loaded.config), dataclasses.asdict(target.config)
    if {k: v for k, v in theirs.items() if k not in INIT_ONLY_FIELDS} != \
            {k: v for k, v in mine.items() if k not in INIT_ONLY_FIELDS}:
        raise RecipeError(f"--init-from: {folder} holds a {type(target).__name__} with another configuration than "
                          f"{recipe.model_id} {recipe.preset} {recipe.task} builds ({loaded.config} vs {target.config})")
    if theirs != mine:
        target.config = loaded.config
        recipe = dataclasses.replace(recipe, model_config=loaded.config)
    target.load_state_dict({k: v.float() for k, v in loaded.state_dict().items()})
    card = folder / checkpoint.CARD
    lines = card.read_text(encoding="utf-8").splitlines() if card.is_file() else []
    training = next((line[2:] for line in lines if line.startswith("- training:")), "its card gives no training line")
    return recipe, InitFrom(str(folder), manifest["sha256"][checkpoint.WEIGHTS], training)
