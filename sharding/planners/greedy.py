"""Greedy RecShard: fast enough for thousands of tables, and the MILP's fallback and cutoff.

0. Cut the tables (``splitting``): table-wise, and at a few thresholds the tables that are too
   large a piece of a GPU's work, column- or row-wise; steps 1-4 run for each and the plan the
   cost model rates best is kept.
1. Water-fill the HBM of all GPUs together over all shards: the hot rows each shard would get if
   they could be spread perfectly (the fluid relaxation; also what the MILP's LP does).
2. Longest-processing-time: row-wise blocks go to their own rank (TorchRec's layout); the other
   shards by their cost at those hot rows, largest first, each onto the least-loaded GPU with
   room that holds no other shard of the same table.
3. Water-fill each GPU's HBM over the shards it got (optimal hot rows for the assignment; the
   shards of a split table are then brought to one hot-row count, ``base.water_fill``).
4. Local search until no move helps or time runs out: move a shard off the slowest GPU, or swap
   it with one on another GPU, when that lowers the larger of the two GPUs' costs.
"""

from __future__ import annotations

import time

import numpy as np

from sharding.cost import CostModel
from sharding.errors import InfeasiblePlanError
from sharding.plan import Plan
from sharding.planners.base import Planner, check_feasible, water_fill
from sharding.planners.splitting import split_variants
from sharding.topology import Topology
from sharding.workload import Workload


class GreedyPlanner(Planner):
    name = "greedy"

    def __init__(self, local_search_seconds: float = 0.5, candidates: int = 8, splits: bool = True) -> None:
        self.local_search_seconds = local_search_seconds
        self.candidates = candidates
        self.splits = splits

    def plan(self, workload: Workload, topology: Topology) -> Plan:
        best = best_greedy(workload, topology, self.splits, self.local_search_seconds, self.candidates)
        return Plan.from_arrays(self.name, best.model, best.ranks, best.hot, best.stats)


class GreedyResult:
    """The greedy plan of one way to cut the tables, with its objective."""

    def __init__(self, label: str, model: CostModel, ranks: np.ndarray, hot: np.ndarray, stats: dict) -> None:
        self.label, self.model, self.ranks, self.hot, self.stats = label, model, ranks, hot, stats
        self.objective = float(model.gpu_costs(ranks, hot).max())


def best_greedy(
    workload: Workload,
    topology: Topology,
    splits: bool = True,
    local_search_seconds: float = 0.5,
    candidates: int = 8,
    good_enough: float = 0.0,
) -> GreedyResult:
    """The greedy plan of every way to cut the tables (``splitting.split_variants``); the best.
    ``stats`` records each variant's objective under ``variants``."""
    start = time.perf_counter()
    base = CostModel(workload, topology)
    variants = split_variants(base, splits)
    results, errors = [], []
    for k, (label, parts) in enumerate(variants):
        model = base if label == "table-wise" else CostModel(workload, topology, parts)
        left = max(0.0, local_search_seconds - (time.perf_counter() - start))
        try:
            ranks, hot, stats = greedy_solve(model, left / (len(variants) - k), candidates, good_enough)
        except InfeasiblePlanError as exc:
            errors.append(exc)
            continue
        results.append(GreedyResult(label, model, ranks, hot, stats))
    if not results:
        raise errors[0]
    best = min(results, key=lambda r: r.objective)
    best.stats = {
        **best.stats,
        "split": best.label,
        "variants": [{"split": r.label, "objective": round(r.objective, 9)} for r in results],
        "seconds": round(time.perf_counter() - start, 4),
    }
    return best


