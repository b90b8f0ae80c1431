"""Small neural models trained with sampled negatives: MF (BPR), NeuMF and a DLRM-style model.

They share one trainer (``TorchRecommender``): Adam over mini-batches of observed interactions,
each paired with ``negatives`` uniformly drawn items, with a BPR or a binary cross-entropy loss.
The DLRM here is a plain-PyTorch replica of the architecture (bottom MLP over dense features,
pairwise dot-product interactions, top MLP) rather than ``fedrec.model``'s TorchRec DLRM: the zoo
must score every user-item pair cheaply, and KeyedJaggedTensor batches would dominate that cost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from sampling.models.base import Recommender, binary


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: these models are tiny, and on a busy 2-core machine two intra-op
    threads spin against other jobs (measured: MF 24 s on two threads vs 3.9 s on one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Adam:
    """Adam (Kingma & Ba, 2015) with L2 weight decay, the update ``torch.optim.Adam`` makes.

    Written out because constructing any ``torch.optim`` optimizer imports ``torch._dynamo``: 15 s
    or more on first use, which would dominate every short CLI run, test and sweep process.
    """

    def __init__(self, params, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1**self.t)
        root_bc2 = (1 - b2**self.t) ** 0.5
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad.add(p, alpha=self.weight_decay) if self.weight_decay else p.grad
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, (v.sqrt() / root_bc2).add_(self.eps), value=-step_size)


class TorchRecommender(Recommender):
    seeded = True
    loss = "bce"

    def __init__(
        self,
        seed: int = 0,
        dim: int = 16,
        epochs: int = 8,
        lr: float = 0.005,
        negatives: int = 2,
        batch_size: int = 4096,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(seed)
        self.dim = dim
        self.epochs = epochs
        self.lr = lr
        self.negatives = negatives
        self.batch_size = batch_size
        self.weight_decay = weight_decay

    def _fit(self, ratings: sp.csr_matrix) -> None:
        with one_thread():
            self._train(binary(ratings).tocoo())

    def _train(self, x: sp.coo_matrix) -> None:
        rng = np.random.default_rng(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.module_ = self._build(x.tocsr())
        opt = Adam(self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        users = torch.from_numpy(x.row.astype(np.int64))
        items = torch.from_numpy(x.col.astype(np.int64))
        n, neg_k = users.numel(), self.negatives
        for _ in range(self.epochs):
            perm = torch.from_numpy(rng.permutation(n))
            for start in range(0, n, self.batch_size):
                idx = perm[start : start + self.batch_size]
                u, i = users[idx], items[idx]
                j = torch.from_numpy(rng.integers(0, self.n_items_, size=(idx.numel(), neg_k)))
                pos = self.module_(u, i)
                neg = self.module_(u.repeat_interleave(neg_k), j.reshape(-1)).reshape(-1, neg_k)
                if self.loss == "bpr":
                    loss = -nn.functional.logsigmoid(pos[:, None] - neg).mean()
                else:
                    logits = torch.cat([pos, neg.reshape(-1)])
                    labels = torch.cat([torch.ones_like(pos), torch.zeros(neg.numel())])
                    loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
                opt.zero_grad()
                loss.backward()
                opt.step()

    def _score(self, users: np.ndarray) -> np.ndarray:
        items = torch.arange(self.n_items_)
        out = np.empty((users.size, self.n_items_), dtype=np.float32)
        chunk = max(1, 262_144 // self.n_items_)
        with torch.no_grad(), one_thread():
            for start in range(0, users.size, chunk):
                u = torch.from_numpy(users[start : start + chunk])
                pairs_u = u.repeat_interleave(self.n_items_)
                pairs_i = items.repeat(u.numel())
                out[start : start + chunk] = self.module_(pairs_u, pairs_i).reshape(u.numel(), -1).numpy()
        return out

    def _build(self, x: sp.csr_matrix) -> nn.Module:
        raise NotImplementedError


def _embedding(n: int, dim: int) -> nn.Embedding:
    emb = nn.Embedding(n, dim)
    nn.init.normal_(emb.weight, std=0.05)
    return emb


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no activation on the output


class _MF(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user = _embedding(n_users, dim)
        self.item = _embedding(n_items, dim)
        self.bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.bias.weight)

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return (self.user(u) * self.item(i)).sum(-1) + self.bias(i).squeeze(-1)


class MF(TorchRecommender):
    """Matrix factorisation trained with the BPR pairwise loss (Rendle et al., 2009)."""

    name = "mf"
    loss = "bpr"

    def __init__(
        self, seed: int = 0, dim: int = 32, epochs: int = 20, lr: float = 0.01, negatives: int = 1, weight_decay: float = 1e-5
    ) -> None:
        super().__init__(seed, dim=dim, epochs=epochs, lr=lr, negatives=negatives, weight_decay=weight_decay)

    def _build(self, x: sp.csr_matrix) -> nn.Module:
        return _MF(*x.shape, self.dim)

    def _score(self, users: np.ndarray) -> np.ndarray:
        m = self.module_
        with torch.no_grad():
            u = m.user.weight[torch.from_numpy(users)]
            return (u @ m.item.weight.T + m.bias.weight.T).numpy()


class _NeuMF(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.gmf_user, self.gmf_item = _embedding(n_users, dim), _embedding(n_items, dim)
        self.mlp_user, self.mlp_item = _embedding(n_users, dim), _embedding(n_items, dim)
        self.mlp = nn.Sequential(_mlp([2 * dim, dim, dim // 2]), nn.ReLU())
        self.out = nn.Linear(dim + dim // 2, 1)

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        gmf = self.gmf_user(u) * self.gmf_item(i)
        mlp = self.mlp(torch.cat([self.mlp_user(u), self.mlp_item(i)], -1))
        return self.out(torch.cat([gmf, mlp], -1)).squeeze(-1)


class NeuMF(TorchRecommender):
    """Neural matrix factorisation (He et al., 2017): GMF and an MLP tower, fused by a linear layer."""

    name = "neumf"

    def _build(self, x: sp.csr_matrix) -> nn.Module:
        return _NeuMF(*x.shape, self.dim)


class _DLRM(nn.Module):
    """Dense features are log degrees of the user and the item in the training data."""

    def __init__(self, x: sp.csr_matrix, dim: int) -> None:
        super().__init__()
        n_users, n_items = x.shape
        self.register_buffer("user_deg", torch.log1p(torch.from_numpy(np.diff(x.indptr)).float()))
        self.register_buffer("item_deg", torch.log1p(torch.from_numpy(np.bincount(x.indices, minlength=n_items)).float()))
        self.user, self.item = _embedding(n_users, dim), _embedding(n_items, dim)
        self.bottom = nn.Sequential(_mlp([2, 16, dim]), nn.ReLU())
        self.top = _mlp([dim + 3, 32, 1])

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        dense = self.bottom(torch.stack([self.user_deg[u], self.item_deg[i]], -1))
        eu, ei = self.user(u), self.item(i)
        dots = torch.stack([(dense * eu).sum(-1), (dense * ei).sum(-1), (eu * ei).sum(-1)], -1)
        return self.top(torch.cat([dense, dots], -1)).squeeze(-1)


class DLRM(TorchRecommender):
    """DLRM-style (Naumov et al., 2019): bottom MLP, pairwise dot interactions, top MLP."""

    name = "dlrm"

    def _build(self, x: sp.csr_matrix) -> nn.Module:
        return _DLRM(x, self.dim)
