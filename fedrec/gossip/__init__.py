"""Decentralized training's parts: the communication graph, mixing weights, every node's model
stacked on the driver, how local updates reach the nodes (``updates``: each node its
neighbourhood's row-wise mean), the exchange algorithms (D-PSGD, CHOCO-SGD, PowerGossip), node
evaluation, and how nodes' starts and updates cross Ray (``transport``).
``fedrec.algorithms.gossip`` drives them on the round loop."""

from fedrec.gossip.exchange import DPSGD, Choco, Exchange, PowerGossip
from fedrec.gossip.graphs import GraphReport, build_graph, social_edges
from fedrec.gossip.mixing import mixing_matrix, spectral_gap
from fedrec.gossip.nodes import NodeModels, select_nodes
from fedrec.gossip.updates import apply_updates

__all__ = ["DPSGD", "Choco", "Exchange", "GraphReport", "NodeModels", "PowerGossip", "apply_updates", "build_graph",
           "make_exchange", "mixing_matrix", "select_nodes", "social_edges", "spectral_gap"]


def make_exchange(cfg, w, degree, models: NodeModels, seed: int) -> Exchange:
    """The exchange a ``gossip`` config section names."""
    from fedrec.pipeline.codec import make_codec
    from fedrec.pipeline.wire import CompressionPlan

    c = cfg.compression
    if cfg.algorithm == "dpsgd":
        return DPSGD(w, degree)
    if cfg.algorithm == "powergossip":
        return PowerGossip(w, degree, cfg.consensus_lr, c.rank, models, seed)
    plan = CompressionPlan.of(make_codec(c.method, rank=c.rank, fraction=c.fraction), c.apply_to)
    return Choco(w, degree, cfg.consensus_lr, plan, models, seed)
