"""Benchmark: Distill-CF data summaries vs SVP-CF and random users at the same user budget.

For each budget (a fraction of the users: 0.1%, 1%, 10%) and seed, three ways to build a small
training set from the training split (per user, the latest 20% of interactions held out for test):

* Distill-CF: that many fake users with fractional weights (``sampling.distill``);
* NMF start: Distill-CF's ``init="nmf"`` start (a rank-``m`` NMF drawn once through the Gumbel sum)
  with no learning, an ablation;
* SVP-CF (user level): that many real users, those the proxy forgets most;
* random users: that many real users, uniformly.

infinity-AE and EASE are fitted on each and serve *every* real user from their full training
history (what a model learned from a summary is for); nDCG@10 on the test split, as a fraction of
the same model fitted on the whole training split. Each model's regularisation is chosen per
training set on a validation split (10% of each user's training interactions, random), the test
split is scored once. Distill-CF is treated the same way: the summary learned from the fit part
(with its own early stopping) is scored on validation; for the test split a summary is learned
from the whole training split for the number of steps chosen there. Mean and std over seeds.

A reference row per budget, not a summary: PureSVD of rank ``m`` (the training matrix projected on
its top ``m`` right singular vectors), the best rank-``m`` linear reconstruction in squared error.
infinity-AE fitted on ``m`` summary rows predicts combinations of those rows, a rank-``m`` model, so
this row shows roughly how much of the full-data model a rank-``m`` model can keep.

    nice -n 10 .venv/bin/python scripts/bench_distill.py          # ML-100K, 3 seeds
    .venv/bin/python scripts/bench_distill.py --quick             # generated data, seconds
    .venv/bin/python scripts/bench_distill.py --tune              # Distill-CF's own grid, on validation

Prints a table; writes results/sampling/distill.json and distill.png.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _fedbench import comma_list  # noqa: E402

from data_pipeline.atomic import AtomicOutputs  # noqa: E402
from sampling.distill import DistillCF, _holdout  # noqa: E402
from sampling.harness import user_split  # noqa: E402
from sampling.metrics import mean_metrics, user_metrics  # noqa: E402
from sampling.models import make_model  # noqa: E402
from sampling.models.base import binary, interaction_matrix  # noqa: E402
from sampling.samplers import make_sampler  # noqa: E402

BUDGETS = (0.001, 0.01, 0.1)
MODELS = {"infinity-ae": ("reg", (0.01, 0.1, 1.0, 10.0)), "ease": ("l2", (1.0, 10.0, 100.0, 500.0))}
SOURCES = ("distill-cf", "nmf start", "svp-cf", "random users")
TUNE_GRID = {"init": ("users", "nmf"), "gumbel_tau": (5.0,), "lr": (0.3,), "reg": (0.01, 0.03, 0.1)}
TUNE_SEEDS = (0, 1, 2)


def load(quick: bool):
    if quick:
        from sampling.synthetic import zipf_interactions

        return zipf_interactions("quick-distill", users=300, items=150, density=0.06, seed=0)
    from data_pipeline.datasets import dataset_path
    from data_pipeline.readers import load_interactions

    return load_interactions(dataset_path("ml-100k"), "movielens")


def matrices(data, seed: int = 0):
    """Training split (full), its fit/validation parts, and the test split, as users x items."""
    parts = user_split(data, 0.2)

    def matrix(rows):
        part = data.take(rows)
        return binary(interaction_matrix(part.column("user") - 1, part.column("item") - 1, part.column("rating"),
                                         data.num_users, data.num_items))  # fmt: skip

    train, test = matrix(parts.train), matrix(parts.test)
    fit, val = _holdout(train, 0.1, seed)
    return train, fit, val, test


def scores_ndcg(scores, inputs, targets, users) -> float:
    """Mean nDCG@10 of ``scores`` (rows of ``users``), the inputs' items excluded."""
    return mean_metrics([user_metrics(scores, inputs[users], targets[users], np.ones(inputs.shape[1]))])["ndcg@10"]


def ndcg(model, inputs, targets, users) -> float:
    return scores_ndcg(model.predict(inputs[users]), inputs, targets, users)


def validated(name: str, fit_rows, fit, val) -> tuple[float, float]:
    """The model's regularisation chosen on validation (learned from ``fit_rows``) and its score."""
    param, grid = MODELS[name]
    val_users = np.flatnonzero(np.diff(val.indptr))
    val_scores = {g: ndcg(make_model(name, **{param: g}).fit(fit_rows), fit, val, val_users) for g in grid}
    best = max(val_scores, key=val_scores.get)
    return best, val_scores[best]


