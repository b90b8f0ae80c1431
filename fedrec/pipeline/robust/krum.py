"""Krum and Multi-Krum (Blanchard et al., NeurIPS 2017).

Each client's score is the sum of squared distances from its whole upload to its ``n - f - 2``
nearest others (``f`` the number of Byzantine clients assumed, ``floor(byzantine_fraction * n)``).
Krum keeps the client with the lowest score; Multi-Krum keeps the ``m`` lowest (``m = n - f`` by
default) and averages them as FedAvg does (example-weighted, each embedding row over the kept
clients that touched it).

Distances compare the uploads as vectors, in which a row a client did not touch is a zero: that
is what the client sent. With fewer than ``2f + 3`` clients the rule is ill-posed; the neighbour
count is then clamped to at least one.
"""

from __future__ import annotations

import math

import torch

from fedrec.pipeline.base import Aggregator, ServerContext
from fedrec.pipeline.robust.stacking import stack
from fedrec.updates import AggregatedUpdate, ClientUpdate


def krum_scores(vectors: torch.Tensor, f: int) -> torch.Tensor:
    """Per row of ``vectors [n, D]``: the sum of squared distances to its ``n - f - 2`` nearest
    other rows."""
    n = vectors.shape[0]
    x = vectors.to(torch.float64)
    sq = (x * x).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0)
    d2.fill_diagonal_(float("inf"))
    k = max(1, min(n - f - 2, n - 1))
    return torch.sort(d2, dim=1).values[:, :k].sum(1)


class MultiKrum(Aggregator):
    """``keep`` None: keep ``n - f``; ``keep=1`` is Krum."""

    name = "multi_krum"

    def __init__(self, byzantine_fraction: float, keep: int | None = None) -> None:
        self.byzantine_fraction = byzantine_fraction
        self.keep = keep
        self.last_selected: list[int] = []

    def aggregate(self, updates: list[ClientUpdate], ctx: ServerContext) -> AggregatedUpdate:
        n = len(updates)
        f = math.floor(self.byzantine_fraction * n)
        scores = krum_scores(stack(updates).flat(), f)
        m = max(1, min(n, self.keep if self.keep is not None else n - f))
        chosen = torch.argsort(scores, stable=True)[:m].tolist()
        self.last_selected = [updates[i].client for i in chosen]
        return AggregatedUpdate.from_clients([updates[i] for i in chosen])


class Krum(MultiKrum):
    name = "krum"

    def __init__(self, byzantine_fraction: float) -> None:
        super().__init__(byzantine_fraction, keep=1)
