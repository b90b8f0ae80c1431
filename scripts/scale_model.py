"""A scale model, measured: per-update costs fitted on one node, checked on a 3-node Ray, projected
to 10M and 100M clients.

    .venv/bin/python scripts/scale_model.py            # measure (~30 min on a busy 2-core machine), fit, project
    .venv/bin/python scripts/scale_model.py --refit    # fit and project the measurements already saved
    .venv/bin/python scripts/scale_model.py --quick    # tiny populations (smoke test)

What runs (synthetic Criteo-like clients, ``bench_scale.measure``, rounds of FedAvg without evaluation):
  sweep    1k, 10k, 100k, 1M clients on one node, 2 actors, the same clients per round
  updates  one population at several clients per round (separates per-round from per-update costs)
  actors   one population with 4 actors on one node (separates per-actor from per-round costs)
  cluster  100k clients on 1, 2 and 3 local Ray nodes (``ray.cluster_utils.Cluster``), one actor each
  memory   100k clients with 10 rows each on 2 and 4 actors: each actor's data memory (RSS above
           the booted actor's), the issue's per-actor target

The model (``fit``) is linear, every coefficient non-negative (a cost cannot be negative), fitted
by least squares over the one-node runs; the 2- and 3-node runs are held out and predicted
(``predict_wall``). ``project`` sizes a cluster of stated nodes for 10M and 100M clients. Each
measurement is saved as it completes (``measurements.json``), so an interrupted run resumes with
``--resume``. The model and the projection are in ``_scale_cost.py``. See docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from _scale_cost import (
    MB,
    CostModel,
    NodeSpec,
    Projection,
    _share,
    _updates,
    driver_bottleneck,
    fit,
    predict_wall,
    project,
)

ROOT = Path(__file__).resolve().parents[1]


# --- measuring ---
@dataclass
class Spec:
    label: str
    kind: str  # sweep | updates | actors | cluster | memory
    clients: int
    per_round: int
    rows_per_client: int
    nodes: int = 0  # 0: a local Ray on this machine; N: a ray.cluster_utils.Cluster of N nodes
    actors: int | None = None
    actor_cpus: float = 1.0


def plan(a: argparse.Namespace) -> list[Spec]:
    rpc = a.rows_per_client
    specs = [Spec(f"sweep-{n}", "sweep", n, a.per_round, rpc) for n in a.clients]
    specs += [Spec(f"updates-{u}", "updates", a.updates_clients, u, rpc) for u in a.updates_sweep]
    specs += [Spec(f"actors-{a.actors_clients}-A4", "actors", a.actors_clients, a.per_round, rpc, actors=4, actor_cpus=0.5)]
    specs += [Spec(f"memory-A{k}", "memory", a.memory_clients, a.per_round, a.memory_rows_per_client, actors=k,
                   actor_cpus=2 / k) for k in a.memory_actors]
    specs += [Spec(f"cluster-{n}", "cluster", a.cluster_clients, a.per_round, rpc, nodes=n, actor_cpus=a.cpus_per_node)
              for n in a.nodes]
    return specs


@contextmanager
def ray_for(nodes: int, cpus_per_node: float, local_cpus: int):
    """A local Ray (nodes == 0) or a Cluster of ``nodes`` nodes on this machine, joined by the driver."""
    import ray

    from fedrec.runtime.ray_runtime import ensure_ray

    if nodes == 0:
        # address="local": a Ray of our own even when another `ray start` instance runs on this machine
        ray.init(address="local", num_cpus=local_cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        ensure_ray()  # (up already: makes the driver's torch single-threaded)
        yield
        ray.shutdown()
        return
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus_per_node})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus_per_node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    ensure_ray()  # (joined already: makes the driver's torch single-threaded)
    try:
        yield
    finally:
        ray.shutdown()
        cluster.shutdown()


def measure_all(specs: list[Spec], a: argparse.Namespace, out: Path, done: dict) -> dict:
    from bench_scale import measure

    from data_pipeline.atomic import write_json_atomic

    started = time.perf_counter()
    for group in sorted({s.nodes for s in specs}):
        todo = [s for s in specs if s.nodes == group and s.label not in done]
        if not todo:
            continue
        with ray_for(group, a.cpus_per_node, a.local_cpus):
            for s in todo:
                print(f"[{time.perf_counter() - started:6.0f}s] {s.label}: {s.clients:,} clients x {s.rows_per_client} rows, "
                      f"{s.per_round} per round, {'local' if not s.nodes else f'{s.nodes} nodes'} "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
                t = time.perf_counter()
                r = measure(s.clients, a.rounds, s.per_round, a.max_cardinality, rows_per_client=s.rows_per_client,
                            num_actors=s.actors, actor_num_cpus=s.actor_cpus, per_client_rounds=a.per_client_rounds)
                r.update(label=s.label, kind=s.kind, spec=asdict(s), measure_seconds=time.perf_counter() - t)
                done[s.label] = r
                write_json_atomic(out / "measurements.json", {"machine": machine(), "runs": done})
                ph = r["phases"]["pre_aggregated"]
                print(f"         {r['measure_seconds']:.0f}s: {ph['wall_seconds'] / ph['rounds']:.2f} s/round, "
                      f"actors {ph['actor_cpu_seconds'] / ph['client_updates'] * 1e3:.1f} CPU-ms/update, "
                      f"{r['nodes']} node(s) {r['actors_per_node']}, data/actor {np.mean(r['actor_data_mb']):.0f} MB, "
                      f"load {r['load_avg_after'][0]:.1f}", flush=True)
    return done


def machine() -> dict:
    import psutil

    return {"cpus": os.cpu_count(), "memory_gb": psutil.virtual_memory().total / 2**30, "load_avg": os.getloadavg()}


# --- report ---
def check(m: CostModel, runs: dict, cores: int, kind: str = "cluster") -> list[dict]:
    """Each cluster run's measured seconds per round against the model's prediction: at the CPU
    share measured between its rounds, and at the fitted runs' mean share."""
    out = []
    for r in sorted((r for r in runs.values() if r["kind"] == kind), key=lambda r: r["spec"]["nodes"]):
        ph = r["phases"]["pre_aggregated"]
        p = predict_wall(m, _updates(r), r["actors"], r["clients"], cores, _share(r, "pre_aggregated", "one"),
                         _share(r, "pre_aggregated", "actors"))
        plain = predict_wall(m, _updates(r), r["actors"], r["clients"], cores)
        measured = ph["wall_seconds"] / ph["rounds"]
        out.append({"nodes": r["nodes"], "actors_per_node": r["actors_per_node"], "measured_s": measured,
                    "predicted_s": p["wall"], "error": p["wall"] / measured - 1, "predicted": p,
                    "cpu_share_one": _share(r, "pre_aggregated", "one"),
                    "cpu_share_actors": _share(r, "pre_aggregated", "actors"),
                    "predicted_at_fit_share_s": plain["wall"], "error_at_fit_share": plain["wall"] / measured - 1,
                    "measured": {"train": ph["train"] / ph["rounds"],
                                 "driver": (ph["aggregate"] + ph["server_step"]) / ph["rounds"]},
                    "in_fit": r["spec"]["nodes"] == 1, "load_avg": ph["load_avg"]})
    return out


