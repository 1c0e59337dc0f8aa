"""One GAN trainer for every paper: D step, G step, EMA, checkpoints with exact resume, plots.

Papers differ only in their :class:`Objective` (which modules it owns, ``d_loss`` and
``g_loss``), as StyleGAN3 separates its loss from its training loop. Distribution goes through
Hugging Face Accelerate, so the same command runs on one CPU, one GPU, or under
``accelerate launch`` on several processes and machines.

Exact resume: a checkpoint holds the modules, the optimisers, the EMA generator, the step, the
position in the data order and every process's Python/NumPy/torch RNG states. The learning rate
is a pure function of the step and the data order a pure function of (seed, epoch), so a run
stopped and resumed takes exactly the steps an uninterrupted run would.

Stop on validation (``TrainConfig.patience``): the checkpoint also holds the EMA generator of the
best validation so far, and a run ends once that many validations in a row have not beaten it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm.auto import tqdm

from facegen import assets
from facegen.colour import luma
from facegen.train import plots
from facegen.train import state as ckpt
from facegen.train import stopping
from facegen.train.state import rng_state, seed_everything, set_rng_state

Batch = dict[str, Tensor]
GRID_IMAGES = 8  # validation images drawn in each step's PNG grid
Logs = dict[str, float]


@dataclass(frozen=True)
class TrainConfig:
    """Everything about the optimisation that is not the model or the loss."""

    steps: int = 10_000
    batch_size: int = 16  # per process
    optimizer: str = "adam"  # "adam" | "sgd"
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Adam
    momentum: float = 0.0  # SGD
    weight_decay: float = 0.0
    lr_milestones: tuple[float, ...] = ()  # fractions of `steps` where the LR is multiplied by lr_gamma
    lr_gamma: float = 0.1
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    val_every: int = 500
    val_images: int = 8
    log_every: int = 10
    num_workers: int = 0
    seed: int = 0
    # Stop on validation: end the run once this many validations in a row have not beaten the best
    # validation PSNR so far, and return the EMA generator of that best validation (0: run every step
    # and return the last one). Like ``steps``, it may change when a run is resumed.
    patience: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd'; got {self.optimizer!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")
        if self.patience < 0:
            raise ValueError(f"patience counts validations and cannot be negative; got {self.patience}")
        if any(not 0.0 < m < 1.0 for m in self.lr_milestones):
            raise ValueError(f"lr_milestones are fractions of the run in (0, 1); got {self.lr_milestones}")

    def lr_factor(self, step: int) -> float:
        """Multiplier of the base learning rates at ``step`` (step decay at the milestones)."""
        passed = sum(step >= round(m * self.steps) for m in self.lr_milestones)
        return self.lr_gamma**passed


@runtime_checkable
class Objective(Protocol):
    """A paper's loss: the modules it owns, and its discriminator and generator losses.

    ``modules()`` returns at least ``{"G": generator, "D": discriminator}``; the generator has
    ``config`` and ``infer``. The trainer makes one optimiser for "G" and one for all the other
    modules (the discriminators), wraps the modules for distribution and hands the wrapped ones
    back through ``bind``. SR batches are ``{"lr", "hr"}`` float [0, 1] NCHW tensors; other
    objectives define their own keys. Optional hooks: ``set_step(step)`` (called before each
    ``d_loss``; for staged objectives) and ``preview(ema_generator, val_batch) -> (baseline,
    output, target)`` float [0, 1] NCHW for the validation images when ``infer(batch["lr"])``
    does not apply (a generator with ``infer_batch(batch)`` is run on the whole validation
    batch instead of ``infer(batch["lr"])``). ``d_loss`` is called first in a step and
    may cache the generator's output for ``g_loss`` (the Pix2Pix order: one generator forward
    per step, discriminator updated before the generator's loss is taken).
    """

    name: str

    def modules(self) -> dict[str, nn.Module]: ...

    def bind(self, modules: dict[str, nn.Module]) -> None: ...

    def d_loss(self, batch: Batch) -> tuple[Tensor, Logs]: ...

    def g_loss(self, batch: Batch) -> tuple[Tensor, Logs]: ...


class EMA:
    """Exponential moving average of a generator's weights (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # Warm-up so early averages are not dominated by the random initialisation.
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for pe, p in zip(self.model.parameters(), model.parameters()):
            pe.lerp_(p.detach(), 1.0 - d)
        for be, b in zip(self.model.buffers(), model.buffers()):
            be.copy_(b)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int) -> list[list[int]]:
    """This process's batches of one epoch: a seeded permutation, sharded by rank, last partial batch dropped."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()[rank::world]
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def psnr(a: Tensor, b: Tensor) -> float:
    """Mean PSNR (dB) of float NCHW [0, 1] batches; on the BT.601 Y channel for RGB (BasicSR convention).

    Not ``benchmarks.metrics.psnr``: this is the training curve's, on unrounded tensors on the training
    device and without a border crop; the benchmark scores uint8 images one at a time as BasicSR does.
    """
    if a.shape[1] == 3:
        a, b = luma(a, axis=1, keepdim=True, studio=True), luma(b, axis=1, keepdim=True, studio=True)
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return float((10.0 * torch.log10(1.0 / mse)).mean())


class Trainer:
    """Runs an :class:`Objective` for ``config.steps`` steps; writes checkpoints, logs and plots to ``out``.

    Layout of ``out``: ``checkpoints/step-XXXXXXXX/`` (resumable state), ``val/`` (PNG grids and
    the PSNR/LPIPS curve), ``log.jsonl`` (losses and throughput).
    """

    def __init__(
        self,
        objective: Objective,
        config: TrainConfig,
        train_set: Dataset,
        out: str | Path,
        val_set: Dataset | None = None,
        device: str = "cpu",
        run_info: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> None:
        from accelerate import Accelerator

        self.objective = objective
        self.config = config
        self.train_set = train_set
        self.val_set = val_set
        self.out = Path(out)
        self.run_info = run_info or {}
        self.accelerator = Accelerator(cpu=device == "cpu")
        self.rank = self.accelerator.process_index
        self.world = self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        self.progress = progress and self.is_main
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.history: list[dict[str, float]] = []
        self.best_ema: dict[str, Tensor] | None = None  # EMA state at the best validation (patience > 0)
        self._lpips: Any = None
        self._lpips_tried = False

        modules = objective.modules()
        if "G" not in modules or "D" not in modules:
            raise ValueError(f"objective {objective.name!r} must own modules 'G' and 'D'; has {sorted(modules)}")
        self.names = sorted(modules)
        self.opt = {
            "G": self._optimizer(modules["G"].parameters(), config.g_lr),
            "D": self._optimizer([p for k in self.names if k != "G" for p in modules[k].parameters()], config.d_lr),
        }
        wrapped = self.accelerator.prepare(*[modules[k] for k in self.names], self.opt["G"], self.opt["D"])
        self.modules = dict(zip(self.names, wrapped[: len(self.names)]))
        self.opt = {"G": wrapped[-2], "D": wrapped[-1]}
        objective.bind(self.modules)
        self.base_lr = {"G": config.g_lr, "D": config.d_lr}
        self.ema = EMA(self.generator, config.ema_decay)

    # -- pieces ---------------------------------------------------------------------------------
    def _optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, betas=c.betas, weight_decay=c.weight_decay)
        return torch.optim.SGD(params, lr=lr, momentum=c.momentum, weight_decay=c.weight_decay)

    @property
    def generator(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.modules["G"])

    @property
    def ckpt_root(self) -> Path:
        return self.out / "checkpoints"

    def _set_lr(self) -> None:
        f = self.config.lr_factor(self.step)
        for k, opt in self.opt.items():
            for group in opt.param_groups:
                group["lr"] = self.base_lr[k] * f

    def _batches(self):
        """Batches from the current (epoch, batch_in_epoch) on, forever; advances the position."""
        n = len(self.train_set)  # type: ignore[arg-type]
        c = self.config
        while True:
            batches = epoch_batches(n, c.batch_size, c.seed, self.epoch, self.rank, self.world)
            if not batches:
                raise ValueError(
                    f"the training set has {n} items: too few for batches of {c.batch_size} on {self.world} process(es)"
                )
            if hasattr(self.train_set, "set_epoch"):
                self.train_set.set_epoch(self.epoch)  # type: ignore[attr-defined]
            # A dedicated generator: the loader must not draw from the global RNG (exact resume).
            g = torch.Generator().manual_seed(c.seed * 7919 + self.epoch)
            loader = DataLoader(self.train_set, batch_sampler=batches[self.batch_in_epoch :],
                                num_workers=c.num_workers, generator=g)
            for batch in loader:
                self.batch_in_epoch += 1
                yield {k: v.to(self.accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            self.epoch += 1
            self.batch_in_epoch = 0

    def train_step(self, batch: Batch) -> Logs:
        """One discriminator update then one generator update; returns the logged scalars."""
        for m in self.modules.values():
            m.train()
        self._set_lr()
        if hasattr(self.objective, "set_step"):  # objectives with stages follow the trainer's step
            self.objective.set_step(self.step)  # type: ignore[attr-defined]
        self.opt["D"].zero_grad(set_to_none=True)
        d_loss, d_logs = self.objective.d_loss(batch)
        self.accelerator.backward(d_loss)
        self.opt["D"].step()
        self.opt["G"].zero_grad(set_to_none=True)
        g_loss, g_logs = self.objective.g_loss(batch)
        self.accelerator.backward(g_loss)
        self.opt["G"].step()
        self.opt["D"].zero_grad(set_to_none=True)  # the G step also filled D's gradients
        self.ema.update(self.generator, self.step)
        self.step += 1
        return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach()), **d_logs, **g_logs}

    def sync_buffers(self) -> None:
        """Copy rank 0's buffers (BatchNorm statistics) to every process.

        DDP broadcasts buffers at the start of each forward, so after the last step the
        processes' running statistics differ; this makes the replicas identical again.
        """
        if self.world == 1:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for m in [*(self.accelerator.unwrap_model(m) for m in self.modules.values()), self.ema.model]:
                for b in m.buffers():
                    dist.broadcast(b, src=0)

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write a resumable checkpoint of the current step (all processes take part)."""
        acc = self.accelerator
        self.sync_buffers()
        rngs = [rng_state()]
        if self.world > 1:
            from accelerate.utils import gather_object

            rngs = gather_object(rngs)
        if self.is_main:
            ckpt.begin(self.ckpt_root, self.step)
            state = {
                "step": self.step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "world": self.world,
                "train_config": dataclasses.asdict(self.config),
                "run_info": self.run_info,
                "modules": {k: acc.unwrap_model(m).state_dict() for k, m in self.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in self.opt.items()},
                "ema": self.ema.model.state_dict(),
                "rng": rngs,
                "history": self.history,
                "best_ema": self.best_ema,
            }
            ckpt.finish(self.ckpt_root, self.step, state, self.config.keep_checkpoints)
        acc.wait_for_everyone()

    def load_checkpoint(self) -> bool:
        """Restore the newest complete checkpoint under ``out``; False if there is none."""
        if self.is_main:
            ckpt.remove_partials(self.ckpt_root)
        self.accelerator.wait_for_everyone()
        found = ckpt.latest(self.ckpt_root)
        if found is None:
            return False
        step, s = found
        if s["world"] != self.world:
            raise ckpt.TrainStateError(
                f"checkpoint step {step} was written by {s['world']} process(es); resume it with the same number"
            )
        if s["run_info"] != self.run_info:
            raise ckpt.TrainStateError(
                f"cannot resume: the checkpoint belongs to a different run ({s['run_info']} vs {self.run_info})"
            )
        saved_cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in s["train_config"].items()}
        saved_cfg.setdefault("patience", 0)  # checkpoints written before stopping on validation existed
        mine = {k: v for k, v in dataclasses.asdict(self.config).items()}
        diff = sorted(k for k in mine if k not in ("steps", "patience") and mine[k] != saved_cfg.get(k))
        if diff:
            raise ckpt.TrainStateError(f"cannot resume: training settings differ from the checkpoint's in {diff}")
        for k, m in self.modules.items():
            self.accelerator.unwrap_model(m).load_state_dict(s["modules"][k], strict=True)
        for k, o in self.opt.items():
            o.load_state_dict(s["optimizers"][k])
        self.ema.model.load_state_dict(s["ema"], strict=True)
        self.step, self.epoch, self.batch_in_epoch = s["step"], s["epoch"], s["batch_in_epoch"]
        self.history = list(s["history"])
        self.best_ema = s.get("best_ema")
        set_rng_state(s["rng"][self.rank])
        return True

    # -- validation -----------------------------------------------------------------------------
    def _lpips_net(self):
        if not self._lpips_tried:
            self._lpips_tried = True
            try:
                # Building the network draws random initial weights: keep the training RNG untouched.
                with torch.random.fork_rng(devices=[]):
                    self._lpips = assets.lpips_network("alex").to(self.accelerator.device).eval()
            except Exception as e:  # the curve degrades to PSNR only; say so once
                print(f"[facegen.train] LPIPS unavailable ({type(e).__name__}: {e}); validation plots show PSNR only")
                self._lpips = None
        return self._lpips

    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        """EMA generator on the first ``val_images`` validation pairs: PSNR (+ LPIPS), PNG grid (of the
        first :data:`GRID_IMAGES`) and curve."""
        if self.val_set is None or not self.is_main:
            return None

        k = min(self.config.val_images, len(self.val_set))  # type: ignore[arg-type]
        dev = self.accelerator.device
        batch = default_collate([self.val_set[i] for i in range(k)])
        batch = {key: v.to(dev) if torch.is_tensor(v) else v for key, v in batch.items()}
        g = self.ema.model
        if hasattr(self.objective, "preview"):
            # (baseline, output, target), float NCHW [0, 1]: objectives whose generator is not plain SR
            base, sr, hr = self.objective.preview(g, batch)  # type: ignore[attr-defined]
        else:
            lr, hr = batch["lr"], batch["hr"]
            # Conditioned generators (expression label, landmarks) read what they need from the batch.
            sr = g.infer_batch(batch) if hasattr(g, "infer_batch") else g.infer(lr)
            if sr.shape[1] != hr.shape[1]:
                sr = sr[:, :1] if hr.shape[1] == 1 else sr
            base = torch.nn.functional.interpolate(lr, size=hr.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
        row: dict[str, float] = {"step": float(self.step), "psnr": psnr(sr, hr), "psnr_bicubic": psnr(base, hr)}
        # AlexNet's pooling needs at least ~64-pixel images; smaller (test) images get PSNR only.
        net = self._lpips_net() if hr.shape[-1] >= 64 else None
        if net is not None:
            rgb = (lambda t: t.repeat(1, 3, 1, 1) if t.shape[1] == 1 else t)
            row["lpips"] = float(net(rgb(sr), rgb(hr), normalize=True).mean())
            row["lpips_bicubic"] = float(net(rgb(base), rgb(hr), normalize=True).mean())
        self.history = [h for h in self.history if h["step"] != row["step"]] + [row]
        val_dir = self.out / "val"
        plots.save_grid(val_dir / f"step-{self.step:08d}.png", [t[:GRID_IMAGES] for t in (base, sr, hr)])
        plots.save_curves(val_dir / "curve.png", self.history)
        return row

    # -- stopping on validation (facegen.train.stopping) -----------------------------------------
    @property
    def best_step(self) -> int | None:
        return stopping.best_step(self.history)

    @property
    def stopped_on_validation(self) -> bool:
        return stopping.should_stop(self.history, self.config.patience)

    def _remember_best(self) -> None:
        """After a validation: keep the EMA generator if this step is the best so far (with patience)."""
        if self.config.patience and self.best_step == self.step:
            self.best_ema = {k: v.detach().clone() for k, v in self.ema.model.state_dict().items()}

    def _agreed(self, flag: bool) -> bool:
        """The main process's ``flag`` on every process (only the main process validates)."""
        if self.world == 1:
            return flag
        from accelerate.utils import broadcast_object_list

        return bool(broadcast_object_list([flag], from_process=0)[0])

    @property
    def export_step(self) -> int:
        """The step whose EMA generator :meth:`fit` returns: the best validation's when stopping on
        validation, else the last step."""
        if self.config.patience and self.best_ema is not None and self.best_step is not None:
            return self.best_step
        return self.step

    @property
    def export_note(self) -> str | None:
        return stopping.export_note(self.step, self.export_step, self.config.patience, self.stopped_on_validation)

    # -- loop -----------------------------------------------------------------------------------
    def fit(self, resume: bool = False, until: int | None = None) -> nn.Module:
        """Train to ``config.steps`` (continuing from the newest checkpoint if ``resume``); returns the EMA generator.

        ``until`` stops early at that step (as if the run were killed right after it), leaving
        the schedule of the full run untouched. With ``patience`` the run also ends when validation
        stops improving (a resumed run that had ended so trains no further), and the EMA generator
        of the best validation is returned (:attr:`export_step`).
        """
        c = self.config
        last = c.steps if until is None else min(until, c.steps)
        resumed = self.load_checkpoint() if resume else False
        if not resumed:
            seed_everything(c.seed + self.rank)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        bar = None
        if self.progress:
            bar = tqdm(total=c.steps, initial=self.step, desc=self.objective.name, dynamic_ncols=True)
        batches = self._batches()
        t0, n_img = time.perf_counter(), 0
        stop = self._agreed(self.stopped_on_validation)
        while self.step < last and not stop:
            batch = next(batches)
            logs = self.train_step(batch)
            n_img += next(v.shape[0] for v in batch.values() if torch.is_tensor(v)) * self.world
            if self.step % c.log_every == 0 or self.step == c.steps:
                dt = max(time.perf_counter() - t0, 1e-9)
                logs.update({"img_per_s": n_img / dt, "step": self.step, "lr_g": self.opt["G"].param_groups[0]["lr"]})
                t0, n_img = time.perf_counter(), 0
                if self.is_main:
                    with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
                        f.write(json.dumps({k: (v if math.isfinite(v) else None) for k, v in logs.items()}) + "\n")
                if bar is not None:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k not in ("step", "lr_g")})
            if bar is not None:
                bar.update(1)
            if c.val_every and (self.step % c.val_every == 0 or self.step == c.steps):
                self.validate()
                self._remember_best()
                stop = self._agreed(self.stopped_on_validation)
            if c.checkpoint_every and (self.step % c.checkpoint_every == 0 or self.step == c.steps or stop):
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        self.sync_buffers()
        self.accelerator.wait_for_everyone()
        if self.export_step != self.step:
            if self.is_main:
                print(f"[facegen.train] {self.export_note}")
            best = copy.deepcopy(self.ema.model)
            best.load_state_dict(self.best_ema)  # type: ignore[arg-type]
            return best
        return self.ema.model
