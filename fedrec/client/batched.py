"""Vectorised local training: many clients' SGD steps as one batched computation.

Training ml100k-fed clients one by one through TorchRec's DLRM costs ~2 ms per step (framework
overhead, not arithmetic) and a client has only a few steps, so a per-client loop tops out at a
few hundred updates/s. Clients of a round are independent — each starts from the same global
model and owns its copy — so C clients can take step t together: the MLP weights are stacked
[C, out, in] and applied with ``bmm``; each client's embedding rows (only those its data touches)
are gathered into one small local table, so all clients' lookups are one ``embedding_bag`` call;
the loss is the sum of the clients' mean losses, whose gradient with respect to client c's copy is
exactly c's own gradient. A client with fewer steps is masked out of later steps.

The function computed is TorchRec's DLRM (``torchrec.models.dlrm``: DenseArch MLP with ReLU on every
layer, dot-product interactions over [dense, sparse...], OverArch MLP with a final linear layer),
read off the same parameters; ``tests/unit/test_batched_trainer.py`` checks it against the per-client
TorchRec path update for update. Why our own code: TorchRec's modules (and fbgemm's kernels) have
no batched-over-models form, and ``torch.func.vmap`` cannot trace through ``KeyedJaggedTensor``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from data_pipeline.batches import Examples, gather_jagged
from fedrec.client.config import ClientTrainConfig
from fedrec.client.data import ClientData
from fedrec.client.layout import ModelLayout
from fedrec.client.local import LocalResult, whole_tables
from fedrec.client.private import PrivateRows
from fedrec.updates import ClientStart, ClientUpdate, State


class BatchedTrainer:
    """Trains clients in groups of ``group_size`` with stacked parameters; same results as
    ``LocalTrainer.train`` (up to float rounding), much faster for small clients. Needs only the
    state dict's layout, not a TorchRec module."""

    def __init__(self, data: ClientData, layout: ModelLayout, group_size: int = 64) -> None:
        torch.set_num_threads(1)  # actors are one CPU each; intra-op threads would oversubscribe
        self.data = data
        self.group_size = group_size
        self.dense_layers = list(layout.dense_layers)
        self.over_layers = list(layout.over_layers)
        self.features = data.spec.sparse_names
        self.emb_params = [layout.table_of_feature[f] for f in self.features]
        n = len(self.features) + 1
        self.triu = torch.triu_indices(n, n, offset=1)

    def train_many(self, clients: list[int], global_state: State | None, cfg: ClientTrainConfig, seeds: list[int],
                   private: PrivateRows | None = None, *, starts: list[ClientStart] | None = None) -> list[LocalResult]:
        """As ``LocalTrainer.train`` for each client, from ``global_state`` or each from its own
        ``starts[i]`` (a gossip node's model, a client's compressed copy); updates are deltas from
        where each started. Tables in ``private`` start from the clients' stored rows, are written
        back there and are left out of the updates."""
        out: list[LocalResult] = []
        for start in range(0, len(clients), self.group_size):
            sl = slice(start, start + self.group_size)
            out.extend(self._train_group(clients[sl], global_state, cfg, seeds[sl], private, starts[sl] if starts else None))
        return out

    def _train_group(self, clients, global_state, cfg, seeds, private=None, starts=None) -> list[LocalResult]:
        C, B = len(clients), cfg.batch_size
        data = [self.data.client(c) for c in clients]
        exs: list[Examples] = [d[0] for d in data]
        # Local tables: each client's touched rows, concatenated; ids remapped into them.
        touched = [[d[1][f] for f in self.features] for d in data]
        base = np.zeros((C, len(self.features)), dtype=np.int64)
        mine = [private is not None and p in private.ids for p in self.emb_params]
        tables = []
        for j, p in enumerate(self.emb_params):
            sizes = np.array([len(t[j]) for t in touched])
            base[:, j] = np.r_[0, np.cumsum(sizes)[:-1]]
            ids = np.concatenate([t[j] for t in touched])
            if mine[j]:
                start = private.get(p, ids)
            elif starts is None:
                start = global_state[p][torch.from_numpy(ids)]
            else:
                start = torch.cat([s.rows[p] for s in starts])
            tables.append(start.clone().requires_grad_(True))
        names = [n for pair in self.dense_layers + self.over_layers for n in pair]
        if starts is None:
            stacked = {n: global_state[n].unsqueeze(0).repeat(C, *([1] * global_state[n].dim())).requires_grad_(True)
                       for n in names}
        else:
            stacked = {n: torch.stack([s.dense[n] for s in starts]).requires_grad_(True) for n in names}
        prox_ref = None
        if cfg.proximal_mu > 0:
            prox_ref = [t.detach().clone() for t in tables], {n: t.detach().clone() for n, t in stacked.items()}
        group = _GroupData(exs, touched, base, self.features)
        # Each client's batches, in the order LocalTrainer would take them, as group row numbers.
        plans = []
        for c, (ex, seed) in enumerate(zip(exs, seeds)):
            steps = []
            for epoch in range(cfg.local_epochs):
                order = np.random.default_rng(seed + epoch).permutation(len(ex)) + group.row_start[c]
                steps += [order[s : s + B] for s in range(0, len(ex), B)]
            plans.append(steps)
        n_steps = max(len(p) for p in plans)
        losses = np.zeros(C)
        params = tables + list(stacked.values())
        lrs = [cfg.lr_private if m else cfg.lr for m in mine] + [cfg.lr] * len(stacked)
        for t in range(n_steps):
            # Only the clients with a step left take part: client sizes are skewed (ML-100K: median 46
            # training rows, max 517), so most of a group has finished long before its largest client.
            active = [c for c in range(C) if t < len(plans[c])]
            idx = np.full((len(active), B), group.empty_row, dtype=np.int64)
            for i, c in enumerate(active):
                rows = plans[c][t]
                idx[i, : len(rows)] = rows
            if len(active) == C:
                step_params = stacked
            else:
                which = torch.tensor(active)
                step_params = {n: p.index_select(0, which) for n, p in stacked.items()}
            per_client = self._step_loss(group, idx.ravel(), len(active), B, tables, step_params)
            for p in params:
                p.grad = None
            per_client.sum().backward()
            losses[active] += per_client.detach().numpy()
            with torch.no_grad():
                for p, lr in zip(params, lrs):
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-lr)
                if prox_ref is not None:
                    for j, (p, ref) in enumerate(zip(tables, prox_ref[0])):
                        if not mine[j]:  # a private row has no global anchor
                            p.add_(p - ref, alpha=-cfg.lr * cfg.proximal_mu)
                    for n, p in stacked.items():
                        p.add_(p - prox_ref[1][n], alpha=-cfg.lr * cfg.proximal_mu)
        results = []
        with torch.no_grad():
            for c, client in enumerate(clients):
                origin = starts[c].dense if starts is not None else global_state
                dense = {n: stacked[n][c] - origin[n] for n in stacked}
                for n in origin:  # parameters outside the arches (none in DLRM) stay put
                    if n not in dense and n not in self.emb_params:
                        dense[n] = torch.zeros_like(origin[n])
                sparse = {}
                for j, p in enumerate(self.emb_params):
                    ids = torch.from_numpy(touched[c][j])
                    local = tables[j][base[c, j] : base[c, j] + len(ids)]
                    if mine[j]:
                        private.put(p, touched[c][j], local)  # stays on the device
                    else:
                        sparse[p] = (ids, local - (starts[c].rows[p] if starts is not None else global_state[p][ids]))
                update = ClientUpdate(client, float(len(exs[c])), dense, sparse)
                if not cfg.sparse_updates and starts is None:
                    update = whole_tables(update, global_state)
                steps = len(plans[c])
                results.append(LocalResult(update, len(exs[c]), steps, float(losses[c] / max(steps, 1))))
        return results

    def _step_loss(self, group: _GroupData, idx: np.ndarray, C: int, B: int, tables, stacked) -> torch.Tensor:
        """Per-client mean loss of one step over rows ``idx`` ([C*B] group rows, padding = the
        group's empty row), shape [C]; a client without rows this step contributes 0. All features'
        lookups are one ``embedding_bag`` over the local tables side by side: per step, one call
        and one backward instead of one per feature is most of what a small step costs."""
        n_features = len(self.features)
        bags = (idx[:, None] * n_features + np.arange(n_features)).ravel()
        vals, offs = gather_jagged(group.bag_values, group.bag_offsets, bags)
        table = tables[0] if n_features == 1 else torch.cat(tables)
        pooled = F.embedding_bag(torch.from_numpy(vals), table, torch.from_numpy(offs[:-1]), mode="sum")
        pooled = pooled.view(C, B, n_features, -1)
        dense = torch.from_numpy(group.dense[idx]).view(C, B, -1)
        z = stacked_dlrm_logits(dense, pooled, stacked, self.dense_layers, self.over_layers, self.triu)
        m = torch.from_numpy((idx != group.empty_row).astype(np.float32)).view(C, B)
        labels = torch.from_numpy(group.labels[idx]).view(C, B)
        bce = F.binary_cross_entropy_with_logits(z, labels, reduction="none")
        return (bce * m).sum(1) / m.sum(1).clamp_min(1.0)


