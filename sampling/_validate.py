"""Every check on user input lives here, so each error names the parameter and what was expected.

Samplers, the harness, Data-Genie and the CLI call these instead of testing values themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from data_pipeline.errors import ConfigError, DataFormatError
from data_pipeline.schema import INTERACTION_SCHEMA, InteractionData

REQUIRED_COLUMNS = tuple(INTERACTION_SCHEMA.names)


def check_rate(rate: float, name: str = "rate") -> float:
    """A fraction of rows to keep: a number in (0, 1]."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(name, f"expected a number in (0, 1], got {rate!r}") from None
    if not np.isfinite(value) or not 0.0 < value <= 1.0:
        raise ConfigError(name, f"expected a fraction in (0, 1], got {rate!r}")
    return value


def check_rates(rates: Iterable[float] | str, name: str = "rates") -> list[float]:
    """A list of rates, or a comma-separated string of them ("0.1,0.2")."""
    if isinstance(rates, str):
        rates = [r for r in rates.split(",") if r.strip()]
    values = [check_rate(r, name) for r in rates]
    if not values:
        raise ConfigError(name, "expected at least one rate")
    return values


def check_choices(values: Iterable[str] | str, known: Sequence[str], name: str) -> list[str]:
    """Names from ``known`` (a list, or a comma-separated string); unknown names are an error."""
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    values = list(values)
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ConfigError(name, f"unknown {unknown}; expected names from {list(known)}")
    if not values:
        raise ConfigError(name, f"expected at least one of {list(known)}")
    return values


def check_choice(value: str, known: Sequence[str], name: str) -> str:
    return check_choices([value], known, name)[0]


def check_seeds(seeds: Iterable[int] | int | str, name: str = "seeds") -> list[int]:
    """Seeds as a list, a comma-separated string, or a count (``3`` means 0, 1, 2)."""
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise ConfigError(name, f"expected a positive count, got {seeds}")
        return list(range(int(seeds)))
    if isinstance(seeds, str):
        seeds = [s for s in seeds.split(",") if s.strip()]
    try:
        values = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise ConfigError(name, f"expected integers, got {seeds!r}") from None
    if not values:
        raise ConfigError(name, "expected at least one seed")
    return values


def check_interactions(data: object, name: str = "interactions") -> InteractionData:
    """Canonical interactions with every required column and at least one row."""
    if not isinstance(data, InteractionData):
        raise ConfigError(name, f"expected InteractionData, got {type(data).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in data.interactions.column_names]
    if missing:
        raise DataFormatError(
            data.source or data.name, f"missing columns {missing}", expected=f"columns {list(REQUIRED_COLUMNS)}"
        )
    if data.num_rows == 0:
        raise DataFormatError(data.source or data.name, "no interactions", expected="at least one row", found="0 rows")
    return data


def target_rows(rate: float, rows: int) -> int:
    """Rows a sample at ``rate`` keeps; a rate that would keep nothing is an error, never an empty output."""
    rate = check_rate(rate)
    target = int(round(rate * rows))
    if target < 1:
        raise ConfigError(
            "rate",
            f"{rate} of {rows} rows keeps no interactions; the dataset is too small for this rate "
            f"(use a rate of at least {1.0 / rows:.3g})",
        )
    return target


def check_fitted(estimator: object, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        raise ConfigError(type(estimator).__name__, "call fit(...) before using it")
