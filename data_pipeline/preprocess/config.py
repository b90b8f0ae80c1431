"""What a preprocessing run does, as one typed, validated config.

Validation happens once, here (pydantic, strict types, unknown keys refused); errors become the
CLI's one-line ``ConfigError`` naming the field. The config also says which features the stream
carries (``feature_spec``), so the trainer's model is built from the same source of truth as the
workers' transforms.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from data_pipeline.errors import ConfigError
from data_pipeline.preprocess.units import DEFAULT_RANGE_BYTES
from data_pipeline.synth import DENSE_NAMES, SPARSE_NAMES

if TYPE_CHECKING:  # batches.py imports torch: not needed by the workers, which only parse
    from data_pipeline.batches import FeatureSpec

PREPROCESS_FORMATS = ("criteo", "csv", "tsv", "movielens")
DENSE_BUCKETS = 32  # bucketize: floor(log2(1 + x)) for x < 2^31, plus one bucket for "missing"
BUCKET_NAMES = tuple(f"B{i}" for i in range(1, len(DENSE_NAMES) + 1))


class PreprocessConfig(BaseModel):
    """One preprocessing run: input, transforms, the worker pool and the batches it streams."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    input: str
    format: Literal["criteo", "csv", "tsv", "movielens"]
    # worker pool: a fixed size (min == max) or autoscaled between the bounds; 0 = in-process
    min_workers: int = Field(1, ge=0)
    max_workers: int = Field(1, ge=0)
    batch_size: int = Field(4096, ge=1)
    # transforms
    buckets: int = Field(100_000, ge=1)  # categorical hashing: raw id -> id mod buckets
    bucketize: bool = False  # criteo: also emit log2 buckets of each dense feature (B1..B13)
    negatives: int = Field(0, ge=0)  # interactions: sampled negatives per observed row
    label_threshold: float | None = Field(None, allow_inf_nan=False)  # interactions: label = rating >= it (else 1)
    seed: int = 0
    # reading
    columns: str = "user,item,rating,timestamp"
    header: bool | None = None
    encoding: str = "utf-8"
    on_bad_lines: Literal["error", "skip"] = "error"
    block_rows: int = Field(50_000, ge=1)  # rows a worker parses at once (its memory bound)
    range_bytes: int = Field(DEFAULT_RANGE_BYTES, ge=1)  # bytes of file per work unit
    ordered: bool = False  # keep file order in the stream (a fast worker then waits for a slow one)

    @model_validator(mode="after")
    def _check(self) -> PreprocessConfig:
        if self.max_workers < self.min_workers:
            raise ValueError(f"max_workers {self.max_workers} < min_workers {self.min_workers}")
        if (self.min_workers == 0) != (self.max_workers == 0):
            raise ValueError("0 workers (in-process) cannot be mixed with a worker range")
        if self.format == "criteo" and (self.negatives or self.label_threshold is not None):
            raise ValueError("negatives and label_threshold are for interaction formats, not criteo")
        return self

    @property
    def in_process(self) -> bool:
        return self.max_workers == 0

    def feature_spec(self) -> FeatureSpec:
        """The features each batch carries, in the order the trainer's model expects them."""
        from data_pipeline.batches import FeatureSpec, SparseFeature

        if self.format == "criteo":
            sparse = [SparseFeature(n, self.buckets) for n in SPARSE_NAMES]
            if self.bucketize:
                sparse += [SparseFeature(n, DENSE_BUCKETS + 1) for n in BUCKET_NAMES]
            return FeatureSpec(tuple(sparse), DENSE_NAMES)
        return FeatureSpec((SparseFeature("user", self.buckets), SparseFeature("item", self.buckets)), ("bias",))


def make_config(**fields) -> PreprocessConfig:
    """``PreprocessConfig(**fields)`` with validation errors as one ConfigError naming the field."""
    try:
        cfg = PreprocessConfig(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "preprocess"
        raise ConfigError(where, err["msg"].removeprefix("Value error, ")) from None
    if not Path(cfg.input).exists():
        raise ConfigError("--input", f"{cfg.input}: no such file or folder")
    return cfg
