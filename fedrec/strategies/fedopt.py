"""Adaptive server optimizers (Reddi et al. 2021, "Adaptive Federated Optimization").

The averaged client delta ``d`` is a pseudo-gradient; the server keeps first and second moments
``m = beta1 m + (1 - beta1) d`` and ``v`` (initialised to ``tau**2``) and steps by
``server_lr * m / (sqrt(v) + tau)``. The three variants differ only in how ``v`` is updated, so
each is a few lines on ``FedOpt``.

Embedding rows nobody touched this round keep their ``m`` and ``v`` and do not move (lazy, as in
sparse/lazy Adam): a row's moments only ever see rounds in which some client trained it. The
alternative, decaying every row's ``m`` towards zero each round, keeps moving rows no client has
seen for many rounds and would make every round rewrite (and resend) every row of every table.
"""

from __future__ import annotations

import torch

from fedrec.strategies.base import Strategy, lazy_slot
from fedrec.updates import MeanUpdate, State


class FedOpt(Strategy):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.m: State = {}
        self.v: State = {}

    def second_moment(self, v: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _moments(self, m: torch.Tensor, v: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b1 = self.cfg.beta1
        m = b1 * m + (1 - b1) * d
        v = self.second_moment(v, d)
        return m, v, self.cfg.server_lr * m / (v.sqrt() + self.cfg.tau)

    def step(self, state: State, mean: MeanUpdate) -> None:
        tau2 = self.cfg.tau**2
        for n, d in mean.dense.items():
            m, v, step = self._moments(lazy_slot(self.m, state, n), lazy_slot(self.v, state, n, tau2), d)
            self.m[n], self.v[n] = m, v
            state[n].add_(step)
        for n, (ids, rows) in mean.sparse.items():
            m_all, v_all = lazy_slot(self.m, state, n), lazy_slot(self.v, state, n, tau2)
            m, v, step = self._moments(m_all[ids], v_all[ids], rows)
            m_all[ids], v_all[ids] = m, v
            state[n].index_add_(0, ids, step)

    def state_dict(self) -> dict:
        return {"m": self.m, "v": self.v}

    def load_state_dict(self, state: dict) -> None:
        self.m, self.v = dict(state.get("m") or {}), dict(state.get("v") or {})


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
