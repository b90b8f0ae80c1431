"""The DLRM every fedrec trainer uses: TorchRec's ``DLRM`` over an ``EmbeddingBagCollection``
built from a dataset's ``FeatureSpec`` (one table per sparse feature, sum pooling)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torchrec.datasets.utils import Batch
from torchrec.models.dlrm import DLRM
from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from data_pipeline.batches import FeatureSpec
from data_pipeline.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    embedding_dim: int = 16
    dense_arch: tuple[int, ...] = (32,)  # hidden sizes; the last layer is embedding_dim (DLRM needs it)
    over_arch: tuple[int, ...] = (64, 32)  # hidden sizes; a final 1-unit logit layer is added
    features: tuple[str, ...] | None = None  # sparse features to use (None: all in the spec)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.embedding_dim <= 0:
            raise ConfigError("model.embedding_dim", f"must be positive, got {self.embedding_dim}")
        for name, sizes in (("model.dense_arch", self.dense_arch), ("model.over_arch", self.over_arch)):
            if any(s <= 0 for s in sizes):
                raise ConfigError(name, f"layer sizes must be positive, got {list(sizes)}")


def table_name(feature: str) -> str:
    return f"t_{feature}"


def build_dlrm(spec: FeatureSpec, cfg: ModelConfig = ModelConfig(), seed: int | None = None) -> DLRM:
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


def forward_logits(model: DLRM, batch: Batch) -> torch.Tensor:
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
