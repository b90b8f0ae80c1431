"""Retrain the shipped Data-Genie model: ``python -m sampling.train_genie``.

Sweeps every sampler x rate over the corpus (ML-100K, its variants and generated Zipf logs; see
``sampling.synthetic``), evaluates leave-one-dataset-out, and writes ``sampling/genie_model.json``
with the chosen regressor, its training table and the evaluation. Sweeps are cached (``--cache``),
so a rerun or an interrupted run only trains what is missing.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from sampling.genie import ESTIMATORS, MODEL_FILE, DataGenie, meta_features
from sampling.harness import DEFAULT_MODELS, DEFAULT_RATES, evaluate
from sampling.samplers import SAMPLER_NAMES


def sweep_records(datasets, seeds, cache_dir, progress=True) -> list[dict]:
    """One training row per dataset x sampler x rate: tau averaged over metrics and seeds."""
    records = []
    for data in datasets:
        start = time.perf_counter()
        result = evaluate(data, methods=SAMPLER_NAMES, rates=DEFAULT_RATES, models=DEFAULT_MODELS, seeds=seeds,
                          cache_dir=cache_dir, progress=progress)  # fmt: skip
        features = meta_features(result_train(data))
        for method in result.methods:
            for rate in result.rates:
                records.append({"dataset": data.name, "features": features, "method": method, "rate": rate,
                                "tau": result.tau(method, rate)[0]})  # fmt: skip
        print(f"{data.name}: {data.num_rows:,} rows, swept in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return [r for r in records if np.isfinite(r["tau"])]


def result_train(data):
    """Meta-features describe the data a sampler sees: the harness samples the training split."""
    from data_pipeline.splits import temporal_user_split

    return data.take(temporal_user_split(data, 0.2).train)


def leave_one_dataset_out(records: list[dict], make) -> dict:
    """For each dataset: fit on the others, then compare predictions and picks with its real taus.

    ``make`` builds a fresh, unfitted DataGenie."""
    out = {}
    for held in sorted({r["dataset"] for r in records}):
        train = [r for r in records if r["dataset"] != held]
        test = [r for r in records if r["dataset"] == held]
        genie = make().fit(train)
        pred = np.array([genie.predict(r["features"], r["method"], r["rate"]) for r in test])
        true = np.array([r["tau"] for r in test])
        picks = {}
        for rate in sorted({r["rate"] for r in test}):
            at = [i for i, r in enumerate(test) if r["rate"] == rate]
            chosen = at[int(np.argmax(pred[at]))]
            truth = {test[i]["method"]: true[i] for i in at}
            picks[f"{rate:g}"] = {"pick": test[chosen]["method"], "pick_tau": float(true[chosen]),
                                  "best": max(truth, key=truth.get), "best_tau": float(max(truth.values())),
                                  "random_tau": float(truth.get("random", np.nan))}  # fmt: skip
        out[held] = {"mae": float(np.mean(np.abs(pred - true))), "picks": picks}
    return out


def summarize(lodo: dict) -> dict:
    picks = [p for d in lodo.values() for p in d["picks"].values()]
    return {
        "mae": float(np.mean([d["mae"] for d in lodo.values()])),
        "pick_tau": float(np.mean([p["pick_tau"] for p in picks])),
        "best_tau": float(np.mean([p["best_tau"] for p in picks])),
        "random_tau": float(np.nanmean([p["random_tau"] for p in picks])),
        "regret": float(np.mean([p["best_tau"] - p["pick_tau"] for p in picks])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0", help="seeds per sweep (comma-separated)")
    parser.add_argument("--cache", default="results/sampling/cache", help="harness result cache")
    parser.add_argument("--out", default=str(MODEL_FILE), help="model file to write")
    parser.add_argument("--no-ml100k", action="store_true", help="synthetic corpus only (no real data needed)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    from sampling.synthetic import genie_corpus

    ml = None
    if not args.no_ml100k:
        from data_pipeline.datasets import dataset_path
        from data_pipeline.readers import load_interactions

        ml = load_interactions(dataset_path("ml-100k"), "movielens")
    seeds = [int(s) for s in args.seeds.split(",")]
    records = sweep_records(genie_corpus(ml), seeds, args.cache, progress=not args.quiet)

    evaluation = {}
    for label in ESTIMATORS:  # "mean" is the feature-blind baseline the others must beat
        lodo = leave_one_dataset_out(records, lambda label=label: DataGenie(estimator=label))
        evaluation[label] = {"summary": summarize(lodo), "datasets": lodo}
        s = evaluation[label]["summary"]
        print(f"{label:<8} MAE {s['mae']:.3f}  pick tau {s['pick_tau']:.3f}  best {s['best_tau']:.3f}  "
              f"random {s['random_tau']:.3f}  regret {s['regret']:.3f}")  # fmt: skip
    chosen = min(ESTIMATORS, key=lambda e: evaluation[e]["summary"]["regret"])
    genie = DataGenie(estimator=chosen).fit(records)
    genie.save(args.out, lodo=evaluation, seeds=seeds, models=list(DEFAULT_MODELS))
    print(f"chose {chosen}; wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
