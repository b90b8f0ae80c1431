"""Benchmark: does each sampler preserve the model ranking on ML-100K, and does Data-Genie pick well?

Runs the harness (every sampler x rate x model x seed; Kendall's tau vs the full data, averaged over
AUC, HR@10, nDCG@10 and PSP@10), then compares, at each rate, Data-Genie's pick with the best fixed
sampler and with random interactions, and how much data each needs to reach the same tau.
Data-Genie is scored leave-one-dataset-out: the model used here never saw ML-100K's sweep.

    .venv/bin/python scripts/bench_sampling.py            # full: 10 samplers x 5 rates x 6 models x 3 seeds
    .venv/bin/python scripts/bench_sampling.py --quick    # smoke run on generated data (seconds)
    .venv/bin/python scripts/bench_sampling.py --seeds 0 --fresh   # time one cold 10 x 5 x 6 sweep

Prints a table; writes results/sampling/bench.json, tau_heatmap.png and tau_vs_rate.png.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _fedbench import comma_list  # noqa: E402

from data_pipeline.atomic import write_json_atomic  # noqa: E402
from sampling import DataGenie, evaluate, meta_features  # noqa: E402
from sampling.genie import MODEL_FILE  # noqa: E402
from sampling.genie_sweep import SweepBounds, training_part  # noqa: E402
from sampling.harness import DEFAULT_MODELS, DEFAULT_RATES  # noqa: E402
from sampling.samplers import SAMPLER_NAMES  # noqa: E402


def load_data(quick: bool):
    if quick:
        from sampling.synthetic import zipf_interactions

        return zipf_interactions("quick-zipf", users=300, items=200, density=0.05, seed=0)
    from data_pipeline.datasets import dataset_path
    from data_pipeline.readers import load_interactions

    return load_interactions(dataset_path("ml-100k"), "movielens")


def lodo_genie(name: str) -> tuple[DataGenie | None, str]:
    """Data-Genie refitted on the shipped training table without ``name`` (leave-one-dataset-out)."""
    if not MODEL_FILE.exists():
        return None, "no genie_model.json"
    shipped = DataGenie.load()
    records = shipped.records()
    others = [r for r in records if r["dataset"] != name]
    if not others or len(others) == len(records):
        return shipped, "shipped model (dataset not in its training table)"
    return DataGenie(**{k: v for k, v in vars(shipped).items() if not k.endswith("_")}).fit(others), (
        f"refitted without {name} ({len({r['dataset'] for r in others})} datasets)"
    )


def rate_needed(curve: dict[float, float], tau: float) -> float | None:
    """Smallest rate whose measured tau reaches ``tau``, interpolating linearly between grid rates."""
    rates = sorted(curve)
    prev_r, prev_t = 0.0, -1.0
    for r in rates:
        t = curve[r]
        if t >= tau:
            if prev_t >= tau or r == rates[0]:
                return r
            return prev_r + (tau - prev_t) / (t - prev_t) * (r - prev_r)
        prev_r, prev_t = r, t
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: generated data, 3 samplers, 2 rates")
    parser.add_argument("--seeds", type=comma_list(int), default="0,1,2")
    parser.add_argument("--out", default=str(ROOT / "results" / "sampling"))
    parser.add_argument("--cache", default=None, help="harness cache (default: <out>/cache)")
    parser.add_argument("--fresh", action="store_true", help="time a cold sweep: use an empty throwaway cache")
    parser.add_argument("--target-rate", type=float, default=0.2)
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(args.quick)
    methods = ["random", "user", "svp-cf-prop"] if args.quick else list(SAMPLER_NAMES)
    rates = [0.2, 0.6] if args.quick else list(DEFAULT_RATES)
    models = ["popularity", "item-knn", "ease"] if args.quick else list(DEFAULT_MODELS)
    seeds = [0] if args.quick else args.seeds

    cache = args.cache or out / "cache"
    if args.fresh:
        import tempfile

        cache = tempfile.mkdtemp(prefix="bench-sampling-")
    wall, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
    # The sweep's model settings (they do not bind on ML-100K), so seed 0 shares its cache.
    params = SweepBounds().model_params(training_part(data).num_rows)
    result = evaluate(data, methods=methods, rates=rates, models=models, seeds=seeds, cache_dir=cache, progress=True,
                      model_params=params)  # fmt: skip
    wall = time.perf_counter() - wall
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
    # Random interactions at 100%: the end point of the curve "data random needs for a given tau".
    whole = evaluate(data, methods=["random"], rates=[1.0], models=models, seeds=seeds, cache_dir=cache,
                     progress=False, model_params=params)  # fmt: skip
    result.write_json(out / ("bench_quick_sweep.json" if args.quick else "bench_sweep.json"))
    result.plot(out / ("tau_heatmap_quick.png" if args.quick else "tau_heatmap.png"))

    curves = {m: {r: result.tau(m, r)[0] for r in rates} for m in methods}
    random_curve = {**curves["random"], 1.0: whole.tau("random", 1.0)[0]}
    best_fixed = max(methods, key=lambda m: np.nanmean(list(curves[m].values())))
    genie, genie_note = lodo_genie(data.name)
    features = meta_features(training_part(data))
    picks = {}
    for r in rates:
        pick, predicted = genie.choose(features, r, methods) if genie else (None, None)
        picks[f"{r:g}"] = {"pick": pick, "predicted_tau": predicted, "pick_tau": curves[pick][r] if pick else None,
                           "oracle": max(methods, key=lambda m: curves[m][r]),
                           "oracle_tau": max(curves[m][r] for m in methods),
                           "best_fixed_tau": curves[best_fixed][r], "random_tau": curves["random"][r]}  # fmt: skip

    # Data needed for a given tau: along the curve of Data-Genie's picks vs along random interactions.
    genie_curve = {float(r): p["pick_tau"] for r, p in picks.items() if p["pick"]}
    levels = {}
    for goal in (0.5, 0.6, 0.7, 0.8, 0.9):
        g, rnd = rate_needed(genie_curve, goal) if genie_curve else None, rate_needed(random_curve, goal)
        levels[f"{goal:g}"] = {"genie_rate": g, "random_rate": rnd, "ratio": g / rnd if g and rnd else None}

    target = args.target_rate if args.target_rate in rates else rates[0]
    at = picks[f"{target:g}"]
    efficiency = None
    if at["pick"]:
        tau_goal = at["pick_tau"]
        need_random = rate_needed(random_curve, tau_goal)
        efficiency = {"tau": tau_goal, "genie_rate": target, "random_rate": need_random,
                      "ratio": None if need_random is None else target / need_random}  # fmt: skip

    print(f"\n{data.name}: Kendall's tau vs full data, mean over"
          f" 4 metrics and {len(seeds)} seed(s) (± std over seeds); {len(models)} models: {', '.join(models)}")
    print(result.format_table())
    print(f"\nsweep: {wall:.0f} s wall, {cpu:.0f} s CPU (process), {result.trained_runs} models trained "
          f"({len(methods)} samplers x {len(rates)} rates x {len(models)} models x {len(seeds)} seeds)")
    print(f"\nData-Genie ({genie_note}); best fixed sampler over all rates: {best_fixed}")
    print(f"{'rate':>6} {'genie pick':>14} {'pred':>6} {'tau':>6} {'oracle':>14} {'tau':>6} {'best fixed':>10} {'random':>7}")
    for r, p in picks.items():
        print(f"{float(r):>6.0%} {str(p['pick']):>14} {p['predicted_tau'] or float('nan'):>6.2f} "
              f"{p['pick_tau'] if p['pick_tau'] is not None else float('nan'):>6.2f} {p['oracle']:>14} "
              f"{p['oracle_tau']:>6.2f} {p['best_fixed_tau']:>10.2f} {p['random_tau']:>7.2f}")  # fmt: skip
    if efficiency:
        rr = efficiency["random_rate"]
        print(f"\nto reach tau {efficiency['tau']:.2f}: genie's pick needs {target:.0%} of the data, random interactions "
              + (f"{rr:.0%} (genie keeps {efficiency['ratio']:.2f}x of it)" if rr else f"never within {max(rates):.0%}"))

    print(f"\n{'tau goal':>8} {'genie needs':>12} {'random needs':>13} {'ratio':>6}")
    for goal, lv in levels.items():
        show = lambda v: f"{v:.0%}" if v else f">{max(rates):.0%}"  # noqa: E731
        ratio = f"{lv['ratio']:.2f}" if lv["ratio"] else "-"
        print(f"{goal:>8} {show(lv['genie_rate']):>12} {show(lv['random_rate']):>13} {ratio:>6}")

    targets = {
        "tau_at_target_rate": {"value": at["pick_tau"], "goal": ">= 0.8",
                               "met": at["pick_tau"] is not None and at["pick_tau"] >= 0.8},
        "data_vs_random": {"value": efficiency["ratio"] if efficiency else None, "goal": "<= 0.2 (5x less data)",
                           "met": bool(efficiency and efficiency["ratio"] is not None and efficiency["ratio"] <= 0.2)},
    }  # fmt: skip
    print(f"\ntargets: tau at {target:.0%} {targets['tau_at_target_rate']} ; data vs random {targets['data_vs_random']}")
    report = {"dataset": data.name, "targets": targets, "random_at_100": random_curve[1.0], "methods": methods, "rates": rates, "models": models, "seeds": seeds,
              "tau": {m: {f"{r:g}": dict(zip(("mean", "std"), result.tau(m, r))) for r in rates} for m in methods},
              "noise_ceiling": result.noise_ceiling, "sweep_wall_seconds": wall, "sweep_cpu_seconds": cpu,
              "trained_runs": result.trained_runs, "best_fixed": best_fixed, "genie": genie_note,
              "picks": picks, "efficiency": efficiency, "data_needed": levels}  # fmt: skip
    name = "bench_quick" if args.quick else "bench"
    write_json_atomic(out / f"{name}.json", report, indent=1, default=float)
    _plot_curves(curves, result.noise_ceiling, out / f"tau_vs_rate{'_quick' if args.quick else ''}.png", data.name)
    print(f"wrote {out / f'{name}.json'}", file=sys.stderr)
    return 0


def _plot_curves(curves: dict, ceiling: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, curve in curves.items():
        ax.plot(list(curve), list(curve.values()), marker="o", label=method)
    values = [v for v in ceiling.values() if v is not None]
    if values:
        ax.axhline(float(np.mean(values)), color="k", ls="--", lw=1, label="noise ceiling")
    ax.set_xlabel("sampling rate")
    ax.set_ylabel("Kendall's tau vs full data")
    ax.set_title(f"{title}: ranking preservation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
