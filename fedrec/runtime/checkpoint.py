"""Checkpoints of a round loop: every run's state at the end of a round, written atomically (a
crash during a save never corrupts the last good one), with the config it was made under.

Resuming refuses a checkpoint from a different config, naming the first field that differs;
only the fields that cannot change the trained model may differ (how long to train, where to
write, how often to evaluate or checkpoint).
"""

from __future__ import annotations

from pathlib import Path

import torch

from data_pipeline.atomic import atomic_path
from data_pipeline.errors import ConfigError

# Fields that may change between a checkpoint and its resumption.
RESUMABLE = {"rounds", "plot", "tensorboard", "checkpoint_dir", "checkpoint_every", "eval_every", "target_auc"}
FILE = "checkpoint.pt"


def config_difference(saved: dict, current: dict, prefix: str = "") -> str | None:
    """The first dotted field (outside RESUMABLE) whose value differs, or None."""
    for key in sorted(set(saved) | set(current)):
        if not prefix and key in RESUMABLE:
            continue
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = config_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}"
    return None


class Checkpointer:
    def __init__(self, directory: str | Path, every: int, config: dict) -> None:
        self.path = Path(directory) / FILE
        self.every = every
        self.config = config

    def due(self, rnd: int, last: int) -> bool:
        return (self.every > 0 and rnd % self.every == 0) or rnd == last

    def save(self, rnd: int, runs: list) -> None:
        blob = {"round": rnd, "config": self.config, "runs": {r.key: r.state_dict() for r in runs}}
        with atomic_path(self.path, None, "checkpoint_dir") as tmp:
            torch.save(blob, tmp)

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            blob = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a foreign or damaged file: say which, not a traceback
            raise ConfigError("checkpoint_dir", f"{self.path} is not a fedrec checkpoint ({type(exc).__name__})") from None
        if not isinstance(blob, dict) or "runs" not in blob or "config" not in blob:
            raise ConfigError("checkpoint_dir", f"{self.path} is not a fedrec checkpoint")
        differs = config_difference(blob["config"], self.config)
        if differs:
            raise ConfigError(differs, f"differs from the checkpoint in {self.path}; resume with the config it was made with")
        return blob
