"""Synchronous rounds (FedAvg and its family): one ``FederatedRun`` driven by the round loop."""

from __future__ import annotations

from fedrec.algorithms.common import drive, finish, make_loop, session
from fedrec.runtime.data import FederatedData
from fedrec.runtime.pool import ClientPool
from fedrec.runtime.result import FederatedResult
from fedrec.runtime.run import FederatedRun


def run_sync(cfg, data: FederatedData | None = None, pool: ClientPool | None = None, *, progress: bool = False,
             resume: bool = False, after_submit=None, trackers=None, model_fn=None) -> FederatedResult:
    with session(cfg, data, pool) as s:
        run = FederatedRun(cfg, s.data, s.pool, model_fn=model_fn)
        drive(make_loop(cfg, s.pool, [run], progress=progress, desc=cfg.strategy.name, after_submit=after_submit, trackers=trackers), resume)
        result = FederatedResult.from_run(run, s.wall())
    return finish(result, cfg)
