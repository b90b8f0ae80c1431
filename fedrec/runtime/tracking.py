"""Experiment tracking: per-round metrics written as TensorBoard event files beside the JSON, as
users of Flower and TorchRec expect (``tensorboard --logdir DIR``)."""

from __future__ import annotations

import numbers


class TensorBoardTracker:
    """One ``SummaryWriter`` per run name under ``logdir``; every numeric field of a round's row
    becomes a scalar (``auc``, ``validation_auc``, ``bytes_up``, ``train_loss``, per-tier AUC ...)."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self._writers: dict = {}

    def log(self, run: str, rnd: int, row: dict) -> None:
        from torch.utils.tensorboard import SummaryWriter

        writer = self._writers.get(run)
        if writer is None:
            writer = self._writers[run] = SummaryWriter(log_dir=f"{self.logdir}/{run}")
        for key, value in _scalars(row):
            writer.add_scalar(key, value, global_step=rnd)

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()


def _scalars(row: dict, prefix: str = ""):
    for key, value in row.items():
        if key == "round":
            continue
        if isinstance(value, dict):
            yield from _scalars(value, f"{prefix}{key}/")
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            yield f"{prefix}{key}", float(value)
