"""Server strategies, one a file; ``make_strategy`` builds one by name."""

from fedrec.client.local import ClientTrainConfig
from fedrec.strategies.base import SAMPLING, FitInstructions, Strategy, StrategyConfig
from fedrec.strategies.fedavg import FedAvg
from fedrec.strategies.fedavgm import FedAvgM
from fedrec.strategies.fedopt import FedAdagrad, FedAdam, FedOpt, FedYogi
from fedrec.strategies.fedprox import FedProx

STRATEGIES = {
    "fedavg": FedAvg,
    "fedavgm": FedAvgM,
    "fedprox": FedProx,
    "fedadagrad": FedAdagrad,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
}


def make_strategy(cfg: StrategyConfig, client_cfg: ClientTrainConfig) -> Strategy:
    """The strategy named by ``cfg.name`` (validated by the config's schema)."""
    return STRATEGIES[cfg.name](cfg, client_cfg)


__all__ = [
    "SAMPLING", "STRATEGIES", "FedAdagrad", "FedAdam", "FedAvg", "FedAvgM", "FedOpt", "FedProx", "FedYogi",
    "FitInstructions", "Strategy", "StrategyConfig", "make_strategy",
]