def greedy_solve(model: CostModel, local_search_seconds: float = 0.5, candidates: int = 8, good_enough: float = 0.0):
    """(ranks, hot_rows, stats) of the greedy plan; local search stops early once the slowest
    GPU's cost is at most ``good_enough``."""
    check_feasible(model)
    topo = model.topology
    start = time.perf_counter()
    budget = topo.hbm_budget_bytes
    acc, price = model.fluid(topo.gpus * budget)
    cost = model.cold_cost - model.gain * acc
    hot_bytes = np.minimum(_fluid_bytes(model, acc), budget)
    # A GPU whose tables want more hot bytes than it has pays about `price` per missing byte, so
    # balancing cost + price * hot bytes balances the costs after each GPU is water-filled.
    weight = cost + price * hot_bytes
    load = np.zeros(topo.gpus)
    used_all = np.zeros(topo.gpus)
    cap_all = budget + topo.uvm_budget_bytes - host_slack(model)
    ranks = np.zeros(len(model), dtype=np.int64)
    gangs_on = [set() for _ in range(topo.gpus)]  # split tables with a shard on each GPU
    fixed = np.flatnonzero(model.fixed_rank >= 0)
    order = np.lexsort((-model.bytes, -weight))
    free = order[model.fixed_rank[order] < 0]
    for i in np.r_[fixed, free].astype(np.int64):
        if model.fixed_rank[i] >= 0:
            ok = np.zeros(topo.gpus, dtype=bool)
            ok[model.fixed_rank[i]] = used_all[model.fixed_rank[i]] + model.bytes[i] <= cap_all
        else:
            ok = used_all + model.bytes[i] <= cap_all
            if model.gang[i] >= 0:
                ok &= np.array([model.gang[i] not in s for s in gangs_on])
        if not ok.any():
            raise InfeasiblePlanError(f"table '{model.names[i]}' fits on no GPU: host memory and HBM are full")
        g = int(np.flatnonzero(ok)[np.argmin(load[ok])])
        ranks[i] = g
        load[g] += weight[i]
        used_all[g] += model.bytes[i]
        if model.gang[i] >= 0:
            gangs_on[g].add(int(model.gang[i]))
    deadline = time.perf_counter() + local_search_seconds
    ranks, moves = local_search(model, ranks, weight, hot_bytes, deadline, candidates, good_enough)
    hot = water_fill(model, ranks)
    stats = {"status": "heuristic", "local_search_moves": moves, "seconds": round(time.perf_counter() - start, 4)}
    return ranks, hot, stats


def host_slack(model: CostModel) -> int:
    """Room kept free on every GPU: hot rows are whole rows, so HBM can end up to a row short of its
    budget and host memory must be able to take that row."""
    return int(model.row_bytes.max()) if len(model) else 0


def _fluid_bytes(model: CostModel, acc: np.ndarray) -> np.ndarray:
    """HBM bytes each table holds in the fluid solution (row fraction read back off its CDF)."""
    frac = np.array([np.interp(a, ys, xs) for a, (xs, ys) in zip(acc, model.cdf)])
    return frac * model.bytes


def local_search(
    model: CostModel,
    ranks: np.ndarray,
    weight: np.ndarray,
    demand: np.ndarray,
    deadline: float,
    candidates: int = 8,
    good_enough: float = 0.0,
):
    """Improve an assignment by moving a table to another GPU or swapping two, every candidate
    checked exactly (both GPUs water-filled). Two kinds of step, until neither helps or time is up:

    * lower the slowest GPU: moves off it that lower the larger of the pair's costs, screened by
      ``weight`` (a first-order estimate of each table's share of its GPU's cost);
    * lower the total without raising the maximum: moves of HBM-hungry tables (``demand``: hot
      bytes wanted) from the GPU whose HBM is scarcest (highest marginal saving per byte) to the
      one where it is most plentiful.

    Each step lowers (max, total) lexicographically, so the search cannot cycle.
    Returns (ranks, moves made)."""
    search = _Search(model, ranks)
    moves = 0
    while time.perf_counter() < deadline and model.topology.gpus > 1 and search.costs.max() > good_enough:
        if not (search.lower_max(weight, candidates, deadline) or search.lower_total(demand, candidates, deadline)):
            break
        moves += 1
    return search.ranks, moves


