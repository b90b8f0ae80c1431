"""Federated data from the synthetic Criteo-like generator: the scale workload (1k..1M clients).
Criteo has no users, so clients are a quantity-skewed partition of the rows; with ``user_feature``
each client is also a user, with a ``user`` sparse feature (its id + 1) on its rows, so the model
can keep a private user embedding per client."""

from __future__ import annotations

import numpy as np

from data_pipeline.batches import Examples, FeatureSpec, SparseFeature
from data_pipeline.partition import quantity_skew_partition
from data_pipeline.synth import SynthConfig, synthetic_examples
from fedrec.runtime.data import FederatedData


def synthetic_federated_data(
    num_clients: int, rows_per_client: int = 10, test_fraction: float = 0.1, zipf: float = 1.1,
    max_cardinality: int = 20_000, seed: int = 0, skew: float = 2.0, validation_fraction: float = 0.1,
    user_feature: bool = False,
) -> FederatedData:
    """Rows are split at random into train, validation and test (the same fractions of each); the
    held-out rows are given to random clients (whose users they then are)."""
    rows = int(num_clients * rows_per_client / (1 - test_fraction - validation_fraction))
    examples = synthetic_examples(SynthConfig(rows=rows, zipf=zipf, seed=seed, max_cardinality=max_cardinality))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(rows)
    n_test, n_val = int(rows * test_fraction), int(rows * validation_fraction)
    test = examples.take(np.sort(perm[:n_test]))
    validation = examples.take(np.sort(perm[n_test:n_test + n_val]))
    train = examples.take(np.sort(perm[n_test + n_val:]))
    partitions = quantity_skew_partition(len(train), num_clients, alpha=skew, seed=seed)
    test_client = rng.integers(0, num_clients, size=len(test))
    validation_client = rng.integers(0, num_clients, size=len(validation))
    if user_feature:
        client_of_row = np.empty(len(train), dtype=np.int64)
        for c, part in enumerate(partitions):
            client_of_row[part] = c
        train, test, validation = (_with_user(ex, owner, num_clients) for ex, owner in
                                   ((train, client_of_row), (test, test_client), (validation, validation_client)))
    return FederatedData(train, test, partitions, np.arange(num_clients) if user_feature else np.full(num_clients, -1),
                         test_client, validation, validation_client)


def _with_user(ex: Examples, client: np.ndarray, num_clients: int) -> Examples:
    """``ex`` with a ``user`` feature: the id (+1; 0 is the unknown user) of each row's client."""
    spec = FeatureSpec((SparseFeature("user", num_clients + 1), *ex.spec.sparse), ex.spec.dense)
    values = {"user": client + 1, **ex.values}
    offsets = {"user": np.arange(len(ex) + 1, dtype=np.int64), **ex.offsets}
    return Examples(spec, ex.dense, values, offsets, ex.labels, client + 1, ex.timestamps)
