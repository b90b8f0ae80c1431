"""The server-strategy interface, after Flower's ``Strategy``: configure a round, aggregate it.

``configure_fit`` picks the round's clients and the local-training instructions they receive;
whatever it returns is what the round loop sends (FedProx's proximal term rides on it).
``aggregate_fit`` applies the round's aggregated update to the global model. Evaluation is the
run's (it owns the held-out data), so strategies stay small: FedAvg is one file, FedYogi is a few
lines on FedOpt.

Embedding rows are updated lazily: a row no client touched this round is neither moved nor has its
optimizer state (momentum, moments) changed, as in TorchRec's and Keras' lazy/sparse Adam. So the
server writes only the touched rows (one ``index_add_``) and only those travel back to the actors.
Dense parameters are always touched.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from fedrec.client.config import ClientTrainConfig
from fedrec.strategies.config import StrategyConfig
from fedrec.updates import AggregatedUpdate, MeanUpdate, State


@dataclass(frozen=True)
class FitInstructions:
    """A round's plan: which clients train, and the settings they train with."""

    clients: np.ndarray
    config: ClientTrainConfig


class Strategy(ABC):
    def __init__(self, cfg: StrategyConfig, client_cfg: ClientTrainConfig) -> None:
        self.cfg = cfg
        self.client_cfg = client_cfg

    def configure_fit(self, rng: np.random.Generator, clients: np.ndarray, tiers: np.ndarray, n: int,
                      sampling: str) -> FitInstructions:
        """Select ``n`` of ``clients`` (uniformly, or per tier in proportion to the tier sizes)."""
        n = min(n, len(clients))
        if sampling == "tier-stratified":
            chosen = _stratified(rng, clients, tiers, n)
        else:
            chosen = rng.choice(clients, size=n, replace=False)
        return FitInstructions(np.sort(chosen), self.fit_config())

    def fit_config(self) -> ClientTrainConfig:
        """The local-training instructions clients receive (the run config's ``client`` section)."""
        return self.client_cfg

    def aggregate_fit(self, state: State, update: AggregatedUpdate) -> State:
        """Apply the round's update to ``state`` in place (dense tensors in full, embedding rows
        only where touched) and return it. An empty round leaves the model as it is."""
        if update.clients == 0:
            return state
        mean = update.mean(self.cfg.row_mean)
        with torch.no_grad():
            self.step(state, mean)
        return state

    @abstractmethod
    def step(self, state: State, mean: MeanUpdate) -> None:
        """One server-optimizer step on the averaged update (the pseudo-gradient is its negative)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        del state


def _stratified(rng: np.random.Generator, clients: np.ndarray, tiers: np.ndarray, n: int) -> np.ndarray:
    chosen = []
    tier_ids = np.unique(tiers[clients])
    sizes = np.array([(tiers[clients] == t).sum() for t in tier_ids])
    quota = np.floor(n * sizes / sizes.sum()).astype(int)
    for i in np.argsort(-(n * sizes / sizes.sum() - quota))[: n - quota.sum()]:
        quota[i] += 1
    for t, q in zip(tier_ids, quota):
        members = clients[tiers[clients] == t]
        chosen.append(rng.choice(members, size=min(q, len(members)), replace=False))
    return np.concatenate(chosen)


def lazy_slot(slots: State, state: State, name: str, fill: float = 0.0) -> torch.Tensor:
    """Optimizer state for parameter ``name`` (created on first use, shaped like the parameter)."""
    if name not in slots:
        slots[name] = torch.full_like(state[name], fill)
    return slots[name]
