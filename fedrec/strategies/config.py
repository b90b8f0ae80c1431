"""The run config's ``strategy`` section and the client-sampling names; apart from the strategies'
code so that loading a config does not import torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedrec.configbase import StrictModel

Sampling = Literal["uniform", "tier-stratified"]
SAMPLING = ("uniform", "tier-stratified")
StrategyName = Literal["fedavg", "fedavgm", "fedprox", "fedadagrad", "fedadam", "fedyogi"]


class StrategyConfig(StrictModel):
    name: StrategyName = "fedavg"
    server_lr: float = Field(1.0, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # FedAvgM
    proximal_mu: float = Field(0.01, ge=0)  # FedProx: sent to clients as ClientTrainConfig.proximal_mu
    beta1: float = Field(0.9, ge=0, lt=1)  # FedOpt family (Reddi et al. 2021)
    beta2: float = Field(0.99, ge=0, lt=1)
    tau: float = Field(1e-3, gt=0)  # adaptivity
    # An embedding row's average: over the clients that touched it (``touchers``), or over the
    # whole cohort, as dense FedAvg (``cohort``; AggregatedUpdate.mean).
    row_mean: Literal["touchers", "cohort"] = "touchers"
