"""Where a DLRM's parameters are in its state dict: which tensors are embedding tables (and of
which feature) and which are the dense and over arches' Linear layers, in forward order.

Read off the parameter names, so a process can train from a state dict without building the
TorchRec module (the batched trainer) and the server can tell tables from dense tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

from data_pipeline.batches import FeatureSpec
from fedrec.model import table_name


@dataclass(frozen=True)
class ModelLayout:
    tables: dict[str, str]  # state-dict name -> sparse feature
    dense_layers: tuple[tuple[str, str], ...]  # (weight, bias) of the bottom MLP, in order
    over_layers: tuple[tuple[str, str], ...]  # (weight, bias) of the top MLP, in order

    @staticmethod
    def of(names, spec: FeatureSpec) -> ModelLayout:
        names = list(names)
        tables = {}
        for name in names:
            for f in spec.sparse_names:
                if name.endswith(f"embedding_bags.{table_name(f)}.weight"):
                    tables[name] = f
        return ModelLayout(tables, _linear_pairs(names, "dense_arch."), _linear_pairs(names, "over_arch."))

    @staticmethod
    def of_module(model, spec: FeatureSpec) -> ModelLayout:
        """The layout of any module whose embeddings live in EmbeddingBagCollections: each table
        found through the collections' configs (one feature per table), the arches by name."""
        from torchrec.modules.embedding_modules import EmbeddingBagCollection

        from data_pipeline.errors import ConfigError

        tables = {}
        for prefix, module in model.named_modules():
            if isinstance(module, EmbeddingBagCollection):
                for config in module.embedding_bag_configs():
                    if len(config.feature_names) != 1:
                        raise ConfigError("model", f"table {config.name!r} serves {config.feature_names}; one feature a table")
                    tables[f"{prefix + '.' if prefix else ''}embedding_bags.{config.name}.weight"] = config.feature_names[0]
        unknown = set(tables.values()) - set(spec.sparse_names)
        if unknown:
            raise ConfigError("model", f"the model reads features {sorted(unknown)} the data does not have")
        names = [n for n, _ in model.named_parameters()]
        return ModelLayout(tables, _linear_pairs(names, "dense_arch."), _linear_pairs(names, "over_arch."))

    @property
    def table_of_feature(self) -> dict[str, str]:
        return {f: n for n, f in self.tables.items()}


def _linear_pairs(names: list[str], prefix: str) -> tuple[tuple[str, str], ...]:
    weights = [n for n in names if n.startswith(prefix) and n.endswith(".weight")]
    return tuple((w, w[: -len("weight")] + "bias") for w in weights)
