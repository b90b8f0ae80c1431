"""Server strategies, one a file; ``make_strategy`` builds one by name. Exports resolve on first
use (``fedrec.lazy``): the run config imports ``StrategyConfig`` without torch."""

from __future__ import annotations

from fedrec.lazy import exports_of, lazy_exports

_LAZY = exports_of({
    "config": ("SAMPLING", "StrategyConfig"),
    "base": ("FitInstructions", "Strategy"),
    "fedavg": ("FedAvg",), "fedavgm": ("FedAvgM",), "fedopt": ("FedAdagrad", "FedAdam", "FedOpt", "FedYogi"),
    "fedprox": ("FedProx",),
})
__getattr__ = lazy_exports(__name__, _LAZY)

# config name -> class name, resolved on first use by make_strategy
STRATEGY_CLASSES = {
    "fedavg": "FedAvg", "fedavgm": "FedAvgM", "fedprox": "FedProx", "fedadagrad": "FedAdagrad", "fedadam": "FedAdam",
    "fedyogi": "FedYogi",
}


def make_strategy(cfg, client_cfg):
    """The strategy named by ``cfg.name`` (a ``StrategyConfig``, validated by the config's schema),
    instructing clients with ``client_cfg`` (a ``ClientTrainConfig``)."""
    return __getattr__(STRATEGY_CLASSES[cfg.name])(cfg, client_cfg)


__all__ = sorted([*_LAZY, "STRATEGY_CLASSES", "make_strategy"])
