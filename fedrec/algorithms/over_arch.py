"""FEL's server side: an over-arch trained on the frozen sub-models' top layers.

The ensemble is served from the server, so its size is not bound by any device. Its input per row
is each sub-model's last hidden layer and logit, side by side; the over-arch is an MLP over them
plus a linear skip over the logits that starts as their average, so training starts from the plain
ensemble. It is fitted with Adam on the rows the server holds and the epoch with the best held-out
log loss is kept.
"""

from __future__ import annotations

import numpy as np
import torch

from data_pipeline.batches import Examples


@torch.no_grad()
def top_features(model, batch) -> torch.Tensor:
    """A DLRM's top-layer output: the last hidden layer of its over-arch and its logit."""
    dense = model.dense_arch(batch.dense_features)
    sparse = model.sparse_arch(batch.sparse_features)
    hidden = model.over_arch.model[0](model.inter_arch(dense_features=dense, sparse_features=sparse))
    return torch.cat([hidden, model.over_arch.model[1](hidden)], dim=1)


def ensemble_inputs(models: list, examples: Examples, batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Features of every row (the sub-models' top layers, side by side), labels, and the column of
    each sub-model's logit."""
    for m in models:
        m.eval()
    feats, labels = [], []
    for b in examples.iter_batches(batch_size):
        feats.append(torch.cat([top_features(m, b) for m in models], dim=1))
        labels.append(b.labels)
    widths = [m.over_arch.model[1].in_features + 1 for m in models]
    return torch.cat(feats), torch.cat(labels), list(np.cumsum(widths) - 1)


class OverArch(torch.nn.Module):
    """MLP over standardized sub-model features, plus a linear skip over the sub-models' logits that
    starts as their average, so training begins from the plain ensemble."""

    def __init__(self, x: torch.Tensor, logit_cols: list[int], hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", x.mean(0))
        self.register_buffer("std", x.std(0).clamp_min(1e-6))
        self.logit_cols = logit_cols
        layers, width = [], x.shape[1]
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        last = torch.nn.Linear(width, 1)
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
        self.mlp = torch.nn.Sequential(*layers, last)
        self.skip = torch.nn.Linear(len(logit_cols), 1)
        torch.nn.init.constant_(self.skip.weight, 1.0 / len(logit_cols))
        torch.nn.init.zeros_(self.skip.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.mlp((x - self.mean) / self.std) + self.skip(x[:, self.logit_cols])).squeeze(-1)


def train_over_arch(x: torch.Tensor, y: torch.Tensor, logit_cols: list[int], cfg, seed: int) -> tuple[OverArch, dict]:
    """Adam on the server's rows; the epoch with the best log loss on a held-out part is kept."""
    torch.manual_seed(seed)
    order = torch.from_numpy(np.random.default_rng([seed, 0x0A]).permutation(len(y)))
    n_val = int(len(y) * cfg.over_validation)
    val, fit = order[:n_val], order[n_val:]
    model = OverArch(x[fit], logit_cols, cfg.over_arch)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.over_lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best = (float("inf"), 0, {k: v.clone() for k, v in model.state_dict().items()})
    for epoch in range(1, cfg.over_epochs + 1):
        model.train()
        perm = fit[torch.randperm(len(fit))]
        for start in range(0, len(perm), cfg.over_batch_size):
            idx = perm[start : start + cfg.over_batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if n_val:
            with torch.no_grad():
                v = float(loss_fn(model(x[val]), y[val]))
            if v < best[0]:
                best = (v, epoch, {k: t.clone() for k, t in model.state_dict().items()})
    if n_val:
        model.load_state_dict(best[2])
    model.eval()
    return model, {"rows": len(y), "fit_rows": len(fit), "best_epoch": best[1] if n_val else cfg.over_epochs,
                   "val_logloss": best[0] if n_val else float("nan")}
