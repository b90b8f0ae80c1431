"""Secure aggregation as the pipeline's aggregator: the server learns the round's weighted sum and
nothing else about any one client's update.

Each client's update becomes one vector of fixed-point integers: its weight, its weighted dense
deltas, and per embedding table the weighted deltas and the weight of every row of a common row
set (zeros where it touched nothing). The protocol (``protocol``) sums these modulo 2^k, the
server decodes the sum into the usual ``AggregatedUpdate`` (rows averaged over their touchers),
and the round goes on as if it had been summed in the clear; a test checks it equals the plain
sum to fixed-point precision, with dropouts.

The conflict with sparse uploads: the ids of the rows a client uploads say which items its user
has seen, and masking cannot hide them. ``padding: all`` sends every row of every table (nothing
leaks; the upload becomes whole tables, whose cost the run reports); ``padding: union`` sends the
union of the round's touched rows (the server learns that union, not who touched what; smaller).

The clients' half of the protocol runs here, in the driver, on the updates the actors returned
(the per-client path), as separate ``SecAggClient`` objects that exchange only protocol messages
with the server object; dropouts after masking are drawn per round from the run's seed.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from fedrec.pipeline.base import Aggregator, ModelShapes, ServerContext
from fedrec.secagg.config import SecureAggregationConfig
from fedrec.secagg.fixed_point import FixedPoint
from fedrec.secagg.graph import neighbours
from fedrec.secagg.protocol import SecAggAbort, run_round
from fedrec.updates import AggregatedUpdate, ClientUpdate, SparseRows

log = logging.getLogger(__name__)


class UpdateCodec:
    """Client update <-> flat real vector ``[weight, w*dense..., per table w*rows, row weights]``
    over a fixed row set per table."""

    def __init__(self, model: ModelShapes, row_sets: dict[str, torch.Tensor]) -> None:
        self.dense = [(n, s) for n, s in model.shapes.items() if n not in model.tables]
        self.tables = [(n, model.shapes[n][1]) for n in model.tables]
        self.row_sets = row_sets
        self.dim = 1 + sum(int(np.prod(s)) for _, s in self.dense) + sum(len(row_sets[n]) * (d + 1) for n, d in self.tables)

    def encode(self, u: ClientUpdate) -> np.ndarray:
        w = float(u.weight)
        parts = [np.array([w])]
        parts += [(u.dense[n].double() * w).reshape(-1).numpy() for n, _ in self.dense]
        for n, d in self.tables:
            rows = self.row_sets[n]
            vals = torch.zeros(len(rows), d, dtype=torch.float64)
            wts = torch.zeros(len(rows), dtype=torch.float64)
            ids, delta = u.sparse[n]
            pos = torch.searchsorted(rows, ids)
            vals[pos] = delta.double() * w
            wts[pos] = w
            parts += [vals.reshape(-1).numpy(), wts.numpy()]
        return np.concatenate(parts)

    def decode(self, x: np.ndarray, clients: int) -> AggregatedUpdate:
        at = 1
        dense = {}
        for n, s in self.dense:
            k = int(np.prod(s))
            dense[n] = torch.from_numpy(x[at:at + k].reshape(s)).float()
            at += k
        sparse = {}
        for n, d in self.tables:
            rows = self.row_sets[n]
            vals = torch.from_numpy(x[at:at + len(rows) * d].reshape(len(rows), d)).float()
            at += len(rows) * d
            wts = torch.from_numpy(x[at:at + len(rows)]).float()
            at += len(rows)
            hit = wts > 0
            sparse[n] = SparseRows(rows[hit], vals[hit], wts[hit])
        return AggregatedUpdate(float(x[0]), clients, dense, sparse)


class SecureAggregator(Aggregator):
    name = "secure_aggregation"

    def __init__(self, model: ModelShapes, cfg: SecureAggregationConfig) -> None:
        self.model, self.cfg = model, cfg
        self.fp = FixedPoint(cfg.frac_bits, cfg.modulus_bits)
        self.totals = {"rounds": 0, "rounds_failed": 0, "bytes_secagg": 0, "bytes_plain": 0, "seconds": 0.0,
                       "client_seconds": 0.0, "server_seconds": 0.0, "dropouts": 0, "dropouts_recovered": 0,
                       "values_clipped": 0}

    def row_sets(self, updates: list[ClientUpdate]) -> dict[str, torch.Tensor]:
        if self.cfg.padding == "all":
            return {n: torch.arange(self.model.shapes[n][0]) for n in self.model.tables}
        return {n: torch.unique(torch.cat([u.sparse[n][0] for u in updates])) for n in self.model.tables}

    def aggregate(self, updates: list[ClientUpdate], ctx: ServerContext) -> AggregatedUpdate:
        rng = np.random.default_rng([ctx.seed, ctx.round, 0x5EC])
        updates = sorted(updates, key=lambda u: u.client)
        clients = [int(u.client) for u in updates]
        dropped = {c for c, r in zip(clients, rng.random(len(clients))) if r < self.cfg.dropout}
        codec = UpdateCodec(self.model, self.row_sets(updates))
        vectors = {}
        for u in updates:
            vectors[u.client], clipped = self.fp.encode(codec.encode(u), len(updates))
            self.totals["values_clipped"] += clipped
        graph = neighbours(clients, self.cfg.graph_degree, rng)
        t = self.totals
        t["rounds"] += 1
        t["bytes_plain"] += sum(u.nbytes() for u in updates)
        t["dropouts"] += len(dropped)
        try:
            total, st = run_round(clients, vectors, dropped, ctx.round, graph, self.cfg.threshold, self.fp)
        except SecAggAbort as exc:
            log.warning("secure aggregation failed in round %d (%s); the round is skipped", ctx.round, exc)
            t["rounds_failed"] += 1
            return AggregatedUpdate()
        t["bytes_secagg"] += st.total_bytes
        t["client_seconds"] += st.client_seconds
        t["server_seconds"] += st.server_seconds
        t["seconds"] += st.client_seconds + st.server_seconds
        t["dropouts_recovered"] += st.recovered
        return codec.decode(self.fp.decode(total), len(clients) - len(dropped))

    def state_dict(self) -> dict:
        return {"totals": dict(self.totals)}

    def load_state_dict(self, state: dict) -> None:
        self.totals.update(state.get("totals", {}))

    def report(self) -> dict:
        t = self.totals
        return {"secagg": {**t, "bytes_overhead": t["bytes_secagg"] - t["bytes_plain"],
                           "expansion": t["bytes_secagg"] / t["bytes_plain"] if t["bytes_plain"] else float("nan"),
                           "padding": self.cfg.padding, "graph_degree": self.cfg.graph_degree,
                           "threshold": self.cfg.threshold, "modulus_bits": self.cfg.modulus_bits}}
