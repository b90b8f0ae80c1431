"""fedrec: federated recommender training on Ray with TorchRec.

Python API::

    import fedrec
    cfg = fedrec.load_config("configs/ml100k_fedavg.yaml", rounds=10)
    result = fedrec.run(cfg)            # FederatedResult (or the mode's subclass)
    print(result.final_auc, result.validation_auc)

The heavy modules (torch, Ray) are imported on first use, so ``import fedrec`` and ``fedrec --help``
stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import data_pipeline as _data_pipeline  # noqa: F401  (quiets torch.fx's import-time warning first)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from fedrec.config import FederatedConfig
    from fedrec.runtime.result import FederatedResult


def run(config: FederatedConfig | dict, *, progress: bool = False, resume: bool = False, data=None,
        pool=None, trackers=None, model_fn=None) -> FederatedResult:
    """Train a federated run exactly as ``fedrec train --config`` does, dispatching on ``config.mode``.

    ``config``: a ``FederatedConfig`` (see ``load_config``) or plain data in the YAML schema (validated
    here; a bad field raises ``ConfigError`` naming it). ``resume`` continues from the config's
    ``checkpoint_dir``. ``data`` (a ``FederatedData``) and ``pool`` (a started ``ClientPool``) let
    several runs share one load of the data and one set of actors. ``trackers``: objects with
    ``log(run_name, round, row)`` and ``close()`` that see every round's row (metrics every
    ``eval_every`` rounds), e.g. to report to a tuner. ``model_fn(spec, model_cfg, seed)`` builds a
    custom ``torch.nn.Module`` over TorchRec batches (``module(dense, kjt)`` -> one logit per row)
    whose embeddings live in EmbeddingBagCollections, one table per feature named ``t_<feature>``
    or otherwise; it trains on the per-client path, with sparse row updates and private tables.

    Returns the mode's result: ``FederatedResult`` (sync), ``FedBuffResult``, ``FELResult`` or
    ``FairnessResult``; ``final_auc`` is the test AUC, ``validation_auc`` the validation AUC.
    """
    from fedrec.config import FederatedConfig, config_from_dict

    cfg = config if isinstance(config, FederatedConfig) else config_from_dict(config)
    if pool is not None:
        return _import_run_config()(cfg, data, pool, progress=progress, resume=resume, trackers=trackers,
                                    model_fn=model_fn)
    from fedrec.runtime.startup import started_pool

    # Ray and the actors start while torch and TorchRec import and the data loads (fedrec.runtime.startup).
    with started_pool(cfg, data) as (pool, data):
        return _import_run_config()(cfg, data, pool, progress=progress, resume=resume, trackers=trackers,
                                    model_fn=model_fn)


def _import_run_config():
    from fedrec.algorithms import run_config

    return run_config


def load_config(path, **overrides) -> FederatedConfig:
    """Read and validate a YAML run config; ``overrides`` (None values ignored) replace fields,
    dotted names reaching into sections (``load_config(p, rounds=3, **{"client.lr": 0.1})``)."""
    from fedrec.config import load_config as _load

    return _load(path, **overrides)


_LAZY = {
    "FederatedConfig": "fedrec.config", "DataConfig": "fedrec.config", "EnsembleConfig": "fedrec.config",
    "AsyncConfig": "fedrec.config", "FairnessConfig": "fedrec.config", "ModelConfig": "fedrec.model",
    "ClientTrainConfig": "fedrec.client.local", "StrategyConfig": "fedrec.strategies.base",
    "FederatedResult": "fedrec.runtime.result", "FedBuffResult": "fedrec.algorithms.fedbuff",
    "FELResult": "fedrec.algorithms.fel", "FairnessResult": "fedrec.algorithms.fairness",
    "ClientPool": "fedrec.runtime.pool", "FederatedData": "fedrec.runtime.data",
    "load_federated_data": "fedrec.runtime.data", "UpdatePipeline": "fedrec.pipeline",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fedrec' has no attribute {name!r}")


__all__ = ["__version__", "load_config", "run", *_LAZY]
