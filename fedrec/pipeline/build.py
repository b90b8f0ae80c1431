"""The update pipeline a run config asks for: its attack, privacy, secure-aggregation,
robust-aggregation and compression steps, in order."""

from __future__ import annotations

from fedrec.pipeline.base import ModelShapes
from fedrec.pipeline.compress import Compress, Decompress
from fedrec.pipeline.pipeline import UpdatePipeline
from fedrec.pipeline.wire import WireSchema


def build_pipeline(cfg, model: ModelShapes | None = None, num_clients: int | None = None, *, state=None,
                   tables=()) -> UpdatePipeline:
    """The pipeline a run config asks for. The default is FedAvg's weighted mean and no steps.
    ``model`` (shapes only) and ``num_clients`` are what attacks, privacy and secure aggregation
    need to build their steps; ``state`` and ``tables`` (the shared model's initial state and its
    embedding tables, private ones left out) fix the wire layout of compressed updates.

    Client steps: attacks, DP clipping and local noise, then compression last (it encodes what
    the others produced). Server steps: decompression first, then the omniscient attacks and
    DP's adaptive clipping and central noise; the aggregator is secure aggregation or the
    configured (robust) rule."""
    pipeline = UpdatePipeline()
    add_trust_steps(pipeline, cfg, model, num_clients)
    compression = getattr(cfg, "compression", None)
    if compression is not None and compression.method != "none":
        if state is None:
            raise ValueError("a compressed pipeline needs the model's state to lay out its wire format")
        schema = WireSchema.of(state, tables, whole_tables=not cfg.client.sparse_updates)
        pipeline.client_steps.append(Compress(compression, schema))
        pipeline.server_steps.insert(0, Decompress(compression, schema))
    return pipeline
def add_trust_steps(pipeline: UpdatePipeline, cfg, model: ModelShapes | None, num_clients: int | None) -> None:
    """Attacks (client steps, or server steps for the omniscient ones), then DP-FedAvg (clip and
    local noise on the client, adaptive clipping and central noise on the server), and the
    aggregator: secure aggregation, or the configured (robust) rule. Order matters: attackers
    poison before clipping, and central noise goes on the securely aggregated sum."""
    attack, aggregator = getattr(cfg, "attack", None), getattr(cfg, "aggregator", None)
    privacy, secagg = getattr(cfg, "privacy", None), getattr(cfg, "secure_aggregation", None)
    if attack is not None and attack.kind != "none":
        from fedrec.attacks import attack_steps

        client, server = attack_steps(cfg, num_clients, model)
        pipeline.client_steps += client
        pipeline.server_steps += server
    if privacy is not None:
        from fedrec.privacy import privacy_steps

        client, server = privacy_steps(cfg, num_clients, model)
        pipeline.client_steps += client
        pipeline.server_steps += server
    if secagg is not None and secagg.enabled:
        from fedrec.secagg import SecureAggregator

        pipeline.aggregator = SecureAggregator(model, secagg)
    elif aggregator is not None and aggregator.robust:
        from fedrec.pipeline.robust import make_aggregator

        pipeline.aggregator = make_aggregator(aggregator)
