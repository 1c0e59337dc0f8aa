"""One GAN trainer for every paper (:mod:`facegen.train.trainer`), the papers' objectives, and
``python -m facegen.train`` (see :mod:`facegen.train.__main__`)."""

from facegen.train.trainer import EMA, Objective, TrainConfig, Trainer

__all__ = ["EMA", "Objective", "TrainConfig", "Trainer"]
