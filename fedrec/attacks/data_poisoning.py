"""Attacks on what the attackers train on. The attackers' devices hold poisoned rows; the driver
builds them once, before the data is shipped to the actors, so training, upload sizes and the
simulated clock all see what an attacker's device would. Benign clients' rows are untouched.

- label flip: an attacker's labels are inverted (``y -> 1 - y``).
- item promotion (fake-user data, as in data-poisoning attacks on recommenders and the first step
  of PipAttack/FedRecAttack): each attacker adds ``fake_rows`` rows that rate the target item
  positive, copied from its own first row (its own user features), so local training pushes the
  target item's embedding towards "liked by users like me"; ``BoostRows`` then amplifies that row.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipeline.batches import concat_examples
from data_pipeline.errors import ConfigError
from fedrec.runtime.data import FederatedData


def flip_labels(data: FederatedData, attackers: np.ndarray) -> FederatedData:
    rows = np.concatenate([data.partitions[a] for a in attackers]) if len(attackers) else np.zeros(0, dtype=np.int64)
    labels = data.train.labels.copy()
    labels[rows] = 1.0 - labels[rows]
    return dataclasses.replace(data, train=dataclasses.replace(data.train, labels=labels))


def add_fake_positives(data: FederatedData, attackers: np.ndarray, feature: str, item: int, rows: int) -> FederatedData:
    train = data.train
    spec = {f.name: f for f in train.spec.sparse}
    if feature not in spec:
        raise ConfigError("attack.target_feature", f"no sparse feature {feature!r}; expected one of {sorted(spec)}")
    if not 0 <= item < spec[feature].cardinality:
        raise ConfigError("attack.target_item", f"item {item} outside the {feature} ids [0, {spec[feature].cardinality})")
    attackers = [int(a) for a in attackers if len(data.partitions[a])]
    if not attackers:
        return data
    template = np.repeat([data.partitions[a][0] for a in attackers], rows)
    fake = train.take(template)
    fake.values[feature] = np.full(len(template), item, dtype=fake.values[feature].dtype)
    fake.offsets[feature] = np.arange(len(template) + 1, dtype=np.int64)
    fake = dataclasses.replace(fake, labels=np.ones(len(template), dtype=train.labels.dtype))
    partitions = list(data.partitions)
    for j, a in enumerate(attackers):
        partitions[a] = np.concatenate([partitions[a], len(train) + j * rows + np.arange(rows)])
    return dataclasses.replace(data, train=concat_examples([train, fake]), partitions=partitions)


def poison_data(cfg, data: FederatedData) -> FederatedData:
    """``data`` with the attackers' training rows as ``cfg.attack`` poisons them (unchanged for
    attacks on updates)."""
    from fedrec.attacks.attackers import attackers_of

    a = cfg.attack
    if a.kind not in ("label_flip", "item_promotion"):
        return data
    attackers = attackers_of(cfg, data.num_clients)
    if a.kind == "label_flip":
        return flip_labels(data, attackers)
    return add_fake_positives(data, attackers, a.target_feature, a.target_item, a.fake_rows)
