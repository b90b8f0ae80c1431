"""Amazon review dumps (Ni, Li & McAuley 2019, the 2018 release; its 5-core subsets): JSON lines,
usually gzipped (``Appliances_5.json.gz``), one review per line with ``reviewerID``, ``asin``,
``overall`` (1..5) and ``unixReviewTime`` among free-text fields that are not read.

The same person often reviews the same item several times (the 5-core Appliances file: 2,094 of
2,277 lines repeat a pair). A recommender sees one interaction per (user, item), so repeats are
collapsed into the earliest review (its rating and time) and the report says how many were
collapsed (``ReviewReport.duplicates``). A gzip file is recognised by its magic bytes, not its name.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_pipeline.errors import BadLine, DataFormatError, ReadReport
from data_pipeline.readers._text import check_file, check_policy
from data_pipeline.schema import InteractionData, build_interactions

KEYS = {"user": "reviewerID", "item": "asin", "rating": "overall", "timestamp": "unixReviewTime"}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_EXAMPLES = 5


@dataclass
class ReviewReport(ReadReport):
    """A read report that also counts reviews collapsed into an earlier one of the same pair."""

    duplicates: int = 0

    def summary(self) -> str:
        text = super().summary()
        if self.duplicates:
            text += f"; {self.duplicates} repeated (user, item) reviews collapsed into the earliest"
        return text


def read_amazon_reviews(path: str | os.PathLike, *, on_bad_lines: str = "error") -> InteractionData:
    """Reviews as interactions, one per (user, item) (see module doc)."""
    source = check_file(path)
    check_policy(on_bad_lines)
    report = ReviewReport(str(source))
    rows: dict[str, list] = {k: [] for k in KEYS}
    with _open(source) as fh:
        number = 0
        try:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                problem = _parse(raw, rows)
                if problem is None:
                    continue
                field, expected, found = problem
                if on_bad_lines == "error":
                    raise DataFormatError(source, line=number, field=field, expected=expected, found=found)
                report.skipped += 1
                if len(report.examples) < _MAX_EXAMPLES:
                    report.examples.append(BadLine(number, field, expected, str(found)))
        except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt gzip stream
            raise DataFormatError(
                source, line=number + 1, expected="a complete gzip stream", found=str(exc)
            ) from None
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise DataFormatError(source, "no reviews", expected="at least one JSON review line", found="none")
    frame["rating"] = frame["rating"].astype(np.float32)
    frame["timestamp"] = frame["timestamp"].astype(np.int64)
    # Earliest review of each pair first (file order breaks ties); later repeats go.
    order = np.lexsort((np.arange(len(frame)), frame["timestamp"].to_numpy()))
    first = ~frame.iloc[order].duplicated(["user", "item"]).to_numpy()
    kept = np.sort(order[first])
    report.duplicates = int(len(frame) - kept.size)
    frame = frame.iloc[kept].reset_index(drop=True)
    report.rows = len(frame)
    data = build_interactions(_name(source), frame, source=str(source))
    data.report = report
    return data


def _open(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rt", encoding="utf-8", errors="strict")
    return open(path, encoding="utf-8", errors="strict")


def _parse(raw: str, rows: dict[str, list]) -> tuple[str | None, str, object] | None:
    """Append one review's fields to ``rows``; or return (field, expected, found) for a bad line."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None, "a JSON object", raw.strip()[:40]
    if not isinstance(obj, dict):
        return None, "a JSON object", type(obj).__name__
    values = {}
    for canon, key in KEYS.items():
        if key not in obj:
            return key, f"a review with key '{key}'", "no such key"
        value = obj[key]
        if canon in ("user", "item"):
            if not isinstance(value, str) or not value:
                return key, "a non-empty string id", value
        elif canon == "rating":
            if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
                return key, "a numeric rating", value
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return key, "a non-negative integer Unix time", value
        values[canon] = value
    for canon, value in values.items():
        rows[canon].append(value)
    return None


def _name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".json", ".jsonl"):
        name = name.removesuffix(suffix)
    return f"amazon-{name}"
