"""What a run knows about each client before training: its tier, its local steps, the bytes it
would send and receive, and so its round time on the simulated clock.

Computed once per run for all clients at once (vectorised: 100k clients in seconds). The bytes a
client uploads are exactly its update's serialized size (``ClientUpdate.nbytes``; a test checks
the two agree), so deadlines and asynchronous ordering see the same numbers the run reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_pipeline.partition import assign_tiers
from fedrec.client.clock import round_seconds
from fedrec.client.layout import ModelLayout
from fedrec.pipeline.compress import compressed_bytes
from fedrec.runtime.data import FederatedData
from fedrec.updates import State, state_nbytes


def client_tiers(cfg, data: FederatedData) -> np.ndarray:
    """Tier index per client: at random in the spec's shares, or correlated with the amount of
    data a client has (RF^2; ``tier_statistic`` picks the direction)."""
    n = data.num_clients
    if cfg.tier_assignment == "random":
        return assign_tiers(n, cfg.tiers.shares, cfg.seed)
    sizes = np.array([len(p) for p in data.partitions])
    stat = sizes if cfg.tier_statistic == "rows" else -sizes
    return assign_tiers(n, cfg.tiers.shares, cfg.seed, statistic=stat, alpha=cfg.tier_alpha)


def touched_rows_per_client(data: FederatedData, layout: ModelLayout, state: State) -> dict[str, np.ndarray]:
    """Per table, how many distinct rows each client's training data touches."""
    parts = data.partitions
    client_of_row = np.full(len(data.train), -1, dtype=np.int64)
    for c, rows in enumerate(parts):
        client_of_row[rows] = c
    out = {}
    for name, f in layout.tables.items():
        rows_in_table = np.int64(state[name].shape[0])
        owner = np.repeat(client_of_row, np.diff(data.train.offsets[f]))
        ids = data.train.values[f]
        keep = owner >= 0
        pairs = np.unique(owner[keep] * rows_in_table + ids[keep])
        out[name] = np.bincount(pairs // rows_in_table, minlength=len(parts))
    return out


class TargetTable:
    """Per tier and execution target (padded to the most targets any tier has): speed, watts,
    interference chance and slowdown; and each tier's runtime spread."""

    def __init__(self, spec) -> None:
        per_tier = [t.execution_targets for t in spec.tiers]
        width = max(len(ts) for ts in per_tier)
        self.count = np.array([len(ts) for ts in per_tier], dtype=np.int64)
        self.names = [[x.name for x in ts] for ts in per_tier]

        def table(attr: str, pad: float) -> np.ndarray:
            return np.array([[getattr(x, attr) for x in ts] + [pad] * (width - len(ts)) for ts in per_tier], dtype=np.float64)

        self.speed, self.watts = table("speed", 1.0), table("watts", 0.0)
        self.interference, self.slowdown = table("interference", 0.0), table("slowdown", 1.0)
        self.sigma = np.array([t.runtime_sigma for t in spec.tiers], dtype=np.float64)


@dataclass
class RoundTimes:
    """One round's clients on their targets: total seconds (compute + transfer, with the round's
    slowdowns), compute seconds, and the joules their computing took."""

    clients: np.ndarray
    targets: np.ndarray
    seconds: np.ndarray
    compute_seconds: np.ndarray
    compute_joules: np.ndarray

    def take(self, index: np.ndarray) -> RoundTimes:
        return RoundTimes(*(a[index] for a in (self.clients, self.targets, self.seconds, self.compute_seconds,
                                               self.compute_joules)))


class ClientFacts:
    """``private``: tables that never leave the device; they are neither uploaded nor part of the
    model a client downloads (a client starts its own rows from the initialisation)."""

    def __init__(self, cfg, data: FederatedData, state: State, layout: ModelLayout, tiers: np.ndarray,
                 private: set[str] = frozenset()) -> None:
        self.cfg = cfg
        self.tiers = tiers
        self.model_bytes = state_nbytes({n: t for n, t in state.items() if n not in private})
        dense = sum(t.numel() * t.element_size() for n, t in state.items() if n not in layout.tables)
        sparse = np.zeros(data.num_clients, dtype=np.int64)
        touched = {n: c for n, c in touched_rows_per_client(data, layout, state).items() if n not in private}
        for name, counts in touched.items():
            t = state[name]
            sparse += counts * (8 + t.shape[1] * t.element_size())
        self.sparse_bytes = dense + sparse  # dense deltas + touched rows with their ids
        sizes = np.array([len(p) for p in data.partitions])
        self.local_steps = cfg.client.local_epochs * -(-sizes // cfg.client.batch_size)
        c, spec = cfg.client, cfg.tiers.tiers
        # what each client's update weighs uncompressed (its touched rows with their ids, or whole tables)
        self.uncompressed_up = self.sparse_bytes if c.sparse_updates else np.full(data.num_clients, self.model_bytes)
        uncompressed_down = self.sparse_bytes if c.sparse_downloads else np.full(data.num_clients, self.model_bytes)
        shared = {n: t for n, t in state.items() if n not in private}  # private tables never travel
        self.up, self.down = compressed_bytes(cfg, shared, [t for t in layout.tables if t not in private], touched,
                                              self.uncompressed_up, uncompressed_down)
        per_tier = {k: np.array([getattr(t, k) for t in spec])[tiers] for k in ("speed", "down_mbps", "up_mbps")}
        self.seconds = round_seconds(self.local_steps, self.down, self.up, **per_tier, clock=cfg.clock)
        self.dropout = np.array([t.dropout for t in spec])[tiers]
        self.speed, self.down_mbps, self.up_mbps = per_tier["speed"], per_tier["down_mbps"], per_tier["up_mbps"]
        self.targets = TargetTable(cfg.tiers)

    def round_times(self, rnd: int, clients: np.ndarray, targets: np.ndarray | None = None,
                    nominal: bool = False) -> RoundTimes:
        """This round's times of ``clients``, each on its execution target (default: its tier's
        first), with the round's stochastic slowdowns: interference on the target and log-normal
        spread of the whole time (``runtime_sigma``). Drawn per (seed, round) for every client, so
        a client's draw does not depend on who else was selected. Without targets, interference or
        spread (or ``nominal``: no draws, as FedBuff's schedule and gossip's clock use) these equal
        ``seconds``."""
        clients = np.asarray(clients, dtype=np.int64)
        tgt = np.zeros(len(clients), dtype=np.int64) if targets is None else np.asarray(targets, dtype=np.int64)
        tier = self.tiers[clients]
        rng = np.random.default_rng([self.cfg.seed, rnd, 0xE7])
        u, z = rng.random(len(self.tiers)), rng.standard_normal(len(self.tiers))
        t = self.targets
        slow = np.where(u[clients] < t.interference[tier, tgt], t.slowdown[tier, tgt], 1.0)
        sigma = t.sigma[tier]
        if nominal:
            slow, sigma = np.ones(len(clients)), np.zeros(len(clients))
        spread = np.exp(sigma * z[clients] - sigma**2 / 2)  # mean 1
        compute = self.local_steps[clients] * self.cfg.clock.step_seconds / (self.speed[clients] * t.speed[tier, tgt]) * slow
        down = self.down[clients] * 8 / (self.down_mbps[clients] * 1e6)
        up = self.up[clients] * 8 / (self.up_mbps[clients] * 1e6)
        seconds = (compute + down + up) * spread  # the order ``round_seconds`` adds in: equal when nothing varies
        return RoundTimes(clients, tgt, seconds, compute, compute * t.watts[tier, tgt])

    def expected_by_target(self) -> tuple[np.ndarray, np.ndarray]:
        """(clients, targets) expected round seconds and compute joules on each target of the
        client's tier, interference at its mean; inf where the tier has fewer targets."""
        t = self.targets
        tier = self.tiers
        mean_slow = 1.0 + t.interference[tier] * (t.slowdown[tier] - 1.0)
        compute = (self.local_steps * self.cfg.clock.step_seconds / self.speed)[:, None] / t.speed[tier] * mean_slow
        transfer = self.down * 8 / (self.down_mbps * 1e6) + self.up * 8 / (self.up_mbps * 1e6)
        valid = np.arange(t.speed.shape[1])[None, :] < t.count[tier][:, None]
        seconds = np.where(valid, compute + transfer[:, None], np.inf)
        return seconds, np.where(valid, compute * t.watts[tier], np.inf)

    def upload_bytes(self, client: int) -> int:
        return int(self.up[client])

    def download_bytes(self, client: int) -> int:
        """The whole model, or with ``client.sparse_downloads`` the same rows a sparse upload holds."""
        return int(self.down[client])

    def client_time(self, client: int) -> float:
        return float(self.seconds[client])
