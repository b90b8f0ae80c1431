"""Federated algorithms on the one round loop; ``run_config`` dispatches a config by its ``mode``."""

from __future__ import annotations

from data_pipeline.errors import ConfigError
from fedrec.algorithms.fairness import FairnessResult, run_fairness
from fedrec.algorithms.fedbuff import FedBuffResult, run_fedbuff
from fedrec.algorithms.fel import FELResult, run_fel
from fedrec.algorithms.gossip import GossipResult, run_gossip
from fedrec.algorithms.sync import run_sync

RUNNERS = {"sync": run_sync, "fedbuff": run_fedbuff, "fel": run_fel, "fairness": run_fairness, "gossip": run_gossip}


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
    return RUNNERS[cfg.mode](cfg, data, pool, progress=progress, resume=resume, after_submit=after_submit,
                             trackers=trackers, **extra)


__all__ = ["FELResult", "FairnessResult", "FedBuffResult", "GossipResult", "RUNNERS", "run_config", "run_fairness",
           "run_fedbuff", "run_fel", "run_gossip", "run_sync"]
