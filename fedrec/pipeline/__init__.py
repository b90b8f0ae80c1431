"""The update pipeline: ordered client steps and server steps around aggregation (see ``base``)."""

from fedrec.pipeline.base import Aggregator, ClientContext, ClientStep, ServerContext, ServerStep
from fedrec.pipeline.compress import Compress, Decompress
from fedrec.pipeline.mean import WeightedMean
from fedrec.pipeline.pipeline import Arrivals, UpdatePipeline
from fedrec.pipeline.wire import EncodedUpdate, WireSchema

__all__ = [
    "Aggregator", "Arrivals", "ClientContext", "ClientStep", "Compress", "Decompress", "EncodedUpdate",
    "ServerContext", "ServerStep", "UpdatePipeline", "WeightedMean", "WireSchema", "build_pipeline",
]


def build_pipeline(cfg, state=None, tables=()) -> UpdatePipeline:
    """The pipeline a run config asks for. The default is FedAvg's weighted mean and no steps;
    compression, robust aggregation, privacy and secure aggregation add their steps here.
    ``state`` and ``tables`` (the model's initial state and its embedding tables) fix the wire
    layout of compressed updates. Compression is the last client step (it encodes what the
    others produced) and decompression the first server step."""
    client_steps, server_steps = [], []
    compression = getattr(cfg, "compression", None)
    if compression is not None and compression.method != "none":
        if state is None:
            raise ValueError("a compressed pipeline needs the model's state to lay out its wire format")
        schema = WireSchema.of(state, tables, whole_tables=not cfg.client.sparse_updates)
        client_steps.append(Compress(compression, schema))
        server_steps.insert(0, Decompress(compression, schema))
    return UpdatePipeline(client_steps, server_steps)
