"""Trace replay: count where sampled lookups land under a plan, the same way for every planner.

For each table a trace of row ranks (0 = hottest row) is drawn once and reused for every plan:

* ``zipf``: ``data_pipeline.synth.zipf_ranks`` with the table's ``zipf`` exponent (synthetic
  workloads record it), independent of the 64-point CDF the planners saw;
* ``cdf``: inverse-CDF sampling of the workload's own access CDF (tables without ``zipf``);
* ``counts``: ranks drawn in proportion to a real dataset's per-row counts (sorted hottest first);
* a trace file (``--trace T.npz``): one integer array of row ranks per table name.

A shard keeps its ``hbm_rows`` hottest rows in HBM. In a table-wise shard or a column slice a
lookup of rank ``r`` hits HBM when ``r < hbm_rows``; in a row-wise table rank ``r`` is first dealt
to its block and position (``sharding.shards.deal``) and hits HBM when the position is below the
block's ``hbm_rows``, so the replay also measures how evenly the blocks share the lookups. Per
iteration a table serves ``global_batch * coverage * pooling`` lookups; the trace's shares are
scaled to that. A GPU's time is its shards' HBM bytes at HBM bandwidth plus UVM bytes at UVM
bandwidth plus each shard's overhead (fixed, all-to-all, reduction), as in ``sharding.cost``.
Reported: ``max_gpu_ms``, ``imbalance`` (max / mean), ``uvm_accesses`` and ``hbm_accesses`` per
iteration (in whole rows: a column slice's read counts for its share of the columns), and the
per-GPU lists.
"""

from __future__ import annotations

import os

import numpy as np

from data_pipeline.synth import zipf_ranks
from sharding.cost import CostModel
from sharding.errors import WorkloadError
from sharding.plan import Plan
from sharding.shards import ROW_WISE, deal
from sharding.topology import Topology
from sharding.workload import TableWorkload, Workload


class Replay:
    """Sampled traces of a workload, ready to evaluate any number of plans."""

    def __init__(
        self,
        workload: Workload,
        topology: Topology,
        samples_per_table: int = 100_000,
        seed: int = 0,
        source: str = "auto",
        counts: dict[str, np.ndarray] | None = None,
        traces: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.workload = workload
        self.topology = topology
        self.model = CostModel(workload, topology)
        self.sorted_ranks: list[np.ndarray] = []
        self.sources: dict[str, int] = {}
        for i, t in enumerate(workload.tables):
            rng = np.random.default_rng([seed, i])
            if traces is not None:
                if t.name not in traces:
                    raise WorkloadError(t.name, "the trace has no lookups for this table")
                ranks, kind = np.asarray(traces[t.name], dtype=np.int64), "trace"
            elif counts is not None and t.name in counts:
                ranks, kind = _from_counts(rng, counts[t.name], samples_per_table), "counts"
            elif t.zipf is not None and source in ("auto", "zipf") and t.rows > 0:
                ranks, kind = zipf_ranks(rng, samples_per_table, t.rows, t.zipf), "zipf"
            else:
                ranks, kind = _from_cdf(rng, t, samples_per_table), "cdf"
            if len(ranks) and (ranks.min() < 0 or ranks.max() >= max(t.rows, 1)):
                raise WorkloadError(t.name, f"trace ranks must be in [0, {t.rows})")
            self.sorted_ranks.append(np.sort(ranks))
            self.sources[kind] = self.sources.get(kind, 0) + 1

    def shares(self, plan: Plan) -> tuple[CostModel, np.ndarray, np.ndarray, np.ndarray]:
        """(cost model of the plan's shards, their ranks, fraction of the table's traced lookups
        each shard serves, fraction served from its HBM rows), shards in workload order."""
        model, ranks, hot = plan.cost_model(self.workload, self.topology)
        served = np.ones(len(model))
        in_hbm = np.ones(len(model))
        for i, sorted_ranks in enumerate(self.sorted_ranks):
            items = np.flatnonzero(model.table == i)
            n = len(sorted_ranks)
            if not n:
                continue
            if model.parts[items[0]].sharding == ROW_WISE:
                block, pos = deal(sorted_ranks, [int(model.rows[k]) for k in items])
                for r, k in enumerate(items):
                    mine = block == r
                    served[k] = mine.sum() / n
                    in_hbm[k] = (mine & (pos < hot[k])).sum() / n
            else:
                for k in items:
                    in_hbm[k] = np.searchsorted(sorted_ranks, hot[k], side="left") / n
        return model, ranks, served, in_hbm

    def evaluate(self, plan: Plan) -> dict:
        m, topo = self.model, self.topology
        model, ranks, served, in_hbm = self.shares(plan)
        lookups = m.lookups[model.table] * served  # the table's lookups this shard serves
        hbm_acc = m.lookups[model.table] * in_hbm
        uvm_acc = lookups - hbm_acc
        t_ms = (
            hbm_acc * model.row_bytes * m.ms_per_hbm_byte
            + uvm_acc * model.row_bytes * m.ms_per_uvm_byte
            + model.overhead_ms(lookups)
        )
        width = model.row_bytes / m.row_bytes[model.table]  # a column slice's share of a row
        gpu_ms, gpu_uvm, gpu_hbm = (np.zeros(topo.gpus) for _ in range(3))
        np.add.at(gpu_ms, ranks, t_ms)
        np.add.at(gpu_uvm, ranks, uvm_acc * width)
        np.add.at(gpu_hbm, ranks, hbm_acc * width)
        mean = gpu_ms.mean()
        return {
            "planner": plan.planner,
            "max_gpu_ms": float(gpu_ms.max()),
            "imbalance": float(gpu_ms.max() / mean) if mean > 0 else 1.0,
            "uvm_accesses": float(gpu_uvm.sum()),
            "hbm_accesses": float(gpu_hbm.sum()),
            "gpu_ms": [float(x) for x in gpu_ms],
            "gpu_uvm_accesses": [float(x) for x in gpu_uvm],
            "trace": dict(self.sources),
            "unit": "per iteration",
        }


def load_trace(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A trace file: ``.npz`` with one array of row ranks (0 = hottest) per table name."""
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise WorkloadError(None, f"cannot read trace {path}: {exc}") from None


def _from_cdf(rng: np.random.Generator, t: TableWorkload, n: int) -> np.ndarray:
    if t.rows == 0:
        return np.zeros(0, dtype=np.int64)
    xs, ys = t.cdf_points()
    u = rng.random(n)
    return np.minimum((np.interp(u, ys, xs) * t.rows).astype(np.int64), t.rows - 1)


def _from_counts(rng: np.random.Generator, counts: np.ndarray, n: int) -> np.ndarray:
    c = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    if c.sum() <= 0:
        return np.zeros(0, dtype=np.int64)
    cum = np.cumsum(c)
    return np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), len(c) - 1)
