"""``fedrec plan``: shard a workload's embedding tables over GPUs; ``fedrec plan evaluate``: replay
sampled lookups against a plan; ``fedrec plan run``: execute a plan under TorchRec's
``DistributedModelParallel`` and time it. Registered into the main CLI by ``register(subparsers)``.

Every file a command writes goes through ``data_pipeline.atomic``: a plan command's outputs
(plan.json, --torchrec-plan, --plot) appear together or not at all, in folders made as needed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from data_pipeline.atomic import AtomicOutputs, write_json_atomic
from data_pipeline.clihelp import HelpFormatter
from data_pipeline.errors import ConfigError
from sharding.planner_names import PLANNERS
from sharding.topology import Topology

PLOT_SUFFIXES = (".png", ".pdf", ".svg")
PLAN_EXAMPLES = """examples:
  fedrec data stats train.tsv --format criteo --workload w.json
  fedrec plan --workload w.json --gpus 8 --hbm-gb 40 --out plan.json --torchrec-plan plan.pt --plot plan.png
  fedrec plan --workload w.json --gpus 2 --hbm-gb 0.001 --planner greedy --out plan.json
  fedrec plan evaluate --plan plan.json
  fedrec plan run --plan plan.json --world-size 2 --steps 20 --batch-size 256 --scale 0.001 --json run.json
"""
EVALUATE_EXAMPLES = """example:
  fedrec plan evaluate --plan plan.json --samples 200000
  fedrec plan evaluate --plan plan.json --workload w.json --trace lookups.npz
"""
RUN_EXAMPLES = """examples:
  fedrec plan run --plan plan.json --world-size 2 --steps 20 --batch-size 256 --scale 0.001 --json run.json
  fedrec plan run --plan plan.json --world-size 8 --steps 50 --batch-size 2048 --device cuda   # 8 GPUs
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
    g.add_argument("--table-fixed-us", type=float, default=d.table_fixed_us, help="fixed cost per shard, microseconds")
    g.add_argument("--comm-gbps", type=float, default=d.comm_gbps, help="all-to-all bandwidth per GPU, GB/s")
    g.add_argument("--id-ns", type=float, default=d.id_ns, help="cost per id looked up beyond its bytes, ns (CPUs)")


def topology_from_args(args) -> Topology:
    values = {
        "gpus": args.gpus,
        "hbm_gb": args.hbm_gb,
        "hbm_reserved_fraction": args.hbm_reserved,
        "uvm_gb": args.uvm_gb,
        "hbm_gbps": args.hbm_gbps,
        "uvm_gbps": args.uvm_gbps,
        "batch_size": args.batch_size,
        "table_fixed_us": args.table_fixed_us,
        "comm_gbps": args.comm_gbps,
        "id_ns": args.id_ns,
    }
    try:
        return Topology.from_dict(values, where="")
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
                   help="TorchRec form of hot/cold shards: hot+cold tables with an id remapper, or a UVM cache")
    p.add_argument("--module-path", default="", help="module path of the EmbeddingBagCollection in the TorchRec plan")
    p.add_argument("--plot", metavar="PNG", help="also draw per-GPU cost and memory (.png, .pdf or .svg)")
    p.add_argument("--no-split", action="store_true",
                   help="recshard/greedy: keep every table whole (table-wise only; no column or row shards)")
    p.add_argument("--time-limit", type=float, default=30.0,
                   help="recshard: most seconds to spend (HiGHS gets 0.25 s + 2.5 ms per binary, up to this)")
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
    e.add_argument("--workload", metavar="JSON", help="the workload the plan is for (default: the one plan.json records)")
    e.add_argument("--trace", metavar="NPZ", help="trace file: one array of row ranks (0 = hottest) per table")
    e.add_argument("--samples", type=int, default=100_000, help="sampled lookups per table")
    e.add_argument("--seed", type=int, default=0, help="sampling seed")
    e.set_defaults(func=cmd_evaluate)
    r = actions.add_parser(
        "run",
        help="run a plan under TorchRec DistributedModelParallel (one process per rank) and time it",
        description="Build the model the plan shards with TorchRec's DistributedModelParallel, one "
        "process per rank (gloo on CPU, NCCL on CUDA), feed batches drawn from the workload's access "
        "CDFs and time training steps. Rows are scaled by --scale to fit the machine, keeping each "
        "table's access curve and each shard's hot share. On CPU every shard runs FBGEMM's FUSED "
        "kernel in host memory (TorchRec has no UVM kernels on CPU): the run measures the plan's "
        "layout, not its HBM/UVM split; --device cuda (one GPU per rank) runs FUSED, FUSED_UVM and "
        "FUSED_UVM_CACHING as the plan says. --json writes world_size, rank_step_ms (median per "
        "rank), max_step_ms, predicted_max_ms and device.",
        formatter_class=fmt,
        epilog=RUN_EXAMPLES,
    )
    r.add_argument("--plan", required=True, metavar="JSON", help="plan.json to run")
    r.add_argument("--workload", metavar="JSON", help="the workload (default: the one plan.json records)")
    r.add_argument("--world-size", type=int, default=None, help="ranks (processes); default and must be: the plan's GPUs")
    r.add_argument("--steps", type=int, default=20, help="timed training steps")
    r.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    r.add_argument("--batch-size", type=int, default=256, help="samples per rank and step")
    r.add_argument("--scale", type=float, default=1.0, help="multiply every table's rows by this (0 < scale <= 1)")
    r.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per rank)")
    r.add_argument("--split", choices=("remap", "cache"), default="remap", help="TorchRec form of hot/cold shards")
    r.add_argument("--profile", metavar="JSON",
                   help="cost-model constants for predicted_max_ms (hbm_gbps, uvm_gbps, comm_gbps, table_fixed_us, id_ns)")
    r.add_argument("--seed", type=int, default=0, help="batch sampling seed")
    r.add_argument("--json", metavar="OUT", help="write the result as JSON")
    r.set_defaults(func=cmd_run)


