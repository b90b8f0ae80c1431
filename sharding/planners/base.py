"""The planner interface: a workload and a topology in, a ``Plan`` out.

Planners differ only in how they cut tables into shards and choose each shard's GPU and hot rows;
all of them share the cost model (``sharding.cost``), the plan form (``sharding.plan``) and the
feasibility checks and hot-row allocation here, so any plan can be compared with any other by the
same replay (``sharding.replay``).
"""

from __future__ import annotations

import abc
import time

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_array

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
    """Raise ``InfeasiblePlanError`` for what no plan with these shards can hold."""
    topo = model.topology
    per_gpu = topo.hbm_budget_bytes + topo.uvm_budget_bytes
    for i in np.flatnonzero(model.bytes > per_gpu):
        what = "table" if model.gang[i] < 0 else "a shard of table"
        raise InfeasiblePlanError(
            f"{what} '{model.names[i]}' needs {model.bytes[i] / GB:.3f} GB but one GPU holds at most "
            f"{per_gpu / GB:.3f} GB (HBM budget {topo.hbm_budget_bytes / GB:.3f} + host {topo.uvm_gb:g} GB)"
        )
    if model.bytes.sum() > topo.gpus * per_gpu:
        big = model.names[int(np.argmax(model.bytes))]
        raise InfeasiblePlanError(
            f"the tables need {model.bytes.sum() / GB:.3f} GB but {topo.gpus} GPUs hold at most "
            f"{topo.gpus * per_gpu / GB:.3f} GB (HBM budget + host memory; largest table '{big}')"
        )


def water_fill(model: CostModel, ranks: np.ndarray) -> np.ndarray:
    """Optimal hot rows for a fixed assignment: each GPU's HBM budget water-filled over its shards,
    then (when tables are split) the shards of each split table brought to one hot-row count."""
    hot = np.zeros(len(model), dtype=np.int64)
    budget = model.topology.hbm_budget_bytes
    for g in range(model.topology.gpus):
        idx = np.flatnonzero(ranks == g)
        hot[idx] = model.allocate_hot_rows(idx, budget)
    if (model.gang >= 0).any():
        hot = _equal_gang_rows(model, ranks, hot)
    return hot


def _equal_gang_rows(model: CostModel, ranks: np.ndarray, hot: np.ndarray) -> np.ndarray:
    """Hot rows when the shards of a split table must keep the same number of hot rows (so the hot
    rows of the table form one band that TorchRec shards like the table: ``sharding.torchrec_plan``).

    An LP over the GPUs that hold such shards: hot-row fractions ``f``, access fractions ``a`` under
    each CDF segment, HBM and host budgets per GPU, equal ``rows * f`` within a table; first the
    slowest of these GPUs is minimised, then their total at that maximum. Rounded down to rows."""
    topo = model.topology
    gpus = np.unique(ranks[model.gang >= 0])
    items = np.flatnonzero(np.isin(ranks, gpus))
    others = np.setdiff1d(np.arange(topo.gpus), gpus)
    floor = float(model.gpu_costs(ranks, hot)[others].max()) if len(others) else 0.0
    n = len(items)
    F, A, Z = 0, n, 2 * n
    rows_i, cols_i, vals, ub = [], [], [], []
    eq_cols = []
    count = 0

    def add(r, c, v, b):
        nonlocal count
        rows_i.append(np.asarray(r) + count)
        cols_i.append(np.asarray(c))
        vals.append(np.asarray(v, dtype=np.float64))
        ub.append(np.asarray(b, dtype=np.float64))
        count += len(b)

    # CDF segments: a - slope * f <= y0 - slope * x0
    seg_items = [np.arange(model.seg_start[i], model.seg_stop[i]) for i in items]
    seg = np.concatenate(seg_items)
    local = np.repeat(np.arange(n), [len(s) for s in seg_items])
    k = np.arange(len(seg))
    y0 = np.concatenate([model.cdf[i][1][:-1] for i in items])
    slope = model.seg_slope[seg]
    add(np.r_[k, k], np.r_[A + local, F + local], np.r_[np.ones(len(k)), -slope], y0 - slope * model.seg_x0[seg])
    g_local = np.searchsorted(gpus, ranks[items])
    size = model.bytes[items] / GB
    budget, host = topo.hbm_budget_bytes / GB, topo.uvm_budget_bytes / GB
    total = np.bincount(g_local, weights=size, minlength=len(gpus))
    j = np.arange(n)
    add(g_local, F + j, size, np.full(len(gpus), budget))  # HBM
    add(g_local, F + j, -size, host - total)  # host: sum size * (1 - f) <= host
    cold = np.bincount(g_local, weights=model.cold_cost[items], minlength=len(gpus))
    add(np.r_[g_local, np.arange(len(gpus))], np.r_[A + j, np.full(len(gpus), Z)],
        np.r_[-model.gain[items], -np.ones(len(gpus))], -cold)  # cost_g <= z
    for gang in np.unique(model.gang[items][model.gang[items] >= 0]):
        mates = j[model.gang[items] == gang]
        for a_, b_ in zip(mates[:-1], mates[1:]):
            eq_cols.append((F + a_, F + b_, model.rows[items[a_]], -model.rows[items[b_]]))
    A_ub = coo_array((np.concatenate(vals), (np.concatenate(rows_i), np.concatenate(cols_i))), shape=(count, 2 * n + 1))
    A_eq = None
    if eq_cols:
        r = np.repeat(np.arange(len(eq_cols)), 2)
        c = np.array([x for e in eq_cols for x in e[:2]])
        v = np.array([float(x) for e in eq_cols for x in e[2:]])
        A_eq = coo_array((v, (r, c)), shape=(len(eq_cols), 2 * n + 1))
    bounds = [(0, 1)] * (2 * n) + [(floor, None)]
    c = np.zeros(2 * n + 1)
    c[Z] = 1.0
    b_eq = np.zeros(len(eq_cols)) if eq_cols else None
    first = linprog(c, A_ub=A_ub, b_ub=np.concatenate(ub), A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if first.status != 0:  # keep the water-fill, each split table at its smallest hot-row count
        return _min_gang_rows(model, hot)
    bounds[-1] = (floor, first.x[Z] * (1 + 1e-7) + 1e-12)
    c = np.zeros(2 * n + 1)
    c[A : A + n] = -model.gain[items]
    second = linprog(c, A_ub=A_ub, b_ub=np.concatenate(ub), A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
    x = second.x if second.status == 0 else first.x
    out = hot.copy()
    out[items] = np.minimum(np.floor(x[F : F + n] * model.rows[items] + 1e-6).astype(np.int64), model.rows[items])
    out = _min_gang_rows(model, out)
    # Rounding split tables down to whole rows frees a little HBM: water-fill the other shards of
    # each GPU again around them (optimal for those shards given the split tables' rows).
    for g in gpus:
        mine = np.flatnonzero(ranks == g)
        free = mine[model.gang[mine] < 0]
        fixed = int((out[mine[model.gang[mine] >= 0]] * model.row_bytes[mine[model.gang[mine] >= 0]]).sum())
        if len(free):
            out[free] = model.allocate_hot_rows(free, topo.hbm_budget_bytes - fixed)
    return out


def _min_gang_rows(model: CostModel, hot: np.ndarray) -> np.ndarray:
    """Each split table's shards at the smallest hot-row count among them (always within budget)."""
    out = hot.copy()
    for gang in np.unique(model.gang[model.gang >= 0]):
        mates = model.gang == gang
        out[mates] = out[mates].min()
    return out


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
