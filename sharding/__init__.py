"""RecShard-style embedding sharding: tables cut table-, column- or row-wise as TorchRec trains
them, hot rows in HBM, cold rows in host memory over UVM, shards placed so the slowest GPU is as
fast as possible; plans exported to TorchRec and run under ``DistributedModelParallel``.

Reading order: ``workload`` (tables and access CDFs) -> ``topology`` -> ``shards`` (how tables are
cut, where rows land) -> ``cost`` (the model every planner optimises) -> ``planners`` (cutting,
MILP, greedy, TorchRec, classic heuristics) -> ``plan`` (plan.json) and ``torchrec_plan``
(TorchRec ``ShardingPlan``) -> ``replay`` (trace-driven evaluation) -> ``run`` (``fedrec plan
run``) -> ``cli`` (``fedrec plan``).

The light types are imported here; ``make_planner`` (scipy) and ``run_plan`` (torch) on first use.
"""

from sharding.cost import CostModel
from sharding.errors import InfeasiblePlanError, WorkloadError
from sharding.plan import Plan, Shard, TablePlacement
from sharding.topology import Topology
from sharding.workload import TableWorkload, Workload

_LAZY = {"make_planner": "sharding.planners", "PLANNERS": "sharding.planners", "run_plan": "sharding.run",
         "run_plans": "sharding.run", "RunConfig": "sharding.run", "Replay": "sharding.replay"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sharding' has no attribute {name!r}")


__all__ = [
    "CostModel",
    "InfeasiblePlanError",
    "PLANNERS",
    "Plan",
    "Replay",
    "RunConfig",
    "Shard",
    "TablePlacement",
    "TableWorkload",
    "Topology",
    "Workload",
    "WorkloadError",
    "make_planner",
    "run_plan",
    "run_plans",
]
