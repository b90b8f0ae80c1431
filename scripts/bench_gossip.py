"""Decentralized training: D-PSGD, CHOCO-SGD and PowerGossip across topologies, with sync FedAvg
(same local training, same number of clients training per round) as the reference.

ML-100K (configs/ml100k_gossip.yaml, 943 nodes): every algorithm on ring, torus and exponential
graphs. Last.fm (configs/lastfm_gossip_social.yaml, 1,892 nodes over the real friendship graph): the
same algorithms on topology social.

CHOCO-SGD's setting (the exchange's top-k fraction, the consensus step gamma, and the codec of the
update messages a trained node sends its neighbours: none or int8 rows) is chosen per workload on
its last topology at seed 0, on the averaged model's *validation* AUC, among the grid points that
send at least 50x fewer bytes per node than D-PSGD there (the target's budget; bytes need no held
out data). If none does, the best validation AUC overall. The chosen setting then runs on every
topology and seed of that workload.

Each run reports the averaged model's validation and test AUC, the mean and worst node's test AUC,
bytes sent per node and the consensus distance per round; the table gives mean +- sd over seeds
and each algorithm's bytes against D-PSGD's on the same graph, and checks the target: a compressed
algorithm within 0.01 test AUC (averaged model, mean over seeds) of D-PSGD with at least 50x fewer
bytes per node. Runs are cached under OUT/runs/ (named with their rounds and nodes per round).

The shipped configs (60 rounds of all 943 ML-100K nodes; 30 rounds of 400 of Last.fm's 1,892) are
hours of work on a 2-core machine; ``--rounds`` and ``--per-round`` bound a run (one number for
every workload, or per workload: ``ml100k=20,lastfm=10``) and the bounds go into the JSON and the
table's heading.

    .venv/bin/python scripts/bench_gossip.py                       # ML-100K + Last.fm, 3 seeds
    .venv/bin/python scripts/bench_gossip.py --workloads ml100k --seeds 0
    .venv/bin/python scripts/bench_gossip.py --topologies exponential,social --seeds "ml100k=0,1,2 lastfm=0"
        --rounds ml100k=30,lastfm=10 --per-round ml100k=300,lastfm=200   # (one line) ~1 h on 2 cores
    .venv/bin/python scripts/bench_gossip.py --quick --out /tmp/bg  # a smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fedbench import cached_result, config, print_table, pyplot  # noqa: E402

from data_pipeline.atomic import atomic_path, write_json_atomic  # noqa: E402
from data_pipeline.errors import FedrecError  # noqa: E402
from fedrec.algorithms import run_config  # noqa: E402
from fedrec.runtime import ClientPool, load_federated_data  # noqa: E402

WORKLOADS = {"ml100k": ("ml100k_gossip.yaml", ("ring", "torus", "exponential")),
             "lastfm": ("lastfm_gossip_social.yaml", ("social",))}
# (top-k fraction, gamma, codec of the update messages)
CHOCO_GRID = [(f, g, u) for f in (0.005, 0.01) for g in (0.05, 0.2) for u in ("none", "int8")]
TARGET_AUC, TARGET_FEWER = 0.01, 50.0  # within this AUC of D-PSGD, with at least this many x fewer bytes


def choco_label(choco: tuple[float, float, str]) -> str:
    fraction, gamma, updates = choco
    return f"CHOCO top-{fraction:.1%} g={gamma}" + (f" + {updates} updates" if updates != "none" else "")


def algorithms(choco: tuple[float, float, str], rank: int) -> dict[str, tuple[dict, dict]]:
    """Method -> (its ``gossip`` section, the run's ``compression`` section: the update messages)."""
    fraction, gamma, updates = choco
    plain = {"method": "none"}
    return {"D-PSGD": ({"algorithm": "dpsgd", "compression": {"method": "none"}}, plain),
            choco_label(choco): ({"algorithm": "choco", "consensus_lr": gamma,
                                  "compression": {"method": "topk", "fraction": fraction}}, {"method": updates}),
            f"PowerGossip r={rank}": ({"algorithm": "powergossip", "compression": {"method": "powersgd", "rank": rank}}, plain)}


def per_workload(value: str | None, option: str) -> dict[str, int]:
    """``--rounds 20`` (every workload) or ``--rounds ml100k=20,lastfm=10``: workload -> N."""
    given = {}
    for part in (value or "").split(",") if value else []:
        key, _, num = part.rpartition("=")
        if key and key not in WORKLOADS:
            raise SystemExit(f"{option}: unknown workload {key!r}; expected one of {sorted(WORKLOADS)}")
        try:
            given[key or "*"] = int(num)
        except ValueError:
            raise SystemExit(f"{option}: expected N or WORKLOAD=N[,...], got {value!r}") from None
    return {w: given.get(w, given.get("*")) for w in WORKLOADS if given.get(w, given.get("*")) is not None}


def per_workload_seeds(value: str, ap) -> dict[str, list[int]]:
    """``--seeds 0,1,2`` (every workload) or ``--seeds "ml100k=0,1,2 lastfm=0"``: workload -> seeds."""
    groups = value.split()
    try:
        if all("=" not in g for g in groups):
            return dict.fromkeys(WORKLOADS, [int(x) for x in value.replace(" ", ",").split(",") if x])
        given = {w: [int(x) for x in seeds.split(",")] for w, _, seeds in (g.partition("=") for g in groups)}
    except ValueError:
        ap.error(f"--seeds: expected 0,1,2 or 'ml100k=0,1,2 lastfm=0', got {value!r}")
    if set(given) - set(WORKLOADS):
        ap.error(f"--seeds: unknown workload {sorted(set(given) - set(WORKLOADS))}; expected some of {sorted(WORKLOADS)}")
    return {w: given.get(w, [0]) for w in WORKLOADS}


def sent_per_node(r: dict, nodes: int) -> float:
    """Bytes a node sent over the run: gossip's own count; for FedAvg, a client's uploads (its
    downloads, the whole model each time, come on top)."""
    return r["bytes_per_node"] if "bytes_per_node" in r else r["bytes_up"] / nodes


def summarize(runs: dict[str, list[dict]], nodes: int) -> list[dict]:
    rows = []
    for (topology, name), rs in runs.items():
        def get(key: str, rs=rs) -> np.ndarray:
            return np.array([r.get(key, np.nan) for r in rs], dtype=float)

        def sd(key: str) -> float:
            v = get(key)
            return float(v.std(ddof=1)) if len(v) > 1 else float("nan")

        rows.append({"topology": topology, "method": name, "seeds": len(rs),
                     "val_auc": get("validation_auc").mean(), "test_auc": get("final_auc").mean(),
                     "test_sd": sd("final_auc"), "node_mean": get("node_auc_mean").mean(), "node_mean_sd": sd("node_auc_mean"),
                     "node_worst": get("node_auc_worst").mean(), "node_worst_sd": sd("node_auc_worst"),
                     "kb_per_node": np.mean([sent_per_node(r, nodes) for r in rs]) / 1e3,
                     "consensus": np.mean([next((h["consensus_distance"] for h in reversed(r["history"])
                                                 if "consensus_distance" in h), np.nan) for r in rs]),
                     "wall_s": get("wall_seconds").mean()})
    for r in rows:
        ref = next((x for x in rows if x["topology"] == r["topology"] and x["method"] == "D-PSGD"), None)
        if ref is not None and r["method"] != "FedAvg (sync)":
            r["vs_dpsgd_auc"] = r["test_auc"] - ref["test_auc"]
            r["vs_dpsgd_node"] = r["node_mean"] - ref["node_mean"]
            r["fewer_bytes"] = ref["kb_per_node"] / r["kb_per_node"]
            if r is not ref:
                r["target_met"] = bool(r["vs_dpsgd_auc"] >= -TARGET_AUC and r["fewer_bytes"] >= TARGET_FEWER)
    return rows


def run_workload(name: str, pool, data, seeds, out: Path, rounds: int | None, per_round: int | None, quick: bool,
                 node_rows: int, only: set[str] | None = None, choco: tuple[float, float, str] | None = None
                 ) -> tuple[list[dict], dict, tuple, dict]:
    """The workload's runs; CHOCO's setting is ``choco`` when given, else chosen here."""
    file, topologies = WORKLOADS[name]
    if only:  # keep the workload's order: CHOCO is tuned on the last one kept
        topologies = tuple(t for t in topologies if t in only) or topologies[-1:]
    if quick:
        topologies = topologies[-1:]
    over = {"plot": None, "gossip.node_eval_rows": node_rows}
    if rounds:
        over["rounds"] = rounds
    if per_round:
        over["clients_per_round"] = per_round
    base = config(file, **over)
    data = data or load_federated_data(base)
    pool.set_data(data)
    bounds = {"rounds": base.rounds, "clients_per_round": min(base.clients_per_round, data.num_clients),
              "nodes": data.num_clients, "eval_every": base.eval_every, "node_eval_rows": node_rows,
              "topologies": list(topologies), "seeds": list(seeds)}
    tag = f"{name}-r{base.rounds}-n{bounds['clients_per_round']}"  # cached runs of other sizes never mix
    run = lambda key, cfg, seed: cached_result(out, f"{tag}-{key}", seed,  # noqa: E731
                                               lambda: run_config(cfg.with_(seed=seed), data, pool, progress=True))
    def configured(topology: str, gossip: dict, updates: dict):
        return base.with_(gossip={**base.gossip.model_dump(mode="json"), **gossip, "topology": topology},
                          compression=updates)

    methods = algorithms(CHOCO_GRID[0], 1)
    tuning = {}
    if choco is None:  # on validation AUC, the last topology kept, within the bytes budget
        last = topologies[-1]
        reference = sent_per_node(run(f"{last}-D-PSGD", configured(last, *methods["D-PSGD"]), seeds[0]), data.num_clients)
        for point in CHOCO_GRID[:1] if quick else CHOCO_GRID:
            fraction, gamma, updates = point
            key = f"tune-choco-{fraction}-{gamma}" + (f"-{updates}" if updates != "none" else "") + f"-{last}"
            r = run(key, configured(last, *algorithms(point, 1)[choco_label(point)]), seeds[0])
            tuning[point] = {"validation_auc": r["validation_auc"],
                             "fewer_bytes": reference / sent_per_node(r, data.num_clients)}
        within = [p for p, t in tuning.items() if t["fewer_bytes"] >= TARGET_FEWER] or list(tuning)
        choco = max(within, key=lambda p: tuning[p]["validation_auc"])
    runs: dict[tuple[str, str], list[dict]] = {}
    for topology in topologies:
        for method, (gossip, updates) in algorithms(choco, 1).items():
            cfg = configured(topology, gossip, updates)
            runs[(topology, method)] = [run(f"{topology}-{method}", cfg, s) for s in seeds]
    fedavg = base.with_(mode="sync")
    runs[("-", "FedAvg (sync)")] = [run("fedavg", fedavg, s) for s in seeds]
    return summarize(runs, data.num_clients), runs, (choco, tuning), bounds


def plot(results: dict, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(len(results), 3, figsize=(15, 4 * len(results)), squeeze=False)
    for row, (workload, (_, runs, _, bounds)) in zip(axes, results.items()):
        for (topology, method), rs in runs.items():
            hist = rs[0]["history"]
            label = method if topology == "-" else f"{method} / {topology}"
            evals = [h for h in hist if "auc" in h]
            sent = np.cumsum([h.get("bytes_per_node", 0) for h in hist])
            by_round = {h["round"]: s for h, s in zip(hist, sent)}
            style = {"ls": "--", "color": "black"} if topology == "-" else {}
            row[0].plot([h["round"] for h in evals], [h["auc"] for h in evals], label=label, **style)
            if topology != "-":
                row[1].plot([by_round[h["round"]] / 1e6 for h in evals], [h["auc"] for h in evals], label=label)
                row[2].plot([h["round"] for h in hist], [h["consensus_distance"] for h in hist], label=label)
        title = f"{workload}: {bounds['rounds']} rounds, {bounds['clients_per_round']} of {bounds['nodes']} nodes train"
        row[0].set(xlabel="round", ylabel="test AUC (averaged model)", title=title)
        row[1].set(xlabel="MB sent per node", ylabel="test AUC (averaged model)", xscale="log")
        row[2].set(xlabel="round", ylabel="consensus distance", yscale="log")
        for ax in row:
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=6)
    fig.suptitle("Gossip: averaged-model AUC by round and by bytes, and consensus distance (seed 0)")
    fig.tight_layout()
    with atomic_path(path, (".png",), "--out") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def pm(mean: float, sd: float) -> str:
    if mean is None or np.isnan(mean):
        return "-"
    return f"{mean:.4f}" + ("" if sd is None or np.isnan(sd) else f" ± {sd:.4f}")


def main(argv: list[str] | None = None, pool: ClientPool | None = None, data=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="ml100k,lastfm")
    ap.add_argument("--seeds", default="0,1,2", help="0,1,2 (every workload) or 'ml100k=0,1,2 lastfm=0' (seed 0 "
                    "for a workload not named)")
    ap.add_argument("--rounds", default=None, help="override the configs' rounds: N, or ml100k=N,lastfm=M")
    ap.add_argument("--per-round", default=None,
                    help="override the nodes that train per round: N, or ml100k=N,lastfm=M")
    ap.add_argument("--topologies", default=None,
                    help="comma-separated subset of each workload's topologies (ml100k: ring,torus,exponential)")
    ap.add_argument("--node-eval-rows", type=int, default=4096, help="test rows each node's model is scored on")
    ap.add_argument("--quick", action="store_true", help="ML-100K only, 2 rounds, 20 nodes per round, one seed")
    ap.add_argument("--out", default="results/bench_gossip")
    args = ap.parse_args(argv)
    known = {t for _, topologies in WORKLOADS.values() for t in topologies}
    only = set(args.topologies.split(",")) if args.topologies else None
    if only and only - known:
        ap.error(f"--topologies: unknown {sorted(only - known)}; expected some of {sorted(known)}")
    workloads = [w.strip() for w in args.workloads.split(",")]
    if set(workloads) - set(WORKLOADS):
        ap.error(f"--workloads: unknown {sorted(set(workloads) - set(WORKLOADS))}; expected some of {sorted(WORKLOADS)}")
    seeds = per_workload_seeds(args.seeds, ap)
    rounds = per_workload(args.rounds, "--rounds")
    per_round = per_workload(args.per_round, "--per-round")
    if args.quick:
        workloads, seeds, args.node_eval_rows = ["ml100k"], {"ml100k": [0]}, 500
        rounds, per_round = {"ml100k": 2}, {"ml100k": 20}
    out = Path(args.out)
    started = time.perf_counter()
    owned = pool is None
    pool = pool or ClientPool(num_actors=2).start()
    results, skipped = {}, {}
    try:
        for w in workloads:
            try:  # each workload chooses CHOCO's setting on its own validation split
                results[w] = run_workload(w, pool, data if w == "ml100k" else None, seeds[w], out, rounds.get(w),
                                          per_round.get(w), args.quick, args.node_eval_rows, only)
            except FedrecError as exc:  # e.g. the Last.fm readers or data are not installed here
                skipped[w] = str(exc)
                print(f"{w}: skipped ({exc})")
    finally:
        if owned:
            pool.stop()
    cols = [("topology", "topology", ""), ("method", "method", ""), ("val_auc", "val AUC", ".4f"),
            ("test", "test AUC (avg model)", ""), ("node_mean_pm", "node AUC mean", ""),
            ("node_worst_pm", "node AUC worst", ""), ("kb_per_node", "KB sent/node", ",.0f"),
            ("fewer_bytes", "x fewer than D-PSGD", ".1f"), ("vs_dpsgd_auc", "AUC vs D-PSGD", "+.4f"),
            ("consensus", "consensus", ".2e"), ("wall_s", "wall s/run", ".0f")]
    payload = {"seeds": {w: seeds[w] for w in workloads}, "skipped": skipped, "wall_seconds": 0.0,
               "target": {"within_auc": TARGET_AUC, "fewer_bytes": TARGET_FEWER}}
    for w, (rows, _, (chosen, tuning), bounds) in results.items():
        for r in rows:
            r["test"] = pm(r["test_auc"], r["test_sd"])
            r["node_mean_pm"] = pm(r["node_mean"], r["node_mean_sd"])
            r["node_worst_pm"] = pm(r["node_worst"], r["node_worst_sd"])
        grid = ", ".join(f"{f:.1%}/{g}/{u}: {t['validation_auc']:.4f} ({t['fewer_bytes']:.0f}x)"
                         for (f, g, u), t in tuning.items())
        print(f"\n{w}: {bounds['rounds']} rounds, {bounds['clients_per_round']} of {bounds['nodes']} nodes train per "
              f"round, node AUCs on {bounds['node_eval_rows']} test rows, seeds {bounds['seeds']}; {choco_label(chosen)} "
              f"chosen on validation AUC within the {TARGET_FEWER:.0f}x bytes budget (top-k/gamma/updates: val AUC "
              f"(x fewer bytes than D-PSGD) {grid})")
        print_table(rows, cols)
        met = [f"{r['method']} / {r['topology']}" for r in rows if r.get("target_met")]
        print(f"target (within {TARGET_AUC} AUC of D-PSGD, >= {TARGET_FEWER:.0f}x fewer bytes): "
              + (f"met by {', '.join(met)}" if met else "not met"))
        payload[w] = {"bounds": bounds, "rows": rows, "choco_chosen": list(chosen), "target_met_by": met,
                      "choco_tuning": [{"fraction": f, "gamma": g, "updates": u, **t} for (f, g, u), t in tuning.items()]}
    payload["wall_seconds"] = time.perf_counter() - started
    write_json_atomic(out / "bench_gossip.json", payload, default=float)
    if results:
        plot(results, out / "bench_gossip.png")
    print(f"wrote {out / 'bench_gossip.json'} ({payload['wall_seconds']:.0f} s)")
    return payload


if __name__ == "__main__":
    main()
