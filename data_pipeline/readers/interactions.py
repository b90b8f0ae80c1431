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

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq

from data_pipeline.errors import BadLine, ConfigError, DataFormatError, ReadReport
from data_pipeline.readers._text import (
    DEFAULT_ENCODING,
    LINE,
    FieldSpec,
    check_encoding,
    check_file,
    check_policy,
    check_text_bytes,
    check_text_file,
    detect_header,
    finite_float,
    no_rows_error,
    read_delimited,
)
from data_pipeline.schema import InteractionData, build_interactions

CANONICAL = ("user", "item", "rating", "timestamp")
IGNORED = ("_", "-", "skip")  # names for source columns that are read but dropped

_CANONICAL_SPECS = {
    "user": FieldSpec("user", pl.String, "a user id"),
    "item": FieldSpec("item", pl.String, "an item id"),
    "rating": FieldSpec("rating", pl.Float32, "a finite numeric rating", parser=finite_float),
    "timestamp": FieldSpec("timestamp", pl.Int64, "an integer timestamp"),
}


def field_specs(names: Sequence[str]) -> list[FieldSpec]:
    """How each named column of a delimited log is parsed ('_' columns are read and dropped)."""
    return [
        _CANONICAL_SPECS.get(n, FieldSpec(f"_drop{i}", pl.String, "a value", allow_empty=True))
        for i, n in enumerate(names)
    ]


def parse_columns(columns: str | Sequence[str] | None) -> list[str] | None:
    """Canonical names of a delimited file's columns in file order ('_' drops one)."""
    if columns is None:
        return None
    names = [c.strip() for c in columns.split(",")] if isinstance(columns, str) else list(columns)
    if any("=" in c for c in names):
        raise ConfigError(
            "--columns",
            f"{','.join(names)!r}: csv/tsv columns are names in file order (e.g. item,user,rating,timestamp); "
            "source=name mappings are for parquet and jsonl",
        )
    unknown = [c for c in names if c not in CANONICAL and c not in IGNORED]
    if unknown:
        raise ConfigError(
            "--columns", f"unknown names {unknown}; expected names from {list(CANONICAL)} (or '_' to drop a column)"
        )
    repeated = sorted({c for c in names if c in CANONICAL and names.count(c) > 1})
    if repeated:
        raise ConfigError("--columns", f"{repeated} named more than once")
    for required in ("user", "item"):
        if required not in names:
            raise ConfigError("--columns", f"lacks '{required}'; expected user and item among the columns")
    return names


def read_csv_interactions(
    path: str | os.PathLike,
    columns: str | Sequence[str] = "user,item,rating,timestamp",
    *,
    sep: str | None = None,
    header: bool | None = None,
    on_bad_lines: str = "error",
    encoding: str = DEFAULT_ENCODING,
) -> InteractionData:
    """CSV/TSV whose columns, in file order, are named by ``columns``.

    The delimiter defaults to tab for ``.tsv``/``.tab`` files and comma otherwise. ``header=None``
    detects a header row (see ``detect_header``: a first line of names whose numeric fields do not
    parse, or that repeats the column names); the report records the line it dropped as a header.
    """
    names = parse_columns(columns)
    p = check_text_file(path, encoding)
    sep = sep or ("\t" if p.suffix.lower() in (".tsv", ".tab") else ",")
    numeric = [i for i, n in enumerate(names) if n in ("rating", "timestamp")]
    detected = None
    if header is None:
        detected = detect_header(p, sep, numeric, names, encoding)
        header = detected is not None
    fields = field_specs(names)
    frame, report = read_delimited(
        p,
        sep,
        fields,
        header=header,
        on_bad_lines=on_bad_lines,
        sep_name="tab" if sep == "\t" else repr(sep),
        encoding=encoding,
    )
    report.header = detected
    keep = [n for n in names if n in CANONICAL]
    return _finish(p, frame.select(keep).to_pandas(), report)


def read_parquet_interactions(
    path: str | os.PathLike, columns: Mapping[str, str] | Sequence[str] | str | None = None
) -> InteractionData:
    p = check_file(path)
    try:
        table = pq.read_table(p)
        # Reading can succeed on a damaged file and converting fail, both found by the fuzz suite's
        # byte flips: corrupt pandas metadata in the footer (JSONDecodeError), and string data that is
        # not UTF-8 (full validation checks it before pandas or the encoder trip over it).
        table.validate(full=True)
        raw = table.to_pandas()
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataFormatError(p, f"not a readable Parquet file ({reason})") from None
    frame = _map_columns(p, raw, columns)
    return _finish(p, _validate_frame(p, frame), ReadReport(str(p), rows=len(frame)))


