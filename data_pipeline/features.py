"""Feature building: canonical data -> ``Examples`` with a ``FeatureSpec`` for the DLRM.

Interaction data: sparse features are ``user``, ``item`` and any side feature of users or items
(single-valued categorical columns, or list columns such as genres, which become multi-id bags);
labels are ``rating >= label_threshold``. TorchRec's DLRM needs at least one dense input; when a
dataset has no real dense feature we feed a constant 1.0 (a learned bias through the dense arch),
which adds no information and so no leakage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from data_pipeline.batches import NEGATIVE_TIMESTAMP, Examples, FeatureSpec, SparseFeature, gather_jagged
from data_pipeline.errors import ConfigError
from data_pipeline.schema import InteractionData
from data_pipeline.synth import DENSE_NAMES, SPARSE_NAMES

ML_FEATURES = ("user", "item", "occupation", "gender", "age_bucket", "genres")


def available_features(data: InteractionData) -> list[str]:
    names = ["user", "item"]
    for table in (data.user_features, data.item_features):
        if table is not None:
            names += table.column_names[1:]
    return names


def interaction_examples(
    data: InteractionData,
    features: Sequence[str] = ML_FEATURES,
    label_threshold: float = 4.0,
    rows: np.ndarray | None = None,
) -> Examples:
    """Examples for the interactions at ``rows`` (all if None). Cardinalities come from the full
    vocabularies, so train and test examples built separately share one embedding layout."""
    known = available_features(data)
    missing = [f for f in features if f not in known]
    if missing:
        raise ConfigError("features", f"{missing} not in dataset {data.name!r}; available: {known}")
    inter = (
        data.interactions
        if rows is None
        else data.interactions.take(pa.array(np.asarray(rows, dtype=np.int64)))
    )
    user = inter.column("user").to_numpy()
    item = inter.column("item").to_numpy()
    n = len(user)
    values: dict[str, np.ndarray] = {}
    offsets: dict[str, np.ndarray] = {}
    sparse: list[SparseFeature] = []
    one = np.arange(n + 1, dtype=np.int64)
    for name in features:
        if name in ("user", "item"):
            values[name] = user if name == "user" else item
            offsets[name] = one
            sparse.append(SparseFeature(name, len(data.vocabs[name])))
            continue
        key, table = ("user", data.user_features)
        if table is None or name not in table.column_names:
            key, table = ("item", data.item_features)
        keys = table.column(key).to_numpy()
        owner = user if key == "user" else item
        lookup = np.full(len(data.vocabs[key]), -1, dtype=np.int64)
        lookup[keys] = np.arange(len(keys))
        pos = lookup[owner]  # row of the side table for each interaction (-1: no side row)
        col = table.column(name).combine_chunks()
        if pa.types.is_list(col.type):
            list_offsets = col.offsets.to_numpy().astype(np.int64)
            flat = col.flatten().to_numpy().astype(np.int64)
            lengths = np.where(pos >= 0, list_offsets[pos + 1] - list_offsets[np.maximum(pos, 0)], 0)
            starts = list_offsets[np.maximum(pos, 0)]
            off = np.r_[0, np.cumsum(lengths)].astype(np.int64)
            idx = np.repeat(starts - off[:-1], lengths) + np.arange(off[-1])
            values[name], offsets[name] = flat[idx], off
            card = int(flat.max()) + 1 if flat.size else 1
        else:
            codes = col.to_numpy().astype(np.int64)
            values[name] = np.where(pos >= 0, codes[np.maximum(pos, 0)], 0)
            offsets[name] = one
            card = len(data.vocabs[f"{key}.{name}"])
        sparse.append(SparseFeature(name, card))
    spec = FeatureSpec(tuple(sparse), ("bias",))
    return Examples(
        spec,
        np.ones((n, 1), dtype=np.float32),
        values,
        offsets,
        (inter.column("rating").to_numpy() >= label_threshold).astype(np.float32),
        user.astype(np.int64),
        inter.column("timestamp").to_numpy().astype(np.int64),
    )


def criteo_examples(table: pa.Table, num_buckets: int | Sequence[int]) -> Examples:
    """Examples from transformed Criteo batches (see ``readers.criteo``): a missing category is an
    empty bag. Row order stands in for time and for the client key (Criteo has no user id)."""
    n = table.num_rows
    buckets = (num_buckets,) * len(SPARSE_NAMES) if isinstance(num_buckets, int) else tuple(num_buckets)
    values, offsets = {}, {}
    for name in SPARSE_NAMES:
        col = table.column(name).combine_chunks()
        present = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False))
        values[name] = col.drop_null().to_numpy().astype(np.int64)
        offsets[name] = np.r_[0, np.cumsum(present)].astype(np.int64)
    dense = np.stack([table.column(c).to_numpy().astype(np.float32) for c in DENSE_NAMES], axis=1)
    spec = FeatureSpec(tuple(SparseFeature(nm, b) for nm, b in zip(SPARSE_NAMES, buckets)), DENSE_NAMES)
    return Examples(
        spec,
        dense,
        values,
        offsets,
        table.column("label").to_numpy().astype(np.float32),
        np.arange(n, dtype=np.int64),
        np.arange(n, dtype=np.int64),
    )


def user_side_features(data: InteractionData, features: Sequence[str]) -> tuple[str, ...]:
    """The features whose value comes from the user (``user`` and user side columns)."""
    cols = set(data.user_features.column_names[1:]) if data.user_features is not None else set()
    return tuple(f for f in features if f == "user" or f in cols)


def pair_examples(data: InteractionData, features: Sequence[str], users: np.ndarray, items: np.ndarray) -> Examples:
    """Examples for arbitrary (user, item) pairs (label 0) in the layout ``interaction_examples``
    gives the dataset's own interactions: what a model scores when it ranks a catalogue."""
    from dataclasses import replace

    n = len(users)
    table = pa.table({"user": np.asarray(users, dtype=np.int64), "item": np.asarray(items, dtype=np.int64),
                      "rating": np.zeros(n, dtype=np.float32), "timestamp": np.zeros(n, dtype=np.int64)})
    return interaction_examples(replace(data, interactions=table), features, float("inf"))


