"""Choose AutoFL's hyper-parameters on the *validation* split (configs/ml100k_selection.yaml's workload,
on sweep seeds apart from the benchmark's): for each candidate, simulated seconds and joules until
the validation AUC first reaches the target, and the final validation AUC. The chosen candidate is
the fastest to the target (ties and never-reached broken by final validation AUC); it is shipped in
the config's ``selection.autofl`` and scripts/bench_selection.py then reports the test split.

    nice -n 10 .venv/bin/python scripts/sweep_autofl.py --out results/sweep_autofl
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fedbench import cached_result, comma_list, config, pool_and_data, print_table, write_json  # noqa: E402
from bench_selection import CONFIG, to_target  # noqa: E402

from fedrec.algorithms import run_config  # noqa: E402

GRID = {"epsilon": (0.0, 0.1), "utility_weight": (0.0, 0.5)}  # utility 0: clients of the chosen tiers at random


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=comma_list(int), default="100")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--out", default="results/sweep_autofl")
    args = ap.parse_args(argv)
    seeds = args.seeds
    base = config(CONFIG, plot=None, **({"rounds": args.rounds} if args.rounds else {}))
    target = base.target_auc
    out = Path(args.out)
    rows = []
    with pool_and_data(base, None, None) as (pool, data):
        for values in itertools.product(*GRID.values()):
            params = dict(zip(GRID, values))
            name = "autofl " + " ".join(f"{k}={v}" for k, v in params.items())
            cfg = base.with_(**{"selection.policy": "autofl", **{f"selection.autofl.{k}": v for k, v in params.items()}})
            runs = [cached_result(out, name, s, lambda s=s, cfg=cfg: run_config(cfg.with_(seed=s), data, pool, progress=True))
                    for s in seeds]
            got = [to_target(r, target, "validation_auc") for r in runs]
            reached = [g for g in got if g[0] is not None]
            rows.append({"candidate": name, **params, "reached": f"{len(reached)}/{len(runs)}",
                         "val_sim_seconds": sum(g[0] for g in reached) / len(reached) if reached else None,
                         "val_joules": sum(g[1] for g in reached) / len(reached) if reached else None,
                         "val_auc": sum(r["validation_auc"] for r in runs) / len(runs), "n_reached": len(reached)})
    best = min(rows, key=lambda r: (-r["n_reached"], r["val_sim_seconds"] if r["val_sim_seconds"] is not None else 1e30,
                                    -r["val_auc"]))
    for r in rows:
        r["chosen"] = r is best
    print_table(rows, [("candidate", "candidate", ""), ("reached", "reached (val)", ""), ("val_sim_seconds", "sim s", ".0f"),
                       ("val_joules", "J", ".0f"), ("val_auc", "final val AUC", ".4f"), ("chosen", "chosen", "")])
    payload = {"target_auc": target, "seeds": seeds, "grid": GRID, "rows": rows,
               "chosen": {k: best[k] for k in GRID}}
    print(f"chosen: {payload['chosen']}  (write it into configs/{CONFIG} selection.autofl)")
    write_json(out, "sweep_autofl.json", payload)
    return payload


if __name__ == "__main__":
    main()
