"""Closed-form models: item-kNN, EASE (Steck, 2019) and infinity-AE (Sachdeva et al., 2022).

Each holds a dense item-item (or user-user) matrix, so on large catalogues they keep only the
``max_items`` most popular items (infinity-AE also ``max_users`` random users as the kernel's
support); the rest score as cold. The default caps are far above ML-100K's 1,682 items and 943 users.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from sampling.models.base import Recommender


class _ItemItem(Recommender):
    """Scores are ``X[users] @ W`` for an item-item matrix ``W`` over the ``max_items`` most popular
    items. ``fit`` also takes a dense matrix of fractional weights (a Distill-CF summary): then
    the weights themselves, not their 0/1 pattern, make the Gram matrix."""

    def __init__(self, seed: int = 0, max_items: int = 10_000) -> None:
        super().__init__(seed)
        self.max_items = max_items

    def _fit(self, ratings: sp.csr_matrix) -> None:
        x = self._input(ratings)
        counts = np.bincount(x.indices, minlength=x.shape[1])
        self.items_ = np.sort(np.argsort(-counts, kind="stable")[: self.max_items])
        self.cold_items_[np.setdiff1d(np.arange(x.shape[1]), self.items_)] = True  # scored like unseen items
        self.x_ = x
        xi = x[:, self.items_]
        self.weights_ = self._weights(np.asarray((xi.T @ xi).todense(), dtype=np.float64)).astype(np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._predict(self.x_[users])

    def _predict(self, history: sp.csr_matrix) -> np.ndarray:
        out = np.zeros((history.shape[0], self.n_items_), dtype=np.float32)
        out[:, self.items_] = history[:, self.items_] @ self.weights_
        return out

    def _weights(self, gram: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ItemKNN(_ItemItem):
    """Cosine item-item similarity, each item keeping its ``neighbours`` most similar items."""

    name = "item-knn"

    def __init__(self, seed: int = 0, neighbours: int = 100, shrink: float = 10.0, max_items: int = 10_000) -> None:
        super().__init__(seed, max_items)
        self.neighbours = neighbours
        self.shrink = shrink

    def _weights(self, gram: np.ndarray) -> np.ndarray:
        norm = np.sqrt(np.diag(gram))
        sim = gram / (np.outer(norm, norm) + self.shrink)
        np.fill_diagonal(sim, 0.0)
        k = min(self.neighbours, sim.shape[0] - 1)
        if 0 < k < sim.shape[0] - 1:
            cut = np.partition(sim, -k, axis=0)[-k]  # k-th largest similarity in each column
            sim[sim < cut[None, :]] = 0.0
        return sim


class EASE(_ItemItem):
    """Embarrassingly shallow autoencoder: B = I - P / diag(P), P = (X'X + l2 I)^-1."""

    name = "ease"

    def __init__(self, seed: int = 0, l2: float = 300.0, max_items: int = 10_000) -> None:
        super().__init__(seed, max_items)
        self.l2 = l2

    def _weights(self, gram: np.ndarray) -> np.ndarray:
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        return b


class InfinityAE(Recommender):
    """An infinitely wide one-hidden-layer ReLU autoencoder, solved in closed form with its neural
    tangent kernel between users: predictions = K(users, S) (K(S, S) + reg * mean(diag K) I)^-1 X_S,
    with S all users (or ``max_users`` random ones on large data)."""

    name = "infinity-ae"

    def __init__(self, seed: int = 0, reg: float = 1.0, max_users: int = 8_000, max_items: int = 20_000) -> None:
        super().__init__(seed)
        self.reg = reg
        self.max_users = max_users
        self.max_items = max_items

    def _fit(self, ratings: sp.csr_matrix) -> None:
        x = self._input(ratings)
        if x.shape[1] > self.max_items:  # the kernel's outputs: the most popular items only (the rest score as cold)
            counts = np.asarray((x != 0).sum(axis=0)).ravel()
            self.cold_items_[np.argsort(-counts, kind="stable")[self.max_items :]] = True
            x = x.multiply(~self.cold_items_[None, :]).tocsr()
        n = x.shape[0]
        support = np.arange(n)
        if n > self.max_users:
            support = np.sort(np.random.default_rng(self.seed).choice(n, self.max_users, replace=False))
        xs = x[support]
        self.x_, self.support_x_ = x, xs
        self.support_norm_ = np.sqrt(np.asarray(xs.multiply(xs).sum(axis=1)).ravel())
        kernel = ntk_relu((xs @ xs.T).toarray().astype(np.float64))
        scale = max(float(np.trace(kernel)) / len(support), 1e-12)
        self.alpha_ = np.linalg.solve(kernel + self.reg * scale * np.eye(len(support)), xs.toarray()).astype(np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._predict(self.x_[users])

    def _predict(self, xu: sp.csr_matrix) -> np.ndarray:
        norm_u = np.sqrt(np.asarray(xu.multiply(xu).sum(axis=1)).ravel())
        kernel = ntk_relu((xu @ self.support_x_.T).toarray().astype(np.float64), norm_u, self.support_norm_)
        return kernel.astype(np.float32) @ self.alpha_


def ntk_relu(gram: np.ndarray, norm_a: np.ndarray | None = None, norm_b: np.ndarray | None = None) -> np.ndarray:
    """NTK of a one-hidden-layer ReLU network from inner products of its inputs (arc-cosine kernels);
    the norms default to the square root of a square Gram matrix's diagonal."""
    if norm_a is None:
        norm_a = norm_b = np.sqrt(np.maximum(np.diag(gram), 0.0))
    outer = np.outer(norm_a, norm_b)
    cos = np.clip(np.divide(gram, outer, out=np.zeros_like(gram), where=outer > 0), -1.0, 1.0)
    theta = np.arccos(cos)
    sigma1 = outer / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * cos)
    return sigma1 + gram * (np.pi - theta) / (2 * np.pi)
