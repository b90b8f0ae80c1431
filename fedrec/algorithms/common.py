"""What every algorithm's driver does around the round loop: start the pool early (its actors
boot while the data loads), ship the data, wire checkpoints and tracking, and finish outputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from data_pipeline.errors import ConfigError
from fedrec.attacks.data_poisoning import poison_data
from fedrec.config import config_to_dict
from fedrec.runtime.checkpoint import Checkpointer
from fedrec.runtime.data import FederatedData, load_federated_data
from fedrec.runtime.loop import RoundLoop
from fedrec.runtime.pool import ClientPool
from fedrec.runtime.result import FederatedResult, plot_history
from fedrec.runtime.tracking import TensorBoardTracker


@dataclass
class Session:
    pool: ClientPool
    data: FederatedData
    started: float  # perf_counter when the call began: wall_seconds covers everything a user waits for

    def wall(self) -> float:
        return time.perf_counter() - self.started


@contextmanager
def session(cfg, data: FederatedData | None = None, pool: ClientPool | None = None,
            transform: Callable[[FederatedData], FederatedData] | None = None):
    """A started pool holding ``data`` (loaded from ``cfg`` if not given, then passed through
    ``transform``, e.g. FEL carving the server's rows). A pool passed in is the caller's and stays
    up; one made here is stopped at the end."""
    started = time.perf_counter()
    owned = pool is None
    pool = (pool or ClientPool.from_config(cfg)).start()  # actors boot while the data loads
    try:
        data = data or load_federated_data(cfg)
        if transform is not None:
            data = transform(data)
        data = poison_data(cfg, data)  # the attackers' own poisoned rows (label flip, fake users); else as is
        pool.set_data(data)
        yield Session(pool, data, started)
    finally:
        if owned:
            pool.stop()


def make_loop(cfg, pool: ClientPool, runs: list, *, progress: bool, desc: str, after_submit=None) -> RoundLoop:
    checkpoint = None
    if cfg.checkpoint_dir:
        checkpoint = Checkpointer(cfg.checkpoint_dir, cfg.checkpoint_every, config_to_dict(cfg))
    tracker = TensorBoardTracker(cfg.tensorboard) if cfg.tensorboard else None
    return RoundLoop(pool, runs, rounds=cfg.rounds, eval_every=cfg.eval_every, progress=progress, desc=desc,
                     checkpoint=checkpoint, tracker=tracker, after_submit=after_submit)


def drive(loop: RoundLoop, resume: bool) -> None:
    """Run the loop to the end (from the checkpoint with ``resume``) and close its tracker."""
    if resume and loop.checkpoint is None:
        raise ConfigError("checkpoint_dir", "--resume needs a checkpoint_dir (set it in the config)")
    try:
        loop.run(loop.resume() if resume else 0)
    finally:
        if loop.tracker is not None:
            loop.tracker.close()


def finish(result: FederatedResult, cfg) -> FederatedResult:
    if cfg.plot:
        plot_history(result, cfg.plot)
    return result
