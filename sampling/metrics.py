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

METRICS = ("auc", "hr@10", "ndcg@10", "psp@10")


def user_metrics(
    scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix, item_weight: np.ndarray, k: int = 10
) -> dict[str, np.ndarray]:
    """Per-user AUC, HR@k, nDCG@k and PSP@k for one block of users (rows of all three inputs)."""
    s = np.array(scores, dtype=np.float64)
    seen = train.toarray() > 0
    relevant = (test.toarray() > 0) & ~seen
    s[seen] = -np.inf
    n_pos = relevant.sum(axis=1)
    n_neg = s.shape[1] - seen.sum(axis=1) - n_pos

    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(relevant, top, axis=1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(n_pos, k) - 1]
    ndcg = (hits * discount[: hits.shape[1]]).sum(axis=1) / np.where(n_pos > 0, ideal, 1.0)

    weight = np.where(relevant, item_weight[None, :], 0.0)
    best = -np.sort(-weight, axis=1)[:, :k].sum(axis=1)
    gained = np.take_along_axis(weight, top, axis=1).sum(axis=1)
    psp = gained / np.where(best > 0, best, 1.0)

    return {
        "auc": _auc(s, relevant, n_pos, n_neg),
        f"hr@{k}": hits.any(axis=1).astype(np.float64),
        f"ndcg@{k}": ndcg,
        f"psp@{k}": psp,
        "valid": (n_pos > 0) & (n_neg > 0),
    }


def _auc(s: np.ndarray, relevant: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    """Fraction of (held-out, unseen) item pairs ordered correctly; ties count half."""
    from scipy.stats import rankdata

    ranks = rankdata(s, axis=1)  # masked training items are -inf: they take the lowest ranks
    n_seen = np.isneginf(s).sum(axis=1)
    pos_rank_sum = np.where(relevant, ranks, 0.0).sum(axis=1) - n_seen * n_pos
    correct = pos_rank_sum - n_pos * (n_pos + 1) / 2.0
    return correct / np.maximum(n_pos * n_neg, 1)


def mean_metrics(per_user: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Average per-user blocks over the users that have a held-out item and a negative."""
    valid = np.concatenate([b["valid"] for b in per_user])
    names = [m for m in per_user[0] if m != "valid"]
    return {m: float(np.concatenate([b[m] for b in per_user])[valid].mean()) if valid.any() else float("nan") for m in names}


def kendall_tau(a, b) -> float:
    """Kendall's tau-b between two score vectors (the models' metric values on two datasets).

    O(n^2) over pairs, which is what a handful of models needs; equals ``scipy.stats.kendalltau``
    (tau-b, ties in either ranking handled) and is ``nan`` when either ranking is constant.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"kendall_tau needs two 1-d vectors of equal length, got {x.shape} and {y.shape}")
    i, j = np.triu_indices(x.size, k=1)
    dx = np.sign(x[i] - x[j])
    dy = np.sign(y[i] - y[j])
    denom = np.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float((dx * dy).sum() / denom) if denom > 0 else float("nan")
