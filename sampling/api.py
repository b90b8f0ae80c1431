"""The public entry points: ``sample`` (the offline tool) and ``evaluate`` (the harness), on data
in memory or on a file in any supported format."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_pipeline.errors import ConfigError
from data_pipeline.readers import INTERACTION_FORMATS, load_interactions
from data_pipeline.schema import InteractionData
from sampling import harness
from sampling._validate import check_choice, check_interactions, check_rate
from sampling.results import EvaluationResult, SampleResult
from sampling.samplers import SAMPLER_NAMES, make_sampler

log = logging.getLogger(__name__)
METHODS = ("auto", *SAMPLER_NAMES)
OUTPUT_SUFFIXES = (".parquet", ".inter")
RECBOLE_HEADER = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")


def load(path: str | os.PathLike, format: str, columns=None) -> InteractionData:
    """Read interactions; a bare dataset name (``ml-100k``) is also looked up under ``$FEDREC_DATA``."""
    from data_pipeline.datasets import resolve_data_path

    check_choice(format, INTERACTION_FORMATS, "format")
    return load_interactions(resolve_data_path(path), format, columns=columns)


def _data(data: InteractionData | str | os.PathLike, format: str | None, columns) -> InteractionData:
    if isinstance(data, InteractionData):
        return check_interactions(data)
    if format is None:
        raise ConfigError("format", f"reading {data} needs a format, one of {list(INTERACTION_FORMATS)}")
    return check_interactions(load(data, format, columns))


def sample(
    data: InteractionData | str | os.PathLike,
    rate: float,
    method: str = "auto",
    seed: int = 0,
    *,
    format: str | None = None,
    columns=None,
) -> SampleResult:
    """Keep ``rate`` of the interactions with ``method``; ``auto`` lets Data-Genie pick the sampler
    expected to best preserve model rankings at that rate."""
    start = time.perf_counter()
    rate = check_rate(rate)
    requested = check_choice(method, METHODS, "method")
    data = _data(data, format, columns)
    genie, features = _genie_for(data)
    if requested == "auto":
        if genie is None:
            raise ConfigError("method", "auto needs the Data-Genie model file; choose a sampler by name")
        method, predicted = genie.choose(features, rate)
    else:
        method = requested
        predicted = genie.predict(features, method, rate) if genie is not None else None
    kept = make_sampler(method, seed=seed).fit(data).sample(rate)
    return SampleResult(
        method=method,
        requested_method=requested,
        requested_rate=rate,
        rate=kept.num_rows / data.num_rows,
        seed=seed,
        rows_before=data.num_rows,
        rows_after=kept.num_rows,
        users_before=_distinct(data, "user"),
        users_after=_distinct(kept, "user"),
        items_before=_distinct(data, "item"),
        items_after=_distinct(kept, "item"),
        predicted_tau=None if predicted is None else float(predicted),
        seconds=time.perf_counter() - start,
        data=kept,
    )


@dataclass
class RatePlan:
    """Data-Genie's answer to "how little data keeps the model ranking (predicted tau >= t)?"."""

    rate: float
    method: str
    predicted_tau: float
    target_tau: float


def smallest_rate(
    data: InteractionData | str | os.PathLike, tau: float, method: str = "auto", *, format: str | None = None, columns=None
) -> RatePlan:
    """The smallest rate (1% steps) whose predicted tau reaches ``tau``, with the sampler that gets
    there (``method="auto"``: any sampler; else that one). Raises when no rate reaches it."""
    check_choice(method, METHODS, "method")
    try:
        target = float(tau)
    except (TypeError, ValueError):
        raise ConfigError("min_tau", f"expected a number in [-1, 1], got {tau!r}") from None
    if not -1.0 <= target <= 1.0:
        raise ConfigError("min_tau", f"expected a number in [-1, 1], got {tau!r}")
    genie, features = _genie_for(_data(data, format, columns))
    if genie is None:
        raise ConfigError("min_tau", "needs the Data-Genie model file (sampling/genie_model.json)")
    found = genie.min_rate(features, target, None if method == "auto" else [method])
    if found is None:
        raise ConfigError("min_tau", f"no rate up to 100% reaches a predicted tau of {target} with method {method}")
    return RatePlan(found[0], found[1], found[2], target)


def write_sample(data: InteractionData, path: str | os.PathLike) -> Path:
    """Write kept interactions with their original ids: Parquet (``.parquet``) or a RecBole atomic
    ``.inter`` file."""
    path = Path(path)
    if path.suffix not in OUTPUT_SUFFIXES:
        raise ConfigError("out", f"{path}: expected a file ending in one of {list(OUTPUT_SUFFIXES)}")
    frame = data.raw_interactions()[["user", "item", "rating", "timestamp"]]
    for col in ("user", "item"):
        frame[col] = pd.array(frame[col].tolist())  # decoded ids are objects; let pandas find their type
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, sep="\t", index=False, header=list(RECBOLE_HEADER))
    return path


def evaluate(
    data: InteractionData | str | os.PathLike,
    *,
    format: str | None = None,
    columns=None,
    methods=SAMPLER_NAMES,
    rates=harness.DEFAULT_RATES,
    models=harness.DEFAULT_MODELS,
    seeds=(0, 1, 2),
    test_fraction: float = 0.2,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Kendall's tau of model rankings on samples vs the full data (see ``sampling.harness``)."""
    return harness.evaluate(
        _data(data, format, columns), methods=methods, rates=rates, models=models, seeds=seeds,
        test_fraction=test_fraction, cache_dir=cache_dir, progress=progress,
    )  # fmt: skip


def _distinct(data: InteractionData, column: str) -> int:
    return int(np.unique(data.column(column)).size)


def _genie_for(data: InteractionData):
    """The shipped Data-Genie and this dataset's meta-features, or (None, None) when unavailable."""
    from sampling.genie import DataGenie, meta_features

    genie = DataGenie.load_default()
    if genie is None:
        log.warning("Data-Genie model file missing: no predicted tau")
        return None, None
    return genie, meta_features(data)
