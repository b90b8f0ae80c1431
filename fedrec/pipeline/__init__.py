"""The update pipeline: ordered client steps and server steps around aggregation (see ``base``)."""

from fedrec.pipeline.base import Aggregator, ClientContext, ClientStep, ServerContext, ServerStep
from fedrec.pipeline.mean import WeightedMean
from fedrec.pipeline.pipeline import Arrivals, UpdatePipeline

__all__ = [
    "Aggregator", "Arrivals", "ClientContext", "ClientStep", "ServerContext", "ServerStep", "UpdatePipeline",
    "WeightedMean", "build_pipeline",
]


def build_pipeline(cfg) -> UpdatePipeline:
    """The pipeline a run config asks for. The default is FedAvg's weighted mean and no steps;
    compression, robust aggregation, privacy and secure aggregation add their steps here."""
    del cfg
    return UpdatePipeline()
