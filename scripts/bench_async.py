"""FedBuff (asynchronous buffered aggregation, as in PAPAYA) against sync FedAvg on ml100k-fed with
the default 3 device tiers, on the same simulated clock and the same client budget: simulated
seconds and bytes moved (up + down) until the test AUC first reaches each target.

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

from _fedbench import config, print_table, pyplot, save, write_json

from fedrec.algorithms import run_fedbuff
from fedrec.runtime import ClientPool, FederatedRun, RoundLoop, load_federated_data
from fedrec.runtime.result import time_to_target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--updates", type=int, default=1500, help="client updates per method")
    ap.add_argument("--per-round", type=int, default=50, help="sync clients per round")
    ap.add_argument("--buffer", type=int, default=10, help="FedBuff K")
    ap.add_argument("--concurrency", default="50,100", help="FedBuff max concurrency values")
    ap.add_argument("--targets", default="0.60,0.65")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sparse-downloads", action="store_true",
                    help="clients download only their rows (client.sparse_downloads) instead of the whole model")
    ap.add_argument("--out", default="results/bench_async")
    args = ap.parse_args()
    if args.quick:
        args.updates, args.concurrency, args.targets = 100, "50", "0.5"
    targets = [float(t) for t in args.targets.split(",")]
    base = config("ml100k_fedbuff.yaml", eval_every=1, plot=None)
    if args.sparse_downloads:
        base = base.with_(**{"client.sparse_downloads": True})
    data = load_federated_data(base)
    pool = ClientPool.from_config(base).start()
    pool.set_data(data)
    t0 = time.perf_counter()

    rounds = args.updates // args.per_round
    sync_cfg = base.with_(mode="sync", rounds=rounds, clients_per_round=args.per_round)
    sync = {"sync FedAvg": FederatedRun(sync_cfg, data, pool, key="sync"),
            "sync FedAvg +30% over-selection": FederatedRun(sync_cfg.with_(over_selection=0.3), data, pool, key="sync-os")}
    RoundLoop(pool, list(sync.values()), rounds=rounds, eval_every=1, progress=True, desc="sync").run()
    curves = {name: s.history for name, s in sync.items()}
    extra = {name: {"staleness": 0.0} for name in sync}

    steps = args.updates // args.buffer
    variants = [(int(c), "polynomial") for c in args.concurrency.split(",")]
    if not args.quick:
        variants.append((variants[0][0], "constant"))
    for c, weighting in variants:
        name = f"FedBuff K={args.buffer} C={c} {'1/sqrt(1+s)' if weighting == 'polynomial' else weighting}"
        cfg = base.with_(rounds=steps, eval_every=max(1, args.per_round // args.buffer),
                         **{"async": {"buffer_size": args.buffer, "concurrency": c, "staleness": weighting}})
        r = run_fedbuff(cfg, data, pool, progress=True)
        curves[name] = r.history
        extra[name] = {"staleness": r.mean_staleness, "max_staleness": r.max_staleness}

    rows = []
    ref = curves["sync FedAvg"]
    for name, hist in curves.items():
        evals = [h for h in hist if "auc" in h]
        row = {"method": name, "final_auc": evals[-1]["auc"], "updates": sum(h["client_updates"] for h in hist),
               "sim_s": hist[-1]["sim_seconds"], "staleness": extra[name]["staleness"]}
        for t in targets:
            _, sim, moved = time_to_target(hist, t)
            _, sim_ref, moved_ref = time_to_target(ref, t)
            row[f"t@{t}"], row[f"MB@{t}"] = sim, moved / 1e6 if moved else None
            row[f"speedup@{t}"] = sim_ref / sim if sim and sim_ref else None
            row[f"comm@{t}"] = moved_ref / moved if moved and moved_ref else None
        rows.append(row)
    cols = [("method", "method", ""), ("final_auc", "final AUC", ".4f"), ("updates", "updates", "d"), ("sim_s", "sim s", ".0f"),
            ("staleness", "staleness", ".2f")]
    for t in targets:
        cols += [(f"t@{t}", f"sim s to {t}", ".0f"), (f"MB@{t}", f"MB to {t}", ".1f"), (f"speedup@{t}", "x faster", ".2f"),
                 (f"comm@{t}", "x less comm", ".2f")]
    pool.stop()
    print_table(rows, cols)
    out = Path(args.out)
    path = write_json(out, "bench_async.json", {"rows": rows, "targets": targets, "updates": args.updates,
                                                "wall_seconds": time.perf_counter() - t0,
                                                "curves": {n: [{k: h[k] for k in ("sim_seconds", "auc") if k in h} for h in c if "auc" in h]
                                                           for n, c in curves.items()}})
    plot(curves, targets, out / "bench_async.png")
    print(f"wrote {path} and {out / 'bench_async.png'} ({time.perf_counter() - t0:.0f} s)")


def plot(curves: dict[str, list[dict]], targets: list[float], path: Path) -> None:
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
    fig.suptitle("ml100k-fed, 3 tiers: sync FedAvg vs FedBuff (same client updates)")
    save(fig, path)


if __name__ == "__main__":
    main()