def memory_target(runs: dict, old_mb: float = 535.0) -> dict:
    """Per-actor data memory (RSS above the booted actor's, once its data arrived) of the memory runs;
    the target: with 4 actors at most a third of ``old_mb``. Also each actor's RSS above its booted
    size after the timed rounds (data pages read, model, trainer, client state) and the bytes of its
    data's arrays (zero-copy from the object store: in RSS only once read)."""
    per = {r["actors"]: {"clients": r["clients"], "rows_per_client": r["rows_per_client"],
                         "data_mb_per_actor": r["actor_data_mb"], "mean_mb": float(np.mean(r["actor_data_mb"])),
                         "after_rounds_mb_per_actor": [d + m for d, m in zip(r["actor_data_mb"], r["actor_model_mb"])],
                         "data_arrays_mb_per_actor": [b / MB for b in r.get("actor_data_bytes", [])],
                         "boot_mb_per_actor": r["actor_boot_mb"], "load_avg": r["load_avg_after"]}
           for r in runs.values() if r["kind"] == "memory"}
    four = per.get(4)
    return {"by_actors": per, "old_mb": old_mb, "target_mb": old_mb / 3,
            "met": None if four is None else max(four["data_mb_per_actor"]) <= old_mb / 3}


def _print_check(c: dict) -> None:
    print(f"  {c['nodes']} node(s) {c['actors_per_node']}: measured {c['measured_s']:.2f}, model {c['predicted_s']:.2f} "
          f"({c['error']:+.0%}) at the run's CPU share {c['cpu_share_actors']:.2f}, {c['predicted_at_fit_share_s']:.2f} "
          f"({c['error_at_fit_share']:+.0%}) at the fit's{' (in the fit)' if c['in_fit'] else ''}, load {c['load_avg'][0]:.1f}")


