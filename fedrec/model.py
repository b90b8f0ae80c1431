"""The DLRM every fedrec trainer uses: TorchRec's ``DLRM`` over an ``EmbeddingBagCollection``
built from a dataset's ``FeatureSpec`` (one table per sparse feature, sum pooling).

TorchRec is imported only when a model is built: client actors on the batched path never build
one (they train stacked copies from the state dict), and importing torchrec with fbgemm costs
seconds per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import Field

from data_pipeline.batches import FeatureSpec
from fedrec.configbase import PositiveIntTuple, StrictModel, StrTuple

if TYPE_CHECKING:
    from torchrec.models.dlrm import DLRM


class ModelConfig(StrictModel):
    embedding_dim: int = Field(16, ge=1)
    dense_arch: PositiveIntTuple = (32,)  # hidden sizes; the last layer is embedding_dim (DLRM needs it)
    over_arch: PositiveIntTuple = (64, 32)  # hidden sizes; a final 1-unit logit layer is added
    features: StrTuple | None = None  # sparse features to use (None: all in the spec)
    # Tables that never leave the device (e.g. [user]): trained by each client on its own rows, kept
    # on the client between rounds, never uploaded or aggregated (fedrec.client.private).
    private: StrTuple = ()


def table_name(feature: str) -> str:
    return f"t_{feature}"


def build_dlrm(spec: FeatureSpec, cfg: ModelConfig | None = None, seed: int | None = None) -> DLRM:
    from torchrec.models.dlrm import DLRM
    from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    cfg = cfg or ModelConfig()
    if seed is not None:
        torch.manual_seed(seed)
    spec = spec.select(cfg.features) if cfg.features else spec
    tables = [
        EmbeddingBagConfig(
            name=table_name(f.name),
            embedding_dim=cfg.embedding_dim,
            num_embeddings=f.cardinality,
            feature_names=[f.name],
            pooling=PoolingType.SUM,
        )
        for f in spec.sparse
    ]
    ebc = EmbeddingBagCollection(tables=tables, device=torch.device("cpu"))
    return DLRM(
        embedding_bag_collection=ebc,
        dense_in_features=len(spec.dense),
        dense_arch_layer_sizes=[*cfg.dense_arch, cfg.embedding_dim],
        over_arch_layer_sizes=[*cfg.over_arch, 1],
    )


def forward_logits(model: DLRM, batch) -> torch.Tensor:
    return model(batch.dense_features, batch.sparse_features).squeeze(-1)


@torch.no_grad()
def predict(model: DLRM, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and labels over an iterable of batches, in eval mode."""
    was_training = model.training
    model.eval()
    probs, labels = [], []
    for b in batches:
        probs.append(torch.sigmoid(forward_logits(model, b)))
        labels.append(b.labels)
    model.train(was_training)
    return torch.cat(probs), torch.cat(labels)
