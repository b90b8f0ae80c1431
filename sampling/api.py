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

from data_pipeline.atomic import atomic_path
from data_pipeline.errors import ConfigError
from data_pipeline.readers import INTERACTION_FORMATS, load_interactions
from data_pipeline.schema import InteractionData
from sampling import harness
from sampling._validate import check_choice, check_interactions, check_rate
from sampling.names import DISTILL, METHODS
from sampling.results import EvaluationResult, SampleResult
from sampling.samplers import SAMPLER_NAMES, make_sampler

log = logging.getLogger(__name__)
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
    expected to best preserve model rankings at that rate. ``distill-cf`` instead synthesizes a
    summary of ``rate`` x the users as many fake users with fractional weights (``sampling.distill``)."""
    start = time.perf_counter()
    rate = check_rate(rate)
    requested = check_choice(method, METHODS, "method")
    data = _data(data, format, columns)
    predicted = None
    if requested == DISTILL:
        from sampling.distill import DistillCF

        method, kept = DISTILL, DistillCF(budget=rate, seed=seed).fit(data).to_interactions()
    else:
        genie = _genie()
        if requested == "auto":
            if genie is None:
                raise ConfigError("method", "auto needs the Data-Genie model file; choose a sampler by name")
            method, predicted = genie.choose(_features(genie, data), rate)
        else:
            method = requested
            predicted = genie.predict(_features(genie, data), method, rate) if genie is not None else None
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
    if method == DISTILL:
        raise ConfigError("min_tau", "distill-cf synthesizes a summary; Data-Genie predicts tau only for samplers")
    data = _data(data, format, columns)
    genie = _genie()
    if genie is None:
        raise ConfigError("min_tau", "needs the Data-Genie model file (sampling/genie_model.json)")
    found = genie.min_rate(_features(genie, data), target, None if method == "auto" else [method])
    if found is None:
        raise ConfigError("min_tau", f"no rate up to 100% reaches a predicted tau of {target} with method {method}")
    return RatePlan(found[0], found[1], found[2], target)


def write_sample(data: InteractionData, path: str | os.PathLike, option: str = "--out") -> Path:
    """Write kept interactions with their original ids, whole or not at all: Parquet
    (``.parquet``) or a RecBole atomic ``.inter`` file; another extension is refused."""
    frame = data.raw_interactions()[["user", "item", "rating", "timestamp"]]
    for col in ("user", "item"):
        frame[col] = pd.array(frame[col].tolist())  # decoded ids are objects; let pandas find their type
    with atomic_path(path, OUTPUT_SUFFIXES, option) as tmp:
        if tmp.name.endswith(".parquet"):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, sep="\t", index=False, header=list(RECBOLE_HEADER))
    return Path(path)


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
    split: str = "auto",
    max_eval_users: int = 5000,
    model_params: dict[str, dict] | None = None,
) -> EvaluationResult:
    """Kendall's tau of model rankings on samples vs the full data (see ``sampling.harness``)."""
    return harness.evaluate(
        _data(data, format, columns), methods=methods, rates=rates, models=models, seeds=seeds,
        test_fraction=test_fraction, cache_dir=cache_dir, progress=progress, split=split,
        max_eval_users=max_eval_users, model_params=model_params,
    )  # fmt: skip


def _distinct(data: InteractionData, column: str) -> int:
    return int(np.unique(data.column(column)).size)


def _genie():
    """The shipped Data-Genie, or None (with a warning) when its model file is missing."""
    from sampling.genie import DataGenie

    genie = DataGenie.load_default()
    if genie is None:
        log.warning("Data-Genie model file missing: no predicted tau")
    return genie


def _features(genie, data: InteractionData) -> dict | None:
    """This dataset's meta-features, computed only when the shipped estimator reads them (the
    dataset-blind ``mean`` does not)."""
    from sampling.genie import meta_features

    return meta_features(data) if genie.uses_features else None
