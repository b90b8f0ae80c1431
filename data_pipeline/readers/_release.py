"""Small pieces the published-dataset readers share: finding a release's file, and turning the bad
rows a vectorised check found into the usual report (first few examples, first bad line raised)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from data_pipeline.errors import BadLine, DatasetNotFoundError, ReadReport
from data_pipeline.readers._text import (
    LINE,
    CastResult,
    check_file,
    check_policy,
    collect_lines,
    resolve_bad_lines,
    scan_lines,
)

MAX_EXAMPLES = 5

# A check: the offending rows (with the ``__line`` column) and how to describe one of them.
Check = tuple[pl.DataFrame, Callable[[dict], BadLine]]


def release_file(path: str | os.PathLike, name: str, dataset: str) -> Path:
    """``path`` itself, or ``path / name`` when given the release folder; a missing file is named."""
    p = Path(path)
    if p.is_dir():
        p = p / name
    if not p.exists():
        raise DatasetNotFoundError(f"{p}: no such file (expected {dataset}'s {name} or its folder)")
    return p


def drop_bad_lines(
    path: Path, frame: pl.DataFrame, checks: Sequence[Check], on_bad_lines: str
) -> tuple[pl.DataFrame, ReadReport]:
    """``frame`` without the lines any check flagged; raises on the first (``error``) or counts
    them with a few examples (``skip``), exactly like the delimited-text readers."""
    examples = sorted(
        (describe(row) for bad, describe in checks for row in bad.head(MAX_EXAMPLES).iter_rows(named=True)),
        key=lambda b: b.line,
    )
    bad_lines = pl.concat([bad[LINE] for bad, _ in checks]).unique()
    kept = frame.filter(~pl.col(LINE).is_in(bad_lines.implode()))
    report = ReadReport(str(path))
    resolve_bad_lines(path, CastResult(kept, bad_lines.len(), examples[:MAX_EXAMPLES]), on_bad_lines, report)
    return kept.drop(LINE), report


def token_lines(path: Path, on_bad_lines: str) -> pl.DataFrame:
    """Each non-blank line's whitespace-separated tokens (``tokens``, a list) with its 1-based number."""
    check_file(path)
    check_policy(on_bad_lines)
    tokens = pl.col("line").str.strip_chars().str.replace_all(r"\s+", " ").str.split(" ")
    lazy = scan_lines(path).filter(pl.col("line").str.strip_chars().str.len_chars() > 0)
    return collect_lines(path, lazy.select(pl.col(LINE), tokens.alias("tokens")))
