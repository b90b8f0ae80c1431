"""Oort (Lai et al., OSDI 2021): pick the clients of highest utility, statistical x system.

utility(i) = statistical utility (``base.statistical_utility`` of its last report, over the largest
any tried client has, as Oort's implementation normalises it) + a staleness bonus
sqrt(w log(round) / last round picked), times (T / t_i)^alpha when its round time t_i is
longer than the preferred round time T. Exploitation samples, in proportion to utility, among the
tried clients within ``cutoff`` of the K-th highest utility (Oort's cut-off). A share ``exploration`` of each round goes to clients never
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
        tried = self.utility[~np.isnan(self.utility)]
        top = float(tried.max()) if len(tried) and tried.max() > 0 else 1.0
        u = self.utility[clients] / top + np.sqrt(c.staleness_weight * np.log(max(rnd, 1)) / np.maximum(self.last_round[clients], 1))
        t = self.seconds[clients]
        penalty = np.where(t > self.preferred, (self.preferred / t) ** c.straggler_penalty, 1.0)
        return u * penalty

    def exploit(self, rnd: int, rng: np.random.Generator, tried: np.ndarray, n: int) -> np.ndarray:
        """Oort's exploitation: the tried clients whose utility is at least ``cutoff`` x the n-th
        highest, sampled with probability proportional to utility (not simply the top n, so that
        near-equal clients share the rounds)."""
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        scores = self.scores(rnd, tried)
        kth = np.sort(scores)[::-1][n - 1]
        pool = np.flatnonzero(scores >= self.cfg.cutoff * kth)
        p = np.maximum(scores[pool], 1e-12)
        return tried[rng.choice(pool, size=n, replace=False, p=p / p.sum())]

    def select(self, rnd: int, rng: np.random.Generator, available: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        available = np.asarray(available, dtype=np.int64)
        tried = available[~np.isnan(self.utility[available])]
        fresh = available[np.isnan(self.utility[available])]
        n_explore = min(len(fresh), max(int(round(self.cfg.exploration * k)), k - len(tried)))
        n_exploit = min(k - n_explore, len(tried))
        chosen = np.concatenate([self.exploit(rnd, rng, tried, n_exploit), pick(rng, fresh, n_explore)])
        return np.sort(chosen), np.zeros(len(chosen), dtype=np.int64)

    def observe(self, fb: Feedback) -> None:
        self.utility[fb.clients] = statistical_utility(self.view.samples[fb.clients], fb.losses)
        self.last_round[fb.clients] = fb.rnd
        self.seconds[fb.clients] = fb.seconds

    def state_dict(self) -> dict:
        return {"utility": self.utility.copy(), "last_round": self.last_round.copy(), "seconds": self.seconds.copy()}

    def load_state_dict(self, blob: dict) -> None:
        self.utility, self.last_round, self.seconds = (np.array(blob[k]) for k in ("utility", "last_round", "seconds"))
