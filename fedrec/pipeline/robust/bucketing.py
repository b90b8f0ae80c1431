"""Bucketing (Karimireddy, He and Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets
via Bucketing", ICLR 2022): shuffle the clients at random into buckets of ``s``, average each
bucket (FedAvg's weighted mean, rows over the bucket's touchers), and hand the bucket means to a
robust aggregator. Averaging first shrinks the spread between honest inputs (non-IID clients look
less like outliers) while at most ``f`` buckets hold a Byzantine client.
"""

from __future__ import annotations

import numpy as np

from fedrec.pipeline.base import Aggregator, ServerContext
from fedrec.updates import AggregatedUpdate, ClientUpdate


def bucket_means(updates: list[ClientUpdate], size: int, rng: np.random.Generator) -> list[ClientUpdate]:
    order = rng.permutation(len(updates))
    out = []
    for b, start in enumerate(range(0, len(updates), size)):
        members = [updates[i] for i in order[start:start + size]]
        total = AggregatedUpdate.from_clients(members)
        mean = total.mean()
        out.append(ClientUpdate(-1 - b, total.weight, mean.dense, mean.sparse))
    return out


class Bucketing(Aggregator):
    name = "bucketing"

    def __init__(self, inner: Aggregator, bucket_size: int) -> None:
        self.inner = inner
        self.bucket_size = bucket_size

    def aggregate(self, updates: list[ClientUpdate], ctx: ServerContext) -> AggregatedUpdate:
        rng = np.random.default_rng([ctx.seed, ctx.round, 0xB0C])
        inner = self.inner.aggregate(bucket_means(updates, self.bucket_size, rng), ctx)
        inner.clients = len(updates)
        return inner

    def state_dict(self) -> dict:
        return {"inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state.get("inner", {}))
