"""Train/test splits over canonical interactions; each returns row positions (train, test).

Positions, not copies: the caller takes rows with ``InteractionData.take`` so vocabularies, and so
embedding ids, stay the same on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_pipeline.errors import ConfigError
from data_pipeline.schema import InteractionData

SPLIT_METHODS = ("temporal", "random", "leave-one-out", "official")


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        if np.intersect1d(self.train, self.test).size:
            raise ValueError("train and test positions overlap")


def temporal_user_split(data: InteractionData, test_fraction: float = 0.2) -> Split:
    """Per user, the latest ``test_fraction`` of their interactions go to test (ties broken by
    file order). Users with one interaction keep it in train, so every test user was seen."""
    _check_fraction(test_fraction)
    user = data.column("user")
    ts = data.column("timestamp")
    order = np.lexsort((np.arange(len(user)), ts, user))  # by user, then time, then file order
    sorted_users = user[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, len(user)])
    rank = np.arange(len(user)) - np.repeat(starts, counts)  # position within the user's history
    n_test = np.floor(counts * test_fraction).astype(np.int64)
    n_test = np.where((counts > 1) & (n_test == 0) & (test_fraction > 0), 1, n_test)
    is_test = rank >= np.repeat(counts - n_test, counts)
    return Split(np.sort(order[~is_test]), np.sort(order[is_test]))


def random_split(data: InteractionData, test_fraction: float = 0.2, seed: int = 0) -> Split:
    _check_fraction(test_fraction)
    perm = np.random.default_rng(seed).permutation(data.num_rows)
    n_test = int(round(data.num_rows * test_fraction))
    return Split(np.sort(perm[n_test:]), np.sort(perm[:n_test]))


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
    data: InteractionData, method: str = "temporal", test_fraction: float = 0.2, seed: int = 0
) -> Split:
    if method == "temporal":
        return temporal_user_split(data, test_fraction)
    if method == "random":
        return random_split(data, test_fraction, seed)
    if method == "leave-one-out":
        return leave_one_out_split(data)
    raise ConfigError(
        "split", f"unknown method {method!r}; expected one of {SPLIT_METHODS[:3]} (or use official_fold)"
    )


def official_fold(path, fold: str = "u1") -> tuple[InteractionData, Split]:
    """ML-100K's official folds, ``u1``..``u5`` (80/20) and ``ua``/``ub`` (10 ratings per user)."""
    from data_pipeline.readers.movielens import read_movielens_fold

    data, test_mask = read_movielens_fold(path, fold)
    positions = np.arange(data.num_rows)
    return data, Split(positions[~test_mask], positions[test_mask])


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction < 1.0:
        raise ConfigError("test_fraction", f"must be in [0, 1), got {fraction}")
