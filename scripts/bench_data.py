"""Criteo TSV ingest: our streaming reader against chunked ``pandas.read_csv``, with pyarrow's
streaming CSV reader and plain polars (neither validates) for orientation.

Every engine does the same work on the same generated file and consumes its batches without keeping
them: parse the 40 tab-separated fields; dense I1..I13 missing -> 0, clipped at 0, ``log(1+x)`` as
float32; hex categories C1..C26 -> integers modulo ``--buckets``, a missing category stays missing.
Only ours validates every field and can name the file line of a bad row. Each engine runs in a
fresh process, so its peak RSS (``VmHWM``) is its own; each also reports its RSS right after
its imports, and per-batch sums that must agree between engines (proof they did the same work).

pandas' hex conversion is the fastest vectorised one we found: categories read as ``object``
strings (faster to parse than pandas 3's Arrow-backed ``str``), encoded to a fixed-width numpy
``S8`` array (Criteo ids are 8 hex digits), and the digits folded through a 256-entry lookup table
in eight numpy passes. ``Series.apply(int, base=16)`` is 5-10x slower.

    .venv/bin/python scripts/bench_data.py             # 2M rows, results/bench_data/
    .venv/bin/python scripts/bench_data.py --quick     # 100k rows, a smoke test
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from _bench_common import (
    REPO_ROOT,
    bar_chart,
    cpu_seconds,
    format_table,
    machine,
    peak_rss_mb,
    rss_mb,
    run_child,
    write_json,
)

# Defined here, not imported from data_pipeline: importing it would load polars and pyarrow into
# the pandas child and inflate the peak RSS we attribute to pandas.
DENSE = tuple(f"I{i}" for i in range(1, 14))
SPARSE = tuple(f"C{i}" for i in range(1, 27))
COLUMNS = ("label", *DENSE, *SPARSE)

ENGINES = ("ours", "pandas", "pyarrow", "polars")
TARGET_SPEEDUP = 3.0  # ours >= 3x pandas' rows/s ...
TARGET_MEMORY = 0.5  # ... at <= half its peak RSS
DEFAULT_ROWS = 2_000_000
QUICK_ROWS = 100_000
DEFAULT_BUCKETS = 1 << 22  # CriteoOptions' default
PANDAS_HEX = "object strings -> numpy S8 bytes -> 256-entry nibble table, 8 vectorised passes"


# ---------------------------------------------------------------- engines (run in the child process)


class Totals:
    """Sums over every batch an engine yields: equal across engines iff they produced the same data."""

    def __init__(self) -> None:
        self.rows = self.positives = self.sparse_sum = self.sparse_missing = 0
        self.dense_sum = 0.0

    def add(self, rows: int, positives, dense_sum, sparse_sum, sparse_missing) -> None:
        self.rows += rows
        self.positives += int(positives)
        self.dense_sum += float(dense_sum)
        self.sparse_sum += int(sparse_sum)
        self.sparse_missing += int(sparse_missing)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def engine_ours() -> Callable[[str, int, int], Totals]:
    import pyarrow.compute as pc

    from data_pipeline.readers.criteo import CriteoOptions, iter_criteo

    def run(path: str, chunk_rows: int, buckets: int) -> Totals:
        totals = Totals()
        for batch in iter_criteo(path, CriteoOptions(num_buckets=buckets, chunk_rows=chunk_rows)):
            _add_arrow(totals, batch, pc)
        return totals

    return run


def engine_pandas() -> Callable[[str, int, int], Totals]:
    import numpy as np
    import pandas as pd

    def run(path: str, chunk_rows: int, buckets: int) -> Totals:
        totals = Totals()
        dtypes = {"label": "int8", **dict.fromkeys(DENSE, "float64"), **dict.fromkeys(SPARSE, object)}
        chunks = pd.read_csv(
            path,
            sep="\t",
            header=None,
            names=list(COLUMNS),
            dtype=dtypes,
            chunksize=chunk_rows,
            keep_default_na=False,
            na_values=[""],
        )
        for frame in chunks:
            frame[list(DENSE)] = np.log1p(frame[list(DENSE)].fillna(0).clip(lower=0)).astype(np.float32)
            for name in SPARSE:
                col = frame[name]
                missing = col.isna().to_numpy()
                digits = col.fillna("").to_numpy().astype("S8").view(np.uint8).reshape(len(col), 8)
                frame[name] = pd.arrays.IntegerArray(hex_digits_to_int(digits) % buckets, missing)
            totals.add(
                len(frame),
                frame["label"].sum(),
                frame[list(DENSE)].to_numpy().sum(dtype=np.float64),
                sum(int(frame[n].sum()) for n in SPARSE),
                sum(int(frame[n].isna().sum()) for n in SPARSE),
            )
        return totals

    return run


def engine_pyarrow() -> Callable[[str, int, int], Totals]:
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv

    def run(path: str, chunk_rows: int, buckets: int) -> Totals:
        totals = Totals()
        types = {"label": pa.int8(), **dict.fromkeys(DENSE, pa.int64()), **dict.fromkeys(SPARSE, pa.string())}
        reader = csv.open_csv(
            path,
            read_options=csv.ReadOptions(
                column_names=list(COLUMNS), block_size=chunk_rows * _bytes_per_line(path)
            ),
            parse_options=csv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
        for batch in reader:
            dense = [
                pc.log1p(pc.cast(pc.max_element_wise(pc.fill_null(batch[n], 0), 0), pa.float32()))
                for n in DENSE
            ]
            sparse = [_arrow_hex(batch[n], buckets) for n in SPARSE]
            out = pa.RecordBatch.from_arrays([batch["label"], *dense, *sparse], names=list(COLUMNS))
            _add_arrow(totals, out, pc)
        return totals

    return run


def engine_polars() -> Callable[[str, int, int], Totals]:
    import polars as pl

    def run(path: str, chunk_rows: int, buckets: int) -> Totals:
        totals = Totals()
        schema = {"label": pl.Int8, **dict.fromkeys(DENSE, pl.Int64), **dict.fromkeys(SPARSE, pl.String)}
        lazy = pl.scan_csv(path, separator="\t", has_header=False, quote_char=None, schema=schema).select(
            pl.col("label"),
            *[pl.col(n).fill_null(0).clip(lower_bound=0).cast(pl.Float32).log1p() for n in DENSE],
            *[pl.col(n).str.to_integer(base=16, strict=False) % buckets for n in SPARSE],
        )
        for frame in lazy.collect_batches(chunk_size=chunk_rows):
            sparse = frame.select(SPARSE)
            totals.add(
                frame.height,
                frame["label"].sum(),
                frame.select(pl.col(DENSE).cast(pl.Float64)).sum().sum_horizontal().item(),
                sparse.sum().sum_horizontal().item(),
                sparse.null_count().sum_horizontal().item(),
            )
        return totals

    return run


ENGINE_SETUP = {
    "ours": engine_ours,
    "pandas": engine_pandas,
    "pyarrow": engine_pyarrow,
    "polars": engine_polars,
}


def hex_digits_to_int(digits):
    """Rows of ASCII hex digits, NUL-padded on the right (numpy ``S8`` viewed as uint8), to int64:
    Horner's rule over the columns, skipping the padding. Not validated (a non-hex byte counts as 0)."""
    import numpy as np

    nibble = np.zeros(256, dtype=np.int64)
    nibble[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16)
    nibble[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16)
    acc = np.zeros(len(digits), dtype=np.int64)
    for k in range(digits.shape[1]):
        byte = digits[:, k]
        acc = np.where(byte != 0, acc * 16 + nibble[byte], acc)
    return acc


