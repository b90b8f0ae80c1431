"""AutoFL (Kim & Wu, MICRO 2021) as a contextual bandit over (device tier, execution target).

The paper's agent learns, per round, which K devices take part and on which execution target each
trains, rewarded by progress towards the target accuracy and by energy. Here the context is a
client's tier, the action its target, and the value ``Q[tier, target]`` the running mean reward of
clients of that tier on that target; a round's reward for a participant is

    reward = utility_weight * u / u_ref - time_weight * t / t_ref - energy_weight * J / J_ref

with u its statistical utility (the proxy for its contribution to accuracy progress: the server
evaluates only every ``eval_every`` rounds), t its simulated time and J its energy that round, each
over a reference (median expected values at the start). Update: the first visit sets
``Q = mean reward``; later ones ``Q <- Q + lr * (mean reward - Q)`` (one step per action per round,
on the mean reward of its participants: a stateless, one-step Q-learning, i.e. gamma = 0).

Selection: each tier's best target (untried actions first: every pair is tried once), each client
scored ``Q[tier, best] + utility_weight * u / u_ref``, the top K taken, with a share ``epsilon`` of
the clients and of the targets chosen at random instead (exploration under runtime variance).
"""

from __future__ import annotations

import numpy as np

from fedrec.selection.base import ClientView, Feedback, pick, statistical_utility
from fedrec.selection.config import AutoFLConfig

UNTRIED = 1e6  # an action never taken outranks any learned value: each one is tried once


class AutoFLPolicy:
    def __init__(self, cfg: AutoFLConfig, view: ClientView) -> None:
        self.cfg, self.view = cfg, view
        tiers, width = len(view.target_count), view.seconds.shape[1]
        self.valid = np.arange(width)[None, :] < view.target_count[:, None]  # (tiers, targets)
        self.q = np.zeros((tiers, width))
        self.visits = np.zeros((tiers, width), dtype=np.int64)
        self.utility = np.full(view.num_clients, np.nan)
        self.t_ref = float(np.median(view.seconds[:, 0]))
        self.j_ref = float(np.median(view.joules[:, 0]))
        self.u_ref = float(np.median(np.sqrt(view.samples)))  # a client of median size at loss 1

    def values(self) -> np.ndarray:
        """Per (tier, target): its learned value, UNTRIED if never taken, -inf where the tier has no such target."""
        v = np.where(self.visits == 0, UNTRIED, self.q)
        return np.where(self.valid, v, -np.inf)

    def select(self, rnd: int, rng: np.random.Generator, available: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        available = np.asarray(available, dtype=np.int64)
        eps = self.cfg.epsilon
        values = self.values()
        best = np.argmax(values, axis=1)  # per tier
        known = self.utility[~np.isnan(self.utility)]
        u = np.where(np.isnan(self.utility[available]), known.mean() if len(known) else 0.0, self.utility[available])
        score = values[self.view.tiers[available], best[self.view.tiers[available]]] + self.cfg.utility_weight * u / self.u_ref
        score = score + rng.random(len(available)) * 1e-6  # break ties at random, not by client id
        n_explore = min(int(round(eps * k)), len(available))
        explore = pick(rng, available, n_explore)
        rest = available[~np.isin(available, explore)]
        top = rest[np.argsort(-score[~np.isin(available, explore)], kind="stable")[: k - len(explore)]]
        chosen = np.sort(np.concatenate([explore, top]))
        tier = self.view.tiers[chosen]
        targets = best[tier]
        wander = rng.random(len(chosen)) < eps
        counts = self.view.target_count[tier]
        targets = np.where(wander, (rng.random(len(chosen)) * counts).astype(np.int64), targets)
        return chosen, targets.astype(np.int64)

    def rewards(self, fb: Feedback) -> np.ndarray:
        c = self.cfg
        u = statistical_utility(self.view.samples[fb.clients], fb.losses)
        return (c.utility_weight * u / self.u_ref - c.time_weight * np.asarray(fb.seconds) / self.t_ref
                - c.energy_weight * np.asarray(fb.joules) / self.j_ref)

    def observe(self, fb: Feedback) -> None:
        if len(fb.clients) == 0:
            return
        self.utility[fb.clients] = statistical_utility(self.view.samples[fb.clients], fb.losses)
        r = self.rewards(fb)
        tier = self.view.tiers[fb.clients]
        for t, a in {(int(t), int(a)) for t, a in zip(tier, fb.targets)}:
            mean = float(r[(tier == t) & (fb.targets == a)].mean())
            self.q[t, a] = mean if self.visits[t, a] == 0 else self.q[t, a] + self.cfg.learning_rate * (mean - self.q[t, a])
            self.visits[t, a] += 1

    def state_dict(self) -> dict:
        return {"q": self.q.copy(), "visits": self.visits.copy(), "utility": self.utility.copy()}

    def load_state_dict(self, blob: dict) -> None:
        self.q, self.visits, self.utility = (np.array(blob[k]) for k in ("q", "visits", "utility"))
