"""What a selection policy sees and learns from.

``ClientView``: per client, what the server knows before a round (tier, training rows, expected
seconds and compute joules on each of its tier's execution targets). ``Feedback``: what the round's
participants reported (their training loss, measured time and energy). A policy's ``select``
returns the round's clients and each one's target (an index into its tier's targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ClientView:
    tiers: np.ndarray  # tier index per client
    samples: np.ndarray  # training rows per client
    seconds: np.ndarray  # (clients, targets): expected round seconds on each target (inf: the tier has no such target)
    joules: np.ndarray  # (clients, targets): expected compute joules on each target
    target_count: np.ndarray  # targets per tier

    @property
    def num_clients(self) -> int:
        return len(self.tiers)


@dataclass
class Feedback:
    rnd: int
    clients: np.ndarray  # the clients that reported
    targets: np.ndarray  # the target each trained on
    losses: np.ndarray  # each one's mean training loss
    seconds: np.ndarray  # each one's simulated time this round
    joules: np.ndarray  # each one's energy this round (compute, radio and idle)
    round_seconds: float


def pick(rng: np.random.Generator, candidates: np.ndarray, k: int) -> np.ndarray:
    """``k`` of ``candidates`` uniformly without replacement (all of them when fewer)."""
    if len(candidates) <= k:
        return np.asarray(candidates, dtype=np.int64)
    return rng.choice(candidates, size=k, replace=False).astype(np.int64)


def statistical_utility(samples: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """sqrt(n) x the client's last mean training loss. Oort (Lai et al. 2021) defines |B| x the root
    mean square of per-sample losses; the server here sees one mean loss per client, and the
    square root of n keeps a few data-rich clients from taking every round."""
    return np.sqrt(np.asarray(samples, dtype=np.float64)) * np.asarray(losses, dtype=np.float64)
