"""Federated algorithms on the one round loop; ``run_config`` dispatches a config by its ``mode``.

Each mode's module is imported when it runs (``fedrec.lazy``): FEL's clustering (scikit-learn)
and gossip's graphs (networkx) cost a plain sync run ~1.6 s of start-up otherwise."""

from __future__ import annotations

import importlib

from data_pipeline.errors import ConfigError
from fedrec.lazy import exports_of, lazy_exports

# mode -> (module, runner)
RUNNERS = {"sync": ("sync", "run_sync"), "fedbuff": ("fedbuff", "run_fedbuff"), "fel": ("fel", "run_fel"),
           "fairness": ("fairness", "run_fairness"), "gossip": ("gossip", "run_gossip")}

_LAZY = exports_of({
    "fairness": ("FairnessResult", "run_fairness"), "fedbuff": ("FedBuffResult", "run_fedbuff"),
    "fel": ("FELResult", "run_fel"), "gossip": ("GossipResult", "run_gossip"), "sync": ("run_sync",),
})
__getattr__ = lazy_exports(__name__, _LAZY)


def run_config(cfg, data=None, pool=None, *, progress: bool = False, resume: bool = False, after_submit=None,
               trackers=None, model_fn=None):
    """Train ``cfg`` by its mode and return the mode's result type. ``trackers``: objects with
    ``log(run_name, round, row)`` and ``close()`` that see every round's row. ``model_fn(spec,
    model_cfg, seed) -> torch.nn.Module``: a custom model (modes sync and fedbuff)."""
    extra = {}
    if model_fn is not None:
        if cfg.mode not in ("sync", "fedbuff"):
            raise ConfigError("mode", f"a custom model_fn runs in modes sync and fedbuff, not {cfg.mode!r}")
        extra["model_fn"] = model_fn
    return runner_of(cfg.mode)(cfg, data, pool, progress=progress, resume=resume, after_submit=after_submit,
                               trackers=trackers, **extra)


def runner_of(mode: str):
    """The function that trains a config of ``mode`` (importing its module)."""
    module, name = RUNNERS[mode]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted([*_LAZY, "RUNNERS", "run_config", "runner_of"])
