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

    @property
    def table_of_feature(self) -> dict[str, str]:
        return {f: n for n, f in self.tables.items()}


def _linear_pairs(names: list[str], prefix: str) -> tuple[tuple[str, str], ...]:
    weights = [n for n in names if n.startswith(prefix) and n.endswith(".weight")]
    return tuple((w, w[: -len("weight")] + "bias") for w in weights)
