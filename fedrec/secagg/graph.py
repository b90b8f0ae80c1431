"""Who shares masks with whom.

Bonawitz et al. (CCS 2017) pair every client with every other: n - 1 masks, n - 1 shares each.
SecAgg+ (Bell et al., CCS 2020) uses a sparse random graph instead: a Harary graph of degree
``k`` (each node joined to its ``k/2`` nearest on each side of a ring) over a random order of the
clients, so that each client masks with and shares to only ``k = O(log n)`` neighbours while the
sum stays private against a bounded share of corrupt clients and dropouts.
"""

from __future__ import annotations

import numpy as np


def neighbours(clients: list[int], degree: int | None, rng: np.random.Generator) -> dict[int, list[int]]:
    """Each client's neighbours (sorted). ``degree`` None, or at least ``n - 1``: the complete
    graph. Otherwise a Harary graph of even degree (odd degrees round up) on a random ring."""
    n = len(clients)
    if degree is None or degree >= n - 1:
        return {c: sorted(set(clients) - {c}) for c in clients}
    half = -(-degree // 2)
    ring = [clients[i] for i in rng.permutation(n)]
    out = {c: set() for c in clients}
    for i, c in enumerate(ring):
        for step in range(1, half + 1):
            other = ring[(i + step) % n]
            out[c].add(other)
            out[other].add(c)
    return {c: sorted(v) for c, v in out.items()}
