"""Adaptive server optimizers (Reddi et al. 2021, "Adaptive Federated Optimization").

The averaged client delta is a pseudo-gradient; the server keeps first and second moments and
steps by ``server_lr * m / (sqrt(v) + tau)``. The three variants differ only in how ``v`` is updated,
so each is a few lines on ``FedOpt``.
"""

from __future__ import annotations

import torch

from fedrec.strategies.base import Strategy, zeros_like_state
from fedrec.updates import AggregatedUpdate, State


class FedOpt(Strategy):
    m: State | None = None
    v: State | None = None

    def second_moment(self, v: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def aggregate_fit(self, global_state: State, update: AggregatedUpdate) -> State:
        if update.clients == 0:
            return global_state
        delta = update.mean_delta(global_state)
        if self.m is None:
            self.m = zeros_like_state(global_state)
            self.v = {n: torch.full_like(t, self.cfg.tau**2) for n, t in global_state.items()}
        b1 = self.cfg.beta1
        out = {}
        for n, d in delta.items():
            self.m[n] = b1 * self.m[n] + (1 - b1) * d
            self.v[n] = self.second_moment(self.v[n], d)
            out[n] = global_state[n] + self.cfg.server_lr * self.m[n] / (self.v[n].sqrt() + self.cfg.tau)
        return out

    def state_dict(self) -> dict:
        return {"m": self.m, "v": self.v}

    def load_state_dict(self, state: dict) -> None:
        self.m, self.v = state.get("m"), state.get("v")


class FedAdagrad(FedOpt):
    def second_moment(self, v, d):
        return v + d * d


class FedAdam(FedOpt):
    def second_moment(self, v, d):
        return self.cfg.beta2 * v + (1 - self.cfg.beta2) * d * d


class FedYogi(FedOpt):
    def second_moment(self, v, d):
        d2 = d * d
        return v - (1 - self.cfg.beta2) * d2 * torch.sign(v - d2)
