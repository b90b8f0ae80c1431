"""fedrec: federated recommender training on Ray with TorchRec.

Python API: ``fedrec.run(config)`` trains federated and returns a ``FederatedResult``;
``fedrec.load_config(path)`` reads a YAML run config into a typed ``FederatedConfig``.
"""

from __future__ import annotations

import data_pipeline as _data_pipeline  # noqa: F401  (quiets torch.fx's import-time warning first)

__version__ = "0.1.0"


def run(config, progress: bool = True, resume: bool = False):
    from fedrec.server import run as _run

    return _run(config, progress=progress, resume=resume)


def load_config(path, **overrides):
    from fedrec.config import load_config as _load

    return _load(path, **overrides)


__all__ = ["__version__", "load_config", "run"]
