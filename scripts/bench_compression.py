"""Upload compression on the tuned ML-100K workload (configs/ml100k_fedyogi_tuned.yaml: FedYogi, 50
clients x 60 rounds), and FedBuff with compression and compressed delta downloads against sync
FedAvg (configs/ml100k_fedbuff.yaml's settings, 1,500 client updates each).

Part 1 runs every (method, setting) on each seed: bytes up and down, the ratios against the dense
whole-model exchange, validation and test AUC, wall time and the codec's own share of it (encode
time per actor + decode time on the driver, over the training wall time). The setting shipped in
configs/ml100k_compressed.yaml is chosen on *validation* AUC: the most compressed upload whose mean
validation AUC is within 0.005 of the uncompressed run's; its test AUC is then reported once.

Part 2 measures simulated seconds and bytes (up + down) until the test AUC first reaches the
target, for sync FedAvg and FedBuff, each as shipped and with the chosen compression plus
compressed downloads of the model's change since each client's last copy (``downlink: same``).
Each method trains with its own client lr, chosen among ``--lrs`` on the first seed's validation
AUC (a run that diverges there counts at chance).

Every run is cached under OUT/runs/ (a rerun skips what is there); delete the folder to start over.

    .venv/bin/python scripts/bench_compression.py                      # 3 seeds (~1 h on 2 busy cores)
    .venv/bin/python scripts/bench_compression.py --quick --out /tmp/bc  # a smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fedbench import RowsTracker, cached_result, comma_list, config, print_table, pyplot  # noqa: E402

from data_pipeline.atomic import atomic_path, write_json_atomic  # noqa: E402
from fedrec.algorithms import run_config  # noqa: E402
from fedrec.runtime import ClientPool, load_federated_data  # noqa: E402
from fedrec.runtime.result import time_to_target  # noqa: E402
from fedrec.runtime.run import ModelDiverged  # noqa: E402

SETTINGS = {
    "none": {},
    "powersgd r1": {"method": "powersgd", "rank": 1},
    "powersgd r2": {"method": "powersgd", "rank": 2},
    "powersgd r1 no-EF": {"method": "powersgd", "rank": 1, "error_feedback": False},
    "powersgd r1 fp16": {"method": "powersgd", "rank": 1, "precision": "fp16"},
    "powersgd r2 fp16": {"method": "powersgd", "rank": 2, "precision": "fp16"},
    "topk 1%": {"method": "topk", "fraction": 0.01},
    "topk 5%": {"method": "topk", "fraction": 0.05},
    "topk 10%": {"method": "topk", "fraction": 0.1},
    "topk 5% no-EF": {"method": "topk", "fraction": 0.05, "error_feedback": False},
    "int8": {"method": "int8"},
    "fp16": {"method": "fp16"},
}
QUICK_SETTINGS = ("none", "powersgd r1", "topk 5%")
AUC_SLACK = 0.005  # the target: within this of the uncompressed run


def codec_share(r: dict, actors: int) -> float | None:
    p = r.get("pipeline") or {}
    if "encode_seconds" not in p or not r["train_wall_seconds"]:
        return None
    return (p["encode_seconds"] / actors + p["decode_seconds"]) / r["train_wall_seconds"]


def part_settings(pool, data, base, names, seeds, out: Path) -> tuple[list[dict], dict]:
    runs: dict[str, list[dict]] = {}
    for name in names:
        for seed in seeds:
            cfg = base.with_(seed=seed, **({"compression": SETTINGS[name]} if SETTINGS[name] else {}))
            runs.setdefault(name, []).append(cached_result(out, name, seed, _runner(cfg, data, pool)))
    actors = len(pool.actors)
    rows = []
    for name, rs in runs.items():
        val, test = np.array([r["validation_auc"] for r in rs]), np.array([r["final_auc"] for r in rs])
        shares = [s for s in (codec_share(r, actors) for r in rs) if s is not None]
        rows.append({"setting": name, "ratio_up": float(np.mean([r["compression_ratio_up"] for r in rs])),
                     "ratio_down": float(np.mean([r["compression_ratio_down"] for r in rs])),
                     "kb_up": float(np.mean([r["bytes_up"] / r["client_updates"] for r in rs])) / 1e3,
                     "val_auc": float(val.mean()), "val_sd": float(val.std()), "test_auc": float(test.mean()),
                     "test_sd": float(test.std()), "codec_share": float(np.mean(shares)) if shares else None,
                     "wall_s": float(np.mean([r["train_wall_seconds"] for r in rs])), "seeds": len(rs)})
    base_row = next(r for r in rows if r["setting"] == "none")
    eligible = [r for r in rows if r["setting"] != "none" and r["val_auc"] >= base_row["val_auc"] - AUC_SLACK]
    chosen = max(eligible, key=lambda r: r["ratio_up"]) if eligible else None
    for r in rows:
        r["test_vs_none"] = r["test_auc"] - base_row["test_auc"]
        r["chosen"] = chosen is not None and r["setting"] == chosen["setting"]
    return rows, runs


def _runner(cfg, data, pool):
    return lambda: run_config(cfg, data, pool, progress=True)


def _diverging_runner(cfg, data, pool):
    """Like ``_runner``, but a run whose model diverges (non-finite weights) is recorded as such:
    its rounds until then, scored at chance (AUC 0.5) from there on, with the round it diverged in."""
    def go():
        rows = RowsTracker()
        try:
            return run_config(cfg, data, pool, progress=True, trackers=[rows])
        except ModelDiverged as exc:
            print(f"  {cfg.mode} seed {cfg.seed}: diverged in round {exc.round}", file=sys.stderr, flush=True)
            up, down = sum(r.get("bytes_up", 0) for r in rows.rows), sum(r.get("bytes_down", 0) for r in rows.rows)
            return _Diverged({"final_auc": 0.5, "diverged_round": exc.round, "history": rows.rows,
                              "bytes_up": up, "bytes_down": down})
    return go


class _Diverged(dict):
    def to_dict(self) -> dict:
        return dict(self)


def choose_lr(val_auc: dict[float, float]) -> float:
    """The client lr with the best validation AUC (a diverged run counts at chance, 0.5); ties go
    to the larger lr, the shipped configs' order."""
    return max(val_auc, key=lambda lr: (val_auc[lr], lr))


