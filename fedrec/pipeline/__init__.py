"""The update pipeline: ordered client steps and server steps around aggregation (see ``base``).
Exports resolve on first use (``fedrec.lazy``): the run config imports the robust aggregator's
config without torch."""

from __future__ import annotations

from fedrec.lazy import exports_of, lazy_exports

_LAZY = exports_of({
    "base": ("Aggregator", "ClientContext", "ClientStep", "ModelShapes", "ServerContext", "ServerStep"),
    "build": ("add_trust_steps", "build_pipeline"),
    "compress": ("Compress", "Decompress"),
    "mean": ("WeightedMean",),
    "pipeline": ("Arrivals", "UpdatePipeline"),
    "wire": ("EncodedUpdate", "WireSchema"),
})
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