def _arrow_hex(arr, buckets: int):
    """An Arrow string array of hex ids to int64 modulo ``buckets``, nulls kept: the value bytes are
    gathered into an (n, 8) matrix straight from the offsets and data buffers, no Python objects."""
    import numpy as np
    import pyarrow as pa

    n = len(arr)
    if arr.null_count == n:
        return pa.nulls(n, pa.int64())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    width = np.arange(8)
    index = np.minimum(offsets[:-1, None] + width, len(data) - 1)
    digits = np.where(width < np.diff(offsets)[:, None], data[index], 0).astype(np.uint8)
    mask = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    return pa.array(hex_digits_to_int(digits) % buckets, mask=mask)


def _add_arrow(totals: Totals, batch, pc) -> None:
    dense = sum((pc.sum(pc.cast(batch[n], "float64")).as_py() or 0.0) for n in DENSE)
    sparse = sum((pc.sum(batch[n]).as_py() or 0) for n in SPARSE)
    missing = sum(batch[n].null_count for n in SPARSE)
    totals.add(batch.num_rows, pc.sum(batch["label"]).as_py() or 0, dense, sparse, missing)


def _bytes_per_line(path: str) -> int:
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    return max(1, math.ceil(len(head) / max(head.count(b"\n"), 1)))


def child(engine: str, path: str, chunk_rows: int, buckets: int) -> dict:
    """Measure one engine in this (fresh) process."""
    run = ENGINE_SETUP[engine]()
    after_import = rss_mb()
    cpu0, start = cpu_seconds(), time.perf_counter()
    totals = run(path, chunk_rows, buckets)
    seconds = time.perf_counter() - start
    return {
        "engine": engine,
        "rows": totals.rows,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu0,
        "rows_per_second": totals.rows / seconds,
        "rss_after_import_mb": after_import,
        "peak_rss_mb": peak_rss_mb(),
        "totals": totals.to_dict(),
    }


