"""RecShard-style embedding sharding: hot rows in HBM, cold rows in host memory over UVM, tables
placed so the slowest GPU is as fast as possible.

Reading order: ``workload`` (tables and access CDFs) -> ``topology`` -> ``cost`` (the model every
planner optimises) -> ``planners`` (MILP, greedy, TorchRec, classic heuristics) -> ``plan``
(plan.json) and ``torchrec_plan`` (TorchRec ``ShardingPlan``) -> ``replay`` (trace-driven
evaluation) -> ``cli`` (``fedrec plan``).
"""

from sharding.errors import InfeasiblePlanError, WorkloadError

__all__ = ["InfeasiblePlanError", "WorkloadError"]
