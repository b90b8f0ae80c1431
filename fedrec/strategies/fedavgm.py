"""FedAvgM (Hsu et al. 2019): server momentum on the averaged delta."""

from __future__ import annotations

from fedrec.strategies.base import Strategy, apply_delta
from fedrec.updates import AggregatedUpdate, State


class FedAvgM(Strategy):
    velocity: State | None = None

    def aggregate_fit(self, global_state: State, update: AggregatedUpdate) -> State:
        if update.clients == 0:
            return global_state
        delta = update.mean_delta(global_state)
        if self.velocity is None:
            self.velocity = delta
        else:
            self.velocity = {n: self.cfg.momentum * self.velocity[n] + delta[n] for n in delta}
        return apply_delta(global_state, self.velocity, self.cfg.server_lr)

    def state_dict(self) -> dict:
        return {"velocity": self.velocity}

    def load_state_dict(self, state: dict) -> None:
        self.velocity = state.get("velocity")
