"""Train and choose the shipped Data-Genie: ``python -m sampling.train_genie --records FILE``.

The records come from the sweep (``scripts/sweep_genie.py``: every sampler x rate on every real log
plus a synthetic corpus). Each candidate estimator is scored *leave-one-real-dataset-out*: for every
real dataset, fit on all other records (other real logs and the synthetic corpus), then at each rate
pick the sampler with the highest predicted tau and compare with the best sampler there:

    regret(dataset) = mean over rates of (best tau - tau of the pick)

The candidate with the lowest mean regret is chosen; the dataset-blind ``mean`` (the best sampler
on average over the training datasets, per rate) is the baseline it has to beat. Picking the best
of several candidates on the same held-out datasets flatters the winner, so the report also gives
the *nested* regret: for each held-out dataset the candidate is chosen by leave-one-out on the
other real datasets only, then scored on the held-out one. That is the honest estimate of what
"choose by leave-one-out, then ship" does on an unseen dataset, so the chosen candidate is shipped
only when its nested regret is below the mean's; otherwise the mean is (``shipped_candidate``).
Either is fitted on every record.

Writes the model (``--out``, default ``sampling/genie_model.json``, with the evaluation inside it),
a JSON report and a PNG of per-dataset regrets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from data_pipeline.atomic import AtomicOutputs
from sampling.genie import MODEL_FILE, DataGenie
from sampling.genie_sweep import load_records

# Candidate estimators (DataGenie parameters), the dataset-blind mean first.
CANDIDATES: dict[str, dict] = {
    "mean": {"estimator": "mean"},
    "knn-1": {"estimator": "knn", "n_neighbors": 1},
    "knn-3": {"estimator": "knn", "n_neighbors": 3},
    "knn-5": {"estimator": "knn", "n_neighbors": 5},
    # k-NN shrunk toward the mean (DataGenie's prior_weight). Added after the table without them had
    # been seen (1-NN beat the mean leave-one-out, not nested); the nested regret scores the choice
    # among them, not the decision to try them.
    **{f"knn-{k} prior {p:g}": {"estimator": "knn", "n_neighbors": k, "prior_weight": p}
       for k in (1, 3, 5) for p in (0.25, 0.5, 0.75)},
    "gbr": {"estimator": "gbr", "n_estimators": 200, "max_depth": 3},
    "forest": {"estimator": "forest", "n_estimators": 200, "max_depth": 3},
}


def real_datasets(records: list[dict]) -> list[str]:
    return sorted({r["dataset"] for r in records if r.get("group", "real") == "real"})


def held_out_regret(records: list[dict], held: str, params: dict, exclude: tuple[str, ...] = ()) -> dict:
    """Fit on every record but ``held`` (and ``exclude``); per rate, the pick on ``held`` vs its best."""
    train = [r for r in records if r["dataset"] != held and r["dataset"] not in exclude]
    test = [r for r in records if r["dataset"] == held]
    genie = DataGenie(**params).fit(train)
    features = test[0]["features"] if genie.uses_features else None
    picks = {}
    for rate in sorted({r["rate"] for r in test}):
        truth = {r["method"]: r["tau"] for r in test if r["rate"] == rate}
        methods = [m for m in genie.methods_ if m in truth]
        pick, predicted = genie.choose(features, rate, methods)
        best = max(truth, key=truth.get)
        picks[f"{rate:g}"] = {"pick": pick, "predicted_tau": predicted, "pick_tau": truth[pick], "best": best,
                              "best_tau": truth[best], "random_tau": truth.get("random", float("nan"))}  # fmt: skip
    regret = float(np.mean([p["best_tau"] - p["pick_tau"] for p in picks.values()]))
    return {"regret": regret, "picks": picks}


def leave_one_real_out(records: list[dict], params: dict, exclude: tuple[str, ...] = ()) -> dict[str, dict]:
    return {d: held_out_regret(records, d, params, exclude) for d in real_datasets(records) if d not in exclude}


def evaluate_candidates(records: list[dict], candidates: dict[str, dict] = CANDIDATES, progress=None) -> dict:
    """Leave-one-real-out regret of every candidate, the chosen one and the nested regret."""
    lodo = {}
    for name, params in candidates.items():
        lodo[name] = leave_one_real_out(records, params)
        if progress:
            progress(name)
    mean_regret = {name: float(np.mean([d["regret"] for d in per.values()])) for name, per in lodo.items()}
    chosen = min(candidates, key=lambda n: (mean_regret[n], n != "mean"))  # a tie keeps the mean
    nested = {}
    for held in real_datasets(records):  # choose without the held-out dataset, then score on it
        inner = {n: np.mean([d["regret"] for d in leave_one_real_out(records, p, (held,)).values()])
                 for n, p in candidates.items()}  # fmt: skip
        pick = min(candidates, key=lambda n: (inner[n], n != "mean"))
        nested[held] = {"chosen": pick, "regret": lodo[pick][held]["regret"]}
        if progress:
            progress(f"nested {held}")
    base = lodo["mean"]
    wins = sum(lodo[chosen][d]["regret"] < base[d]["regret"] for d in base)
    nested_regret = float(np.mean([v["regret"] for v in nested.values()]))
    return {
        "chosen": chosen,
        "shipped": shipped_candidate(chosen, nested_regret, mean_regret["mean"]),
        "mean_regret": mean_regret,
        "nested_regret": nested_regret,
        "nested": nested,
        "wins_over_mean": int(wins),
        "real_datasets": len(base),
        "datasets": lodo,
    }


def shipped_candidate(chosen: str, nested_regret: float, mean_baseline: float) -> str:
    """The leave-one-out choice if its nested regret beats the dataset-blind mean's regret, else the mean."""
    return chosen if nested_regret < mean_baseline else "mean"


