"""The model zoo: cheap CPU recommenders whose relative ranking the samplers try to preserve."""

from __future__ import annotations

from sampling._validate import check_choice
from sampling.models.base import Recommender, interaction_matrix, log_matrix
from sampling.models.closed_form import EASE, InfinityAE, ItemKNN
from sampling.models.neural import DLRM, MF, NeuMF
from sampling.models.simple import BiasOnly, Popularity

ZOO: dict[str, type[Recommender]] = {
    cls.name: cls for cls in (Popularity, BiasOnly, ItemKNN, EASE, MF, NeuMF, DLRM, InfinityAE)
}
MODEL_NAMES = tuple(ZOO)


def make_model(name: str, seed: int = 0, **params) -> Recommender:
    return ZOO[check_choice(name, MODEL_NAMES, "models")](seed=seed, **params)


__all__ = [
    "DLRM", "EASE", "MF", "MODEL_NAMES", "ZOO", "BiasOnly", "InfinityAE", "ItemKNN", "NeuMF", "Popularity",
    "Recommender", "interaction_matrix", "log_matrix", "make_model",
]  # fmt: skip
