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

    .venv/bin/python scripts/bench_fel.py                 # both workloads, configs/ml100k_fel.yaml (40 x 50), seeds 0-2
    .venv/bin/python scripts/bench_fel.py --quick         # a smoke run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _fedbench import comma_list, config, mean_std, pm, print_table, pyplot, save, write_json

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
    ap.add_argument("--seeds", type=comma_list(int), default="0,1,2", help="each seed reruns every row; the summary is mean ± std")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/bench_fel")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.per_round, args.clusterings = 2, 12, "tier"
        CRITEO.update(num_clients=200)
    t0 = time.perf_counter()
    seeds = args.seeds if not args.quick else [0]
    results, rows = {}, []
    pool = ClientPool().start()
    for seed in seeds:
        for workload in args.workloads.split(","):
            print(f"bench_fel: seed {seed}, {workload}", flush=True)
            base = config("ml100k_fel.yaml", eval_every=5, plot=None, seed=seed)
            cfg = base.with_(rounds=args.rounds or base.rounds, clients_per_round=args.per_round or base.clients_per_round)
            data = load_federated_data(cfg) if workload == "ml100k" else synthetic_federated_data(**CRITEO, seed=cfg.seed)
            baseline = None
            for clustering in args.clusterings.split(","):
                # The baseline does not depend on the clustering: train it once per workload and seed.
                try:
                    r = run_fel(cfg.with_(**{"ensemble.clustering": clustering, "ensemble.baseline": baseline is None}),
                                data, pool, progress=True)
                except ConfigError as exc:  # a sub-model too big for the weakest device in its cluster
                    rows.append({"run": f"{workload}/{clustering}", "seed": seed, "subs": f"infeasible: {exc}"})
                    continue
                baseline = baseline or r.baseline
                results[f"{workload}/{clustering}/s{seed}"] = r.to_dict() | {"config": None}
                rows.append(row(workload, clustering, r, baseline) | {"seed": seed})
    pool.stop()
    print_table(rows, [("run", "workload/clusters", ""), ("seed", "seed", "d"), ("subs", "sub-model AUCs", ""),
                       ("average", "avg AUC", ".4f"), ("ensemble", "ensemble AUC", ".4f"), ("ens_ne", "ens NE", ".4f"),
                       ("base", "baseline AUC", ".4f"), ("base_ne", "base NE", ".4f"), ("base_over", "base+over AUC", ".4f"),
                       ("gain_auc", "gain AUC %", "+.2f"), ("ctl_auc", "vs ctl AUC %", "+.2f"), ("updates", "updates FEL/base", "")])
    summary = summarize(rows)
    print(f"\nover seeds {seeds} (mean ± std):")
    print_table(summary, [("run", "workload/clusters", ""), ("seeds", "seeds", "d"), ("ensemble_pm", "ensemble AUC", ""),
                          ("ensemble_validation_pm", "ensemble val AUC", ""), ("base_pm", "baseline AUC", ""),
                          ("gain_auc_pm", "gain AUC %", ""), ("ctl_auc_pm", "vs ctl AUC %", ""),
                          ("gain_ne_pm", "gain NE %", "")])
    out = Path(args.out)
    path = write_json(out, "bench_fel.json", {"rows": rows, "summary": summary, "seeds": seeds, "runs": results,
                                              "rounds": args.rounds, "per_round": args.per_round, "criteo": CRITEO,
                                              "wall_seconds": time.perf_counter() - t0})
    plot({k.rsplit("/s", 1)[0]: v for k, v in results.items() if k.endswith(f"/s{seeds[0]}")}, out / "bench_fel.png")
    print(f"wrote {path} and {out / 'bench_fel.png'} ({time.perf_counter() - t0:.0f} s)")


def summarize(rows: list[dict]) -> list[dict]:
    """Per workload/clustering: mean ± std over the seeds of the ensemble's test and validation
    AUC, the baseline's, and the relative gains (infeasible rows left out)."""
    out = []
    for run in dict.fromkeys(r["run"] for r in rows):
        ok = [r for r in rows if r["run"] == run and "gain_auc" in r]
        if not ok:
            continue
        entry = {"run": run, "seeds": len(ok)}
        for key, spec in (("ensemble", ".4f"), ("ensemble_validation", ".4f"), ("base", ".4f"), ("gain_auc", "+.2f"),
                          ("ctl_auc", "+.2f"), ("gain_ne", "+.2f")):
            m, sd = mean_std(r.get(key) for r in ok)
            entry[key], entry[f"{key}_std"], entry[f"{key}_pm"] = m, sd, pm(m, sd, spec)
        out.append(entry)
    return out


def row(workload: str, clustering: str, r, base: dict) -> dict:
    gain = {k: 100 * (base[k] - getattr(r, f"ensemble_{k}")) / base[k] for k in ("logloss", "ne")}
    return {"run": f"{workload}/{clustering}", "subs": " ".join(f"{n}:{a:.3f}" for n, a in r.submodel_auc.items()),
            "average": r.average_auc, "ensemble": r.ensemble_auc, "ensemble_validation": r.validation_auc,
            "ens_ne": r.ensemble_ne, "ens_logloss": r.ensemble_logloss,
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
