"""Coordinate-wise robust statistics: the median (Yin et al. 2018) and the trimmed mean (drop the
``beta`` fraction largest and smallest values of each coordinate, average the rest).

Both are unweighted (one client, one value): weights are what a client claims, and a Byzantine
client could claim any. Dense coordinates are taken over every client; an embedding row over the
clients that touched it (see ``stack``), with the trim count taken from that row's own count.
``rows="all"`` instead counts every client that did not touch a row as a zero there: a row then
moves only if more than half (median) or more than the trimmed share of the round's clients
touched it, which stops a minority from steering a row nobody else touches (item promotion) at
the price of freezing every row fewer clients touch.
"""

from __future__ import annotations

import torch

from fedrec.pipeline.base import Aggregator, ServerContext
from fedrec.pipeline.robust.stacking import sorted_with_counts, stack, to_aggregate, touched_rows
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


class CoordinateStatistic(Aggregator):
    def __init__(self, rows: str = "touched") -> None:
        self.rows = rows  # "touched": per row over its touchers; "all": untouched counts as zero

    def statistic(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def aggregate(self, updates: list[ClientUpdate], ctx: ServerContext) -> AggregatedUpdate:
        s = stack(updates)
        dense = {n: self.statistic(d) for n, d in s.dense.items()}
        if self.rows == "all":
            rows = {n: (r.ids, self.statistic(r.values)) for n, r in s.rows.items()}
        else:
            rows = touched_rows(s, self.statistic)
        return to_aggregate(dense, rows, s.n)


class CoordinateMedian(CoordinateStatistic):
    name = "median"

    def statistic(self, x):
        return median(x)


class TrimmedMean(CoordinateStatistic):
    name = "trimmed_mean"

    def __init__(self, beta: float, rows: str = "touched") -> None:
        super().__init__(rows)
        self.beta = beta

    def statistic(self, x):
        return trimmed_mean(x, self.beta)
