"""RecShard as a mixed-integer linear program, solved with HiGHS (``scipy.optimize.milp``).

Variables, for table ``t`` and GPU ``g``:

* ``x[t,g]`` in {0, 1}: ``t`` lives on ``g``; ``sum_g x[t,g] = 1``.
* ``v[t,g]`` in [0, x[t,g]]: fraction of ``t``'s rows (its hottest) in ``g``'s HBM;
  ``h_t = sum_g v[t,g]`` is the table's hot-row fraction.
* ``w[t,g]`` in [0, x[t,g]]: fraction of ``t``'s accesses served from ``g``'s HBM;
  ``a_t = sum_g w[t,g]``. Since at most one ``x[t,g]`` is 1, ``v`` and ``w`` vanish elsewhere.
* ``z``: the slowest GPU's cost, minimised.

Constraints:

* CDF (concave, piecewise linear): ``a_t <= slope_k * h_t + intercept_k`` for every segment ``k``
  of ``t``'s CDF; minimising cost pushes ``a_t`` up to the curve, so no binaries are needed.
* HBM: ``sum_t bytes_t * v[t,g] <= hbm_budget``; host: ``sum_t bytes_t * (x - v)[t,g] <= uvm``.
* Cost (``sharding.cost``): ``sum_t cold_t * x[t,g] - gain_t * w[t,g] <= z``.
* Symmetry (GPUs are identical): the ``k``-th largest table may only use GPUs ``0..k``; any plan
  can be relabelled to satisfy this, so nothing is lost and HiGHS explores far fewer twins.
* Cutoff: ``z <=`` the greedy plan's cost (greedy is also the fallback if HiGHS finds nothing).
* Floor: ``z >=`` the costliest item alone on a GPU (a valid bound the LP relaxation misses).

Tables are cut first (``splitting``); the items ``t`` above are then shards. Shards of one split
table go to distinct GPUs (``sum_{s in table} x[s,g] <= 1``) and keep one hot-row count
(``rows_s * h_s`` equal); row-wise block ``r`` is fixed on GPU ``r`` (TorchRec's layout), and the
symmetry cut is then left out (the GPUs are no longer interchangeable).

The greedy plans (``greedy.py``, every way to cut the tables) run first; the MILP takes the cut of
the best. If that is already within ``mip_rel_gap`` of the lower bound the MILP is skipped, so
an easy instance returns at once; it is also skipped above ``max_binaries`` shard-GPU pairs
(1,000 tables on 16 GPUs), where HiGHS cannot finish the root LP in seconds and the time goes to
local search. HiGHS's time limit grows with the instance, ``0.25 s + 2.5 ms`` per binary (a 26-table,
8-GPU instance: under 1 s), capped by ``time_limit``.

HiGHS stops at ``mip_rel_gap`` or its time limit. The table-wise LP relaxation's optimum
(``lp_bound``) is a lower bound on every plan, split or not (cutting only adds overhead); the
costliest table alone on a GPU (``single_table_bound``) bounds table-wise plans only. The reported
``gap`` is the plan's distance from the best lower bound that applies (or HiGHS's dual bound for
that cut). After solving, each GPU's HBM is water-filled over the shards it got (``sharding.cost``),
which is optimal for the assignment and rounds to rows.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array, vstack

from sharding.cost import CostModel
from sharding.plan import Plan
from sharding.planners.base import Planner, water_fill
from sharding.planners.greedy import best_greedy
from sharding.topology import GB, Topology
from sharding.workload import Workload

SECONDS_BASE, SECONDS_PER_BINARY = 0.25, 2.5e-3

_STATUS = {0: "optimal", 1: "time_limit", 2: "infeasible", 3: "unbounded", 4: "error"}


class RecShardPlanner(Planner):
    name = "recshard"

    def __init__(
        self,
        time_limit: float = 30.0,
        mip_rel_gap: float = 0.01,
        greedy_seconds: float | None = None,
        max_binaries: int = 4000,
        splits: bool = True,
    ) -> None:
        self.time_limit = time_limit
        self.mip_rel_gap = mip_rel_gap
        self.greedy_seconds = greedy_seconds
        # Above this many binaries HiGHS rarely even finishes the root within a time limit of
        # seconds; the time is better spent on the greedy's local search (bounded by the LP).
        self.max_binaries = max_binaries
        self.splits = splits

    def plan(self, workload: Workload, topology: Topology) -> Plan:
        start = time.perf_counter()
        base = CostModel(workload, topology)
        single = float(base.single_table_costs().max())
        lp_bound = base.fluid_bound()
        # Split plans are bounded by the fluid relaxation only; table-wise ones also by the
        # costliest table alone on a GPU.
        bound = lp_bound if self.splits else max(lp_bound, single)
        too_big = len(base) * topology.gpus > self.max_binaries
        seconds = self.greedy_seconds
        if seconds is None:  # local search is cheap insurance; it is all there is for huge instances
            seconds = 0.8 * self.time_limit if too_big else min(5.0, 0.15 * self.time_limit)
        good_enough = bound / (1 - self.mip_rel_gap) if self.mip_rel_gap < 1 else np.inf
        greedy = best_greedy(workload, topology, self.splits, seconds, good_enough=good_enough * (1 - 1e-6))
        model, ranks, hot, obj = greedy.model, greedy.ranks, greedy.hot, greedy.objective
        stats = {"lp_bound": lp_bound, "single_table_bound": single, "greedy_cost": obj,
                 "local_search_moves": greedy.stats["local_search_moves"], "split": greedy.label,
                 "variants": greedy.stats["variants"]}
        source = "greedy"
        binaries = len(model) * topology.gpus
        limit = min(self.time_limit - (time.perf_counter() - start), SECONDS_BASE + SECONDS_PER_BINARY * binaries)
        if obj <= 0 or (obj - bound) / obj <= self.mip_rel_gap:
            stats["status"] = "greedy_within_gap"  # the bound already proves greedy good enough
        elif binaries > self.max_binaries:
            stats["status"] = "milp_skipped_too_large"
        elif limit < 0.05:
            stats["status"] = "no_time_left"
        else:
            floor = float(model.single_table_costs().max())
            problem = _build(model, cutoff=obj * (1 + 1e-9), floor=floor)
            stats.update(variables=len(problem["c"]), constraints=problem["constraints"].A.shape[0],
                         milp_time_limit=round(limit, 3))
            with _quiet_stdout():
                res = milp(**problem, options={"time_limit": max(0.05, limit), "mip_rel_gap": self.mip_rel_gap})
            stats["status"] = _STATUS.get(res.status, str(res.status))
            dual = getattr(res, "mip_dual_bound", None)
            if dual is not None and np.isfinite(dual):
                stats["mip_dual_bound"] = float(dual)
            if res.x is not None:
                x = res.x[: len(model) * topology.gpus].reshape(len(model), topology.gpus)
                m_ranks = np.argmax(x, axis=1)
                m_hot = water_fill(model, m_ranks)
                m_obj = float(model.gpu_costs(m_ranks, m_hot).max())
                if m_obj < obj:
                    ranks, hot, obj, source = m_ranks, m_hot, m_obj, "milp"
        # HiGHS's dual bound holds for this cut of the tables only; the fluid bound for any.
        if "mip_dual_bound" in stats and obj > 0:
            stats["gap_for_this_cut"] = max(0.0, (obj - stats["mip_dual_bound"]) / obj)
        best = min(obj, max(bound, stats.get("mip_dual_bound", 0.0) if greedy.label == "table-wise" else 0.0))
        stats.update(
            objective=obj,
            best_bound=best,
            gap=(obj - best) / obj if obj > 0 else 0.0,
            solution_from=source,
            seconds=round(time.perf_counter() - start, 4),
        )
        return Plan.from_arrays(self.name, model, ranks, hot, stats)


@contextlib.contextmanager
def _quiet_stdout():
    """HiGHS prints progress notes from C++ straight to file descriptor 1; keep stdout clean
    (``fedrec plan evaluate`` prints JSON there)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # captured or replaced stdout: nothing to guard
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _build(model: CostModel, cutoff: float | None = None, floor: float = 0.0, symmetry: bool = True) -> dict:
    """The MILP as ``scipy.optimize.milp`` keyword arguments (sizes in GB, costs in ms)."""
    topo = model.topology
    n, G = len(model), topo.gpus
    nx = n * G
    X, V, W, H, A, Z = 0, nx, 2 * nx, 3 * nx, 3 * nx + n, 3 * nx + 2 * n
    nvar = Z + 1
    tg = np.arange(nx)
    t_of, g_of = tg // G, tg % G
    t = np.arange(n)
    size = model.bytes / GB
    rows_i, cols_i, vals, lo, hi = [], [], [], [], []
    count = 0

    def add(rows, cols, values, low, high, k):
        nonlocal count
        rows_i.append(np.asarray(rows) + count)
        cols_i.append(np.asarray(cols))
        vals.append(np.asarray(values, dtype=np.float64))
        lo.append(np.broadcast_to(np.asarray(low, dtype=np.float64), (k,)))
        hi.append(np.broadcast_to(np.asarray(high, dtype=np.float64), (k,)))
        count += k

    one, minus = np.ones(nx), -np.ones(nx)
    add(t_of, X + tg, one, 1.0, 1.0, n)  # each table on one GPU
    add(np.r_[tg, tg], np.r_[V + tg, X + tg], np.r_[one, minus], -np.inf, 0.0, nx)  # v <= x
    add(np.r_[tg, tg], np.r_[W + tg, X + tg], np.r_[one, minus], -np.inf, 0.0, nx)  # w <= x
    add(np.r_[t_of, t], np.r_[V + tg, H + t], np.r_[one, -np.ones(n)], 0.0, 0.0, n)  # h = sum_g v
    add(np.r_[t_of, t], np.r_[W + tg, A + t], np.r_[one, -np.ones(n)], 0.0, 0.0, n)  # a = sum_g w
    # CDF segments: a - slope * h <= intercept
    seg_t, slope = model.seg_table, model.seg_slope
    y0 = np.concatenate([ys[:-1] for _, ys in model.cdf])
    nseg = len(seg_t)
    k = np.arange(nseg)
    add(np.r_[k, k], np.r_[A + seg_t, H + seg_t], np.r_[np.ones(nseg), -slope], -np.inf, y0 - slope * model.seg_x0, nseg)
    # HBM and host memory per GPU
    add(g_of, V + tg, size[t_of], -np.inf, topo.hbm_budget_bytes / GB, G)
    add(np.r_[g_of, g_of], np.r_[X + tg, V + tg], np.r_[size[t_of], -size[t_of]], -np.inf, topo.uvm_budget_bytes / GB, G)
    # GPU cost <= z
    add(
        np.r_[g_of, g_of, np.arange(G)],
        np.r_[X + tg, W + tg, np.full(G, Z)],
        np.r_[model.cold_cost[t_of], -model.gain[t_of], -np.ones(G)],
        -np.inf,
        0.0,
        G,
    )
    matrix = coo_array(
        (np.concatenate(vals), (np.concatenate(rows_i), np.concatenate(cols_i))), shape=(count, nvar)
    ).tocsr()
    lower, upper = np.zeros(nvar), np.ones(nvar)
    lower[Z], upper[Z] = floor, np.inf if cutoff is None else cutoff
    # Shards of a split table: distinct GPUs, one hot-row count; row-wise blocks fixed on their rank.
    extra_rows, extra_cols, extra_vals, extra_lo, extra_hi = [], [], [], [], []
    r = 0
    for gang in np.unique(model.gang[model.gang >= 0]):
        mates = np.flatnonzero(model.gang == gang)
        for g in range(G):
            extra_rows += [r] * len(mates)
            extra_cols += list(X + mates * G + g)
            extra_vals += [1.0] * len(mates)
            extra_lo.append(-np.inf)
            extra_hi.append(1.0)
            r += 1
        for a, b in zip(mates[:-1], mates[1:]):
            extra_rows += [r, r]
            extra_cols += [H + a, H + b]
            extra_vals += [float(model.rows[a]), -float(model.rows[b])]
            extra_lo.append(0.0)
            extra_hi.append(0.0)
            r += 1
    if r:
        matrix = vstack([matrix, coo_array((extra_vals, (extra_rows, extra_cols)), shape=(r, nvar)).tocsr()]).tocsr()
        lo.append(np.asarray(extra_lo))
        hi.append(np.asarray(extra_hi))
    pinned = np.flatnonzero(model.fixed_rank >= 0)
    for i in pinned:
        upper[X + i * G : X + (i + 1) * G] = 0.0
        upper[V + i * G : V + (i + 1) * G] = 0.0
        upper[W + i * G : W + (i + 1) * G] = 0.0
        for block in (X, V, W):
            upper[block + i * G + model.fixed_rank[i]] = 1.0
        lower[X + i * G + model.fixed_rank[i]] = 1.0
    # Symmetry breaking: the k-th largest table only on GPUs 0..k (GPUs interchangeable only
    # while no shard is pinned to a rank).
    order = np.lexsort((np.arange(n), -model.cold_cost, -model.bytes))
    for k, i in enumerate(order[: G - 1] if symmetry and not len(pinned) else []):
        for block in (X, V, W):
            upper[block + i * G + k + 1 : block + (i + 1) * G] = 0.0
    c = np.zeros(nvar)
    c[Z] = 1.0
    integrality = np.zeros(nvar)
    integrality[X : X + nx] = 1
    return {
        "c": c,
        "constraints": LinearConstraint(matrix, np.concatenate(lo), np.concatenate(hi)),
        "integrality": integrality,
        "bounds": Bounds(lower, upper),
    }
