"""Graph samplers over the bipartite user-item graph: centrality, random walk, forest fire.

Each orders the graph's nodes (users and items together) by when the method reaches them; an
interaction is kept once both its user and its item are reached, so every sample is the subgraph
induced by a prefix of that node order, cut at exactly the requested number of interactions.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import scipy.sparse as sp

from data_pipeline.schema import InteractionData
from sampling._validate import check_rate
from sampling.samplers.base import Sampler, zero_based


class GraphSampler(Sampler):
    def _priority(self, data: InteractionData, rng: np.random.Generator) -> np.ndarray:
        user, item = zero_based(data)
        graph = _bipartite(user, item, data.num_users, data.num_items)
        arrival = np.asarray(self._node_order(graph, rng), dtype=np.float64)  # smaller = reached earlier
        return -np.maximum(arrival[user], arrival[data.num_users + item])

    def _node_order(self, graph: sp.csr_matrix, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


class Centrality(GraphSampler):
    """Nodes drawn without replacement with probability proportional to their PageRank."""

    name = "centrality"

    def __init__(self, seed: int = 0, damping: float = 0.85, iterations: int = 30) -> None:
        super().__init__(seed)
        self.damping = damping
        self.iterations = iterations

    def _node_order(self, graph: sp.csr_matrix, rng: np.random.Generator) -> np.ndarray:
        check_rate(self.damping, "damping")
        rank = pagerank(graph, self.damping, self.iterations)
        # Efraimidis-Spirakis: the largest u ** (1 / w) first is weighted sampling without replacement.
        keys = np.log(rng.random(rank.size)) / np.maximum(rank, 1e-300)
        return np.argsort(np.argsort(-keys))


class RandomWalk(GraphSampler):
    """Many walkers with restarts to their start node; nodes ordered by first visit."""

    name = "random-walk"

    def __init__(self, seed: int = 0, walkers: int = 256, restart: float = 0.15, max_steps: int = 2000) -> None:
        super().__init__(seed)
        self.walkers = walkers
        self.restart = restart
        self.max_steps = max_steps

    def _node_order(self, graph: sp.csr_matrix, rng: np.random.Generator) -> np.ndarray:
        check_rate(self.restart, "restart")
        n = graph.shape[0]
        degree = np.diff(graph.indptr)
        live = np.flatnonzero(degree)
        start = rng.choice(live, size=min(self.walkers, live.size), replace=False)
        never = float(n * (self.max_steps + 2))
        arrival = np.full(n, never)
        arrival[start] = np.arange(start.size)
        current = start.copy()
        for step in range(1, self.max_steps + 1):
            offset = (rng.random(current.size) * degree[current]).astype(np.int64)
            current = graph.indices[graph.indptr[current] + offset]
            restart = rng.random(current.size) < self.restart
            current[restart] = start[restart]
            fresh = arrival[current] == never
            arrival[current[fresh]] = step * start.size + np.flatnonzero(fresh)
            if not (arrival[live] == never).any():
                break
        return arrival  # nodes never reached share one late time; the base's random key orders them


class ForestFire(GraphSampler):
    """Forest-fire burning (Leskovec & Faloutsos): each burning node ignites a geometric number of
    unburnt neighbours (mean p / (1 - p)); a new random seed is lit whenever the fire dies out."""

    name = "forest-fire"

    def __init__(self, seed: int = 0, forward: float = 0.7) -> None:
        super().__init__(seed)
        self.forward = forward

    def _node_order(self, graph: sp.csr_matrix, rng: np.random.Generator) -> np.ndarray:
        p = check_rate(self.forward, "forward")
        n = graph.shape[0]
        arrival = np.full(n, -1, dtype=np.int64)
        seeds = iter(rng.permutation(n))
        queue: deque[int] = deque()
        clock = 0
        while clock < n:
            if not queue:
                node = next(s for s in seeds if arrival[s] < 0)
                arrival[node] = clock
                clock += 1
                queue.append(node)
            node = queue.popleft()
            nbrs = graph.indices[graph.indptr[node] : graph.indptr[node + 1]]
            nbrs = nbrs[arrival[nbrs] < 0]
            count = min(nbrs.size, rng.geometric(1.0 - p) - 1 if p < 1 else nbrs.size)
            for nb in rng.choice(nbrs, size=count, replace=False) if count else ():
                arrival[nb] = clock
                clock += 1
                queue.append(nb)
        return arrival


def _bipartite(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Symmetric adjacency: nodes 0..U-1 are users, U..U+I-1 items (duplicate edges merged)."""
    n = n_users + n_items
    rows = np.r_[user, n_users + item]
    cols = np.r_[n_users + item, user]
    graph = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(n, n))
    graph.sum_duplicates()
    graph.data[:] = 1.0
    return graph


def pagerank(graph: sp.csr_matrix, damping: float = 0.85, iterations: int = 30) -> np.ndarray:
    n = graph.shape[0]
    degree = np.asarray(graph.sum(axis=1)).ravel()
    inv = np.divide(1.0, degree, out=np.zeros(n), where=degree > 0)
    rank = np.full(n, 1.0 / n)
    for _ in range(iterations):
        spread = graph.T @ (rank * inv)
        dangling = rank[degree == 0].sum()
        rank = (1.0 - damping) / n + damping * (spread + dangling / n)
    return rank
