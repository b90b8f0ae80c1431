"""The one sampler interface: ``fit(interactions)`` learns what to keep, ``sample(rate)`` keeps it.

Every sampler reduces to a *priority*: one number per interaction (interaction-level samplers) or
per user (user-level samplers); higher is kept first. The base class turns priorities into a sample
of exactly ``round(rate * rows)`` interactions (user-level: whole users, as close to that as whole
users allow), so the rate contract and determinism live in one place. Ties are broken by a random
key drawn from ``seed``; the same seed gives the same sample.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from data_pipeline.schema import InteractionData
from sampling._validate import check_fitted, check_interactions, target_rows


class Sampler:
    """Base class. Subclasses set ``name`` and ``level`` and implement ``_priority``."""

    name: ClassVar[str] = ""
    level: ClassVar[str] = "interaction"  # "interaction" or "user"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, interactions: InteractionData) -> Sampler:
        data = check_interactions(interactions)
        rng = np.random.default_rng(self.seed)
        priority = np.asarray(self._priority(data, rng), dtype=np.float64)
        size = data.num_rows if self.level == "interaction" else data.num_users
        if priority.shape != (size,):
            raise AssertionError(f"{self.name}: priority shape {priority.shape}, expected ({size},)")
        # Highest priority first; the random key decides among equals.
        self.order_ = np.lexsort((rng.random(size), -priority))
        self.data_ = data
        if self.level == "user":
            self.user_rows_ = _rows_by_user(data)
            self.order_ = self.order_[np.diff(self.user_rows_[0])[self.order_] > 0]  # users with no rows add nothing
        return self

    def sample_indices(self, rate: float) -> np.ndarray:
        """Sorted row positions of the kept interactions."""
        check_fitted(self, "order_")
        target = target_rows(rate, self.data_.num_rows)
        if self.level == "interaction":
            return np.sort(self.order_[:target])
        starts, rows = self.user_rows_
        sizes = np.diff(starts)[self.order_]
        cum = np.cumsum(sizes)
        first = int(np.searchsorted(cum, target))  # the first `first + 1` users reach the target
        # Stop one user short when that lands nearer the target (but never at zero users).
        k = first if first > 0 and target - cum[first - 1] < cum[first] - target else first + 1
        users = self.order_[:k]
        return np.sort(np.concatenate([rows[starts[u] : starts[u + 1]] for u in users]))

    def sample(self, rate: float) -> InteractionData:
        """The kept interactions (vocabularies unchanged, so ids match the input)."""
        indices = self.sample_indices(rate)
        return self.data_.take(indices)

    def _priority(self, data: InteractionData, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({params})"


def zero_based(data: InteractionData) -> tuple[np.ndarray, np.ndarray]:
    """User and item ids as 0-based positions (encoded ids start at 1; 0 is the OOV bucket)."""
    return data.column("user") - 1, data.column("item") - 1


def _rows_by_user(data: InteractionData) -> tuple[np.ndarray, np.ndarray]:
    """CSR-style grouping: rows[starts[u]:starts[u+1]] are user u's row positions (0-based u)."""
    user, _ = zero_based(data)
    rows = np.argsort(user, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(user, minlength=data.num_users))]
    return starts, rows


def degrees(data: InteractionData) -> tuple[np.ndarray, np.ndarray]:
    user, item = zero_based(data)
    return np.bincount(user, minlength=data.num_users), np.bincount(item, minlength=data.num_items)
