"""FedBuff (asynchronous buffered aggregation, as in PAPAYA) against sync FedAvg on ml100k-fed with
the default 3 device tiers, on the same simulated clock and the same client budget: simulated
seconds and bytes moved (up + down) until the test AUC first reaches each target; mean ± std over
--seeds (each seed changes the client sampling, the model's initial weights and the tiers). A
variant whose model diverges is recorded as such (no final AUC; targets it reached before count).

Sync methods train in lockstep in one round loop (each round waits for its slowest reporting
client); each FedBuff variant replays its event-driven schedule; all on one actor pool.

    .venv/bin/python scripts/bench_async.py                  # 1,500 client updates per method
    .venv/bin/python scripts/bench_async.py --quick          # a smoke run (< 1 min)
    .venv/bin/python scripts/bench_async.py --sparse-downloads --out results/bench_async_sparse_down
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _fedbench import RowsTracker, comma_list, config, mean_std, pm, print_table, pyplot, save, write_json

from fedrec.algorithms import run_fedbuff
from fedrec.runtime import ClientPool, FederatedRun, ModelDiverged, RoundLoop, load_federated_data
from fedrec.runtime.result import time_to_target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--updates", type=int, default=1500, help="client updates per method")
    ap.add_argument("--per-round", type=int, default=50, help="sync clients per round")
    ap.add_argument("--buffer", type=int, default=10, help="FedBuff K")
    ap.add_argument("--concurrency", type=comma_list(int), default="50,100", help="FedBuff max concurrency values")
    ap.add_argument("--targets", type=comma_list(float), default="0.60,0.65")
    ap.add_argument("--seeds", type=comma_list(int), default="0,1,2", help="each seed reruns every method; the table is mean ± std")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sparse-downloads", action="store_true",
                    help="clients download only their rows (client.sparse_downloads) instead of the whole model")
    ap.add_argument("--out", default="results/bench_async")
    args = ap.parse_args()
    if args.quick:
        args.updates, args.concurrency, args.targets, args.seeds = 100, [50], [0.5], [0]
    targets, seeds = args.targets, args.seeds
    base = config("ml100k_fedbuff.yaml", eval_every=1, plot=None)
    if args.sparse_downloads:
        base = base.with_(**{"client.sparse_downloads": True})
    data = load_federated_data(base)
    pool = ClientPool.from_config(base).start()
    pool.set_data(data)
    t0 = time.perf_counter()
    per_seed = {}
    for seed in seeds:
        print(f"bench_async: seed {seed} ({seeds.index(seed) + 1} of {len(seeds)})", flush=True)
        per_seed[seed] = run_seed(base.with_(seed=seed), data, pool, args)
    pool.stop()

    rows = [summarize(name, [per_seed[s][name] for s in seeds], [per_seed[s]["sync FedAvg"] for s in seeds], targets)
            for name in per_seed[seeds[0]]]
    cols = [("method", "method", ""), ("final_auc_pm", "test AUC", ""), ("validation_auc_pm", "validation AUC", ""),
            ("staleness", "staleness", ".2f"), ("diverged", "diverged", "")]
    for t in targets:
        cols += [(f"t@{t}_pm", f"sim s to {t}", ""), (f"reached@{t}", "seeds", ""), (f"speedup@{t}_pm", "x faster", ""),
                 (f"MB@{t}_pm", f"MB to {t}", ""), (f"comm@{t}_pm", "x less comm", "")]
    print_table(rows, cols)
    out = Path(args.out)
    curves = per_seed[seeds[0]]
    path = write_json(out, "bench_async.json", {
        "rows": rows, "targets": targets, "updates": args.updates, "seeds": seeds,
        "wall_seconds": time.perf_counter() - t0,
        "curves": {n: [{k: h[k] for k in ("sim_seconds", "auc") if k in h} for h in c["history"] if "auc" in h]
                   for n, c in curves.items()}})
    plot({n: c["history"] for n, c in curves.items()}, targets, out / "bench_async.png", seeds[0])
    print(f"wrote {path} and {out / 'bench_async.png'} ({time.perf_counter() - t0:.0f} s)")


def run_seed(base, data, pool, args) -> dict[str, dict]:
    """Every method on ``base``'s seed: {name: {"history", "staleness"[, "diverged": server step]}}."""
    rounds = args.updates // args.per_round
    sync_cfg = base.with_(mode="sync", rounds=rounds, clients_per_round=args.per_round)
    sync = {"sync FedAvg": FederatedRun(sync_cfg, data, pool, key="sync"),
            "sync FedAvg +30% over-selection": FederatedRun(sync_cfg.with_(over_selection=0.3), data, pool, key="sync-os")}
    RoundLoop(pool, list(sync.values()), rounds=rounds, eval_every=1, progress=True, desc="sync").run()
    out = {name: {"history": s.history, "staleness": 0.0} for name, s in sync.items()}

    steps = args.updates // args.buffer
    variants = [(c, "polynomial") for c in args.concurrency]
    if not args.quick:
        variants.append((variants[0][0], "constant"))
    for c, weighting in variants:
        name = f"FedBuff K={args.buffer} C={c} {'1/sqrt(1+s)' if weighting == 'polynomial' else weighting}"
        cfg = base.with_(rounds=steps, eval_every=max(1, args.per_round // args.buffer),
                         **{"async": {"buffer_size": args.buffer, "concurrency": c, "staleness": weighting}})
        rows = RowsTracker()
        try:
            r = run_fedbuff(cfg, data, pool, progress=True, trackers=[rows])
            out[name] = {"history": r.history, "staleness": r.mean_staleness}
        except ModelDiverged as exc:  # recorded with its history up to then, not fatal to the benchmark
            print(f"bench_async: {name} diverged at server step {exc.round}", flush=True)
            out[name] = {"history": rows.rows, "staleness": None, "diverged": exc.round}
    return out


def summarize(name: str, runs: list[dict], refs: list[dict], targets: list[float]) -> dict:
    """One method over the seeds: final test and validation AUC, and per target the simulated
    seconds, MB and ratios against sync FedAvg of the same seed (mean ± std over the seeds that
    reached it, and how many did)."""
    # A diverged run has no final AUC (its last weights are not finite); its earlier evaluations
    # still count for the targets it reached before.
    last = [{} if r.get("diverged") else [h for h in r["history"] if "auc" in h][-1] for r in runs]
    diverged = [r["diverged"] for r in runs if r.get("diverged")]
    row = {"method": name, "staleness": mean_std(r["staleness"] for r in runs)[0],
           "diverged": f"{len(diverged)}/{len(runs)} (steps {', '.join(map(str, diverged))})" if diverged else "0"}
    for key in ("auc", "validation_auc"):
        m, sd = mean_std(h.get(key) for h in last)
        label = "final_auc" if key == "auc" else key
        row[label], row[f"{label}_std"], row[f"{label}_pm"] = m, sd, pm(m, sd)
    for t in targets:
        sims, mbs, speedups, comms = [], [], [], []
        for r, ref in zip(runs, refs):
            _, sim, moved = time_to_target(r["history"], t)
            _, sim_ref, moved_ref = time_to_target(ref["history"], t)
            sims.append(sim)
            mbs.append(moved / 1e6 if moved else None)
            speedups.append(sim_ref / sim if sim and sim_ref else None)
            comms.append(moved_ref / moved if moved and moved_ref else None)
        row[f"reached@{t}"] = f"{sum(s is not None for s in sims)}/{len(runs)}"
        for key, values, spec in ((f"t@{t}", sims, ".0f"), (f"MB@{t}", mbs, ".1f"), (f"speedup@{t}", speedups, ".2f"),
                                  (f"comm@{t}", comms, ".2f")):
            m, sd = mean_std(values)
            row[key], row[f"{key}_std"], row[f"{key}_pm"] = m, sd, pm(m, sd, spec)
    return row


def plot(curves: dict[str, list[dict]], targets: list[float], path: Path, seed: int) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, hist in curves.items():
        evals = [h for h in hist if "auc" in h]
        moved, xs = 0, []
        for h in hist:
            moved += h["bytes_up"] + h["bytes_down"]
            if "auc" in h:
                xs.append(moved / 1e6)
        axes[0].plot([h["sim_seconds"] for h in evals], [h["auc"] for h in evals], label=name)
        axes[1].plot(xs, [h["auc"] for h in evals], label=name)
    for ax, xlabel in zip(axes, ("simulated seconds", "MB moved (up + down)")):
        for t in targets:
            ax.axhline(t, color="grey", lw=0.8, ls="--")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test AUC")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"ml100k-fed, 3 tiers: sync FedAvg vs FedBuff (same client updates), seed {seed}")
    save(fig, path)


if __name__ == "__main__":
    main()
