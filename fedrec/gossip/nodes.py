"""Every node's model, held on the driver as one stacked tensor per parameter.

N nodes of one architecture are ``x[name]`` of shape [N, *shape]: one allocation per parameter
instead of N models, so mixing is a sparse matrix product over the node axis, compression runs
batched over nodes, and a node's training input (its dense weights and the embedding rows its
data touches, a ``ClientStart``) is a slice. The actors train the selected nodes from those slices
(``ClientPool.submit_from``) and send back ordinary client updates, which
``fedrec.gossip.updates.apply_updates`` applies (each node its neighbourhood's mean). Memory
is N x the model (ML-100K's 943 nodes: ~106 MB).
"""

from __future__ import annotations

import numpy as np
import torch

from fedrec.client.data import ClientData
from fedrec.gossip.transport import PortableStart
from fedrec.threads import single_threaded
from fedrec.updates import ClientStart, State


class NodeModels:
    def __init__(self, state: State, n: int, tables: dict[str, str], data=None) -> None:
        self.n = n
        self.tables = dict(tables)  # state name -> feature
        self.x = {k: v.detach().unsqueeze(0).repeat(n, *([1] * v.dim())) for k, v in state.items()}
        self._clients = ClientData(data.train, data.partitions) if data is not None else None

    @property
    def dense_names(self) -> list[str]:
        return [k for k in self.x if k not in self.tables]

    def ids(self, node: int) -> dict[str, torch.Tensor]:
        """The table rows node ``node``'s training data touches."""
        touched = self._clients.client(node)[1]
        return {n: torch.from_numpy(touched[f]) for n, f in self.tables.items()}

    def start(self, node: int) -> ClientStart:
        """What the node trains from: its dense weights and its rows (copies; they cross to the
        actors as numpy, ``fedrec.gossip.transport``)."""
        ids = self.ids(node)
        return PortableStart({k: self.x[k][node].clone() for k in self.dense_names},
                           {k: self.x[k][node, ids[k]].clone() for k in self.tables})

    def mean(self) -> State:
        """The averaged model (what gossip's consensus converges to)."""
        return {k: v.mean(0) for k, v in self.x.items()}

    @single_threaded
    @torch.no_grad()
    def consensus_distance(self) -> float:
        """(1/N) sum_i ||x_i - mean||^2 over all parameters: 0 when every node agrees. Computed a
        block of ~128 KB columns at a time, so the temporaries stay in cache (4x faster than
        whole-tensor arithmetic on ML-100K's 943 nodes; the same sum up to float rounding)."""
        total = 0.0
        width = max(1, (1 << 17) // self.n)
        for v in self.x.values():
            flat = v.view(self.n, -1)
            for lo in range(0, flat.shape[1], width):
                block = flat[:, lo : lo + width]
                total += float(((block - block.mean(0, keepdim=True)) ** 2).sum())
        return total / self.n

    def flat(self, name: str) -> torch.Tensor:
        """``x[name]`` viewed as [N, entries] (mixing multiplies it by W in place)."""
        return self.x[name].view(self.n, -1)

    def node_state(self, node: int) -> State:
        return {k: v[node] for k, v in self.x.items()}

    def state_dict(self) -> dict:
        return {"x": self.x}

    def load_state_dict(self, blob: dict) -> None:
        for k, v in blob["x"].items():
            self.x[k].copy_(v)


def select_nodes(n: int, per_round: int, seed: int, rnd: int) -> np.ndarray:
    """The nodes that train in round ``rnd`` (uniform, without replacement; all when per_round >= n)."""
    if per_round >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, rnd, 0x60]).choice(n, per_round, replace=False))
