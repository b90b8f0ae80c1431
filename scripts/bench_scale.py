"""Scale: client updates/s and memory as the client population grows (synthetic Criteo-like data).

The issue's target: updates/s stays within 2x from 1k to 100k clients. Each population trains the
same number of clients per round, so a flat line means the per-round cost does not grow with the
population (selection, partitions and caches are O(selected), not O(all)).

    .venv/bin/python scripts/bench_scale.py                 # 1k, 10k, 100k clients
    .venv/bin/python scripts/bench_scale.py --private-user --clients 1000,10000,100000,1000000 --rows-per-client 2
    .venv/bin/python scripts/bench_scale.py --quick         # 1k and 5k, 3 rounds (smoke test)

With --private-user every client is a user with a dim-16 embedding that stays on its device (the
actors hold one row per client they own, see fedrec.client.private); the table then grows with the
population, and its memory per client is reported. A spot check confirms that a client's private
row after its second participation continued from its first.
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


def measure(num_clients: int, rounds: int, per_round: int, max_cardinality: int, private: bool = False,
            rows_per_client: int = 10) -> dict:
    t0 = time.perf_counter()
    data = synthetic_federated_data(num_clients, rows_per_client=rows_per_client, max_cardinality=max_cardinality,
                                    user_feature=private)
    load_s = time.perf_counter() - t0
    cfg = config_from_dict({"rounds": rounds, "clients_per_round": per_round, "eval_every": 10**6,
                            "data": {"features": ["user"] if private else ["item"]},  # the data is given, not read
                            "model": {"embedding_dim": 16, "dense_arch": [16], "over_arch": [16],
                                      "private": ["user"] if private else []}})
    spot = None
    with ClientPool.from_config(cfg) as pool:
        pool.set_data(data)
        idle_mb = sum(pool.memory_mb())  # actors holding the data, before any model or client state
        run = FederatedRun(cfg, data, pool)
        loop = RoundLoop(pool, [run], rounds=rounds + 1, eval_every=10**6)  # no evaluation in the timed rounds
        loop.round(1)  # warm-up: actors cache their first clients, Ray warms its transport
        t = time.perf_counter()
        for r in range(2, rounds + 1):
            loop.round(r)
        wall = time.perf_counter() - t
        updates = sum(h["client_updates"] for h in run.history[1:])
        actor_mb = sum(pool.memory_mb())
        if private:
            spot = spot_check(run, pool, rounds)
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
        "actors_idle_mb": idle_mb,
        "private_bytes_per_client": 16 * 4 if private else 0,
        "state_mb_per_1k_clients": 1000 * (actor_mb - idle_mb) / num_clients,
        "spot_check": spot,
    }


def spot_check(run, pool, rounds: int) -> dict:
    """Train one client twice more, alone, and check its private row moved on from where its last
    participation left it (not from the initial row)."""
    import numpy as np

    client = int(run.select(rounds + 1)[0][0])
    actor = int(client % len(pool.actors))
    user_row = client + 1
    table = run.private_tables[0]

    def row() -> np.ndarray:
        part = pool.export_private(run.key)[actor][table]
        return part["rows"][np.searchsorted(part["ids"], user_row)].copy()

    init = run.state[table][user_row].numpy().copy()
    seeds = [run.seed_of(rounds + 1, client)]
    config = run.strategy.fit_config()
    rows = []
    for r in (rounds + 1, rounds + 2):
        pool.gather(pool.submit(run.key, np.array([client]), config, seeds, run.pipeline_ref(), r))
        rows.append(row())
    # Same seed, same global model: a restart from the initial row would reproduce the first result.
    return {"client": client, "moved_after_first": bool(not np.allclose(rows[0], init)),
            "continued_from_first": bool(not np.allclose(rows[1], rows[0]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="1000,10000,100000")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=100)
    ap.add_argument("--max-cardinality", type=int, default=20_000)
    ap.add_argument("--rows-per-client", type=int, default=10)
    ap.add_argument("--private-user", action="store_true", help="every client keeps a private user embedding")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/bench_scale")
    args = ap.parse_args()
    if args.quick:
        args.clients, args.rounds, args.per_round = "1000,5000", 3, 50
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ensure_ray(num_cpus=os.cpu_count())
    rows = [measure(int(n), args.rounds, args.per_round, args.max_cardinality, args.private_user, args.rows_per_client)
            for n in args.clients.split(",")]
    base = rows[0]["client_updates_per_second"]
    print(f"{'clients':>9} {'rows':>9} {'updates':>8} {'wall s':>7} {'updates/s':>10} {'vs first':>8} {'driver MB':>9} {'actors MB':>9}")
    for r in rows:
        r["ratio_vs_smallest"] = r["client_updates_per_second"] / base
        print(f"{r['clients']:>9,} {r['train_rows']:>9,} {r['client_updates']:>8} {r['wall_seconds']:>7.2f} "
              f"{r['client_updates_per_second']:>10.0f} {r['ratio_vs_smallest']:>8.2f} {r['driver_rss_mb']:>9.0f} {r['actors_rss_mb']:>9.0f}")
    worst = min(r["ratio_vs_smallest"] for r in rows)
    verdict = "met" if worst >= 0.5 else "NOT met"
    print(f"target (updates/s within 2x from smallest to largest population): {verdict} (worst ratio {worst:.2f})")
    for r in rows:
        if r["spot_check"]:
            print(f"{r['clients']:,} clients: actors' state beyond their data {r['state_mb_per_1k_clients']:.2f} MB per 1k clients; "
                  f"spot check (client {r['spot_check']['client']}): row moved {r['spot_check']['moved_after_first']}, "
                  f"second participation continued from the first {r['spot_check']['continued_from_first']}")
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
