"""Synthetic Criteo-like data: the scale workload for training, sharding and sampling.

Real Criteo releases are large and may not be redistributed, so tests and benchmarks at scale use
this generator. It keeps what matters to the systems built on it:

* the published per-feature cardinalities of the Criteo Kaggle and Terabyte releases (as used by
  the DLRM and TorchRec reference models; Terabyte's big tables hashed to 40M rows);
* Zipf-distributed ids with a configurable exponent (row access skew drives sharding);
* per-feature missing rates measured on the 1,000-row Criteo sample (its 13 dense and 26
  categorical columns);
* labels drawn from a hidden logistic model over the ids and dense values, so AUC is learnable;
* determinism: the same seed gives the same rows (and bytes), whatever the chunk size; rows are
  generated in fixed blocks, each from its own random stream (``generate_chunks``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from data_pipeline.atomic import atomic_path
from data_pipeline.errors import ConfigError
from data_pipeline.formats import SYNTH_PROFILES

CRITEO_KAGGLE_CARDINALITIES = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
    27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)  # fmt: skip
CRITEO_TERABYTE_CARDINALITIES = (
    40000000, 39060, 17295, 7424, 20265, 3, 7122, 1543, 63, 40000000, 3067956, 405282, 10,
    2209, 11938, 155, 4, 976, 14, 40000000, 40000000, 40000000, 590152, 12973, 108, 36,
)  # fmt: skip
PROFILES = {"criteo-kaggle": CRITEO_KAGGLE_CARDINALITIES, "criteo-terabyte": CRITEO_TERABYTE_CARDINALITIES}
assert tuple(PROFILES) == SYNTH_PROFILES, "data_pipeline.formats lists the profiles for the parser"

# Missing fractions measured on the shipped 1,000-row Criteo sample (I1..I13, then C1..C26).
DENSE_MISSING = (0.458, 0.0, 0.23, 0.213, 0.041, 0.248, 0.039, 0.0, 0.039, 0.458, 0.039, 0.775, 0.213)
SPARSE_MISSING = (
    0.0, 0.0, 0.033, 0.033, 0.0, 0.122, 0.0, 0.0, 0.0, 0.0, 0.0, 0.033, 0.0,
    0.0, 0.0, 0.033, 0.0, 0.0, 0.498, 0.498, 0.033, 0.815, 0.0, 0.033, 0.498, 0.498,
)  # fmt: skip
# Median of each dense feature on that sample: the scale of the generated log-normal values.
DENSE_MEDIANS = (1, 3, 6, 4, 2923, 44, 3, 8, 47, 1, 1, 1, 5)

DENSE_NAMES = tuple(f"I{i}" for i in range(1, 14))
SPARSE_NAMES = tuple(f"C{i}" for i in range(1, 27))
CRITEO_COLUMNS = ("label", *DENSE_NAMES, *SPARSE_NAMES)


@dataclass(frozen=True)
class SynthConfig:
    rows: int
    profile: str = "criteo-kaggle"
    zipf: float = 1.1
    seed: int = 0
    max_cardinality: int | None = None  # cap table sizes (keeps small runs small)
    positive_rate: float = 0.25  # Criteo Kaggle's is about 0.256

    def __post_init__(self) -> None:
        if self.rows <= 0:
            raise ConfigError("rows", f"must be positive, got {self.rows}")
        if self.profile not in PROFILES:
            raise ConfigError(
                "profile", f"unknown profile {self.profile!r}; expected one of {sorted(PROFILES)}"
            )
        if not (math.isfinite(self.zipf) and self.zipf > 0):  # NaN passes a plain `<= 0` check
            raise ConfigError("zipf", f"must be a positive finite number, got {self.zipf}")
        if self.max_cardinality is not None and self.max_cardinality < 2:
            raise ConfigError("max_cardinality", f"must be at least 2, got {self.max_cardinality}")
        if not 0 < self.positive_rate < 1:  # False for NaN too
            raise ConfigError("positive_rate", f"must be in (0, 1), got {self.positive_rate}")

    @property
    def cardinalities(self) -> tuple[int, ...]:
        cards = PROFILES[self.profile]
        if self.max_cardinality:
            cards = tuple(min(c, self.max_cardinality) for c in cards)
        return cards


def zipf_ranks(rng: np.random.Generator, n: int, cardinality: int, exponent: float) -> np.ndarray:
    """Ranks in [0, cardinality) with P(rank r) ~ (r+1)^-exponent.

    Inverse-CDF sampling of the continuous bounded power law, floored: exact enough for tables of
    millions of rows, and unlike a tabulated discrete CDF it needs no memory per row.
    """
    u = rng.random(n)
    if abs(exponent - 1.0) < 1e-9:
        x = np.exp(u * np.log(cardinality + 1.0))
    else:
        a = 1.0 - exponent
        x = ((np.power(cardinality + 1.0, a) - 1.0) * u + 1.0) ** (1.0 / a)
    return np.minimum(x.astype(np.int64) - 1, cardinality - 1).clip(0)


def zipf_access_cdf(cardinality: int, exponent: float, points: int = 64) -> list[list[float]]:
    """Analytic [row_fraction, access_fraction] points (hottest rows first) of the same law."""
    fractions = np.unique(np.r_[0.0, np.geomspace(1.0 / cardinality, 1.0, points - 1)])
    k = fractions * cardinality
    if abs(exponent - 1.0) < 1e-9:
        acc = np.log1p(k) / np.log1p(cardinality)
    else:
        a = 1.0 - exponent
        acc = (np.power(k + 1.0, a) - 1.0) / (np.power(cardinality + 1.0, a) - 1.0)
    return [[float(f), float(c)] for f, c in zip(fractions, np.clip(acc, 0, 1))]


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fixed pseudo-random function of an id, used as the hidden model's
    per-id weight so no weight table proportional to the cardinality is ever stored."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _id_weight(ids: np.ndarray, feature: int, seed: int) -> np.ndarray:
    h = _mix64(ids.astype(np.uint64) ^ np.uint64((seed * 1000003 + feature * 7919) & 0xFFFFFFFF))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53) - 0.5  # uniform in [-0.5, 0.5)


# Rows are generated in fixed blocks of this many, block k from its own random stream (seed, k);
# ``chunk_rows`` only regroups finished rows, so the output never depends on it.
BLOCK_ROWS = 1 << 16
# The label bias is calibrated once, on a sample of this many rows drawn from its own stream, so
# it depends on neither the chunk size nor the number of rows asked for.
CALIBRATION_ROWS = 1 << 13
# Independent random streams per seed: ``default_rng([seed, stream, ...])``.
_BLOCK_STREAM, _IMPORTANCE_STREAM, _CALIBRATION_STREAM = 0, 1, 2


@dataclass(frozen=True)
class _HiddenModel:
    """The logistic model the labels are drawn from: per-feature importances and a bias."""

    sparse_scale: np.ndarray
    dense_coef: np.ndarray
    bias: float


def generate_chunks(cfg: SynthConfig, chunk_rows: int = 500_000) -> Iterator[dict[str, np.ndarray]]:
    """Yield column dicts: ``label`` (int8), ``I1..I13`` (float64, NaN missing, raw counts) and
    ``C1..C26`` (int64 ids, -1 missing), ``chunk_rows`` rows each (the last may be shorter).

    The concatenated output depends only on ``cfg``, never on ``chunk_rows``.
    """
    if chunk_rows < 1:
        raise ConfigError("chunk_rows", f"must be positive, got {chunk_rows}")
    model = _hidden_model(cfg)
    pending: list[dict[str, np.ndarray]] = []
    held = 0
    for block in _blocks(cfg, model):
        pending.append(block)
        held += len(block["label"])
        while held >= chunk_rows:
            chunk, pending = _take_rows(pending, chunk_rows)
            held -= chunk_rows
            yield chunk
    if held:
        yield _take_rows(pending, held)[0]


def _hidden_model(cfg: SynthConfig) -> _HiddenModel:
    # Feature importance: a few strong features, most weak, as in real CTR data.
    imp_rng = np.random.default_rng([cfg.seed, _IMPORTANCE_STREAM])
    sparse_scale = imp_rng.exponential(0.8, len(SPARSE_NAMES))
    dense_coef = imp_rng.normal(0, 0.3, len(DENSE_NAMES))
    unbiased = _HiddenModel(sparse_scale, dense_coef, 0.0)
    rng = np.random.default_rng([cfg.seed, _CALIBRATION_STREAM])
    _, logit = _features(cfg, unbiased, rng, CALIBRATION_ROWS)
    return _HiddenModel(sparse_scale, dense_coef, _calibrate(logit, cfg.positive_rate))


def _blocks(cfg: SynthConfig, model: _HiddenModel) -> Iterator[dict[str, np.ndarray]]:
    for k, start in enumerate(range(0, cfg.rows, BLOCK_ROWS)):
        n = min(BLOCK_ROWS, cfg.rows - start)
        rng = np.random.default_rng([cfg.seed, _BLOCK_STREAM, k])
        cols, logit = _features(cfg, model, rng, n)
        p = 1.0 / (1.0 + np.exp(-(logit + model.bias)))
        label = (rng.random(n) < p).astype(np.int8)
        yield {"label": label, **cols}


def _features(
    cfg: SynthConfig, model: _HiddenModel, rng: np.random.Generator, n: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``n`` rows of dense and sparse features and their logit under the hidden model (no bias)."""
    cards = cfg.cardinalities
    cols: dict[str, np.ndarray] = {}
    logit = np.zeros(n)
    for j, name in enumerate(DENSE_NAMES):
        values = np.floor(rng.lognormal(np.log(DENSE_MEDIANS[j] + 1.0), 1.0, n) - 1.0).clip(0)
        logit += model.dense_coef[j] * (np.log1p(values) - np.log1p(DENSE_MEDIANS[j]))
        values[rng.random(n) < DENSE_MISSING[j]] = np.nan
        cols[name] = values
    for j, name in enumerate(SPARSE_NAMES):
        ranks = zipf_ranks(rng, n, cards[j], cfg.zipf)
        ids = _scatter(ranks, cards[j])
        logit += model.sparse_scale[j] * _id_weight(ids, j, cfg.seed)
        ids[rng.random(n) < SPARSE_MISSING[j]] = -1
        cols[name] = ids
    return cols, logit


