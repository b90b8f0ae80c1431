"""The preprocessing a worker does for one work unit: parse its lines, transform, emit Arrow.

One function, ``process_unit``, is what both paths run: each Ray Data worker calls it on the
units it is given, and the in-process path calls it on every unit in turn, so the two streams
hold the same rows by construction (and a test checks it). Parsing reuses the readers' code: the
polars fast path of the Criteo reader, the careful per-line path that names a bad line, the
delimited-text field rules of the interaction readers.

Transforms:

* Criteo: dense ``log(1 + max(x, 0))`` (missing = 0), categorical ids modulo ``buckets``, and with
  ``bucketize`` each dense value's ``floor(log2(1 + x))`` as a categorical feature ``B1..B13``
  (bucket 32 = missing), the usual way to give a DLRM dense counts as embeddings.
* Interactions: user and item ids hashed to ``buckets`` (an id that is an integer is taken modulo
  the bucket count, any other string through polars' hash, stable for the pinned polars), the
  label ``rating >= label_threshold`` (or 1: implicit feedback), and ``negatives`` sampled
  negatives per row (same user, an item drawn uniformly from the buckets, label 0; as in most
  implicit-feedback pipelines a sample may hit an item the user did see). The random stream of
  each block is seeded by (seed, unit, block), so the output does not depend on which worker ran
  the unit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from data_pipeline.errors import BadLine, DataFormatError, DatasetNotFoundError, FedrecError, ReadReport
from data_pipeline.preprocess.config import BUCKET_NAMES, DENSE_BUCKETS, PreprocessConfig
from data_pipeline.preprocess.units import ByteRange, aligned
from data_pipeline.readers._text import (
    LINE,
    FieldSpec,
    block_line,
    block_lines,
    cast_fields,
    check_control,
    check_text_file,
    detect_header,
    iter_text_blocks,
    resolve_bad_lines,
    split_lines,
)
from data_pipeline.readers.criteo import parse_block, transform_block
from data_pipeline.readers.interactions import field_specs, parse_columns
from data_pipeline.synth import DENSE_NAMES

INTERACTION_COLUMNS = ("user", "item", "label")


@dataclass(frozen=True)
class InputPlan:
    """What the driver settles once, before any worker starts: the file to read, its separator
    and fields, and whether line 1 is a header (detected once, reported once)."""

    path: str
    sep: str = "\t"
    sep_name: str = "tab"
    fields: tuple[FieldSpec, ...] = ()
    header: str | None = None  # the header line that is skipped, when there is one
    skip_first_line: bool = False


def plan_input(cfg: PreprocessConfig) -> InputPlan:
    """Resolve the input (a MovieLens folder to its ratings file) and its header, and check the
    head of the file for binary data, so a wrong file fails before workers start."""
    if cfg.format == "criteo":
        return InputPlan(str(check_text_file(cfg.input, cfg.encoding)))
    path, sep, columns, header = Path(cfg.input), None, cfg.columns, cfg.header
    if cfg.format == "movielens":
        path, sep, header = _movielens_ratings(path)
        columns = "user,item,rating,timestamp"
    names = parse_columns(columns)
    p = check_text_file(path, cfg.encoding)
    sep = sep or ("\t" if cfg.format == "tsv" else ",")
    fields = tuple(field_specs(names))
    if cfg.label_threshold is not None and "rating" not in names:
        raise DataFormatError(p, "label_threshold needs a rating column", expected="'rating' among --columns")
    detected = None
    if header is None:
        numeric = [i for i, n in enumerate(names) if n in ("rating", "timestamp")]
        detected = detect_header(p, sep, numeric, names, cfg.encoding)
        header = detected is not None
    sep_name = {"\t": "tab", ",": "comma"}.get(sep, repr(sep))
    return InputPlan(str(p), sep, sep_name, fields, detected, bool(header))


def _movielens_ratings(folder: Path) -> tuple[Path, str, bool]:
    folder = folder.parent if folder.is_file() else folder
    for name, sep, header in (("u.data", "\t", False), ("ratings.dat", "::", False), ("ratings.csv", ",", True)):
        if (folder / name).exists():
            return folder / name, sep, header
    raise DatasetNotFoundError(f"{folder}: not a MovieLens folder (expected u.data, ratings.dat or ratings.csv)")


@dataclass
class UnitReport:
    """What one unit's worker saw besides its rows: malformed lines skipped (line numbers counted
    from the unit's first line, which starts at byte ``first_offset``)."""

    first_offset: int
    skipped: int = 0
    examples: list[BadLine] = field(default_factory=list)


class UnitError(Exception):
    """A worker's FedrecError on its way to the driver, as one JSON string: Ray rebuilds an
    exception raised in a worker from its arguments, which a single string survives whatever the
    error's own constructor looks like. A DataFormatError keeps its parts (its line numbers count
    from the unit's first line, at byte ``first_offset``); any other error keeps its message."""

    def __init__(self, payload: str) -> None:
        super().__init__(payload)
        self.payload = payload

    @classmethod
    def wrap(cls, first_offset: int, error: FedrecError) -> UnitError:
        if isinstance(error, DataFormatError):
            parts = {k: getattr(error, k) for k in ("path", "message", "line", "field", "expected")}
            found = error.found if isinstance(error.found, str | int | float | type(None)) else str(error.found)
            return cls(json.dumps({"offset": first_offset, **parts, "found": found}))
        return cls(json.dumps({"offset": first_offset, "error": str(error)}))

    def unwrap(self) -> tuple[int, FedrecError]:
        """(first_offset, the error as raised in the worker)."""
        data = json.loads(self.payload)
        offset = data.pop("offset")
        if "error" in data:
            return offset, FedrecError(data["error"])
        path, message = data.pop("path"), data.pop("message")
        return offset, DataFormatError(path, message, **data)


