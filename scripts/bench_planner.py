"""Benchmark the sharding planners: every plan judged by the same trace replay.

Workloads:
  criteo-tb    26 Criteo-Terabyte tables (published cardinalities, Zipf 1.05..1.2, dim 128), rows
               scaled so the tables take --ratio x the GPUs' total HBM (8 GPUs x 4 GB).
  criteo-tb-lookups-only
               the same with the all-to-all left unpriced (--comm-gbps 1e6): the embedding lookups
               alone, the cost the v1 planner (before communication entered the model) minimised.
  synth-1000   1,000 tables of mixed size, dim, pooling and coverage (16 GPUs x 40 GB, 3x HBM).
  ml-100k, criteo-sample
               workloads from `fedrec data stats --workload` on the real data in $FEDREC_DATA
               (default ../shared/datasets), HBM sized to hold a quarter of the tables;
               skipped when the data is missing (an error under CI=true).

Prints a table, writes results/planner/bench.json and bench.png (and a plan PNG per workload).
  .venv/bin/python scripts/bench_planner.py            # full run (a few minutes)
  .venv/bin/python scripts/bench_planner.py --quick    # smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_pipeline.atomic import write_json_atomic  # noqa: E402
from sharding.errors import InfeasiblePlanError  # noqa: E402
from sharding.planners import make_planner  # noqa: E402
from sharding.replay import Replay  # noqa: E402
from sharding.topology import GB, Topology  # noqa: E402
from sharding.workload import Workload, synthetic_model, synthetic_workload  # noqa: E402

PLANNERS = ("recshard", "recshard-tw", "greedy", "torchrec", "torchrec-best", "size", "lookup", "size-lookup", "random")
# recshard-tw: recshard kept table-wise (--no-split), the best table-wise plan we know


def workloads(args) -> list[tuple[str, Workload, Topology]]:
    out = []
    tb_topo = Topology(gpus=8, hbm_gb=4.0 if not args.quick else 0.05)
    total = args.ratio * tb_topo.gpus * tb_topo.hbm_gb * GB
    tb = synthetic_workload("criteo-terabyte", zipf=(1.05, 1.2), dim=128, total_bytes=int(total), seed=args.seed)
    out.append(("criteo-tb", tb, tb_topo))
    if not args.quick:
        out.append(("criteo-tb-lookups-only", tb, replace(tb_topo, comm_gbps=1e6)))
    n = 1000 if not args.quick else 30
    big_topo = Topology(gpus=16, hbm_gb=40.0) if not args.quick else Topology(gpus=4, hbm_gb=0.5)
    total = 3 * big_topo.gpus * big_topo.hbm_gb * GB
    out.append((f"synth-{n}", synthetic_model(n, seed=args.seed, total_bytes=int(total)), big_topo))
    out += real_workloads(args)
    return out


def real_workloads(args) -> list[tuple[str, Workload, Topology]]:
    from fedrec.cli import main as fedrec_main

    data = Path(os.environ.get("FEDREC_DATA", ROOT.parent / "shared" / "datasets"))
    found = []
    for name, path, fmt in (("ml-100k", data / "ml-100k", "movielens"), ("criteo-sample", data / "criteo-sample" / "train.tsv", "criteo")):
        if not path.exists():
            if os.environ.get("CI") == "true":
                raise SystemExit(f"bench_planner: {path} is missing (FEDREC_DATA={data}) and CI=true")
            print(f"skipping {name}: {path} not found (set FEDREC_DATA)", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            wpath = Path(tmp) / "w.json"
            with open(os.devnull, "w") as sink:
                saved, sys.stdout = sys.stdout, sink
                try:
                    code = fedrec_main(["data", "stats", str(path), "--format", fmt, "--workload", str(wpath)])
                finally:
                    sys.stdout = saved
            if code != 0:
                raise SystemExit(f"bench_planner: fedrec data stats failed on {path}")
            w = Workload.from_json(wpath)
        hbm_gb = w.total_bytes / 4 / 2 / 0.85 / GB  # 2 GPUs whose HBM budgets hold a quarter of the tables
        # A small batch: TorchRec reserves HBM for each table's input/output buffers (batch x dim),
        # which at 2,048 samples would not fit beside these tiny tables at all.
        found.append((name, w, Topology(gpus=2, hbm_gb=hbm_gb, batch_size=16)))
    return found


def run(args) -> dict:
    results = {"config": vars(args), "workloads": []}
    for wname, workload, topo in workloads(args):
        if args.workloads and wname not in args.workloads.split(","):
            continue
        replay = Replay(workload, topo, samples_per_table=args.samples, seed=args.seed)
        rows, plans = [], {}
        for pname in args.planners.split(","):
            if pname == "torchrec-best" and len(workload) > args.torchrec_best_max_tables:
                # TorchRec's planner needs minutes per run at 1,000 tables; a sweep of 20 runs is out of reach.
                rows.append({"planner": pname, "error": f"skipped: more than {args.torchrec_best_max_tables} tables"})
                continue
            print(f"[{wname}] {pname} ...", file=sys.stderr, flush=True)
            options = {"time_limit": args.time_limit, "splits": pname != "recshard-tw"}
            if pname.startswith("torchrec") and len(workload) > args.torchrec_best_max_tables:
                options["table_wise_only"] = True  # all sharding types: hours at 1,000 tables
            if args.quick:
                options["sweep"] = (0.05,)
            start = time.perf_counter()
            try:
                plan = make_planner(pname.removesuffix("-tw"), **options)(workload, topo)
            except InfeasiblePlanError as exc:
                rows.append({"planner": pname, "error": str(exc)[:200]})
                continue
            seconds = time.perf_counter() - start
            plan.planner = pname
            metrics = replay.evaluate(plan)
            hbm, _ = plan.memory(workload, topo)
            metrics.update(
                plan_seconds=round(seconds, 3),
                predicted_max_gpu_ms=float(plan.gpu_costs(workload, topo).max()),
                cut_tables=sum(1 for p in plan.tables if len(p.shards) > 1),
                shards=sum(len(p.shards) for p in plan.tables),
                max_hbm_fraction=float(hbm.max() / max(topo.hbm_budget_bytes, 1)),
                solver={k: v for k, v in plan.solver.items() if k != "sweep"},
            )
            if "sweep" in plan.solver:
                metrics["sweep"] = plan.solver["sweep"]
            rows.append(metrics)
            plans[pname] = plan
        ref = {r["planner"]: r for r in rows if "error" not in r}
        for r in rows:
            for base in ("torchrec", "torchrec-best", "recshard-tw"):
                if "error" not in r and base in ref:
                    r[f"time_x_vs_{base}"] = ref[base]["max_gpu_ms"] / r["max_gpu_ms"]
                    r[f"uvm_x_vs_{base}"] = ref[base]["uvm_accesses"] / max(r["uvm_accesses"], 1e-9)
        entry = {
            "workload": wname,
            "tables": len(workload),
            "total_gb": workload.total_bytes / GB,
            "topology": topo.to_dict(),
            "hbm_budget_gb_total": topo.gpus * topo.hbm_budget_bytes / GB,
            "results": rows,
        }
        results["workloads"].append(entry)
        print_table(entry)
        if "recshard" in plans and args.out_dir:
            from sharding.plot import plot_plan

            plot_plan(plans["recshard"].to_dict(workload, topo), Path(args.out_dir) / f"plan_{wname}.png", f"recshard on {wname}")
    return results


def print_table(entry: dict) -> None:
    print(
        f"\n== {entry['workload']}: {entry['tables']} tables, {entry['total_gb']:.1f} GB of embeddings, "
        f"{entry['topology']['gpus']} GPUs, HBM budget {entry['hbm_budget_gb_total']:.2f} GB in all"
    )
    head = (f"{'planner':14s} {'plan s':>7s} {'cut':>4s} {'max GPU ms':>11s} {'imbal':>6s} {'HBM use':>7s} {'UVM acc/it':>12s} "
            f"{'x time':>7s} {'x UVM':>8s} {'x time*':>8s} {'x UVM*':>8s} {'x TW':>6s}")
    print(head + "\n" + "-" * len(head))
    nan = float("nan")
    for r in entry["results"]:
        if "error" in r:
            print(f"{r['planner']:14s} error: {r['error'][:90]}")
            continue
        print(
            f"{r['planner']:14s} {r['plan_seconds']:7.2f} {r['cut_tables']:4d} {r['max_gpu_ms']:11.4f} {r['imbalance']:6.3f} "
            f"{r['max_hbm_fraction']:7.1%} {r['uvm_accesses']:12.0f} {r.get('time_x_vs_torchrec', nan):7.2f} "
            f"{r.get('uvm_x_vs_torchrec', nan):8.1f} {r.get('time_x_vs_torchrec-best', nan):8.2f} "
            f"{r.get('uvm_x_vs_torchrec-best', nan):8.1f} {r.get('time_x_vs_recshard-tw', nan):6.2f}"
        )
    rec = next((r for r in entry["results"] if r["planner"] == "recshard" and "error" not in r), None)
    if rec:
        s = rec["solver"]
        print(
            f"recshard: {s.get('status')}, from {s.get('solution_from')}, gap {s.get('gap', 0):.2%} to bound "
            f"{s.get('best_bound', 0):.4g} (LP {s.get('lp_bound', 0):.4g}, single table {s.get('single_table_bound', 0):.4g})"
        )
    print("x = TorchRec default / planner, x* = TorchRec at its best / planner, x TW = best table-wise plan "
          "(recshard-tw) / planner (higher is better); HBM use = fullest GPU's hot rows / its HBM budget")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wls = results["workloads"]
    fig, axes = plt.subplots(1, len(wls), figsize=(4.2 * len(wls), 4), squeeze=False)
    for ax, entry in zip(axes[0], wls):
        ok = [r for r in entry["results"] if "error" not in r]
        ax.bar([r["planner"] for r in ok], [r["max_gpu_ms"] for r in ok], color="tab:blue")
        ax.set_yscale("log")
        ax.set_title(entry["workload"])
        ax.set_ylabel("max-GPU embedding ms / iteration (replay)")
        ax.tick_params(axis="x", rotation=60, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small workloads and a short sweep (smoke test)")
    p.add_argument("--out-dir", default=str(ROOT / "results" / "planner"))
    p.add_argument("--ratio", type=float, default=6.0, help="criteo-tb: embedding bytes / total HBM")
    p.add_argument("--time-limit", type=float, default=30.0, help="recshard MILP time limit, seconds")
    p.add_argument("--samples", type=int, default=None, help="replayed lookups per table")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--planners", default=",".join(PLANNERS), help="comma-separated planners to run")
    p.add_argument("--torchrec-best-max-tables", type=int, default=300,
                   help="above this many tables skip the TorchRec sweep and let TorchRec shard table-wise only")
    p.add_argument("--workloads", default=None, help="comma-separated workloads to run (default: all); "
                   "results are merged into an existing bench.json")
    args = p.parse_args(argv)
    if args.samples is None:
        args.samples = 5_000 if args.quick else 200_000
    if args.quick:
        args.time_limit = min(args.time_limit, 2.0)
        args.torchrec_best_max_tables = min(args.torchrec_best_max_tables, 26)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    path = out / "bench.json"
    if args.workloads and path.exists():  # keep the other workloads of an earlier run
        earlier = json.loads(path.read_text())
        names = {w["workload"] for w in results["workloads"]}
        results["workloads"] = [w for w in earlier["workloads"] if w["workload"] not in names] + results["workloads"]
    write_json_atomic(path, results, option="bench.json")
    plot(results, out / "bench.png")
    print(f"\nwrote {out / 'bench.json'} and {out / 'bench.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
