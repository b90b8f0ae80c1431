"""Readers for the original formats; each returns canonical data (see ``data_pipeline.schema``)."""

from __future__ import annotations

import os
from pathlib import Path

from data_pipeline.errors import ConfigError, DatasetNotFoundError
from data_pipeline.readers.interactions import (
    read_csv_interactions,
    read_jsonl_interactions,
    read_parquet_interactions,
)
from data_pipeline.readers.movielens import read_movielens, read_movielens_fold
from data_pipeline.schema import InteractionData

INTERACTION_FORMATS = ("movielens", "csv", "tsv", "parquet", "jsonl")


def load_interactions(
    path: str | os.PathLike,
    format: str,
    *,
    columns=None,
    header: bool | None = None,
    on_bad_lines: str = "error",
    encoding: str = "utf-8",
) -> InteractionData:
    """One entry point for interaction data in any supported format (``encoding``: text formats
    other than MovieLens, whose releases have fixed encodings)."""
    if not Path(path).exists():
        raise DatasetNotFoundError(f"{path}: no such file or folder")
    if format == "movielens":
        return read_movielens(path, on_bad_lines=on_bad_lines)
    if format in ("csv", "tsv"):
        return read_csv_interactions(
            path,
            columns or "user,item,rating,timestamp",
            sep="\t" if format == "tsv" else None,
            header=header,
            on_bad_lines=on_bad_lines,
            encoding=encoding,
        )
    if format == "parquet":
        return read_parquet_interactions(path, columns)
    if format == "jsonl":
        return read_jsonl_interactions(path, columns, on_bad_lines=on_bad_lines, encoding=encoding)
    raise ConfigError(
        "format", f"unknown interaction format {format!r}; expected one of {INTERACTION_FORMATS}"
    )


__all__ = [
    "INTERACTION_FORMATS",
    "load_interactions",
    "read_csv_interactions",
    "read_jsonl_interactions",
    "read_movielens",
    "read_movielens_fold",
    "read_parquet_interactions",
]
