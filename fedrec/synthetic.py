"""Federated data from the synthetic Criteo-like generator: the scale workload (1k..100k+
clients). Criteo has no users, so clients are a quantity-skewed partition of the rows."""

from __future__ import annotations

import numpy as np

from data_pipeline.partition import quantity_skew_partition
from data_pipeline.synth import SynthConfig, synthetic_examples
from fedrec.runtime.data import FederatedData


def synthetic_federated_data(
    num_clients: int, rows_per_client: int = 10, test_fraction: float = 0.1, zipf: float = 1.1,
    max_cardinality: int = 20_000, seed: int = 0, skew: float = 2.0, validation_fraction: float = 0.1,
) -> FederatedData:
    """Rows are split at random into train, validation and test (the same fractions of each)."""
    rows = int(num_clients * rows_per_client / (1 - test_fraction - validation_fraction))
    examples = synthetic_examples(SynthConfig(rows=rows, zipf=zipf, seed=seed, max_cardinality=max_cardinality))
    perm = np.random.default_rng(seed).permutation(rows)
    n_test, n_val = int(rows * test_fraction), int(rows * validation_fraction)
    test = examples.take(np.sort(perm[:n_test]))
    validation = examples.take(np.sort(perm[n_test:n_test + n_val]))
    train = examples.take(np.sort(perm[n_test + n_val:]))
    partitions = quantity_skew_partition(len(train), num_clients, alpha=skew, seed=seed)
    return FederatedData(train, test, partitions, np.full(num_clients, -1), np.full(len(test), -1),
                         validation, np.full(len(validation), -1))
