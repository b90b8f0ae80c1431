"""TorchRec's own ``EmbeddingShardingPlanner`` as a baseline, on the same machine and budget.

It plans on this (CPU) machine for a CUDA topology: a meta-device ``EmbeddingBagCollection`` with
one table per workload table, ``world_size`` = GPUs, ``hbm_cap`` / ``ddr_cap`` per rank from our
topology, bandwidths converted to TorchRec's bytes per millisecond, ``batch_size`` per rank, and
a fixed-percentage storage reservation equal to ``hbm_reserved_fraction`` (TorchRec's default
heuristic reservation is also 15%, but adds activation estimates; a fixed percentage gives it
exactly the budget our planners get). Each table's mean lookups per sample (coverage x pooling)
is its TorchRec pooling factor. TorchRec may shard table-wise, column-wise and row-wise (and their
single-host table-column-wise / table-row-wise forms, which are the same on one host), as our
planners may; data-parallel (a copy of the table on every GPU) is left out because a plan here
places every row once.

Variants:

* ``default``: TorchRec's defaults. Tables too big for HBM get ``FUSED_UVM_CACHING`` only if
  the default cache load factor (0.2) fits, else they fall back to uncached ``FUSED_UVM``.
* ``cache``: tables bigger than ``big_fraction`` of a GPU's HBM budget are given a uniform cache
  load factor ``clf``, and either forced to ``FUSED_UVM_CACHING`` (``force=True``) or free to
  pick any kernel.
* ``scaleup``: ``cache`` plus ``EmbeddingOffloadScaleupProposer``, fed per-table cache
  statistics derived from each table's access CDF (so it can give caches of skewed tables more).
* ``best``: all of the above over a sweep of load factors; keeps the plan our cost model rates
  best (TorchRec at its best), and records every variant's rating in ``solver["sweep"]``.

TorchRec's plan becomes ours shard by shard: ``FUSED`` = all rows in HBM, ``FUSED_UVM`` = all
in host memory, ``FUSED_UVM_CACHING`` with load factor ``f`` = a cache of ``f * rows`` of the
shard's rows, evaluated as if it always held the hottest (generous to TorchRec: a real LRU does
worse). TorchRec's row-wise blocks hold ids in id order; for hashed ids that deals the rows to the
blocks at random, which gives each block the table's access curve, as our round-robin dealing
does (``sharding.shards``), so the two are evaluated alike.
"""

from __future__ import annotations

import contextlib
import logging
import math

import numpy as np

from sharding.cost import CostModel
from sharding.errors import InfeasiblePlanError
from sharding.plan import Plan, Shard, TablePlacement
from sharding.planners.base import Planner, check_feasible
from sharding.topology import GB, Topology
from sharding.workload import TableWorkload, Workload

CLF_SWEEP = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
_DTYPES = {4: "FP32", 2: "FP16", 1: "INT8"}


class TorchRecPlanner(Planner):
    def __init__(
        self,
        variant: str = "default",
        clf: float = 0.2,
        force: bool = True,
        big_fraction: float = 1.0,
        sweep: tuple[float, ...] = CLF_SWEEP,
        table_wise_only: bool = False,
    ) -> None:
        if variant not in ("default", "cache", "scaleup", "best"):
            raise ValueError(f"unknown TorchRec variant {variant!r}")
        self.variant, self.clf, self.force, self.big_fraction, self.sweep = variant, clf, force, big_fraction, sweep
        # TorchRec's planner enumerates every sharding type of every table; on 1,000 tables that
        # takes hours on 2 cores, table-wise alone minutes.
        self.table_wise_only = table_wise_only
        self.name = "torchrec" if variant == "default" else f"torchrec-{variant}"

    def plan(self, workload: Workload, topology: Topology) -> Plan:
        model = CostModel(workload, topology)
        check_feasible(model)
        if self.variant != "best":
            plan = run_torchrec(workload, topology, self.variant, self.clf, self.force, self.big_fraction, self.table_wise_only)
            plan.planner = self.name
            return plan
        trials = [("default", None, True)]
        trials += [(v, clf, force) for clf in self.sweep for v, force in (("cache", True), ("cache", False))]
        trials += [("scaleup", clf, True) for clf in self.sweep if clf <= 0.2]
        best, sweep = None, []
        for variant, clf, force in trials:
            label = variant if clf is None else f"{variant}(clf={clf}, {'forced' if force else 'free'})"
            try:
                plan = run_torchrec(workload, topology, variant, clf or 0.2, force, self.big_fraction, self.table_wise_only)
                plan.check(workload, topology)
            except InfeasiblePlanError as exc:
                sweep.append({"variant": label, "error": str(exc).splitlines()[0][:200]})
                continue
            cost = float(plan.gpu_costs(workload, topology).max())
            sweep.append({"variant": label, "max_gpu_cost": cost})
            if best is None or cost < best[0]:
                best = (cost, label, plan)
        if best is None:
            raise InfeasiblePlanError("TorchRec found no plan in any variant: " + sweep[0]["error"])
        cost, label, plan = best
        plan.planner = self.name
        plan.solver.update(best_variant=label, sweep=sweep)
        return plan


