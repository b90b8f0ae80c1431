"""The models fedrec trains, built from a dataset's ``FeatureSpec`` (one EmbeddingBagCollection
table per sparse feature, sum pooling): TorchRec's ``DLRM`` (the default, with the batched fast
path), TorchRec's ``DLRM_DCN`` and ``SimpleDeepFMNN``, and a two-tower retrieval model
(``fedrec.models.two_tower``). Every model maps (dense, sparse) to one logit per row; any other
``torch.nn.Module`` of that shape whose embeddings live in EmbeddingBagCollections can be given to
``fedrec.run(config, model_fn=...)``.

TorchRec is imported only when a model is built: client actors on the batched path never build
one (they train stacked copies from the state dict), and importing torchrec with fbgemm costs
seconds per process.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from data_pipeline.batches import FeatureSpec
from fedrec.models.config import ModelConfig

if TYPE_CHECKING:
    from torchrec.models.dlrm import DLRM


def table_name(feature: str) -> str:
    return f"t_{feature}"


def _ebc(spec: FeatureSpec, dim: int, features=None):
    from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    tables = [
        EmbeddingBagConfig(name=table_name(f.name), embedding_dim=dim, num_embeddings=f.cardinality,
                           feature_names=[f.name], pooling=PoolingType.SUM)
        for f in spec.sparse if features is None or f.name in features
    ]
    return EmbeddingBagCollection(tables=tables, device=torch.device("cpu"))


def build_model(spec: FeatureSpec, cfg: ModelConfig | None = None, seed: int | None = None) -> torch.nn.Module:
    """The model ``cfg.name`` names over ``spec``'s features (``cfg.features`` selects some)."""
    cfg = cfg or ModelConfig()
    if seed is not None:
        torch.manual_seed(seed)
    spec = spec.select(cfg.features) if cfg.features else spec
    if cfg.name == "two_tower":
        from data_pipeline.errors import ConfigError
        from fedrec.models.two_tower import TwoTower

        query = [f for f in spec.sparse_names if f in cfg.query_features]
        candidate = [f for f in spec.sparse_names if f not in cfg.query_features]
        if not query or not candidate:
            raise ConfigError("model.query_features", f"both towers need features; query {query}, candidate {candidate}")
        return TwoTower(_ebc(spec, cfg.embedding_dim, query), _ebc(spec, cfg.embedding_dim, candidate), cfg.embedding_dim,
                        (*cfg.dense_arch, cfg.embedding_dim), query, candidate)
    ebc = _ebc(spec, cfg.embedding_dim)
    if cfg.name == "deepfm":
        from torchrec.models.deepfm import SimpleDeepFMNN

        model = SimpleDeepFMNN(len(spec.dense), ebc, hidden_layer_size=cfg.dense_arch[0], deep_fm_dimension=cfg.deepfm_dim)
        # TorchRec's DeepFM ends in a sigmoid; every fedrec model returns logits (the stable loss is
        # BCE-with-logits), so the last activation goes.
        model.over_arch.model[1] = torch.nn.Identity()
        return model
    if cfg.name == "dlrm_dcn":
        from torchrec.models.dlrm import DLRM_DCN

        return DLRM_DCN(ebc, dense_in_features=len(spec.dense), dense_arch_layer_sizes=[*cfg.dense_arch, cfg.embedding_dim],
                        over_arch_layer_sizes=[*cfg.over_arch, 1], dcn_num_layers=cfg.dcn_layers,
                        dcn_low_rank_dim=cfg.dcn_low_rank)
    from torchrec.models.dlrm import DLRM

    return DLRM(embedding_bag_collection=ebc, dense_in_features=len(spec.dense),
                dense_arch_layer_sizes=[*cfg.dense_arch, cfg.embedding_dim], over_arch_layer_sizes=[*cfg.over_arch, 1])


def is_plain_dlrm(cfg: ModelConfig, model_fn=None) -> bool:
    """The default DLRM, with no custom builder: the model fedrec knows without a TorchRec module
    (its initial state is ``dlrm_initial_state``, its layout is read off the state dict's names, and
    it trains on the batched path)."""
    return cfg.name == "dlrm" and model_fn is None


def dlrm_initial_state(spec: FeatureSpec, cfg: ModelConfig | None = None, seed: int | None = None) -> dict[str, torch.Tensor]:
    """The state dict ``build_model(spec, cfg, seed)`` gives for the default ``dlrm`` (same names,
    shapes and values, and the same draws from torch's generator), built from ``torch.nn`` alone.

    Why not build the module: ``import torchrec`` imports ``torchrec.distributed`` with it (dynamo,
    fbgemm, FSDP), ~4 CPU-seconds that the driver of a run on the batched path would spend only to
    read off initial weights, on the cores the Ray workers are starting on. The steps follow
    TorchRec 1.8's constructors: ``EmbeddingBagCollection`` makes each table's ``nn.EmbeddingBag``
    (normal init) and then re-initialises each uniformly in +-sqrt(1 / rows); ``DLRM`` then makes
    the dense arch's ``nn.Linear`` layers and the over arch's (its MLP, then the final layer).
    ``tests/unit/test_model_state.py`` checks it against TorchRec's module.
    """
    cfg = cfg or ModelConfig()
    if seed is not None:
        torch.manual_seed(seed)
    spec = spec.select(cfg.features) if cfg.features else spec
    dim = cfg.embedding_dim
    bags = [torch.nn.EmbeddingBag(f.cardinality, dim, mode="sum", include_last_offset=True) for f in spec.sparse]
    state = {}
    for f, bag in zip(spec.sparse, bags):
        bound = math.sqrt(1 / f.cardinality)
        torch.nn.init.uniform_(bag.weight, a=-bound, b=bound)
        state[f"sparse_arch.embedding_bag_collection.embedding_bags.{table_name(f.name)}.weight"] = bag.weight.detach()

    def linear(prefix: str, n_in: int, n_out: int) -> int:
        layer = torch.nn.Linear(n_in, n_out)
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = layer.weight.detach(), layer.bias.detach()
        return n_out

    n = len(spec.dense)
    for i, out in enumerate([*cfg.dense_arch, dim]):
        n = linear(f"dense_arch.model._mlp.{i}._linear", n, out)
    features = len(spec.sparse)
    n = dim + features * (features - 1) // 2 + features  # the interaction arch's output
    for i, out in enumerate(cfg.over_arch):
        n = linear(f"over_arch.model.0._mlp.{i}._linear", n, out)
    linear("over_arch.model.1", n, 1)
    return state


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
