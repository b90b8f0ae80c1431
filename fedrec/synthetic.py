"""Federated data from the synthetic Criteo-like generator: the scale workload (1k..100k+
clients). Criteo has no users, so clients are a quantity-skewed partition of the rows."""

from __future__ import annotations

import numpy as np

from data_pipeline.partition import quantity_skew_partition
from data_pipeline.synth import SynthConfig, synthetic_examples
from fedrec.server import FederatedData


def synthetic_federated_data(
    num_clients: int, rows_per_client: int = 10, test_fraction: float = 0.1, zipf: float = 1.1,
    max_cardinality: int = 20_000, seed: int = 0, skew: float = 2.0,
) -> FederatedData:
    rows = int(num_clients * rows_per_client / (1 - test_fraction))
    examples = synthetic_examples(SynthConfig(rows=rows, zipf=zipf, seed=seed, max_cardinality=max_cardinality))
    perm = np.random.default_rng(seed).permutation(rows)
    n_test = int(rows * test_fraction)
    train, test = examples.take(np.sort(perm[n_test:])), examples.take(np.sort(perm[:n_test]))
    partitions = quantity_skew_partition(len(train), num_clients, alpha=skew, seed=seed)
    return FederatedData(train, test, partitions, np.full(num_clients, -1), np.full(len(test), -1))
