"""Choose a private-user config's settings on its validation split: a grid trained in lockstep.

A private user row is trained only when its user is selected (about rounds x clients_per_round /
clients times per run), so its learning rate (``client.private_lr``) matters more than the shared
tables'; the shared settings (client lr, local epochs, server lr, cohort size) interact with it.
This sweep trains every point of the grid in lockstep on one actor pool (one round loop, one model
key per point), picks the best by a validation metric at the last round (``--metric``: AUC, or
nDCG@10 where ranking is the headline, as on Last.fm) and reports that point's test AUC and ranking
metrics once.

    .venv/bin/python scripts/tune_private.py --private-lr 0.3,1,3,10
    .venv/bin/python scripts/tune_private.py --grid client.private_lr=1,3 --grid clients_per_round=50,200
    .venv/bin/python scripts/tune_private.py --quick
    .venv/bin/python scripts/tune_private.py --seeds 0,1,2 --grid strategy.row_mean=touchers,cohort

``--grid KEY=V1,V2`` takes any dotted config field (repeat it for more axes; the grid is their
product). Points whose cohort sizes differ still train in lockstep: each run samples its own cohort.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
from _fedbench import comma_list, config, parse_assignment, parse_value, print_table, write_json

from data_pipeline.errors import FedrecError
from fedrec.runtime import ClientPool, FederatedResult, FederatedRun, RoundLoop, load_federated_data
from fedrec.runtime.run import ModelDiverged


def parse_grid(axes: list[str], ap) -> dict[str, list]:
    grid: dict[str, list] = {}
    for axis in axes:
        key, values = parse_assignment(axis, ap, "--grid", "client.private_lr=1,3,10")
        grid[key] = [parse_value(v) for v in values.split(",")]
    return grid


def point_name(point: dict) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items())


def train_grid(base, data, points: list[dict]) -> tuple[dict[str, FederatedResult], dict[str, int], float]:
    """Train every point in lockstep; a point whose model diverges is recorded (with its round) and
    the others are trained again from the start (same seeds, so the same runs as without it)."""
    started = time.perf_counter()
    diverged: dict[str, int] = {}
    with ClientPool.from_config(base) as pool:
        pool.set_data(data)
        while True:
            keep = [p for p in points if point_name(p) not in diverged]
            runs = [FederatedRun(base.with_(**p), data, pool, key=point_name(p)) for p in keep]
            try:
                # Validation every eval; the test split is scored too, but only the chosen point's is reported.
                RoundLoop(pool, runs, rounds=base.rounds, eval_every=base.eval_every, progress=True, desc="grid").run()
                break
            except ModelDiverged as exc:
                diverged[exc.key] = exc.round
                print(f"{exc.key} diverged in round {exc.round}; training the others again", flush=True)
                if len(diverged) == len(points):
                    raise
        seconds = time.perf_counter() - started
        return {r.key: FederatedResult.from_run(r, seconds) for r in runs}, diverged, seconds


def summarize(points: list[dict], by_seed: dict[int, tuple[dict, dict]], metric: str,
              min_auc: float | None = None) -> tuple[list[dict], str | None]:
    """One row per point: each validation metric's mean over the seeds (and the per-seed values),
    the rounds it diverged in; and the point whose mean ``metric`` is highest among those that
    trained on every seed and, with ``min_auc``, kept validation AUC >= it on every seed (a
    point that ranks well on average but whose model failed to learn on some seed is out). A
    point the seeds disagree on loses to one that holds on all of them."""
    rows, best, best_value = [], None, None
    for p in points:
        name = point_name(p)
        got = [results[name] for results, _ in by_seed.values() if name in results]
        row = {**p, "diverged_round": [d[name] for _, d in by_seed.values() if name in d] or None}
        for m in ("validation_auc", "validation_ndcg_at_10"):
            values = [getattr(r, m) for r in got]
            row[m] = float(np.mean(values)) if values and len(got) == len(by_seed) else None
            row[f"{m}_by_seed"] = values
        row["below_min_auc"] = min_auc is not None and any(v < min_auc for v in row["validation_auc_by_seed"])
        rows.append(row)
        if row[metric] is not None and not row["below_min_auc"] and (best_value is None or row[metric] > best_value):
            best, best_value = name, row[metric]
    return rows, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="ml100k_private_user.yaml", help="a config under configs/")
    ap.add_argument("--private-lr", default=None, help="shorthand for --grid client.private_lr=...")
    ap.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="an axis of the grid")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None, help="override the config's seed")
    ap.add_argument("--seeds", type=comma_list(int), default=None, help="comma-separated seeds; the choice maximises the metric's mean "
                    "over them (a setting whose result moves with the seed is chosen on all of them)")
    ap.add_argument("--metric", choices=["validation_auc", "validation_ndcg_at_10"], default="validation_auc",
                    help="what the choice maximises")
    ap.add_argument("--min-auc", type=float, default=None,
                    help="leave out points whose validation AUC falls below this on any seed")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/tune_private")
    args = ap.parse_args()
    if args.quick:
        args.grid, args.private_lr, args.rounds = [], "0.3,3", 3
    axes = list(args.grid) + ([f"client.private_lr={args.private_lr}"] if args.private_lr else [])
    grid = parse_grid(axes or ["client.private_lr=0.3,1,3,10"], ap)
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    overrides = {k: v for k, v in (("rounds", args.rounds), ("seed", args.seed)) if v is not None}
    try:  # a bad field or value stops here, with the field named, before any data is read
        base = config(args.config, **overrides).with_(checkpoint_dir=None)
        for p in points:
            base.with_(**p)
    except FedrecError as exc:
        ap.error(str(exc))
    seeds = args.seeds or [base.seed]
    by_seed, seconds = {}, 0.0
    for seed in seeds:
        cfg = base.with_(seed=seed)
        results, diverged, took = train_grid(cfg, load_federated_data(cfg), points)  # the split depends on the seed
        by_seed[seed], seconds = (results, diverged), seconds + took
    rows, best = summarize(points, by_seed, args.metric, args.min_auc)
    if best is None:
        raise SystemExit("every point diverged, or fell below --min-auc, on some seed")
    chosen = [results[best] for results, _ in by_seed.values()]
    test = {k: float(np.mean([getattr(r, a) for r in chosen])) for k, a in
            (("auc", "final_auc"), ("hr_at_10", "test_hr_at_10"), ("ndcg_at_10", "test_ndcg_at_10"))}
    print_table(rows, [(k, k, "") for k in grid] + [("validation_auc", "val AUC", ".4f"),
                       ("validation_ndcg_at_10", "val nDCG@10", ".4f"), ("diverged_round", "diverged", ""),
                       ("below_min_auc", "AUC < min on a seed", "")])
    print(f"chosen on {args.metric} (mean over seeds {seeds}): {best}: test AUC {test['auc']:.4f}, "
          f"HR@10 {test['hr_at_10']:.4f}, nDCG@10 {test['ndcg_at_10']:.4f}")
    path = write_json(Path(args.out), "tune_private.json", {
        "config": args.config, "grid": grid, "rounds": base.rounds, "seeds": seeds, "rows": rows, "metric": args.metric,
        "min_auc": args.min_auc,
        "chosen": best, "diverged": {s: d for s, (_, d) in by_seed.items()},
        # Per seed, point and evaluation: (round, validation AUC, test AUC, validation nDCG@10), to
        # see how settled the last round is.
        "history": {f"seed={s} {k}": [(h.get("round"), h.get("validation_auc"), h.get("auc"), h.get("validation_ndcg_at_10"))
                                      for h in r.history if h.get("validation_auc") is not None]
                    for s, (results, _) in by_seed.items() for k, r in results.items()},
        "test": {**test, "by_seed": [{"auc": r.final_auc, "ndcg_at_10": r.test_ndcg_at_10} for r in chosen]},
        "seconds": seconds})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
