"""``fedrec data preprocess``: the preprocessing service on the command line."""

from __future__ import annotations

import argparse
import json
import math
import sys

from data_pipeline.clihelp import HelpFormatter
from data_pipeline.errors import ConfigError

FORMATS = ("criteo", "csv", "tsv", "movielens")  # config.PREPROCESS_FORMATS, without importing pydantic here

EPILOG = """examples:
  fedrec data preprocess --input ../shared/datasets/criteo-sample/train.tsv --format criteo --workers 1 \\
      --out sample.parquet --json report.json
  fedrec data synth --rows 10000000 --max-cardinality 100000 --out /tmp/synth10m.tsv
  fedrec data preprocess --input /tmp/synth10m.tsv --format criteo --workers 1-4 --buckets 10000 \\
      --train-steps 500 --json dpp.json          # trains the central DLRM on the stream
  fedrec data preprocess --input ../shared/datasets/ml-100k --format movielens --workers 0 \\
      --negatives 4 --out ml100k-neg.parquet     # 0 workers: in this process (on-trainer baseline)

The report (--json) has rows, rows_per_second, workers and, with --train-steps,
trainer_stall_fraction: the share of the trainer's time spent waiting for a batch."""


def add_preprocess_parser(sub, trainer_factory=None) -> None:
    p = sub.add_parser(
        "preprocess",
        help="parse and transform in a pool of Ray Data workers, stream batches to a trainer",
        formatter_class=HelpFormatter,
        epilog=EPILOG,
    )
    p.add_argument("--input", required=True, metavar="PATH", help="file, or folder for --format movielens")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument(
        "--workers",
        default="1",
        metavar="N|MIN-MAX",
        help="preprocessing workers: a fixed pool of N, a pool autoscaled between MIN and MAX, or 0 "
        "to preprocess in this process (the on-trainer baseline)",
    )
    p.add_argument("--out", metavar="OUT.parquet", help="write the preprocessed rows here")
    p.add_argument("--json", metavar="REPORT.json", help="write the run's report here")
    p.add_argument(
        "--train-steps", type=int, default=0, metavar="K", help="also train the central DLRM for K steps on the stream"
    )
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--buckets", type=int, default=100_000, help="hash buckets per categorical feature")
    p.add_argument("--bucketize", action="store_true", help="criteo: add log2 buckets of each dense feature")
    p.add_argument("--negatives", type=int, default=0, help="interactions: sampled negatives per row")
    p.add_argument("--label-threshold", type=float, default=None, help="interactions: label = rating >= this")
    p.add_argument("--columns", default="user,item,rating,timestamp", help="csv/tsv: column names in file order")
    p.add_argument("--header", action=argparse.BooleanOptionalAction, default=None, help="csv/tsv: line 1 is a header")
    p.add_argument("--encoding", default="utf-8", help="the input's encoding (ASCII-compatible)")
    p.add_argument("--on-bad-lines", choices=("error", "skip"), default="error")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ordered", action="store_true", help="keep file order (workers then wait on the slowest)")
    p.add_argument("--range-mb", type=float, default=32.0, help="MiB of input per work unit")
    p.add_argument("--block-rows", type=int, default=50_000, help="rows a worker parses at once")
    p.add_argument("--lr", type=float, default=0.01, help="trainer: learning rate (Adagrad)")
    p.add_argument("--embedding-dim", type=int, default=16, help="trainer: embedding dimension")
    p.add_argument("--trainer-threads", type=int, default=1, help="trainer: torch intra-op threads")
    p.set_defaults(func=lambda args: cmd_preprocess(args, trainer_factory))


def parse_workers(text: str) -> tuple[int, int]:
    """``"N"`` -> (N, N); ``"MIN-MAX"`` (or ``MIN:MAX``) -> (MIN, MAX)."""
    parts = text.replace(":", "-").split("-")
    try:
        numbers = [int(x) for x in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or min(numbers) < 0:
        raise ConfigError("--workers", f"{text!r}: expected N or MIN-MAX with whole numbers >= 0")
    return numbers[0], numbers[-1]


def cmd_preprocess(args, trainer_factory) -> int:
    from data_pipeline.preprocess.config import make_config
    from data_pipeline.preprocess.run import TrainerOptions, run_preprocess

    low, high = parse_workers(args.workers)
    if args.train_steps < 0:
        raise ConfigError("--train-steps", f"must be >= 0, got {args.train_steps}")
    for option, value in (("--range-mb", args.range_mb), ("--lr", args.lr)):
        if not (math.isfinite(value) and value > 0):  # NaN passes a plain `<= 0` check
            raise ConfigError(option, f"must be a positive number, got {value}")
    if args.label_threshold is not None and not math.isfinite(args.label_threshold):
        raise ConfigError("--label-threshold", f"must be a finite number, got {args.label_threshold}")
    cfg = make_config(
        input=args.input,
        format=args.format,
        min_workers=low,
        max_workers=high,
        batch_size=args.batch_size,
        buckets=args.buckets,
        bucketize=args.bucketize,
        negatives=args.negatives,
        label_threshold=args.label_threshold,
        seed=args.seed,
        columns=args.columns,
        header=args.header,
        encoding=args.encoding,
        on_bad_lines=args.on_bad_lines,
        block_rows=args.block_rows,
        range_bytes=int(args.range_mb * (1 << 20)),
        ordered=args.ordered,
    )
    options = TrainerOptions(lr=args.lr, embedding_dim=args.embedding_dim, seed=args.seed, threads=args.trainer_threads)
    for option, value in (("--embedding-dim", options.embedding_dim), ("--trainer-threads", options.threads)):
        if value < 1:
            raise ConfigError(option, f"must be >= 1, got {value}")
    result = run_preprocess(
        cfg,
        out=args.out,
        report_json=args.json,
        train_steps=args.train_steps,
        trainer_factory=trainer_factory,
        trainer_options=options,
        progress=sys.stderr.isatty(),
    )
    if result.skipped_rows or result.header:
        note = f"{result.skipped_rows} malformed rows skipped" if result.skipped_rows else ""
        if result.header:
            note += ("; " if note else "") + f"line 1 taken as a header: {result.header!r}"
        print(f"fedrec: note: {args.input}: {note}", file=sys.stderr)
    summary = {k: getattr(result, k) for k in ("rows", "seconds", "rows_per_second", "workers", "trainer_stall_fraction")}
    print(json.dumps({k: v for k, v in summary.items() if v is not None}))
    return 0
