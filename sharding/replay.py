"""Trace replay: count where sampled lookups land under a plan, the same way for every planner.

For each table a trace of row ranks (0 = hottest row) is drawn once and reused for every plan:

* ``zipf``: ``data_pipeline.synth.zipf_ranks`` with the table's ``zipf`` exponent (synthetic
  workloads record it), independent of the 64-point CDF the planners saw;
* ``cdf``: inverse-CDF sampling of the workload's own access CDF (tables without ``zipf``);
* ``counts``: ranks drawn in proportion to a real dataset's per-row counts (sorted hottest first);
* a trace file (``--trace T.npz``): one integer array of row ranks per table name.

A plan keeps each table's ``hbm_rows`` hottest rows in HBM, so a lookup of rank ``r`` hits HBM
when ``r < hbm_rows``. Per iteration a table serves ``global_batch * coverage * pooling`` lookups;
the trace's HBM share is scaled to that. A GPU's time is its tables' HBM bytes at HBM bandwidth
plus UVM bytes at UVM bandwidth plus the fixed per-table cost, as in ``sharding.cost``. Reported:
``max_gpu_ms``, ``imbalance`` (max / mean), ``uvm_accesses`` and ``hbm_accesses`` per iteration,
and the per-GPU lists.
"""

from __future__ import annotations

import os

import numpy as np

from data_pipeline.synth import zipf_ranks
from sharding.cost import CostModel
from sharding.errors import WorkloadError
from sharding.plan import Plan
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

    def hbm_share(self, plan: Plan) -> np.ndarray:
        """Fraction of each table's traced lookups that hit its HBM rows, in workload order."""
        _, hot = plan.arrays(self.workload)
        share = np.ones(len(self.workload))
        for i, ranks in enumerate(self.sorted_ranks):
            if len(ranks):
                share[i] = np.searchsorted(ranks, hot[i], side="left") / len(ranks)
        return share

    def evaluate(self, plan: Plan) -> dict:
        m, topo = self.model, self.topology
        ranks, _ = plan.arrays(self.workload)
        share = self.hbm_share(plan)
        hbm_acc = m.lookups * share
        uvm_acc = m.lookups - hbm_acc
        t_ms = hbm_acc * m.row_bytes * m.ms_per_hbm_byte + uvm_acc * m.row_bytes * m.ms_per_uvm_byte + m.fixed_ms
        gpu_ms, gpu_uvm, gpu_hbm = (np.zeros(topo.gpus) for _ in range(3))
        np.add.at(gpu_ms, ranks, t_ms)
        np.add.at(gpu_uvm, ranks, uvm_acc)
        np.add.at(gpu_hbm, ranks, hbm_acc)
        mean = gpu_ms.mean()
        return {
            "planner": plan.planner,
            "max_gpu_ms": float(gpu_ms.max()),
            "imbalance": float(gpu_ms.max() / mean) if mean > 0 else 1.0,
            "uvm_accesses": float(uvm_acc.sum()),
            "hbm_accesses": float(hbm_acc.sum()),
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
