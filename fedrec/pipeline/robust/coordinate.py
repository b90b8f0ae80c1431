"""Coordinate-wise robust statistics: the median (Yin et al. 2018) and the trimmed mean (drop the
``beta`` fraction largest and smallest values of each coordinate, average the rest).

Both are unweighted (one client, one value): weights are what a client claims, and a Byzantine
client could claim any. Dense coordinates are taken over every client; an embedding row over the
clients that touched it (see ``stack``), with the trim count taken from that row's own count.
"""

from __future__ import annotations

from functools import partial

import torch

from fedrec.pipeline.base import Aggregator, ServerContext
from fedrec.pipeline.robust.stack import sorted_with_counts, stack, to_aggregate, touched_rows
from fedrec.updates import AggregatedUpdate, ClientUpdate


def median(x: torch.Tensor) -> torch.Tensor:
    """Median along dim 0 ignoring NaNs; with an even count, the mean of the two middle values."""
    s, k = sorted_with_counts(x)
    lo, hi = ((k - 1).clamp_min(0) // 2).unsqueeze(0), (k // 2).unsqueeze(0)
    return (s.gather(0, lo) + s.gather(0, hi)).squeeze(0) / 2


def trimmed_mean(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Mean along dim 0 of what is left after dropping ``floor(beta * k)`` of the largest and of the
    smallest of the ``k`` non-NaN values (never all of them: at least one stays)."""
    s, k = sorted_with_counts(x)
    b = torch.minimum(torch.floor(beta * k.to(torch.float64)).to(torch.int64), (k - 1).clamp_min(0) // 2)
    cs = torch.cat([torch.zeros_like(s[:1]), torch.nan_to_num(s, nan=0.0).cumsum(0)])
    total = cs.gather(0, (k - b).unsqueeze(0)) - cs.gather(0, b.unsqueeze(0))
    return total.squeeze(0) / (k - 2 * b).clamp_min(1)


class CoordinateMedian(Aggregator):
    name = "median"

    def aggregate(self, updates: list[ClientUpdate], ctx: ServerContext) -> AggregatedUpdate:
        s = stack(updates)
        return to_aggregate({n: median(d) for n, d in s.dense.items()}, touched_rows(s, median), s.n)


class TrimmedMean(Aggregator):
    name = "trimmed_mean"

    def __init__(self, beta: float) -> None:
        self.beta = beta

    def aggregate(self, updates: list[ClientUpdate], ctx: ServerContext) -> AggregatedUpdate:
        s = stack(updates)
        stat = partial(trimmed_mean, beta=self.beta)
        return to_aggregate({n: stat(d) for n, d in s.dense.items()}, touched_rows(s, stat), s.n)
