"""FEL against single-model on-device FL, on ml100k-fed and on synthetic Criteo-like data.

Per workload: tier-aware FEL (sub-models of embedding dim 8/16/32 for the low/mid/high tiers, a
64-32 over-arch trained by the server on 10% of the training rows), the same with clusters from
k-means over user statistics and at random, and the baseline — the dim-8 model (it fits every
device) trained on all clients with the same clients per round and rounds, i.e. the same client
budget. Reported: AUC / log loss / NE of each sub-model, of the plain logit average, of the
over-arch ensemble, of the baseline, and of the baseline with the same server-side over-arch (the
control, "ctl": it separates what the ensemble adds from what the server's rows add). Gains are
relative, positive = better (AUC up, NE down). A clustering whose weakest device cannot train a
sub-model is reported as infeasible.

    .venv/bin/python scripts/bench_fel.py                 # both workloads, configs/ml100k_fel.yaml (40 x 50)
    .venv/bin/python scripts/bench_fel.py --quick         # a smoke run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _fedbench import config, print_table, pyplot, save, write_json

from data_pipeline.errors import ConfigError
from fedrec.algorithms import run_fel
from fedrec.runtime import ClientPool, load_federated_data
from fedrec.synthetic import synthetic_federated_data

# Synthetic Criteo-like: 26 tables capped at 500 rows so the dim-8 sub-model trains in the low
# tier's 1 MB (weights + gradients), 2,000 quantity-skewed clients of ~20 rows.
CRITEO = {"num_clients": 2000, "rows_per_client": 20, "max_cardinality": 500}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None, help="default: the config's")
    ap.add_argument("--per-round", type=int, default=None)
    ap.add_argument("--workloads", default="ml100k,criteo-synth")
    ap.add_argument("--clusterings", default="tier,data,random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/bench_fel")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.per_round, args.clusterings = 2, 12, "tier"
        CRITEO.update(num_clients=200)
    t0 = time.perf_counter()
    results, rows = {}, []
    pool = ClientPool().start()
    for workload in args.workloads.split(","):
        base = config("ml100k_fel.yaml", eval_every=5, plot=None, seed=args.seed)
        cfg = base.with_(rounds=args.rounds or base.rounds, clients_per_round=args.per_round or base.clients_per_round)
        data = load_federated_data(cfg) if workload == "ml100k" else synthetic_federated_data(**CRITEO, seed=cfg.seed)
        baseline = None
        for clustering in args.clusterings.split(","):
            # The baseline does not depend on the clustering: train it once per workload.
            try:
                r = run_fel(cfg.with_(**{"ensemble.clustering": clustering, "ensemble.baseline": baseline is None}), data, pool,
                            progress=True)
            except ConfigError as exc:  # a sub-model too big for the weakest device in its cluster
                rows.append({"run": f"{workload}/{clustering}", "subs": f"infeasible: {exc}"})
                continue
            baseline = baseline or r.baseline
            results[f"{workload}/{clustering}"] = r.to_dict() | {"config": None}
            rows.append(row(workload, clustering, r, baseline))
    pool.stop()
    print_table(rows, [("run", "workload/clusters", ""), ("subs", "sub-model AUCs", ""), ("average", "avg AUC", ".4f"),
                       ("ensemble", "ensemble AUC", ".4f"), ("ens_ne", "ens NE", ".4f"), ("base", "baseline AUC", ".4f"),
                       ("base_ne", "base NE", ".4f"), ("base_over", "base+over AUC", ".4f"), ("base_over_ne", "base+over NE", ".4f"),
                       ("gain_auc", "gain AUC %", "+.2f"), ("gain_ne", "gain NE %", "+.2f"), ("ctl_auc", "vs ctl AUC %", "+.2f"),
                       ("ctl_ne", "vs ctl NE %", "+.2f"), ("updates", "updates FEL/base", "")])
    out = Path(args.out)
    path = write_json(out, "bench_fel.json", {"rows": rows, "runs": results, "rounds": args.rounds, "per_round": args.per_round,
                                              "criteo": CRITEO, "wall_seconds": time.perf_counter() - t0})
    plot(results, out / "bench_fel.png")
    print(f"wrote {path} and {out / 'bench_fel.png'} ({time.perf_counter() - t0:.0f} s)")


def row(workload: str, clustering: str, r, base: dict) -> dict:
    gain = {k: 100 * (base[k] - getattr(r, f"ensemble_{k}")) / base[k] for k in ("logloss", "ne")}
    return {"run": f"{workload}/{clustering}", "subs": " ".join(f"{n}:{a:.3f}" for n, a in r.submodel_auc.items()),
            "average": r.average_auc, "ensemble": r.ensemble_auc, "ens_ne": r.ensemble_ne, "ens_logloss": r.ensemble_logloss,
            "base": base["auc"], "base_ne": base["ne"], "base_over": base["over_arch_auc"],
            "gain_auc": 100 * (r.ensemble_auc - base["auc"]) / base["auc"], "gain_ne": gain["ne"], "gain_logloss": gain["logloss"],
            "base_over_ne": base["over_arch_ne"],
            "ctl_auc": 100 * (r.ensemble_auc - base["over_arch_auc"]) / base["over_arch_auc"],
            "ctl_ne": 100 * (base["over_arch_ne"] - r.ensemble_ne) / base["over_arch_ne"],
            "updates": f"{r.client_updates}/{base['client_updates']}", "per_tier_auc": r.per_tier_auc,
            "base_per_tier_auc": base["per_tier_auc"]}


def plot(results: dict[str, dict], path: Path) -> None:
    plt = pyplot()
    names = list(results)
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(4.2 * (len(names) + 1), 3.8))
    for ax, name in zip(axes, names):
        r = results[name]
        evals = [h for h in r["history"] if "submodel_auc" in h]
        for sub in r["submodel_auc"]:
            ax.plot([h["sim_seconds"] for h in evals], [h["submodel_auc"][sub] for h in evals], label=f"sub {sub}")
        base = [h for h in evals if "baseline_auc" in h]
        if base:
            ax.plot([h["baseline_sim_seconds"] for h in base], [h["baseline_auc"] for h in base], "k--", label="baseline")
        ax.scatter([r["sim_seconds"]], [r["ensemble_auc"]], marker="*", s=120, color="red", zorder=3, label="ensemble")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("simulated seconds")
        ax.set_ylabel("test AUC")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    tiered = [n for n in names if results[n]["per_tier_auc"]]
    ax = axes[-1]
    if tiered:
        r = results[tiered[0]]
        tiers = list(r["per_tier_auc"])
        base = next(results[n]["baseline"] for n in names if n.startswith(tiered[0].split("/")[0]) and results[n]["baseline"])
        xs = range(len(tiers))
        ax.bar([x - 0.2 for x in xs], [base["per_tier_auc"][t] for t in tiers], width=0.4, label="baseline (dim 8)")
        ax.bar([x + 0.2 for x in xs], [r["per_tier_auc"][t] for t in tiers], width=0.4, label=f"FEL ({tiered[0]})")
        ax.set_xticks(list(xs), tiers)
        lo = min(min(base["per_tier_auc"].values()), min(r["per_tier_auc"].values()))
        ax.set_ylim(max(0.0, lo - 0.05), None)
        ax.set_ylabel("test AUC per tier")
        ax.legend(fontsize=7)
    save(fig, path)


if __name__ == "__main__":
    main()
