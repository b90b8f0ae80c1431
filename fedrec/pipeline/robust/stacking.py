"""Per-client updates side by side, the form every robust statistic works on.

Dense tensors stack into ``[n, ...]``. Embedding rows do not: each client uploads only the rows it
touched. ``stack`` lines the clients up on the union of the rows any of them touched (``[n, r,
dim]``) and keeps a mask of who touched what. Two readings of a row a client did not touch follow:

- *no opinion* (``StackedRows.values_or_nan``): coordinate-wise statistics (median, trimmed mean,
  centered clipping's average) are taken per row over the clients that touched it, exactly as
  FedAvg averages a row over its touchers. Counting the others as zeros would pull every row
  towards zero: a row touched by fewer than half the clients would have median 0, so every
  embedding of an item rated by under half of a round's users would never learn.
- *a zero in its vector* (``flat``): distance-based rules (Krum) compare the clients' whole
  uploads as vectors, and an untouched row is a zero in that vector, which is what the client
  sent as far as the model is concerned.

``to_aggregate`` turns a statistic back into an ``AggregatedUpdate`` whose ``mean()`` is it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from fedrec.model import table_name
from fedrec.updates import AggregatedUpdate, ClientUpdate, SparseRows


@dataclass
class StackedRows:
    ids: torch.Tensor  # [r] union of the touched ids, sorted
    values: torch.Tensor  # [n, r, dim], zero where a client did not touch a row
    touched: torch.Tensor  # [n, r] bool

    def values_or_nan(self) -> torch.Tensor:
        """Values with NaN where a client did not touch the row (for per-row statistics)."""
        return self.values.masked_fill(~self.touched.unsqueeze(-1), float("nan"))

    def unit_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each client's row update as a float64 unit vector (zero where it did not touch the row
        or sent zeros) and its norm ``[n, r]`` (for per-row direction statistics)."""
        x = self.values.to(torch.float64)
        norm = x.norm(dim=-1)
        return x / norm.clamp_min(1e-300).unsqueeze(-1), norm


@dataclass
class Stacked:
    clients: list[int]
    weights: torch.Tensor  # [n] float64
    dense: dict[str, torch.Tensor]  # name -> [n, *shape]
    rows: dict[str, StackedRows]

    @property
    def n(self) -> int:
        return len(self.clients)

    def flat(self) -> torch.Tensor:
        """Each client's whole upload as one vector ``[n, D]`` (untouched rows are zeros)."""
        parts = [d.reshape(self.n, -1) for d in self.dense.values()]
        parts += [r.values.reshape(self.n, -1) for r in self.rows.values()]
        return torch.cat(parts, dim=1) if parts else torch.zeros(self.n, 0)


def stack(updates: list[ClientUpdate]) -> Stacked:
    n = len(updates)
    dense = {name: torch.stack([u.dense[name] for u in updates]) for name in updates[0].dense}
    rows = {}
    for name in updates[0].sparse:
        ids, inverse = torch.unique(torch.cat([u.sparse[name][0] for u in updates]), sorted=True, return_inverse=True)
        dim = updates[0].sparse[name][1].shape[1]
        values = torch.zeros(n, len(ids), dim, dtype=updates[0].sparse[name][1].dtype)
        touched = torch.zeros(n, len(ids), dtype=torch.bool)
        start = 0
        for i, u in enumerate(updates):
            own_ids, own_rows = u.sparse[name]
            where = inverse[start:start + len(own_ids)]
            start += len(own_ids)
            values[i, where] = own_rows
            touched[i, where] = True
        rows[name] = StackedRows(ids, values, touched)
    weights = torch.tensor([float(u.weight) for u in updates], dtype=torch.float64)
    return Stacked([u.client for u in updates], weights, dense, rows)


def stack_tables(updates: list[ClientUpdate], tables: list[str]) -> dict[str, StackedRows]:
    """``stack``'s rows of ``tables`` only (no dense tensors, no other table)."""
    return stack([ClientUpdate(u.client, u.weight, {}, {k: u.sparse[k] for k in tables}) for u in updates]).rows


def to_aggregate(dense: dict[str, torch.Tensor], rows: dict[str, tuple[torch.Tensor, torch.Tensor]],
                 clients: int) -> AggregatedUpdate:
    """An aggregate whose ``mean()`` is exactly ``dense`` and, per table, the ``(ids, rows)`` given
    (weight 1 everywhere: a statistic is already an average)."""
    sparse = {n: SparseRows(ids, vals, torch.ones(len(ids), dtype=vals.dtype)) for n, (ids, vals) in rows.items()}
    return AggregatedUpdate(1.0, clients, dict(dense), sparse)


def touched_rows(s: Stacked, stat_of: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``stat_of(values_with_nan [n, r, dim]) -> [r, dim]`` per table, over rows someone touched."""
    return {name: (r.ids, stat_of(r.values_or_nan())) for name, r in s.rows.items()}


def sorted_with_counts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` sorted along dim 0 with NaNs (no opinion) last, and the count of real values per
    column."""
    counts = (~torch.isnan(x)).sum(0)
    return torch.sort(x, dim=0).values, counts


def is_finite(u: ClientUpdate) -> bool:
    """Whether every value of the upload is finite."""
    return all(bool(torch.isfinite(t).all()) for t in (*u.dense.values(), *(r for _, r in u.sparse.values())))


def tables_of(features: tuple[str, ...], tables, what: str) -> list[str]:
    """The names among ``tables`` of the embedding tables of ``features`` (a feature's name or its
    table's parameter name); ``what`` names the setting in the error when none match."""
    wanted = {f"embedding_bags.{table_name(f)}.weight" for f in features} | set(features)
    found = [k for k in tables if k in wanted or any(k.endswith("." + w) for w in wanted)]
    if not found:
        raise ValueError(f"{what} features {list(features)} match none of the tables {sorted(tables)}")
    return found
