"""FedAvgM (Hsu et al. 2019): server momentum on the averaged delta,
``v = momentum * v + delta; w += server_lr * v`` (rows: only those touched this round)."""

from __future__ import annotations

from fedrec.strategies.base import Strategy, lazy_slot
from fedrec.updates import MeanUpdate, State


class FedAvgM(Strategy):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.velocity: State = {}

    def step(self, state: State, mean: MeanUpdate) -> None:
        mom, lr = self.cfg.momentum, self.cfg.server_lr
        for n, d in mean.dense.items():
            v = lazy_slot(self.velocity, state, n).mul_(mom).add_(d)
            state[n].add_(v, alpha=lr)
        for n, (ids, rows) in mean.sparse.items():
            v = lazy_slot(self.velocity, state, n)
            v[ids] = mom * v[ids] + rows
            state[n].index_add_(0, ids, v[ids], alpha=lr)

    def state_dict(self) -> dict:
        return {"velocity": self.velocity}

    def load_state_dict(self, state: dict) -> None:
        self.velocity = dict(state.get("velocity") or {})
