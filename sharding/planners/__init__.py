"""Planners behind one interface (``Planner``): ``make_planner(name, **options)``.

``recshard`` (MILP, HiGHS), ``greedy`` (RecShard's greedy and local search; both may cut tables
column- or row-wise unless ``splits=False``), ``torchrec``
(TorchRec's planner with defaults), ``torchrec-best`` (TorchRec over a cache-load-factor sweep and
its scale-up proposer), and the classic sharders ``size``, ``lookup``, ``size-lookup``, ``random``.
"""

from __future__ import annotations

from sharding.planner_names import PLANNERS  # (the names live apart for the fast parser)
from sharding.planners.base import Planner


def make_planner(name: str, **options) -> Planner:
    """A planner by name; ``options`` are its ``__init__`` keywords (unknown ones are ignored, so
    one option set can be passed to any planner). Imports lazily: scipy and TorchRec are slow."""
    from sharding.planners.greedy import GreedyPlanner
    from sharding.planners.heuristics import MetricGreedyPlanner, RandomPlanner
    from sharding.planners.recshard_milp import RecShardPlanner
    from sharding.planners.torchrec_baseline import TorchRecPlanner

    if name == "recshard":
        return RecShardPlanner(**_pick(options, "time_limit", "mip_rel_gap", "greedy_seconds", "splits"))
    if name == "greedy":
        return GreedyPlanner(**_pick(options, "local_search_seconds", "splits"))
    if name == "torchrec":
        return TorchRecPlanner("default", **_pick(options, "table_wise_only"))
    if name == "torchrec-best":
        return TorchRecPlanner("best", **_pick(options, "sweep", "table_wise_only"))
    if name in ("size", "lookup", "size-lookup"):
        return MetricGreedyPlanner(name)
    if name == "random":
        return RandomPlanner(**_pick(options, "seed"))
    raise ValueError(f"unknown planner {name!r}; expected one of {PLANNERS}")


def _pick(options: dict, *keys: str) -> dict:
    return {k: options[k] for k in keys if options.get(k) is not None}


__all__ = ["PLANNERS", "Planner", "make_planner"]
