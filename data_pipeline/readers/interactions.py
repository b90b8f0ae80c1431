"""Generic interaction logs: CSV/TSV (with or without a header), Parquet and JSON lines.

A column mapping says which source column is the user, item, rating and timestamp, so an Amazon
dump ``item,user,rating,timestamp`` with no header reads as ``columns=["item","user","rating","timestamp"]``
and a JSON review file as ``columns={"user": "reviewerID", "item": "asin", "rating": "overall",
"timestamp": "unixReviewTime"}``. Only ``user`` and ``item`` are required.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow.parquet as pq

from data_pipeline.errors import DataFormatError, ReadReport
from data_pipeline.readers._text import (
    LINE,
    FieldSpec,
    check_file,
    check_policy,
    first_line_is_header,
    read_delimited,
)
from data_pipeline.schema import InteractionData, build_interactions

CANONICAL = ("user", "item", "rating", "timestamp")
IGNORED = ("_", "-", "skip")  # names for source columns that are read but dropped

_CANONICAL_SPECS = {
    "user": FieldSpec("user", pl.String, "a user id"),
    "item": FieldSpec("item", pl.String, "an item id"),
    "rating": FieldSpec("rating", pl.Float32, "a numeric rating"),
    "timestamp": FieldSpec("timestamp", pl.Int64, "an integer timestamp"),
}


def parse_columns(columns: str | Sequence[str] | None) -> list[str] | None:
    if columns is None:
        return None
    names = [c.strip() for c in columns.split(",")] if isinstance(columns, str) else list(columns)
    unknown = [c for c in names if c not in CANONICAL and c not in IGNORED]
    if unknown:
        raise DataFormatError(
            None,
            f"--columns names {unknown}",
            expected=f"names from {list(CANONICAL)} (or '_' to drop a column)",
        )
    for required in ("user", "item"):
        if required not in names:
            raise DataFormatError(
                None, f"--columns lacks '{required}'", expected="user and item among the columns"
            )
    return names


def read_csv_interactions(
    path: str | os.PathLike,
    columns: str | Sequence[str] = "user,item,rating,timestamp",
    *,
    sep: str | None = None,
    header: bool | None = None,
    on_bad_lines: str = "error",
) -> InteractionData:
    """CSV/TSV whose columns, in file order, are named by ``columns``.

    The delimiter defaults to tab for ``.tsv``/``.tab`` files and comma otherwise; ``header=None``
    detects a header row (a first line whose numeric fields do not parse).
    """
    p = check_file(path)
    names = parse_columns(columns)
    sep = sep or ("\t" if p.suffix.lower() in (".tsv", ".tab") else ",")
    numeric = [i for i, n in enumerate(names) if n in ("rating", "timestamp")]
    if header is None:
        header = first_line_is_header(p, sep, numeric) if numeric else False
    fields = [
        _CANONICAL_SPECS.get(n, FieldSpec(f"_drop{i}", pl.String, "a value", allow_empty=True))
        for i, n in enumerate(names)
    ]
    frame, report = read_delimited(
        p, sep, fields, header=header, on_bad_lines=on_bad_lines, sep_name="tab" if sep == "\t" else repr(sep)
    )
    keep = [n for n in names if n in CANONICAL]
    return _finish(p, frame.select(keep).to_pandas(), report)


def read_parquet_interactions(
    path: str | os.PathLike, columns: Mapping[str, str] | Sequence[str] | str | None = None
) -> InteractionData:
    p = check_file(path)
    try:
        table = pq.read_table(p)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise DataFormatError(p, f"not a readable Parquet file ({exc})") from None
    frame = _map_columns(p, table.to_pandas(), columns)
    return _finish(p, _validate_frame(p, frame), ReadReport(str(p), rows=len(frame)))


def read_jsonl_interactions(
    path: str | os.PathLike,
    columns: Mapping[str, str] | Sequence[str] | str | None = None,
    *,
    on_bad_lines: str = "error",
) -> InteractionData:
    """JSON lines, one object per line; each malformed line is named by its number."""
    p = check_file(path)
    check_policy(on_bad_lines)
    mapping = _mapping(columns)
    rows: list[dict] = []
    report = ReadReport(str(p))
    with open(p, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
                row = {canon: obj[src] for canon, src in mapping.items()}
            except (ValueError, KeyError) as exc:
                missing = f"key {exc}" if isinstance(exc, KeyError) else "invalid JSON object"
                if on_bad_lines == "error":
                    raise DataFormatError(
                        p,
                        line=number,
                        expected=f"a JSON object with keys {sorted(mapping.values())}",
                        found=missing,
                    ) from None
                report.skipped += 1
                continue
            rows.append(row)
    frame = _validate_frame(p, pd.DataFrame(rows, columns=list(mapping)))
    report.rows = len(frame)
    return _finish(p, frame, report)


def _mapping(columns: Mapping[str, str] | Sequence[str] | str | None) -> dict[str, str]:
    """Canonical name -> source column. A sequence or comma string names source columns in
    canonical order; a mapping (or ``user=reviewerID,...`` string) is explicit."""
    if columns is None:
        return {c: c for c in CANONICAL}
    if isinstance(columns, str):
        if "=" in columns:
            columns = dict(part.split("=", 1) for part in columns.split(","))
        else:
            columns = [c.strip() for c in columns.split(",")]
    if isinstance(columns, Mapping):
        mapping = {k.strip(): v.strip() for k, v in columns.items()}
    else:
        mapping = dict(zip(CANONICAL, columns))
    bad = [k for k in mapping if k not in CANONICAL]
    if bad or "user" not in mapping or "item" not in mapping:
        raise DataFormatError(
            None, f"column mapping {mapping}", expected=f"keys from {list(CANONICAL)} including user and item"
        )
    return mapping


def _map_columns(path: Path, frame: pd.DataFrame, columns) -> pd.DataFrame:
    if columns is None:
        mapping = {c: c for c in CANONICAL if c in frame.columns}
    else:
        mapping = _mapping(columns)
    missing = [src for src in mapping.values() if src not in frame.columns]
    if missing:
        raise DataFormatError(
            path,
            f"missing columns {missing}",
            expected=f"columns {list(mapping.values())}",
            found=list(frame.columns),
        )
    return frame[list(mapping.values())].set_axis(list(mapping), axis=1)


def _validate_frame(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Type-check columns of an already-parsed frame; the error names the first bad row."""
    for col, kind in (("rating", "float32"), ("timestamp", "int64")):
        if col not in frame:
            continue
        converted = pd.to_numeric(frame[col], errors="coerce")
        bad = converted.isna() & frame[col].notna() | frame[col].isna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise DataFormatError(
                path, f"row {row + 1}", field=col, expected=f"a numeric {col}", found=frame[col].iloc[row]
            )
        frame[col] = converted.astype(kind)
    for col in ("user", "item"):
        if frame[col].isna().any():
            row = int(frame[col].isna().to_numpy().nonzero()[0][0])
            raise DataFormatError(path, f"row {row + 1}", field=col, expected=f"a {col} id", found="missing")
    return frame


def _finish(path: Path, frame: pd.DataFrame, report: ReadReport) -> InteractionData:
    frame = frame.drop(columns=[c for c in frame.columns if c == LINE])
    data = build_interactions(path.stem, frame, source=str(path))
    data.report = report
    return data
