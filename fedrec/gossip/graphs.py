"""Who talks to whom in decentralized training: the communication graph over the clients (nodes).

Synthetic topologies are networkx generators on nodes 0..n-1: ``ring`` (cycle), ``torus`` (a
periodic 2-D grid, a x b = n with a the largest divisor of n up to sqrt(n)), ``exponential``
(node i linked to i +- 2^k for every 2^k < n, as in Assran et al.'s SGP; degree ~2 log2 n) and
``complete``. ``social`` reads a real friendship graph (Last.fm ``user_friends.dat``, FilmTrust
``trust.txt`` made undirected) through ``data_pipeline.readers`` and maps its users to clients.

Gossip needs a connected graph (otherwise the components never agree). The rule for a social
graph, applied in this order and reported in ``GraphReport``:

1. an isolated user (no friend among the clients) gets one edge to a node of the largest
   component, drawn uniformly at random (seeded);
2. every other component that is not the largest gets one edge from a random member to a random
   node of the largest component.

The fewest edges that connect the graph, none of them between two added-to nodes, so the
friendship structure is what the mixing mostly follows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import networkx as nx
import numpy as np

from data_pipeline.errors import ConfigError

TOPOLOGIES = ("ring", "torus", "exponential", "complete", "social")


@dataclass
class GraphReport:
    nodes: int
    edges: int  # after connecting
    source: str  # the topology, or the file the social graph came from
    isolated: int = 0  # users without a friend among the clients (connected by rule 1)
    components: int = 1  # connected components before connecting (isolated users included)
    added_edges: int = 0
    mean_degree: float = 0.0
    max_degree: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def torus_shape(n: int) -> tuple[int, int]:
    a = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return a, n // a


def synthetic_graph(topology: str, n: int) -> nx.Graph:
    if n < 2:
        raise ConfigError("gossip.topology", f"gossip needs at least 2 nodes, got {n}")
    if topology == "ring":
        return nx.cycle_graph(n)
    if topology == "complete":
        return nx.complete_graph(n)
    if topology == "torus":
        a, b = torus_shape(n)
        if a == 1:
            raise ConfigError("gossip.topology", f"{n} nodes (a prime) make no 2-D torus; use ring or exponential")
        grid = nx.grid_2d_graph(a, b, periodic=True)
        return nx.convert_node_labels_to_integers(grid, ordering="sorted")
    if topology == "exponential":
        g = nx.empty_graph(n)
        hops = [2**k for k in range(int(math.log2(n - 1)) + 1)] if n > 2 else [1]
        g.add_edges_from((i, (i + h) % n) for i in range(n) for h in hops if (i + h) % n != i)
        return g
    raise ConfigError("gossip.topology", f"unknown topology {topology!r}; expected one of {TOPOLOGIES}")


def connect(g: nx.Graph, seed: int) -> tuple[nx.Graph, dict]:
    """``g`` made connected by the module's rule; returns the graph and what was done."""
    rng = np.random.default_rng([seed, 0x6055])
    comps = sorted(nx.connected_components(g), key=lambda c: (-len(c), min(c)))
    main = np.array(sorted(comps[0]))
    isolated = [c for c in comps[1:] if len(c) == 1]
    others = [c for c in comps[1:] if len(c) > 1]
    g = g.copy()
    added = 0
    for comp in isolated + others:
        members = sorted(comp)
        g.add_edge(int(members[rng.integers(len(members))]), int(main[rng.integers(len(main))]))
        added += 1
    return g, {"isolated": len(isolated), "components": len(comps), "added_edges": added}


def social_edges(topology_graph: str | None, data_cfg, client_users: np.ndarray) -> tuple[np.ndarray, str]:
    """The friendship graph of the workload's dataset as client-index pairs. ``client_users``:
    the user (encoded id, ``FederatedData.client_users``) behind each client."""
    from data_pipeline.datasets import resolve_data_path
    from data_pipeline.readers import load_interactions

    try:
        from data_pipeline.readers import read_filmtrust_trust, read_lastfm_friends
    except ImportError:  # pragma: no cover - depends on which readers are installed
        raise ConfigError("gossip.topology", "topology social needs the Last.fm / FilmTrust graph readers "
                          "(data_pipeline.readers.read_lastfm_friends, read_filmtrust_trust)") from None
    if (client_users < 0).any():
        raise ConfigError("data.partition", "topology social maps users to nodes: use the natural partition")
    fmt = data_cfg.format
    source = resolve_data_path(topology_graph) if topology_graph else resolve_data_path(data_cfg.path)
    inter = load_interactions(resolve_data_path(data_cfg.path), fmt, columns=data_cfg.columns)
    if fmt == "lastfm":
        graph = read_lastfm_friends(source, inter)
    elif fmt == "filmtrust":
        graph = read_filmtrust_trust(source, inter, undirected=True)
    else:
        raise ConfigError("gossip.topology", f"topology social reads the friendship graph of a lastfm or filmtrust "
                          f"dataset, not data.format {fmt!r}")
    node_of_user = np.full(graph.num_users + 1, -1, dtype=np.int64)
    node_of_user[client_users] = np.arange(len(client_users))
    pairs = node_of_user[graph.edges]
    pairs = pairs[(pairs >= 0).all(axis=1)]  # users without training rows are not nodes
    return pairs, str(Path(graph.source) if graph.source else source)


def build_graph(topology: str, n: int, seed: int, edges: np.ndarray | None = None, source: str = "") -> tuple[nx.Graph, GraphReport]:
    """The communication graph on nodes 0..n-1 (``edges``: the social graph's node pairs)."""
    if topology == "social":
        g = nx.empty_graph(n)
        g.add_edges_from((int(a), int(b)) for a, b in edges if a != b)
        g, done = connect(g, seed)
    else:
        g, done = synthetic_graph(topology, n), {}
        source = topology
    degrees = np.array([d for _, d in g.degree()])
    report = GraphReport(n, g.number_of_edges(), source, mean_degree=float(degrees.mean()),
                         max_degree=int(degrees.max()), **done)
    return g, report
