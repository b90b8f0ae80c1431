"""FedProx (Li et al. 2020): FedAvg aggregation; each client minimises its loss plus
``(mu / 2) ||w - w_global||^2``. The strategy's ``proximal_mu`` reaches the clients through the
instructions ``configure_fit`` returns (``ClientTrainConfig.proximal_mu``)."""

from __future__ import annotations

from fedrec.client.config import ClientTrainConfig
from fedrec.strategies.fedavg import FedAvg


class FedProx(FedAvg):
    def fit_config(self) -> ClientTrainConfig:
        return self.client_cfg.model_copy(update={"proximal_mu": self.cfg.proximal_mu})
