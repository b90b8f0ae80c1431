"""The zoo's interface: ``fit(ratings)`` on a users x items sparse matrix, ``score(users)`` for all items.

The matrix holds ratings (1.0 for implicit feedback) at the training interactions; implicit models
read only its pattern. Shapes are those of the *full* data, so a model trained on a sample scores
the same users and items as one trained on everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import scipy.sparse as sp

from sampling._validate import check_fitted

if TYPE_CHECKING:
    from data_pipeline.schema import InteractionData


class Recommender:
    name: ClassVar[str] = ""
    seeded: ClassVar[bool] = False  # True when the seed changes what the model learns

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, ratings: sp.csr_matrix | np.ndarray) -> Recommender:
        """Learn from a users x items matrix: sparse ratings, or (closed-form models) a dense
        matrix of fractional interaction weights such as a Distill-CF summary."""
        self.dense_input_ = isinstance(ratings, np.ndarray)
        ratings = ratings.astype(np.float32) if self.dense_input_ else sp.csr_matrix(ratings)
        self.n_users_, self.n_items_ = ratings.shape
        counts = np.abs(ratings).sum(axis=0) if self.dense_input_ else np.bincount(ratings.indices, minlength=self.n_items_)
        self.cold_items_ = np.asarray(counts).ravel() == 0
        self._fit(ratings)
        return self

    def predict(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores of every item for users given by their interaction histories (the pattern of rows
        of a users x items matrix), who need not be among the users the model was fitted on: how a
        model learned from a data summary serves the real users. Closed-form models only."""
        check_fitted(self, "n_items_")
        return self._floor_cold(np.array(self._predict(binary(history)), dtype=np.float32))

    def _predict(self, history: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError(f"{self.name} scores only the users it was fitted on")

    def _input(self, ratings):
        """The matrix a closed-form model learns from: the 0/1 pattern of sparse ratings, or a
        dense fractional matrix as given."""
        return sp.csr_matrix(ratings) if self.dense_input_ else binary(ratings)

    def score(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for each of ``users`` (0-based rows), higher is better.

        Items never seen in training score below every other item in every model: what a model
        says about them is an artifact of its initialisation (random embeddings, zero rows), and
        letting that noise rank them would make samples with many cold items look arbitrary.
        """
        check_fitted(self, "n_items_")
        return self._floor_cold(np.array(self._score(np.asarray(users, dtype=np.int64)), dtype=np.float32))

    def _floor_cold(self, scores: np.ndarray) -> np.ndarray:
        if self.cold_items_.any() and not self.cold_items_.all():
            floor = scores[:, ~self.cold_items_].min(axis=1, keepdims=True) - 1.0
            scores[:, self.cold_items_] = floor
        return scores

    def _fit(self, ratings: sp.csr_matrix) -> None:
        raise NotImplementedError

    def _score(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


def binary(ratings: sp.csr_matrix) -> sp.csr_matrix:
    """The interaction pattern as a 0/1 float32 matrix."""
    x = sp.csr_matrix(ratings, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    return x


def interaction_matrix(
    user: np.ndarray, item: np.ndarray, rating: np.ndarray, n_users: int, n_items: int
) -> sp.csr_matrix:
    """0-based ids -> users x items matrix of ratings (a repeated pair keeps its mean rating)."""
    shape = (n_users, n_items)
    total = sp.csr_matrix((rating.astype(np.float64), (user, item)), shape=shape)
    count = sp.csr_matrix((np.ones(user.size), (user, item)), shape=shape)
    total.sum_duplicates()
    count.sum_duplicates()
    total.data = (total.data / count.data).astype(np.float32)
    return total


def log_matrix(data: InteractionData) -> sp.csr_matrix:
    """An interaction log as a users x items matrix of ratings (encoded ids start at 1). The shape
    comes from the log's vocabularies, which a part taken from a log keeps, so every part of one
    log gives matrices of the same shape."""
    return interaction_matrix(data.column("user") - 1, data.column("item") - 1, data.column("rating"),
                              data.num_users, data.num_items)  # fmt: skip
