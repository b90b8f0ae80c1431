"""RecShard-style embedding sharding: tables cut table-, column- or row-wise as TorchRec trains
them, hot rows in HBM, cold rows in host memory over UVM, shards placed so the slowest GPU is as
fast as possible; plans exported to TorchRec and run under ``DistributedModelParallel``.

Reading order: ``workload`` (tables and access CDFs) -> ``topology`` -> ``shards`` (how tables are
cut, where rows land) -> ``cost`` (the model every planner optimises) -> ``planners`` (cutting,
MILP, greedy, TorchRec, classic heuristics) -> ``plan`` (plan.json) and ``torchrec_plan``
(TorchRec ``ShardingPlan``) -> ``replay`` (trace-driven evaluation) -> ``run`` (``fedrec plan
run``) -> ``cli`` (``fedrec plan``).

Every export is imported on first use: the workload pulls in pandas through the data layer's stats,
``make_planner`` scipy and ``run_plan`` torch, and ``fedrec --help`` must not wait for any of them.
"""

_LAZY = {"CostModel": "sharding.cost", "InfeasiblePlanError": "sharding.errors", "WorkloadError": "sharding.errors",
         "Plan": "sharding.plan", "Shard": "sharding.plan", "TablePlacement": "sharding.plan",
         "Topology": "sharding.topology", "TableWorkload": "sharding.workload", "Workload": "sharding.workload",
         "make_planner": "sharding.planners", "PLANNERS": "sharding.planner_names", "run_plan": "sharding.run",
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
