"""What every algorithm's driver does around the round loop: start the pool early (its actors
boot while the data loads), ship the data, wire checkpoints and tracking, and finish outputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from data_pipeline.errors import ConfigError
from fedrec.attacks.data_poisoning import poison_data
from fedrec.config import config_to_dict
from fedrec.runtime.checkpoint import Checkpointer
from fedrec.runtime.data import FederatedData
from fedrec.runtime.loop import RoundLoop
from fedrec.runtime.pool import ClientPool
from fedrec.runtime.result import FederatedResult, plot_history
from fedrec.runtime.startup import load_for_run, started_pool
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
    with ExitStack() as stack:
        if pool is None:  # Ray and the actors start while the data loads (fedrec.runtime.startup)
            pool, data = stack.enter_context(started_pool(cfg, data))
        elif data is None:
            data = load_for_run(cfg)
        if transform is not None:
            data = transform(data)
        data = poison_data(cfg, data)  # the attackers' own poisoned rows (label flip, fake users); else as is
        pool.set_data(data)
        yield Session(pool, data, started)


def make_loop(cfg, pool: ClientPool, runs: list, *, progress: bool, desc: str, after_submit=None,
              trackers=None) -> RoundLoop:
    """The round loop for ``runs`` with the config's checkpoints and TensorBoard, plus the caller's
    trackers (e.g. a tuning library's reporter) and test hooks."""
    checkpoint = None
    if cfg.checkpoint_dir:
        checkpoint = Checkpointer(cfg.checkpoint_dir, cfg.checkpoint_every, config_to_dict(cfg))
    trackers = [*(trackers or []), *([TensorBoardTracker(cfg.tensorboard)] if cfg.tensorboard else [])]
    meter = None
    if cfg.energy.measure_host:
        from fedrec.energy.host import HostMeter  # lazy: codecarbon is imported only by runs that measure

        meter = HostMeter.shared()
    return RoundLoop(pool, runs, rounds=cfg.rounds, eval_every=cfg.eval_every, progress=progress, desc=desc,
                     checkpoint=checkpoint, trackers=trackers, after_submit=after_submit, host_meter=meter)


def drive(loop: RoundLoop, resume: bool) -> None:
    """Run the loop to the end (from the checkpoint with ``resume``) and close its trackers."""
    if resume and loop.checkpoint is None:
        raise ConfigError("checkpoint_dir", "--resume needs a checkpoint_dir (set it in the config)")
    try:
        loop.run(loop.resume() if resume else 0)
    finally:
        for tracker in loop.trackers:
            tracker.close()


def finish(result: FederatedResult, cfg) -> FederatedResult:
    if cfg.plot:
        plot_history(result, cfg.plot)
    return result
