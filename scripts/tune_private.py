"""Choose the private-table settings of a private-user config on its validation split.

A private user row is trained only when its user is selected (about rounds x clients_per_round /
clients times per run), so its learning rate (``client.private_lr``) matters more than the shared
tables'. This sweep trains every setting in lockstep on one actor pool (one round loop, one model
key per setting), picks the best by validation AUC at the last round and reports that setting's
test AUC and ranking metrics once.

    .venv/bin/python scripts/tune_private.py --config configs/ml100k_private_user.yaml --private-lr 0.3,1,3,10
    .venv/bin/python scripts/tune_private.py --quick
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _fedbench import config, print_table, write_json

from fedrec.runtime import ClientPool, FederatedResult, FederatedRun, RoundLoop, load_federated_data
from fedrec.runtime.run import ModelDiverged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="ml100k_private_user.yaml", help="a config under configs/")
    ap.add_argument("--private-lr", default="0.3,1,3,10")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/tune_private")
    args = ap.parse_args()
    if args.quick:
        args.private_lr, args.rounds = "0.3,3", 3
    base = config(args.config, **({"rounds": args.rounds} if args.rounds else {})).with_(checkpoint_dir=None)
    started = time.perf_counter()
    data = load_federated_data(base)
    values = [float(v) for v in args.private_lr.split(",")]
    diverged: dict[float, int] = {}  # setting -> round its model went non-finite
    with ClientPool.from_config(base) as pool:
        pool.set_data(data)
        while True:
            # The settings train in lockstep, so one that diverges stops the loop: record it and
            # train the others again from the start (same seeds, so the same runs as without it).
            keep = [v for v in values if v not in diverged]
            runs = [FederatedRun(base.with_(**{"client.private_lr": v}), data, pool, key=f"private_lr={v}") for v in keep]
            try:
                # Validation every eval; the test split is scored too, but only the chosen run's is reported.
                RoundLoop(pool, runs, rounds=base.rounds, eval_every=base.eval_every, progress=True, desc="private lr").run()
                break
            except ModelDiverged as exc:
                value = keep[[r.key for r in runs].index(exc.key)]
                diverged[value] = exc.round
                print(f"private_lr {value:g} diverged in round {exc.round}; training the others again", flush=True)
                if len(diverged) == len(values):
                    raise
        results = {v: FederatedResult.from_run(r, time.perf_counter() - started) for v, r in zip(keep, runs)}
    rows = [{"private_lr": v, "validation_auc": r.validation_auc, "validation_ndcg_at_10": r.validation_ndcg_at_10}
            for v, r in results.items()]
    rows += [{"private_lr": v, "validation_auc": None, "validation_ndcg_at_10": None, "diverged_round": rnd}
             for v, rnd in diverged.items()]
    best = max(results, key=lambda v: results[v].validation_auc)
    chosen = results[best]
    print_table(rows, [("private_lr", "private lr", ".3g"), ("validation_auc", "val AUC", ".4f"),
                       ("validation_ndcg_at_10", "val nDCG@10", ".4f")])
    print(f"chosen on validation: private_lr {best:g}: test AUC {chosen.final_auc:.4f}, HR@10 {chosen.test_hr_at_10:.4f}, "
          f"nDCG@10 {chosen.test_ndcg_at_10:.4f}")
    path = write_json(Path(args.out), "tune_private.json", {
        "config": args.config, "rows": rows, "chosen": best, "diverged": {str(v): r for v, r in diverged.items()},
        "test": {"auc": chosen.final_auc, "hr_at_10": chosen.test_hr_at_10, "ndcg_at_10": chosen.test_ndcg_at_10},
        "seconds": time.perf_counter() - started})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
