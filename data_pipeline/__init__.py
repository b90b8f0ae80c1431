"""data_pipeline: readers for real formats -> canonical Arrow tables -> splits, statistics,
partitions and TorchRec batches. Data flows one way; nothing downstream re-parses files.

The package exports are resolved on first use: a process that only needs ``Examples`` (a client
actor) or the CLI's argument parser does not pay for pandas and pyarrow.
"""

import logging as _logging

# torch.fx logs a deprecation notice at WARNING each time torchrec is imported; it is not ours to
# fix and it buries real messages on every CLI call.
_logging.getLogger("torch.fx._symbolic_trace").setLevel(_logging.ERROR)

_LAZY = {
    "ConfigError": "data_pipeline.errors", "DataFormatError": "data_pipeline.errors",
    "DatasetNotFoundError": "data_pipeline.errors", "FedrecError": "data_pipeline.errors",
    "ReadReport": "data_pipeline.errors", "InteractionData": "data_pipeline.schema",
    "Vocabulary": "data_pipeline.schema", "build_interactions": "data_pipeline.schema",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'data_pipeline' has no attribute {name!r}")


__all__ = sorted(_LAZY)
