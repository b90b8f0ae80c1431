"""How a round's local training reaches the node models: every node applies its neighbourhood's
averaged update, row by row, as FedAvg's server does (``fedrec.updates``).

A node's update touches few embedding rows (an ML-100K user rates ~60 of 1,682 items; a Last.fm
user listens to ~50 of 17,632 artists). Adding each node's delta to its own model and letting the
exchange average whole models (plain D-PSGD) divides a row's update among all N nodes, every
untouched copy counting as a zero delta, and the dense weights' among all nodes, trained or not:
on the complete graph that is FedAvg of whole models over every node, which stays at chance AUC
on ML-100K and Last.fm where FedAvg's row-wise mean learns. Here node i applies instead

    u_i = sum_j w_ij n_j d_j / sum_j w_ij n_j

over its neighbours j (itself included) that trained this round (n_j: their examples), per dense
tensor, and per embedding row over those whose data touched that row; nothing where none did. It
is a convex combination of its neighbours' deltas, so no update is amplified. On the complete
graph with uniform weights every node applies FedAvg's mean update (and D-PSGD's mixing then
leaves every node on the FedAvg model). Each trainer sends its update (dense deltas, touched rows
and their ids, its weight) to each neighbour: ``apply_updates`` returns those bytes (the encoded
sizes when the run compresses the update messages: ``fedrec.gossip.transport.GossipPipeline``).
"""

from __future__ import annotations

import numpy as np
import torch

from fedrec.gossip.nodes import NodeModels
from fedrec.threads import single_threaded
from fedrec.updates import ClientUpdate


@single_threaded
@torch.no_grad()
def apply_updates(models: NodeModels, updates: list[ClientUpdate], w: torch.Tensor, degree: np.ndarray,
                  budget: int = 1 << 20, sizes: dict[int, int] | None = None) -> np.ndarray:
    """Apply the round's ``updates`` to every node as its neighbourhood's weighted mean (in place);
    returns the bytes each node sent ([N]). ``w``: the mixing weights as a torch sparse matrix
    (``fedrec.gossip.mixing.as_torch``; the exchange holds it as ``Exchange.w``). ``budget``:
    entries ([N, rows, width]) of a block of rows. ``sizes``: each sender's message size as sent
    (client -> bytes; an encoded update's), when it is not the update's own ``nbytes()``."""
    sent = np.zeros(models.n, dtype=np.int64)
    updates = [u for u in updates if u.weight > 0]
    if not updates:
        return sent
    for u in updates:
        size = sizes[u.client] if sizes is not None else u.nbytes()
        sent[u.client] += int(degree[u.client]) * (size + 8)  # + its weight
    for name, x in models.x.items():
        if name in models.tables:
            parts = [(u.client, u.weight, *u.sparse[name]) for u in updates if name in u.sparse]
        else:
            parts = [(u.client, u.weight, torch.zeros(1, dtype=torch.int64), u.dense[name].reshape(1, -1))
                     for u in updates if name in u.dense]
        if parts:  # a table as [N, rows, dim]; a dense tensor as one row of all its entries
            shape = (models.n, -1, x.shape[-1]) if name in models.tables else (models.n, 1, x[0].numel())
            _apply(x.view(shape), parts, w, budget)
    return sent


def _apply(x: torch.Tensor, parts: list, w: torch.Tensor, budget: int) -> None:
    """``x`` [N, rows, width] += each node's weighted neighbourhood mean of ``parts`` (sender,
    weight, row ids, rows [ids, width]), a block of rows at a time: W (weighted deltas) over
    W (weights), both scattered into the block's [N, rows] only (no temporary the size of x)."""
    n, height, width = x.shape
    node = torch.cat([torch.full((len(ids),), c, dtype=torch.int64) for c, _, ids, _ in parts])
    ids = torch.cat([i for _, _, i, _ in parts])
    weight = torch.cat([torch.full((len(i),), float(wt)) for _, wt, i, _ in parts])
    rows = torch.cat([r.reshape(len(i), width) for _, _, i, r in parts]).float() * weight.unsqueeze(1)
    ids, order = torch.sort(ids, stable=True)
    node, weight, rows = node[order], weight[order], rows[order]
    per_block = max(1, budget // (n * width))
    bounds = torch.searchsorted(ids, torch.arange(0, height + per_block, per_block)).tolist()
    for a, lo, hi in zip(range(0, height, per_block), bounds, bounds[1:]):
        if lo == hi:  # nobody touched these rows
            continue
        b = min(a + per_block, height)
        at = (node[lo:hi], ids[lo:hi] - a)
        den = torch.zeros(n, b - a).index_put_(at, weight[lo:hi], accumulate=True)
        num = torch.zeros(n, b - a, width).index_put_(at, rows[lo:hi], accumulate=True)
        den = torch.sparse.mm(w, den)
        num = torch.sparse.mm(w, num.view(n, -1)).view(n, b - a, width)
        x[:, a:b] += num / den.clamp_min(1e-30).unsqueeze(2)  # 0 where no neighbour touched a row (num is 0 there)
