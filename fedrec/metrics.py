"""Binary-classification metrics of the DLRM/FEL papers: AUC, log loss and normalized entropy.

NE is the log loss divided by the entropy of the label base rate of the evaluated set: 1.0 means no
better than predicting the average CTR, lower is better. AUC and log loss come from scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

_EPS = 1e-7


def binary_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probs, dtype=np.float64).ravel(), _EPS, 1 - _EPS)
    if y.size == 0:
        return {"auc": float("nan"), "logloss": float("nan"), "ne": float("nan"), "n": 0}
    ll = float(log_loss(y, p, labels=[0.0, 1.0]))
    base = float(np.clip(y.mean(), _EPS, 1 - _EPS))
    entropy = -(base * math.log(base) + (1 - base) * math.log(1 - base))
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < y.size else float("nan")
    return {"auc": auc, "logloss": ll, "ne": ll / entropy, "n": int(y.size)}
