"""FedProx (Li et al. 2020): FedAvg aggregation; clients add (mu/2)||w - w_global||^2 locally."""

from __future__ import annotations

from dataclasses import replace

from fedrec.client.local import ClientTrainConfig
from fedrec.strategies.base import StrategyConfig
from fedrec.strategies.fedavg import FedAvg


class FedProx(FedAvg):
    def __init__(self, cfg: StrategyConfig, client_cfg: ClientTrainConfig) -> None:
        super().__init__(cfg, replace(client_cfg, proximal_mu=cfg.proximal_mu))
