"""A client's training rows and the embedding rows they touch, cut once and cached.

An actor trains the same clients round after round; slicing a client's rows out of the shared
``Examples`` and finding the ids it touches (which is also what it uploads and what the simulated
clock prices) is done on first use and kept.
"""

from __future__ import annotations

import numpy as np

from data_pipeline.batches import Examples


class ClientData:
    def __init__(self, examples: Examples, partitions) -> None:
        """``partitions[client]``: the client's rows of ``examples`` (a list over all clients, or a
        dict over the clients an actor owns)."""
        self.examples = examples
        self.partitions = partitions
        self._cache: dict[int, tuple[Examples, dict[str, np.ndarray]]] = {}

    @property
    def spec(self):
        return self.examples.spec

    def client(self, client: int) -> tuple[Examples, dict[str, np.ndarray]]:
        """The client's examples and, per sparse feature, the sorted distinct ids they touch."""
        if client not in self._cache:
            ex = self.examples.take(self.partitions[client])
            self._cache[client] = (ex, {f: np.unique(ex.values[f]) for f in ex.spec.sparse_names})
        return self._cache[client]