def read_jsonl_interactions(
    path: str | os.PathLike,
    columns: Mapping[str, str] | Sequence[str] | str | None = None,
    *,
    on_bad_lines: str = "error",
    encoding: str = DEFAULT_ENCODING,
) -> InteractionData:
    """JSON lines, one object per line; each malformed line is named by its number.

    Without ``columns`` the keys are the canonical names; ``user`` and ``item`` are required,
    ``rating`` and ``timestamp`` are read when the first object has them.
    """
    mapping = _mapping(columns) if columns is not None else None
    p = check_text_file(path, encoding)
    check_policy(on_bad_lines)
    enc = check_encoding(encoding)
    rows: list[dict] = []
    numbers: list[int] = []  # the file line of each row
    report = ReadReport(str(p))
    offset = 0
    with open(p, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            check_text_bytes(p, raw, offset=offset, first_line=number, encoding=enc)
            offset += len(raw)
            line = raw.decode(enc)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if mapping is None and isinstance(obj, dict):
                mapping = {c: c for c in CANONICAL if c in obj or c in ("user", "item")}
            problem = _json_problem(obj, mapping)
            if problem is not None:
                if on_bad_lines == "error":
                    raise DataFormatError(p, line=number, expected=problem[0], found=problem[1])
                report.skipped += 1
                if len(report.examples) < 5:
                    report.examples.append(BadLine(number, None, *problem))
                continue
            rows.append({canon: obj[src] for canon, src in mapping.items()})
            numbers.append(number)
    if not rows:
        raise no_rows_error(p, report)
    frame = _validate_frame(p, pd.DataFrame(rows, columns=list(mapping)), numbers)
    report.rows = len(frame)
    return _finish(p, frame, report)


def _json_problem(obj, mapping: dict[str, str] | None) -> tuple[str, str] | None:
    """(expected, found) when a parsed line is not an object with the mapped keys, else None."""
    if not isinstance(obj, dict):
        return "a JSON object", "invalid JSON" if obj is None else f"a JSON {type(obj).__name__}"
    missing = [src for src in (mapping or {}).values() if src not in obj]
    if missing:
        return f"a JSON object with key{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))}", (
            f"keys {sorted(obj)[:8]}"
        )
    return None


def _mapping(columns: Mapping[str, str] | Sequence[str] | str | None) -> dict[str, str]:
    """Canonical name -> source column. A sequence or comma string names source columns in
    canonical order; a mapping (or ``user=reviewerID,...`` string) is explicit."""
    if columns is None:
        return {c: c for c in CANONICAL}
    if isinstance(columns, str):
        parts = [part.strip() for part in columns.split(",")]
        if any("=" in part for part in parts):
            pairs = [part.split("=", 1) for part in parts]
            if any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
                raise ConfigError(
                    "--columns",
                    f"{columns!r}: expected name=source pairs for every column, e.g. user=reviewerID,item=asin",
                )
            columns = {k.strip(): v.strip() for k, v in pairs}
        else:
            columns = parts
    if isinstance(columns, Mapping):
        mapping = {k.strip(): v.strip() for k, v in columns.items()}
    else:
        if len(columns) > len(CANONICAL):
            raise ConfigError("--columns", f"at most {len(CANONICAL)} source names ({', '.join(CANONICAL)}), got {len(columns)}")
        mapping = dict(zip(CANONICAL, columns))
    bad = [k for k in mapping if k not in CANONICAL]
    if bad:
        raise ConfigError("--columns", f"unknown names {bad}; expected names from {list(CANONICAL)}")
    empty = [k for k, v in mapping.items() if not v]
    if empty or "user" not in mapping or "item" not in mapping:
        raise ConfigError("--columns", f"{mapping}: expected a non-empty source for user and item (and any other name given)")
    return mapping


def _map_columns(path: Path, frame: pd.DataFrame, columns) -> pd.DataFrame:
    if columns is None:
        mapping = {c: c for c in CANONICAL if c in frame.columns or c in ("user", "item")}
    else:
        mapping = _mapping(columns)
    missing = [src for src in mapping.values() if src not in frame.columns]
    if missing:
        raise DataFormatError(
            path,
            f"missing column{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))}",
            expected=f"columns {list(mapping.values())}",
            found=list(frame.columns),
        )
    return frame[list(mapping.values())].set_axis(list(mapping), axis=1)


def _validate_frame(path: Path, frame: pd.DataFrame, lines: Sequence[int] | None = None) -> pd.DataFrame:
    """Type-check columns of an already-parsed frame; the error names the first bad row (its file
    line when ``lines`` gives them, as for JSON lines).

    Ratings must be finite numbers; timestamps whole numbers that fit in 64 bits (NaN, inf,
    1.5 or 1e30 are named, never cast into garbage)."""
    for col in ("rating", "timestamp"):
        if col not in frame:
            continue
        converted = pd.to_numeric(frame[col], errors="coerce").astype("float64")
        values = converted.to_numpy()
        bad = ~np.isfinite(values)
        if col == "timestamp":
            bad |= (np.abs(values) >= 2.0**63) | (values != np.floor(values))
        if bad.any():
            row = int(bad.nonzero()[0][0])
            expected = "a finite numeric rating" if col == "rating" else "an integer timestamp"
            raise _row_error(path, row, lines, col, expected, str(frame[col].iloc[row]))
        frame[col] = values.astype("float32" if col == "rating" else "int64")
    for col in ("user", "item"):
        if frame[col].isna().any():
            row = int(frame[col].isna().to_numpy().nonzero()[0][0])
            raise _row_error(path, row, lines, col, f"a {col} id", "null")
    return frame


def _row_error(path: Path, row: int, lines: Sequence[int] | None, field: str, expected: str, found: str):
    if lines is not None:
        return DataFormatError(path, line=lines[row], field=field, expected=expected, found=found)
    return DataFormatError(f"{path}, row {row + 1}", field=field, expected=expected, found=found)


def _finish(path: Path, frame: pd.DataFrame, report: ReadReport) -> InteractionData:
    frame = frame.drop(columns=[c for c in frame.columns if c == LINE])
    data = build_interactions(path.stem, frame, source=str(path))
    data.report = report
    return data
