"""CiteULike-a (Wang & Blei 2011; Wang, Chen & Li 2013): ``users.dat``, one line per user.

Each line is ``count item item ...``: how many articles the user saved, then their 0-based ids.
Line ``n`` is user ``n - 1`` (0-based, like the items); a line whose count disagrees with the ids
that follow is a bad line (``field 'count'``). Implicit feedback, no times: file order (the order
of ids on each line) stands in for time. The last line has no final newline in the release.
"""

from __future__ import annotations

import os

import polars as pl

from data_pipeline.errors import BadLine
from data_pipeline.readers._release import drop_bad_lines, release_file, token_lines
from data_pipeline.readers._text import LINE
from data_pipeline.schema import InteractionData, build_interactions

USERS_FILE = "users.dat"


def read_citeulike(path: str | os.PathLike, *, on_bad_lines: str = "error") -> InteractionData:
    """User libraries from ``users.dat`` (or the folder holding it)."""
    source = release_file(path, USERS_FILE, "CiteULike")
    tokens = pl.col("tokens")
    lines = token_lines(source, on_bad_lines).select(
        pl.col(LINE),
        tokens.list.first().alias("count_raw"),
        tokens.list.first().cast(pl.Int64, strict=False).alias("count"),
        tokens.list.slice(1).alias("items"),
    )
    ids = (
        lines.select(pl.col(LINE), pl.col("items"))
        .explode("items")
        .filter(pl.col("items").is_not_null())
        .with_columns(pl.col("items").cast(pl.Int64, strict=False).alias("item"))
    )
    bad_count = lines.filter(pl.col("count").is_null() | (pl.col("count") < 0))
    wrong_length = lines.filter(
        pl.col("count").is_not_null() & (pl.col("count") != pl.col("items").list.len())
    )
    bad_item = ids.filter(pl.col("item").is_null() | (pl.col("item") < 0))
    checks = [
        (bad_count, lambda r: BadLine(r[LINE], "count", "a non-negative integer count", r["count_raw"])),
        (wrong_length, lambda r: BadLine(r[LINE], "count", f"{r['count']} item ids after the count", f"{len(r['items'])} ids")),
        (bad_item, lambda r: BadLine(r[LINE], "item", "a non-negative integer item id", r["items"])),
    ]  # fmt: skip
    users = ids.select(pl.col(LINE), (pl.col(LINE) - 1).alias("user"), pl.col("item"))  # line 1 is user 0
    frame, report = drop_bad_lines(source, users, checks, on_bad_lines)
    data = build_interactions("citeulike-a", frame.to_pandas(), source=str(source))
    data.report = report
    return data
