"""Scale: client updates/s and memory as the client population grows (synthetic Criteo-like data).

The issue's target: updates/s stays within 2x from 1k to 100k clients. Each population trains the
same number of clients per round, so a flat line means the per-round cost does not grow with the
population (selection, partitions and caches are O(selected), not O(all)).

    .venv/bin/python scripts/bench_scale.py                 # 1k, 10k, 100k clients
    .venv/bin/python scripts/bench_scale.py --quick         # 1k and 5k, 3 rounds (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import psutil

from fedrec.config import config_from_dict
from fedrec.runtime import ClientPool, FederatedRun, RoundLoop
from fedrec.runtime.ray_runtime import ensure_ray
from fedrec.synthetic import synthetic_federated_data


def measure(num_clients: int, rounds: int, per_round: int, max_cardinality: int) -> dict:
    t0 = time.perf_counter()
    data = synthetic_federated_data(num_clients, max_cardinality=max_cardinality)
    load_s = time.perf_counter() - t0
    cfg = config_from_dict({"rounds": rounds, "clients_per_round": per_round, "eval_every": 10**6,
                            "model": {"embedding_dim": 16, "dense_arch": [16], "over_arch": [16]}})
    with ClientPool.from_config(cfg) as pool:
        pool.set_data(data)
        run = FederatedRun(cfg, data, pool)
        loop = RoundLoop(pool, [run], rounds=rounds + 1, eval_every=10**6)  # no evaluation in the timed rounds
        loop.round(1)  # warm-up: actors cache their first clients, Ray warms its transport
        t = time.perf_counter()
        for r in range(2, rounds + 1):
            loop.round(r)
        wall = time.perf_counter() - t
        updates = sum(h["client_updates"] for h in run.history[1:])
        actor_mb = sum(pool.memory_mb())
    return {
        "clients": num_clients,
        "train_rows": len(data.train),
        "rounds_timed": rounds - 1,
        "client_updates": updates,
        "wall_seconds": wall,
        "client_updates_per_second": updates / wall,
        "load_seconds": load_s,
        "driver_rss_mb": psutil.Process().memory_info().rss / 2**20,
        "actors_rss_mb": actor_mb,
        "model_mb": run.facts.model_bytes / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="1000,10000,100000")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=100)
    ap.add_argument("--max-cardinality", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/bench_scale")
    args = ap.parse_args()
    if args.quick:
        args.clients, args.rounds, args.per_round = "1000,5000", 3, 50
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ensure_ray(num_cpus=os.cpu_count())
    rows = [measure(int(n), args.rounds, args.per_round, args.max_cardinality) for n in args.clients.split(",")]
    base = rows[0]["client_updates_per_second"]
    print(f"{'clients':>9} {'rows':>9} {'updates':>8} {'wall s':>7} {'updates/s':>10} {'vs first':>8} {'driver MB':>9} {'actors MB':>9}")
    for r in rows:
        r["ratio_vs_smallest"] = r["client_updates_per_second"] / base
        print(f"{r['clients']:>9,} {r['train_rows']:>9,} {r['client_updates']:>8} {r['wall_seconds']:>7.2f} "
              f"{r['client_updates_per_second']:>10.0f} {r['ratio_vs_smallest']:>8.2f} {r['driver_rss_mb']:>9.0f} {r['actors_rss_mb']:>9.0f}")
    worst = min(r["ratio_vs_smallest"] for r in rows)
    verdict = "met" if worst >= 0.5 else "NOT met"
    print(f"target (updates/s within 2x from smallest to largest population): {verdict} (worst ratio {worst:.2f})")
    (out / "bench_scale.json").write_text(json.dumps({"rows": rows, "per_round": args.per_round, "target_met": worst >= 0.5}, indent=2))
    _plot(rows, out / "bench_scale.png")
    print(f"wrote {out / 'bench_scale.json'} and {out / 'bench_scale.png'}")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["clients"] for r in rows], [r["client_updates_per_second"] for r in rows], marker="o")
    ax.set_xscale("log")
    ax.set_xlabel("clients in the population")
    ax.set_ylabel("client updates / s")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
