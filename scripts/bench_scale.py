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

``measure`` also clocks where each round's time goes (``phases``: the wait for the actors, the
driver's aggregation and server step, its bookkeeping; the actors' CPU-seconds; the bytes between
driver and actors) and each actor's memory before and after it received its data, optionally
repeating the rounds with per-client updates instead of the actors' pre-aggregated sums:
``scripts/scale_model.py`` fits its cost model to these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import psutil
import ray
from _fedbench import comma_list

from fedrec.config import config_from_dict
from fedrec.runtime import ClientPool, FederatedRun, RoundLoop
from fedrec.runtime.ray_runtime import ensure_ray
from fedrec.synthetic import synthetic_federated_data


class TimedRun(FederatedRun):
    """A sync run that clocks the driver's side of each round (``clock``, totals since the last
    clear): selection (``plan``), submission, the wait for the actors to train and their results to
    arrive (``train``), the aggregation of what arrived and the server step (wall seconds, and
    ``*_cpu`` the driver thread's CPU-seconds), and the bytes that crossed between driver and actors
    (``arrival_bytes`` in, ``change_bytes``: the state change broadcast, counted once)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.clock: dict[str, float] = defaultdict(float)
        self._submitted = time.perf_counter()

    @contextmanager
    def _timed(self, name: str):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.clock[name] += time.perf_counter() - wall
            self.clock[name + "_cpu"] += time.thread_time() - cpu

    def plan(self, rnd):
        with self._timed("plan"):
            return super().plan(rnd)

    def submit(self, pool, sub, rnd):
        with self._timed("submit"):
            out = super().submit(pool, sub, rnd)
        self._submitted = time.perf_counter()
        return out

    def finish(self, rnd, plan, gathered):
        self.clock["train"] += time.perf_counter() - self._submitted  # the loop gathers before it calls finish
        with self._timed("finish"):
            return super().finish(rnd, plan, gathered)

    def aggregate(self, rnd, arrivals):
        self.clock["arrivals"] += len(arrivals)
        self.clock["arrival_bytes"] += sum(a.aggregate.nbytes() if a.updates is None else sum(u.nbytes() for u in a.updates)
                                           for a in arrivals)
        with self._timed("aggregate"):
            return super().aggregate(rnd, arrivals)

    def apply(self, rnd, update):
        with self._timed("server_step"):
            super().apply(rnd, update)
        if update.clients:  # StateChange.nbytes: every dense tensor, and per written row its id and values
            dense = sum(t.numel() * t.element_size() for n, t in self.state.items() if n not in self.layout.tables)
            rows = sum(len(r.ids) * (8 + self.state[n].shape[1] * self.state[n].element_size())
                       for n, r in update.sparse.items())
            self.clock["change_bytes"] += dense + rows


def actor_usage(pool: ClientPool) -> list[tuple[float, float]]:
    """(CPU-seconds so far, RSS MB) of each actor's process, asked in the actor's call order."""

    def usage(_actor) -> tuple[float, float]:  # defined here so that Ray ships it by value
        import psutil

        proc = psutil.Process()
        t = proc.cpu_times()
        return t.user + t.system, proc.memory_info().rss / 2**20

    return ray.get([a.__ray_call__.remote(usage) for a in pool.actors])


def _nbytes_fn():
    """A function counting the bytes of the numpy arrays reachable from an object (through dicts,
    lists, tuples and attributes); made here, nested, so that Ray ships it to actors by value."""

    def nbytes(obj) -> int:
        import numpy as np

        seen, stack, total = set(), [obj], 0
        while stack:
            o = stack.pop()
            if id(o) in seen:
                continue
            seen.add(id(o))
            if isinstance(o, np.ndarray):
                total += o.nbytes
            elif isinstance(o, dict):
                stack.extend(o.values())
            elif isinstance(o, (list, tuple)):
                stack.extend(o)
            elif hasattr(o, "__dict__"):
                stack.extend(vars(o).values())
        return total

    return nbytes


def actor_data_bytes(pool: ClientPool) -> list[int]:
    """Bytes of the arrays each actor's data holds (its ``ActorData``): in its RSS once touched, and
    in the object store of its node (zero-copy: pages not yet read are not in the actor's RSS)."""
    return ray.get([a.__ray_call__.remote(lambda actor, count: count(actor.extra), _nbytes_fn()) for a in pool.actors])


_SPIN = "import time\nend = time.perf_counter() + {s}\nc = time.process_time()\nwhile time.perf_counter() < end: pass\nprint(time.process_time() - c)"


def cpu_share(seconds: float = 1.0, procs: int | None = None) -> float:
    """The share of a core a busy process gets on this machine now (1: the machine is ours): ``procs``
    processes (default: one per CPU) spin for ``seconds`` and report the CPU time they got. On a
    shared machine it turns wall seconds into the seconds the same work takes on a free one."""
    procs = procs or os.cpu_count() or 1
    spinners = [subprocess.Popen([sys.executable, "-S", "-c", _SPIN.format(s=seconds)], stdout=subprocess.PIPE, text=True)
                for _ in range(procs)]
    return min(1.0, sum(float(p.communicate()[0]) for p in spinners) / (procs * seconds))


def _shares(pool: ClientPool) -> tuple[float, float]:
    """(``cpu_share`` of one process: the driver's; of as many as the actors can use at once)."""
    return cpu_share(0.5, 1), cpu_share(0.5, min(len(pool.actors), os.cpu_count() or 1))


def _timed_rounds(loop: RoundLoop, run: TimedRun, pool: ClientPool, rounds: range) -> dict:
    """Run ``rounds``; per-phase totals over them (see ``TimedRun``), the actors' CPU-seconds, the
    machine's load average (1, 5, 15 min) at the end and its free CPU share before each round and
    after the last (``cpu_share``: for one process, and for as many as the actors)."""
    shares = [_shares(pool)]
    run.clock.clear()
    first = len(run.history)
    cpu, wall = sum(c for c, _ in actor_usage(pool)), 0.0
    for r in rounds:
        t = time.perf_counter()
        loop.round(r)
        wall += time.perf_counter() - t
        shares.append(_shares(pool))  # between rounds: the load changes within a run
    rows = run.history[first:]
    cpu = sum(c for c, _ in actor_usage(pool)) - cpu
    return {"rounds": len(rows), "client_updates": sum(h["client_updates"] for h in rows), "wall_seconds": wall,
            "actor_cpu_seconds": cpu, "bytes_up": sum(h["bytes_up"] for h in rows),
            "bytes_down": sum(h["bytes_down"] for h in rows), **dict(run.clock), "load_avg": os.getloadavg(),
            "cpu_share_one": [s[0] for s in shares], "cpu_share_actors": [s[1] for s in shares]}


def measure(num_clients: int, rounds: int, per_round: int, max_cardinality: int, private: bool = False,
            rows_per_client: int = 10, *, num_actors: int | None = None, actor_num_cpus: float = 1.0,
            per_client_rounds: int = 0) -> dict:
    """One population: rounds 2..``rounds`` timed (round 1 warms up), then ``per_client_rounds``
    more with per-client updates (the actors do not pre-aggregate; ``phases["per_client"]``)."""
    driver = psutil.Process()
    load_before = os.getloadavg()
    rss_start = driver.memory_info().rss / 2**20
    t0 = time.perf_counter()
    data = synthetic_federated_data(num_clients, rows_per_client=rows_per_client, max_cardinality=max_cardinality,
                                    user_feature=private)
    load_s = time.perf_counter() - t0
    rss_data = driver.memory_info().rss / 2**20
    cfg = config_from_dict({"rounds": rounds, "clients_per_round": per_round, "eval_every": 10**6,
                            "num_actors": num_actors, "actor_num_cpus": actor_num_cpus,
                            "data": {"features": ["user"] if private else ["item"]},  # the data is given, not read
                            "model": {"embedding_dim": 16, "dense_arch": [16], "over_arch": [16],
                                      "private": ["user"] if private else []}})
    spot = None
    with ClientPool.from_config(cfg) as pool:
        idle = [mb for _, mb in actor_usage(pool)]  # booted actors (torch imported), no data yet
        pool.set_data(data)
        with_data = pool.memory_mb()
        held = actor_data_bytes(pool)
        idle_mb = sum(with_data)  # actors holding the data, before any model or client state
        rss_before_run = driver.memory_info().rss / 2**20
        run = TimedRun(cfg, data, pool)
        rss_run = driver.memory_info().rss / 2**20
        run_bytes = _nbytes_fn()([run.facts, run.tiers, run.clients, run.energy])  # the run's per-client arrays
        loop = RoundLoop(pool, [run], rounds=rounds + per_client_rounds + 1, eval_every=10**6)  # no evaluation in the timed rounds
        loop.round(1)  # warm-up: actors cache their first clients, Ray warms its transport
        phases = {"pre_aggregated": _timed_rounds(loop, run, pool, range(2, rounds + 1))}
        wall, updates = phases["pre_aggregated"]["wall_seconds"], phases["pre_aggregated"]["client_updates"]
        trained = pool.memory_mb()
        actor_mb = sum(trained)
        if private:
            spot = spot_check(run, pool, rounds)
        if per_client_rounds:
            run.pipeline.force_per_client, run._pipeline_ref = True, None  # actors now return every update
            phases["per_client"] = _timed_rounds(loop, run, pool, range(rounds + 1, rounds + 1 + per_client_rounds))
        placement = pool.placement()
    return {
        "clients": num_clients,
        "train_rows": len(data.train),
        "rows_per_client": rows_per_client,
        "per_round": per_round,
        "rounds_timed": rounds - 1,
        "client_updates": updates,
        "wall_seconds": wall,
        "client_updates_per_second": updates / wall if wall else float("nan"),
        "load_seconds": load_s,
        "driver_rss_mb": driver.memory_info().rss / 2**20,
        "actors_rss_mb": actor_mb,
        "model_mb": run.facts.model_bytes / 2**20,
        "actors_idle_mb": idle_mb,
        "private_bytes_per_client": 16 * 4 if private else 0,
        "state_mb_per_1k_clients": 1000 * (actor_mb - idle_mb) / num_clients,
        "spot_check": spot,
        "actors": len(idle),
        "actor_num_cpus": actor_num_cpus,
        "nodes": len(placement),
        "actors_per_node": sorted(placement.values()),
        "actor_boot_mb": idle,  # per actor: booted, before its data
        "actor_data_mb": [w - i for w, i in zip(with_data, idle)],  # per actor: RSS its data added
        "actor_model_mb": [t - w for t, w in zip(trained, with_data)],  # per actor: model, trainer, client state
        "actor_data_bytes": held,  # per actor: the arrays of its data (resident or not)
        "data_bytes": _nbytes_fn()(data),  # the arrays of the whole population's data (the driver's copy)
        "driver_start_mb": rss_start,
        "driver_data_mb": rss_data - rss_start,
        "driver_run_mb": rss_run - rss_before_run,  # the run's per-client facts, model and pipeline
        "driver_run_bytes": run_bytes,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "phases": phases,
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
    ap.add_argument("--clients", type=comma_list(int), default="1000,10000,100000")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=100)
    ap.add_argument("--max-cardinality", type=int, default=20_000)
    ap.add_argument("--rows-per-client", type=int, default=10)
    ap.add_argument("--private-user", action="store_true", help="every client keeps a private user embedding")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/bench_scale")
    args = ap.parse_args()
    if args.quick:
        args.clients, args.rounds, args.per_round = [1000, 5000], 3, 50
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ensure_ray(num_cpus=os.cpu_count())
    rows = [measure(n, args.rounds, args.per_round, args.max_cardinality, args.private_user, args.rows_per_client)
            for n in args.clients]
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
