"""``python -m facegen.train --model ID --preset PRESET --data-root DIR [...]``.

Trains with :class:`facegen.train.trainer.Trainer` (the same command works under
``accelerate launch``), then exports the EMA generator to ``OUT/export`` as a checkpoint folder
(:func:`facegen.checkpoint.save`) with its model card.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from facegen import checkpoint
from facegen.train import recipes
from facegen.train.trainer import Trainer, seed_everything


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m facegen.train", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=recipes.MODEL_IDS)
    p.add_argument("--preset", default="lite", help="lite | paper | tiny | (stackedgan) res<m>x<n> ablation")
    p.add_argument("--task", default=None, help="sr-x2 | sr-x4 | sr-x8 (default: sr-x4 for stackedgan, sr-x2 for psgan)")
    p.add_argument("--data-root", default=None, help="face data root (default: $FACEGEN_DATA)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="per process")
    p.add_argument("--lr-size", type=int, default=None, help="input size override (e.g. 16 or 32 for the paper's 4x variants)")
    p.add_argument("--l1-weight", type=float, default=None, help="override the paper's L1 weight (stackedgan 100, psgan 0)")
    p.add_argument("--degradation", default=None, choices=("bicubic", "blur"), help="override the paper's LR degradation")
    p.add_argument("--out", default=None, help="run folder (default: runs/<model>-<preset>-<task>)")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in --out")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--val-every", type=int, default=None)
    p.add_argument("--num-workers", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--cache-root", default=None, help="aligned-crop cache folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    task = a.task or ("sr-x4" if a.model == "stackedgan" else "sr-x2")
    overrides = {k: v for k, v in {
        "checkpoint_every": a.checkpoint_every, "val_every": a.val_every, "num_workers": a.num_workers,
    }.items() if v is not None}
    seed_everything(a.seed)  # model initialisation
    try:
        recipe = recipes.build(a.model, a.preset, task, steps=a.steps, batch_size=a.batch_size, seed=a.seed,
                               lr_size=a.lr_size, l1_weight=a.l1_weight, degradation=a.degradation, **overrides)
    except recipes.RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(a.out or f"runs/{a.model}-{a.preset}-{task}")
    train_set, val_set = recipes.datasets(recipe, a.data_root, a.cache_root)
    trainer = Trainer(recipe.objective, recipe.train, train_set, out, val_set=val_set, device=a.device,
                      run_info=recipes.train_summary(recipe))
    if trainer.is_main:
        c = recipe.model_config
        print(f"{a.model} {a.preset} {task}: {c.lr_size}->{c.hr_size}, generator {recipe.parameter_count():,} "
              f"parameters; {len(train_set):,} training faces, {len(val_set):,} validation; out {out}")
    ema = trainer.fit(resume=a.resume)
    if trainer.is_main:
        data_desc = (f"{len(train_set):,} aligned faces (LFW minus {recipes.VAL_IDENTITIES} held-out identities, "
                     "plus the lfw_expressions colour crops); never the celeba_fsrnet test faces")
        card = recipes.model_card(recipe, trainer.step, data_desc, trainer.history)
        folder = checkpoint.save(ema.cpu(), out / "export", model_id=a.model, card=card)
        print(f"exported the EMA generator to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
