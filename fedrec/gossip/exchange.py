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
import scipy.sparse as sp
import torch

from fedrec.gossip.mixing import as_torch
from fedrec.gossip.nodes import NodeModels
from fedrec.pipeline.codec import matrix_shape
from fedrec.pipeline.powersgd import PowerSGD, orthonormalize
from fedrec.pipeline.topk import TopK
from fedrec.pipeline.wire import CompressionPlan
from fedrec.threads import single_threaded


def _block(width: int, budget: int = 1 << 24) -> int:
    """How many rows of ``width`` entries make a ~64 MB float32 block."""
    return max(1, budget // max(width, 1))


def _columns(nodes: int) -> int:
    """Columns of an [N, entries] block that W multiplies at once: ~1 MB, so the rows a sparse
    product reads once per neighbour come from cache (each output entry sums the same terms in
    the same order whatever the width: the result is bit for bit the same)."""
    return _block(nodes, 1 << 18)


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
        for lo in range(0, x.shape[1], _columns(x.shape[0])):
            t = towards[:, lo : lo + _columns(x.shape[0])].contiguous()
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
            width = _columns(x.shape[0])
            for lo in range(0, x.shape[1], width):
                x[:, lo : lo + width] = torch.sparse.mm(self.w, x[:, lo : lo + width].contiguous())
            model_bytes += x.shape[1] * x.element_size()
        return self.degree * model_bytes


class Choco(Exchange):
    """For top-k messages, CHOCO-SGD in its memory-efficient form (Koloskova et al. 2019,
    Algorithm 6): besides x_hat, each node keeps s_i = sum_j w_ij x_hat_j - x_hat_i (its
    neighbours' public copies, already mixed) and adds (W - I) q to it as messages arrive, so a
    round costs what the messages touch (k entries per node and neighbour) instead of a sparse
    product over every node's whole model; then x <- x + gamma s. The same algorithm: only float
    rounding differs from recomputing W X_hat - X_hat (``s`` is checkpointed, so resumes are
    exact). Other codecs' messages are dense, and those tensors mix as before."""

    name = "choco"

    def __init__(self, w, degree, gamma: float, plan: CompressionPlan, models: NodeModels, seed: int) -> None:
        super().__init__(w, degree, gamma)
        self.plan = plan
        self.seed = seed
        self.xhat = {k: v.clone() for k, v in models.x.items()}
        self.memory: dict[str, dict] = {}
        self.message_bytes = sum(self._codec(models, k).nbytes(*matrix_shape(v.shape[1:])) for k, v in models.x.items())
        # (W - I) by sender: entries ptr[i]:ptr[i + 1] are node i's receivers (itself included) and weights.
        spread = (w - sp.identity(w.shape[0], format="csr")).tocsc()
        spread.sort_indices()
        self.ptr = spread.indptr.astype(np.int64)
        self.receiver = torch.from_numpy(spread.indices.astype(np.int64))
        self.sender = torch.from_numpy(np.repeat(np.arange(w.shape[0]), np.diff(self.ptr)))
        self.weight = torch.from_numpy(spread.data.astype(np.float32))
        self.sparse = [k for k, v in models.x.items() if self._sparse(self._codec(models, k), v)]
        self.s = self._mixed()
        self._buffers: torch.Tensor | None = None  # scratch for top-k (not state)

    def _codec(self, models: NodeModels, name: str):
        return self.plan.tables if name in models.tables else self.plan.dense

    @staticmethod
    def _sparse(codec, x: torch.Tensor) -> bool:
        """Whether ``x``'s messages are k positions and values (top-k that is not sent raw)."""
        return isinstance(codec, TopK) and not codec.is_raw(*matrix_shape(x.shape[1:]))

    @torch.no_grad()
    def _mixed(self) -> dict[str, torch.Tensor]:
        """(W - I) X_hat of the top-k tensors, computed in full (at the start, and to resume from a
        checkpoint written before ``s`` was kept)."""
        out = {}
        for k in self.sparse:
            xhat = self.xhat[k].view(self.w.shape[0], -1)
            out[k] = torch.zeros_like(xhat)
            self._mix(out[k], xhat, 1.0)
        return out

    def _top(self, x: torch.Tensor, xhat: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``TopK``'s message of x - x_hat ([nodes, entries]): the positions and values of each
        row's k largest-magnitude entries (the same set as ``TopK.encode``; order is irrelevant),
        computed in two reused buffers (fresh ones are page-faulted in every round: ~3x slower)."""
        if self._buffers is None or self._buffers.shape[1] < x.numel():
            self._buffers = torch.empty(2, x.numel())
        diff = torch.sub(x, xhat, out=self._buffers[0, : x.numel()].view(x.shape))
        magnitude = torch.abs(diff, out=self._buffers[1, : x.numel()].view(x.shape))
        idx = magnitude.topk(k, dim=1, sorted=False).indices
        return idx, diff.gather(1, idx)

    def _spread(self, s: torch.Tensor, lo: int, idx: torch.Tensor, val: torch.Tensor, budget: int = 1 << 22) -> None:
        """s += (W - I) q for senders lo..lo + len(idx), whose q holds ``val`` at positions ``idx``
        (each [senders, k]): every receiver's row gets each neighbour's k entries, weighted."""
        first, last = int(self.ptr[lo]), int(self.ptr[lo + idx.shape[0]])
        step = max(1, budget // max(idx.shape[1], 1))
        for a in range(first, last, step):
            b = min(a + step, last)
            sender = self.sender[a:b] - lo
            at = (self.receiver[a:b] * s.shape[1]).unsqueeze(1) + idx[sender]
            s.view(-1).index_add_(0, at.view(-1), (self.weight[a:b].unsqueeze(1) * val[sender]).view(-1))

    @single_threaded
    @torch.no_grad()
    def step(self, models: NodeModels, rnd: int) -> np.ndarray:
        for name, x in models.x.items():
            rows, cols = matrix_shape(x.shape[1:])
            codec = self._codec(models, name)
            flat, xhat = models.flat(name), self.xhat[name].view(models.n, -1)
            step = _block(rows * cols)
            for lo in range(0, models.n, step):  # a block of nodes at a time
                hi = min(lo + step, models.n)
                if name in self.s:
                    idx, val = self._top(flat[lo:hi], xhat[lo:hi], codec.k(rows, cols))
                    xhat[lo:hi].scatter_add_(1, idx, val)
                    self._spread(self.s[name], lo, idx, val)
                    continue
                memory = self.memory.setdefault(f"{name}@{lo}", {})  # the codec's state (PowerSGD's Q) for these nodes
                diff = (x[lo:hi] - self.xhat[name][lo:hi]).view(hi - lo, rows, cols)
                q = codec.decode(codec.encode(diff, memory, self.seed * 1_000_003 + rnd * 7919 + lo), rows, cols)
                self.xhat[name][lo:hi] += q.view(hi - lo, *x.shape[1:])
            if name in self.s:
                flat.add_(self.s[name], alpha=self.gamma)
            else:
                self._mix(flat, xhat, self.gamma)
        return self.degree * self.message_bytes

    def state_dict(self) -> dict:
        return {"xhat": self.xhat, "memory": self.memory, "s": self.s}

    def load_state_dict(self, blob: dict) -> None:
        self.xhat, self.memory = blob["xhat"], blob["memory"]
        self.s = blob["s"] if "s" in blob else self._mixed()


class PowerGossip(Exchange):
    """Per edge e = (u, v), u < v, and weight matrix: factors P_e [rows, r], Q_e [cols, r] that
    both ends hold. The arithmetic is arranged per node over its edges (padded to the largest
    degree in a block of nodes of similar degree), so no [edges, rows, cols] difference is ever
    built: a node multiplies its own matrix by its edges' factors, which is what each device does."""

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
        self.slots = np.bincount(ends, minlength=n)  # each node's edges
        width = int(self.slots.max()) if edges else 1
        self.slot_edge = torch.full((n, width), edges, dtype=torch.int64)
        self.slot_sign = torch.zeros(n, width)
        self.slot_edge[ends[order], slot] = torch.from_numpy(np.r_[np.arange(edges), np.arange(edges)][order])
        self.slot_sign[ends[order], slot] = torch.from_numpy(np.r_[np.ones(edges), -np.ones(edges)][order].astype(np.float32))
        weight = torch.zeros(edges + 1)
        weight[:edges] = torch.from_numpy(coo.data[upper].astype(np.float32))
        self.slot_weight = weight[self.slot_edge]
        self._grouped: dict[int, list] = {}
        codec = PowerSGD(rank)
        self.low_rank = [k for k, v in models.x.items() if codec.low_rank(*matrix_shape(v.shape[1:]))]
        gen = torch.Generator().manual_seed(seed)  # factors shared by both ends of an edge
        self.p, self.q = {}, {}  # factor-major, [edges + 1, r, rows] and [edges + 1, r, cols]: see ``_gather``
        for k in self.low_rank:
            rows, cols = matrix_shape(models.x[k].shape[1:])
            p, q = torch.randn(edges, rows, rank, generator=gen), torch.randn(edges, cols, rank, generator=gen)
            self.p[k] = torch.cat([p, torch.zeros(1, rows, rank)]).transpose(1, 2).contiguous()
            self.q[k] = torch.cat([q, torch.zeros(1, cols, rank)]).transpose(1, 2).contiguous()

    def _groups(self, per_slot: int) -> list[tuple[slice | torch.Tensor, int]]:
        """Nodes in blocks of ~64 MB of gathered factors (``per_slot`` floats a slot), each block
        padded only to its own largest degree: nodes go in order of degree, so a social graph's
        few hubs (Last.fm: degree 119, mean 13) do not pad every node's slots to theirs."""
        if per_slot not in self._grouped:
            order = np.argsort(self.slots, kind="stable")
            groups, lo = [], 0
            while lo < len(order):
                hi = lo + 1
                while hi < len(order) and (hi + 1 - lo) * max(int(self.slots[order[hi]]), 1) * per_slot <= 1 << 24:
                    hi += 1
                nodes = order[lo:hi]
                contiguous = bool((np.diff(nodes) == 1).all())  # a regular graph's blocks: views, no copies
                groups.append((slice(int(nodes[0]), int(nodes[-1]) + 1) if contiguous else torch.from_numpy(nodes),
                               max(int(self.slots[nodes].max()), 1)))
                lo = hi
            self._grouped[per_slot] = groups
        return self._grouped[per_slot]

    def _gather(self, f: torch.Tensor, nodes: slice | torch.Tensor, width: int) -> torch.Tensor:
        """Edge factors [edges + 1, r, d] gathered for ``nodes``' first ``width`` slots:
        [nodes, width * r, d]. Factor-major storage makes this a view of the gather (no permuted
        copy: on Last.fm each would be ~2 GB a round)."""
        slots = self.slot_edge[nodes, :width]
        return f.index_select(0, slots.reshape(-1)).view(slots.shape[0], -1, f.shape[2])  # [c, width * r, d]

    def _edge_sum(self, per_slot: torch.Tensor, nodes: slice | torch.Tensor, width: int, into: torch.Tensor) -> None:
        """Add each node's signed slot results ([c, width * r, d]) into its edges' rows of ``into``
        ([edges + 1, r, d]; each edge gets exactly its two ends' terms, so their order is immaterial)."""
        c, _, d = per_slot.shape
        parts = per_slot.view(c, width, self.rank, d) * self.slot_sign[nodes, :width].view(c, width, 1, 1)
        into.index_add_(0, self.slot_edge[nodes, :width].reshape(-1), parts.view(-1, self.rank, d))

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
            p, q = self.p[name], self.q[name]
            fixed, fresh = (p, q) if left else (q, p)
            real = fixed[: self.edges]  # QR over [edges, d, r] views of the factor-major [edges, r, d]
            real.copy_(orthonormalize(real.transpose(1, 2)).transpose(1, 2))
            fresh.zero_()  # p_e^T (X_u - X_v) or q_e^T (X_u - X_v)^T, summed from both ends
            groups = self._groups(self.rank * max(rows, cols))
            for nodes, width in groups:
                mine = xm[nodes] if left else xm[nodes].transpose(1, 2)
                self._edge_sum(torch.bmm(self._gather(fixed, nodes, width), mine), nodes, width, fresh)
            fresh[self.edges] = 0
            for nodes, width in groups:  # x_u -= gamma w P Q^T, x_v += gamma w P Q^T
                scale = (self.slot_sign[nodes, :width] * self.slot_weight[nodes, :width]).repeat_interleave(self.rank, dim=1)
                change = torch.bmm(self._gather(p, nodes, width).transpose(1, 2),
                                   self._gather(q, nodes, width) * scale.unsqueeze(2))
                if isinstance(nodes, slice):
                    xm[nodes] -= self.gamma * change
                else:
                    xm.index_add_(0, nodes, change, alpha=-self.gamma)
            sent += self.degree * (cols if left else rows) * self.rank * 4  # one factor per edge per round
        return sent

    def state_dict(self) -> dict:  # factors as [edges + 1, d, r], the layout earlier checkpoints hold
        return {"p": {k: v.transpose(1, 2) for k, v in self.p.items()},
                "q": {k: v.transpose(1, 2) for k, v in self.q.items()}}

    def load_state_dict(self, blob: dict) -> None:
        self.p = {k: v.transpose(1, 2).contiguous() for k, v in blob["p"].items()}
        self.q = {k: v.transpose(1, 2).contiguous() for k, v in blob["q"].items()}
