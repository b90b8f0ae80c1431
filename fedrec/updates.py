"""Model updates as they travel: one client's update, sums of many, and the averaged result.

A client's update is its weight delta. Dense (MLP) parameters are averaged by example count as in
FedAvg. Embedding tables are sparse: a client uploads only the rows it touched, and each row is
averaged over the clients that touched it (weighted by their example counts): averaging a row with
the zeros of clients that never saw it would shrink every update towards nothing.

Rows stay sparse end to end. Sums are kept as (ids, weighted delta sum, summed weight) per table
and combined by concatenating and coalescing the touched ids (``torch.unique`` + ``index_add_`` on
a buffer of the touched rows only), so neither an actor nor the driver ever allocates a buffer the
size of a table. The server optimizer then writes the averaged rows into the state with one
``index_add_`` (see ``fedrec.strategies``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

State = dict[str, torch.Tensor]
RowDelta = tuple[torch.Tensor, torch.Tensor]  # (ids [r] int64, rows [r, dim])


@dataclass
class ClientUpdate:
    """What one client sends: its dense deltas and the deltas of the embedding rows it touched.
    ``weight`` is its aggregation weight (examples, times any discount). ``whole_tables``: the
    client uploads every row of every table (sparse updates off), so row ids need not travel."""

    client: int
    weight: float
    dense: State
    sparse: dict[str, RowDelta]
    whole_tables: bool = False

    def nbytes(self) -> int:
        """Serialized payload size: dense values, plus per row its values and (sparse) its int64 id."""
        total = sum(t.numel() * t.element_size() for t in self.dense.values())
        for ids, rows in self.sparse.values():
            total += rows.numel() * rows.element_size() + (0 if self.whole_tables else ids.numel() * 8)
        return int(total)

    def scaled(self, w: float) -> ClientUpdate:
        """Deltas times ``w``, weight unchanged (an absolute discount, e.g. FedBuff's staleness)."""
        return ClientUpdate(self.client, self.weight, {n: d * w for n, d in self.dense.items()},
                            {n: (ids, rows * w) for n, (ids, rows) in self.sparse.items()}, self.whole_tables)


@dataclass
class SparseRows:
    """Rows of one embedding table: distinct ids (sorted), the weighted sum of their deltas, and
    the summed weight of the clients that touched each row."""

    ids: torch.Tensor  # [r] int64, sorted, unique
    delta_sum: torch.Tensor  # [r, dim]
    weight: torch.Tensor  # [r]

    def nbytes(self) -> int:
        return self.ids.numel() * 8 + self.delta_sum.numel() * self.delta_sum.element_size()


@dataclass
class MeanUpdate:
    """The averaged update: dense deltas, and per table the touched rows' averaged deltas."""

    dense: State
    sparse: dict[str, RowDelta]
    clients: int


@dataclass
class AggregatedUpdate:
    """Weighted sums over clients. ``combine`` and ``from_clients`` build it; ``mean`` averages."""

    weight: float = 0.0
    clients: int = 0
    dense: State = field(default_factory=dict)  # sum of weight * dense delta
    sparse: dict[str, SparseRows] = field(default_factory=dict)

    @staticmethod
    def from_clients(updates: Iterable[ClientUpdate]) -> AggregatedUpdate:
        """The weighted sum of client updates (FedAvg's numerator and denominator)."""
        parts = []
        for u in updates:
            w = float(u.weight)
            sparse = {n: SparseRows(ids, rows * w, torch.full((ids.numel(),), w, dtype=rows.dtype))
                      for n, (ids, rows) in u.sparse.items()}
            parts.append(AggregatedUpdate(w, 1, {n: d * w for n, d in u.dense.items()}, sparse))
        return AggregatedUpdate.combine(parts)

    @staticmethod
    def combine(parts: Iterable[AggregatedUpdate]) -> AggregatedUpdate:
        """Sum of partial sums (pre-aggregated actors, FedBuff buffers); rows coalesced by id."""
        parts = [p for p in parts if p.clients]
        if not parts:
            return AggregatedUpdate()
        if len(parts) == 1:
            return parts[0]
        dense = {n: torch.stack([p.dense[n] for p in parts]).sum(0) for n in parts[0].dense}
        sparse = {}
        for name in parts[0].sparse:
            rows = [p.sparse[name] for p in parts]
            ids, inverse = torch.unique(torch.cat([r.ids for r in rows]), sorted=True, return_inverse=True)
            delta = torch.zeros(len(ids), rows[0].delta_sum.shape[1], dtype=rows[0].delta_sum.dtype)
            weight = torch.zeros(len(ids), dtype=rows[0].weight.dtype)
            delta.index_add_(0, inverse, torch.cat([r.delta_sum for r in rows]))
            weight.index_add_(0, inverse, torch.cat([r.weight for r in rows]))
            sparse[name] = SparseRows(ids, delta, weight)
        return AggregatedUpdate(sum(p.weight for p in parts), sum(p.clients for p in parts), dense, sparse)

    def scaled(self, w: float) -> AggregatedUpdate:
        """Deltas times ``w``, weights unchanged: the discount survives the averaging."""
        sparse = {n: SparseRows(r.ids, r.delta_sum * w, r.weight) for n, r in self.sparse.items()}
        return AggregatedUpdate(self.weight, self.clients, {n: d * w for n, d in self.dense.items()}, sparse)

    def mean(self, rows: str = "touchers") -> MeanUpdate:
        """Dense: sum / total weight. Rows (``rows``): each row's sum / the weight of the clients
        that touched it (``touchers``), or / the total weight (``cohort``: what dense FedAvg gives,
        every client that left a row alone counting a zero change, so a row many clients move
        moves further than one a single client moves)."""
        dense = {n: d / self.weight for n, d in self.dense.items()} if self.weight > 0 else {}
        if rows == "cohort":
            total = max(self.weight, 1e-12)
            sparse = {n: (r.ids, r.delta_sum / total) for n, r in self.sparse.items()}
        else:
            sparse = {n: (r.ids, r.delta_sum / r.weight.clamp_min(1e-12).unsqueeze(1)) for n, r in self.sparse.items()}
        return MeanUpdate(dense, sparse, self.clients)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.dense.values()) + sum(r.nbytes() for r in self.sparse.values())


