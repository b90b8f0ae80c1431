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

``--grid KEY=V1,V2`` takes any dotted config field (repeat it for more axes; the grid is their
product). Points whose cohort sizes differ still train in lockstep: each run samples its own cohort.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from _fedbench import config, parse_assignment, parse_value, print_table, write_json

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="ml100k_private_user.yaml", help="a config under configs/")
    ap.add_argument("--private-lr", default=None, help="shorthand for --grid client.private_lr=...")
    ap.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="an axis of the grid")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None, help="override the config's seed")
    ap.add_argument("--metric", choices=["validation_auc", "validation_ndcg_at_10"], default="validation_auc",
                    help="what the choice maximises")
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
    data = load_federated_data(base)
    results, diverged, seconds = train_grid(base, data, points)

    rows = []
    for p in points:
        name = point_name(p)
        r = results.get(name)
        rows.append({**p, "validation_auc": r.validation_auc if r else None,
                     "validation_ndcg_at_10": r.validation_ndcg_at_10 if r else None,
                     "diverged_round": diverged.get(name)})
    best = max(results, key=lambda k: getattr(results[k], args.metric))
    chosen = results[best]
    print_table(rows, [(k, k, "") for k in grid] + [("validation_auc", "val AUC", ".4f"),
                       ("validation_ndcg_at_10", "val nDCG@10", ".4f"), ("diverged_round", "diverged", "")])
    print(f"chosen on {args.metric}: {best}: test AUC {chosen.final_auc:.4f}, HR@10 {chosen.test_hr_at_10:.4f}, "
          f"nDCG@10 {chosen.test_ndcg_at_10:.4f}")
    path = write_json(Path(args.out), "tune_private.json", {
        "config": args.config, "grid": grid, "rounds": base.rounds, "seed": base.seed, "rows": rows, "metric": args.metric, "chosen": best,
        "diverged": diverged,
        # Per point and evaluation: (round, validation AUC, test AUC, validation nDCG@10), to see how
        # settled the last round is.
        "history": {k: [(h.get("round"), h.get("validation_auc"), h.get("auc"), h.get("validation_ndcg_at_10"))
                        for h in r.history
                        if h.get("validation_auc") is not None] for k, r in results.items()},
        "test": {"auc": chosen.final_auc, "hr_at_10": chosen.test_hr_at_10, "ndcg_at_10": chosen.test_ndcg_at_10},
        "seconds": seconds})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