def stacked_dlrm_logits(dense: torch.Tensor, pooled: torch.Tensor, stacked: dict, dense_layers, over_layers,
                        triu: torch.Tensor) -> torch.Tensor:
    """TorchRec's DLRM forward for C stacked models at once: ``dense`` [C, B, D_in], ``pooled``
    the sparse features' pooled embeddings [C, B, F, D], ``stacked`` the arches' weights with a
    leading C; logits [C, B].
    (Training here; gossip evaluates every node's model with it, ``dlrm_probs`` one model.)"""
    h = dense
    for w, b in dense_layers:
        h = torch.relu(torch.baddbmm(stacked[b].unsqueeze(1), h, stacked[w].transpose(1, 2)))
    combined = torch.cat([h.unsqueeze(2), pooled], dim=2)  # [C, B, F+1, D]
    inter = torch.einsum("cbid,cbjd->cbij", combined, combined)[:, :, triu[0], triu[1]]
    z = torch.cat([h, inter], dim=2)
    for i, (w, b) in enumerate(over_layers):
        z = torch.baddbmm(stacked[b].unsqueeze(1), z, stacked[w].transpose(1, 2))
        if i < len(over_layers) - 1:
            z = torch.relu(z)
    return z.squeeze(-1)


@torch.no_grad()
def dlrm_probs(examples: Examples, state: State, layout: ModelLayout, tables: dict[str, torch.Tensor] | None = None,
               batch_size: int = 8192) -> np.ndarray:
    """Click probabilities of every row of ``examples`` under the DLRM in ``state`` (the batched
    path's forward with one model); ``tables`` replaces some embedding tables (a client's private
    rows). What TorchRec's DLRM computes on the same weights (tested)."""
    features = examples.spec.sparse_names
    table_of = layout.table_of_feature
    use = {f: (tables or {}).get(table_of[f], state[table_of[f]]) for f in features}
    stacked = {n: state[n].unsqueeze(0) for pair in (*layout.dense_layers, *layout.over_layers) for n in pair}
    n = len(features) + 1
    triu = torch.triu_indices(n, n, offset=1)
    out = []
    for start in range(0, len(examples), batch_size):
        rows = np.arange(start, min(start + batch_size, len(examples)))
        pooled = []
        for f in features:
            vals, offs = gather_jagged(examples.values[f], examples.offsets[f], rows)
            pooled.append(F.embedding_bag(torch.from_numpy(vals), use[f], torch.from_numpy(offs[:-1]), mode="sum").unsqueeze(0))
        dense = torch.from_numpy(np.ascontiguousarray(examples.dense[rows])).unsqueeze(0)
        logits = stacked_dlrm_logits(dense, torch.stack(pooled, dim=2), stacked, layout.dense_layers, layout.over_layers,
                                     triu)
        out.append(torch.sigmoid(logits[0]).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


class _GroupData:
    """A group's client examples concatenated, ids remapped into the group's local tables, plus
    one empty row at the end that padding positions point to (no ids, zero dense, label 0). The
    sparse ids are one jagged column of bags, row after row and feature after feature within a row
    (bag ``row * F + j``), each id shifted to its feature's table in the local tables side by side."""

    def __init__(self, exs: list[Examples], touched, base: np.ndarray, features: list[str]) -> None:
        sizes = np.array([len(ex) for ex in exs])
        self.row_start = np.r_[0, np.cumsum(sizes)[:-1]]
        self.empty_row = int(sizes.sum())
        n_rows = self.empty_row + 1
        self.dense = np.concatenate([*(ex.dense for ex in exs), np.zeros((1, exs[0].dense.shape[1]), np.float32)])
        self.labels = np.concatenate([*(ex.labels for ex in exs), np.zeros(1, np.float32)])
        values, lengths = [], []
        table_start = 0
        for j, f in enumerate(features):
            values.append(np.concatenate([np.searchsorted(touched[c][j], ex.values[f]) + base[c, j] + table_start
                                          for c, ex in enumerate(exs)]))
            lengths.append(np.concatenate([*(np.diff(ex.offsets[f]) for ex in exs), np.zeros(1, np.int64)]))
            table_start += sum(len(t[j]) for t in touched)
        # Feature-major bags (feature j's rows one after another), then reordered row-major.
        feature_major = np.r_[0, np.cumsum(np.concatenate(lengths))].astype(np.int64)
        row_major = (np.arange(len(features))[None, :] * n_rows + np.arange(n_rows)[:, None]).ravel()
        self.bag_values, self.bag_offsets = gather_jagged(np.concatenate(values), feature_major, row_major)
