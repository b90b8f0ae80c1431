"""``fedrec sample``: write a subset of an interaction log, or (``fedrec sample evaluate``) measure
how well each sampler preserves the ranking of the model zoo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data_pipeline.errors import ConfigError
from data_pipeline.formats import INTERACTION_FORMATS

SAMPLE_EXAMPLES = """\
examples:
  fedrec sample --input ml-100k --format movielens --rate 0.2 --method random --out s.parquet --report r.json
  fedrec sample --input log.csv --format csv --columns user,item,rating,timestamp --rate 0.1 \\
      --method auto --out subset.inter --report report.json
  fedrec sample --input ml-100k --format movielens --min-tau 0.8 --out s.parquet --report r.json
  fedrec sample --input ml-100k --format movielens --method distill-cf --rate 0.01 --out summary.parquet
  fedrec sample evaluate --input ml-100k --format movielens --rates 0.1,0.2,0.4 --json tau.json

--rate is the fraction of rows kept. --method auto asks the shipped Data-Genie model for the sampler
it predicts preserves model rankings best at that rate; the report carries its predicted Kendall tau.
--min-tau T instead of --rate keeps the smallest fraction at which Data-Genie predicts tau >= T.
--method distill-cf does not sample: it synthesizes rate x (number of users) fake users whose
interactions carry fractional weights in (0, 1] (the rating column), learned with Distill-CF.
--out must end in .parquet or .inter (RecBole atomic file); --report in .json. Outputs appear
whole or not at all.
"""

EVALUATE_EXAMPLES = """\
example:
  fedrec sample evaluate --input ml-100k --format movielens --rates 0.1,0.2,0.4 \\
      --methods random,user,svp-cf --models popularity,ease,mf --seeds 0,1 --json tau.json

Writes Kendall's tau per method, rate and metric to --json and a heat map next to it (--png).
Results are cached under --cache: a repeated or interrupted sweep resumes without retraining.
--split auto holds out each user's latest interactions when the log has times, random ones when not.
"""


def register(subparsers) -> None:
    from sampling.names import DEFAULT_MODELS, DEFAULT_RATES, METHODS, SAMPLER_NAMES, SPLITS

    parser = subparsers.add_parser(
        "sample",
        help="sample an interaction log so model rankings are preserved (SVP-CF, Data-Genie)",
        description="Keep a fraction of an interaction log, chosen so that models rank as on the full data.",
        epilog=SAMPLE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _input_args(parser)
    parser.add_argument("--rate", type=float, help="fraction of rows to keep, in (0, 1]")
    parser.add_argument("--min-tau", type=float, help="instead of --rate: smallest rate with predicted tau >= this")
    parser.add_argument("--method", default="auto", choices=METHODS, help="sampler (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--out", help="output file: .parquet or .inter (RecBole)")
    parser.add_argument("--report", help="JSON report path, .json (default: print it)")
    parser.set_defaults(func=run_sample)

    sub = parser.add_subparsers(dest="sample_command", metavar="{evaluate}")
    ev = sub.add_parser(
        "evaluate",
        help="Kendall's tau of model rankings on samples vs the full data",
        description="Run the sampling harness: every sampler x rate x model, tau vs the full data.",
        epilog=EVALUATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _input_args(ev)
    ev.add_argument("--rates", default=",".join(f"{r:g}" for r in DEFAULT_RATES), help="comma-separated rates")
    ev.add_argument("--methods", default=",".join(SAMPLER_NAMES), help="comma-separated samplers")
    ev.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated models of the zoo")
    ev.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    ev.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction of each user's history")
    ev.add_argument("--json", required=True, help="output JSON path (.json)")
    ev.add_argument("--png", help="heat map path, .png (default: the --json path with .png)")
    ev.add_argument("--split", choices=SPLITS, default="auto", help="held-out interactions per user (default: auto)")
    ev.add_argument("--cache", default="results/sampling/cache", help="result cache folder")
    ev.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=run_evaluate)


def _input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="interaction file or folder (a bare name is looked up in $FEDREC_DATA)")
    parser.add_argument("--format", choices=INTERACTION_FORMATS, help="input format")
    parser.add_argument("--columns", help="source column names in order, e.g. user,item,rating,timestamp")


def _required(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        if getattr(args, name) is None:
            raise ConfigError(f"--{name}", "is required")


def run_sample(args: argparse.Namespace) -> int:
    from data_pipeline.atomic import AtomicOutputs
    from sampling.api import OUTPUT_SUFFIXES, load, sample, smallest_rate, write_sample

    _required(args, "input", "format", "out")
    if (args.rate is None) == (args.min_tau is None):
        raise ConfigError("--rate", "give exactly one of --rate and --min-tau")
    outputs = AtomicOutputs({"--out": (args.out, OUTPUT_SUFFIXES), "--report": (args.report, (".json",))})
    data = load(args.input, args.format, args.columns)
    rate, method = args.rate, args.method
    if args.min_tau is not None:
        plan = smallest_rate(data, args.min_tau, method)
        rate, method = plan.rate, plan.method
    result = sample(data, rate, method, args.seed)
    report = {"input": str(args.input), "output": str(args.out), **result.to_dict()}
    if args.min_tau is not None:
        report.update(min_tau=args.min_tau, requested_method=args.method)
    text = json.dumps(report, indent=1)
    with outputs as tmp:
        write_sample(result.data, tmp["--out"])
        if args.report:
            tmp["--report"].write_text(text + "\n")
    if not args.report:
        print(text)
    tau = "n/a" if result.predicted_tau is None else f"{result.predicted_tau:.2f}"
    print(
        f"{result.method}: kept {result.rows_after:,} of {result.rows_before:,} rows ({result.rate:.2%}), "
        f"{result.users_after:,}/{result.users_before:,} users, {result.items_after:,}/{result.items_before:,} items; "
        f"predicted tau {tau} -> {args.out}",
        file=sys.stderr,
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from data_pipeline.atomic import AtomicOutputs
    from sampling.api import evaluate

    _required(args, "input", "format")
    png = args.png or str(Path(args.json).with_suffix(".png"))
    outputs = AtomicOutputs({"--json": (args.json, (".json",)), "--png": (png, (".png",))})
    result = evaluate(
        args.input, format=args.format, columns=args.columns, methods=args.methods, rates=args.rates,
        models=args.models, seeds=args.seeds, test_fraction=args.test_fraction,
        cache_dir=None if args.no_cache else args.cache, progress=not args.quiet, split=args.split,
    )  # fmt: skip
    with outputs as tmp:
        result.write_json(tmp["--json"])
        result.plot(tmp["--png"])
    print(result.format_table())
    print(f"wrote {args.json} and {png}", file=sys.stderr)
    return 0
