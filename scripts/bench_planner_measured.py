"""Benchmark: the planner's cost model against step times measured under TorchRec's
DistributedModelParallel on this machine (CPU, gloo, 2 ranks), so the planner optimises what the
machine does.

1. Calibrate: a calibration workload (its own tables and seed) is planned by the size, lookup,
   TorchRec and random planners (placements of every kind of balance, table-wise and cut) and every
   plan is run through ``sharding.run.run_plans``, the code behind ``fedrec plan run``. The cost
   model's constants (memory bandwidth, cost per id, all-to-all bandwidth, fixed cost per shard)
   and a per-step constant are fitted to the measured per-rank step times by least squares
   (``fit``); on CPU the HBM and UVM bandwidths are one host-memory bandwidth, so the fitted model
   is exactly ``sharding.cost`` with those constants.
2. Test: each test workload is planned for a 2-GPU topology with the fitted constants by ours
   (recshard, and recshard kept table-wise), greedy, TorchRec (default and at its best), size,
   lookup and random; every plan runs the same way. Reported per workload: Spearman's rank
   correlation between predicted and measured max step time (out of sample: the constants came from
   the calibration workload), the same for the untuned default constants (``CPU_PROFILE``), a refit
   on the test measurements (R^2), and whether our plan measured fastest.

Each workload's plans run in one set of rank processes: every model is built once, then ``--rounds``
rounds each run ``--steps`` steps of every plan in turn, so a change in the machine's load touches
all plans alike. A plan's time is its slowest rank's median per step (``--statistic``: CPU time of
the rank's process by default, or wall time; see ``STATISTICS``).
Prints a table, writes results/planner_measured/bench.json and bench.png.
  nice -n 10 .venv/bin/python scripts/bench_planner_measured.py           # a few minutes on 2 cores
  .venv/bin/python scripts/bench_planner_measured.py --quick               # smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scipy.optimize import least_squares, nnls  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from data_pipeline.synth import PROFILES  # noqa: E402
from sharding.errors import InfeasiblePlanError  # noqa: E402
from sharding.plan import Plan  # noqa: E402
from sharding.planners import make_planner  # noqa: E402
from sharding.run import CPU_PROFILE, RunConfig, run_plans  # noqa: E402
from sharding.shards import ROW_WISE  # noqa: E402
from sharding.topology import GB, Topology  # noqa: E402
from sharding.workload import Workload, synthetic_model, synthetic_workload  # noqa: E402

TEST_PLANNERS = ("recshard", "recshard-tw", "greedy", "torchrec", "torchrec-best", "size", "lookup", "random")
QUICK_PLANNERS = ("recshard", "recshard-tw", "size", "random")
# Calibration: placements of every kind of balance, table-wise and cut (TorchRec cuts some).
CALIBRATION_PLANNERS = ("size", "lookup", "torchrec", "random")
PARAMS = ("ms_per_memory_byte", "ms_per_id", "ms_per_comm_byte", "ms_per_shard", "ms_per_step")
# The slowest rank's step time, three ways: the median CPU time of its process per step (its own
# work; a rank blocked on a collective uses no CPU), the median wall time of its steps (fedrec
# plan run's rank_step_ms) and their 20th percentile. On a machine shared with other work (this
# one ran at a load average of 10-17 on 2 cores) the wall times are mostly other processes; the
# CPU time is what the plan itself costs each rank.
STATISTICS = {"cpu": "max_cpu_ms", "median": "max_step_ms", "p20": "max_step_ms_p20"}


def workloads(args) -> tuple[tuple[str, Workload], list[tuple[str, Workload]]]:
    """(calibration workload, test workloads): mixed sizes, dims and pooling, small enough that
    every plan's model fits in memory at once (a few hundred MB)."""
    n = 8 if args.quick else 24
    size = int((0.01 if args.quick else 0.12) * GB)
    rows = (1e3, 5e5 if args.quick else 2e6)
    calib = synthetic_model(n, seed=100, total_bytes=size, rows_range=rows, dims=(16, 32, 64, 128))
    tests = [("synth-" + str(n + 8), synthetic_model(n + 8, seed=args.seed, total_bytes=size, rows_range=rows, dims=(16, 32, 64, 128)))]
    if not args.quick:
        # Criteo-Kaggle-like: the 26 published cardinalities clipped to [64, 100k] rows, Zipf
        # accesses, 8 ids per sample per table
        cards = [int(min(max(c, 64), 100_000)) for c in PROFILES["criteo-kaggle"]]
        kaggle = synthetic_workload(cards, zipf=(1.0, 1.2), dim=(32, 128), pooling_factor=8.0, seed=args.seed)
        tests.append(("criteo-kaggle-like", kaggle))
    return ("calibration", calib), tests


