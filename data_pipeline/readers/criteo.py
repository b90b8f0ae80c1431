"""Criteo Kaggle/Terabyte TSV: label, I1..I13 (integer counts), C1..C26 (hex hashes); empty = missing.

Streaming in bounded memory: the file is cut into blocks of about ``chunk_rows`` whole lines
(only one block is held), and each block becomes one Arrow record batch, so a file larger than
memory streams through. Each block takes a fast path: polars' multi-threaded CSV parser with the
Criteo schema (chosen by measurement, ``scripts/bench_data.py``), after a check that every line
has exactly 39 tabs. Any block the fast path cannot vouch for (a parse error, a hex id or label
that does not parse, a blank line, CRLF endings) is re-read the careful way: line by line with file
line numbers, so a bad row is named exactly and the good rows come out the same.

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

from data_pipeline.errors import ConfigError, ReadReport
from data_pipeline.readers._text import (
    DEFAULT_ENCODING,
    LINE,
    FieldSpec,
    TextBlock,
    block_line,
    block_lines,
    cast_fields,
    check_control,
    check_encoding,
    check_file,
    check_policy,
    iter_text_blocks,
    no_rows_error,
    resolve_bad_lines,
    split_lines,
)
from data_pipeline.synth import CRITEO_COLUMNS, DENSE_NAMES, SPARSE_NAMES

DEFAULT_BUCKETS = 1 << 22  # ~4M rows per table unless told otherwise


def _hex(col: pl.Expr) -> pl.Expr:
    return col.str.to_integer(base=16, strict=False)


def _label(col: pl.Expr) -> pl.Expr:
    """0 or 1; anything else is null, i.e. a bad field on its line (counted under ``skip``)."""
    return pl.when(col.is_in(["0", "1"])).then(col.cast(pl.Int8, strict=False)).otherwise(None)


CRITEO_FIELDS = (
    FieldSpec("label", pl.Int8, "a label 0 or 1", parser=_label),
    *(FieldSpec(n, pl.Int64, "an integer or empty", allow_empty=True) for n in DENSE_NAMES),
    *(
        FieldSpec(n, pl.Int64, "a hexadecimal category or empty", allow_empty=True, parser=_hex)
        for n in SPARSE_NAMES
    ),
)


@dataclass(frozen=True)
class CriteoOptions:
    num_buckets: int | tuple[int, ...] = DEFAULT_BUCKETS
    chunk_rows: int = 50_000  # ~2.8 KB of working memory a row while parsing (scripts/bench_data.py)
    on_bad_lines: str = "error"
    transform: bool = True  # False: raw counts and raw hex integers (for statistics)
    encoding: str = DEFAULT_ENCODING  # Criteo is ASCII; other ASCII-compatible codecs are transcoded

    def buckets(self) -> tuple[int, ...]:
        b = self.num_buckets
        out = (b,) * len(SPARSE_NAMES) if isinstance(b, int) else tuple(b)
        if len(out) != len(SPARSE_NAMES) or min(out) < 1:
            raise ConfigError(
                "num_buckets", f"need one positive bucket count or {len(SPARSE_NAMES)}, got {b}"
            )
        return out


def iter_criteo(
    path: str | os.PathLike, options: CriteoOptions | None = None, report: ReadReport | None = None
) -> Iterator[pa.RecordBatch]:
    """Yield validated, transformed record batches: ``label`` int8, ``I*`` float32, ``C*`` int64
    (null = missing). Bad lines raise ``DataFormatError`` with their line number, or are counted
    in ``report`` with ``on_bad_lines='skip'``."""
    options = options or CriteoOptions()
    check_policy(options.on_bad_lines)
    check_encoding(options.encoding)
    p = check_file(path)
    buckets = options.buckets()
    report = report if report is not None else ReadReport(str(p))
    for block in iter_text_blocks(p, options.chunk_rows, options.encoding):
        typed = parse_block(p, block, options.on_bad_lines, report)
        typed = transform_block(typed, buckets) if options.transform else typed.select(list(CRITEO_COLUMNS))
        if typed.height:
            yield from typed.to_arrow().to_batches()
    if report.rows == 0:
        raise no_rows_error(p, report)


def parse_block(path, block: TextBlock, on_bad_lines: str, report: ReadReport) -> pl.DataFrame:
    """Raw typed columns of one block (label, counts, hex ids as integers; null = missing): the
    fast path when it can vouch for every line, else the careful path that names bad lines."""
    typed = _fast_block(block)
    if typed is None:
        return _careful_block(path, block, on_bad_lines, report)
    report.rows += typed.height
    return typed


def transform_block(raw: pl.DataFrame, buckets: Sequence[int]) -> pl.DataFrame:
    """The DLRM reference transforms: dense ``log(1 + max(x, 0))`` with missing = 0 (float32),
    categorical ids modulo their table's bucket count (missing stays null)."""
    return raw.select(
        pl.col("label"),
        *[pl.col(n).fill_null(0).clip(lower_bound=0).cast(pl.Float32).log1p().alias(n) for n in DENSE_NAMES],
        *[(pl.col(n) % b).alias(n) for n, b in zip(SPARSE_NAMES, buckets)],
    )


