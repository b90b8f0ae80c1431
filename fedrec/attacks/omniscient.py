"""Attacks that need the benign updates' statistics: ALIE and IPM.

Both assume omniscient, colluding attackers who know what the benign clients send this round.
In a simulation that information exists only where the updates meet, so these are server steps on
the per-client path that replace the attackers' updates before aggregation. That is an honest
simulation of the threat model (the attackers' uploads are a function of the benign ones), not a
server-side defence or a shortcut: the aggregator sees exactly what colluding attackers would send.

- ALIE, "A Little Is Enough" (Baruch, Baruch and Goldberg, NeurIPS 2019): every attacker sends
  ``mu - z * sigma``, the benign mean shifted by ``z`` benign standard deviations per coordinate,
  with ``z = z_max = Phi^-1((n - s) / n)``, ``s = floor(n / 2 + 1) - m`` (n clients this round, m of
  them attackers): small enough to sit inside the benign spread, so median and Krum keep it.
- IPM, inner-product manipulation (Xie, Koyejo and Gupta, UAI 2020): every attacker sends
  ``-epsilon * mu``, so that the aggregate's inner product with the true mean turns negative.

Statistics per coordinate over the benign clients; an embedding row over the benign clients that
touched it (population standard deviation; 0 with one toucher). The attackers upload every row any
benign client touched this round, so they reach every row that moves.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch

from fedrec.pipeline.base import ServerContext, ServerStep
from fedrec.pipeline.robust.stacking import stack
from fedrec.updates import ClientUpdate


def alie_z(n: int, m: int) -> float:
    """Baruch et al.'s z_max for ``n`` clients of which ``m`` are attackers (at least 0)."""
    s = math.floor(n / 2 + 1) - m
    p = (n - s) / n
    return max(0.0, NormalDist().inv_cdf(min(max(p, 1e-12), 1 - 1e-12)))


def _mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NaN-aware mean and population standard deviation along dim 0."""
    k = (~torch.isnan(x)).sum(0).clamp_min(1)
    mean = torch.nansum(x, 0) / k
    var = torch.nansum((x - mean) ** 2, 0) / k
    return mean, var.sqrt()


class OmniscientAttack(ServerStep):
    needs_per_client = True

    def __init__(self, attackers, scale: float = 1.0, z: float | None = None) -> None:
        self.attackers = frozenset(int(a) for a in attackers)
        self.scale = float(scale)
        self.z = z
        self.last_z: float | None = None

    def craft(self, mean: torch.Tensor, std: torch.Tensor, n: int, m: int) -> torch.Tensor:
        raise NotImplementedError

    def on_clients(self, updates: list[ClientUpdate], ctx: ServerContext) -> list[ClientUpdate]:
        bad = [i for i, u in enumerate(updates) if u.client in self.attackers]
        benign = [u for u in updates if u.client not in self.attackers]
        if not bad or not benign:
            return updates
        n, m = len(updates), len(bad)
        s = stack(benign)
        dense = {}
        for name, d in s.dense.items():
            mean, std = _mean_std(d)
            dense[name] = self.craft(mean, std, n, m)
        sparse = {}
        for name, r in s.rows.items():
            mean, std = _mean_std(r.values_or_nan())
            sparse[name] = (r.ids, self.craft(mean, std, n, m))
        out = list(updates)
        for i in bad:
            out[i] = ClientUpdate(updates[i].client, updates[i].weight, dict(dense), dict(sparse))
        return out


class ALIE(OmniscientAttack):
    name = "alie"

    def craft(self, mean, std, n, m):
        z = self.z if self.z is not None else alie_z(n, m)
        self.last_z = z
        return mean - z * std


class IPM(OmniscientAttack):
    name = "ipm"

    def craft(self, mean, std, n, m):
        return -self.scale * mean
