"""The run config's ``model`` section; apart from the model builders (``fedrec.model``) so that
loading a config does not import torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedrec.configbase import PositiveIntTuple, StrictModel, StrTuple


class ModelConfig(StrictModel):
    name: Literal["dlrm", "dlrm_dcn", "deepfm", "two_tower"] = "dlrm"
    embedding_dim: int = Field(16, ge=1)
    dense_arch: PositiveIntTuple = (32,)  # hidden sizes; the last layer is embedding_dim (DLRM needs it)
    over_arch: PositiveIntTuple = (64, 32)  # hidden sizes; a final 1-unit logit layer is added
    features: StrTuple | None = None  # sparse features to use (None: all in the spec)
    # Tables that never leave the device (e.g. [user]): trained by each client on its own rows, kept
    # on the client between rounds, never uploaded or aggregated (fedrec.client.private).
    private: StrTuple = ()
    dcn_layers: int = Field(2, ge=1)  # dlrm_dcn: cross layers
    dcn_low_rank: int = Field(8, ge=1)  # dlrm_dcn: rank of each cross layer's weight
    deepfm_dim: int = Field(8, ge=1)  # deepfm: output width of the deep part
    query_features: StrTuple = ("user",)  # two_tower: the query tower's features (the rest: candidate)
