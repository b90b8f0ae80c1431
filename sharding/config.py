"""What the sharding configs (workload tables, topology, plan shards) share: pydantic v2 models
with unknown keys refused and integers and booleans taken strictly, errors turned into one line,
and JSON files read so that a binary or non-UTF-8 file is named instead of raising a traceback.

Strict means ``rows: 2.5``, ``rows: "10"`` and ``rows: true`` are errors, not 2, 10 and 1.
Floats accept integers (``hbm_gb: 40``); NumPy integers count as integers (the synthetic workload
generators compute sizes with NumPy).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, ConfigDict, ValidationError

from data_pipeline.errors import FedrecError

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _numpy_int(value: Any) -> Any:
    return int(value) if isinstance(value, np.integer) else value


StrictCount = Annotated[int, BeforeValidator(_numpy_int)]
Number = float


def validation_message(exc: ValidationError) -> str:
    """The first problem of a pydantic error as ``field 'x': what was wrong (got ...)``."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
    msg = err.get("msg", "invalid")
    if err.get("type") in ("unexpected_keyword_argument", "extra_forbidden"):
        msg = "unknown key"
    got = err.get("input")
    shown = "" if err.get("type") in ("missing", "missing_argument") else f" (got {_short(got)})"
    return f"field '{field}': {msg}{shown}"


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_json_file(path: str | os.PathLike, what: str, error: Callable[[str], FedrecError]) -> Any:
    """Parse a JSON file; every failure (missing, unreadable, binary, not UTF-8, not JSON) is one
    ``error(message)`` naming the file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    nul = raw.find(b"\x00", 0, 4096)
    if nul >= 0:
        raise error(f"{what} {path} is a binary file (NUL byte at offset {nul}); expected JSON text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte offset {exc.start}); expected JSON") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what} {path}: not JSON ({exc.msg} at line {exc.lineno})") from None