def topology(args, profile: dict) -> Topology:
    """Two GPUs whose "HBM" holds every table: on CPU there is one memory tier, and the plans
    differ in how they cut and place tables, which is what a CPU run measures."""
    return Topology(gpus=2, hbm_gb=8.0, uvm_gb=8.0, batch_size=args.batch_size, **profile)


def make_plans(workload: Workload, topo: Topology, names, args, seeds=(0,)) -> list[Plan]:
    plans = []
    for name in names:
        options = {"time_limit": 10.0}
        if args.quick:
            options["sweep"] = (0.05, 0.2)
        for seed in seeds if name == "random" else (0,):
            planner = make_planner("recshard" if name == "recshard-tw" else name, seed=seed, splits=name != "recshard-tw", **options)
            try:
                plan = planner(workload, topo)
            except InfeasiblePlanError as exc:
                print(f"  {name}: {exc}", file=sys.stderr)
                continue
            plan.planner = name if name != "random" else f"random-{seed}"
            plans.append(plan)
    return plans


def features(plan: Plan, workload: Workload, topo: Topology) -> np.ndarray:
    """Per rank: [bytes read from memory (lookups and the row-wise reduction), ids looked up, bytes
    through the all-to-alls, shards, 1]; with the fitted coefficients these give the cost model's
    GPU cost on a machine with one memory tier (``sharding.cost``), plus a per-step constant."""
    model, ranks, _ = plan.cost_model(workload, topo)
    f = np.zeros((topo.gpus, len(PARAMS)))
    memory = model.lookup_bytes + np.where([p.sharding == ROW_WISE for p in model.parts], model.output_bytes, 0.0)
    comm = model.comm_ms / model.ms_per_comm_byte
    np.add.at(f, ranks, np.c_[memory, model.lookups, comm, np.ones(len(model)), np.zeros(len(model))])
    f[:, -1] = 1.0
    return f


def predicted(theta: np.ndarray, f: np.ndarray) -> float:
    return float((f[:, :-1] @ theta[:-1]).max() + theta[-1])


