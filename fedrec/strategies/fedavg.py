"""FedAvg (McMahan et al. 2017): the new model is the example-weighted average of client models,
i.e. the global model plus the averaged delta (server learning rate 1 by default)."""

from __future__ import annotations

from fedrec.strategies.base import Strategy, apply_delta
from fedrec.updates import AggregatedUpdate, State


class FedAvg(Strategy):
    def aggregate_fit(self, global_state: State, update: AggregatedUpdate) -> State:
        if update.clients == 0:
            return global_state
        return apply_delta(global_state, update.mean_delta(global_state), self.cfg.server_lr)
