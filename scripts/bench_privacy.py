"""User-level DP-FedAvg: epsilon (Opacus RDP accountant) against test AUC at delta = 1 / clients.

Two workloads:

- ``ml100k``: the tuned ML-100K workload (configs/ml100k_fedyogi_tuned.yaml: 943 clients, 50 a
  round, 60 rounds), a curve over noise multipliers, against the same run without privacy.
- ``synthetic``: 100,000 synthetic Criteo-like clients (fedrec.synthetic, ~10 rows each), 200 a
  round (sampling rate 0.002) for 40 rounds, at target epsilons 2 and 8, against the same run
  without privacy; delta = 1e-5. (Small because the shared 2 cores train ~10 such clients a second
  under load; the accounting is for the 100,000-client population either way.)

The clipping norm is chosen on validation AUC (seed 0, sweep ``--clips``) at the middle noise
level; test AUC is then reported once per arm, mean and spread over ``--seeds``. All arms of a
seed share the data and run in lockstep on one pool.

    .venv/bin/python scripts/bench_privacy.py                       # both workloads (hours on 2 cores)
    .venv/bin/python scripts/bench_privacy.py --workload ml100k
    .venv/bin/python scripts/bench_privacy.py --quick               # minutes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _bench_common import format_table, machine, write_json
from _fedbench import comma_list, pyplot, save
from _trustbench import mean_spread, with_sections

from data_pipeline.datasets import REPO_ROOT, dataset_path
from fedrec.config import config_from_dict, load_config
from fedrec.runtime import ClientPool, load_federated_data
from fedrec.runtime.loop import RoundLoop
from fedrec.runtime.run import FederatedRun
from fedrec.synthetic import synthetic_federated_data

# The synthetic workload: the scale benchmark's data and model, FedYogi on the server.
SYNTHETIC = {"rounds": 40, "clients_per_round": 200, "eval_every": 40,
             "model": {"embedding_dim": 16, "dense_arch": [16], "over_arch": [16]},
             "client": {"lr": 0.1, "local_epochs": 1, "batch_size": 32},
             "strategy": {"name": "fedyogi", "server_lr": 0.03}}


def workload(name: str, quick: bool):
    """(base config, data loader by seed, the arms' privacy sections by label)."""
    if name == "ml100k":
        base = load_config(REPO_ROOT / "configs" / "ml100k_fedyogi_tuned.yaml", **{"data.path": str(dataset_path("ml-100k"))})
        base = base.with_(eval_every=base.rounds)
        noise = [0.5, 0.7, 1.0, 1.5, 2.0]
        if quick:
            base, noise = base.with_(rounds=2, eval_every=2, clients_per_round=10), [1.0]
        arms = {f"z={z}": {"noise_multiplier": z} for z in noise}
        return base, lambda seed: load_federated_data(base.with_(seed=seed)), arms
    clients = 2_000 if quick else 100_000
    base = config_from_dict({**SYNTHETIC, **({"rounds": 2, "clients_per_round": 50, "eval_every": 2} if quick else {})})
    arms = {f"eps={e}": {"target_epsilon": e, "delta": 1e-5} for e in ([8.0] if quick else [2.0, 8.0])}
    return base, lambda seed: synthetic_federated_data(clients, seed=seed), arms


def run_seed(base, data, pool, arms: dict[str, dict | None], seed: int) -> dict[str, dict]:
    """Every arm (label -> privacy section, None: not private) on one seed, in lockstep."""
    pool.set_data(data)
    cfgs = {k: with_sections(base.with_(seed=seed), privacy=p) for k, p in arms.items()}
    runs = {k: FederatedRun(c, data, pool, key=k) for k, c in cfgs.items()}
    RoundLoop(pool, list(runs.values()), rounds=base.rounds, eval_every=base.rounds, progress=True,
              desc=f"{len(runs)} arms seed {seed}").run()
    out = {}
    for k, run in runs.items():
        m = run.final_metrics()
        rep = run.pipeline.report()
        out[k] = {"seed": seed, "test_auc": m["auc"], "validation_auc": m.get("validation_auc"),
                  "epsilon": rep.get("epsilon"), "delta": rep.get("delta"), "privacy": rep.get("privacy")}
        print(f"  seed {seed} {k:>22}: test {m['auc']:.4f} val {m.get('validation_auc', float('nan')):.4f} "
              f"eps {rep.get('epsilon', float('nan')) if rep.get('epsilon') is not None else '-'}", file=sys.stderr, flush=True)
    return out


def bench(name: str, pool, seeds: list[int], clips: list[float], quick: bool) -> dict:
    base, load, arms = workload(name, quick)
    middle = list(arms)[len(arms) // 2]
    data0 = load(seeds[0])
    sweep = {}
    if len(clips) > 1:
        sweep = run_seed(base, data0, pool, {f"{middle} C={c}": {**arms[middle], "clip_norm": c} for c in clips}, seeds[0])
    clip = max(clips, key=lambda c: sweep[f"{middle} C={c}"]["validation_auc"]) if sweep else clips[0]
    all_arms = {"non-private": None, **{k: {**p, "clip_norm": clip} for k, p in arms.items()}}
    per_seed = [run_seed(base, data0 if s == seeds[0] else load(s), pool, all_arms, s) for s in seeds]
    rows = {}
    for k in all_arms:
        cells = [r[k] for r in per_seed]
        auc, sd = mean_spread(c["test_auc"] for c in cells)
        val, _ = mean_spread(c["validation_auc"] for c in cells)
        rows[k] = {"test_auc": auc, "test_auc_sd": sd, "validation_auc": val, "epsilon": cells[0]["epsilon"],
                   "delta": cells[0]["delta"], "privacy": cells[0]["privacy"], "cells": cells}
    clean = rows["non-private"]["test_auc"]
    for r in rows.values():
        r["auc_gap"] = clean - r["test_auc"]
    return {"workload": name, "rounds": base.rounds, "clients_per_round": base.clients_per_round,
            "clients": data0.num_clients, "clip_sweep": {k: v["validation_auc"] for k, v in sweep.items()},
            "clip_norm": clip, "rows": rows}


def main(argv: list[str] | None = None, pool: ClientPool | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="both", choices=("both", "ml100k", "synthetic"))
    ap.add_argument("--seeds", type=comma_list(int), default="0,1,2")
    ap.add_argument("--clips", type=comma_list(float), default="0.1,0.3,1.0", help="clipping norms swept on validation (seed 0)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/bench_privacy")
    args = ap.parse_args(argv)
    seeds, clips = args.seeds, args.clips
    if args.quick:
        seeds, clips = [0], [0.3]
    names = ["ml100k", "synthetic"] if args.workload == "both" else [args.workload]
    owned = pool is None
    pool = pool or ClientPool(num_actors=2).start()
    t0 = time.perf_counter()
    results = {n: bench(n, pool, seeds, clips, args.quick) for n in names}
    if owned:
        pool.stop()
    out = Path(args.out)
    goal = {}
    for name, res in results.items():
        print(f"{name}: {res['clients']:,} clients, {res['clients_per_round']} a round, {res['rounds']} rounds, "
              f"clip norm {res['clip_norm']} (chosen on validation: {res['clip_sweep']})")
        table = [[k, r["epsilon"] if r["epsilon"] is not None else "-", r["delta"] if r["delta"] is not None else "-",
                  (r["privacy"] or {}).get("noise_multiplier", "-"), r["test_auc"], r["test_auc_sd"], r["auc_gap"]]
                 for k, r in res["rows"].items()]
        print(format_table(["arm", "epsilon", "delta", "z", "test AUC", "sd", "gap to non-private"], table,
                           [None, ".2f", ".2e", ".3f", ".4f", ".4f", "+.4f"]))
        if name == "synthetic":
            ok = [k for k, r in res["rows"].items() if r["epsilon"] is not None and r["epsilon"] <= 8 and r["auc_gap"] <= 0.02]
            goal["synthetic_eps8_within_0.02"] = {"met": bool(ok), "arms": ok}
            print(f"target (epsilon <= 8 at delta 1e-5, AUC within 0.02 of non-private): {'met by ' + ', '.join(ok) if ok else 'MISSED'}")
    record = {"results": results, "targets": goal, "seconds": time.perf_counter() - t0, "machine": machine()}
    write_json(out / "bench_privacy.json", record)
    plot(out / "privacy.png", results)
    print(f"wrote {out / 'bench_privacy.json'} and {out / 'privacy.png'}")
    return record


def plot(path: Path, results: dict) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items()):
        pts = sorted((r["epsilon"], r["test_auc"], r["test_auc_sd"]) for k, r in res["rows"].items() if r["epsilon"] is not None)
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", label="DP-FedAvg")
        clean = res["rows"]["non-private"]
        ax.axhline(clean["test_auc"], color="tab:orange", ls="--", label="non-private")
        ax.set_xscale("log")
        delta = next(r["delta"] for r in res["rows"].values() if r["delta"] is not None)
        ax.set_xlabel(f"epsilon (delta = {delta:.1e})")
        ax.set_ylabel("test AUC")
        ax.set_title(f"{name}: {res['clients']:,} clients, {res['clients_per_round']}/round, {res['rounds']} rounds", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, path)


if __name__ == "__main__":
    main()
