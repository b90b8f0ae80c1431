"""Social graphs between users (Last.fm friends, FilmTrust trust), in an interaction log's user ids.

A graph reader is given the interaction dataset (or its user vocabulary) the graph belongs to and
returns edges between *encoded* user ids of that vocabulary (1..num_users; 0 is the out-of-vocabulary
bucket and never appears in an edge). With ``natural_partition`` over users, client ``k`` holds the
user encoded as ``k + 1``, so ``edges - 1`` are client indices: a gossip topology reads the graph
without any id translation of its own.

What happens to users that are not on both sides:

* a user named in the graph file but absent from the interactions has no encoded id: every edge
  touching them is dropped, and they are counted in ``dropped_edges`` and listed (raw ids) in
  ``unknown_users``;
* a user of the interactions with no edge left is *isolated*: still a node (``num_users`` counts
  them), listed by ``isolated_users()``; a consumer decides what such a node does (a gossip
  topology, say, falls back to random peers for them).

Self-loops are dropped (counted in ``self_loops``); a repeated edge is kept once. ``undirected=True``
makes every edge two-way and stores each pair once as ``(low, high)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from data_pipeline.errors import ReadReport
from data_pipeline.schema import InteractionData, Vocabulary


@dataclass
class SocialGraph:
    """User-user edges in the encoded user id space of an interaction dataset (see module doc)."""

    name: str
    edges: np.ndarray  # (E, 2) int64 encoded user ids; undirected: each pair once, low id first
    num_users: int  # users of the interaction vocabulary (nodes 1..num_users)
    directed: bool
    raw_edges: int  # edge lines read from the file
    dropped_edges: int  # edges with an endpoint absent from the interactions
    unknown_users: np.ndarray  # raw ids in the graph file that the interactions do not have
    self_loops: int = 0
    source: str = ""
    report: ReadReport | None = field(default=None, repr=False)

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[0])

    def degrees(self) -> np.ndarray:
        """Edges per user, indexed by encoded id (entry 0, the OOV bucket, is always 0); for a
        directed graph, in- plus out-degree."""
        return np.bincount(self.edges.ravel(), minlength=self.num_users + 1)

    def isolated_users(self) -> np.ndarray:
        """Encoded ids of the interaction users with no edge."""
        return np.flatnonzero(self.degrees()[1:] == 0) + 1

    def adjacency(self) -> sp.csr_matrix:
        """0-based ``num_users x num_users`` 0/1 matrix (row ``u - 1`` is encoded user ``u``);
        symmetric when the graph is undirected."""
        src, dst = self.edges[:, 0] - 1, self.edges[:, 1] - 1
        if not self.directed:
            src, dst = np.r_[src, dst], np.r_[dst, src]
        n = self.num_users
        return sp.csr_matrix((np.ones(src.size, dtype=np.float32), (src, dst)), shape=(n, n))

    def to_dict(self) -> dict:
        """Counts for ``fedrec data stats``."""
        deg = self.degrees()[1:]
        return {
            "name": self.name,
            "directed": self.directed,
            "raw_edges": self.raw_edges,
            "edges": self.num_edges,
            "dropped_edges": self.dropped_edges,
            "unknown_users": int(self.unknown_users.size),
            "self_loops": self.self_loops,
            "users_with_edges": int((deg > 0).sum()),
            "isolated_users": int((deg == 0).sum()),
            "mean_degree": float(deg.mean()) if deg.size else 0.0,
        }


def user_vocabulary(users: InteractionData | Vocabulary | None, raw: np.ndarray) -> Vocabulary:
    """The vocabulary edges are encoded with: the interaction data's, or (``None``) one built from
    the graph's own ids, for a graph read on its own."""
    if isinstance(users, InteractionData):
        return users.vocabs["user"]
    if isinstance(users, Vocabulary):
        return users
    return Vocabulary.fit("user", raw.ravel())


def build_social_graph(
    name: str,
    raw_pairs: np.ndarray,
    users: InteractionData | Vocabulary | None,
    *,
    undirected: bool,
    source: str | os.PathLike = "",
    report: ReadReport | None = None,
) -> SocialGraph:
    """Encode raw ``(from, to)`` id pairs with the interaction vocabulary (see module doc)."""
    raw_pairs = np.asarray(raw_pairs).reshape(-1, 2)
    vocab = user_vocabulary(users, raw_pairs)
    codes = vocab.encode(raw_pairs.ravel()).reshape(-1, 2)
    unknown = codes == 0
    known = ~unknown.any(axis=1)
    unknown_users = np.unique(raw_pairs[unknown]) if unknown.any() else np.empty(0, dtype=raw_pairs.dtype)
    kept = codes[known]
    loops = kept[:, 0] == kept[:, 1]
    kept = kept[~loops]
    if undirected:
        kept = np.sort(kept, axis=1)
    kept = np.unique(kept, axis=0) if kept.size else kept.reshape(0, 2)
    return SocialGraph(
        name=name,
        edges=kept.astype(np.int64),
        num_users=len(vocab) - 1,
        directed=not undirected,
        raw_edges=int(raw_pairs.shape[0]),
        dropped_edges=int((~known).sum()),
        unknown_users=unknown_users,
        self_loops=int(loops.sum()),
        source=str(source),
        report=report,
    )
