"""A federated run's data: train/validation/test examples and the clients' partitions.

Read once on the driver (readers -> canonical tables -> per-user temporal split -> examples) and
shipped to the actors through the object store. ``validation`` picks hyper-parameters and
``test`` is reported; both are scored per client tier through ``*_client``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_pipeline.batches import Examples
from data_pipeline.datasets import resolve_data_path
from data_pipeline.errors import ConfigError
from data_pipeline.features import Catalogue, implicit_examples, interaction_examples
from data_pipeline.partition import dirichlet_partition, natural_partition, quantity_skew_partition
from data_pipeline.readers import load_interactions
from data_pipeline.splits import split as split_rows


@dataclass
class FederatedData:
    train: Examples
    test: Examples
    partitions: list[np.ndarray]  # train rows per client
    client_users: np.ndarray  # the user behind each client (natural partition), -1 otherwise
    test_client: np.ndarray  # client of each test row (-1: none)
    validation: Examples | None = None
    validation_client: np.ndarray | None = None  # client of each validation row (-1: none)
    catalogue: Catalogue | None = None  # every item as a candidate, for ranking metrics (one client per user)

    @property
    def num_clients(self) -> int:
        return len(self.partitions)

    def heldout(self, split: str) -> tuple[Examples, np.ndarray]:
        """(examples, client of each row) of ``validation`` or ``test``."""
        if split == "validation":
            if self.validation is None or len(self.validation) == 0:
                raise ConfigError("data.validation_fraction", "this run has no validation split")
            return self.validation, self.validation_client
        return self.test, self.test_client


def load_federated_data(cfg) -> FederatedData:
    """Read, split and partition the data a ``FederatedConfig`` names."""
    d = cfg.data
    inter = load_interactions(resolve_data_path(d.path), d.format, columns=d.columns)
    parts = split_rows(inter, d.split, d.test_fraction, cfg.seed, validation_fraction=d.validation_fraction)
    if d.negatives:
        train, validation, test = (implicit_examples(inter, d.features, rows, d.negatives, cfg.seed + i)
                                   for i, rows in enumerate((parts.train, parts.validation, parts.test)))
    else:
        train, validation, test = (interaction_examples(inter, d.features, d.label_threshold, rows)
                                   for rows in (parts.train, parts.validation, parts.test))
        _check_labels(train.labels, d.label_threshold)
    if d.partition == "natural":
        partitions = natural_partition(train.groups)
        users = np.array([train.groups[p[0]] for p in partitions])
        size = int(max(train.groups.max(), test.groups.max(initial=0), validation.groups.max(initial=0))) + 1
        lookup = np.full(size, -1)
        lookup[users] = np.arange(len(users))
        return FederatedData(train, test, partitions, users, lookup[test.groups], validation, lookup[validation.groups],
                             Catalogue.build(inter, d.features))
    partitions = (
        dirichlet_partition(train.labels.astype(int), d.num_clients, d.alpha, cfg.seed)
        if d.partition == "dirichlet"
        else quantity_skew_partition(len(train), d.num_clients, d.alpha, cfg.seed)
    )
    partitions = [p for p in partitions if len(p)]
    none = np.full(len(partitions), -1)
    return FederatedData(train, test, partitions, none, np.full(len(test), -1), validation, np.full(len(validation), -1))


def _check_labels(labels: np.ndarray, threshold: float) -> None:
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        kind = "no" if positives == 0 else "every"
        raise ConfigError("data.label_threshold", f"{kind} training row has rating >= {threshold}: a model needs both "
                          "positive and negative labels; pick a threshold inside the ratings' range")