def cmd_plan(args) -> int:
    from sharding.planners import make_planner
    from sharding.workload import Workload

    for flag, value in (("--workload", args.workload), ("--out", args.out)):
        if not value:
            raise ConfigError(flag, "is required (see fedrec plan --help)")
    if args.time_limit <= 0 or not 0 <= args.mip_gap < 1:
        raise ConfigError("--time-limit/--mip-gap", "time limit must be > 0 and the gap in [0, 1)")
    # Names and extensions are checked before any work; the files appear together at the end.
    outputs = AtomicOutputs(
        {
            "--out": (args.out, (".json",)),
            "--torchrec-plan": (args.torchrec_plan, (".pt", ".pth")),
            "--plot": (args.plot, PLOT_SUFFIXES),
        }
    )
    topology = topology_from_args(args)
    workload = Workload.from_json(args.workload)
    planner = make_planner(
        args.planner, time_limit=args.time_limit, mip_rel_gap=args.mip_gap, seed=args.seed, splits=not args.no_split
    )
    plan = planner(workload, topology)
    text, d = plan.to_json_text(workload, topology)
    with outputs as tmp:
        tmp["--out"].write_text(text)
        if args.torchrec_plan:
            logging.disable(logging.INFO)  # fbgemm announces every library it loads at INFO
            try:
                import torch

                from sharding.torchrec_plan import to_torchrec_plan
            finally:
                logging.disable(logging.NOTSET)
            sharding_plan = to_torchrec_plan(workload, plan, topology, args.module_path, args.split)
            torch.save(sharding_plan, tmp["--torchrec-plan"])
        if args.plot:
            from sharding.plot import plot_plan

            plot_plan(d, tmp["--plot"])
    kinds: dict[str, int] = {}
    for t in d["tables"]:
        kinds[t["kind"]] = kinds.get(t["kind"], 0) + 1
    cut = sum(1 for t in d["tables"] if t["sharding"] != "table_wise")
    solver = plan.solver
    gap = f", gap {solver['gap']:.2%} to bound {solver['best_bound']:.4g}" if "gap" in solver else ""
    print(
        f"{plan.planner}: {len(d['tables'])} tables on {topology.gpus} GPUs "
        f"({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}; {cut} cut column- or row-wise); "
        f"max GPU {d['max_gpu_cost']:.4g} ms/iteration, imbalance {d['imbalance']:.3f}{gap}; "
        f"{solver.get('seconds', 0):.2f} s -> {args.out}"
    )
    return 0


def _plan_and_workload(args):
    """The plan, its topology and its workload (``--workload`` or the copy plan.json records)."""
    from sharding.errors import WorkloadError
    from sharding.plan import Plan
    from sharding.workload import Workload

    plan, topology, recorded = Plan.from_json(args.plan, with_workload=True)
    if topology is None:
        topology = Topology()
        print("fedrec: warning: plan.json records no topology; using the defaults", file=sys.stderr)
    if args.workload:
        workload = Workload.from_json(args.workload)
    elif recorded is not None:
        workload = recorded
    else:
        raise WorkloadError(None, f"{args.plan} records no workload (a v1 plan); pass --workload")
    return plan, topology, workload


def cmd_evaluate(args) -> int:
    from sharding.replay import Replay, load_trace

    if args.samples < 1:
        raise ConfigError("--samples", f"must be >= 1, got {args.samples}")
    plan, topology, workload = _plan_and_workload(args)
    plan.check(workload, topology, capacity=False)
    traces = load_trace(args.trace) if args.trace else None
    replay = Replay(workload, topology, samples_per_table=args.samples, seed=args.seed, traces=traces)
    metrics = replay.evaluate(plan)
    hbm, _ = plan.memory(workload, topology)
    metrics["fits_hbm_budget"] = bool((hbm <= topology.hbm_budget_bytes).all())
    print(json.dumps(metrics))
    return 0


def cmd_run(args) -> int:
    from sharding.config import read_json_file
    from sharding.run import RunConfig, run_plan

    plan, topology, workload = _plan_and_workload(args)
    if args.json:  # refuse a bad output name before minutes of work
        AtomicOutputs({"--json": (args.json, (".json",))})
    profile = None
    if args.profile:
        profile = read_json_file(args.profile, "profile", lambda msg: ConfigError("--profile", msg))
        if not isinstance(profile, dict):
            raise ConfigError("--profile", "expected a JSON object of topology constants")
    config = RunConfig(
        world_size=topology.gpus if args.world_size is None else args.world_size,
        steps=args.steps,
        warmup=args.warmup,
        batch_size=args.batch_size,
        scale=args.scale,
        device=args.device,
        split=args.split,
        seed=args.seed,
    )
    result = run_plan(workload, plan, topology, config, profile)
    d = result.to_dict()
    if args.json:
        write_json_atomic(args.json, d)
    print(
        f"{result.planner} on {result.world_size} {result.device} ranks: step "
        f"{', '.join(f'{x:.2f}' for x in result.rank_step_ms)} ms per rank (max {result.max_step_ms:.2f}); "
        f"predicted max {result.predicted_max_ms:.4g} ms" + (f" -> {args.json}" if args.json else "")
    )
    return 0