class _Search:
    def __init__(self, model: CostModel, ranks: np.ndarray) -> None:
        self.model = model
        self.budget = model.topology.hbm_budget_bytes
        self.cap = self.budget + model.topology.uvm_budget_bytes - host_slack(model)
        self.ranks = ranks.copy()
        self.members = [np.flatnonzero(ranks == g) for g in range(model.topology.gpus)]
        self.costs = np.array([model.group_cost(m, self.budget) for m in self.members])

    def lower_max(self, weight: np.ndarray, candidates: int, deadline: float) -> bool:
        src = int(np.argmax(self.costs))
        for dst in (int(d) for d in np.argsort(self.costs)):
            if dst == src or time.perf_counter() > deadline:
                continue
            target = (self.costs[src] - self.costs[dst]) / 2  # the weight to shift to even the pair out
            limit = self.costs[src] * (1 - 1e-9)
            if self._try(src, dst, weight, target, candidates, lambda a, b, lim=limit: max(a, b) < lim):
                return True
        return False

    def lower_total(self, demand: np.ndarray, candidates: int, deadline: float) -> bool:
        price = np.array([self.model.group_price(m, self.budget) for m in self.members])
        src = int(np.argmax(price))
        top = self.costs.max()
        before = self.costs.copy()
        for dst in (int(d) for d in np.argsort(price)[: max(1, candidates)]):
            if dst == src or time.perf_counter() > deadline:
                continue
            hot = [demand[m].sum() for m in (self.members[src], self.members[dst])]
            target = (hot[0] - hot[1]) / 2
            pair = before[src] + before[dst]

            def accept(a, b, pair=pair):
                return max(a, b) <= top and a + b < pair - 1e-9 * top

            if self._try(src, dst, demand, target, candidates, accept):
                return True
        return False

    def _try(self, src: int, dst: int, key: np.ndarray, target: float, candidates: int, accept) -> bool:
        """Try the moves (table t: src -> dst, optionally u: dst -> src) whose shift of ``key``
        is closest to ``target``; apply the first that ``accept(new src cost, new dst cost)``."""
        model, members = self.model, self.members
        out_t, in_u = members[src], np.r_[-1, members[dst]]
        shift = key[out_t][:, None] - np.r_[0.0, key[members[dst]]][None, :]
        # Row-wise blocks stay on their rank; no GPU may hold two shards of one split table.
        gang, pinned = model.gang, model.fixed_rank >= 0
        stuck_t = pinned[out_t] | ((gang[out_t] >= 0) & np.isin(gang[out_t], gang[members[dst]]))
        stuck_u = np.r_[False, pinned[members[dst]] | ((gang[members[dst]] >= 0) & np.isin(gang[members[dst]], gang[out_t]))]
        # Both GPUs must still hold their tables: HBM + host memory (water-filling fills HBM first).
        extra = model.bytes[out_t][:, None] - np.r_[0, model.bytes[members[dst]]][None, :]
        dst_full = extra > self.cap - model.bytes[members[dst]].sum()
        src_full = -extra > self.cap - model.bytes[out_t].sum()
        score = np.abs(shift - target)
        score[(shift <= 0) | dst_full | src_full | stuck_t[:, None] | stuck_u[None, :]] = np.inf
        for flat in np.argsort(score, axis=None)[:candidates]:
            a, b = np.unravel_index(flat, score.shape)
            if not np.isfinite(score[a, b]):
                return False
            t, u = int(out_t[a]), int(in_u[b])
            new_src = np.r_[out_t[out_t != t], [u] if u >= 0 else []].astype(np.int64)
            new_dst = np.r_[members[dst][members[dst] != u], t].astype(np.int64)
            c_src, c_dst = model.group_cost(new_src, self.budget), model.group_cost(new_dst, self.budget)
            if accept(c_src, c_dst):
                self.ranks[t] = dst
                if u >= 0:
                    self.ranks[u] = src
                members[src], members[dst] = new_src, new_dst
                self.costs[src], self.costs[dst] = c_src, c_dst
                return True
        return False
