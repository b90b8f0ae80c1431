"""Model updates and their aggregation with per-row weights for embedding tables.

A client's update is its weight delta. Dense (MLP) parameters are averaged by example count as in
FedAvg. Embedding tables are sparse: a client uploads only the rows it touched, and each row is
averaged over the clients that touched it (weighted by their example counts) — averaging a row
with the zeros of clients that never saw it would shrink every update towards nothing.

``UpdateAccumulator`` is used twice: inside each client actor (pre-aggregation, so an actor returns
one update however many clients it trained) and on the server across actors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

State = dict[str, torch.Tensor]


@dataclass
class SparseRows:
    """Rows of one embedding table: ids, the weighted sum of their deltas, and the summed weights."""

    ids: torch.Tensor  # [r] int64
    delta_sum: torch.Tensor  # [r, dim]
    weight: torch.Tensor  # [r]

    def nbytes(self) -> int:
        return self.ids.numel() * 8 + self.delta_sum.numel() * self.delta_sum.element_size()


@dataclass
class AggregatedUpdate:
    """Sums over clients; ``mean_delta`` turns them into the averaged update."""

    weight: float = 0.0
    clients: int = 0
    dense: State = field(default_factory=dict)  # weighted sums of dense deltas
    sparse: dict[str, SparseRows] = field(default_factory=dict)

    def mean_delta(self, like: State) -> State:
        """Averaged delta as full tensors shaped like the global state (zero where nobody wrote)."""
        out: State = {}
        for name, ref in like.items():
            if name in self.sparse:
                rows = self.sparse[name]
                full = torch.zeros_like(ref)
                if rows.ids.numel():
                    full[rows.ids] = rows.delta_sum / rows.weight.clamp_min(1e-12).unsqueeze(1)
                out[name] = full
            elif name in self.dense and self.weight > 0:
                out[name] = self.dense[name] / self.weight
            else:
                out[name] = torch.zeros_like(ref)
        return out


class UpdateAccumulator:
    """Adds client deltas (or other aggregates) into running sums; embedding rows go into full-size
    buffers (``index_add_`` is O(rows touched)) and come out sparse again in ``result``."""

    def __init__(self, like: State, sparse_names: set[str]) -> None:
        self.like = like
        self.sparse_names = sparse_names
        self.weight = 0.0
        self.clients = 0
        self.dense = {n: torch.zeros_like(t) for n, t in like.items() if n not in sparse_names}
        self.rows = {n: torch.zeros_like(like[n]) for n in sparse_names}
        self.row_weight = {n: torch.zeros(like[n].shape[0], dtype=like[n].dtype) for n in sparse_names}

    def add_client(self, dense_delta: State, sparse_delta: dict[str, tuple[torch.Tensor, torch.Tensor]], weight: float) -> None:
        self.weight += weight
        self.clients += 1
        for n, d in dense_delta.items():
            self.dense[n].add_(d, alpha=weight)
        for n, (ids, delta) in sparse_delta.items():
            self.rows[n].index_add_(0, ids, delta * weight)
            self.row_weight[n].index_add_(0, ids, torch.full((ids.numel(),), float(weight), dtype=delta.dtype))

    def add_aggregate(self, agg: AggregatedUpdate) -> None:
        self.weight += agg.weight
        self.clients += agg.clients
        for n, d in agg.dense.items():
            self.dense[n].add_(d)
        for n, rows in agg.sparse.items():
            self.rows[n].index_add_(0, rows.ids, rows.delta_sum)
            self.row_weight[n].index_add_(0, rows.ids, rows.weight)

    def result(self) -> AggregatedUpdate:
        sparse = {}
        for n in self.sparse_names:
            ids = torch.nonzero(self.row_weight[n] > 0).squeeze(1)
            sparse[n] = SparseRows(ids, self.rows[n][ids], self.row_weight[n][ids])
        return AggregatedUpdate(self.weight, self.clients, dict(self.dense), sparse)


def state_nbytes(state: State) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())
