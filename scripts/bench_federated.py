"""ml100k-fed targets besides speed: rounds, client updates, wall and simulated time to reach a test
AUC of 0.70 with the tuned config (chosen on the validation split by scripts/tune_federated.py),
and the upload saving of sparse embedding updates.

    .venv/bin/python scripts/bench_federated.py            # tuned config to AUC 0.70 + bytes ratio
    .venv/bin/python scripts/bench_federated.py --quick    # 6 rounds, smoke test

Bytes are counted, not estimated: every client's upload is its dense deltas plus (id, row) for each
embedding row it touched; the whole-table variant uploads every row of every table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_pipeline.datasets import REPO_ROOT, dataset_path
from fedrec.algorithms import run_config
from fedrec.config import load_config
from fedrec.runtime import ClientPool, load_federated_data, plot_history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO_ROOT / "configs" / "ml100k_tuned.yaml"))
    ap.add_argument("--target", type=float, default=0.70)
    ap.add_argument("--bytes-rounds", type=int, default=10, help="rounds for the sparse vs whole-table comparison")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/bench_federated")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(args.config, target_auc=args.target, **{"data.path": str(dataset_path("ml-100k"))})
    if args.quick:
        cfg = cfg.with_(rounds=6, eval_every=3)
        args.bytes_rounds = 2
    data = load_federated_data(cfg)
    pool = ClientPool.from_config(cfg).start()

    result = run_config(cfg, data, pool, progress=True)
    hit = result.rounds_to_target
    rows = {"tuned": {
        "final_auc": result.final_auc, "validation_auc": result.validation_auc, "rounds": result.rounds,
        "client_updates": result.client_updates, "client_updates_per_second": result.client_updates_per_second,
        "target": args.target, "target_round": hit,
        "target_client_updates": hit and sum(h["client_updates"] for h in result.history[:hit]),
        "target_sim_seconds": result.sim_seconds_to_target,
        "target_train_wall_seconds": hit and sum(h["wall_seconds"] for h in result.history[:hit]),
    }}
    plot_history(result, out / "tuned_auc.png")

    sizes = {}
    for sparse in (True, False):
        r = run_config(cfg.with_(rounds=args.bytes_rounds, eval_every=10**6, **{"client.sparse_updates": sparse}), data, pool)
        sizes["sparse" if sparse else "whole_tables"] = {
            "bytes_up": r.bytes_up, "client_updates": r.client_updates, "per_client": r.bytes_up / r.client_updates,
            "final_auc": r.final_auc,
        }
    ratio = sizes["whole_tables"]["per_client"] / sizes["sparse"]["per_client"]
    rows["upload"] = {**sizes, "ratio": ratio}

    pool.stop()
    t = rows["tuned"]
    print(f"{'run':<22} {'rounds':>6} {'updates':>8} {'test AUC':>9} {'val AUC':>8} {'updates/s':>9}")
    print(f"{'tuned (' + cfg.strategy.name + ')':<22} {t['rounds']:>6} {t['client_updates']:>8} {t['final_auc']:>9.4f} "
          f"{t['validation_auc']:>8.4f} {t['client_updates_per_second']:>9.0f}")
    if hit:
        print(f"AUC >= {args.target}: round {t['target_round']}, {t['target_client_updates']} client updates, "
              f"{t['target_sim_seconds']:,.0f} simulated s, ~{t['target_train_wall_seconds']:.1f} wall s of training")
    else:
        print(f"AUC >= {args.target}: not reached in {t['rounds']} rounds")
    s, w = sizes["sparse"], sizes["whole_tables"]
    print(f"upload per client: sparse rows {s['per_client']:,.0f} B vs whole tables {w['per_client']:,.0f} B -> {ratio:.1f}x less "
          f"(target >= 10x: {'met' if ratio >= 10 else 'NOT met'})")
    (out / "bench_federated.json").write_text(json.dumps(rows, indent=2, default=float))
    print(f"wrote {out / 'bench_federated.json'} and {out / 'tuned_auc.png'}")


if __name__ == "__main__":
    main()
