"""FedAvg (McMahan et al. 2017): the new model is the example-weighted average of client models,
i.e. the global model plus the averaged delta (times ``server_lr``, 1 by default)."""

from __future__ import annotations

from fedrec.strategies.base import Strategy
from fedrec.updates import MeanUpdate, State


class FedAvg(Strategy):
    def step(self, state: State, mean: MeanUpdate) -> None:
        lr = self.cfg.server_lr
        for n, d in mean.dense.items():
            state[n].add_(d, alpha=lr)
        for n, (ids, rows) in mean.sparse.items():
            state[n].index_add_(0, ids, rows, alpha=lr)