# ---------------------------------------------------------------- parent: data, runs, report


def ensure_data(out: Path, rows: int, seed: int) -> Path:
    """The generated file, cached by size and seed (write_synthetic writes it whole or not at all,
    so an interrupted run never leaves a truncated file in the cache)."""
    path = out / f"criteo_synth_{rows}_seed{seed}.tsv"
    if not path.exists():
        from data_pipeline.synth import SynthConfig, write_synthetic

        print(f"generating {rows:,} rows -> {path}", file=sys.stderr)
        write_synthetic(SynthConfig(rows=rows, seed=seed), path)
    return path


def summarize(runs: list[dict]) -> dict:
    """Best of the repeats (the least disturbed by other jobs); peak RSS is the largest seen."""
    best = min(runs, key=lambda r: r["seconds"])
    return {
        **best,
        "cpu_seconds": min(r["cpu_seconds"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "repeats": len(runs),
        "all_seconds": [r["seconds"] for r in runs],
    }


def outputs_agree(results: dict[str, dict]) -> bool:
    totals = [r["totals"] for r in results.values()]
    first = totals[0]
    for t in totals[1:]:
        exact = all(t[k] == first[k] for k in ("rows", "positives", "sparse_sum", "sparse_missing"))
        if not exact or not math.isclose(t["dense_sum"], first["dense_sum"], rel_tol=1e-5):
            return False
    return True


def targets(results: dict[str, dict]) -> dict:
    if "ours" not in results or "pandas" not in results:
        return {}
    ours, pandas = results["ours"], results["pandas"]
    speedup = ours["rows_per_second"] / pandas["rows_per_second"]
    memory = ours["peak_rss_mb"] / pandas["peak_rss_mb"]
    growth = _growth(ours) / max(_growth(pandas), 1.0)
    return {
        "speedup": {"target": TARGET_SPEEDUP, "value": speedup, "pass": speedup >= TARGET_SPEEDUP},
        "memory": {"target": TARGET_MEMORY, "value": memory, "pass": memory <= TARGET_MEMORY},
        "memory_growth_over_import": {
            "target": TARGET_MEMORY,
            "value": growth,
            "pass": growth <= TARGET_MEMORY,
        },
    }


def _growth(result: dict) -> float:
    """Peak RSS above the RSS after imports: the memory the streaming itself needed."""
    return result["peak_rss_mb"] - result["rss_after_import_mb"]


def report(results: dict[str, dict], goals: dict, agree: bool) -> str:
    base = results.get("pandas")
    headers = [
        "engine",
        "rows",
        "seconds",
        "rows/s",
        "CPU s",
        "peak RSS MB",
        "RSS after import MB",
        "speed vs pandas",
        "peak RSS vs pandas",
    ]
    rows = []
    for name, r in results.items():
        speed = f"{r['rows_per_second'] / base['rows_per_second']:.2f}x" if base else "-"
        mem = f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x" if base else "-"
        rows.append(
            [
                name,
                r["rows"],
                r["seconds"],
                r["rows_per_second"],
                r["cpu_seconds"],
                r["peak_rss_mb"],
                r["rss_after_import_mb"],
                speed,
                mem,
            ]
        )
    lines = [format_table(headers, rows)]
    if goals:
        s, m, g = goals["speedup"], goals["memory"], goals["memory_growth_over_import"]
        lines += [
            f"target rows/s >= {s['target']:g}x pandas:  {_verdict(s)} ({s['value']:.2f}x)",
            f"target peak RSS <= {m['target']:g}x pandas: {_verdict(m)} ({m['value']:.2f}x; "
            f"growth over import {g['value']:.2f}x: {_verdict(g)})",
        ]
    lines.append(f"outputs agree across engines: {'yes' if agree else 'NO'}")
    lines.append(f"pandas hex: {PANDAS_HEX}")
    return "\n".join(lines)


def _verdict(goal: dict) -> str:
    return "PASS" if goal["pass"] else "FAIL"


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--rows", type=int, default=None, help=f"rows in the generated file (default {DEFAULT_ROWS:,})"
    )
    p.add_argument(
        "--quick", action="store_true", help=f"smoke test: {QUICK_ROWS:,} rows unless --rows is given"
    )
    p.add_argument(
        "--out", type=Path, default=REPO_ROOT / "results" / "bench_data", help="results and cached data"
    )
    p.add_argument(
        "--chunk-rows", type=int, default=50_000, help="rows per batch, the same for every engine"
    )
    p.add_argument(
        "--buckets", type=int, default=DEFAULT_BUCKETS, help="hash buckets per categorical feature"
    )
    p.add_argument(
        "--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)}"
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="runs per engine (interleaved); the fastest is reported"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    p.add_argument("--file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.rows = args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(args.engines) - set(ENGINES))
    if unknown or not args.engines:
        p.error(f"--engines: unknown {unknown}; expected a subset of {ENGINES}")
    if args.rows < 1 or args.chunk_rows < 1 or args.repeat < 1 or args.buckets < 1:
        p.error("--rows, --chunk-rows, --repeat and --buckets must be positive")
    return args


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        import json

        print(json.dumps(child(args.child, args.file, args.chunk_rows, args.buckets)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    data = ensure_data(args.out, args.rows, args.seed)
    runs: dict[str, list[dict]] = {e: [] for e in args.engines}
    for _ in range(args.repeat):
        for engine in args.engines:
            cmd = [
                __file__,
                "--child",
                engine,
                "--file",
                str(data),
                "--chunk-rows",
                str(args.chunk_rows),
                "--buckets",
                str(args.buckets),
            ]
            runs[engine].append(run_child(cmd))
            print(f"  {engine}: {runs[engine][-1]['seconds']:.1f} s", file=sys.stderr)
    results = {e: summarize(r) for e, r in runs.items()}
    goals, agree = targets(results), outputs_agree(results)
    print(report(results, goals, agree))
    record = {
        "benchmark": "criteo_ingest",
        "file": {"path": str(data), "rows": args.rows, "bytes": data.stat().st_size, "seed": args.seed},
        "chunk_rows": args.chunk_rows,
        "buckets": args.buckets,
        "repeat": args.repeat,
        "machine": machine(),
        "engines": results,
        "targets": goals,
        "outputs_agree": agree,
        "pandas_hex": PANDAS_HEX,
    }
    json_path = write_json(args.out / "bench_data.json", record)
    png = bar_chart(
        args.out / "bench_data.png",
        list(results),
        {
            "rows/s": [r["rows_per_second"] for r in results.values()],
            "peak RSS (MB)": [r["peak_rss_mb"] for r in results.values()],
        },
        f"Criteo TSV ingest, {args.rows:,} rows, {args.chunk_rows:,} rows/batch",
    )
    print(f"wrote {json_path} and {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