def fit(feats: list[np.ndarray], measured: list[float], per_rank: list[list[float]] | None = None) -> dict:
    """Least squares for the step time, theta >= 0. With ``per_rank`` (CPU times: each rank's own
    work) a linear fit of every rank's time to its features plus the step constant
    (``scipy.optimize.nnls``); otherwise a fit of the slowest rank's time to
    ``max_rank(features . theta) + constant``, from several starts (the max is piecewise linear).
    R^2 and the predictions are of the slowest rank's time either way."""
    scale = np.maximum(np.max([np.abs(f).max(axis=0) for f in feats], axis=0), 1e-12)
    y = np.asarray(measured)
    if per_rank is not None:
        X = np.vstack(feats) / scale
        z, _ = nnls(X, np.concatenate([np.asarray(r, dtype=float) for r in per_rank]))
    else:
        def residual(z):
            return np.array([predicted(z / scale, f) for f in feats]) - y

        best = None
        k = len(PARAMS) - 1
        for start in ([y.mean() / k] * k + [y.min() / 2], [y.mean()] * k + [0.0], [0.0] * k + [y.mean()]):
            res = least_squares(residual, np.asarray(start, dtype=float), bounds=(0, np.inf))
            if best is None or res.cost < best.cost:
                best = res
        z = best.x
    theta = z / scale
    pred = np.array([predicted(theta, f) for f in feats])
    ss_res, ss_tot = float(((pred - y) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    return {
        "method": "per-rank nnls" if per_rank is not None else "slowest-rank least squares",
        "theta": dict(zip(PARAMS, theta.tolist())),
        "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 0.0,
        "rmse_ms": float(np.sqrt(ss_res / len(y))),
        "predicted_ms": pred.tolist(),
    }


def per_rank_of(rows: list[dict], args) -> list[list[float]] | None:
    """Each rank's own time, when the statistic has one (CPU time); wall times are synchronised."""
    return [r["rank_cpu_ms"] for r in rows] if args.statistic == "cpu" else None


def profile_of(theta: dict) -> dict:
    """Topology constants from fitted coefficients (ms per byte -> GB/s, ms per shard -> us)."""
    def gbps(ms_per_byte):
        return 1000.0 / (max(ms_per_byte, 1e-15) * GB)

    return {
        "hbm_gbps": gbps(theta["ms_per_memory_byte"]),
        "uvm_gbps": gbps(theta["ms_per_memory_byte"]),
        "comm_gbps": gbps(theta["ms_per_comm_byte"]),
        "table_fixed_us": theta["ms_per_shard"] * 1000.0,
        "id_ns": theta["ms_per_id"] * 1e6,
    }


def layout_key(plan: Plan) -> tuple:
    return tuple((p.name, tuple(p.shards)) for p in sorted(plan.tables, key=lambda p: p.name))


def measure(name: str, workload: Workload, plans: list[Plan], topo: Topology, args) -> list[dict]:
    """Run the distinct plans (planners that produce the same plan share one measurement: running
    one plan twice would only show the noise) and return a row per plan."""
    distinct: dict[tuple, int] = {}
    for k, plan in enumerate(plans):
        distinct.setdefault(layout_key(plan), k)
    unique = [plans[k] for k in sorted(set(distinct.values()))]
    print(f"[{name}] running {len(unique)} distinct plans x {args.rounds} rounds x {args.steps} steps ...", file=sys.stderr, flush=True)
    config = RunConfig(world_size=2, steps=args.steps, warmup=2, batch_size=args.batch_size, seed=args.seed)
    start = time.perf_counter()
    results = dict(zip((id(p) for p in unique), run_plans(workload, unique, topo, config, profile={}, rounds=args.rounds)))
    print(f"[{name}] {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    rows = []
    for plan in plans:
        first = plans[distinct[layout_key(plan)]]
        r = results[id(first)]
        rows.append(
            {
                "planner": plan.planner,
                "same_plan_as": first.planner if first is not plan else None,
                "max_step_ms": r.max_step_ms,
                "max_step_ms_p20": max(r.rank_step_ms_p20),
                "max_cpu_ms": max(r.rank_cpu_ms),
                "rank_cpu_ms": r.rank_cpu_ms,
                "rank_step_ms": r.rank_step_ms,
                "rank_lookups": r.rank_lookups,
                "shards": sum(len(p.shards) for p in plan.tables),
                "cut_tables": sum(1 for p in plan.tables if len(p.shards) > 1),
                "features": features(plan, workload, topo).tolist(),
            }
        )
    return rows


def distinct_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["same_plan_as"] is None]


def run(args) -> dict:
    (cname, calib), tests = workloads(args)
    default_topo = topology(args, CPU_PROFILE)
    calib_plans = make_plans(calib, default_topo, CALIBRATION_PLANNERS, args, seeds=range(args.calibration_plans))
    calib_rows = measure(cname, calib, calib_plans, default_topo, args)
    key = STATISTICS[args.statistic]
    calib_rows = distinct_rows(calib_rows)
    calib_fit = fit([np.array(r["features"]) for r in calib_rows], [r[key] for r in calib_rows], per_rank_of(calib_rows, args))
    profile = profile_of(calib_fit["theta"])
    out = {"config": vars(args), "calibration": {"rows": calib_rows, "fit": calib_fit, "profile": profile}, "workloads": []}
    print_fit("calibration fit", calib_fit, profile)
    theta = np.array([calib_fit["theta"][k] for k in PARAMS])
    for name, w in tests:
        topo = topology(args, profile)
        names = args.planners.split(",") if args.planners else (QUICK_PLANNERS if args.quick else TEST_PLANNERS)
        plans = make_plans(w, topo, names, args, seeds=(0,) if args.quick else (0, 1))
        all_rows = measure(name, w, plans, topo, args)
        for r, plan in zip(all_rows, plans):
            r["predicted_ms"] = predicted(theta, np.array(r["features"]))  # calibrated constants
            r["predicted_default_ms"] = float(plan.gpu_costs(w, topology(args, CPU_PROFILE)).max())
        rows = distinct_rows(all_rows)  # the correlations count each distinct plan once
        measured = [r[key] for r in rows]
        feats = [np.array(r["features"]) for r in rows]
        refit = fit(feats, measured, per_rank_of(rows, args))
        best = min(measured)
        fastest = [r["planner"] for r in all_rows if r[key] == best]
        pred = [r["predicted_ms"] for r in rows]
        entry = {
            "workload": name,
            "tables": len(w),
            "total_gb": w.total_bytes / GB,
            "statistic": args.statistic,
            "rows": all_rows,
            "distinct_plans": len(rows),
            "spearman": float(spearmanr(pred, measured).statistic),
            "spearman_by_statistic": {s: float(spearmanr(pred, [r[k] for r in rows]).statistic) for s, k in STATISTICS.items()},
            "spearman_default_constants": float(spearmanr([r["predicted_default_ms"] for r in rows], measured).statistic),
            "refit": refit,
            "refit_profile": profile_of(refit["theta"]),
            "spearman_refit": float(spearmanr(refit["predicted_ms"], measured).statistic),
            "measured_fastest": fastest,
            "ours_fastest": "recshard" in fastest,
        }
        out["workloads"].append(entry)
        print_table(entry)
    # Constants fitted on one test workload, judged on the other (out of sample both ways).
    if len(out["workloads"]) == 2:
        a, b = out["workloads"]
        for src, dst in ((a, b), (b, a)):
            th = np.array([src["refit"]["theta"][k] for k in PARAMS])
            rows = distinct_rows(dst["rows"])
            pred = [predicted(th, np.array(r["features"])) for r in rows]
            dst[f"spearman_constants_from_{src['workload']}"] = float(spearmanr(pred, [r[key] for r in rows]).statistic)
    return out


def print_fit(title: str, f: dict, profile: dict) -> None:
    t = f["theta"]
    print(
        f"\n{title} ({f['method']}): R^2 {f['r2']:.3f}, RMSE {f['rmse_ms']:.2f} ms; memory {profile['hbm_gbps']:.3g} GB/s, "
        f"{profile['id_ns']:.0f} ns per id, all-to-all {profile['comm_gbps']:.3g} GB/s, "
        f"{profile['table_fixed_us']:.0f} us per shard, "
        f"{t['ms_per_step']:.2f} ms per step"
    )


def print_table(entry: dict) -> None:
    print(f"\n== {entry['workload']}: {entry['tables']} tables, {entry['total_gb']:.2f} GB, 2 ranks (CPU, gloo)")
    head = (f"{'planner':16s} {'cut':>4s} {'shards':>6s} {'predicted ms':>13s} {'CPU ms':>8s} {'rank CPU ms':>12s} "
            f"{'wall p20':>9s} {'wall median':>12s} {'ids/rank':>16s}")
    print(head + "\n" + "-" * len(head))
    key = STATISTICS[entry["statistic"]]
    for r in sorted(entry["rows"], key=lambda r: r[key]):
        ranks = "/".join(f"{x:.1f}" for x in r["rank_cpu_ms"])
        ids = "/".join(f"{x:.0f}" for x in r["rank_lookups"])
        same = f"  (= {r['same_plan_as']})" if r["same_plan_as"] else ""
        print(f"{r['planner']:16s} {r['cut_tables']:4d} {r['shards']:6d} {r['predicted_ms']:13.2f} {r['max_cpu_ms']:8.2f} "
              f"{ranks:>12s} {r['max_step_ms_p20']:9.2f} {r['max_step_ms']:12.2f} {ids:>16s}{same}")
    by = entry["spearman_by_statistic"]
    print(
        f"Spearman predicted vs measured ({entry['statistic']}): {entry['spearman']:.3f} (calibrated constants; "
        f"cpu {by['cpu']:.3f}, wall p20 {by['p20']:.3f}, wall median {by['median']:.3f}), "
        f"{entry['spearman_default_constants']:.3f} (default constants), {entry['spearman_refit']:.3f} (refit here), "
        f"over {entry['distinct_plans']} distinct plans; fastest measured: {', '.join(entry['measured_fastest'])}"
    )
    print_fit("refit on this workload", entry["refit"], entry["refit_profile"])


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wls = results["workloads"]
    fig, axes = plt.subplots(1, len(wls), figsize=(5.2 * len(wls), 4.3), squeeze=False)
    for ax, e in zip(axes[0], wls):
        rows = distinct_rows(e["rows"])
        xs = [r["predicted_ms"] for r in rows]
        ys = [r[STATISTICS[e["statistic"]]] for r in rows]
        ax.scatter(xs, ys, color="tab:blue")
        for r, x, y in zip(rows, xs, ys):
            names = [r["planner"]] + [o["planner"] for o in e["rows"] if o["same_plan_as"] == r["planner"]]
            ax.annotate(" = ".join(names), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points",
                        color="tab:red" if "recshard" in names else "black")
        lo, hi = min(xs + ys), max(xs + ys)
        ax.plot([lo, hi], [lo, hi], color="gray", lw=1, ls="--")
        ax.set(xlabel="predicted max step ms (calibrated cost model)",
               ylabel=f"measured max step ms, {e['statistic']} (DMP, CPU/gloo)",
               title=f"{e['workload']}: Spearman {e['spearman']:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one small test workload, few steps (smoke test)")
    p.add_argument("--out-dir", default=str(ROOT / "results" / "planner_measured"))
    p.add_argument("--planners", default=None, help=f"comma-separated planners for the test workloads (default {','.join(TEST_PLANNERS)})")
    p.add_argument("--batch-size", type=int, default=None, help="samples per rank and step")
    p.add_argument("--steps", type=int, default=None, help="timed steps per plan and round")
    p.add_argument("--rounds", type=int, default=None, help="rounds over all plans")
    p.add_argument("--calibration-plans", type=int, default=None, help="random plans in the calibration")
    p.add_argument("--statistic", choices=tuple(STATISTICS), default="cpu",
                   help="step-time statistic fitted and ranked (cpu: each rank's own work, robust on a shared machine)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    defaults = {"batch_size": (64, 512), "steps": (2, 12), "rounds": (1, 3), "calibration_plans": (2, 4)}
    for key, (quick, full) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    from data_pipeline.atomic import atomic_path, write_json_atomic

    write_json_atomic(out / "bench.json", results, option="bench.json")
    with atomic_path(out / "bench.png", (".png",), "bench.png") as tmp:
        plot(results, tmp)
    print(f"\nwrote {out / 'bench.json'} and {out / 'bench.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
