"""``python -m facegen.train --model ID --preset PRESET --data-root DIR [...]``.

Trains any registered model of a recipe family (:func:`facegen.train.recipes.model_ids`: super-resolution,
smile, expression) with :class:`facegen.train.trainer.Trainer` (the same command works under
``accelerate launch``), then exports the EMA generator's inference network to ``OUT/export`` (or
``--export``) as a checkpoint folder (:func:`facegen.checkpoint.save`) with its model card; the
manifest records the registry id, recipe, preset and task.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from facegen import checkpoint
from facegen.train import fine_tune, recipes
from facegen.train.trainer import Trainer, seed_everything


DEFAULT_LR = {"adam": 2e-4, "sgd": 0.02}


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (0 would silently mean the preset's default)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m facegen.train", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=recipes.model_ids(), help="a registry id (facegen/registry.py)")
    p.add_argument("--preset", default=None,
                   help=f"{recipes.presets_help()} (default: the preset the registry ships the model at)")
    p.add_argument("--task", default=None, help=recipes.tasks_help())
    p.add_argument("--data-root", default=None, help="face data root (default: $FACEGEN_DATA)")
    p.add_argument("--steps", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None, help="per process")
    p.add_argument("--lr-size", type=int, default=None,
                   help="SR only: input size override (e.g. 16 or 32 for the paper's 4x variants)")
    p.add_argument("--l1-weight", type=float, default=None, help="SR only: override the paper's L1 weight (stackedgan 100, psgan 0)")
    p.add_argument("--degradation", default=None, choices=("bicubic", "blur"), help="SR only: override the paper's LR degradation")
    p.add_argument("--augment", default=None, choices=("standard", "framing"),
                   help="SR only: training augmentation; framing = scale +-15 %%, shift +-6 %%, rotation +-10 degrees "
                        "(default standard: +-5 %%, +-3 %%)")
    p.add_argument("--zoom-out", type=float, nargs="+", default=(), metavar="F",
                   help="SR only: also train on every face aligned at F times the template's size (e.g. 0.625; "
                        "the photo around it fills the crop): smaller faces carry more detail per pixel")
    p.add_argument("--studio-faces", type=int, default=0, metavar="N",
                   help="SR only: also train on N copies of the JAFFE/RaFD training subjects' studio photos (the "
                        "only faces sharp at the template's size; the people held out of the smile and expression "
                        "tasks never)")
    p.add_argument("--identity-weight", type=float, default=None,
                   help="SR, smile and lmk-guided models: add this weight x the SFace identity loss (1 - cosine of the "
                   "embeddings of the generated face and the real one; lmk-guided: its input face) to the generator "
                   "objective; not in the papers (declared in the card)")
    p.add_argument("--optimizer", default=None, choices=("adam", "sgd"),
                   help="override the paper's optimiser (recorded as a deviation in the model card)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate of G and D (default with --optimizer: adam 2e-4, sgd 0.02)")
    p.add_argument("--out", default=None, help="run folder (default: runs/<model>-<preset>-<task>)")
    p.add_argument("--export", default=None, help="checkpoint folder to write at the end (default: OUT/export)")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="fine-tune: start the generator from this exported checkpoint folder of the same model, "
                        "preset and task (e.g. checkpoints/stackedgan-x4); the card says so")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in --out")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--val-every", type=int, default=None)
    p.add_argument("--val-images", type=positive_int, default=None, metavar="N",
                   help="validate on the first N validation items (default 8; use more when stopping on validation)")
    p.add_argument("--patience", type=positive_int, default=None, metavar="N",
                   help="stop on validation: end the run after N validations in a row without a better validation "
                        "PSNR, and export the EMA generator of the best one (default: train every step, export the "
                        "last); may be added or changed when resuming")
    p.add_argument("--num-workers", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--cache-root", default=None, help="aligned-crop cache folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs still go to OUT/log.jsonl)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        recipe_id, preset, spec = recipes.resolve(a.model, a.preset)
        task = a.task or recipes.default_task(a.model)
        overrides = {k: v for k, v in {
            "checkpoint_every": a.checkpoint_every, "val_every": a.val_every, "num_workers": a.num_workers,
            "optimizer": a.optimizer, "patience": a.patience,
            "val_images": a.val_images,
        }.items() if v is not None}
        lr = a.lr if a.lr is not None else (DEFAULT_LR[a.optimizer] if a.optimizer else None)
        if lr is not None:
            overrides.update(g_lr=lr, d_lr=lr)
        seed_everything(a.seed)  # model initialisation
        recipe = recipes.build(recipe_id, preset, task, steps=a.steps, batch_size=a.batch_size, seed=a.seed,
                               lr_size=a.lr_size, l1_weight=a.l1_weight, degradation=a.degradation,
                               identity_weight=a.identity_weight, augment=a.augment, zoom_out=tuple(a.zoom_out),
                               studio_faces=a.studio_faces,
                               **overrides)
        init = None
        if a.init_from:
            recipe, init = fine_tune.init_from(recipe, a.init_from)
    except recipes.RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model_id = spec.id if spec is not None else a.model  # the registry entry that ships this recipe and preset
    out = Path(a.out or f"runs/{a.model}-{preset}-{task}")
    progress = not a.no_progress
    data = recipes.datasets(recipe, a.data_root, a.cache_root, progress=progress)
    trainer = Trainer(recipe.objective, recipe.train, data.train, out, val_set=data.val, device=a.device,
                      run_info={**recipes.train_summary(recipe), **({"init_from": init.sha256} if init else {})},
                      progress=progress)
    if trainer.is_main:
        n_in, n_out = recipe.sizes
        print(f"{model_id} ({recipe_id} {preset}) {task}: {n_in}->{n_out}, generator "
              f"{recipe.parameter_count():,} parameters at inference; {len(data.train):,} training items, {len(data.val):,} validation; out {out}")
    ema = trainer.fit(resume=a.resume)
    if trainer.is_main:
        done = trainer.export_step
        card = recipes.model_card(recipe, done, data.description, [h for h in trainer.history if h["step"] <= done],
                                  init, export_note=trainer.export_note)
        model = recipes.inference_model(ema.cpu())
        folder = checkpoint.save(model, Path(a.export) if a.export else out / "export", model_id=model_id, card=card,
                                 recipe=recipe_id, preset=preset, task=task)
        print(f"exported the EMA generator ({type(model).__name__}) to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
