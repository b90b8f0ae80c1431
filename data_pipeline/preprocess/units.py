"""Work units: a text file cut into byte ranges that preprocessing workers read independently.

A range owns every line whose first byte lies in ``[start, end)``, so ranges cut anywhere still
cover each line exactly once; a worker finds its first and last line by looking at the bytes
around the cut. No pass over the file is needed to make the ranges: what a worker knows is the
byte offset of its first line, and the line *numbers* it reports are counted from there. When a
bad line must be named, ``line_at_offset`` turns the offset into the file's line number (a count
of newlines before it: paid on the error path only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_RANGE_BYTES = 32 << 20  # ~180k Criteo lines: enough work per unit to hide its scheduling


@dataclass(frozen=True)
class ByteRange:
    """The ``index``-th work unit of a file: lines starting in ``[start, end)``."""

    index: int
    start: int
    end: int


def split_ranges(path: str | os.PathLike, range_bytes: int = DEFAULT_RANGE_BYTES) -> list[ByteRange]:
    size = Path(path).stat().st_size
    step = max(int(range_bytes), 1)
    return [ByteRange(i, start, min(start + step, size)) for i, start in enumerate(range(0, size, step))]


def line_start_at_or_after(fh, offset: int) -> int:
    """Offset of the first line that starts at or after ``offset`` (the file size if none)."""
    if offset <= 0:
        return 0
    fh.seek(offset - 1)
    if fh.read(1) == b"\n":
        return offset
    fh.readline()  # the rest of the line that straddles the cut belongs to the range before
    return fh.tell()


def aligned(fh, rng: ByteRange) -> tuple[int, int]:
    """The byte span of whole lines a range owns."""
    return line_start_at_or_after(fh, rng.start), line_start_at_or_after(fh, rng.end)


def line_at_offset(path: str | os.PathLike, offset: int) -> int:
    """1-based number of the line that starts at byte ``offset``."""
    newlines, done = 0, 0
    with open(path, "rb") as fh:
        while done < offset:
            chunk = fh.read(min(1 << 24, offset - done))
            if not chunk:
                break
            newlines += int(np.count_nonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n")))
            done += len(chunk)
    return newlines + 1


def shard_units(units: list[ByteRange], consumers: int) -> list[list[ByteRange]]:
    """Give each of ``consumers`` trainers its own share of the units (round robin), to feed each
    through its own pipeline: unlike ``streaming_split``, a slow consumer then backs up only its
    own pipeline, never the others'. Every unit goes to exactly one consumer."""
    if consumers < 1:
        raise ValueError(f"consumers must be >= 1, got {consumers}")
    return [units[i::consumers] for i in range(consumers)]
