"""Server strategies, one a file; ``make_strategy`` builds one by name."""

from data_pipeline.errors import ConfigError
from fedrec.client.local import ClientTrainConfig
from fedrec.strategies.base import SAMPLING, Strategy, StrategyConfig
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
    try:
        cls = STRATEGIES[cfg.name.lower()]
    except KeyError:
        raise ConfigError("strategy.name", f"unknown strategy {cfg.name!r}; expected one of {sorted(STRATEGIES)}") from None
    return cls(cfg, client_cfg)


__all__ = [
    "SAMPLING", "STRATEGIES", "FedAdagrad", "FedAdam", "FedAvg", "FedAvgM", "FedOpt", "FedProx", "FedYogi",
    "Strategy", "StrategyConfig", "make_strategy",
]
