"""What the planner plans for: embedding tables, their sizes and how their rows are accessed.

Workload JSON (one format, written by ``fedrec data stats --workload`` and read by ``fedrec plan``)::

    {"tables": [
      {"name": "C1",               # unique table name
       "rows": 40000000,           # rows (0 .. 2^40)
       "dim": 128,                 # embedding dimension (1 .. 65536)
       "bytes_per_value": 4,       # optional, default 4 (fp32); 2 for fp16 (1 .. 8)
       "pooling_factor": 1.0,      # optional, default 1: mean lookups per sample when present
       "coverage": 0.97,           # optional, default 1: fraction of samples where present
       "access_cdf": [[0, 0], [0.001, 0.42], ..., [1, 1]],
                                   # [row_fraction, access_fraction], rows sorted hottest
                                   # first, from (0, 0) to (1, 1); optional, default uniform
       "zipf": 1.1}                # optional: exponent of the law the table was generated
    ]}                             # with; replay then samples ids with zipf_ranks

Because rows are sorted hottest first the CDF is concave: the planner reads the access fraction
of the hottest ``h`` rows off the piecewise-linear curve through the points. A CDF that is not
monotone, does not run from (0, 0) to (1, 1) or is clearly not concave (rows not hottest first)
is rejected with an error naming the table; rounding noise is smoothed by taking the concave
majorant of the points. Each table is a pydantic model (``extra="forbid"``, strict integers and
booleans): an unknown key (a typo would silently mean a default), ``rows: 2.5``, ``rows: "10"`` or
``dim: true`` is rejected with one line naming the table and the field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import field
from typing import Annotated, Any

import numpy as np
from pydantic import Field, ValidationError
from pydantic.dataclasses import dataclass

from data_pipeline.atomic import write_text_atomic
from data_pipeline.stats import access_cdf
from data_pipeline.synth import PROFILES, SPARSE_MISSING, zipf_access_cdf
from sharding.config import STRICT, Number, StrictCount, read_json_file, validation_message
from sharding.errors import WorkloadError

_EPS = 1e-9


@dataclass(config=STRICT)
class TableWorkload:
    name: Annotated[str, Field(min_length=1)]
    # Bounds keep rows * dim * bytes in int64 (the cost model's arrays): 2^40 rows of 2^16 x 8 bytes.
    rows: Annotated[StrictCount, Field(ge=0, le=2**40)]
    dim: Annotated[StrictCount, Field(ge=1, le=2**16)]
    bytes_per_value: Annotated[StrictCount, Field(ge=1, le=8)] = 4
    pooling_factor: Annotated[Number, Field(ge=0)] = 1.0
    coverage: Annotated[Number, Field(ge=0, le=1)] = 1.0
    access_cdf: Any = field(default_factory=lambda: [[0.0, 0.0], [1.0, 1.0]])
    zipf: Annotated[Number, Field(gt=0)] | None = None

    def __post_init__(self) -> None:
        self._xs, self._ys = _concave_points(self.name, self.access_cdf)
        self.access_cdf = [[float(x), float(y)] for x, y in zip(self._xs, self._ys)]

    @property
    def row_bytes(self) -> int:
        return self.dim * self.bytes_per_value

    @property
    def total_bytes(self) -> int:
        return self.rows * self.row_bytes

    @property
    def lookups_per_sample(self) -> float:
        return self.coverage * self.pooling_factor

    def hot_access_fraction(self, hot_rows):
        """Fraction of accesses that hit the ``hot_rows`` hottest rows (scalar or array)."""
        if self.rows == 0:
            return np.ones_like(np.asarray(hot_rows, dtype=np.float64)) if np.ndim(hot_rows) else 1.0
        frac = np.interp(np.asarray(hot_rows, dtype=np.float64) / self.rows, self._xs, self._ys)
        return frac if np.ndim(frac) else float(frac)

    def cdf_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The concave piecewise-linear CDF as (row_fractions, access_fractions)."""
        return self._xs, self._ys

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "rows": self.rows,
            "dim": self.dim,
            "bytes_per_value": self.bytes_per_value,
            "pooling_factor": self.pooling_factor,
            "coverage": self.coverage,
            "access_cdf": [[round(x, 12), round(y, 12)] for x, y in self.access_cdf],
        }
        if self.zipf is not None:
            out["zipf"] = self.zipf
        return out

    @classmethod
    def from_dict(cls, d: dict, index: int = 0) -> TableWorkload:
        """Validate one table of a workload file; errors name the table (or its position)."""
        if not isinstance(d, dict):
            raise WorkloadError(f"#{index}", f"expected an object, found {type(d).__name__}")
        name = d.get("name")
        label = name if isinstance(name, str) and name else f"#{index}"
        try:
            return cls(**d)
        except ValidationError as exc:
            raise WorkloadError(label, validation_message(exc)) from None


