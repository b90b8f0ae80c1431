"""Who the attackers are: a fixed subset of the clients, drawn once per run from a seed, so every
round's selection meets them in proportion and reruns meet the same ones."""

from __future__ import annotations

import numpy as np

ATTACKER_STREAM = 0xA77AC  # keeps the attackers' draw apart from the run's other random streams


def choose_attackers(num_clients: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted ids of ``round(fraction * num_clients)`` attackers (at least one)."""
    k = min(num_clients, max(1, int(round(fraction * num_clients))))
    rng = np.random.default_rng([seed, ATTACKER_STREAM])
    return np.sort(rng.choice(num_clients, size=k, replace=False))


def attackers_of(cfg, num_clients: int) -> np.ndarray:
    """The attackers of run config ``cfg`` (empty without an attack)."""
    a = cfg.attack
    if a.kind == "none":
        return np.zeros(0, dtype=np.int64)
    return choose_attackers(num_clients, a.fraction, cfg.seed if a.seed is None else a.seed)
