"""``fedrec data ...``: statistics, conversion to Parquet, synthetic data, preprocessing service."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from data_pipeline.atomic import AtomicOutputs, atomic_path
from data_pipeline.clihelp import HelpFormatter
from data_pipeline.errors import ConfigError, ReadReport
from data_pipeline.formats import INTERACTION_FORMATS, SYNTH_PROFILES
from data_pipeline.preprocess.cli import add_preprocess_parser

# numpy, pyarrow, the readers, stats and synth are imported in the commands: building the parser
# (``fedrec --help``) must stay fast.
FORMATS = ("movielens", "criteo", *INTERACTION_FORMATS[1:])

# (path, tables) -> None; a table is (name, per-row access counts, dim, pooling factor, coverage).
WorkloadWriter = Callable[[str, list[tuple[str, Any, int, float, float]]], None]
_workload_writer: WorkloadWriter | None = None


def register(subparsers, workload_writer: WorkloadWriter | None = None, stream_trainer=None) -> None:
    """Add ``fedrec data ...``. ``workload_writer`` (given by the top-level CLI, which knows the
    sharding package) turns per-table access counts into the planner's workload file for
    ``data stats --workload``; ``stream_trainer`` (a ``preprocess.run.TrainerFactory``: fedrec's
    central DLRM) is what ``data preprocess --train-steps`` trains. This package never imports the
    layers above it."""
    global _workload_writer
    _workload_writer = workload_writer
    data = subparsers.add_parser(
        "data",
        help="dataset statistics, conversion, synthetic data and the preprocessing service",
        formatter_class=HelpFormatter,
        epilog="examples:\n  fedrec data stats ../shared/datasets/ml-100k --format movielens --json\n"
        "  fedrec data convert ratings.csv --format csv --columns item,user,rating,timestamp --no-header --out r.parquet\n"
        "  fedrec data synth --rows 100000 --seed 0 --out synth.tsv",
    )
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    stats = sub.add_parser(
        "stats",
        help="counts, degree distributions, cardinalities, access CDFs",
        formatter_class=HelpFormatter,
        epilog="examples:\n  fedrec data stats ../shared/datasets/ml-100k --format movielens --json\n"
        "  fedrec data stats train.tsv --format criteo --json --workload w.json\n"
        "  fedrec data stats ratings.csv --format csv --columns item,user,rating,timestamp --header",
    )
    _add_input(stats)
    stats.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    stats.add_argument("--plot", metavar="PNG", help="also draw access CDFs to this PNG (or .svg/.pdf)")
    stats.add_argument("--workload", metavar="JSON", help="write a sharding workload (per-table access CDFs)")
    stats.add_argument("--dim", type=int, default=64, help="embedding dim recorded in the workload")
    stats.set_defaults(func=cmd_stats)

    convert = sub.add_parser(
        "convert",
        help="convert a dataset to Parquet",
        formatter_class=HelpFormatter,
        epilog="examples:\n  fedrec data convert ../shared/datasets/ml-100k --format movielens --out ml100k.parquet\n"
        "  fedrec data convert day_0.tsv --format criteo --buckets 1000000 --out day0.parquet",
    )
    _add_input(convert)
    convert.add_argument("--out", required=True, metavar="FILE.parquet", help="written whole or not at all")
    convert.add_argument(
        "--buckets", type=int, default=1 << 22, help="criteo: hash buckets per categorical feature"
    )
    convert.set_defaults(func=cmd_convert)

    synth = sub.add_parser(
        "synth",
        help="generate Criteo-like data with Zipf accesses",
        formatter_class=HelpFormatter,
        epilog="example:\n  fedrec data synth --rows 2000000 --profile criteo-kaggle --zipf 1.1 --seed 0 --out synth.tsv",
    )
    synth.add_argument("--rows", type=int, required=True)
    synth.add_argument("--profile", choices=sorted(SYNTH_PROFILES), default="criteo-kaggle")
    synth.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of id accesses")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--max-cardinality", type=int, default=None, help="cap every table at this many rows")
    synth.add_argument(
        "--out", required=True, help=".tsv/.txt (Criteo text format) or .parquet (encoded ids); written whole or not at all"
    )
    synth.set_defaults(func=cmd_synth)

    add_preprocess_parser(sub, stream_trainer)


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path", help="file, or the release folder for movielens, lastfm, filmtrust, citeulike and coat"
    )
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument(
        "--columns",
        help="csv/tsv: column names in file order (user,item,rating,timestamp; '_' drops one); "
        "parquet/jsonl: source names in that order, or user=reviewerID,item=asin,...",
    )
    p.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="csv/tsv: the first line is a header, or (--no-header) data; default: detect a line of "
        "names and say so on stderr",
    )
    p.add_argument(
        "--encoding",
        default="utf-8",
        help="text formats: the file's encoding (an ASCII-compatible codec: utf-8, latin-1, cp1252, ...)",
    )
    p.add_argument("--on-bad-lines", choices=("error", "skip"), default="error")


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def cmd_stats(args) -> int:
    import numpy as np

    from data_pipeline.readers import dataset_extras
    from data_pipeline.readers.criteo import CriteoOptions, iter_criteo
    from data_pipeline.stats import criteo_stats, interaction_stats, plot_stats
    from data_pipeline.synth import DENSE_NAMES, SPARSE_NAMES

    outputs = AtomicOutputs({"--workload": (args.workload, (".json",)), "--plot": (args.plot, PLOT_SUFFIXES)})
    if args.format == "criteo":
        report = ReadReport(args.path)
        batches = iter_criteo(
            args.path,
            CriteoOptions(transform=False, on_bad_lines=args.on_bad_lines, encoding=args.encoding),
            report,
        )
        st = criteo_stats(batches, DENSE_NAMES, SPARSE_NAMES)
        tables = [
            _table(f["name"], st.counts[f["name"]], args.dim, pooling=1.0, coverage=1.0 - f["missing_fraction"])
            for f in st.features[len(DENSE_NAMES) :]
        ]
    else:
        data = _load(args)
        report = data.report
        st = interaction_stats(data)
        tables = [
            _table(key, np.bincount(data.column(key), minlength=len(data.vocabs[key])), args.dim, 1.0, 1.0)
            for key in ("user", "item")
        ]
    out = {**st.to_dict(), **(dataset_extras(data, args.format) if args.format != "criteo" else {})}
    if report is not None and (report.skipped or report.header):
        print(f"fedrec: note: {report.summary()}", file=sys.stderr)
    if report is not None and report.skipped:
        out["skipped_rows"] = report.skipped
    if report is not None and report.header:
        out["header"] = report.header
    with outputs as tmp:
        if args.workload:
            _write_workload(str(tmp["--workload"]), tables)
        if args.plot:
            plot_stats(st, tmp["--plot"])
    if args.json:
        print(json.dumps(out, default=_json_default))
    else:
        _print_human(out)
    return 0


def _load(args):
    from data_pipeline.readers import load_interactions

    return load_interactions(
        args.path,
        args.format,
        columns=args.columns,
        header=args.header,
        on_bad_lines=args.on_bad_lines,
        encoding=args.encoding,
    )


def _table(name, counts, dim, pooling, coverage):
    import numpy as np

    return (name, np.asarray(counts), dim, pooling, coverage)


def _write_workload(path: str, tables: list) -> None:
    if _workload_writer is None:
        raise ConfigError("--workload", "writing a sharding workload needs the sharding package (fedrec's CLI)")
    _workload_writer(path, tables)


def cmd_convert(args) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from data_pipeline.readers.criteo import CriteoOptions, iter_criteo

    with atomic_path(args.out, (".parquet",), "--out") as tmp:
        if args.format == "criteo":
            report = ReadReport(args.path)
            options = CriteoOptions(num_buckets=args.buckets, on_bad_lines=args.on_bad_lines, encoding=args.encoding)
            writer = None
            try:
                for batch in iter_criteo(args.path, options, report):
                    writer = writer or pq.ParquetWriter(tmp, batch.schema)
                    writer.write_table(pa.Table.from_batches([batch]))
            finally:
                if writer:
                    writer.close()
        else:
            data = _load(args)
            report = data.report
            df = data.raw_interactions()
            for col in ("user", "item"):
                df[col] = df[col].astype(str) if df[col].map(type).nunique() > 1 else df[col].infer_objects()
            pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)
    print(report.summary(), file=sys.stderr)
    print(str(args.out))
    return 0


def cmd_synth(args) -> int:
    from data_pipeline.synth import SynthConfig, write_synthetic

    cfg = SynthConfig(
        rows=args.rows,
        profile=args.profile,
        zipf=args.zipf,
        seed=args.seed,
        max_cardinality=args.max_cardinality,
    )
    path = write_synthetic(cfg, args.out, progress=sys.stderr.isatty())
    print(str(path))
    return 0


def _print_human(out: dict) -> None:
    for key, value in out.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            print(f"{key}:")
            for v in value:
                print("  " + ", ".join(f"{k}={_fmt(x)}" for k, x in v.items()))
        elif isinstance(value, list) and len(value) > 8:
            continue  # CDF points: in --json
        else:
            print(f"{key}: {_fmt(value)}")


def _fmt(x) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer | np.floating):
        return o.item()
    raise TypeError(type(o))
