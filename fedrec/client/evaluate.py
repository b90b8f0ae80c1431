"""Evaluation on the clients: each client scores its own held-out rows with its own model (the global
weights plus its private rows), and ranks the whole catalogue for itself.

With private tables the server cannot score a user whose embedding it never sees, so held-out
scoring runs where the client's rows are. What returns to the driver: per held-out row its
predicted probability (the driver holds the held-out labels, as an evaluation harness does; a
deployment would return metric sums) and, for ranking, each client's HR@10 and nDCG@10 only.
"""

from __future__ import annotations

import numpy as np
import torch

from data_pipeline.batches import Examples
from fedrec.client.private import PrivateRows
from fedrec.updates import State


def model_tables(state: State, private: PrivateRows | None) -> dict[str, torch.Tensor]:
    """The tables a client scores with: private ones replaced by the stored rows."""
    return {} if private is None else {name: private.table(name, state[name]) for name in private.ids}


def ranking_metrics(scores: np.ndarray, items: np.ndarray, positives: np.ndarray, exclude: np.ndarray,
                    k: int = 10) -> tuple[float, float]:
    """HR@k (1 if any positive is in the top k) and nDCG@k (binary relevance, ideal = min(k, |pos|)
    positives on top) of one user's catalogue scores; ``exclude`` items (the user's training
    items) cannot be recommended."""
    scores = np.asarray(scores, dtype=np.float64).copy()
    scores[np.isin(items, exclude)] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    top = np.argpartition(-scores, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
    top = top[np.argsort(-scores[top], kind="stable")]
    hits = np.isin(items[top], positives)
    if not hits.any():
        return 0.0, 0.0
    dcg = float((1.0 / np.log2(np.arange(2, k + 2)))[hits].sum())
    ideal = float((1.0 / np.log2(np.arange(2, min(k, len(positives)) + 2))).sum())
    return 1.0, dcg / ideal


def rank_clients(clients: list[int], users: np.ndarray, score, catalogue, heldout: Examples, heldout_client: np.ndarray,
                 exclude_of, k: int = 10) -> dict:
    """Sums of HR@k and nDCG@k over ``clients`` that have positive held-out rows, and their count.
    ``score(examples)`` gives the client's model's probabilities; ``exclude_of(client)`` the items it
    has already seen (never recommended)."""
    items = catalogue.items
    hr = ndcg = 0.0
    counted = 0
    for c in clients:
        rows = np.flatnonzero((heldout_client == c) & (heldout.labels > 0))
        if not len(rows):
            continue
        positives = heldout.values["item"][rows]
        probs = score(catalogue.candidates(int(users[c])))
        h, n = ranking_metrics(probs, items, positives, exclude_of(c), k)
        hr, ndcg, counted = hr + h, ndcg + n, counted + 1
    return {"hr_sum": hr, "ndcg_sum": ndcg, "users": counted}
