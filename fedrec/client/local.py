"""Local training of one federated client through TorchRec's DLRM (the reference path).

A client actor trains many clients per round. Re-creating a TorchRec model per client costs more
than training it, so one model is built per actor and, per client: the global weights are loaded,
E local epochs of SGD run (embedding bags switched to sparse gradients, so a step costs O(rows
touched), not O(table)), the delta is taken, and only the rows that client touched are restored.
``fedrec.client.batched`` computes the same updates for many clients at once (tested equal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedrec.client.config import ClientTrainConfig
from fedrec.client.data import ClientData
from fedrec.client.layout import ModelLayout
from fedrec.client.private import PrivateRows
from fedrec.model import ModelConfig, build_model, forward_logits
from fedrec.updates import ClientUpdate, State


@dataclass
class LocalResult:
    """A client's update plus what the run reports about its training."""

    update: ClientUpdate
    examples: int
    steps: int
    loss: float


def whole_tables(update: ClientUpdate, state: State) -> ClientUpdate:
    """The same update as whole-table uploads (sparse updates off): every row, untouched ones 0."""
    sparse = {}
    for name, (ids, rows) in update.sparse.items():
        full = torch.zeros_like(state[name])
        full[ids] = rows
        sparse[name] = (torch.arange(full.shape[0]), full)
    return ClientUpdate(update.client, update.weight, update.dense, sparse, whole_tables=True)


class LocalTrainer:
    """The per-client path for any model (``model_fn`` builds a custom one): TorchRec modules,
    sparse embedding gradients, one client at a time."""

    def __init__(self, data: ClientData, model_cfg: ModelConfig, model_fn=None) -> None:
        torch.set_num_threads(1)  # actors are one CPU each; intra-op threads would oversubscribe
        self.data = data
        self.model = (model_fn or build_model)(data.spec, model_cfg, seed=0)
        self.model.train()
        for module in self.model.modules():
            if isinstance(module, torch.nn.EmbeddingBag):
                module.sparse = True
        self.params = dict(self.model.named_parameters())
        self.layout = ModelLayout.of_module(self.model, data.spec)
        self.loss_fn = torch.nn.BCEWithLogitsLoss()

    @torch.no_grad()
    def load_global(self, state: State) -> None:
        for name, p in self.params.items():
            p.copy_(state[name])

    def train(self, client: int, global_state: State, cfg: ClientTrainConfig, seed: int,
              private: PrivateRows | None = None) -> LocalResult:
        """Train one client from ``global_state`` (already loaded in the model) and restore it.
        Tables in ``private`` start from the client's stored rows, are written back there and are
        left out of the update."""
        ex, touched_ids = self.data.client(client)
        touched = {n: torch.from_numpy(touched_ids[f]) for n, f in self.layout.tables.items()}
        mine = set(private.ids) if private is not None else set()
        with torch.no_grad():
            for name in mine:
                self.params[name][touched[name]] = private.get(name, touched[name].numpy())
        torch.manual_seed(seed)
        steps, loss_sum = 0, 0.0
        dense_names = [n for n in self.params if n not in self.layout.tables]
        for epoch in range(cfg.local_epochs):
            for batch in ex.iter_batches(cfg.batch_size, shuffle=True, seed=seed + epoch):
                loss = self.loss_fn(forward_logits(self.model, batch), batch.labels)
                for p in self.params.values():
                    p.grad = None
                loss.backward()
                with torch.no_grad():
                    for name, p in self.params.items():
                        if p.grad is None:
                            continue
                        p.add_(p.grad, alpha=-(cfg.lr_private if name in mine else cfg.lr))
                        if cfg.proximal_mu > 0 and name not in mine:  # a private row has no global anchor
                            if name in self.layout.tables:
                                ids = touched[name]
                                p[ids] -= cfg.lr * cfg.proximal_mu * (p[ids] - global_state[name][ids])
                            else:
                                p.add_(p - global_state[name], alpha=-cfg.lr * cfg.proximal_mu)
                steps += 1
                loss_sum += loss.item()
        with torch.no_grad():
            dense = {n: self.params[n] - global_state[n] for n in dense_names}
            sparse = {}
            for name, ids in touched.items():
                if name in mine:
                    private.put(name, ids.numpy(), self.params[name][ids])  # stays on the device
                else:
                    sparse[name] = (ids, self.params[name][ids] - global_state[name][ids])
                self.params[name][ids] = global_state[name][ids]  # restore only what changed
            for n in dense_names:
                self.params[n].copy_(global_state[n])
        update = ClientUpdate(client, float(len(ex)), dense, sparse)
        if not cfg.sparse_updates:
            update = whole_tables(update, global_state)
        return LocalResult(update, len(ex), steps, loss_sum / max(steps, 1))


def upload_bytes(state: State, tables: dict[str, str], touched: dict[str, np.ndarray] | None) -> int:
    """Bytes a client uploads: dense deltas in full, plus per touched row its id and values (or,
    with ``touched`` None, whole tables without ids). Equals ``ClientUpdate.nbytes`` of its update."""
    total = 0
    for name, t in state.items():
        if name in tables and touched is not None:
            total += len(touched[tables[name]]) * (8 + t.shape[1] * t.element_size())
        else:
            total += t.numel() * t.element_size()
    return total