@dataclass
class ClientStart:
    """The weights one client trains from when it does not start from the shared global model (a
    gossip node's own model, a client's compressed copy of the global one): its dense tensors and,
    per table, the rows it touches, in the order of its sorted distinct ids."""

    dense: State
    rows: dict[str, torch.Tensor]


def state_nbytes(state: State) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


@dataclass
class StateChange:
    """What a server step changed: every dense tensor in full, and per table the rows written.
    The pool broadcasts exactly this to the actors, which patch their copy of the global model."""

    dense: State
    rows: dict[str, RowDelta]  # table -> (ids, new row values)

    @staticmethod
    def of(state: State, update: MeanUpdate | AggregatedUpdate, tables: Iterable[str]) -> StateChange:
        """The change of ``state`` after applying ``update`` (rows: the ids the update touched)."""
        tables = set(tables)
        touched = {n: r.ids if isinstance(r, SparseRows) else r[0] for n, r in update.sparse.items()}
        rows = {n: (ids, state[n][ids].clone()) for n, ids in touched.items()}
        return StateChange({n: t.clone() for n, t in state.items() if n not in tables}, rows)

    def apply_to(self, state: State) -> None:
        for n, t in self.dense.items():
            state[n].copy_(t)
        for n, (ids, rows) in self.rows.items():
            state[n][ids] = rows

    def nbytes(self) -> int:
        return state_nbytes(self.dense) + sum(ids.numel() * 8 + r.numel() * r.element_size() for ids, r in self.rows.values())