def run_torchrec(
    workload: Workload,
    topology: Topology,
    variant: str,
    clf: float,
    force: bool,
    big_fraction: float = 1.0,
    table_wise_only: bool = False,
) -> Plan:
    """One TorchRec planning run, converted to our plan form."""
    import torch
    from torchrec.distributed.embedding_types import EmbeddingComputeKernel as K
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.planner import EmbeddingShardingPlanner
    from torchrec.distributed.planner.proposers import EmbeddingOffloadScaleupProposer
    from torchrec.distributed.planner.storage_reservations import FixedPercentageStorageReservation
    from torchrec.distributed.planner.types import ParameterConstraints, PlannerError
    from torchrec.distributed.types import CacheParams, ShardingType

    for t in workload.tables:
        if t.rows == 0:
            raise InfeasiblePlanError(f"table '{t.name}' has no rows; TorchRec cannot hold an empty table")
    ebc = meta_ebc(workload)
    big = {t.name for t in workload.tables if t.total_bytes > big_fraction * topology.hbm_budget_bytes}
    constraints = {}
    types = [
        ShardingType.TABLE_WISE.value,
        ShardingType.COLUMN_WISE.value,
        ShardingType.TABLE_COLUMN_WISE.value,
        ShardingType.ROW_WISE.value,
        ShardingType.TABLE_ROW_WISE.value,
    ]
    if table_wise_only:
        types = types[:1]
    for t in workload.tables:
        kw = {
            "sharding_types": types,
            "pooling_factors": [max(t.lookups_per_sample, 1e-6)],
        }
        if variant == "scaleup" or (variant == "cache" and t.name in big):
            # The scale-up proposer needs cache parameters (and statistics) on every table that
            # may end up cached, not only the big ones.
            stats = OffloadStats.from_table(t, topology) if variant == "scaleup" else None
            kw["cache_params"] = CacheParams(load_factor=clf, stats=stats)
            if force and t.name in big:
                kw["compute_kernels"] = [K.FUSED_UVM_CACHING.value]
        constraints[t.name] = ParameterConstraints(**kw)
    proposer = [EmbeddingOffloadScaleupProposer()] if variant == "scaleup" else None
    planner = EmbeddingShardingPlanner(
        topology=torchrec_topology(topology),
        batch_size=topology.batch_size,
        storage_reservation=FixedPercentageStorageReservation(topology.hbm_reserved_fraction),
        proposer=proposer,
        constraints=constraints,
        debug=False,
    )
    try:
        with _quiet_torchrec(), torch.no_grad():
            sharding_plan = planner.plan(ebc, [EmbeddingBagCollectionSharder()])
    except (PlannerError, AssertionError, RuntimeError, ValueError) as exc:  # TorchRec asserts, too
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InfeasiblePlanError(f"TorchRec ({variant}) found no plan: {first}") from None
    return from_torchrec_plan(sharding_plan, workload, planner=f"torchrec-{variant}")


