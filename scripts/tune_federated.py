"""The hyper-parameter sweep behind the shipped tuned ml100k-fed config, with Ray Tune.

Every trial trains the base workload (configs/ml100k_fedavg.yaml: data, model, 50 clients per
round) with a sampled server strategy (FedAvg, FedAvgM, FedAdam, FedYogi), server learning rate
(FedOpt family), client learning rate and local epochs, and reports its *validation* AUC every
evaluation; ASHA stops the weak trials early. The best trial by validation AUC is written out as a
config (--write) and trained once more from scratch: its *test* AUC is the number reported, once.

    .venv/bin/python scripts/tune_federated.py --write configs/ml100k_tuned.yaml   # hours on 2 cores
    .venv/bin/python scripts/tune_federated.py --restore --write configs/ml100k_tuned.yaml  # finish an interrupted one
    .venv/bin/python scripts/tune_federated.py --quick                                    # smoke run

Trials run one at a time (each trains on all the CPUs through its own client pool); the search is
seeded (--seed), so the sweep is reproducible up to the timing-dependent order of ASHA's decisions.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("fedavg", "fedavgm", "fedadam", "fedyogi")


def overrides(params: dict) -> dict:
    """The config fields a trial's sampled parameters set (FedOpt's server lr only for FedOpt)."""
    out = {"strategy.name": params["strategy"], "client.lr": params["client_lr"],
           "client.local_epochs": params["local_epochs"]}
    out["strategy.server_lr"] = params["server_lr"] if params["strategy"] in ("fedadam", "fedyogi") else 1.0
    return out


class TuneReporter:
    """A round-loop tracker that reports each evaluation's validation AUC (never the test AUC) to Tune."""

    def log(self, run: str, rnd: int, row: dict) -> None:
        if "validation_auc" in row:
            from ray import tune

            tune.report({"validation_auc": row["validation_auc"], "round": rnd})

    def close(self) -> None:
        pass


def trial(params: dict) -> None:
    import fedrec
    from data_pipeline.errors import ConfigError

    cfg = fedrec.load_config(params["base"], rounds=params["rounds"], eval_every=params["eval_every"],
                             checkpoint_dir=None, num_actors=os.cpu_count() or 1, **overrides(params))
    try:
        fedrec.run(cfg, trackers=[TuneReporter()])
    except ConfigError:  # diverged (non-finite weights): as good as a coin
        from ray import tune

        tune.report({"validation_auc": 0.5, "round": params["rounds"]})


def _resources():
    # A trial is its driver (waiting on its pool) plus one bundle per client actor; Tune requires
    # the actors a trial launches to fit its placement group.
    from ray import tune

    return tune.PlacementGroupFactory([{"CPU": 1}] + [{"CPU": 1}] * (os.cpu_count() or 1))


