"""Benchmark: Distill-CF data summaries vs SVP-CF and random users at the same user budget.

For each budget (a fraction of the users: 0.1%, 1%, 10%) and seed, four ways to build a small
training set from the training split (per user, the latest 20% of interactions held out for test):

* Distill-CF: that many fake users with fractional weights (``sampling.distill``);
* NMF start: Distill-CF's ``init="nmf"`` start (a rank-``m`` NMF drawn once through the Gumbel sum)
  with no learning, an ablation;
* SVP-CF (user level): that many real users, those the proxy forgets most;
* random users: that many real users, uniformly.

infinity-AE and EASE are fitted on each and serve *every* real user from their full training
history (what a model learned from a summary is for); nDCG@10 on the test split, as a fraction of
the same model fitted on the whole training split. Each model's regularisation is chosen per
training set on a validation split (each user's latest 10% of training interactions, as the test
split holds out each user's latest), the test split is scored once. Distill-CF is treated the
same way: the summary learned from the fit part (with its own early stopping, and its start when
``init="best"``) is scored on validation; for the test split a summary is learned from the whole
training split from the start and for the number of steps chosen there. Mean and std over seeds.

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
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _fedbench import comma_list  # noqa: E402

from data_pipeline.atomic import AtomicOutputs  # noqa: E402
from data_pipeline.schema import InteractionData  # noqa: E402
from sampling.distill import DistillCF  # noqa: E402
from sampling.harness import user_split  # noqa: E402
from sampling.metrics import mean_metrics, user_metrics  # noqa: E402
from sampling.models import make_model  # noqa: E402
from sampling.models.base import binary, log_matrix  # noqa: E402
from sampling.samplers import make_sampler  # noqa: E402

BUDGETS = (0.001, 0.01, 0.1)
MODELS = {"infinity-ae": ("reg", (0.01, 0.1, 1.0, 10.0)), "ease": ("l2", (1.0, 10.0, 100.0, 500.0))}
SOURCES = ("distill-cf", "nmf start", "svp-cf", "random users")
TUNE_GRID = {"init": ("users", "nmf", "best"), "gumbel_tau": (5.0,), "lr": (0.3,), "reg": (0.01, 0.03, 0.1)}
TUNE_SEEDS = (0, 1, 2)
TUNE_BUDGETS = (0.01, 0.1)  # the whole grid at the first, the finalists at every one
TUNE_MARGIN = 0.002  # a finalist scores within this of the best at the first budget


def load(quick: bool):
    if quick:
        from sampling.synthetic import zipf_interactions

        return zipf_interactions("quick-distill", users=300, items=150, density=0.06, seed=0)
    from data_pipeline.datasets import dataset_path
    from data_pipeline.readers import load_interactions

    return load_interactions(dataset_path("ml-100k"), "movielens")


class Splits(NamedTuple):
    """users x items matrices of the splits, and the logs Distill-CF learns from (it reads their times)."""

    train: sp.csr_matrix
    fit: sp.csr_matrix
    val: sp.csr_matrix
    test: sp.csr_matrix
    train_log: InteractionData
    fit_log: InteractionData


def matrices(data) -> Splits:
    """Training split (full), its fit/validation parts, and the test split. Validation is split from
    the training split the way test is split from the data: each user's latest interactions (random
    ones for a log without times), so it imitates the test split."""
    parts = user_split(data, 0.2)
    train_log = data.take(parts.train)
    inner = user_split(train_log, 0.1)
    fit_log = train_log.take(inner.train)

    def matrix(part):
        return binary(log_matrix(part))

    return Splits(matrix(train_log), matrix(fit_log), matrix(train_log.take(inner.test)), matrix(data.take(parts.test)),
                  train_log, fit_log)  # fmt: skip


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
    train, fit, val, test, train_log, fit_log = matrices(data)
    out = {"dataset": data.name, "users": data.num_users, "budgets": {}, "distill_params": distill_params}
    full = {name: tuned_score(name, fit, train, fit, val, train, test) for name in MODELS}
    out["full"] = full
    for budget in budgets:
        m = DistillCF(budget=budget).summary_users(data.num_users)
        cell = {s: {name: [] for name in MODELS} for s in SOURCES}
        val_cell = {s: {name: [] for name in MODELS} for s in SOURCES}  # the same on validation
        seconds, steps, starts = [], [], []
        for seed in seeds:
            start = time.perf_counter()
            chosen = DistillCF(budget=m, seed=seed, **distill_params).fit(fit_log)
            # Like every other training set: the validation-time summary learns from the fit part,
            # the test-time one from the whole training split, for the step count chosen on
            # validation (early stopping) and with no part of it held out.
            refit = {**distill_params, "steps": chosen.best_step_, "validation_fraction": 0.0, "init": chosen.init_}
            summary = DistillCF(budget=m, seed=seed, **refit).fit(train_log).summary_
            seconds.append(time.perf_counter() - start)
            steps.append(chosen.best_step_)
            starts.append(chosen.init_)
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
            "users": m, "distill_seconds": float(np.mean(seconds)), "distill_steps": steps, "distill_starts": starts,
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


def tune(data, budgets=TUNE_BUDGETS, seeds=TUNE_SEEDS, margin: float = TUNE_MARGIN) -> dict:
    """Distill-CF's hyper-parameters on validation (no test data involved): each setting's summary
    is learned from the fit part, infinity-AE is fitted on it (its regularisation chosen there too)
    and scored on the validation split, as a fraction of infinity-AE fitted on the whole fit part,
    averaged over ``seeds``. Two stages: the whole grid at ``budgets[0]`` (the target's 1%); the
    settings within ``margin`` of the best there (the finalists) are scored at the other budgets too,
    and their mean over budgets decides (one default serves every budget). Distill-CF's own
    early-stopping score is recorded beside each.

    ``init="best"`` is not learned a third time: it keeps whichever of the same setting's users and
    nmf runs (same seed) scores best on Distill-CF's own validation, the rule ``DistillCF`` applies
    (``tests/unit/test_sampling_distill.py`` checks that rule)."""
    _, fit, val, _, _, fit_log = matrices(data)
    full = validated("infinity-ae", fit, fit, val)[1]
    fits: dict[tuple, DistillCF] = {}

    def fitted(budget: float, params: dict, seed: int) -> DistillCF:
        if params["init"] == "best":
            alone = [fitted(budget, {**params, "init": start}, seed) for start in ("users", "nmf")]
            return max(alone, key=lambda d: d.val_ndcg_)  # a tie keeps the users start, as DistillCF does
        key = (budget, seed, tuple(sorted(params.items())))
        if key not in fits:
            fits[key] = DistillCF(budget=budget, seed=seed, **params).fit(fit_log)
        return fits[key]

    def scored(budget: float, params: dict) -> dict:
        runs = []
        for seed in seeds:
            d = fitted(budget, params, seed)
            score = validated("infinity-ae", d.summary_, fit, val)[1]
            runs.append({"seed": seed, "val_fraction": score / full, "own_val_ndcg@10": d.val_ndcg_,
                         "best_step": d.best_step_, "start": d.init_})  # fmt: skip
        mean = float(np.mean([r["val_fraction"] for r in runs]))
        per_seed = ", ".join(f"{r['val_fraction']:.1%}" for r in runs)
        print(f"budget {budget:g}", params, f"validation {mean:.1%} of full-data infinity-AE (seeds: {per_seed})",
              file=sys.stderr)  # fmt: skip
        return {"val_fraction": mean, "seeds": runs}

    first = f"{budgets[0]:g}"
    results = []
    for values in itertools.product(*TUNE_GRID.values()):
        params = dict(zip(TUNE_GRID, values))
        results.append({**params, "budgets": {first: scored(budgets[0], params)}})
    top = max(r["budgets"][first]["val_fraction"] for r in results)
    finalists = [r for r in results if r["budgets"][first]["val_fraction"] >= top - margin]
    for r in finalists:
        params = {k: r[k] for k in TUNE_GRID}
        r["budgets"].update({f"{b:g}": scored(b, params) for b in budgets[1:]})
        r["val_fraction"] = float(np.mean([b["val_fraction"] for b in r["budgets"].values()]))
    return {"grid": results, "seeds": list(seeds), "budgets": list(budgets), "margin": margin,
            "finalists": len(finalists), "best": max(finalists, key=_tune_rank)}  # fmt: skip


def _tune_rank(result: dict) -> tuple:
    """Validation first. Settings that tie exactly (they kept the same summaries, e.g. an NMF start
    no setting's learning beat) go to ``init="best"``, which can still learn where learning helps
    (other budgets), then to the larger regularisation."""
    return round(result["val_fraction"], 6), result["init"] == "best", result["reg"]


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
                        help="Distill-CF's hyper-parameter grid on validation (seeds 0-2): all of it at 1%%, "
                             "the finalists at 10%% too")
    parser.add_argument("--out", default=str(ROOT / "results" / "sampling"))
    args = parser.parse_args(argv)
    data = load(args.quick)
    out = Path(args.out)
    if args.tune:
        result = tune(data, (0.01, 0.1) if args.quick else TUNE_BUDGETS, [0] if args.quick else TUNE_SEEDS)
        with AtomicOutputs({"--out": (out / "distill_tune.json", (".json",))}) as tmp:
            tmp["--out"].write_text(json.dumps(result, indent=1))
        best = result["best"]
        per_budget = ", ".join(f"{float(b):.1%}: {v['val_fraction']:.1%}" for b, v in best["budgets"].items())
        print(f"best on validation ({result['finalists']} finalists): " + ", ".join(f"{k}={best[k]}" for k in TUNE_GRID)
              + f"; mean {best['val_fraction']:.1%} ({per_budget})")  # fmt: skip
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
