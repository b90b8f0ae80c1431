"""Interaction-level baselines: random, user-stratified and most-recent interactions."""

from __future__ import annotations

import numpy as np

from data_pipeline.schema import InteractionData
from sampling.samplers.base import Sampler, zero_based


class RandomInteractions(Sampler):
    """Each interaction equally likely: the common ad-hoc sample."""

    name = "random"

    def _priority(self, data: InteractionData, rng: np.random.Generator) -> np.ndarray:
        return rng.random(data.num_rows)


class StratifiedInteractions(Sampler):
    """Random interactions stratified by user: every user keeps about ``rate`` of their history.

    Each user's interactions get a random order; priority is minus the position as a fraction of the
    user's count, so taking the top ``rate`` overall takes the first ``rate`` of every user.
    """

    name = "stratified"

    def _priority(self, data: InteractionData, rng: np.random.Generator) -> np.ndarray:
        user, _ = zero_based(data)
        order = np.lexsort((rng.random(data.num_rows), user))
        counts = np.bincount(user, minlength=data.num_users)
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        position = np.empty(data.num_rows)
        position[order] = np.arange(data.num_rows) - np.repeat(starts, counts)
        return -(position + rng.random(data.num_rows)) / counts[user]


class TemporalInteractions(Sampler):
    """The most recent interactions (what "take the last N days" does)."""

    name = "temporal"

    def _priority(self, data: InteractionData, rng: np.random.Generator) -> np.ndarray:
        return data.column("timestamp").astype(np.float64)
