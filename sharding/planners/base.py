"""The planner interface: a workload and a topology in, a ``Plan`` out.

Planners differ only in how they choose each table's GPU and hot rows; all of them share the
cost model (``sharding.cost``), the plan form (``sharding.plan``) and the feasibility checks here,
so any plan can be compared with any other by the same replay (``sharding.replay``).
"""

from __future__ import annotations

import abc
import time

import numpy as np

from sharding.cost import CostModel
from sharding.errors import InfeasiblePlanError
from sharding.plan import Plan
from sharding.topology import GB, Topology
from sharding.workload import Workload


class Planner(abc.ABC):
    """One way to shard. Options go to ``__init__``; ``plan`` does the work."""

    name: str = ""

    @abc.abstractmethod
    def plan(self, workload: Workload, topology: Topology) -> Plan: ...

    def __call__(self, workload: Workload, topology: Topology) -> Plan:
        """Plan, time it, and check the result places every table within the budgets."""
        start = time.perf_counter()
        plan = self.plan(workload, topology)
        plan.solver.setdefault("seconds", round(time.perf_counter() - start, 4))
        plan.check(workload, topology)
        return plan


def check_feasible(model: CostModel) -> None:
    """Raise ``InfeasiblePlanError`` for what no table-wise plan can hold."""
    topo = model.topology
    per_gpu = topo.hbm_budget_bytes + topo.uvm_budget_bytes
    for i in np.flatnonzero(model.bytes > per_gpu):
        raise InfeasiblePlanError(
            f"table '{model.names[i]}' needs {model.bytes[i] / GB:.3f} GB but one GPU holds at most "
            f"{per_gpu / GB:.3f} GB (HBM budget {topo.hbm_budget_bytes / GB:.3f} + host {topo.uvm_gb:g} GB)"
        )
    if model.bytes.sum() > topo.gpus * per_gpu:
        raise InfeasiblePlanError(
            f"the tables need {model.bytes.sum() / GB:.3f} GB but {topo.gpus} GPUs hold at most "
            f"{topo.gpus * per_gpu / GB:.3f} GB (HBM budget + host memory)"
        )


def water_fill(model: CostModel, ranks: np.ndarray) -> np.ndarray:
    """Optimal hot rows for a fixed assignment: each GPU's HBM budget water-filled over its tables."""
    hot = np.zeros(len(model), dtype=np.int64)
    budget = model.topology.hbm_budget_bytes
    for g in range(model.topology.gpus):
        idx = np.flatnonzero(ranks == g)
        hot[idx] = model.allocate_hot_rows(idx, budget)
    return hot


def whole_table_placement(model: CostModel, order, choose_gpu) -> tuple[np.ndarray, np.ndarray]:
    """Place tables one at a time, whole: in HBM when the table fits the GPU's remaining HBM,
    else in host memory (the all-or-nothing placement of the classic sharders and TorchRec's
    FUSED / FUSED_UVM kernels). ``choose_gpu(i, room_hbm, room_uvm)`` picks the GPU for table ``i``
    among those with room (``-1``: none)."""
    topo = model.topology
    room_hbm = np.full(topo.gpus, topo.hbm_budget_bytes, dtype=np.int64)
    room_uvm = np.full(topo.gpus, topo.uvm_budget_bytes, dtype=np.int64)
    ranks = np.zeros(len(model), dtype=np.int64)
    hot = np.zeros(len(model), dtype=np.int64)
    for i in order:
        size = model.bytes[i]
        g = choose_gpu(i, room_hbm, room_uvm)
        if g < 0 or (size > room_hbm[g] and size > room_uvm[g]):
            raise InfeasiblePlanError(
                f"table '{model.names[i]}' ({size / GB:.3f} GB) fits in no GPU's remaining HBM or host memory"
            )
        ranks[i] = g
        if size <= room_hbm[g]:
            hot[i] = model.rows[i]
            room_hbm[g] -= size
        else:
            room_uvm[g] -= size
    return ranks, hot
