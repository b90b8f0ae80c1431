"""The Data-Genie sweep: every sampler x rate x zoo model on every real dataset, plus the synthetic
corpus; the records ``python -m sampling.train_genie`` learns from.

    nice -n 10 .venv/bin/python scripts/sweep_genie.py            # full (see sampling.genie_sweep for bounds)
    .venv/bin/python scripts/sweep_genie.py --quick               # CI smoke run (seconds)
    .venv/bin/python scripts/sweep_genie.py --only filmtrust,coat # a subset

Real datasets are read from $FEDREC_DATA (default ../shared/datasets); one missing is skipped with
a warning (under --require-all it is an error). Resumable: the harness caches every trained model
under --cache. What the sweep bounds (seeds, scored users, model sizes, epochs) is listed in
``sampling.genie_sweep``; the bounds used are written into the output. Writes
results/sampling/genie_records.json and one harness result per dataset under
results/sampling/genie_sweep/.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _fedbench import comma_list  # noqa: E402

from data_pipeline.datasets import dataset_path  # noqa: E402
from data_pipeline.errors import DatasetNotFoundError  # noqa: E402
from data_pipeline.readers import load_interactions  # noqa: E402
from sampling.genie_sweep import SweepBounds, SweepPlan, sweep  # noqa: E402
from sampling.synthetic import genie_corpus, keep_whole_users, zipf_interactions  # noqa: E402

# (path under $FEDREC_DATA, --format): every real log the project reads.
REAL = [  # smallest first, so an interrupted sweep has the most datasets
    ("ml-100k", "movielens"),
    ("amazon-2018-5core/Appliances_5.json.gz", "amazon-json"),
    ("amazon-2018-5core/Gift_Cards_5.json.gz", "amazon-json"),
    ("amazon-2018-5core/AMAZON_FASHION_5.json.gz", "amazon-json"),
    ("amazon-2018-5core/All_Beauty_5.json.gz", "amazon-json"),
    ("coat", "coat"),
    ("filmtrust", "filmtrust"),
    ("ml-latest-small", "movielens"),
    ("hetrec2011-lastfm-2k", "lastfm"),
    ("citeulike-a", "citeulike"),
]
QUICK_REAL = [("coat", "coat"), ("amazon-2018-5core/Appliances_5.json.gz", "amazon-json")]


def corpus(quick: bool, only: set[str] | None, require_all: bool, max_rows: int):
    out = []
    if not quick and (not only or "synthetic" in only):  # the synthetic logs are small: sweep them early
        out += [(data, "synthetic") for data in genie_corpus(None)]
    for path, fmt in QUICK_REAL if quick else REAL:
        if only and not any(o in path for o in only):
            continue
        try:
            data = load_interactions(dataset_path(path), fmt)
            out.append((keep_whole_users(data, max_rows, np.random.default_rng(0)), "real"))
        except DatasetNotFoundError as exc:
            if require_all:
                raise
            print(f"warning: skipped: {exc}", file=sys.stderr)
    if quick:
        out += [(zipf_interactions(f"quick-zipf-{s}", users=150, items=100, density=0.08, seed=s), "synthetic") for s in (0, 1)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 small real logs + 2 tiny synthetic, 3 samplers, 2 rates, 3 models")
    parser.add_argument("--only", help="comma-separated substrings of dataset paths (or 'synthetic')")
    parser.add_argument("--require-all", action="store_true", help="a missing real dataset is an error")
    parser.add_argument("--out", default=str(ROOT / "results" / "sampling" / "genie_records.json"))
    parser.add_argument("--cache", default=str(ROOT / "results" / "sampling" / "cache"))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--seeds", type=comma_list(int), default=None,
                        help="sampler and model seeds (default: the bounds' seeds, 0 and 1); one other seed "
                             "alone is a replicate of the sweep")  # fmt: skip
    args = parser.parse_args(argv)
    plan = SweepPlan()
    if args.quick:
        plan = SweepPlan(methods=["random", "user", "temporal"], rates=[0.2, 0.6], models=["popularity", "item-knn", "ease"],
                         bounds=SweepBounds(max_eval_users=200, seeds=(0,)))  # fmt: skip
    if args.seeds:
        plan = replace(plan, bounds=replace(plan.bounds, seeds=tuple(args.seeds)))
    only = {s.strip() for s in args.only.split(",")} if args.only else None
    datasets = corpus(args.quick, only, args.require_all, plan.bounds.max_rows)
    records = sweep(datasets, plan, args.cache, args.out, progress=not args.quiet)
    print(f"{len(records)} records from {len(datasets)} datasets -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
