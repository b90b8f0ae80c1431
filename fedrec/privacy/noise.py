"""Central Gaussian noise on the round's sum (DP-FedAvg's server half) and its accounting.

The sum of clipped updates gets N(0, (z C)^2) on every coordinate it could have touched: every
dense parameter and every row of every embedding table. Noise on the touched rows only would
leave untouched rows exact (zero) and so publish which rows the round's users touched, a
user-level leak the guarantee does not cover; noise on every row costs a whole-table update
(every row moves, and is sent back to the clients) each round.

The average divides by the expected number of users per round (McMahan et al.'s fixed
denominator), the same for every coordinate: dividing a row by the number of users who touched it
would again reveal that number. Rows trained by few users are thus updated by a small share of
their delta each round; that, and the noise on rows nobody touched, is the price of user-level DP
on sparse embeddings.

Each round steps the accountant (Opacus) at sampling rate ``clients_per_round / num_clients``.
"""

from __future__ import annotations

import numpy as np
import torch

from fedrec.pipeline.base import ModelShapes, ServerContext, ServerStep
from fedrec.privacy.accountant import make_accountant
from fedrec.updates import AggregatedUpdate, SparseRows


class CentralGaussianNoise(ServerStep):
    name = "central_noise"

    def __init__(self, model: ModelShapes, noise_multiplier: float, clip, denominator: float, sample_rate: float,
                 delta: float, accountant: str) -> None:
        self.model = model
        self.noise_multiplier = noise_multiplier
        self.clip = clip  # FixedClip or AdaptiveClipping: the round's clipping norm
        self.denominator = float(denominator)
        self.sample_rate = sample_rate
        self.delta = delta
        self.accountant_kind = accountant
        self.accountant = make_accountant(accountant)

    def on_aggregate(self, aggregate: AggregatedUpdate, ctx: ServerContext) -> AggregatedUpdate:
        if aggregate.clients == 0:
            return aggregate
        std = self.clip.update_noise_multiplier(self.noise_multiplier) * self.clip.round_clip_norm
        g = torch.Generator().manual_seed(int(np.random.default_rng([ctx.seed, ctx.round, 0xD9]).integers(2**62)))

        def noised(t: torch.Tensor) -> torch.Tensor:
            return t + torch.randn(t.shape, generator=g, dtype=t.dtype) * std if std > 0 else t

        dense = {n: noised(d) for n, d in aggregate.dense.items()}
        sparse = {}
        for name in self.model.tables:
            rows, dim = self.model.shapes[name]
            full = torch.zeros(rows, dim)
            if name in aggregate.sparse:
                r = aggregate.sparse[name]
                full = full.to(r.delta_sum.dtype)
                full[r.ids] = r.delta_sum
            sparse[name] = SparseRows(torch.arange(rows), noised(full), torch.full((rows,), self.denominator, dtype=full.dtype))
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        return AggregatedUpdate(self.denominator, aggregate.clients, dense, sparse)

    def epsilon(self) -> float:
        if not len(self.accountant):
            return 0.0
        if self.noise_multiplier == 0:
            return float("inf")
        return float(self.accountant.get_epsilon(delta=self.delta))

    def state_dict(self) -> dict:
        return {"history": list(self.accountant.history)}

    def load_state_dict(self, state: dict) -> None:
        self.accountant = make_accountant(self.accountant_kind)
        self.accountant.history = list(state.get("history", []))

    def report(self) -> dict:
        rounds = sum(steps for _, _, steps in self.accountant.history)
        return {"epsilon": self.epsilon(), "delta": self.delta, "privacy": {
            "noise_multiplier": self.noise_multiplier, "clip_norm": self.clip.round_clip_norm,
            "update_noise_multiplier": self.clip.update_noise_multiplier(self.noise_multiplier),
            "sample_rate": self.sample_rate, "rounds": rounds, "accountant": self.accountant_kind,
            "denominator": self.denominator}}
