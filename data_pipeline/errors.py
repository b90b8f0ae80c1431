"""Error types shared by every fedrec package.

Errors are raised where a problem is found, carry enough context to name it (file, 1-based line,
field, what was expected and what was found) and are turned into one clear line by the CLI
(exit status 2). Nothing downstream should ever need to show a traceback to explain bad input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from os import PathLike


class FedrecError(Exception):
    """Base class: the CLI prints ``str(error)`` on one line and exits with status 2."""

    def __str__(self) -> str:
        # One line whatever was put in: a third-party message (pyarrow's) can span several.
        return re.sub(r"\s*\n\s*", " ", super().__str__()).strip()


class DataFormatError(FedrecError):
    """Input data that does not match its declared format."""

    def __init__(
        self,
        path: str | PathLike | None,
        message: str | None = None,
        *,
        line: int | None = None,
        field: str | None = None,
        expected: str | None = None,
        found: object = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.message = message
        self.line = line
        self.field = field
        self.expected = expected
        self.found = found
        parts = [self.path or "<input>"]
        if line is not None:
            parts.append(f"line {line}")
        if field is not None:
            parts.append(f"field '{field}'")
        where = ", ".join(parts)
        detail = message or ""
        if expected is not None:
            detail = (detail + ": " if detail else "") + f"expected {expected}"
            if found is not None:
                detail += f", found {_show(found)}"
        super().__init__(f"{where}: {detail}" if detail else where)

    def __reduce__(self):
        # Rebuilt from its parts, so the error crosses process boundaries (Ray workers) intact.
        return (_rebuild_format_error, (self.path, self.message, self.line, self.field, self.expected, self.found))

    def at_line(self, line: int | None) -> DataFormatError:
        """The same error named at another line (a worker counts lines from its own first one)."""
        return DataFormatError(
            self.path, self.message, line=line, field=self.field, expected=self.expected, found=self.found
        )


def _rebuild_format_error(path, message, line, field, expected, found) -> DataFormatError:
    return DataFormatError(path, message, line=line, field=field, expected=expected, found=found)


class DatasetNotFoundError(FedrecError):
    """A dataset path that does not exist or lacks the files its format needs."""


class ConfigError(FedrecError):
    """A configuration value that is missing, unknown or out of range; names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"config field '{field}': {message}")

    def __reduce__(self):
        return (ConfigError, (self.field, self.message))


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class BadLine:
    """One malformed input line, kept for ``on_bad_lines='skip'`` reports."""

    line: int
    field: str | None
    expected: str
    found: str

    def describe(self) -> str:
        where = f"line {self.line}" + (f", field '{self.field}'" if self.field else "")
        return f"{where}: expected {self.expected}, found {self.found!r}"


@dataclass
class ReadReport:
    """What a reader did: rows kept, rows skipped (with the first few shown), and the first line it
    took as a header when it detected one (so a dropped line is never silent)."""

    path: str
    rows: int = 0
    skipped: int = 0
    examples: list[BadLine] = field(default_factory=list)
    header: str | None = None

    def summary(self) -> str:
        header = f" (line 1 taken as a header: {self.header!r}; --no-header reads it as data)" if self.header else ""
        if not self.skipped:
            return f"{self.path}: {self.rows} rows{header}"
        shown = "; ".join(b.describe() for b in self.examples)
        return f"{self.path}: {self.rows} rows kept, {self.skipped} malformed rows skipped (first: {shown}){header}"
