"""Criteo Kaggle/Terabyte TSV: label, I1..I13 (integer counts), C1..C26 (hex hashes); empty = missing.

Streaming in bounded memory: lines are scanned lazily by polars and processed in chunks of
``chunk_rows``, each validated (with its file line numbers) and transformed into an Arrow record
batch, so a file larger than memory streams through. polars was chosen by measurement
(``scripts/bench_data.py``): its streaming engine parses and transforms several times faster than
chunked pandas at a fraction of its memory.

Transforms, as in the DLRM reference preprocessing: dense values clipped at 0 (Criteo has a few
-1/-2 counts) then ``log(1+x)``, missing dense = 0; hex categories parsed as integers and taken
modulo a configurable number of buckets per feature; a missing category stays null, which becomes an
empty bag (length 0) in the KeyedJaggedTensor rather than a fake id.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from data_pipeline.errors import ConfigError, DataFormatError, ReadReport
from data_pipeline.readers._text import (
    FieldSpec,
    cast_fields,
    check_file,
    check_policy,
    iter_line_batches,
    resolve_bad_lines,
    scan_lines,
    split_lines,
)
from data_pipeline.synth import CRITEO_COLUMNS, DENSE_NAMES, SPARSE_NAMES

DEFAULT_BUCKETS = 1 << 22  # ~4M rows per table unless told otherwise


def _hex(col: pl.Expr) -> pl.Expr:
    return col.str.to_integer(base=16, strict=False)


CRITEO_FIELDS = (
    FieldSpec("label", pl.Int8, "a label 0 or 1"),
    *(FieldSpec(n, pl.Int64, "an integer or empty", allow_empty=True) for n in DENSE_NAMES),
    *(FieldSpec(n, pl.Int64, "a hexadecimal category or empty", allow_empty=True, parser=_hex) for n in SPARSE_NAMES),
)


@dataclass(frozen=True)
class CriteoOptions:
    num_buckets: int | tuple[int, ...] = DEFAULT_BUCKETS
    chunk_rows: int = 250_000
    on_bad_lines: str = "error"
    transform: bool = True  # False: raw counts and raw hex integers (for statistics)

    def buckets(self) -> tuple[int, ...]:
        b = self.num_buckets
        out = (b,) * len(SPARSE_NAMES) if isinstance(b, int) else tuple(b)
        if len(out) != len(SPARSE_NAMES) or min(out) < 1:
            raise ConfigError("num_buckets", f"need one positive bucket count or {len(SPARSE_NAMES)}, got {b}")
        return out


def iter_criteo(
    path: str | os.PathLike, options: CriteoOptions | None = None, report: ReadReport | None = None
) -> Iterator[pa.RecordBatch]:
    """Yield validated, transformed record batches: ``label`` int8, ``I*`` float32, ``C*`` int64
    (null = missing). Bad lines raise ``DataFormatError`` with their line number, or are counted
    in ``report`` with ``on_bad_lines='skip'``."""
    options = options or CriteoOptions()
    check_policy(options.on_bad_lines)
    p = check_file(path)
    buckets = options.buckets()
    report = report if report is not None else ReadReport(str(p))
    lines = split_lines(scan_lines(p), "\t", CRITEO_FIELDS)
    for frame in iter_line_batches(p, lines, options.chunk_rows):
        result = cast_fields(frame, CRITEO_FIELDS, len(CRITEO_FIELDS), "tab")
        resolve_bad_lines(p, result, options.on_bad_lines, report)
        typed = result.frame
        bad_label = typed.filter(~pl.col("label").is_in([0, 1]))
        if bad_label.height:
            line, value = bad_label.row(0)[0], bad_label.row(0)[1]
            raise DataFormatError(p, line=line, field="label", expected="a label 0 or 1", found=str(value))
        if options.transform:
            typed = typed.select(
                pl.col("label"),
                *[pl.col(n).fill_null(0).clip(lower_bound=0).cast(pl.Float32).log1p().alias(n) for n in DENSE_NAMES],
                *[(pl.col(n) % b).alias(n) for n, b in zip(SPARSE_NAMES, buckets)],
            )
        else:
            typed = typed.select(list(CRITEO_COLUMNS))
        yield from typed.to_arrow().to_batches()


def read_criteo(path: str | os.PathLike, options: CriteoOptions | None = None) -> tuple[pa.Table, ReadReport]:
    """The whole file as one table (for files that fit in memory)."""
    report = ReadReport(str(path))
    batches = list(iter_criteo(path, options, report))
    if not batches:
        raise DataFormatError(path, "no data rows", expected="at least one row", found="none")
    return pa.Table.from_batches(batches), report


def criteo_feature_names() -> Sequence[str]:
    return (*DENSE_NAMES, *SPARSE_NAMES)