def tuned_score(name: str, fit_rows, test_rows, fit, val, train, test) -> dict:
    """Choose the model's regularisation on validation (learned from ``fit_rows``), then score the
    test split with the model learned from ``test_rows`` (inputs: full training histories)."""
    best, val_score = validated(name, fit_rows, fit, val)
    test_users = np.flatnonzero(np.diff(test.indptr))
    model = make_model(name, **{MODELS[name][0]: best}).fit(test_rows)
    return {"param": best, "val": val_score, "test": ndcg(model, train, test, test_users)}


def _nmf_start(m: int, seed: int, distill_params: dict, x):
    """Distill-CF's NMF start drawn once, with no learning: what the learning adds to it."""
    params = {**distill_params, "init": "nmf", "steps": 0, "validation_fraction": 0.0}
    return DistillCF(budget=m, seed=seed, **params).fit(x).summary_


def user_rows(method: str, seed: int, fit, train, m: int):
    """The ``m`` users a user-level sampler keeps (chosen on the fit part), as rows of fit and train."""
    from data_pipeline.schema import build_interactions

    coo = fit.tocoo()
    log = build_interactions("fit", _frame(coo))
    sampler = make_sampler(method, seed=seed, **({"level": "user"} if method == "svp-cf" else {})).fit(log)
    users = log.vocabs["user"].decode(sampler.order_[:m] + 1).astype(np.int64)
    return fit[users], train[users]


def _frame(coo):
    import pandas as pd

    return pd.DataFrame({"user": coo.row, "item": coo.col, "rating": coo.data, "timestamp": np.arange(coo.nnz)})


def run(data, budgets, seeds, distill_params: dict, progress=True) -> dict:
    train, fit, val, test = matrices(data)
    out = {"dataset": data.name, "users": data.num_users, "budgets": {}, "distill_params": distill_params}
    full = {name: tuned_score(name, fit, train, fit, val, train, test) for name in MODELS}
    out["full"] = full
    for budget in budgets:
        m = DistillCF(budget=budget).summary_users(data.num_users)
        cell = {s: {name: [] for name in MODELS} for s in SOURCES}
        val_cell = {s: {name: [] for name in MODELS} for s in SOURCES}  # the same on validation
        seconds, steps = [], []
        for seed in seeds:
            start = time.perf_counter()
            chosen = DistillCF(budget=m, seed=seed, **distill_params).fit(fit)
            # Like every other training set: the validation-time summary learns from the fit part,
            # the test-time one from the whole training split, for the step count chosen on
            # validation (early stopping) and with no part of it held out.
            refit = {**distill_params, "steps": chosen.best_step_, "validation_fraction": 0.0}
            summary = DistillCF(budget=m, seed=seed, **refit).fit(train).summary_
            seconds.append(time.perf_counter() - start)
            steps.append(chosen.best_step_)
            sets = {"distill-cf": (chosen.summary_, summary),
                    "nmf start": tuple(_nmf_start(m, seed, distill_params, x) for x in (fit, train)),
                    "svp-cf": user_rows("svp-cf", seed, fit, train, m),
                    "random users": user_rows("user", seed, fit, train, m)}  # fmt: skip
            for source, (fit_rows, test_rows) in sets.items():
                for name in MODELS:
                    score = tuned_score(name, fit_rows, test_rows, fit, val, train, test)
                    cell[source][name].append(score["test"] / full[name]["test"])
                    val_cell[source][name].append(score["val"] / full[name]["val"])
            if progress:
                print(f"budget {budget:g} ({m} users) seed {seed}: distill {seconds[-1]:.0f} s", file=sys.stderr)
        out["budgets"][f"{budget:g}"] = {
            "users": m, "distill_seconds": float(np.mean(seconds)), "distill_steps": steps,
            "rank_reference": rank_reference(m, fit, val, train, test, full),
            "fraction": {s: {n: {"mean": float(np.mean(v)), "std": float(np.std(v)), "seeds": v} for n, v in c.items()}
                         for s, c in cell.items()},
            "val_fraction": {s: {n: {"mean": float(np.mean(v)), "seeds": v} for n, v in c.items()}
                             for s, c in val_cell.items()},
        }  # fmt: skip
    return out


def rank_reference(m: int, fit, val, train, test, full: dict) -> dict | None:
    """PureSVD of rank ``m`` as a fraction of full-data infinity-AE, on validation and test."""
    if m >= min(train.shape):
        return None
    out = {}
    for split, inputs, targets in (("val", fit, val), ("test", train, test)):
        users = np.flatnonzero(np.diff(targets.indptr))
        dense = inputs.toarray().astype(np.float64)
        basis = np.linalg.svd(dense, full_matrices=False)[2][:m].T
        out[split] = scores_ndcg(dense[users] @ basis @ basis.T, inputs, targets, users) / full["infinity-ae"][split]
    return out


