"""What nodes send their neighbours and how they mix, after local training: one class per
algorithm, each a ``step`` over all nodes at once that returns the bytes every node sent.

- ``DPSGD`` (Lian et al. 2017): every node sends its whole model to each neighbour and replaces
  its own by the W-weighted average: X <- W X. The uncompressed reference.
- ``Choco`` (CHOCO-SGD, Koloskova, Stich & Jaggi 2019): every node keeps a public copy x_hat of
  itself that its neighbours also hold; it sends q = C(x - x_hat) (any codec), everyone adds q to
  that node's x_hat, and each node moves towards its neighbours' public copies:
  x <- x + gamma (W X_hat - X_hat). The public copies start at the common initial model (which
  every node knows: it is deterministic from the run's seed), so what C drops is not lost but
  sent later (x - x_hat keeps it).
- ``PowerGossip`` (Vogels, Karimireddy & Jaggi 2020): each edge (i, j) approximates the
  difference x_i - x_j of each weight matrix with rank r by one step of power iteration per round,
  warm-started from the edge's last factors and alternating between its left and right factor, so
  a node sends each neighbour r x rows or r x cols floats per matrix per round. Both ends apply
  the approximation with opposite signs (x_i -= gamma w_ij P Q^T, x_j += ...), which keeps the
  nodes' average exact. Tensors too small for a low rank to help (biases, a [16, 1] weight) are
  mixed exactly, as the paper does, and counted in full.

Bytes are counted per message: a codec's encoded size (``Codec.nbytes``; full tables need no row
ids), the whole model for D-PSGD, the factors for PowerGossip. All nodes send every round.
"""

from __future__ import annotations

import numpy as np
import torch

from fedrec.gossip.mixing import as_torch
from fedrec.gossip.nodes import NodeModels
from fedrec.pipeline.codec import matrix_shape
from fedrec.pipeline.powersgd import PowerSGD, orthonormalize
from fedrec.pipeline.wire import CompressionPlan
from fedrec.threads import single_threaded


def _block(width: int, budget: int = 1 << 24) -> int:
    """How many rows of ``width`` entries make a ~64 MB float32 block."""
    return max(1, budget // max(width, 1))


class Exchange:
    name = "exchange"

    def __init__(self, w, degree: np.ndarray, gamma: float = 1.0) -> None:
        self.w = as_torch(w)
        self.degree = np.asarray(degree, dtype=np.int64)
        self.gamma = gamma

    def step(self, models: NodeModels, rnd: int) -> np.ndarray:
        """Exchange and mix in place; returns the bytes each node sent this round ([N])."""
        raise NotImplementedError

    def _mix(self, x: torch.Tensor, towards: torch.Tensor, gamma: float) -> None:
        """x += gamma (W towards - towards), over flattened [N, entries] views, a block of
        columns at a time (no temporary the size of every node's model)."""
        for lo in range(0, x.shape[1], _block(x.shape[0])):
            t = towards[:, lo : lo + _block(x.shape[0])].contiguous()
            x[:, lo : lo + t.shape[1]] += gamma * (torch.sparse.mm(self.w, t) - t)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, blob: dict) -> None:
        del blob


class DPSGD(Exchange):
    name = "dpsgd"

    @single_threaded
    @torch.no_grad()
    def step(self, models: NodeModels, rnd: int) -> np.ndarray:
        model_bytes = 0
        for name in models.x:
            x = models.flat(name)
            for lo in range(0, x.shape[1], _block(x.shape[0])):
                x[:, lo : lo + _block(x.shape[0])] = torch.sparse.mm(self.w, x[:, lo : lo + _block(x.shape[0])].contiguous())
            model_bytes += x.shape[1] * x.element_size()
        return self.degree * model_bytes


class Choco(Exchange):
    name = "choco"

    def __init__(self, w, degree, gamma: float, plan: CompressionPlan, models: NodeModels, seed: int) -> None:
        super().__init__(w, degree, gamma)
        self.plan = plan
        self.seed = seed
        self.xhat = {k: v.clone() for k, v in models.x.items()}
        self.memory: dict[str, dict] = {}
        self.message_bytes = sum(self._codec(models, k).nbytes(*matrix_shape(v.shape[1:])) for k, v in models.x.items())

    def _codec(self, models: NodeModels, name: str):
        return self.plan.tables if name in models.tables else self.plan.dense

    @single_threaded
    @torch.no_grad()
    def step(self, models: NodeModels, rnd: int) -> np.ndarray:
        for name, x in models.x.items():
            rows, cols = matrix_shape(x.shape[1:])
            codec = self._codec(models, name)
            step = _block(rows * cols)
            for lo in range(0, models.n, step):  # a block of nodes at a time
                hi = min(lo + step, models.n)
                memory = self.memory.setdefault(f"{name}@{lo}", {})  # the codec's state (PowerSGD's Q) for these nodes
                diff = (x[lo:hi] - self.xhat[name][lo:hi]).view(hi - lo, rows, cols)
                q = codec.decode(codec.encode(diff, memory, self.seed * 1_000_003 + rnd * 7919 + lo), rows, cols)
                self.xhat[name][lo:hi] += q.view(hi - lo, *x.shape[1:])
        for name in models.x:
            self._mix(models.flat(name), self.xhat[name].view(models.n, -1), self.gamma)
        return self.degree * self.message_bytes

    def state_dict(self) -> dict:
        return {"xhat": self.xhat, "memory": self.memory}

    def load_state_dict(self, blob: dict) -> None:
        self.xhat, self.memory = blob["xhat"], blob["memory"]


