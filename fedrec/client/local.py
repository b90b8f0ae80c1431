"""Local training of federated clients on one persistent model.

A client actor trains many clients per round. Re-creating a TorchRec model per client costs more
than training it, so one model is built per actor and, per client: the global weights are loaded
in place, E local epochs of SGD run (embedding bags switched to sparse gradients, so a step costs
O(rows touched), not O(table)), the delta is taken, and only the rows that client touched are
restored. The client's touched rows are known from its data before training, which is also what
the simulated clock needs to price the upload.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from data_pipeline.batches import Examples, FeatureSpec
from fedrec.model import ModelConfig, build_dlrm, forward_logits, table_name
from fedrec.updates import State


@dataclass(frozen=True)
class ClientTrainConfig:
    lr: float = 0.05
    local_epochs: int = 1
    batch_size: int = 32
    proximal_mu: float = 0.0  # FedProx's mu; 0 is plain FedAvg local training
    sparse_updates: bool = True  # upload only touched embedding rows (else whole tables)
    # Download only the rows the client's data touches (plus dense weights) instead of the whole model.
    # Off by default: asking for exactly one's own rows tells the server which items a user has seen.
    # Training is identical either way (a client only reads its own rows); only bytes and time change.
    sparse_downloads: bool = False
    batched: bool = True  # train an actor's clients together (fedrec.client.batched); same results


@dataclass
class ClientResult:
    client: int
    examples: int
    steps: int
    loss: float
    bytes_up: int
    dense_delta: State
    sparse_delta: dict[str, tuple[torch.Tensor, torch.Tensor]]


def embedding_param_names(model: torch.nn.Module, spec: FeatureSpec) -> dict[str, str]:
    """Parameter name -> feature name for every embedding table of the DLRM."""
    out = {}
    for name, _ in model.named_parameters():
        for f in spec.sparse_names:
            if name.endswith(f"embedding_bags.{table_name(f)}.weight"):
                out[name] = f
    return out


def touched_rows(examples: Examples, feature: str) -> np.ndarray:
    return np.unique(examples.values[feature])


def upload_bytes(model_state: State, emb_names: dict[str, str], client_examples: Examples, sparse: bool) -> int:
    """Bytes a client uploads: dense deltas in full, plus touched rows (id + row) or whole tables."""
    total = 0
    for name, t in model_state.items():
        if name in emb_names and sparse:
            rows = len(touched_rows(client_examples, emb_names[name]))
            total += rows * (8 + t.shape[1] * t.element_size())
        else:
            total += t.numel() * t.element_size()
    return total


class LocalTrainer:
    def __init__(self, spec: FeatureSpec, model_cfg: ModelConfig, examples: Examples) -> None:
        torch.set_num_threads(1)  # actors are one CPU each; intra-op threads would oversubscribe
        self.examples = examples
        self.model = build_dlrm(spec, model_cfg, seed=0)
        self.model.train()
        for module in self.model.modules():
            if isinstance(module, torch.nn.EmbeddingBag):
                module.sparse = True
        self.params = dict(self.model.named_parameters())
        self.emb = embedding_param_names(self.model, spec)
        self.loss_fn = torch.nn.BCEWithLogitsLoss()
        self._cache: dict[int, tuple[Examples, dict[str, torch.Tensor]]] = {}

    def client_data(self, client: int, rows: np.ndarray) -> tuple[Examples, dict[str, torch.Tensor]]:
        if client not in self._cache:
            ex = self.examples.take(rows)
            touched = {n: torch.from_numpy(touched_rows(ex, f)) for n, f in self.emb.items()}
            self._cache[client] = (ex, touched)
        return self._cache[client]

    @torch.no_grad()
    def load_global(self, state: State) -> None:
        for name, p in self.params.items():
            p.copy_(state[name])

    def train(self, client: int, rows: np.ndarray, global_state: State, cfg: ClientTrainConfig, seed: int) -> ClientResult:
        """Train one client from ``global_state`` (already loaded in the model) and restore it."""
        ex, touched = self.client_data(client, rows)
        torch.manual_seed(seed)
        steps, loss_sum = 0, 0.0
        dense_names = [n for n in self.params if n not in self.emb]
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
                        p.add_(p.grad, alpha=-cfg.lr)
                        if cfg.proximal_mu > 0:
                            if name in self.emb:
                                ids = touched[name]
                                p[ids] -= cfg.lr * cfg.proximal_mu * (p[ids] - global_state[name][ids])
                            else:
                                p.add_(p - global_state[name], alpha=-cfg.lr * cfg.proximal_mu)
                steps += 1
                loss_sum += loss.item()
        with torch.no_grad():
            dense_delta = {n: self.params[n] - global_state[n] for n in dense_names}
            sparse_delta = {}
            for name in self.emb:
                ids = touched[name]
                sparse_delta[name] = (ids, self.params[name][ids] - global_state[name][ids])
                self.params[name][ids] = global_state[name][ids]  # restore only what changed
            for n in dense_names:
                self.params[n].copy_(global_state[n])
        if not cfg.sparse_updates:
            sparse_delta = self.full_table_deltas(sparse_delta)
        return ClientResult(
            client=client, examples=len(ex), steps=steps, loss=loss_sum / max(steps, 1),
            bytes_up=self.upload_bytes_for(ex, global_state, cfg.sparse_updates),
            dense_delta=dense_delta, sparse_delta=sparse_delta,
        )

    def upload_bytes_for(self, ex: Examples, global_state: State, sparse: bool) -> int:
        return upload_bytes(global_state, self.emb, ex, sparse)

    def full_table_deltas(self, sparse_delta: dict[str, tuple[torch.Tensor, torch.Tensor]]):
        """Whole-table uploads (sparse updates off): every row, untouched ones with delta 0."""
        return {
            name: (torch.arange(self.params[name].shape[0]), _scatter_full(self.params[name], *sparse_delta[name]))
            for name in self.emb
        }


def _scatter_full(like: torch.Tensor, ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    full = torch.zeros_like(like)
    full[ids] = rows
    return full
