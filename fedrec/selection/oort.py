"""Oort (Lai et al., OSDI 2021): pick the clients of highest utility, statistical x system.

utility(i) = statistical utility (``base.statistical_utility`` of its last report) + a staleness
bonus sqrt(w log(round) / last round picked), times (T / t_i)^alpha when its round time t_i is
longer than the preferred round time T. A share ``exploration`` of each round goes to clients never
tried, uniformly (Oort prefers faster ones among them; uniform keeps the baseline plain). Oort does
not choose execution targets: every client trains on its tier's first.
"""

from __future__ import annotations

import numpy as np

from fedrec.selection.base import ClientView, Feedback, pick, statistical_utility
from fedrec.selection.config import OortConfig


class OortPolicy:
    def __init__(self, cfg: OortConfig, view: ClientView) -> None:
        self.cfg, self.view = cfg, view
        n = view.num_clients
        self.utility = np.full(n, np.nan)  # nan: never tried
        self.last_round = np.zeros(n, dtype=np.int64)
        self.seconds = view.seconds[:, 0].copy()  # expected, then the last measured time
        self.preferred = cfg.preferred_seconds or float(np.median(self.seconds))

    def scores(self, rnd: int, clients: np.ndarray) -> np.ndarray:
        """The utility of already-tried ``clients`` in round ``rnd``."""
        c = self.cfg
        u = self.utility[clients] + np.sqrt(c.staleness_weight * np.log(max(rnd, 1)) / np.maximum(self.last_round[clients], 1))
        t = self.seconds[clients]
        penalty = np.where(t > self.preferred, (self.preferred / t) ** c.straggler_penalty, 1.0)
        return u * penalty

    def select(self, rnd: int, rng: np.random.Generator, available: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        available = np.asarray(available, dtype=np.int64)
        tried = available[~np.isnan(self.utility[available])]
        fresh = available[np.isnan(self.utility[available])]
        n_explore = min(len(fresh), max(int(round(self.cfg.exploration * k)), k - len(tried)))
        n_exploit = min(k - n_explore, len(tried))
        order = np.argsort(-self.scores(rnd, tried), kind="stable")
        chosen = np.concatenate([tried[order[:n_exploit]], pick(rng, fresh, n_explore)])
        return np.sort(chosen), np.zeros(len(chosen), dtype=np.int64)

    def observe(self, fb: Feedback) -> None:
        self.utility[fb.clients] = statistical_utility(self.view.samples[fb.clients], fb.losses)
        self.last_round[fb.clients] = fb.rnd
        self.seconds[fb.clients] = fb.seconds

    def state_dict(self) -> dict:
        return {"utility": self.utility.copy(), "last_round": self.last_round.copy(), "seconds": self.seconds.copy()}

    def load_state_dict(self, blob: dict) -> None:
        self.utility, self.last_round, self.seconds = (np.array(blob[k]) for k in ("utility", "last_round", "seconds"))