def format_report(evaluation: dict) -> str:
    chosen, lodo = evaluation["chosen"], evaluation["datasets"]
    names = list(lodo)
    width = {n: max(9, len(n) + 2) for n in names}
    lines = [f"{'dataset':<24}" + "".join(f"{n:>{width[n]}}" for n in names) + f"{'nested':>9}"]
    for d in real_datasets_from(lodo):
        row = "".join(f"{lodo[n][d]['regret']:>{width[n]}.3f}" for n in names)
        lines.append(f"{d:<24}{row}{evaluation['nested'][d]['regret']:>9.3f}")
    lines.append(f"{'mean':<24}" + "".join(f"{evaluation['mean_regret'][n]:>{width[n]}.3f}" for n in names)
                 + f"{evaluation['nested_regret']:>9.3f}")  # fmt: skip
    lines.append(
        f"chosen: {chosen} (regret {evaluation['mean_regret'][chosen]:.3f} vs the mean's "
        f"{evaluation['mean_regret']['mean']:.3f}; lower on {evaluation['wins_over_mean']} of "
        f"{evaluation['real_datasets']} real datasets; nested {evaluation['nested_regret']:.3f})"
    )
    lines.append(f"shipped: {evaluation['shipped']} (a learned estimator ships when its nested regret beats "
                 f"the mean's {evaluation['mean_regret']['mean']:.3f})")  # fmt: skip
    return "\n".join(lines)


def real_datasets_from(lodo: dict) -> list[str]:
    return sorted(next(iter(lodo.values())))


def plot(evaluation: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lodo, chosen = evaluation["datasets"], evaluation["chosen"]
    datasets = real_datasets_from(lodo)
    shown = ["mean"] + ([chosen] if chosen != "mean" else [])
    x = np.arange(len(datasets))
    fig, ax = plt.subplots(figsize=(1.0 * len(datasets) + 3, 4))
    width = 0.8 / (len(shown) + 1)
    for k, name in enumerate(shown):
        ax.bar(x + k * width, [lodo[name][d]["regret"] for d in datasets], width, label=f"{name} (leave-one-out)")
    ax.bar(x + len(shown) * width, [evaluation["nested"][d]["regret"] for d in datasets], width, label="nested choice")
    ax.set_xticks(x + width * len(shown) / 2, datasets, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("regret (best tau - tau of the pick)")
    ax.set_title("Data-Genie, leave-one-real-dataset-out")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", default="results/sampling/genie_records.json", help="the sweep's records")
    parser.add_argument("--out", default=str(MODEL_FILE), help="model file to write (.json)")
    parser.add_argument("--report", default="results/sampling/genie_lodo.json", help="evaluation report (.json)")
    parser.add_argument("--png", default="results/sampling/genie_lodo.png", help="per-dataset regret plot (.png)")
    parser.add_argument("--quick", action="store_true", help="candidates mean and knn-1 only (CI smoke run)")
    args = parser.parse_args(argv)
    records = load_records(args.records)
    candidates = {k: CANDIDATES[k] for k in ("mean", "knn-1")} if args.quick else CANDIDATES
    outputs = AtomicOutputs({"--out": (args.out, (".json",)), "--report": (args.report, (".json",)),
                             "--png": (args.png, (".png",))})  # fmt: skip
    if len(real_datasets(records)) < 2:
        from data_pipeline.errors import ConfigError

        raise ConfigError("--records", "leave-one-real-dataset-out needs records of at least two real datasets")
    evaluation = evaluate_candidates(records, candidates, progress=lambda s: print(f"  {s} done", file=sys.stderr))
    print(format_report(evaluation))
    genie = DataGenie(**candidates[evaluation["shipped"]]).fit(records)
    import json

    with outputs as tmp:
        genie.save(tmp["--out"], evaluation={k: v for k, v in evaluation.items() if k != "datasets"},
                   candidates=candidates)  # fmt: skip
        tmp["--report"].write_text(json.dumps(evaluation, indent=1))
        plot(evaluation, tmp["--png"])
    print(f"shipped {evaluation['shipped']} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
