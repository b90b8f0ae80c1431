"""Mixing weights: the doubly stochastic matrix W with which nodes average their neighbours.

``metropolis`` (Metropolis-Hastings): w_ij = 1 / (1 + max(d_i, d_j)) on each edge and
w_ii = 1 - sum_j w_ij; symmetric and doubly stochastic on any graph, and it adapts to uneven
degrees (a social graph's hubs). ``uniform`` (maximum-degree): w_ij = 1 / (1 + d_max) on each
edge, the rest on the diagonal; also symmetric and doubly stochastic, the plain average on a
regular graph. A symmetric doubly stochastic W keeps the nodes' average fixed (gossip never moves
the mean model) and, on a connected graph, drives every node to it at a rate set by the spectral
gap 1 - |lambda_2(W)|.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import scipy.sparse as sp
import torch


def mixing_matrix(g: nx.Graph, weights: str = "metropolis") -> sp.csr_matrix:
    n = g.number_of_nodes()
    deg = np.array([g.degree(i) for i in range(n)], dtype=np.float64)
    edges = np.array(list(g.edges()), dtype=np.int64).reshape(-1, 2)
    if weights == "metropolis":
        w = 1.0 / (1.0 + np.maximum(deg[edges[:, 0]], deg[edges[:, 1]]))
    elif weights == "uniform":
        w = np.full(len(edges), 1.0 / (1.0 + deg.max()))
    else:
        raise ValueError(f"unknown mixing weights {weights!r}")
    rows = np.r_[edges[:, 0], edges[:, 1]]
    cols = np.r_[edges[:, 1], edges[:, 0]]
    off = sp.csr_matrix((np.r_[w, w], (rows, cols)), shape=(n, n))
    diag = 1.0 - np.asarray(off.sum(axis=1)).ravel()
    return (off + sp.diags(diag)).tocsr()


def spectral_gap(w: sp.csr_matrix) -> float:
    """1 - the second largest |eigenvalue| of a symmetric W (dense eigensolver: n in the thousands)."""
    vals = np.sort(np.abs(np.linalg.eigvalsh(w.toarray())))
    return float(1.0 - vals[-2]) if len(vals) > 1 else 1.0


def as_torch(w: sp.csr_matrix) -> torch.Tensor:
    """W as a torch sparse (COO, float32) matrix for ``torch.sparse.mm(W, X)`` over stacked node
    parameters X [nodes, entries]."""
    coo = w.tocoo()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data.astype(np.float32)), w.shape).coalesce()