_FAST_SCHEMA = {f.name: (pl.String if f.parser is not None else f.dtype) for f in CRITEO_FIELDS}
_TABS_PER_LINE = len(CRITEO_FIELDS) - 1
_BAD = "__bad"


def _fast_block(block: TextBlock) -> pl.DataFrame | None:
    """Parse a block of well-formed lines in one polars call, or None if it needs the careful path.

    Every line has exactly 39 tabs iff the block's tab count is 39 per line and the parser found no
    line with more fields (it raises on those; it would quietly pad a line with fewer). CR, quotes
    or a value that does not parse send the block to the careful path, which names the line.
    """
    data = block.data
    if b"\r" in data or b'"' in data:
        return None
    lines = block.lines
    if block.tabs != _TABS_PER_LINE * lines:
        return None
    try:
        raw = pl.read_csv(data, separator="\t", has_header=False, quote_char=None, schema=_FAST_SCHEMA)
    except (pl.exceptions.PolarsError, UnicodeDecodeError):
        return None
    if raw.height != lines:
        return None
    # polars read empty fields as null; fields with a parser are still strings here, the rest typed
    parsed = {f.name: f.parse() if f.parser is not None else pl.col(f.name) for f in CRITEO_FIELDS}
    problems = [f.is_bad(pl.col(f.name).is_null(), parsed[f.name]) for f in CRITEO_FIELDS]
    bad = pl.any_horizontal(problems).alias(_BAD)
    typed = raw.lazy().with_columns(*parsed.values(), bad).collect()
    if typed[_BAD].any():
        return None
    return typed.drop(_BAD)


def _careful_block(path, block: TextBlock, on_bad_lines: str, report: ReadReport) -> pl.DataFrame:
    """Validate a block line by line: wrong field counts and unparsable values get their line number."""
    lines = split_lines(block_lines(path, block), "\t", CRITEO_FIELDS)
    check_control(path, lines, lambda number: block_line(block, number))
    result = cast_fields(lines, CRITEO_FIELDS, len(CRITEO_FIELDS), "tab")
    resolve_bad_lines(path, result, on_bad_lines, report)
    return result.frame.drop(LINE)


def read_criteo(path: str | os.PathLike, options: CriteoOptions | None = None) -> tuple[pa.Table, ReadReport]:
    """The whole file as one table (for files that fit in memory)."""
    report = ReadReport(str(path))
    batches = list(iter_criteo(path, options, report))
    return pa.Table.from_batches(batches), report


def criteo_feature_names() -> Sequence[str]:
    return (*DENSE_NAMES, *SPARSE_NAMES)