def _new_tuner(tune, ASHAScheduler, BasicVariantGenerator, space: dict, args, out: Path):
    return tune.Tuner(
        tune.with_resources(trial, _resources()),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="validation_auc", mode="max", num_samples=args.samples, max_concurrent_trials=1,
            search_alg=BasicVariantGenerator(random_state=args.seed),
            scheduler=ASHAScheduler(time_attr="round", max_t=args.rounds,
                                    grace_period=max(args.eval_every, args.rounds // 3), reduction_factor=3),
        ),
        run_config=tune.RunConfig(name="tune_federated", storage_path=str(out / "ray"), verbose=1),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=str(ROOT / "configs" / "ml100k_fedavg.yaml"))
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", help="write the best config here (YAML)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--restore", action="store_true",
                    help="finish an interrupted sweep from its Tune state under --out (finished trials are kept)")
    ap.add_argument("--out", default=str(ROOT / "results" / "tune_federated"))
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.eval_every, args.samples = 4, 2, 2
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    import fedrec
    from fedrec.config import config_to_dict

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local throwaway cluster
    # One logical CPU more than the machine has: the trial process only drives its run (it waits on
    # its client pool, whose actors take one CPU each).
    ray.init(address="local", num_cpus=(os.cpu_count() or 1) + 1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    space = {
        "base": str(Path(args.base).resolve()), "rounds": args.rounds, "eval_every": args.eval_every,
        "strategy": tune.choice(list(STRATEGIES)),
        "client_lr": tune.loguniform(0.03, 1.0),
        "local_epochs": tune.choice([1, 2, 3]),
        "server_lr": tune.loguniform(0.003, 0.3),
    }
    started = time.perf_counter()
    state = out / "ray" / "tune_federated"
    if args.restore and tune.Tuner.can_restore(str(state)):
        tuner = tune.Tuner.restore(str(state), trainable=tune.with_resources(trial, _resources()),
                                   resume_unfinished=True, restart_errored=True)
    else:
        tuner = _new_tuner(tune, ASHAScheduler, BasicVariantGenerator, space, args, out)
    grid = tuner.fit()
    trials = []
    for r in grid:
        if r.metrics is None or "validation_auc" not in r.metrics:
            continue
        best_val = float(r.metrics_dataframe["validation_auc"].max()) if r.metrics_dataframe is not None else r.metrics["validation_auc"]
        trials.append({**{k: r.config[k] for k in ("strategy", "client_lr", "local_epochs", "server_lr")},
                       "rounds_run": int(r.metrics["round"]), "validation_auc": float(r.metrics["validation_auc"]),
                       "best_validation_auc": best_val})
    ray.shutdown()
    # The winner: the highest validation AUC among trials that ran the full schedule.
    full = [t for t in trials if t["rounds_run"] == args.rounds] or trials
    best = max(full, key=lambda t: t["validation_auc"])
    cfg = fedrec.load_config(args.base, rounds=args.rounds, eval_every=args.eval_every, checkpoint_dir=None, **overrides(best))
    final = fedrec.run(cfg)  # the test split, once
    trials.sort(key=lambda t: -t["validation_auc"])
    print(f"{'strategy':<10} {'client lr':>9} {'epochs':>6} {'server lr':>9} {'rounds':>6} {'val AUC':>8}")
    for t in trials:
        print(f"{t['strategy']:<10} {t['client_lr']:>9.3f} {t['local_epochs']:>6} "
              f"{(t['server_lr'] if t['strategy'] in ('fedadam', 'fedyogi') else 1.0):>9.3f} {t['rounds_run']:>6} "
              f"{t['validation_auc']:>8.4f}")
    print(f"chosen on validation: {best['strategy']} client lr {best['client_lr']:.3f} x {best['local_epochs']} epochs, "
          f"server lr {cfg.strategy.server_lr:.3f}: validation AUC {final.validation_auc:.4f}, test AUC {final.final_auc:.4f}")
    doc = {"command": "scripts/tune_federated.py", "rounds": args.rounds, "samples": args.samples, "seed": args.seed,
           "trials": trials, "best": best, "final": {"validation_auc": final.validation_auc, "test_auc": final.final_auc,
                                                     "history": final.history},
           "seconds": time.perf_counter() - started}
    (out / "tune_federated.json").write_text(json.dumps(doc, indent=2, default=float))
    if args.write:
        header = (f"# ml100k-fed tuned by scripts/tune_federated.py (Ray Tune, {args.samples} trials, ASHA, seed {args.seed}):\n"
                  f"# chosen on the validation split (AUC {final.validation_auc:.4f}); test AUC {final.final_auc:.4f}\n"
                  f"# reported once. Base workload: configs/ml100k_fedavg.yaml.\n")
        doc_cfg = config_to_dict(cfg)
        for key in ("plot", "tensorboard", "checkpoint_dir", "checkpoint_every", "target_auc", "num_actors"):
            doc_cfg.pop(key, None)
        Path(args.write).write_text(header + yaml.safe_dump(doc_cfg, sort_keys=False))
        print(f"wrote {args.write}")
    print(f"wrote {out / 'tune_federated.json'}")


if __name__ == "__main__":
    main()
