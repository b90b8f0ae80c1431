"""ml100k-fed targets besides speed: rounds, client updates, wall and simulated time to reach a test
AUC of 0.70 with the tuned config, and the upload saving of sparse embedding updates.

    .venv/bin/python scripts/bench_federated.py            # tuned config to AUC 0.70 + bytes ratio
    .venv/bin/python scripts/bench_federated.py --quick    # 6 rounds, smoke test

Bytes are counted, not estimated: every client's upload is its dense deltas plus (id, row) for each
embedding row it touched; the whole-table variant uploads every row of every table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from data_pipeline.datasets import REPO_ROOT, dataset_path
from fedrec.config import load_config
from fedrec.ray_runtime import ensure_ray
from fedrec.server import FederatedServer, load_federated_data, plot_history


def time_to_target(history: list[dict], target: float) -> dict | None:
    for h in history:
        if h.get("auc", 0) >= target:
            return {"round": h["round"], "sim_seconds": h["sim_seconds"]}
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO_ROOT / "configs" / "ml100k_fedyogi_tuned.yaml"))
    ap.add_argument("--target", type=float, default=0.70)
    ap.add_argument("--bytes-rounds", type=int, default=10, help="rounds for the sparse vs whole-table comparison")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/bench_federated")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(args.config)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(dataset_path("ml-100k"))))
    if args.quick:
        cfg = dataclasses.replace(cfg, rounds=6, eval_every=3)
        args.bytes_rounds = 2
    ensure_ray()
    data = load_federated_data(cfg)

    server = FederatedServer(cfg, data)
    result = server.run(progress=True)
    hit = time_to_target(result.history, args.target)
    wall_per_round = result.train_wall_seconds / result.rounds
    rows = {"tuned": {
        "final_auc": result.final_auc, "rounds": result.rounds, "client_updates": result.client_updates,
        "client_updates_per_second": result.client_updates_per_second,
        "target": args.target, "target_round": hit and hit["round"],
        "target_client_updates": hit and sum(h["client_updates"] for h in result.history[: hit["round"]]),
        "target_sim_seconds": hit and hit["sim_seconds"],
        "target_train_wall_seconds": hit and wall_per_round * hit["round"],
    }}
    plot_history(result, out / "tuned_auc.png")

    sizes = {}
    for sparse in (True, False):
        c = dataclasses.replace(cfg, rounds=args.bytes_rounds, eval_every=10**6,
                                client=dataclasses.replace(cfg.client, sparse_updates=sparse))
        r = FederatedServer(c, data).run(progress=False)
        sizes["sparse" if sparse else "whole_tables"] = {
            "bytes_up": r.bytes_up, "client_updates": r.client_updates, "per_client": r.bytes_up / r.client_updates,
            "final_auc": r.final_auc,
        }
    ratio = sizes["whole_tables"]["per_client"] / sizes["sparse"]["per_client"]
    rows["upload"] = {**sizes, "ratio": ratio}

    t = rows["tuned"]
    print(f"{'run':<22} {'rounds':>6} {'updates':>8} {'final AUC':>9} {'updates/s':>9}")
    print(f"{'tuned (' + cfg.strategy.name + ')':<22} {t['rounds']:>6} {t['client_updates']:>8} {t['final_auc']:>9.4f} {t['client_updates_per_second']:>9.0f}")
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