class PowerGossip(Exchange):
    """Per edge e = (u, v), u < v, and weight matrix: factors P_e [rows, r], Q_e [cols, r] that
    both ends hold. The arithmetic is arranged per node over its edges (padded to the largest
    degree), so no [edges, rows, cols] difference is ever built: a node multiplies its own matrix
    by its edges' factors, which is what each device does."""

    name = "powergossip"

    def __init__(self, w, degree, gamma: float, rank: int, models: NodeModels, seed: int) -> None:
        super().__init__(w, degree, gamma)
        coo = w.tocoo()
        upper = coo.row < coo.col
        src, dst = coo.row[upper].astype(np.int64), coo.col[upper].astype(np.int64)
        n, edges = models.n, len(src)
        self.rank, self.edges = rank, edges
        # Each node's edges as slots: edge id (``edges`` = a zero padding edge), +1 at u, -1 at v.
        ends = np.r_[src, dst]
        order = np.argsort(ends, kind="stable")
        slot = np.arange(2 * edges) - np.searchsorted(ends[order], ends[order])
        width = int(np.bincount(ends, minlength=n).max()) if edges else 1
        self.slot_edge = torch.full((n, width), edges, dtype=torch.int64)
        self.slot_sign = torch.zeros(n, width)
        self.slot_edge[ends[order], slot] = torch.from_numpy(np.r_[np.arange(edges), np.arange(edges)][order])
        self.slot_sign[ends[order], slot] = torch.from_numpy(np.r_[np.ones(edges), -np.ones(edges)][order].astype(np.float32))
        weight = torch.zeros(edges + 1)
        weight[:edges] = torch.from_numpy(coo.data[upper].astype(np.float32))
        self.slot_weight = weight[self.slot_edge]
        codec = PowerSGD(rank)
        self.low_rank = [k for k, v in models.x.items() if codec.low_rank(*matrix_shape(v.shape[1:]))]
        gen = torch.Generator().manual_seed(seed)  # factors shared by both ends of an edge
        self.p, self.q = {}, {}
        for k in self.low_rank:
            rows, cols = matrix_shape(models.x[k].shape[1:])
            self.p[k] = torch.cat([torch.randn(edges, rows, rank, generator=gen), torch.zeros(1, rows, rank)])
            self.q[k] = torch.cat([torch.randn(edges, cols, rank, generator=gen), torch.zeros(1, cols, rank)])

    def _per_node(self, f: torch.Tensor, nodes: slice) -> torch.Tensor:
        """Edge factors [edges + 1, d, r] gathered for ``nodes``' slots: [nodes, d, slots * r]."""
        g = f[self.slot_edge[nodes]]  # [c, slots, d, r]
        return g.permute(0, 2, 1, 3).reshape(g.shape[0], g.shape[2], -1)

    def _edge_sum(self, per_node: torch.Tensor, nodes: slice, into: torch.Tensor) -> None:
        """Add each node's signed slot results ([c, d, slots * r]) into its edges' rows of ``into``."""
        c, d = per_node.shape[:2]
        parts = per_node.view(c, d, -1, self.rank).permute(0, 2, 1, 3) * self.slot_sign[nodes].view(c, -1, 1, 1)
        into.index_add_(0, self.slot_edge[nodes].reshape(-1), parts.reshape(-1, d, self.rank))

    @single_threaded
    @torch.no_grad()
    def step(self, models: NodeModels, rnd: int) -> np.ndarray:
        sent = np.zeros(models.n, dtype=np.int64)
        left = rnd % 2 == 1  # odd rounds refresh Q from an orthonormal P, even rounds P from Q
        slots = self.slot_edge.shape[1]
        for name, x in models.x.items():
            rows, cols = matrix_shape(x.shape[1:])
            if name not in self.low_rank:
                self._mix(models.flat(name), models.flat(name).clone(), self.gamma)
                sent += self.degree * rows * cols * 4
                continue
            xm = x.view(models.n, rows, cols)
            p, q = self.p[name], self.q[name]
            fixed, fresh = (p, q) if left else (q, p)
            fixed[: self.edges] = orthonormalize(fixed[: self.edges])
            fresh.zero_()  # (X_u - X_v)^T p_e or (X_u - X_v) q_e, summed from both ends
            step = _block(slots * self.rank * max(rows, cols))
            for lo in range(0, models.n, step):
                nodes = slice(lo, min(lo + step, models.n))
                mine = xm[nodes].transpose(1, 2) if left else xm[nodes]
                self._edge_sum(torch.bmm(mine, self._per_node(fixed, nodes)), nodes, fresh)
            fresh[self.edges] = 0
            for lo in range(0, models.n, step):  # x_u -= gamma w P Q^T, x_v += gamma w P Q^T
                nodes = slice(lo, min(lo + step, models.n))
                scale = (self.slot_sign[nodes] * self.slot_weight[nodes]).repeat_interleave(self.rank, dim=1)
                xm[nodes] -= self.gamma * torch.bmm(self._per_node(p, nodes) * scale.unsqueeze(1),
                                                    self._per_node(q, nodes).transpose(1, 2))
            sent += self.degree * (cols if left else rows) * self.rank * 4  # one factor per edge per round
        return sent

    def state_dict(self) -> dict:
        return {"p": self.p, "q": self.q}

    def load_state_dict(self, blob: dict) -> None:
        self.p, self.q = blob["p"], blob["q"]
