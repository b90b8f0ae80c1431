"""Non-personalised baselines: item popularity, and the bias-only rating predictor."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from sampling.models.base import Recommender, binary


class Popularity(Recommender):
    """Every user gets the most-interacted items."""

    name = "popularity"

    def _fit(self, ratings: sp.csr_matrix) -> None:
        self.counts_ = np.asarray(binary(ratings).sum(axis=0)).ravel()

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts_, (users.size, self.n_items_))


class BiasOnly(Recommender):
    """Global mean plus shrunk user and item rating biases (Koren's baseline predictor).

    Ranks items by how well they are *rated*, not how often, so it is a genuinely different (and, for
    top-N retrieval, weaker) model than popularity.
    """

    name = "bias-only"

    def __init__(self, seed: int = 0, item_shrinkage: float = 25.0, user_shrinkage: float = 10.0) -> None:
        super().__init__(seed)
        self.item_shrinkage = item_shrinkage
        self.user_shrinkage = user_shrinkage

    def _fit(self, ratings: sp.csr_matrix) -> None:
        coo = ratings.tocoo()
        mu = float(coo.data.mean()) if coo.nnz else 0.0
        resid = coo.data - mu
        n_item = np.bincount(coo.col, minlength=self.n_items_)
        self.item_bias_ = np.bincount(coo.col, weights=resid, minlength=self.n_items_) / (self.item_shrinkage + n_item)
        resid = resid - self.item_bias_[coo.col]
        n_user = np.bincount(coo.row, minlength=self.n_users_)
        self.user_bias_ = np.bincount(coo.row, weights=resid, minlength=self.n_users_) / (self.user_shrinkage + n_user)
        self.mu_ = mu

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.mu_ + self.user_bias_[users, None] + self.item_bias_[None, :]
