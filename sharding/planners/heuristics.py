"""The classic sharders RecShard was compared against, plus random.

Each places whole tables greedily, largest first by its metric, onto the GPU whose running total
of that metric is smallest; a table goes to HBM when it fits the GPU's remaining HBM, else wholly
to host memory over UVM (no hot/cold split):

* ``size``: bytes (balances memory);
* ``lookup``: lookups per iteration (batch x coverage x pooling; balances accesses);
* ``size-lookup``: bytes x lookups;
* ``random``: a random GPU for each table, in random order (seeded).
"""

from __future__ import annotations

import numpy as np

from sharding.cost import CostModel
from sharding.plan import Plan
from sharding.planners.base import Planner, check_feasible, whole_table_placement
from sharding.topology import Topology
from sharding.workload import Workload


class MetricGreedyPlanner(Planner):
    def __init__(self, metric: str) -> None:
        if metric not in ("size", "lookup", "size-lookup"):
            raise ValueError(f"unknown metric {metric!r}")
        self.metric = metric
        self.name = metric

    def plan(self, workload: Workload, topology: Topology) -> Plan:
        model = CostModel(workload, topology)
        check_feasible(model)
        value = {
            "size": model.bytes.astype(np.float64),
            "lookup": model.lookups,
            "size-lookup": model.bytes * model.lookups,
        }[self.metric]
        load = np.zeros(topology.gpus)
        order = np.lexsort((np.arange(len(model)), -value))

        def choose(i, room_hbm, room_uvm):
            fits = (room_hbm >= model.bytes[i]) | (room_uvm >= model.bytes[i])
            if not fits.any():
                return -1
            g = int(np.flatnonzero(fits)[np.argmin(load[fits])])
            load[g] += value[i]
            return g

        ranks, hot = whole_table_placement(model, order, choose)
        return Plan.from_arrays(self.name, model, ranks, hot, {"status": "heuristic", "metric": self.metric})


class RandomPlanner(Planner):
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def plan(self, workload: Workload, topology: Topology) -> Plan:
        model = CostModel(workload, topology)
        check_feasible(model)
        rng = np.random.default_rng(self.seed)

        def choose(i, room_hbm, room_uvm):
            fits = np.flatnonzero((room_hbm >= model.bytes[i]) | (room_uvm >= model.bytes[i]))
            return int(rng.choice(fits)) if len(fits) else -1

        ranks, hot = whole_table_placement(model, rng.permutation(len(model)), choose)
        return Plan.from_arrays(self.name, model, ranks, hot, {"status": "heuristic", "seed": self.seed})
