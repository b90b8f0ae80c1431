"""Partitioning rows into federated clients, and assigning clients to device tiers.

Each partitioner returns a list of row-position arrays, one per client (every row in exactly one
client). ``assign_tiers`` is the hook that gives each client a device tier: at random by tier
shares, or correlated with a per-client statistic as in the RF^2 simulator, where the devices
people own and the data they produce are not independent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from data_pipeline.errors import ConfigError


def natural_partition(groups: np.ndarray) -> list[np.ndarray]:
    """One client per distinct group value (per user), clients ordered by that value."""
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    sorted_g = groups[order]
    cuts = np.flatnonzero(sorted_g[1:] != sorted_g[:-1]) + 1
    return [np.sort(part) for part in np.split(order, cuts)]


def dirichlet_partition(
    classes: np.ndarray, num_clients: int, alpha: float, seed: int = 0
) -> list[np.ndarray]:
    """Non-IID by class: each class's rows are spread over clients with Dirichlet(alpha)
    proportions (small alpha: each client sees few classes). Classes can be labels or item ids."""
    _positive("num_clients", num_clients)
    _positive("alpha", alpha)
    rng = np.random.default_rng(seed)
    classes = np.asarray(classes)
    buckets: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for c in np.unique(classes):
        rows = rng.permutation(np.flatnonzero(classes == c))
        props = rng.dirichlet(np.full(num_clients, alpha))
        cuts = (np.cumsum(props)[:-1] * len(rows)).astype(np.int64)
        for k, part in enumerate(np.split(rows, cuts)):
            buckets[k].append(part)
    return [np.sort(np.concatenate(b)) if b else np.empty(0, np.int64) for b in buckets]


def quantity_skew_partition(
    num_rows: int, num_clients: int, alpha: float = 0.5, seed: int = 0
) -> list[np.ndarray]:
    """IID rows, skewed client sizes: sizes ~ Dirichlet(alpha), every client at least one row."""
    _positive("num_clients", num_clients)
    if num_rows < num_clients:
        raise ConfigError("num_clients", f"{num_clients} clients need at least as many rows, got {num_rows}")
    rng = np.random.default_rng(seed)
    sizes = 1 + np.floor(rng.dirichlet(np.full(num_clients, alpha)) * (num_rows - num_clients)).astype(
        np.int64
    )
    sizes[: num_rows - sizes.sum()] += 1
    perm = rng.permutation(num_rows)
    return [np.sort(p) for p in np.split(perm, np.cumsum(sizes)[:-1])]


def assign_tiers(
    num_clients: int,
    shares: Sequence[float],
    seed: int = 0,
    statistic: np.ndarray | None = None,
    alpha: float = 1.0,
) -> np.ndarray:
    """Tier index per client.

    Without ``statistic``: independent draws by ``shares``. With it (e.g. each client's number of
    interactions), RF^2's data-correlated assignment: clients are ranked by the statistic and cut
    into as many quantile groups as tiers; group k draws its tier from Dirichlet(alpha * prior_k),
    where prior_k puts most mass on tier k. Small alpha: a strong system-data correlation; large
    alpha: close to random.
    """
    shares = np.asarray(shares, dtype=np.float64)
    if shares.ndim != 1 or len(shares) == 0 or (shares < 0).any() or not np.isclose(shares.sum(), 1.0):
        raise ConfigError("tiers.share", f"shares must be non-negative and sum to 1, got {shares.tolist()}")
    rng = np.random.default_rng(seed)
    if statistic is None:
        return rng.choice(len(shares), size=num_clients, p=shares)
    stat = np.asarray(statistic, dtype=np.float64)
    if len(stat) != num_clients:
        raise ConfigError("statistic", f"need one value per client ({num_clients}), got {len(stat)}")
    _positive("alpha", alpha)
    k = len(shares)
    ranks = np.argsort(np.argsort(stat, kind="stable"), kind="stable")
    # Quantile groups sized by the shares, so the marginal tier mix stays near the shares.
    edges = np.cumsum(shares)[:-1] * num_clients
    group = np.searchsorted(edges, ranks, side="right")
    tiers = np.empty(num_clients, dtype=np.int64)
    for g in range(k):
        members = np.flatnonzero(group == g)
        prior = np.full(k, 0.1 / max(k - 1, 1))
        prior[g] = 0.9
        probs = rng.dirichlet(alpha * prior * k * 10)
        tiers[members] = rng.choice(k, size=len(members), p=probs)
    return tiers


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(name, f"must be positive, got {value}")