@dataclass
class Workload:
    tables: list[TableWorkload]

    def __post_init__(self) -> None:
        if not self.tables:
            raise WorkloadError(None, "no tables")
        seen: set[str] = set()
        for t in self.tables:
            if t.name in seen:
                raise WorkloadError(t.name, "name appears more than once")
            seen.add(t.name)

    def __len__(self) -> int:
        return len(self.tables)

    def __iter__(self):
        return iter(self.tables)

    @property
    def total_bytes(self) -> int:
        return sum(t.total_bytes for t in self.tables)

    def table(self, name: str) -> TableWorkload:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"tables": [t.to_dict() for t in self.tables]}

    @classmethod
    def from_dict(cls, d: dict) -> Workload:
        if not isinstance(d, dict) or not isinstance(d.get("tables"), list):
            raise WorkloadError(None, 'expected an object {"tables": [...]}')
        return cls([TableWorkload.from_dict(t, i) for i, t in enumerate(d["tables"])])

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The JSON text (one table a line); written to ``path`` when given."""
        lines = ",\n".join("  " + json.dumps(t.to_dict()) for t in self.tables)
        text = '{"tables": [\n' + lines + "\n]}\n"
        if path is not None:
            write_text_atomic(path, text, "--workload")
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> Workload:
        """Read a workload file (or JSON text starting with ``{``)."""
        text = str(source)
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise WorkloadError(None, f"not JSON ({exc.msg} at line {exc.lineno})") from None
        else:
            data = read_json_file(source, "workload", lambda msg: WorkloadError(None, msg))
        return cls.from_dict(data)


def table_from_counts(
    name: str,
    counts: np.ndarray,
    dim: int,
    pooling_factor: float,
    coverage: float,
    bytes_per_value: int = 4,
    points: int = 64,
) -> TableWorkload:
    """A table from its per-row access counts: rows = len(counts), the CDF of the counts sorted
    hottest first, downsampled to about ``points`` geometrically spaced points."""
    c = np.asarray(counts)
    if c.ndim != 1:
        raise WorkloadError(name, f"counts must be one-dimensional, got shape {c.shape}")
    if c.size and (not np.all(np.isfinite(c)) or c.min() < 0):
        raise WorkloadError(name, "counts must be finite and >= 0")
    return TableWorkload(
        name=name,
        rows=int(c.size),
        dim=dim,
        bytes_per_value=bytes_per_value,
        pooling_factor=pooling_factor,
        coverage=coverage,
        access_cdf=access_cdf(c, points),
    )


def synthetic_workload(
    profile_or_cardinalities: str | Sequence[int],
    zipf: float | tuple[float, float],
    dim: int | tuple[int, int],
    pooling_factor: float = 1.0,
    coverage: float | Sequence[float] | None = None,
    bytes_per_value: int = 4,
    total_bytes: int | None = None,
    seed: int = 0,
    points: int = 64,
) -> Workload:
    """Criteo-like tables with Zipf-distributed accesses.

    ``profile_or_cardinalities``: "criteo-kaggle", "criteo-terabyte" or a list of row counts.
    ``zipf`` and ``dim`` are one value or a (low, high) range drawn per table (dims: powers of two).
    ``coverage`` defaults to the per-feature presence measured on the Criteo sample for the
    26-table profiles, else 1. ``total_bytes`` scales every table's rows so the tables take
    about that many bytes in all (capacity-constrained benchmarks).
    """
    if isinstance(profile_or_cardinalities, str):
        if profile_or_cardinalities not in PROFILES:
            raise WorkloadError(None, f"unknown profile {profile_or_cardinalities!r}; expected one of {sorted(PROFILES)}")
        cards = list(PROFILES[profile_or_cardinalities])
    else:
        cards = [int(c) for c in profile_or_cardinalities]
    n = len(cards)
    rng = np.random.default_rng(seed)
    exps = _per_table(zipf, n, rng, float)
    dims = _dims(dim, n, rng)
    if coverage is None:
        coverage = [1.0 - m for m in SPARSE_MISSING] if n == len(SPARSE_MISSING) else 1.0
    covs = list(coverage) if isinstance(coverage, Sequence) else [float(coverage)] * n
    if total_bytes is not None:
        raw = sum(c * d * bytes_per_value for c, d in zip(cards, dims))
        cards = [max(1, round(c * total_bytes / raw)) for c in cards]
    names = [f"C{i + 1}" for i in range(n)] if n == 26 else [f"t{i}" for i in range(n)]
    tables = [
        TableWorkload(
            name=names[i],
            rows=cards[i],
            dim=dims[i],
            bytes_per_value=bytes_per_value,
            pooling_factor=pooling_factor,
            coverage=covs[i],
            access_cdf=zipf_access_cdf(cards[i], exps[i], points),
            zipf=exps[i],
        )
        for i in range(n)
    ]
    return Workload(tables)


def synthetic_model(
    num_tables: int = 1000,
    seed: int = 0,
    total_bytes: int | None = None,
    rows_range: tuple[float, float] = (1e2, 5e7),
    dims: Sequence[int] = (32, 64, 128, 256),
    zipf: tuple[float, float] = (0.8, 1.3),
    points: int = 32,
) -> Workload:
    """A production-like model of many tables: log-uniform sizes, log-normal pooling factors
    (median ~5, up to 100), coverage from 2% to 100%, Zipf exponents in ``zipf``."""
    rng = np.random.default_rng([seed, num_tables])
    rows = np.exp(rng.uniform(np.log(rows_range[0]), np.log(rows_range[1]), num_tables)).astype(np.int64)
    dim = rng.choice(np.asarray(dims), num_tables, p=_dim_weights(len(dims)))
    if total_bytes is not None:
        scale = float(total_bytes) / float((rows * dim * 4).sum())
        rows = np.maximum(1, np.round(rows.astype(np.float64) * scale)).astype(np.int64)
    pooling = np.clip(rng.lognormal(np.log(5.0), 1.0, num_tables), 1.0, 100.0)
    coverage = np.clip(rng.beta(2.0, 1.2, num_tables), 0.02, 1.0)
    exps = rng.uniform(*zipf, num_tables)
    tables = [
        TableWorkload(
            name=f"table_{i:04d}",
            rows=int(rows[i]),
            dim=int(dim[i]),
            pooling_factor=round(float(pooling[i]), 3),
            coverage=round(float(coverage[i]), 3),
            access_cdf=zipf_access_cdf(int(rows[i]), float(exps[i]), points),
            zipf=round(float(exps[i]), 4),
        )
        for i in range(num_tables)
    ]
    return Workload(tables)


def _dim_weights(k: int) -> list[float]:
    w = np.arange(k, 0, -1, dtype=np.float64) ** 0.5  # smaller dims a little more common
    return list(w / w.sum())


def _per_table(value, n: int, rng: np.random.Generator, kind):
    if isinstance(value, (tuple, list)):
        lo, hi = value
        return [round(kind(v), 4) for v in rng.uniform(lo, hi, n)]
    return [kind(value)] * n


def _dims(dim, n: int, rng: np.random.Generator) -> list[int]:
    if isinstance(dim, (tuple, list)):
        lo, hi = dim
        choices = [2**k for k in range(0, 16) if lo <= 2**k <= hi] or [int(lo)]
        return [int(d) for d in rng.choice(choices, n)]
    return [int(dim)] * n


def _concave_points(name: str, cdf) -> tuple[np.ndarray, np.ndarray]:
    """Validate an access CDF and return its concave majorant as two arrays."""
    try:
        pts = np.asarray(cdf, dtype=np.float64)
    except (TypeError, ValueError):
        raise WorkloadError(name, "access_cdf must be a list of [row_fraction, access_fraction] pairs") from None
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2:
        raise WorkloadError(name, "access_cdf must be a list of at least two [row_fraction, access_fraction] pairs")
    if not np.all(np.isfinite(pts)):
        raise WorkloadError(name, "access_cdf has non-finite values")
    xs, ys = pts[:, 0], pts[:, 1]
    if abs(xs[0]) > 1e-6 or abs(ys[0]) > 1e-6:
        raise WorkloadError(name, f"access_cdf must start at (0, 0), starts at ({xs[0]:g}, {ys[0]:g})")
    if abs(xs[-1] - 1) > 1e-6 or abs(ys[-1] - 1) > 1e-6:
        raise WorkloadError(name, f"access_cdf must end at (1, 1), ends at ({xs[-1]:g}, {ys[-1]:g})")
    dx, dy = np.diff(xs), np.diff(ys)
    for label, d in (("row_fraction", dx), ("access_fraction", dy)):
        if np.any(d < -_EPS):
            i = int(np.argmax(d < -_EPS)) + 1
            raise WorkloadError(name, f"access_cdf is not monotone: {label} decreases at point {i}")
    if np.any((dx <= _EPS) & (dy > 1e-6)):
        i = int(np.argmax((dx <= _EPS) & (dy > 1e-6))) + 1
        raise WorkloadError(name, f"access_cdf jumps at point {i} (access rises with no rows)")
    keep = np.r_[True, dx > _EPS]
    xs, ys = np.clip(xs[keep], 0, 1), np.clip(ys[keep], 0, 1)
    xs[0], ys[0], xs[-1], ys[-1] = 0.0, 0.0, 1.0, 1.0
    slopes = np.diff(ys) / np.diff(xs)
    # Rows sorted hottest first give non-increasing slopes; allow rounding noise only.
    rising = slopes[1:] > slopes[:-1] * (1 + 1e-3) + 1e-6
    if np.any(rising):
        i = int(np.argmax(rising)) + 1
        raise WorkloadError(name, f"access_cdf is not concave at point {i}: rows must be sorted hottest first")
    return _upper_hull(xs, ys)


def _upper_hull(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hx: list[float] = []
    hy: list[float] = []
    for x, y in zip(xs, ys):
        while len(hx) >= 2 and (hy[-1] - hy[-2]) * (x - hx[-2]) <= (y - hy[-2]) * (hx[-1] - hx[-2]):
            hx.pop()
            hy.pop()
        hx.append(float(x))
        hy.append(float(y))
    return np.asarray(hx), np.asarray(hy)


def write_workload_from_counts(path: str, tables: list[tuple[str, np.ndarray, int, float, float]]) -> None:
    """The ``fedrec data stats --workload`` writer: tables given as (name, per-row access counts,
    dim, pooling factor, coverage), as the data layer measures them."""
    Workload(tables=[table_from_counts(n, c, d, p, cov) for n, c, d, p, cov in tables]).to_json(path)
