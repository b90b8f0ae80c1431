"""Is line 1 of a delimited file a header? Decided by its shape, and never silently.

A header is a line of names; anything else on line 1 is data, so a malformed first row is
reported as a bad line instead of being dropped as a header (readers record the line they took
as a header in their report).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from data_pipeline.readers._bytes import DEFAULT_ENCODING, check_encoding, check_text_file

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf|infinity)$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z_ .\-/()#]*$")  # no digits: 'u1' or 'x2' are ids, not names


def detect_header(
    path: str | os.PathLike,
    sep: str,
    numeric_fields: Sequence[int],
    names: Sequence[str] = (),
    encoding: str | None = DEFAULT_ENCODING,
) -> str | None:
    """The first line if it is a header, else None.

    A header is a line of names: every field non-empty and made of letters (no digits: ``u1`` is an
    id), and either a field the format reads as a number does not parse
    or the fields are the column names themselves. Anything else on line 1 is data: a malformed
    first row is then reported as a bad line instead of being dropped as a header.
    """
    with open(check_text_file(path, encoding), encoding=check_encoding(encoding), errors="replace") as fh:
        first_line = fh.readline().rstrip("\r\n")
    fields = [f.strip().strip('"').strip() for f in first_line.split(sep)]
    if not fields or not all(_NAME.match(f) and not _NUMBER.match(f) for f in fields):
        return None
    named = [f.lower() for f in fields] == [n.lower() for n in names]
    return first_line if (named or any(i < len(fields) for i in numeric_fields)) else None


def first_line_is_header(
    path: str | os.PathLike, sep: str, numeric_fields: Sequence[int], encoding: str | None = DEFAULT_ENCODING
) -> bool:
    """True when ``detect_header`` finds one (kept for readers that only need the decision)."""
    return detect_header(path, sep, numeric_fields, encoding=encoding) is not None
