"""The default aggregator: FedAvg's example-weighted mean (rows averaged over the clients that
touched them). A sum decomposes, so actors may pre-aggregate and it needs no per-client updates."""

from __future__ import annotations

from fedrec.pipeline.base import Aggregator, ServerContext
from fedrec.updates import AggregatedUpdate, ClientUpdate


class WeightedMean(Aggregator):
    name = "mean"
    needs_per_client = False

    def aggregate(self, updates: list[ClientUpdate], ctx: ServerContext) -> AggregatedUpdate:
        return AggregatedUpdate.from_clients(updates)
