"""data_pipeline: readers for real formats -> canonical Arrow tables -> splits, statistics,
partitions and TorchRec batches. Data flows one way; nothing downstream re-parses files."""

import logging as _logging

# torch.fx logs a deprecation notice at WARNING each time torchrec is imported; it is not ours to
# fix and it buries real messages on every CLI call.
_logging.getLogger("torch.fx._symbolic_trace").setLevel(_logging.ERROR)

from data_pipeline.errors import (  # noqa: E402
    ConfigError,
    DataFormatError,
    DatasetNotFoundError,
    FedrecError,
    ReadReport,
)
from data_pipeline.schema import InteractionData, Vocabulary, build_interactions  # noqa: E402

__all__ = [
    "ConfigError",
    "DataFormatError",
    "DatasetNotFoundError",
    "FedrecError",
    "InteractionData",
    "ReadReport",
    "Vocabulary",
    "build_interactions",
]
