"""Closed-form models: item-kNN, EASE (Steck, 2019) and infinity-AE (Sachdeva et al., 2022)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from sampling.models.base import Recommender, binary


class ItemKNN(Recommender):
    """Cosine item-item similarity, each item keeping its ``neighbours`` most similar items."""

    name = "item-knn"

    def __init__(self, seed: int = 0, neighbours: int = 100, shrink: float = 10.0) -> None:
        super().__init__(seed)
        self.neighbours = neighbours
        self.shrink = shrink

    def _fit(self, ratings: sp.csr_matrix) -> None:
        x = binary(ratings)
        self.x_ = x
        co = (x.T @ x).toarray()
        norm = np.sqrt(np.diag(co))
        sim = co / (np.outer(norm, norm) + self.shrink)
        np.fill_diagonal(sim, 0.0)
        k = min(self.neighbours, sim.shape[0] - 1)
        if 0 < k < sim.shape[0] - 1:
            cut = np.partition(sim, -k, axis=0)[-k]  # k-th largest similarity in each column
            sim[sim < cut[None, :]] = 0.0
        self.sim_ = sim.astype(np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.x_[users] @ self.sim_


class EASE(Recommender):
    """Embarrassingly shallow autoencoder: B = I - P / diag(P), P = (X'X + l2 I)^-1."""

    name = "ease"

    def __init__(self, seed: int = 0, l2: float = 300.0) -> None:
        super().__init__(seed)
        self.l2 = l2

    def _fit(self, ratings: sp.csr_matrix) -> None:
        x = binary(ratings)
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        self.x_ = x
        self.weights_ = b.astype(np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.x_[users] @ self.weights_


class InfinityAE(Recommender):
    """An infinitely wide one-hidden-layer ReLU autoencoder, solved in closed form with its neural
    tangent kernel between users: predictions = K (K + reg * mean(diag K) I)^-1 X."""

    name = "infinity-ae"

    def __init__(self, seed: int = 0, reg: float = 1.0) -> None:
        super().__init__(seed)
        self.reg = reg

    def _fit(self, ratings: sp.csr_matrix) -> None:
        x = binary(ratings)
        kernel = ntk_relu((x @ x.T).toarray().astype(np.float64))
        n = kernel.shape[0]
        scale = max(float(np.trace(kernel)) / n, 1e-12)
        self.alpha_ = np.linalg.solve(kernel + self.reg * scale * np.eye(n), x.toarray()).astype(np.float32)
        self.kernel_ = kernel.astype(np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.kernel_[users] @ self.alpha_


def ntk_relu(gram: np.ndarray) -> np.ndarray:
    """NTK of a one-hidden-layer ReLU network from the inputs' Gram matrix (arc-cosine kernels)."""
    norm = np.sqrt(np.maximum(np.diag(gram), 0.0))
    outer = np.outer(norm, norm)
    cos = np.clip(np.divide(gram, outer, out=np.zeros_like(gram), where=outer > 0), -1.0, 1.0)
    theta = np.arccos(cos)
    sigma1 = outer / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * cos)
    return sigma1 + gram * (np.pi - theta) / (2 * np.pi)
