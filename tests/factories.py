"""Small synthetic inputs shared by the unit tests (fixtures wrap them in conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_pipeline.features import interaction_examples
from data_pipeline.partition import natural_partition
from data_pipeline.schema import build_interactions
from data_pipeline.splits import split as split_rows


def toy_interactions(n_users=5, per_user=10, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(u, int(rng.integers(0, 30)), float(rng.integers(1, 6)), int(t)) for u in range(n_users) for t in rng.permutation(per_user)]
    return build_interactions("toy", pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]))


def toy_federated_data(n_users=30, per_user=12, features=("item",)):
    """A natural partition (one client per user) with validation and test rows per user."""
    from fedrec.runtime.data import FederatedData

    inter = toy_interactions(n_users=n_users, per_user=per_user)
    parts = split_rows(inter, "temporal", 0.25, 0, validation_fraction=0.1)
    train, test, val = (interaction_examples(inter, features, 4.0, p) for p in (parts.train, parts.test, parts.validation))
    partitions = natural_partition(train.groups)
    users = np.array([train.groups[p[0]] for p in partitions])
    lookup = np.full(int(users.max()) + 1, -1)
    lookup[users] = np.arange(len(users))
    return FederatedData(train, test, partitions, users, lookup[test.groups], val, lookup[val.groups])


class NullPool:
    """Stands in for a ClientPool where a test drives a run's server side without actors."""

    def __init__(self) -> None:
        self.published: list = []

    def register(self, key, cfg, state, model_fn=None) -> None:
        pass

    def publish(self, key, change) -> None:
        self.published.append((key, change))


def toy_update(client, dense, rows=None, weight=1.0, table="emb"):
    """A ClientUpdate with dense tensor ``w`` = ``dense`` and rows ``{id: [values]}`` of ``table``."""
    import torch

    from fedrec.updates import ClientUpdate

    rows = rows or {}
    ids = torch.tensor(sorted(rows), dtype=torch.int64)
    vals = torch.tensor([rows[i] for i in sorted(rows)], dtype=torch.float32).reshape(len(rows), -1) if rows else torch.zeros(0, 1)
    return ClientUpdate(client, weight, {"w": torch.tensor(dense, dtype=torch.float32)}, {table: (ids, vals)})
