"""Coat (Schnabel et al., ICML 2016): dense ``users x items`` rating matrices as ASCII text.

``train.ascii`` holds the ratings users chose to give (missing not at random, MNAR), ``test.ascii``
ratings of items drawn at random for each user (missing completely at random, MCAR): an unbiased
test set. Each line is one user (line ``n`` is user ``n - 1``), each whitespace-separated column one
item (0-based); 0 means unobserved, 1..5 is a rating. CRLF endings. No times: file order stands in.

``read_coat(folder)`` reads the training matrix (the log one samples and trains on),
``read_coat(file)`` the matrix given, and ``read_coat_split(folder)`` both in one vocabulary with a
mask of the test rows, so a model trained on the MNAR part is scored on the MCAR part.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from data_pipeline.errors import BadLine, DataFormatError, ReadReport
from data_pipeline.readers._release import drop_bad_lines, release_file, token_lines
from data_pipeline.readers._text import LINE
from data_pipeline.schema import InteractionData, build_interactions

TRAIN_FILE = "train.ascii"
TEST_FILE = "test.ascii"
MAX_RATING = 5


def read_coat(path: str | os.PathLike, *, on_bad_lines: str = "error") -> InteractionData:
    """The observed cells of one matrix (``train.ascii`` when given the folder)."""
    source = release_file(path, TRAIN_FILE, "Coat")
    frame, report = read_matrix(source, on_bad_lines=on_bad_lines)
    data = build_interactions(f"coat-{source.stem}", frame, source=str(source))
    data.report = report
    return data


def read_coat_split(path: str | os.PathLike) -> tuple[InteractionData, np.ndarray]:
    """Train (MNAR) and test (MCAR) rows in one dataset and one vocabulary, and a boolean mask of
    the test rows. Test rows come after every training row (their stand-in times are later)."""
    folder = Path(path)
    train, _ = read_matrix(release_file(folder, TRAIN_FILE, "Coat"))
    test, _ = read_matrix(release_file(folder, TEST_FILE, "Coat"))
    both = pd.concat([train, test], ignore_index=True)
    both["timestamp"] = np.arange(len(both), dtype=np.int64)
    data = build_interactions("coat", both, source=str(folder))
    return data, np.r_[np.zeros(len(train), bool), np.ones(len(test), bool)]


def read_matrix(path: Path, *, on_bad_lines: str = "error") -> tuple[pd.DataFrame, ReadReport]:
    """Non-zero cells of a dense integer matrix as ``user, item, rating`` rows.

    Every row must have as many columns as the first one; a value must be an integer 0..5.
    """
    lines = token_lines(path, on_bad_lines).rename({"tokens": "cells"})
    if lines.height == 0:
        raise DataFormatError(path, "no data rows", expected="at least one matrix row", found="none")
    width = lines["cells"].list.len()
    n_items = int(width[0])
    cells = (
        lines.select(pl.col(LINE), pl.col("cells"))
        .with_columns(pl.int_ranges(0, pl.col("cells").list.len()).alias("item"))
        .explode("cells", "item")
        .with_columns(pl.col("cells").cast(pl.Int64, strict=False).alias("rating"))
    )
    wrong_width = lines.filter(width != n_items)
    bad_value = cells.filter(
        pl.col("rating").is_null() | (pl.col("rating") < 0) | (pl.col("rating") > MAX_RATING)
    )
    checks = [
        (wrong_width, lambda r: BadLine(r[LINE], None, f"{n_items} space-separated columns (as on the first row)", f"{len(r['cells'])} columns")),
        (bad_value, lambda r: BadLine(r[LINE], f"column {r['item'] + 1}", f"an integer rating 0..{MAX_RATING} (0 = unobserved)", r["cells"])),
    ]  # fmt: skip
    observed = cells.filter(pl.col("rating") > 0).select(
        pl.col(LINE),
        (pl.col(LINE) - 1).alias("user"),
        pl.col("item").cast(pl.Int64),
        pl.col("rating").cast(pl.Float32),
    )
    frame, report = drop_bad_lines(path, observed, checks, on_bad_lines)
    return frame.to_pandas(), report
