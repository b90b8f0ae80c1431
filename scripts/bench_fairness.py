"""RF^2 on ml100k-fed: how unevenly system optimizations change each tier's accuracy, with device
tiers correlated with data (each client's number of ratings, Dirichlet alpha 0.5) and with random
tiers. For each optimization (deadline at the 70th percentile of simulated round times,
30% over-selection, tier-aware FEL) and each assignment: per-tier test AUC, relative change
against the baseline, and MDAC (max minus min relative change across tiers); the ratio
MDAC(correlated) / MDAC(random) is how much a random-tier simulator understates the fairness impact
(RF^2 reports 15.8-41x). Several seeds give the spread (``--seeds 0,1,2``).

    .venv/bin/python scripts/bench_fairness.py              # configs/ml100k_tiers_rf2.yaml, seeds 0-2
    .venv/bin/python scripts/bench_fairness.py --private-user --seeds 0,1,2   # with private user embeddings
    .venv/bin/python scripts/bench_fairness.py --quick      # a smoke run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _fedbench import comma_list, config, mean_std, pm, print_table, pyplot, save, write_json

from fedrec.algorithms import run_fairness
from fedrec.runtime import ClientPool, load_federated_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None, help="default: the config's")
    ap.add_argument("--per-round", type=int, default=None)
    ap.add_argument("--seeds", type=comma_list(int), default="0,1,2")
    ap.add_argument("--optimizations", default="deadline,over_selection,fel")
    ap.add_argument("--tier-statistic", default="rows", choices=("rows", "inverse_rows"),
                    help="correlated tiers: more data on faster devices (rows) or on slower ones")
    ap.add_argument("--private-user", action="store_true",
                    help="add a private user embedding (each client's own, never uploaded); FEL is left out (its "
                         "server-side over-arch cannot read private tables)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/bench_fairness")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.per_round, args.optimizations = 2, 10, "deadline,over_selection"
    base = config("ml100k_tiers_rf2.yaml", plot=None)
    if args.private_user:
        args.optimizations = ",".join(o for o in args.optimizations.split(",") if o != "fel")
        base = base.with_(**{"data.features": ["user", *base.data.features], "model.private": ["user"]})
    cfg = base.with_(rounds=args.rounds or base.rounds, clients_per_round=args.per_round or base.clients_per_round,
                     tier_statistic=args.tier_statistic, **{"fairness.optimizations": args.optimizations.split(",")})
    t0 = time.perf_counter()
    pool = ClientPool.from_config(cfg).start()
    results = {}
    for seed in args.seeds:
        seeded = cfg.with_(seed=seed)  # the split is per-user temporal: the same data, other tiers and client draws
        r = run_fairness(seeded, load_federated_data(seeded), pool, progress=True)
        results[seed] = {"mdac": r.mdac, "mdac_random": r.mdac_random, "understatement": r.understatement, "runs": r.runs}
    pool.stop()
    tiers = list(cfg.tiers.names)
    rows = []
    for seed, res in results.items():
        for assignment, runs in res["runs"].items():
            for method, run in runs.items():
                rows.append({"seed": seed, "assignment": assignment, "method": method, "auc": run["auc"],
                             **{t: run["per_tier_auc"].get(t) for t in tiers},
                             **{f"r_{t}": 100 * run["relative_change"][t] for t in tiers if "relative_change" in run},
                             "mdac": run.get("mdac"), "too_slow": " ".join(f"{t}:{v:.0%}" for t, v in run.get("share_too_slow", {}).items())})
    print_table(rows, [("seed", "seed", "d"), ("assignment", "tiers", ""), ("method", "method", ""), ("auc", "AUC", ".4f"),
                       *[(t, f"AUC {t}", ".4f") for t in tiers], *[(f"r_{t}", f"chg {t} %", "+.2f") for t in tiers],
                       ("mdac", "MDAC", ".4f"), ("too_slow", "past deadline", "")])
    summary = []
    for opt in cfg.fairness.optimizations:
        corr = [res["mdac"][opt] for res in results.values()]
        rand = [res["mdac_random"][opt] for res in results.values()]
        ratios = [c / r if r > 0 else None for c, r in zip(corr, rand)]
        m, sd = mean_std(ratios)
        summary.append({"optimization": opt, "mdac_correlated": float(np.mean(corr)), "mdac_random": float(np.mean(rand)),
                        "mdac_correlated_pm": pm(*mean_std(corr)), "mdac_random_pm": pm(*mean_std(rand)),
                        "understatement": float(np.mean(corr) / np.mean(rand)) if np.mean(rand) > 0 else float("inf"),
                        "ratio_mean": m, "ratio_std": sd, "ratio_pm": pm(m, sd, ".2f"),
                        "per_seed": [f"{x:.1f}" if x is not None else "inf" for x in ratios]})
    print()
    print_table(summary, [("optimization", "optimization", ""), ("mdac_correlated_pm", "MDAC correlated", ""),
                          ("mdac_random_pm", "MDAC random", ""), ("understatement", "ratio of means (RF^2: 15.8-41x)", ".2f"),
                          ("ratio_pm", "per-seed ratio", ""), ("per_seed", "per seed", "")])
    out = Path(args.out)
    path = write_json(out, "bench_fairness.json", {"summary": summary, "rows": rows, "results": results,
                                                   "rounds": cfg.rounds, "per_round": cfg.clients_per_round,
                                                   "wall_seconds": time.perf_counter() - t0})
    plot(results, tiers, out / "bench_fairness.png")
    print(f"wrote {path} and {out / 'bench_fairness.png'} ({time.perf_counter() - t0:.0f} s)")


def plot(results: dict, tiers: list[str], path: Path) -> None:
    """Per-tier relative AUC change of each optimization (mean over seeds), one panel per assignment;
    and AUC vs simulated time of the sync methods under correlated tiers."""
    plt = pyplot()
    first = next(iter(results.values()))["runs"]
    fig, axes = plt.subplots(1, len(first) + 1, figsize=(5 * (len(first) + 1), 3.8))
    for ax, assignment in zip(axes, first):
        methods = [m for m in first[assignment] if m != "baseline"]
        width = 0.8 / len(methods)
        for i, m in enumerate(methods):
            change = [100 * np.mean([res["runs"][assignment][m]["relative_change"][t] for res in results.values()]) for t in tiers]
            mdac = np.mean([res["runs"][assignment][m]["mdac"] for res in results.values()])
            ax.bar([x + (i - (len(methods) - 1) / 2) * width for x in range(len(tiers))], change, width=width,
                   label=f"{m} (MDAC {mdac:.3f})")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(tiers)), tiers)
        ax.set_ylabel("AUC change vs baseline (%)")
        ax.set_title(f"{assignment} tiers", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    ax = axes[-1]
    for m, run in first[next(iter(first))].items():
        if run.get("history"):
            ax.plot([h["sim_seconds"] for h in run["history"]], [h["auc"] for h in run["history"]], label=m)
    ax.set_xlabel("simulated seconds")
    ax.set_ylabel("test AUC")
    ax.set_title("sync methods, first assignment", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save(fig, path)


if __name__ == "__main__":
    main()
