"""Ranking metrics for the harness (AUC, HR@k, nDCG@k, PSP@k) and Kendall's tau between rankings.

Scores are dense ``users x items`` blocks; training items are never counted as hits or negatives
(they are masked out before ranking). Every metric is computed per user and averaged over users with
at least one held-out item. PSP@k (propensity-scored precision, Jain et al. 2016) weighs a hit on
item i by 1 / p_i and normalises by the best attainable weighted score, so it rewards finding tail
items; the propensities come from the *full* training data and stay fixed across samples.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import kendalltau

METRICS = ("auc", "hr@10", "ndcg@10", "psp@10")


def user_metrics(
    scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix, item_weight: np.ndarray, k: int = 10
) -> dict[str, np.ndarray]:
    """Per-user AUC, HR@k, nDCG@k and PSP@k for one block of users (rows of all three inputs)."""
    s = np.array(scores, dtype=np.float32)
    seen = train.toarray() > 0
    relevant = (test.toarray() > 0) & ~seen
    s[seen] = -np.inf
    n_pos = relevant.sum(axis=1)
    n_neg = s.shape[1] - seen.sum(axis=1) - n_pos
    rows, cols = np.nonzero(relevant)  # the held-out (user, item) pairs, by user

    top = top_k(s, k)
    hits = np.take_along_axis(relevant, top, axis=1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(n_pos, k) - 1]
    ndcg = (hits * discount[: hits.shape[1]]).sum(axis=1) / np.where(n_pos > 0, ideal, 1.0)

    # PSP: the weights of the hits in the top k over the k largest weights among held-out items.
    w = item_weight[cols]
    by_weight = np.lexsort((-w, rows))
    rank_in_user = np.arange(rows.size) - np.repeat(np.r_[0, np.cumsum(n_pos)[:-1]], n_pos)
    best = np.bincount(rows[by_weight], weights=np.where(rank_in_user < k, w[by_weight], 0.0), minlength=s.shape[0])
    gained = (np.where(hits, item_weight[top], 0.0)).sum(axis=1)
    psp = gained / np.where(best > 0, best, 1.0)

    return {
        "auc": _auc(s, rows, s[rows, cols], n_pos, n_neg),
        f"hr@{k}": hits.any(axis=1).astype(np.float64),
        f"ndcg@{k}": ndcg,
        f"psp@{k}": psp,
        "valid": (n_pos > 0) & (n_neg > 0),
    }


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` highest scores, best first (a partial sort: on large
    catalogues a full argsort of every row dominated the harness's scoring time)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _auc(s: np.ndarray, rows: np.ndarray, pos: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    """Fraction of (held-out, unseen) item pairs ordered correctly; ties count half.

    Each held-out item's rank among the user's scores is counted directly (items scored below it,
    plus half of those tied): O(held-out items x catalogue) instead of ranking every row, which on
    a 17k-item catalogue took most of the harness's time. Masked training items (-inf) rank lowest
    and are subtracted, as are the held-out items themselves (the Mann-Whitney correction).
    """
    below = np.empty(rows.size)
    tied = np.empty(rows.size)
    step = max(1, (1 << 22) // max(s.shape[1], 1))  # about 4M comparisons a chunk
    for start in range(0, rows.size, step):
        block = s[rows[start : start + step]]
        p = pos[start : start + step, None]
        below[start : start + step] = (block < p).sum(axis=1)
        tied[start : start + step] = (block == p).sum(axis=1)
    rank = below + (tied + 1) / 2.0  # 1-based average rank among the user's items
    n_seen = np.isneginf(s).sum(axis=1)
    pos_rank_sum = np.bincount(rows, weights=rank, minlength=s.shape[0]) - n_seen * n_pos
    correct = pos_rank_sum - n_pos * (n_pos + 1) / 2.0
    return correct / np.maximum(n_pos * n_neg, 1)


def mean_metrics(per_user: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Average per-user blocks over the users that have a held-out item and a negative."""
    valid = np.concatenate([b["valid"] for b in per_user])
    names = [m for m in per_user[0] if m != "valid"]
    return {m: float(np.concatenate([b[m] for b in per_user])[valid].mean()) if valid.any() else float("nan") for m in names}


def kendall_tau(a, b) -> float:
    """Kendall's tau-b between two score vectors (the models' metric values on two datasets), from
    ``scipy.stats.kendalltau``; ``nan`` when either ranking is constant (tau is undefined)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"kendall_tau needs two 1-d vectors of equal length, got {x.shape} and {y.shape}")
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(kendalltau(x, y).statistic)
