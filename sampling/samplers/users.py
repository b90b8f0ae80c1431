"""User-level samplers: keep whole users, chosen at random or most active first."""

from __future__ import annotations

import numpy as np

from data_pipeline.schema import InteractionData
from sampling.samplers.base import Sampler, degrees


class RandomUsers(Sampler):
    """Whole users, uniformly at random, until the kept interactions reach the rate."""

    name = "user"
    level = "user"

    def _priority(self, data: InteractionData, rng: np.random.Generator) -> np.ndarray:
        return rng.random(data.num_users)


class HeadUsers(Sampler):
    """The most active users first (the "dense subset" people often take)."""

    name = "head-user"
    level = "user"

    def _priority(self, data: InteractionData, rng: np.random.Generator) -> np.ndarray:
        return degrees(data)[0].astype(np.float64)