def process_unit(cfg: PreprocessConfig, plan: InputPlan, unit: ByteRange) -> Iterator[pa.Table | UnitReport]:
    """Parsed and transformed Arrow tables of one unit, one per block of ``cfg.block_rows`` lines,
    then one ``UnitReport``. A bad line (under ``on_bad_lines='error'``) raises ``UnitError``."""
    with open(plan.path, "rb") as fh:
        start, end = aligned(fh, unit)
    report = ReadReport(plan.path)
    try:
        if start < end:
            blocks = iter_text_blocks(plan.path, cfg.block_rows, cfg.encoding, span=(start, end))
            for b, block in enumerate(blocks):
                if cfg.format == "criteo":
                    table = _criteo_block(cfg, plan, block, report)
                else:
                    header = plan.skip_first_line and start == 0 and b == 0
                    table = _interaction_block(cfg, plan, block, report, header, (cfg.seed, unit.index, b))
                if table.num_rows:
                    yield table
    except FedrecError as exc:
        raise UnitError.wrap(start, exc) from None
    yield UnitReport(start, report.skipped, report.examples)


def _criteo_block(cfg: PreprocessConfig, plan: InputPlan, block, report: ReadReport) -> pa.Table:
    raw = parse_block(plan.path, block, cfg.on_bad_lines, report)
    out = transform_block(raw, (cfg.buckets,) * 26)
    if cfg.bucketize:
        out = out.with_columns(bucketize_dense(raw))
    return out.to_arrow()


def bucketize_dense(raw: pl.DataFrame) -> list[pl.Series]:
    """``B_k = floor(log2(1 + max(I_k, 0)))`` capped at 31, and 32 for a missing value."""
    out = []
    for name, bucket in zip(DENSE_NAMES, BUCKET_NAMES):
        x = raw.get_column(name)
        level = (x.clip(lower_bound=0).cast(pl.Float64) + 1).log(2).floor().clip(0, DENSE_BUCKETS - 1)
        out.append(level.cast(pl.Int64).fill_null(DENSE_BUCKETS).alias(bucket))
    return out


def _interaction_block(
    cfg: PreprocessConfig, plan: InputPlan, block, report: ReadReport, skip_first: bool, seed: tuple[int, ...]
) -> pa.Table:
    lines = block_lines(plan.path, block)
    if skip_first:
        lines = lines.filter(pl.col(LINE) > block.first_line)
    frame = split_lines(lines, plan.sep, plan.fields)
    check_control(plan.path, frame, lambda number: block_line(block, number))
    result = cast_fields(frame, plan.fields, len(plan.fields), plan.sep_name)
    resolve_bad_lines(plan.path, result, cfg.on_bad_lines, report)
    typed = result.frame
    if cfg.label_threshold is None:
        label = pl.lit(1.0, dtype=pl.Float32)
    else:
        label = (pl.col("rating") >= cfg.label_threshold).cast(pl.Float32)
    out = typed.select(
        hash_ids(pl.col("user"), cfg.buckets).alias("user"),
        hash_ids(pl.col("item"), cfg.buckets).alias("item"),
        label.alias("label"),
    )
    if cfg.negatives:
        out = with_negatives(out, cfg.negatives, cfg.buckets, np.random.default_rng(seed))
    return out.to_arrow()


def hash_ids(col: pl.Expr, buckets: int) -> pl.Expr:
    """Raw id -> [0, buckets): integers modulo the bucket count, other strings hashed first."""
    as_int = col.str.to_integer(strict=False)
    hashed = (col.hash(seed=0) % buckets).cast(pl.Int64)
    return pl.when(as_int.is_not_null()).then(as_int % buckets).otherwise(hashed).cast(pl.Int64)


def with_negatives(rows: pl.DataFrame, k: int, buckets: int, rng: np.random.Generator) -> pl.DataFrame:
    """After each row, ``k`` negatives: the same user, a uniformly drawn item, label 0."""
    n = rows.height
    users = rows.get_column("user").to_numpy()
    out_user = np.repeat(users, k + 1)
    out_item = np.empty(n * (k + 1), dtype=np.int64)
    out_label = np.zeros(n * (k + 1), dtype=np.float32)
    out_item[:: k + 1] = rows.get_column("item").to_numpy()
    out_label[:: k + 1] = rows.get_column("label").to_numpy()
    sampled = rng.integers(0, buckets, size=(n, k), dtype=np.int64)
    for j in range(k):
        out_item[j + 1 :: k + 1] = sampled[:, j]
    return pl.DataFrame({"user": out_user, "item": out_item, "label": out_label})


def run_units(cfg: PreprocessConfig, plan: InputPlan, units) -> Iterator[pa.Table | UnitReport]:
    """The in-process path: every unit in turn, in this process."""
    for unit in units:
        yield from process_unit(cfg, plan, unit)


__all__ = ["INTERACTION_COLUMNS", "InputPlan", "UnitError", "UnitReport", "plan_input", "process_unit", "run_units"]