def part_fedbuff(pool, data, chosen: str, seeds, out: Path, updates: int, per_round: int, buffer: int,
                 targets: list[float], lrs: list[float]) -> tuple[list[dict], dict]:
    """Each method's client lr is chosen among ``lrs`` on the first seed's validation AUC (its
    best setting, as the other side gets its own); its test AUC is then reported over all seeds.
    FedBuff's local training from a compressed copy of the model diverges at the configs' lr 1.0
    on some seeds, which is why the lr is chosen per method rather than shared."""
    base = config("ml100k_fedbuff.yaml", eval_every=1, plot=None, target_auc=None)
    comp = {"compression": {**SETTINGS[chosen], "downlink": "same"}, "client.sparse_downloads": True}
    sync = base.with_(mode="sync", rounds=updates // per_round, clients_per_round=per_round)
    fedbuff = base.with_(rounds=updates // buffer, eval_every=max(1, per_round // buffer),
                         **{"async": {"buffer_size": buffer, "concurrency": 50}})
    methods = {"sync FedAvg": sync, f"sync + {chosen} + compressed downloads": sync.with_(**comp),
               "FedBuff": fedbuff, f"FedBuff + {chosen} + compressed downloads": fedbuff.with_(**comp)}

    def run(name: str, cfg, lr: float, seed: int) -> dict:
        # The configs' own lr keeps its old cache name, so runs cached before the sweep are reused.
        label = f"fedbuff-{name}" if lr == cfg.client.lr else f"fedbuff-{name} lr{lr:g}"
        return cached_result(out, label, seed, _diverging_runner(cfg.with_(seed=seed, **{"client.lr": lr}), data, pool))

    runs, chosen_lr, sweep = {}, {}, {}
    for name, cfg in methods.items():
        sweep[name] = {lr: run(name, cfg, lr, seeds[0]).get("validation_auc") or 0.5 for lr in lrs}
        chosen_lr[name] = choose_lr(sweep[name])
        runs[name] = [run(name, cfg, chosen_lr[name], s) for s in seeds]
        print(f"  {name}: validation AUC by client lr {sweep[name]} -> lr {chosen_lr[name]:g}", flush=True)
    rows = []
    ref = runs["sync FedAvg"]
    for name, rs in runs.items():
        row = {"method": name, "lr": chosen_lr[name], "val_by_lr": sweep[name],
               "final_auc": float(np.mean([r["final_auc"] for r in rs])),
               "final_sd": float(np.std([r["final_auc"] for r in rs])),
               "mb_total": float(np.mean([(r["bytes_up"] + r["bytes_down"]) / 1e6 for r in rs])),
               "diverged": [r["diverged_round"] for r in rs if "diverged_round" in r]}
        for t in targets:
            got = [time_to_target(r["history"], t) for r in rs]
            base_got = [time_to_target(r["history"], t) for r in ref]
            reached = [g for g in got if g[1] is not None]
            row[f"reached@{t}"] = f"{len(reached)}/{len(rs)}"
            row[f"sim@{t}"] = float(np.mean([g[1] for g in reached])) if reached else None
            row[f"mb@{t}"] = float(np.mean([g[2] for g in reached])) / 1e6 if reached else None
            pairs = [(b[2], g[2]) for b, g in zip(base_got, got) if b[2] and g[2]]
            row[f"less@{t}"] = float(np.mean([b / g for b, g in pairs])) if pairs else None  # sync's bytes / this one's
        rows.append(row)
    return rows, runs


def plot(rows: list[dict], fb_runs: dict, target: float, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    for r in rows:
        ax.errorbar(r["ratio_up"], r["test_auc"], yerr=r["test_sd"], fmt="o", capsize=3)
        ax.annotate(r["setting"], (r["ratio_up"], r["test_auc"]), fontsize=7, xytext=(4, 2), textcoords="offset points")
    none = next(r for r in rows if r["setting"] == "none")
    ax.axhspan(none["test_auc"] - AUC_SLACK, none["test_auc"] + AUC_SLACK, color="grey", alpha=0.2, label="none +- 0.005")
    ax.axvline(100, color="grey", ls="--", lw=0.8, label="100x")
    ax.set_xscale("log")
    ax.set_xlabel("upload compression vs dense whole-model exchange (x)")
    ax.set_ylabel("final test AUC (mean +- sd over seeds)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1]
    for name, rs in fb_runs.items():
        hist = rs[0]["history"]
        moved, xs, ys = 0, [], []
        for h in hist:
            moved += h["bytes_up"] + h["bytes_down"]
            if "auc" in h:
                xs.append(moved / 1e6)
                ys.append(h["auc"])
        ax.plot(xs, ys, label=name)
    ax.axhline(target, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("MB moved, up + down (seed 0)")
    ax.set_ylabel("test AUC")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.suptitle("ML-100K: upload compression (left), FedBuff + compression + compressed downloads vs sync (right)")
    fig.tight_layout()
    with atomic_path(path, (".png",), "--out") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None, pool: ClientPool | None = None, data=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=comma_list(int), default=[0, 1, 2])
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names from SETTINGS")
    ap.add_argument("--rounds", type=int, default=None, help="override the tuned config's 60 rounds")
    ap.add_argument("--updates", type=int, default=1500, help="client updates per method in part 2")
    ap.add_argument("--targets", type=comma_list(float), default=[0.60, 0.65])
    ap.add_argument("--lrs", type=comma_list(float), default=[1.0, 0.5, 0.3], help="client lrs tried per method in part 2 (chosen on validation)")
    ap.add_argument("--quick", action="store_true", help="3 rounds, one seed, three settings")
    ap.add_argument("--out", default="results/bench_compression")
    args = ap.parse_args(argv)
    seeds, targets, lrs = args.seeds, args.targets, args.lrs
    names = [n.strip() for n in args.settings.split(",")]
    if args.quick:
        seeds, names, args.rounds, args.updates, targets, lrs = [0], list(QUICK_SETTINGS), 3, 60, [0.5], [1.0, 0.5]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown or "none" not in names:
        ap.error(f"--settings must include none and name only {sorted(SETTINGS)}; got {unknown or names}")
    out = Path(args.out)
    started = time.perf_counter()
    base = config("ml100k_fedyogi_tuned.yaml", plot=None, **({"rounds": args.rounds} if args.rounds else {}))
    owned = pool is None
    pool = pool or ClientPool.from_config(base).start()
    try:
        data = data or load_federated_data(base)
        if owned:
            pool.set_data(data)
        rows, _ = part_settings(pool, data, base, names, seeds, out)
        chosen = next((r["setting"] for r in rows if r["chosen"]), None)
        fb_rows, fb_runs = part_fedbuff(pool, data, chosen or "none", seeds, out, args.updates, 50, 10, targets, lrs)
    finally:
        if owned:
            pool.stop()
    print_table(rows, [("setting", "setting", ""), ("kb_up", "KB up/client", ".2f"), ("ratio_up", "x up", ".1f"),
                       ("ratio_down", "x down", ".1f"), ("val_auc", "val AUC", ".4f"), ("test_auc", "test AUC", ".4f"),
                       ("test_sd", "sd", ".4f"), ("test_vs_none", "vs none", "+.4f"), ("codec_share", "codec share", ".3f"),
                       ("wall_s", "train s", ".0f"), ("chosen", "chosen", "")])
    print(f"chosen on validation AUC (within {AUC_SLACK} of none, most compressed): {chosen}")
    cols = [("method", "method", ""), ("lr", "client lr", "g"), ("final_auc", "final AUC", ".4f"), ("final_sd", "sd", ".4f"), ("mb_total", "MB total", ".1f"),
            ("diverged", "diverged in round", "")]
    for t in targets:
        cols += [(f"reached@{t}", f"reached {t}", ""), (f"sim@{t}", "sim s", ".0f"), (f"mb@{t}", "MB to it", ".2f"),
                 (f"less@{t}", "x fewer bytes than sync", ".1f")]
    print_table(fb_rows, cols)
    payload = {"settings": rows, "chosen": chosen, "fedbuff": fb_rows, "seeds": seeds, "targets": targets,
               "wall_seconds": time.perf_counter() - started}
    write_json_atomic(out / "bench_compression.json", payload, default=float)
    plot(rows, fb_runs, targets[-1], out / "bench_compression.png")
    print(f"wrote {out / 'bench_compression.json'} and {out / 'bench_compression.png'} ({time.perf_counter() - started:.0f} s)")
    return payload


if __name__ == "__main__":
    main()
