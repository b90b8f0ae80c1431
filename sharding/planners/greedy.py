"""Greedy RecShard: fast enough for thousands of tables, and the MILP's fallback and cutoff.

1. Water-fill the HBM of all GPUs together over all tables: the hot rows each table would get if
   the tables could be spread perfectly (the fluid relaxation; also what the MILP's LP does).
2. Longest-processing-time: tables by their cost at those hot rows, largest first, each onto the
   least-loaded GPU that still has HBM room for its hot rows (else the least loaded with room
   for the table at all).
3. Water-fill each GPU's HBM over the tables it got (optimal hot rows for the assignment).
4. Local search until no move helps or time runs out: move a table off the slowest GPU, or swap
   it with one on another GPU, when that lowers the larger of the two GPUs' costs.
"""

from __future__ import annotations

import time

import numpy as np

from sharding.cost import CostModel
from sharding.errors import InfeasiblePlanError
from sharding.plan import Plan
from sharding.planners.base import Planner, check_feasible, water_fill
from sharding.topology import Topology
from sharding.workload import Workload


class GreedyPlanner(Planner):
    name = "greedy"

    def __init__(self, local_search_seconds: float = 0.5, candidates: int = 8) -> None:
        self.local_search_seconds = local_search_seconds
        self.candidates = candidates

    def plan(self, workload: Workload, topology: Topology) -> Plan:
        model = CostModel(workload, topology)
        ranks, hot, stats = greedy_solve(model, self.local_search_seconds, self.candidates)
        return Plan.from_arrays(self.name, model, ranks, hot, stats)


def greedy_solve(model: CostModel, local_search_seconds: float = 0.5, candidates: int = 8):
    """(ranks, hot_rows, stats) of the greedy plan."""
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
    cap_all = budget + topo.uvm_budget_bytes
    ranks = np.zeros(len(model), dtype=np.int64)
    for i in np.lexsort((-model.bytes, -weight)):
        fits = used_all + model.bytes[i] <= cap_all
        if not fits.any():
            raise InfeasiblePlanError(f"table '{model.names[i]}' fits on no GPU: host memory and HBM are full")
        g = int(np.flatnonzero(fits)[np.argmin(load[fits])])
        ranks[i] = g
        load[g] += weight[i]
        used_all[g] += model.bytes[i]
    ranks, moves = local_search(model, ranks, weight, time.perf_counter() + local_search_seconds, candidates)
    hot = water_fill(model, ranks)
    stats = {"status": "heuristic", "local_search_moves": moves, "seconds": round(time.perf_counter() - start, 4)}
    return ranks, hot, stats


def _fluid_bytes(model: CostModel, acc: np.ndarray) -> np.ndarray:
    """HBM bytes each table holds in the fluid solution (row fraction read back off its CDF)."""
    frac = np.array([np.interp(a, ys, xs) for a, (xs, ys) in zip(acc, model.cdf)])
    return frac * model.bytes


def local_search(model: CostModel, ranks: np.ndarray, weight: np.ndarray, deadline: float, candidates: int = 8):
    """Moves and swaps between the slowest GPU and the others while they lower the larger of the
    pair's (exactly water-filled) costs. Candidates are screened by ``weight`` (a first-order
    estimate of each table's share of its GPU's cost): the move that best evens out the two GPUs'
    weights is tried first. Returns (ranks, moves made)."""
    topo = model.topology
    budget = topo.hbm_budget_bytes
    cap_all = budget + topo.uvm_budget_bytes
    ranks = ranks.copy()
    members = [np.flatnonzero(ranks == g) for g in range(topo.gpus)]
    costs = np.array([model.group_cost(m, budget) for m in members])
    moves = 0
    tabu: set[tuple[int, int, int]] = set()
    while time.perf_counter() < deadline and topo.gpus > 1:
        src = int(np.argmax(costs))
        improved = False
        for dst in (int(d) for d in np.argsort(costs)[: max(1, topo.gpus - 1)]):
            if dst == src or time.perf_counter() > deadline:
                continue
            target = (costs[src] - costs[dst]) / 2  # the weight to shift to even the pair out
            room = cap_all - model.bytes[members[dst]].sum()
            out_t, in_u = members[src], np.r_[-1, members[dst]]
            w_in = np.r_[0.0, weight[members[dst]]]
            shift = weight[out_t][:, None] - w_in[None, :]
            extra = model.bytes[out_t][:, None] - np.r_[0, model.bytes[members[dst]]][None, :]
            score = np.abs(shift - target)
            score[(shift <= 0) | (extra > room)] = np.inf
            for flat in np.argsort(score, axis=None)[:candidates]:
                a, b = np.unravel_index(flat, score.shape)
                if not np.isfinite(score[a, b]):
                    break
                t, u = int(out_t[a]), int(in_u[b])
                if (t, u, dst) in tabu:
                    continue
                new_src = np.r_[out_t[out_t != t], [u] if u >= 0 else []].astype(np.int64)
                new_dst = np.r_[members[dst][members[dst] != u], t].astype(np.int64)
                c_src, c_dst = model.group_cost(new_src, budget), model.group_cost(new_dst, budget)
                if max(c_src, c_dst) < costs[src] * (1 - 1e-9):
                    ranks[t] = dst
                    if u >= 0:
                        ranks[u] = src
                    members[src], members[dst] = new_src, new_dst
                    costs[src], costs[dst] = c_src, c_dst
                    tabu.add((t, u, dst))
                    moves += 1
                    improved = True
                    break
            if improved:
                break
        if not improved:
            break
    return ranks, moves