def tune(data, budget: float, seeds=TUNE_SEEDS) -> dict:
    """Distill-CF's hyper-parameters on validation (no test data involved): each setting's summary
    is learned from the fit part, infinity-AE is fitted on it (its regularisation chosen there too)
    and scored on the validation split, as a fraction of infinity-AE fitted on the whole fit part;
    the mean over ``seeds`` decides. Distill-CF's own early-stopping score is recorded beside it."""
    _, fit, val, _ = matrices(data)
    full = validated("infinity-ae", fit, fit, val)[1]
    results = []
    for values in itertools.product(*TUNE_GRID.values()):
        params = dict(zip(TUNE_GRID, values))
        runs = []
        for seed in seeds:
            d = DistillCF(budget=budget, seed=seed, **params).fit(fit)
            score = validated("infinity-ae", d.summary_, fit, val)[1]
            runs.append({"seed": seed, "val_fraction": score / full, "own_val_ndcg@10": d.val_ndcg_, "best_step": d.best_step_})
        mean = float(np.mean([r["val_fraction"] for r in runs]))
        results.append({**params, "val_fraction": mean, "seeds": runs})
        per_seed = ", ".join(f"{r['val_fraction']:.1%}" for r in runs)
        print(params, f"validation {mean:.1%} of full-data infinity-AE (seeds: {per_seed})", file=sys.stderr)
    return {"grid": results, "seeds": list(seeds), "best": max(results, key=lambda r: r["val_fraction"])}


def format_table(report: dict) -> str:
    lines = [f"{report['dataset']}: nDCG@10 as a fraction of the model trained on the full training split "
             f"(infinity-AE {report['full']['infinity-ae']['test']:.4f}, EASE {report['full']['ease']['test']:.4f})",
             f"{'budget':>8} {'users':>6} {'source':<14}" + "".join(f"{n:>18}" for n in MODELS)]  # fmt: skip
    for budget, b in report["budgets"].items():
        for source, row in b["fraction"].items():
            cells = "".join(f"{_pm(row[n]):>18}" for n in MODELS)
            lines.append(f"{float(budget):>8.1%} {b['users']:>6} {source:<14}{cells}")
        if b.get("rank_reference"):
            lines.append(f"{'':>8} {'':>6} {'PureSVD rank ' + str(b['users']) + ' (reference)':<32}"
                         f"test {b['rank_reference']['test']:.1%} of infinity-AE")  # fmt: skip
    return "\n".join(lines)


def _pm(cell: dict) -> str:
    return f"{cell['mean']:.1%} ± {cell['std']:.1%}"


def plot(report: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = list(report["budgets"])
    fig, axes = plt.subplots(1, len(MODELS), figsize=(5 * len(MODELS), 3.8), sharey=True)
    for ax, name in zip(axes, MODELS):
        for source in SOURCES:
            mean = [report["budgets"][b]["fraction"][source][name]["mean"] for b in budgets]
            std = [report["budgets"][b]["fraction"][source][name]["std"] for b in budgets]
            ax.errorbar([float(b) for b in budgets], mean, yerr=std, marker="o", capsize=3, label=source)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.axhline(0.9, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("user budget (fraction of users)")
        ax.set_title(f"{name} trained on the summary")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("nDCG@10 / full-data nDCG@10")
    axes[0].legend(fontsize=8)
    fig.suptitle(report["dataset"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="generated data, budgets 1%% and 10%%, one seed, 40 steps")
    parser.add_argument("--seeds", type=comma_list(int), default="0,1,2")
    parser.add_argument("--tune", action="store_true",
                        help="run Distill-CF's hyper-parameter grid at 1%% on validation (seeds 0-2)")
    parser.add_argument("--out", default=str(ROOT / "results" / "sampling"))
    args = parser.parse_args(argv)
    data = load(args.quick)
    out = Path(args.out)
    if args.tune:
        result = tune(data, 0.01)
        with AtomicOutputs({"--out": (out / "distill_tune.json", (".json",))}) as tmp:
            tmp["--out"].write_text(json.dumps(result, indent=1))
        print(f"best on validation: {result['best']}")
        return 0
    budgets = (0.01, 0.1) if args.quick else BUDGETS
    seeds = [0] if args.quick else args.seeds
    params = {"steps": 40, "eval_every": 10} if args.quick else {}
    report = run(data, budgets, seeds, params)
    name = "distill_quick" if args.quick else "distill"
    with AtomicOutputs({"json": (out / f"{name}.json", (".json",)), "png": (out / f"{name}.png", (".png",))}) as tmp:
        tmp["json"].write_text(json.dumps(report, indent=1))
        plot(report, tmp["png"])
    print(format_table(report))
    print(f"wrote {out / name}.json and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
