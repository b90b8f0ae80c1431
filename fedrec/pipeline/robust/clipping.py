"""Centered clipping (Karimireddy, He and Jaggi, "Learning from History for Byzantine Robust
Optimization", ICML 2021).

Starting from a reference ``v`` (the previous round's aggregate: history), each client's deviation
``x_i - v`` is scaled down to norm at most ``tau`` and ``v`` moves by their average, ``iterations``
times: ``v <- v + mean_i (x_i - v) min(1, tau / ||x_i - v||)``. One client can move the result by
at most ``tau / n`` however far it lies.

The norm of a client's deviation is over what it uploaded (its dense deltas and its touched
rows). The average is per coordinate over the clients that hold it: every client for dense
tensors, a row's touchers for an embedding row (see ``stack``). A row absent from the previous
aggregate has reference 0. Unweighted, like the other statistics.
"""

from __future__ import annotations

import torch

from fedrec.pipeline.base import Aggregator, ServerContext
from fedrec.pipeline.robust.stacking import stack, to_aggregate
from fedrec.updates import AggregatedUpdate, ClientUpdate


def _lookup(ids: torch.Tensor, ref: tuple[torch.Tensor, torch.Tensor] | None, dim: int, dtype) -> torch.Tensor:
    """Reference rows for ``ids`` (zeros where the reference has none)."""
    out = torch.zeros(len(ids), dim, dtype=dtype)
    if ref is None or len(ref[0]) == 0:
        return out
    ref_ids, ref_rows = ref
    pos = torch.searchsorted(ref_ids, ids).clamp_max(len(ref_ids) - 1)
    hit = ref_ids[pos] == ids
    out[hit] = ref_rows[pos[hit]].to(dtype)
    return out


class CenteredClipping(Aggregator):
    name = "centered_clipping"

    def __init__(self, tau: float, iterations: int = 1) -> None:
        self.tau = tau
        self.iterations = iterations
        self.dense_ref: dict[str, torch.Tensor] = {}
        self.rows_ref: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def aggregate(self, updates: list[ClientUpdate], ctx: ServerContext) -> AggregatedUpdate:
        s = stack(updates)
        v = {n: self.dense_ref.get(n, torch.zeros_like(d[0])).clone() for n, d in s.dense.items()}
        vr = {n: _lookup(r.ids, self.rows_ref.get(n), r.values.shape[2], r.values.dtype) for n, r in s.rows.items()}
        for _ in range(self.iterations):
            # each client's deviation norm over what it uploaded
            sq = torch.zeros(s.n, dtype=torch.float64)
            for n, d in s.dense.items():
                sq += ((d - v[n]) ** 2).reshape(s.n, -1).sum(1).to(torch.float64)
            for n, r in s.rows.items():
                dev = (r.values - vr[n]) * r.touched.unsqueeze(-1)
                sq += (dev**2).reshape(s.n, -1).sum(1).to(torch.float64)
            scale = torch.clamp(self.tau / sq.sqrt().clamp_min(1e-12), max=1.0)
            for n, d in s.dense.items():
                c = scale.to(d.dtype).reshape(-1, *([1] * (d.dim() - 1)))
                v[n] = v[n] + ((d - v[n]) * c).mean(0)
            for n, r in s.rows.items():
                c = (scale.to(r.values.dtype)[:, None] * r.touched).unsqueeze(-1)  # 0 for non-touchers
                count = r.touched.sum(0).clamp_min(1).unsqueeze(-1)
                vr[n] = vr[n] + ((r.values - vr[n]) * c).sum(0) / count
        self.dense_ref = {n: t.clone() for n, t in v.items()}
        self.rows_ref = {n: (s.rows[n].ids, t.clone()) for n, t in vr.items()}
        return to_aggregate(v, {n: (s.rows[n].ids, t) for n, t in vr.items()}, s.n)

    def state_dict(self) -> dict:
        return {"dense_ref": self.dense_ref, "rows_ref": self.rows_ref}

    def load_state_dict(self, state: dict) -> None:
        self.dense_ref = dict(state.get("dense_ref") or {})
        self.rows_ref = dict(state.get("rows_ref") or {})
