"""The cost model every planner optimises and every plan is reported with.

A plan cuts each table into shards (``sharding.shards``: table-wise, column-wise, row-wise); the
cost model prices one shard at a time and sums them per GPU, as TorchRec's planner does. Per
training iteration, the shard ``s`` of table ``t`` looks up its share of the ids of every GPU's
samples (the global batch ``G * batch_size``), reading

    bytes_s = global_batch * coverage_t * pooling_factor_t * share_s * cols_s * bytes_per_value_t

of embedding rows (``share_s``: 1 for a table-wise shard or a column slice, the block's share of
the rows for a row-wise block). If the ``h_s`` hottest rows of the shard live in HBM and the rest
in host memory reached over UVM, a fraction ``a_s = CDF_t(h_s / rows_s)`` of those reads hit HBM
(the table's access CDF, hottest rows first; a row-wise block sees the same curve, see
``sharding.shards``) and the rest go over UVM:

    lookup_s(h_s) = bytes_s * a_s / HBM_bandwidth + bytes_s * (1 - a_s) / UVM_bandwidth

and every shard pays an overhead that does not depend on its hot rows:

    overhead_s = fixed                                               (kernel and bookkeeping)
               + ids_s * id_cost                                     (per id, whatever its bytes)
               + (ids_s * 8 + global_batch * cols_s * bytes_per_value_t) / comm_bandwidth
               + [row-wise] global_batch * cols_s * bytes_per_value_t / HBM_bandwidth

The communication term is the shard's part of the two all-to-alls, charged to the GPU that holds
it: the int64 ids it receives (a column slice receives every id of the table: splitting columns
repeats the input all-to-all) and the pooled output it sends (one row per sample of the global
batch; every row-wise block sends a partial sum for every sample, so splitting rows multiplies the
output all-to-all, and the receiver pays the last term to add the partial sums up: the output
reduction). ``id_cost`` (``Topology.id_ns``) is 0 for GPUs, whose lookups are bandwidth-bound; a
CPU pays a memory latency and bookkeeping per id (fitted on this machine: ``fedrec plan run``).
A GPU's cost is the sum over its shards; a plan's objective is the maximum over GPUs
(the slowest GPU sets the iteration time). HBM per GPU is capped at the topology's budget
(``hbm_gb * (1 - hbm_reserved_fraction)``), host memory per GPU at ``uvm_gb``.

Because the CDF is concave and piecewise linear, the HBM bytes are best spent by
"water-filling": every CDF segment of every shard saves ``bytes_s * (1/UVM - 1/HBM) * slope``
per row fraction, so filling segments in order of saving per byte (``allocate_hot_rows``) is the
optimal hot-row split for a fixed shard-to-GPU assignment.

Units: costs in milliseconds per iteration, bandwidths in GB/s (GB = 2**30 bytes), sizes in bytes.
The model prices the forward pass; on a real machine the backward pass and the optimizer scale
with the same quantities, which is what ``scripts/bench_planner_measured.py`` fits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sharding.shards import ROW_WISE, Part, table_parts
from sharding.topology import GB, Topology
from sharding.workload import Workload

INDEX_BYTES = 8  # int64 ids in the input all-to-all


class CostModel:
    """Per-shard constants of the cost model, precomputed once for a workload, a topology and a way
    to cut the tables (``parts``; default: every table whole, table-wise). Arrays are indexed by
    part ("item"); ``table`` maps an item to its workload table."""

    def __init__(self, workload: Workload, topology: Topology, parts: Sequence[Part] | None = None) -> None:
        self.workload = workload
        self.topology = topology
        tables = workload.tables
        if parts is None:
            parts = [p for i, t in enumerate(tables) for p in table_parts(i, t)]
        self.parts = list(parts)
        self.table = np.array([p.table for p in self.parts], dtype=np.int64)
        self.names = [tables[p.table].name for p in self.parts]
        self.gang = np.array([p.gang for p in self.parts], dtype=np.int64)
        self.fixed_rank = np.array([p.fixed_rank for p in self.parts], dtype=np.int64)
        self.rows = np.array([p.rows for p in self.parts], dtype=np.int64)
        bpv = np.array([tables[p.table].bytes_per_value for p in self.parts], dtype=np.int64)
        cols = np.array([p.cols for p in self.parts], dtype=np.int64)
        self.row_bytes = cols * bpv
        self.bytes = self.rows * self.row_bytes
        self.ms_per_hbm_byte = 1000.0 / (topology.hbm_gbps * GB)
        self.ms_per_uvm_byte = 1000.0 / (topology.uvm_gbps * GB)
        self.ms_per_comm_byte = 1000.0 / (topology.comm_gbps * GB)
        self.fixed_ms = topology.table_fixed_us / 1000.0
        self.ms_per_id = topology.id_ns * 1e-6
        share = np.array([p.lookup_share for p in self.parts])
        self.lookups = np.array([topology.global_batch * tables[p.table].lookups_per_sample for p in self.parts]) * share
        self.lookup_bytes = self.lookups * self.row_bytes
        # Overhead per shard: fixed, its part of the two all-to-alls, and the row-wise reduction.
        self.output_bytes = topology.global_batch * self.row_bytes.astype(np.float64)
        row_wise = np.array([p.sharding == ROW_WISE for p in self.parts], dtype=bool)
        self.reduce_ms = np.where(row_wise, self.output_bytes * self.ms_per_hbm_byte, 0.0)
        self.comm_ms = (self.lookups * INDEX_BYTES + self.output_bytes) * self.ms_per_comm_byte
        self.overhead = self.overhead_ms(self.lookups)
        self.cold_cost = self.lookup_bytes * self.ms_per_uvm_byte + self.overhead  # all rows in UVM
        self.gain = self.lookup_bytes * (self.ms_per_uvm_byte - self.ms_per_hbm_byte)  # saved at a = 1
        # CDF segments of every item (its table's curve), for water-filling and the MILP.
        seg_t, seg_x0, seg_dx, seg_slope = [], [], [], []
        self.cdf = []
        for i, p in enumerate(self.parts):
            xs, ys = tables[p.table].cdf_points()
            self.cdf.append((xs, ys))
            dx = np.diff(xs)
            seg_t.append(np.full(len(dx), i))
            seg_x0.append(xs[:-1])
            seg_dx.append(dx)
            seg_slope.append(np.diff(ys) / dx)
        self.seg_table = np.concatenate(seg_t)
        self.seg_x0 = np.concatenate(seg_x0)
        self.seg_dx = np.concatenate(seg_dx)
        self.seg_slope = np.concatenate(seg_slope)
        self.seg_bytes = self.seg_dx * self.bytes[self.seg_table]
        with np.errstate(divide="ignore", invalid="ignore"):
            per_byte = self.gain[self.seg_table] * self.seg_slope / np.maximum(self.bytes[self.seg_table], 1)
        self.seg_saving_per_byte = np.nan_to_num(per_byte)
        starts = np.r_[0, np.cumsum([len(xs) - 1 for xs, _ in self.cdf])]
        self.seg_start, self.seg_stop = starts[:-1], starts[1:]

    def __len__(self) -> int:
        return len(self.names)

    def overhead_ms(self, lookups: np.ndarray) -> np.ndarray:
        """Each item's overhead when it serves ``lookups`` ids: fixed cost, its ids in and pooled
        output out of the all-to-alls, and (row-wise) the reduction of the partial outputs."""
        return (
            self.fixed_ms
            + lookups * self.ms_per_id
            + (lookups * INDEX_BYTES + self.output_bytes) * self.ms_per_comm_byte
            + self.reduce_ms
        )

    def access_fraction(self, i: int, hot_rows) -> float:
        if self.rows[i] == 0:
            return 1.0
        xs, ys = self.cdf[i]
        return float(np.interp(hot_rows / self.rows[i], xs, ys))

    def table_cost(self, i: int, hot_rows: int) -> float:
        return float(self.cold_cost[i] - self.gain[i] * self.access_fraction(i, hot_rows))

    def table_costs(self, hot_rows: Sequence[int]) -> np.ndarray:
        return np.array([self.table_cost(i, h) for i, h in enumerate(hot_rows)])

    def gpu_costs(self, ranks: Sequence[int], hot_rows: Sequence[int]) -> np.ndarray:
        costs = np.zeros(self.topology.gpus)
        np.add.at(costs, np.asarray(ranks), self.table_costs(hot_rows))
        return costs

    def allocate_hot_rows(self, tables: Sequence[int], budget_bytes: float) -> np.ndarray:
        """Optimal hot rows of ``tables`` sharing ``budget_bytes`` of HBM (water-filling)."""
        tables = np.asarray(tables, dtype=np.int64)
        frac, _, whole = self._water_fill(tables, budget_bytes)
        rows = self.rows[tables]
        # Flooring can only free bytes, so the budget holds; tables whose every segment fit are
        # whole (float sums of segment widths may fall a hair short of 1).
        hot = np.minimum(np.floor(frac * rows).astype(np.int64), rows)
        hot[whole] = rows[whole]
        # Flooring frees up to a row per table; give the freed bytes back a row at a time to the
        # tables that were cut short (largest fractional part first), so HBM stays full to within
        # one row and host memory does not have to take the rounding.
        left = budget_bytes - float((hot * self.row_bytes[tables]).sum())
        short = np.flatnonzero(hot < np.minimum(np.ceil(frac * rows), rows))
        for k in short[np.argsort(-(frac[short] * rows[short] - hot[short]))]:
            if self.row_bytes[tables[k]] <= left:
                hot[k] += 1
                left -= self.row_bytes[tables[k]]
        return hot

    def group_cost(self, tables: Sequence[int], budget_bytes: float) -> float:
        """Cost of one GPU holding ``tables`` with its HBM water-filled (continuous hot rows)."""
        tables = np.asarray(tables, dtype=np.int64)
        if len(tables) == 0:
            return 0.0
        _, acc, _ = self._water_fill(tables, budget_bytes)
        return float((self.cold_cost[tables] - self.gain[tables] * acc).sum())

    def group_price(self, tables: Sequence[int], budget_bytes: float) -> float:
        """ms saved by one more byte of HBM on a GPU holding ``tables`` (0 when all fit)."""
        tables = np.asarray(tables, dtype=np.int64)
        return self._water_fill(tables, budget_bytes, with_price=True)[3] if len(tables) else 0.0

    def fluid(self, budget_bytes: float) -> tuple[np.ndarray, float]:
        """All tables sharing ``budget_bytes`` as if they could be spread perfectly: (access
        fraction per table, marginal saving in ms per byte of the last HBM byte spent)."""
        _, acc, _, price = self._water_fill(np.arange(len(self)), budget_bytes, with_price=True)
        return acc, price

    def fluid_bound(self) -> float:
        """A lower bound on the slowest GPU of any plan that cuts the tables this way or finer: all
        HBM shared by all items (as if they could be spread perfectly), averaged over GPUs. It is
        the optimum of the MILP's LP relaxation, computed by water-filling instead of by an LP
        solver. On the table-wise model it bounds every plan, split or not: cutting a table only
        adds overhead (more fixed costs, repeated ids or partial outputs)."""
        topo = self.topology
        acc, _ = self.fluid(topo.gpus * topo.hbm_budget_bytes)
        return float((self.cold_cost - self.gain * acc).sum()) / topo.gpus

    def single_table_costs(self) -> np.ndarray:
        """Each item's cost alone on a GPU with the whole HBM budget; on the table-wise model the
        largest is a lower bound on the slowest GPU of any table-wise plan."""
        budget = self.topology.hbm_budget_bytes
        hot = np.minimum(self.rows, budget // np.maximum(self.row_bytes, 1))
        return self.table_costs(hot)

    def _water_fill(self, tables: np.ndarray, budget_bytes: float, with_price: bool = False):
        """(row fraction, access fraction, whole?) per table: segments filled in order of saving
        per byte until the budget runs out, the last one in part (and the saving per byte there)."""
        n = len(tables)
        if n == 0 or self.bytes[tables].sum() <= budget_bytes:
            out = (np.ones(n), np.ones(n), np.ones(n, dtype=bool))
            return (*out, 0.0) if with_price else out
        counts = self.seg_stop[tables] - self.seg_start[tables]
        offsets = np.repeat(np.cumsum(counts) - counts, counts)
        seg = np.arange(counts.sum()) - offsets + np.repeat(self.seg_start[tables], counts)
        local = np.repeat(np.arange(n), counts)
        # Highest saving per byte first; among equals, a table's own segments stay in order.
        order = np.lexsort((seg, -self.seg_saving_per_byte[seg]))
        seg, local = seg[order], local[order]
        cum = np.cumsum(self.seg_bytes[seg])
        full = cum <= budget_bytes
        part = np.zeros(len(seg))
        part[full] = 1.0
        k = int(full.sum())
        price = float(self.seg_saving_per_byte[seg[k]]) if k < len(seg) else 0.0
        if k < len(seg) and self.seg_bytes[seg[k]] > 0:  # the segment the budget runs out in
            part[k] = (budget_bytes - (cum[k - 1] if k else 0.0)) / self.seg_bytes[seg[k]]
        frac = np.bincount(local, weights=part * self.seg_dx[seg], minlength=n)
        acc = np.bincount(local, weights=part * self.seg_dx[seg] * self.seg_slope[seg], minlength=n)
        whole = np.bincount(local[full], minlength=n) == counts
        acc[whole] = 1.0
        out = (frac, np.minimum(acc, 1.0), whole)
        return (*out, price) if with_price else out
