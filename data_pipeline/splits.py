"""Train/validation/test splits over canonical interactions; each returns row positions.

Hyper-parameters are chosen on the validation rows and the test rows are scored once: with a
``validation_fraction``, the temporal split holds out, per user, the latest ``test_fraction`` of
their history for test and the ``validation_fraction`` just before it for validation.

Positions, not copies: the caller takes rows with ``InteractionData.take`` so vocabularies, and so
embedding ids, stay the same on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data_pipeline.errors import ConfigError
from data_pipeline.schema import InteractionData

SPLIT_METHODS = ("temporal", "random", "user_random", "leave-one-out", "official")


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    test: np.ndarray
    validation: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        parts = (self.train, self.validation, self.test)
        if sum(len(p) for p in parts) != len(np.unique(np.concatenate(parts))):
            raise ValueError("train, validation and test positions overlap")


def _held_out(counts: np.ndarray, fraction: float, keep: np.ndarray) -> np.ndarray:
    """Rows held out per user: floor(count * fraction), at least one when the user still has more
    than one row left (``keep``) and the fraction is positive."""
    n = np.floor(counts * fraction).astype(np.int64)
    return np.where((keep > 1) & (n == 0) & (fraction > 0), 1, np.minimum(n, np.maximum(keep - 1, 0)))


def temporal_user_split(data: InteractionData, test_fraction: float = 0.2, validation_fraction: float = 0.0,
                        order_key: np.ndarray | None = None) -> Split:
    """Per user, the latest ``test_fraction`` of their interactions go to test and the
    ``validation_fraction`` before them to validation (ties broken by file order). Each user keeps
    at least one interaction in train, so every held-out user was seen. ``order_key`` replaces the
    timestamps as the order within a user (a random key: a per-user random split)."""
    _check_fraction(test_fraction)
    _check_fraction(validation_fraction, "validation_fraction")
    _check_fraction(test_fraction + validation_fraction, "test_fraction + validation_fraction")
    user = data.column("user")
    ts = data.column("timestamp") if order_key is None else order_key
    order = np.lexsort((np.arange(len(user)), ts, user))  # by user, then time, then file order
    sorted_users = user[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, len(user)])
    rank = np.arange(len(user)) - np.repeat(starts, counts)  # position within the user's history
    n_test = _held_out(counts, test_fraction, counts)
    n_val = _held_out(counts, validation_fraction, counts - n_test)
    test_from = np.repeat(counts - n_test, counts)
    val_from = np.repeat(counts - n_test - n_val, counts)
    is_test = rank >= test_from
    is_val = (rank >= val_from) & ~is_test
    train = ~is_test & ~is_val
    return Split(np.sort(order[train]), np.sort(order[is_test]), np.sort(order[is_val]))


def random_split(data: InteractionData, test_fraction: float = 0.2, seed: int = 0, validation_fraction: float = 0.0) -> Split:
    _check_fraction(test_fraction)
    _check_fraction(validation_fraction, "validation_fraction")
    _check_fraction(test_fraction + validation_fraction, "test_fraction + validation_fraction")
    perm = np.random.default_rng(seed).permutation(data.num_rows)
    n_test = int(round(data.num_rows * test_fraction))
    n_val = int(round(data.num_rows * validation_fraction))
    return Split(np.sort(perm[n_test + n_val:]), np.sort(perm[:n_test]), np.sort(perm[n_test:n_test + n_val]))


def user_random_split(data: InteractionData, test_fraction: float = 0.2, seed: int = 0,
                      validation_fraction: float = 0.0) -> Split:
    """Per user, a random ``test_fraction`` of their interactions to test and ``validation_fraction``
    to validation (for logs without times, e.g. Last.fm's listening counts); every user keeps at
    least one interaction in train."""
    key = np.random.default_rng([seed, 0x5E1]).random(data.num_rows)
    return temporal_user_split(data, test_fraction, validation_fraction, order_key=key)


def leave_one_out_split(data: InteractionData) -> Split:
    """Each user's latest interaction is the test item (users with one interaction stay in train)."""
    user = data.column("user")
    ts = data.column("timestamp")
    order = np.lexsort((np.arange(len(user)), ts, user))
    sorted_users = user[order]
    last = np.r_[sorted_users[1:] != sorted_users[:-1], True]
    first = np.r_[True, sorted_users[1:] != sorted_users[:-1]]
    is_test = last & ~first
    return Split(np.sort(order[~is_test]), np.sort(order[is_test]))


def split(
    data: InteractionData, method: str = "temporal", test_fraction: float = 0.2, seed: int = 0,
    validation_fraction: float = 0.0,
) -> Split:
    if method == "temporal":
        return temporal_user_split(data, test_fraction, validation_fraction)
    if method == "random":
        return random_split(data, test_fraction, seed, validation_fraction)
    if method == "user_random":
        return user_random_split(data, test_fraction, seed, validation_fraction)
    if method == "leave-one-out":
        if validation_fraction:
            raise ConfigError("validation_fraction", "leave-one-out holds out one test row per user; use temporal for a validation split")
        return leave_one_out_split(data)
    raise ConfigError(
        "split", f"unknown method {method!r}; expected one of {SPLIT_METHODS[:4]} (or use official_fold)"
    )


def official_fold(path, fold: str = "u1") -> tuple[InteractionData, Split]:
    """ML-100K's official folds, ``u1``..``u5`` (80/20) and ``ua``/``ub`` (10 ratings per user)."""
    from data_pipeline.readers.movielens import read_movielens_fold

    data, test_mask = read_movielens_fold(path, fold)
    positions = np.arange(data.num_rows)
    return data, Split(positions[~test_mask], positions[test_mask])


def _check_fraction(fraction: float, name: str = "test_fraction") -> None:
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(name, f"must be in [0, 1), got {fraction}")
