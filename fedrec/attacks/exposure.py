"""How far item promotion got: the target item's exposure, its hit rate at 10 over benign users.

For each benign user, every item the user has not rated in training is scored with the user's own
features (occupation, gender, age bucket: one of their training rows with the item swapped), and
the user counts as a hit when the target is among the top ``k``. Users who already rated the
target are left out. Users with the same features get the same scores, so each distinct feature
row is scored once against all items.
"""

from __future__ import annotations

import numpy as np

from data_pipeline.batches import Examples
from fedrec.model import predict
from fedrec.runtime.data import FederatedData


def _with_items(train: Examples, row: int, feature: str, items: np.ndarray) -> Examples:
    ex = train.take(np.full(len(items), row))
    ex.values[feature] = items.astype(ex.values[feature].dtype)
    ex.offsets[feature] = np.arange(len(items) + 1, dtype=np.int64)
    return ex


def _context_key(train: Examples, row: int, feature: str) -> tuple:
    parts = [train.dense[row].tobytes()]
    for name in train.spec.sparse_names:
        if name != feature:
            parts.append(train.values[name][train.offsets[name][row]:train.offsets[name][row + 1]].tobytes())
    return tuple(parts)


def target_exposure(model, state: dict, data: FederatedData, clients, item: int, feature: str = "item", k: int = 10) -> float:
    """Share of ``clients`` (benign users, natural partition) with ``item`` in their top ``k``."""
    model.load_state_dict(state)
    train = data.train
    card = next(f.cardinality for f in train.spec.sparse if f.name == feature)
    items = np.arange(1, card)  # id 0 is the out-of-vocabulary row
    scores: dict[tuple, np.ndarray] = {}
    hits = users = 0
    for c in clients:
        rows = data.partitions[int(c)]
        if not len(rows):
            continue
        seen = np.unique(np.concatenate([train.values[feature][train.offsets[feature][r]:train.offsets[feature][r + 1]]
                                         for r in rows]))
        if item in seen:
            continue
        key = _context_key(train, int(rows[0]), feature)
        if key not in scores:
            ex = _with_items(train, int(rows[0]), feature, items)
            probs, _ = predict(model, ex.iter_batches(4096))
            scores[key] = probs.numpy()
        s = scores[key]
        candidates = np.setdiff1d(items, seen, assume_unique=True)
        target_score = s[item - 1]
        better = int((s[candidates - 1] > target_score).sum())
        users += 1
        hits += better < k
    return hits / users if users else float("nan")


def pick_target_item(data: FederatedData, seed: int, feature: str = "item", min_count: int = 1, max_count: int = 5) -> int:
    """An unpopular item (rated ``min_count..max_count`` times in training), chosen by ``seed``:
    promoting an item nobody watches is what a promotion attack is for, and its clean exposure
    is near zero."""
    values = data.train.values[feature]
    counts = np.bincount(values, minlength=int(values.max()) + 1)
    pool = np.flatnonzero((counts >= min_count) & (counts <= max_count))
    pool = pool[pool > 0]
    return int(np.random.default_rng([seed, 0x7A6]).choice(pool))
