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
    name = "powergossip"

    def __init__(self, w, degree, gamma: float, rank: int, models: NodeModels, seed: int,
                 edges_per_chunk: int = 256) -> None:
        super().__init__(w, degree, gamma)
        coo = w.tocoo()
        upper = coo.row < coo.col
        self.src = torch.from_numpy(coo.row[upper].astype(np.int64))
        self.dst = torch.from_numpy(coo.col[upper].astype(np.int64))
        self.weight = torch.from_numpy(coo.data[upper].astype(np.float32))
        self.rank, self.chunk = rank, edges_per_chunk
        codec = PowerSGD(rank)
        self.low_rank = [k for k, v in models.x.items() if codec.low_rank(*matrix_shape(v.shape[1:]))]
        gen = torch.Generator().manual_seed(seed)  # factors shared by both ends of an edge
        self.p, self.q = {}, {}
        for k in self.low_rank:
            rows, cols = matrix_shape(models.x[k].shape[1:])
            self.p[k] = torch.randn(len(self.src), rows, rank, generator=gen)
            self.q[k] = torch.randn(len(self.src), cols, rank, generator=gen)

    @single_threaded
    @torch.no_grad()
    def step(self, models: NodeModels, rnd: int) -> np.ndarray:
        sent = np.zeros(models.n, dtype=np.int64)
        left = rnd % 2 == 1  # odd rounds refresh Q from an orthonormal P, even rounds P from Q
        for name, x in models.x.items():
            rows, cols = matrix_shape(x.shape[1:])
            if name not in self.low_rank:
                self._mix(models.flat(name), models.flat(name).clone(), self.gamma)
                sent += self.degree * rows * cols * 4
                continue
            xm = x.view(models.n, rows, cols)
            change = torch.zeros_like(xm)
            for lo in range(0, len(self.src), self.chunk):
                sl = slice(lo, lo + self.chunk)
                u, v = self.src[sl], self.dst[sl]
                diff = xm[u] - xm[v]  # each end computes its half (X_i f, X_j f) and they swap them
                if left:
                    p = orthonormalize(self.p[name][sl])
                    q = torch.bmm(diff.transpose(1, 2), p)
                else:
                    q = orthonormalize(self.q[name][sl])
                    p = torch.bmm(diff, q)
                self.p[name][sl], self.q[name][sl] = p, q
                step = torch.bmm(p, q.transpose(1, 2)) * (self.gamma * self.weight[sl]).view(-1, 1, 1)
                change.index_add_(0, u, -step)
                change.index_add_(0, v, step)
            xm += change
            sent += self.degree * (cols if left else rows) * self.rank * 4  # one factor per edge per round
        return sent

    def state_dict(self) -> dict:
        return {"p": self.p, "q": self.q}

    def load_state_dict(self, blob: dict) -> None:
        self.p, self.q = blob["p"], blob["q"]