@dataclass
class Catalogue:
    """What ranking the whole catalogue for one user needs: one example row per item (ids 1..n;
    0 is the unknown-item slot) and one per user, and which features are the user's. A user's
    candidates are the item rows with the user-side features set to that user's values."""

    item_rows: Examples
    user_rows: Examples  # row u: user u
    user_side: tuple[str, ...]

    @staticmethod
    def build(data: InteractionData, features: Sequence[str]) -> Catalogue:
        items = np.arange(1, data.num_items + 1)
        users = np.arange(data.num_users + 1)
        return Catalogue(pair_examples(data, features, np.zeros(len(items), np.int64), items),
                         pair_examples(data, features, users, np.zeros(len(users), np.int64)),
                         user_side_features(data, features))

    @property
    def items(self) -> np.ndarray:
        return self.item_rows.values["item"] if "item" in self.item_rows.values else np.arange(1, len(self.item_rows) + 1)

    def candidates(self, user: int) -> Examples:
        """Every catalogue item as an example for ``user``."""
        n = len(self.item_rows)
        values, offsets = dict(self.item_rows.values), dict(self.item_rows.offsets)
        for f in self.user_side:
            vals, _ = gather_jagged(self.user_rows.values[f], self.user_rows.offsets[f], np.array([user]))
            values[f] = np.tile(vals, n)
            offsets[f] = np.arange(n + 1, dtype=np.int64) * len(vals)
        return Examples(self.item_rows.spec, self.item_rows.dense, values, offsets, np.zeros(n, np.float32),
                        np.full(n, user, dtype=np.int64), np.zeros(n, dtype=np.int64))


def sample_negatives(data: InteractionData, rows: np.ndarray, per_positive: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of ``per_positive`` sampled negatives for each interaction at ``rows``: items
    drawn uniformly from the catalogue, redrawn while the user has interacted with them anywhere in
    the log (so no negative is a hidden positive)."""
    user_all, item_all = data.column("user").astype(np.int64), data.column("item").astype(np.int64)
    width = np.int64(data.num_items + 1)
    seen = np.unique(user_all * width + item_all)
    users = np.repeat(user_all[rows], per_positive)
    rng = np.random.default_rng([seed, 0xBAD])
    items = rng.integers(1, data.num_items + 1, size=len(users))
    for _ in range(100):
        clash = np.isin(users * width + items, seen)
        if not clash.any():
            break
        items[clash] = rng.integers(1, data.num_items + 1, size=int(clash.sum()))
    else:
        raise ConfigError("data.negatives", "could not sample negatives: users have interacted with almost every item")
    return users, items


def implicit_examples(data: InteractionData, features: Sequence[str], rows: np.ndarray, per_positive: int,
                      seed: int) -> Examples:
    """Implicit feedback: every interaction at ``rows`` is a positive (label 1), followed by
    ``per_positive`` sampled negatives each (label 0, timestamp ``NEGATIVE_TIMESTAMP``)."""
    from data_pipeline.batches import concat_examples

    positives = interaction_examples(data, features, float("-inf"), rows)
    users, items = sample_negatives(data, rows, per_positive, seed)
    negatives = pair_examples(data, features, users, items)
    negatives.timestamps[:] = NEGATIVE_TIMESTAMP
    return concat_examples([positives, negatives])
