"""``fedrec plan``: shard a workload's embedding tables over GPUs; ``fedrec plan evaluate``: replay
sampled lookups against a plan. Registered into the main CLI by ``register(subparsers)``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from data_pipeline.clihelp import HelpFormatter
from data_pipeline.errors import ConfigError
from sharding.planners import PLANNERS
from sharding.topology import Topology

PLAN_EXAMPLES = """examples:
  fedrec data stats train.tsv --format criteo --workload w.json
  fedrec plan --workload w.json --gpus 8 --hbm-gb 40 --out plan.json --torchrec-plan plan.pt --plot plan.png
  fedrec plan --workload w.json --gpus 2 --hbm-gb 0.001 --planner greedy --out plan.json
  fedrec plan evaluate --plan plan.json --workload w.json
"""
EVALUATE_EXAMPLES = """example:
  fedrec plan evaluate --plan plan.json --workload w.json --samples 200000
  fedrec plan evaluate --plan plan.json --workload w.json --trace lookups.npz
"""


def add_topology_args(p: argparse.ArgumentParser) -> None:
    d = Topology()
    g = p.add_argument_group("topology (defaults: one 8 x A100-40GB host)")
    g.add_argument("--gpus", type=int, default=d.gpus, help="number of GPUs")
    g.add_argument("--hbm-gb", type=float, default=d.hbm_gb, help="HBM per GPU, GB")
    g.add_argument("--hbm-reserved", type=float, default=d.hbm_reserved_fraction, help="fraction of HBM kept free")
    g.add_argument("--uvm-gb", type=float, default=d.uvm_gb, help="host memory per GPU for cold rows, GB")
    g.add_argument("--hbm-gbps", type=float, default=d.hbm_gbps, help="HBM bandwidth, GB/s")
    g.add_argument("--uvm-gbps", type=float, default=d.uvm_gbps, help="UVM (host over PCIe) bandwidth, GB/s")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="samples per GPU per iteration")
    g.add_argument("--table-fixed-us", type=float, default=d.table_fixed_us, help="fixed cost per table, microseconds")


def topology_from_args(args) -> Topology:
    try:
        return Topology(
            gpus=args.gpus,
            hbm_gb=args.hbm_gb,
            hbm_reserved_fraction=args.hbm_reserved,
            uvm_gb=args.uvm_gb,
            hbm_gbps=args.hbm_gbps,
            uvm_gbps=args.uvm_gbps,
            batch_size=args.batch_size,
            table_fixed_us=args.table_fixed_us,
        )
    except ConfigError as exc:
        flag = {"hbm_reserved_fraction": "hbm-reserved"}.get(exc.field, exc.field.replace("_", "-"))
        raise ConfigError(f"--{flag}", str(exc).split(": ", 1)[-1]) from None


def register(subparsers) -> None:
    fmt = HelpFormatter
    p = subparsers.add_parser(
        "plan",
        help="shard embedding tables over GPUs (RecShard: hot rows in HBM, cold rows in UVM)",
        description="Plan where each embedding table lives and how many of its hottest rows sit in HBM, "
        "minimising the slowest GPU's embedding time. Writes plan.json (and optionally a TorchRec "
        "ShardingPlan and a PNG). `fedrec plan evaluate` replays lookups against a plan.",
        formatter_class=fmt,
        epilog=PLAN_EXAMPLES,
    )
    p.add_argument("--workload", metavar="JSON", help="workload (fedrec data stats --workload)")
    p.add_argument("--planner", choices=PLANNERS, default="recshard", help="planner")
    p.add_argument("--out", metavar="JSON", help="where to write plan.json")
    p.add_argument("--torchrec-plan", metavar="PT", help="also write a TorchRec ShardingPlan (torch.save)")
    p.add_argument("--split", choices=("remap", "cache"), default="remap",
                   help="TorchRec form of split tables: hot+cold tables with an id remapper, or a UVM cache")
    p.add_argument("--module-path", default="", help="module path of the EmbeddingBagCollection in the TorchRec plan")
    p.add_argument("--plot", metavar="PNG", help="also draw per-GPU cost and memory")
    p.add_argument("--time-limit", type=float, default=30.0, help="recshard: MILP time limit, seconds")
    p.add_argument("--mip-gap", type=float, default=0.01, help="recshard: relative MIP gap to stop at")
    p.add_argument("--seed", type=int, default=0, help="random planner: seed")
    add_topology_args(p)
    p.set_defaults(func=cmd_plan)
    actions = p.add_subparsers(dest="plan_action", metavar="ACTION", title="actions")
    e = actions.add_parser(
        "evaluate",
        help="replay sampled lookups against a plan; prints metrics as JSON",
        description="Replay lookups (Zipf ids for synthetic tables, the access CDF otherwise, or a "
        "trace file) against a plan and print max-GPU time, imbalance and UVM accesses as JSON. "
        "The topology is the one recorded in plan.json.",
        formatter_class=fmt,
        epilog=EVALUATE_EXAMPLES,
    )
    e.add_argument("--plan", required=True, metavar="JSON", help="plan.json to evaluate")
    e.add_argument("--workload", required=True, metavar="JSON", help="the workload the plan is for")
    e.add_argument("--trace", metavar="NPZ", help="trace file: one array of row ranks (0 = hottest) per table")
    e.add_argument("--samples", type=int, default=100_000, help="sampled lookups per table")
    e.add_argument("--seed", type=int, default=0, help="sampling seed")
    e.set_defaults(func=cmd_evaluate)


def cmd_plan(args) -> int:
    from sharding.planners import make_planner
    from sharding.workload import Workload

    for flag, value in (("--workload", args.workload), ("--out", args.out)):
        if not value:
            raise ConfigError(flag, "is required (see fedrec plan --help)")
    if args.time_limit <= 0 or not 0 <= args.mip_gap < 1:
        raise ConfigError("--time-limit/--mip-gap", "time limit must be > 0 and the gap in [0, 1)")
    topology = topology_from_args(args)
    workload = Workload.from_json(args.workload)
    planner = make_planner(args.planner, time_limit=args.time_limit, mip_rel_gap=args.mip_gap, seed=args.seed)
    plan = planner(workload, topology)
    d = plan.to_json(args.out, workload, topology)
    if args.torchrec_plan:
        logging.disable(logging.INFO)  # fbgemm announces every library it loads at INFO
        try:
            import torch

            from sharding.torchrec_plan import to_torchrec_plan
        finally:
            logging.disable(logging.NOTSET)
        torch.save(to_torchrec_plan(workload, plan, topology, args.module_path, args.split), args.torchrec_plan)
    if args.plot:
        from sharding.plot import plot_plan

        plot_plan(d, args.plot)
    kinds: dict[str, int] = {}
    for t in d["tables"]:
        kinds[t["kind"]] = kinds.get(t["kind"], 0) + 1
    solver = plan.solver
    gap = f", gap {solver['gap']:.2%} to bound {solver['best_bound']:.4g}" if "gap" in solver else ""
    print(
        f"{plan.planner}: {len(d['tables'])} tables on {topology.gpus} GPUs "
        f"({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}); "
        f"max GPU {d['max_gpu_cost']:.4g} ms/iteration, imbalance {d['imbalance']:.3f}{gap}; "
        f"{solver.get('seconds', 0):.2f} s -> {args.out}"
    )
    return 0


def cmd_evaluate(args) -> int:
    from sharding.plan import Plan
    from sharding.replay import Replay, load_trace
    from sharding.workload import Workload

    if args.samples < 1:
        raise ConfigError("--samples", f"must be >= 1, got {args.samples}")
    workload = Workload.from_json(args.workload)
    plan, topology = Plan.from_json(args.plan)
    if topology is None:
        topology = Topology()
        print("fedrec: warning: plan.json records no topology; using the defaults", file=sys.stderr)
    plan.check(workload, topology, capacity=False)
    traces = load_trace(args.trace) if args.trace else None
    replay = Replay(workload, topology, samples_per_table=args.samples, seed=args.seed, traces=traces)
    metrics = replay.evaluate(plan)
    hbm, _ = plan.memory(workload, topology)
    metrics["fits_hbm_budget"] = bool((hbm <= topology.hbm_budget_bytes).all())
    print(json.dumps(metrics))
    return 0