def from_torchrec_plan(sharding_plan, workload: Workload, planner: str = "torchrec", module_path: str = "") -> Plan:
    """Our plan form of a TorchRec ``ShardingPlan`` (table-, column- or row-wise shards)."""
    from torchrec.distributed.embedding_types import EmbeddingComputeKernel as K

    module_plan = sharding_plan.plan.get(module_path, {})
    tables, kernels = [], {}
    for t in workload.tables:
        ps = module_plan.get(t.name)
        if ps is None or ps.sharding_spec is None or not ps.sharding_spec.shards:
            raise InfeasiblePlanError(f"TorchRec plan: table '{t.name}' is missing or not sharded (data-parallel?)")
        kernel = ps.compute_kernel
        kernels[kernel] = kernels.get(kernel, 0) + 1
        clf = ps.cache_params.load_factor if ps.cache_params and ps.cache_params.load_factor else 0.2
        kind = {K.FUSED_UVM.value: "uvm", K.FUSED_UVM_CACHING.value: "cache"}.get(kernel, "hbm")
        shards = []
        for meta in ps.sharding_spec.shards:
            (row0, col0), (rows, cols) = meta.shard_offsets, meta.shard_sizes
            hot = {"uvm": 0, "cache": min(rows, int(math.floor(clf * rows)))}.get(kind, rows)
            shards.append(Shard(meta.placement.rank(), row0, row0 + rows, col0, col0 + cols, hot, rows - hot))
        tables.append(TablePlacement(t.name, shards, kind))
    return Plan(planner, tables, {"status": "torchrec", "kernels": kernels})


def meta_ebc(workload: Workload):
    """An ``EmbeddingBagCollection`` on the meta device (no memory) with one table per workload table."""
    import torch
    from torchrec.modules.embedding_configs import DataType, EmbeddingBagConfig
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    configs = [
        EmbeddingBagConfig(
            name=t.name,
            embedding_dim=t.dim,
            num_embeddings=t.rows,
            feature_names=[t.name],
            data_type=getattr(DataType, _DTYPES.get(t.bytes_per_value, "FP32")),
        )
        for t in workload.tables
    ]
    return EmbeddingBagCollection(tables=configs, device=torch.device("meta"))


def torchrec_topology(topology: Topology):
    """TorchRec's ``Topology`` for ours: capacities per rank, bandwidths in bytes per ms."""
    from torchrec.distributed.planner.types import (
        HardwareConfig,
        KernelConfig,
        TopologyFactory,
        TrainerConfig,
    )

    return TopologyFactory.create_topology(
        trainer_config=TrainerConfig(
            world_size=topology.gpus,
            local_world_size=topology.gpus,
            hbm_cap_bytes=int(topology.hbm_gb * GB),
            ddr_cap_bytes=topology.uvm_budget_bytes,
        ),
        hardware_config=HardwareConfig(
            hbm_mem_bw=topology.hbm_gbps * GB / 1000,
            hbm_to_ddr_mem_bw=topology.uvm_gbps * GB / 1000,
        ),
        kernel_config=KernelConfig(compute_device="cuda"),
    )


class OffloadStats:
    """TorchRec ``CacheStatistics`` from an access CDF, as if the cache held the hottest rows:
    miss rate at load factor ``f`` is ``1 - CDF(f)``; expected lookups are the expected distinct
    ids per global batch (rows in a CDF segment are equally likely)."""

    @staticmethod
    def from_table(t: TableWorkload, topology: Topology, bins: int = 100):
        import torch
        from torchrec.distributed.planner.shard_estimators import EmbeddingOffloadStats

        grid = np.linspace(0.0, 1.0, bins + 1)
        hits = t.hot_access_fraction(grid * t.rows)
        hist = torch.tensor(np.diff(hits), dtype=torch.float64)
        cacheability = float(np.trapezoid(1.0 - hits, grid))
        xs, ys = t.cdf_points()
        n_rows = np.diff(xs) * t.rows
        lookups = topology.global_batch * t.lookups_per_sample
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(n_rows > 0, np.diff(ys) / n_rows, 0.0)
        distinct = float((n_rows * -np.expm1(-lookups * p)).sum())
        return EmbeddingOffloadStats(cacheability, max(1, int(distinct)), hist, t.rows)


@contextlib.contextmanager
def _quiet_torchrec():
    """TorchRec's planner logs tables and warnings at INFO/WARNING; keep the CLI's output clean."""
    log = logging.getLogger("torchrec")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
