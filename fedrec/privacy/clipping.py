"""Per-client clipping for DP-FedAvg (McMahan et al., "Learning Differentially Private Recurrent
Language Models", ICLR 2018).

A user's whole contribution is one vector: its dense deltas and the deltas of every embedding row
it touched. ``clip`` scales that vector to L2 norm at most ``C`` and gives it weight 1: the sum of
the round's clipped updates then changes by at most ``C`` when one user is added or removed (the
user-level sensitivity the noise is calibrated to). Example-count weights would let one user's
share grow without bound, so DP-FedAvg averages users equally.

``ClipUpdate`` runs on the client (so it also works under secure aggregation, where the server
never sees an individual update). ``LocalGaussianNoise`` optionally adds noise on the client to
what it uploads (its dense deltas and its touched rows); the accountant does not count it, so it
only ever adds protection.
"""

from __future__ import annotations

import math

import torch

from fedrec.pipeline.base import ClientContext, ClientStep
from fedrec.updates import ClientUpdate


def update_norm(update: ClientUpdate) -> float:
    sq = sum(float((d.double() ** 2).sum()) for d in update.dense.values())
    sq += sum(float((rows.double() ** 2).sum()) for _, rows in update.sparse.values())
    return math.sqrt(sq)


def clip(update: ClientUpdate, clip_norm: float) -> tuple[ClientUpdate, float]:
    """The update scaled to norm <= ``clip_norm`` with weight 1, and its norm before clipping."""
    norm = update_norm(update)
    factor = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    scaled = update.scaled(factor)
    scaled.weight = 1.0
    return scaled, norm


class ClipUpdate(ClientStep):
    name = "clip"

    def __init__(self, clip_norm: float) -> None:
        self.clip_norm = clip_norm

    def apply(self, update: ClientUpdate, ctx: ClientContext) -> ClientUpdate:
        return clip(update, self.clip_norm)[0]


class FixedClip:
    """The clipping norm the server's noise is calibrated to, when it does not adapt."""

    def __init__(self, clip_norm: float) -> None:
        self.round_clip_norm = clip_norm

    def update_noise_multiplier(self, z: float) -> float:
        return z


class LocalGaussianNoise(ClientStep):
    name = "local_noise"

    def __init__(self, std: float) -> None:
        self.std = std

    def apply(self, update: ClientUpdate, ctx: ClientContext) -> ClientUpdate:
        g = torch.Generator().manual_seed(ctx.seed ^ 0x10CA1)

        def noisy(t: torch.Tensor) -> torch.Tensor:
            return t + torch.randn(t.shape, generator=g, dtype=t.dtype) * self.std

        return ClientUpdate(update.client, update.weight, {n: noisy(d) for n, d in update.dense.items()},
                            {n: (ids, noisy(r)) for n, (ids, r) in update.sparse.items()}, update.whole_tables)
