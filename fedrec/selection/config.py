"""The ``selection:`` section: which clients take part in a round, and on which execution target
each trains (sync mode)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedrec.configbase import StrictModel


class OortConfig(StrictModel):
    """Oort (Lai et al., OSDI 2021): utility = statistical utility x system-speed penalty."""

    exploration: float = Field(0.2, ge=0, le=1)  # share of each round's picks from clients never tried
    preferred_seconds: float | None = Field(None, gt=0)  # T; None: the median round time of all clients
    straggler_penalty: float = Field(2.0, ge=0)  # alpha: utility x (T / t)^alpha when t > T
    staleness_weight: float = Field(0.1, ge=0)  # bonus sqrt(w * log(round) / last round picked)
    cutoff: float = Field(0.95, gt=0, le=1)  # exploit among clients with utility >= cutoff x the K-th highest


class AutoFLConfig(StrictModel):
    """AutoFL (Kim & Wu, MICRO 2021) as a contextual bandit: a value per (tier, execution target),
    learned from each participant's reward (progress per second, minus energy)."""

    epsilon: float = Field(0.1, ge=0, le=1)  # explore: a random target / client with this chance
    learning_rate: float = Field(0.3, gt=0, le=1)  # Q <- Q + lr * (reward - Q)
    time_weight: float = Field(1.0, ge=0)  # reward = utility - time_weight * t / t_ref - energy_weight * J / J_ref
    energy_weight: float = Field(1.0, ge=0)
    utility_weight: float = Field(0.5, ge=0)  # how much a client's own statistical utility adds to its score


class SelectionConfig(StrictModel):
    """``random`` (the baseline, and the default: today's strategy sampling on each tier's first
    target), ``oort`` or ``autofl``."""

    policy: Literal["random", "oort", "autofl"] = "random"
    oort: OortConfig = Field(default_factory=OortConfig)
    autofl: AutoFLConfig = Field(default_factory=AutoFLConfig)
