"""A two-tower retrieval model over TorchRec EmbeddingBagCollections: a query tower over the user's
features and a candidate tower over the item's, each an EBC plus an MLP, scored by their dot
product. Trained pointwise (a logit per row) on labelled rows, i.e. with the log's own negatives
or with sampled ones (``data.negatives``); the catalogue is ranked by the same score.

Ours, not TorchRec's: TorchRec ships two-tower only as an example script (its retrieval example),
not as a module in the package.
"""

from __future__ import annotations

import torch
from torch import nn


class TwoTower(nn.Module):
    def __init__(self, query_ebc, candidate_ebc, embedding_dim: int, layers: tuple[int, ...],
                 query_features: list[str], candidate_features: list[str]) -> None:
        super().__init__()
        self.query_ebc, self.candidate_ebc = query_ebc, candidate_ebc
        self.query_features, self.candidate_features = query_features, candidate_features

        def mlp(width: int) -> nn.Sequential:
            parts: list[nn.Module] = []
            for h in layers[:-1]:
                parts += [nn.Linear(width, h), nn.ReLU()]
                width = h
            return nn.Sequential(*parts, nn.Linear(width, layers[-1]))

        self.query_tower = mlp(embedding_dim * len(query_features))
        self.candidate_tower = mlp(embedding_dim * len(candidate_features))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, dense_features: torch.Tensor, sparse_features) -> torch.Tensor:
        del dense_features  # the towers read sparse features only
        q = self.query_ebc(_select(sparse_features, self.query_features))
        c = self.candidate_ebc(_select(sparse_features, self.candidate_features))
        qv = self.query_tower(torch.cat([q[f] for f in self.query_features], dim=1))
        cv = self.candidate_tower(torch.cat([c[f] for f in self.candidate_features], dim=1))
        return ((qv * cv).sum(1) + self.bias).unsqueeze(1)


def _select(kjt, keys: list[str]):
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    parts = kjt.to_dict()
    return KeyedJaggedTensor.from_jt_dict({k: parts[k] for k in keys})