def runs_table(runs: dict) -> str:
    """The measurements, one line a run (per round: pre-aggregated rounds; per-client: their driver)."""
    lines = ["| run | clients | rows/client | per round | actors (per node) | s/round | actor CPU ms/update | "
             "driver ms/round: pre-agg / per-client | KiB up/update | MB data/actor | load 1 min | CPU share |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs.values():
        ph, pc = r["phases"]["pre_aggregated"], r["phases"].get("per_client")
        n = ph["rounds"]
        pcs = f"{1e3 * (pc['aggregate'] + pc['server_step']) / pc['rounds']:.0f}" if pc else "-"
        lines.append(f"| {r['label']} | {r['clients']:,} | {r['rows_per_client']} | {ph['client_updates'] / n:.0f} | "
                     f"{r['actors']} ({', '.join(map(str, r['actors_per_node']))}) | {ph['wall_seconds'] / n:.2f} | "
                     f"{1e3 * ph['actor_cpu_seconds'] / ph['client_updates']:.1f} | "
                     f"{1e3 * (ph['aggregate'] + ph['server_step']) / n:.0f} / {pcs} | "
                     f"{ph['bytes_up'] / ph['client_updates'] / 1024:.1f} | {np.mean(r['actor_data_mb']):.0f} | "
                     f"{ph['load_avg'][0]:.1f} | {_share(r, 'pre_aggregated', 'actors'):.2f} |")
    return "\n".join(lines)


def table(projections: list[Projection]) -> str:
    head = ("| clients | per round | nodes (memory) | actors | GB/node | driver GB | train s | driver bookkeeping s | "
            "driver aggregation s: per-client / per-actor / per-node | round s: per-client / per-actor / per-node |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for p in projections:
        lines.append(f"| {p.clients:,} | {p.per_round:,} | {p.nodes} ({p.nodes_for_memory}) | {p.actors:,} | "
                     f"{p.memory_per_node_gb:.1f} | {p.driver_memory_gb:.1f} | {p.train_s:.1f} | {p.other_s:.1f} | "
                     f"{p.driver_per_client_s:.1f} / {p.driver_per_actor_s:.1f} / {p.driver_per_node_s:.2f} | "
                     f"{p.wall_per_client_s:.1f} / {p.wall_per_actor_s:.1f} / {p.wall_per_node_s:.1f} |")
    return "\n".join(lines)


def plot(m: CostModel, checks: list[dict], runs: dict, node: NodeSpec, cores: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    fitted = [r for r in runs.values() if r["kind"] in ("sweep", "updates", "actors")
              or (r["kind"] == "cluster" and r["spec"]["nodes"] == 1)]
    xs, meas, pred = [], [], []
    for r in fitted:
        ph = r["phases"]["pre_aggregated"]
        xs.append({"sweep": f"P={r['clients']:,}", "updates": f"U={r['per_round']}", "actors": f"A={r['actors']}",
                   "cluster": "1 node"}[r["kind"]])
        meas.append(ph["wall_seconds"] / ph["rounds"])
        pred.append(predict_wall(m, _updates(r), r["actors"], r["clients"], cores, _share(r, "pre_aggregated", "one"),
                                 _share(r, "pre_aggregated", "actors"))["wall"])
    for c in (c for c in checks if not c["in_fit"]):
        xs.append(f"{c['nodes']} node{'s' if c['nodes'] > 1 else ''}")
        meas.append(c["measured_s"])
        pred.append(c["predicted_s"])
    pos = np.arange(len(xs))
    held = np.array([x.endswith("nodes") for x in xs])
    ax.bar(pos, meas, color=np.where(held, "tab:orange", "tab:blue"), alpha=0.6, label="measured")
    ax.plot(pos, pred, "k_", markersize=18, mew=2, label="model")
    ax.set_xticks(pos, xs, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("seconds per round (this machine)")
    ax.set_title("fit (blue) and held-out 2-3 node runs (orange)", fontsize=9)
    ax.legend(fontsize=8)
    clients = 100_000_000
    us = np.unique(np.geomspace(1_000, 1_000_000, 60).astype(np.int64))
    ps = [project(m, clients, int(u), node) for u in us]
    bx.plot(us, [p.train_s for p in ps], label="actors' phase (nodes added to fit the target)")
    bx.plot(us, [p.driver_per_client_s for p in ps], label="driver: per-client updates")
    bx.plot(us, [p.driver_per_actor_s for p in ps], label="driver: one sum per actor")
    bx.plot(us, [p.driver_per_node_s for p in ps], "--", label="driver: one sum per node (modelled)")
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xlabel("clients per round (100M clients)")
    bx.set_ylabel("seconds per round")
    bx.set_title(f"projection: {node.cores}-core / {node.memory_gb:.0f} GB nodes", fontsize=9)
    bx.grid(alpha=0.3, which="both")
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)

    def ints(s: str) -> list[int]:
        return [int(x) for x in s.split(",") if x]

    ap.add_argument("--clients", type=ints, default=ints("1000,10000,100000,1000000"), help="the one-node sweep")
    ap.add_argument("--per-round", type=int, default=200)
    ap.add_argument("--rows-per-client", type=int, default=2)
    ap.add_argument("--updates-clients", type=int, default=10_000)
    ap.add_argument("--updates-sweep", type=ints, default=ints("50,600,1500"), help="clients per round, at --updates-clients")
    ap.add_argument("--actors-clients", type=int, default=100_000)
    ap.add_argument("--cluster-clients", type=int, default=100_000)
    ap.add_argument("--nodes", type=ints, default=ints("1,2,3"))
    ap.add_argument("--cpus-per-node", type=float, default=1.0)
    ap.add_argument("--memory-clients", type=int, default=100_000)
    ap.add_argument("--memory-rows-per-client", type=int, default=10)
    ap.add_argument("--memory-actors", type=ints, default=ints("2,4"))
    ap.add_argument("--rounds", type=int, default=4, help="per run: a warm-up round, then the timed ones")
    ap.add_argument("--per-client-rounds", type=int, default=2)
    ap.add_argument("--max-cardinality", type=int, default=20_000)
    ap.add_argument("--local-cpus", type=int, default=os.cpu_count())
    ap.add_argument("--node-cores", type=int, default=32)
    ap.add_argument("--node-memory-gb", type=float, default=128.0)
    ap.add_argument("--nic-gbps", type=float, default=10.0)
    ap.add_argument("--target-train-s", type=float, default=30.0)
    ap.add_argument("--refit", action="store_true", help="no measuring: fit and project measurements.json")
    ap.add_argument("--resume", action="store_true", help="keep the runs measurements.json has; measure the rest")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/scale_model")
    ap.add_argument("--docs-img", default=None, help="also copy the plot here (e.g. docs/img/scale_model.png)")
    a = ap.parse_args(argv)
    if a.quick:
        a.clients, a.per_round, a.updates_clients, a.updates_sweep = [300, 1000], 20, 1000, [60]
        a.actors_clients = a.cluster_clients = a.memory_clients = 1000
        a.nodes, a.memory_actors, a.rounds, a.per_client_rounds = [1, 2], [2, 4], 2, 1
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "measurements.json"
    done = json.loads(saved.read_text())["runs"] if (a.refit or a.resume) and saved.exists() else {}
    if not a.refit:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        done = measure_all(plan(a), a, out, done)
    report(done, a, out)


def report(runs: dict, a: argparse.Namespace, out: Path) -> None:
    from data_pipeline.atomic import write_json_atomic

    cores = a.local_cpus
    in_fit = [r for r in runs.values() if r["kind"] in ("sweep", "updates", "actors")
              or (r["kind"] == "cluster" and r["spec"]["nodes"] == 1)]
    m = fit(in_fit, cores, list(runs.values()))
    checks = check(m, runs, cores)
    earlier = check(m, runs, cores, "cluster_try1")  # an earlier attempt, kept and reported
    node = NodeSpec(a.node_cores, a.node_memory_gb, nic_gbps=a.nic_gbps, target_train_s=a.target_train_s)
    projections = [project(m, p, u, node) for p in (10_000_000, 100_000_000) for u in (10_000, 100_000)]
    bottleneck = {str(p): {mode: driver_bottleneck(m, p, node, mode) for mode in ("per_client", "per_actor", "per_node")}
                  for p in (10_000_000, 100_000_000)}
    mem = memory_target(runs)
    print("\n" + runs_table(runs))
    print("\nfitted (per round; U updates, A actors, P clients):")
    for f in fields(m):
        print(f"  {f.name:22} {getattr(m, f.name)}")
    for title, rows in (("earlier attempt", earlier), ("3-node check", checks)):
        if rows:
            print(f"\n{title} (seconds per round on this machine):")
        for c in rows:
            _print_check(c)
    three = next((c for c in checks if c["nodes"] == 3), None)
    if three is not None:
        print(f"  target (3 nodes within 25%): {'met' if abs(three['error']) <= 0.25 else 'NOT met'}")
    print(f"\nprojection ({node.cores} cores, {node.memory_gb:.0f} GB per node, {node.nic_gbps:.0f} Gb/s driver link, "
          f"actors' phase <= {node.target_train_s:.0f} s):\n" + table(projections))
    print(f"driver's aggregation slower than the actors' phase from (clients per round): {bottleneck}")
    for k, v in sorted(mem["by_actors"].items()):
        print(f"data memory per actor, {v['clients']:,} clients x {v['rows_per_client']} rows, {k} actors: "
              f"{', '.join(f'{x:.0f}' for x in v['data_mb_per_actor'])} MB (after the rounds "
              f"{', '.join(f'{x:.0f}' for x in v['after_rounds_mb_per_actor'])}; its arrays "
              f"{', '.join(f'{x:.0f}' for x in v['data_arrays_mb_per_actor'])})")
    if mem["met"] is not None:
        print(f"target (4 actors: at most {mem['target_mb']:.0f} MB each): {'met' if mem['met'] else 'NOT met'}")
    write_json_atomic(out / "scale_model.json", {
        "machine": machine(), "cores": cores, "model": asdict(m), "check": checks, "check_earlier_attempt": earlier,
        "three_node_target_met": None if three is None else abs(three["error"]) <= 0.25,
        "node": asdict(node), "projections": [asdict(p) for p in projections], "driver_bottleneck": bottleneck,
        "memory": mem, "runs": runs}, option="--out")
    plot(m, checks, runs, node, cores, out / "scale_model.png")
    if a.docs_img:
        shutil.copyfile(out / "scale_model.png", a.docs_img)
    print(f"wrote {out / 'scale_model.json'} and {out / 'scale_model.png'}")


if __name__ == "__main__":
    main()
