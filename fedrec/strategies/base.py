"""The server-strategy interface, after Flower's ``Strategy``: configure a round, aggregate it.

``configure_fit`` picks the round's clients and their local-training settings; ``aggregate_fit``
turns the averaged client delta into the next global model. Evaluation is the server's (it owns the
held-out data), so strategies stay small: FedAvg is one file, FedYogi is a few lines on FedOpt.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from data_pipeline.errors import ConfigError
from fedrec.client.local import ClientTrainConfig
from fedrec.updates import AggregatedUpdate, State

SAMPLING = ("uniform", "tier-stratified")


@dataclass(frozen=True)
class StrategyConfig:
    name: str = "fedavg"
    server_lr: float = 1.0
    momentum: float = 0.9  # FedAvgM
    proximal_mu: float = 0.01  # FedProx
    beta1: float = 0.9  # FedOpt family (Reddi et al. 2021)
    beta2: float = 0.99
    tau: float = 1e-3  # adaptivity


class Strategy(ABC):
    def __init__(self, cfg: StrategyConfig, client_cfg: ClientTrainConfig) -> None:
        self.cfg = cfg
        self.client_cfg = client_cfg

    def configure_fit(
        self, rng: np.random.Generator, clients: np.ndarray, tiers: np.ndarray, n: int, sampling: str
    ) -> tuple[np.ndarray, ClientTrainConfig]:
        """Select ``n`` of ``clients`` (uniformly, or per tier in proportion to the tier sizes)."""
        n = min(n, len(clients))
        if sampling == "uniform":
            chosen = rng.choice(clients, size=n, replace=False)
        elif sampling == "tier-stratified":
            chosen = _stratified(rng, clients, tiers, n)
        else:
            raise ConfigError("sampling", f"unknown {sampling!r}; expected one of {SAMPLING}")
        return np.sort(chosen), self.client_cfg

    @abstractmethod
    def aggregate_fit(self, global_state: State, update: AggregatedUpdate) -> State:
        """The next global model from the current one and the round's aggregated update."""

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


def apply_delta(global_state: State, delta: State, lr: float) -> State:
    return {n: global_state[n] + lr * delta[n] for n in global_state}


def zeros_like_state(state: State) -> State:
    return {n: torch.zeros_like(t) for n, t in state.items()}