def _take_rows(
    blocks: list[dict[str, np.ndarray]], rows: int
) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """The first ``rows`` rows of a list of blocks as one chunk, and the blocks left over."""
    taken, rest, need = [], [], rows
    for block in blocks:
        n = len(block["label"])
        if need >= n:
            taken.append(block)
            need -= n
        elif need > 0:
            taken.append({k: v[:need] for k, v in block.items()})
            rest.append({k: v[need:] for k, v in block.items()})
            need = 0
        else:
            rest.append(block)
    chunk = taken[0] if len(taken) == 1 else {k: np.concatenate([b[k] for b in taken]) for k in taken[0]}
    return chunk, rest


def _scatter(ranks: np.ndarray, cardinality: int) -> np.ndarray:
    """Map popularity ranks to ids by a fixed bijection, so hot ids are spread over the table as
    hashed ids are in real logs (a planner must not assume id order means popularity)."""
    step = 2654435761 % cardinality or 1
    while np.gcd(step, cardinality) != 1:
        step += 1
    return (ranks * step + cardinality // 3) % cardinality


def _calibrate(logit: np.ndarray, rate: float) -> float:
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(logit + mid)))) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


SYNTH_SUFFIXES = (".tsv", ".txt", ".parquet")


def write_synthetic(
    cfg: SynthConfig, out: str | os.PathLike, chunk_rows: int = 500_000, progress: bool = False
) -> Path:
    """Write Criteo-format TSV (``.tsv``/``.txt``: hex categories, empty = missing, the format the
    Criteo reader ingests) or encoded Parquet (``.parquet``: ids as ints, null = missing). The
    file appears whole or not at all (``data_pipeline.atomic``); another extension is an error."""
    out = Path(out)
    with atomic_path(out, SYNTH_SUFFIXES, "--out") as tmp:
        chunks = generate_chunks(cfg, chunk_rows)
        if progress:
            from tqdm import tqdm

            chunks = tqdm(chunks, total=-(-cfg.rows // chunk_rows), unit="chunk", desc=f"synth {out.name}")
        if out.suffix.lower() == ".parquet":
            writer = None
            try:
                for cols in chunks:
                    table = _arrow_chunk(cols)
                    writer = writer or pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
            finally:
                if writer:
                    writer.close()
        else:
            with open(tmp, "wb") as fh:
                for cols in chunks:
                    _tsv_chunk(cols).write_csv(
                        fh, separator="\t", include_header=False, quote_style="never", null_value=""
                    )
    return out


def _arrow_chunk(cols: dict[str, np.ndarray]) -> pa.Table:
    arrays = {"label": pa.array(cols["label"])}
    for name in DENSE_NAMES:
        v = cols[name]
        arrays[name] = pa.array(v, mask=np.isnan(v), type=pa.float32())
    for name in SPARSE_NAMES:
        v = cols[name]
        arrays[name] = pa.array(v, mask=v < 0, type=pa.int64())
    return pa.table(arrays)


def _tsv_chunk(cols: dict[str, np.ndarray]) -> pl.DataFrame:
    frame = {"label": cols["label"]}
    for name in DENSE_NAMES:
        v = cols[name]
        frame[name] = pl.Series(name, np.where(np.isnan(v), 0, v).astype(np.int64)).set(
            pl.Series(np.isnan(v)), None
        )
    for name in SPARSE_NAMES:
        v = cols[name]
        frame[name] = _hex8(v)
    return pl.DataFrame(frame)


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex8(ids: np.ndarray) -> pl.Series:
    """Ids as 8-digit lowercase hex like Criteo's hashed categories, vectorised (no per-value
    Python formatting); -1 becomes null (an empty field)."""
    v = ids.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    shifts = np.arange(28, -4, -4, dtype=np.uint64)
    digits = _HEX[((v[:, None] >> shifts) & np.uint64(0xF)).astype(np.intp)]
    strings = digits.view("S8").ravel().astype(str)
    return pl.Series(strings).set(pl.Series(ids < 0), None)


def synthetic_examples(cfg: SynthConfig, chunk_rows: int = 500_000):
    """Generated rows straight to ``Examples`` (no text round trip), transformed as the Criteo
    reader transforms real files: dense ``log(1+max(x,0))`` with missing = 0, ids < cardinality,
    missing category = empty bag."""
    from data_pipeline.features import criteo_examples

    tables = []
    for cols in generate_chunks(cfg, chunk_rows):
        for name in DENSE_NAMES:
            cols[name] = np.log1p(np.nan_to_num(cols[name], nan=0.0).clip(0)).astype(np.float32)
        tables.append(_arrow_chunk(cols))
    return criteo_examples(pa.concat_tables(tables), cfg.cardinalities)
