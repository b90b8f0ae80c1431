"""Adaptive clipping (Andrew, Thakkar, McMahan and Ramaswamy, "Differentially Private Learning
with Adaptive Clipping", NeurIPS 2021).

The clipping norm follows a target quantile ``gamma`` of the update norms: each round the server
learns the noised share of clients whose update was not clipped, ``b = (sum_i [||x_i|| <= C] +
N(0, sigma_b^2)) / m``, and moves ``C <- C * exp(-eta (b - gamma))``. The count is a second
query on the same users, so the update noise is raised to keep the pair at the accounted
multiplier ``z``: ``z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)`` (their Theorem 1).

Here the clipping runs on the server, on the per-client path: without secure aggregation a
central-DP server sees the individual updates anyway, and this keeps the round's norm in one
place. Secure aggregation with adaptive clipping is refused (the bit would have to be summed
securely too).
"""

from __future__ import annotations

import math

import numpy as np

from data_pipeline.errors import ConfigError
from fedrec.pipeline.base import ServerContext, ServerStep
from fedrec.privacy.clipping import clip
from fedrec.updates import ClientUpdate


class AdaptiveClipping(ServerStep):
    name = "adaptive_clipping"
    needs_per_client = True

    def __init__(self, clip_norm: float, target_quantile: float, lr: float, count_noise: float) -> None:
        self.clip_norm = clip_norm
        self.round_clip_norm = clip_norm
        self.target_quantile = target_quantile
        self.lr = lr
        self.count_noise = count_noise
        self.history: list[dict] = []

    def update_noise_multiplier(self, z: float) -> float:
        if z == 0:
            return 0.0
        rest = z**-2 - (2 * self.count_noise) ** -2
        if rest <= 0:
            raise ConfigError("privacy.count_noise", f"{self.count_noise} leaves no budget for the update noise at "
                              f"noise_multiplier {z:.3f}; it needs count_noise > {1 / (2 * z):.3f}")
        return rest**-0.5

    def on_clients(self, updates: list[ClientUpdate], ctx: ServerContext) -> list[ClientUpdate]:
        self.round_clip_norm = self.clip_norm
        clipped, unclipped = [], 0
        for u in updates:
            c, norm = clip(u, self.clip_norm)
            clipped.append(c)
            unclipped += norm <= self.clip_norm
        rng = np.random.default_rng([ctx.seed, ctx.round, 0xADA])
        share = (unclipped + rng.normal(0.0, self.count_noise)) / max(len(updates), 1)
        self.clip_norm *= math.exp(-self.lr * (share - self.target_quantile))
        self.history.append({"round": ctx.round, "clip_norm": self.round_clip_norm, "noised_unclipped_share": share})
        return clipped

    def state_dict(self) -> dict:
        return {"clip_norm": self.clip_norm, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.clip_norm = state.get("clip_norm", self.clip_norm)
        self.history = list(state.get("history", []))
