"""Disaggregated preprocessing (``fedrec data preprocess``): parse and transform in a pool of Ray
Data workers, stream TorchRec batches to a trainer, and measure how long the trainer waits.

Exports load on first use: the CLI imports this package to add its command, and building the
parser must not pull in torch or Ray.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PreprocessConfig": "data_pipeline.preprocess.config",
    "make_config": "data_pipeline.preprocess.config",
    "InProcessStream": "data_pipeline.preprocess.stream",
    "open_stream": "data_pipeline.preprocess.stream",
    "RayDataStream": "data_pipeline.preprocess.ray_stream",
    "PreprocessResult": "data_pipeline.preprocess.run",
    "StreamTrainer": "data_pipeline.preprocess.run",
    "TrainerOptions": "data_pipeline.preprocess.run",
    "run_preprocess": "data_pipeline.preprocess.run",
    "train_on_stream": "data_pipeline.preprocess.run",
    "shard_units": "data_pipeline.preprocess.units",
    "split_ranges": "data_pipeline.preprocess.units",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
