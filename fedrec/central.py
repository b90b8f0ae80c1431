"""Centralized DLRM training: the baseline every federated result is compared with.

Out-of-sample like the federated runs: the data is split per user into train, validation and test;
the reported model is the epoch with the best validation AUC (early stopping), scored once on test.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from tqdm import tqdm

from data_pipeline.atomic import atomic_path, write_json_atomic
from data_pipeline.batches import NEGATIVE_TIMESTAMP, Examples
from data_pipeline.datasets import resolve_data_path
from data_pipeline.errors import ConfigError
from data_pipeline.features import ML_FEATURES, available_features, criteo_examples, interaction_examples
from data_pipeline.readers import load_interactions
from data_pipeline.readers.criteo import CriteoOptions, read_criteo
from data_pipeline.splits import split as split_rows
from fedrec.configbase import StrictModel, StrTuple
from fedrec.metrics import binary_metrics
from fedrec.model import ModelConfig, build_model, forward_logits, predict

OPTIMIZERS = ("adam", "adagrad", "sgd")


class CentralConfig(StrictModel):
    data: str
    format: str = "movielens"
    columns: str | None = None
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(0.003, gt=0)
    optimizer: Literal["adam", "adagrad", "sgd"] = "adam"
    weight_decay: float = Field(0.0, ge=0)
    split: Literal["temporal", "random"] = "temporal"
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    label_threshold: float = 4.0
    features: StrTuple | None = None  # None: the ML-100K feature set, or all available
    model: ModelConfig = Field(default_factory=ModelConfig)
    seed: int = Field(0, ge=0)
    criteo_buckets: int = Field(100_000, ge=1)
    checkpoint: str | None = None  # save the trained model (the epoch chosen on validation) here


@dataclass
class CentralResult:
    auc: float  # test metrics of the chosen epoch
    logloss: float
    ne: float
    validation_auc: float  # what chose it
    best_epoch: int
    train_seconds: float
    samples_per_second: float
    epochs: int
    train_rows: int
    validation_rows: int
    test_rows: int
    history: list[dict]
    test_hr_at_10: float | None = None  # the catalogue ranked per user (with --config on user data)
    test_ndcg_at_10: float | None = None
    validation_ndcg_at_10: float | None = None

    def to_json(self, path: str | Path) -> None:
        write_json_atomic(path, asdict(self), default=float)


@dataclass
class SplitExamples:
    train: Examples
    validation: Examples
    test: Examples


def load_examples(
    data: str, format: str, *, columns=None, split: str = "temporal", validation_fraction: float = 0.1,
    test_fraction: float = 0.2, label_threshold: float = 4.0, features=None, seed: int = 0, criteo_buckets: int = 100_000,
) -> SplitExamples:
    """Read a dataset and return train, validation and test examples sharing one feature layout
    (Criteo has no users: a random row split)."""
    path = resolve_data_path(data)
    if format == "criteo":
        table, _ = read_criteo(path, CriteoOptions(num_buckets=criteo_buckets))
        examples = criteo_examples(table, criteo_buckets)
        perm = np.random.default_rng(seed).permutation(len(examples))
        n_test, n_val = int(len(examples) * test_fraction), int(len(examples) * validation_fraction)
        take = lambda rows: examples.take(np.sort(rows))  # noqa: E731
        return SplitExamples(take(perm[n_test + n_val:]), take(perm[n_test:n_test + n_val]), take(perm[:n_test]))
    inter = load_interactions(path, format, columns=columns)
    if features is None:
        have = available_features(inter)
        features = tuple(f for f in ML_FEATURES if f in have)
    parts = split_rows(inter, split, test_fraction, seed, validation_fraction=validation_fraction)
    make = lambda rows: interaction_examples(inter, features, label_threshold, rows)  # noqa: E731
    return SplitExamples(make(parts.train), make(parts.validation), make(parts.test))


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError("optimizer", f"unknown {name!r}; expected one of {OPTIMIZERS}")


def _scores(model, batches) -> dict:
    probs, labels = predict(model, batches)
    return binary_metrics(labels.numpy(), probs.numpy())


def train_central(cfg: CentralConfig, progress: bool = True) -> CentralResult:
    """Train for ``cfg.epochs``; the returned (and checkpointed) model is the epoch with the best
    validation AUC, its test metrics the reported ones."""
    data = load_examples(
        cfg.data, cfg.format, columns=cfg.columns, split=cfg.split, validation_fraction=cfg.validation_fraction,
        test_fraction=cfg.test_fraction, label_threshold=cfg.label_threshold, features=cfg.features, seed=cfg.seed,
        criteo_buckets=cfg.criteo_buckets,
    )
    model, result = _fit(data, cfg.model, cfg.epochs, cfg.batch_size, cfg.lr, cfg.optimizer, cfg.weight_decay, cfg.seed, progress)
    if cfg.checkpoint:
        save_checkpoint(model, cfg.checkpoint, {"config": cfg.model_dump(mode="json"), "spec": repr(data.train.spec),
                                                "epoch": result.best_epoch})
    return result


def central_baseline(fed_cfg, epochs: int = 3, batch_size: int = 256, lr: float = 0.003, optimizer: str = "adam",
                     progress: bool = True) -> CentralResult:
    """The centralized baseline of a federated config: the same data, split, negatives, features
    and model (private tables are ordinary tables here), trained on all training rows at once,
    with the same out-of-sample choice of epoch and the same ranking metrics."""
    from fedrec.client.evaluate import rank_clients
    from fedrec.runtime.data import load_federated_data

    fed = load_federated_data(fed_cfg)
    data = SplitExamples(fed.train, fed.validation, fed.test)
    model, result = _fit(data, fed_cfg.model, epochs, batch_size, lr, optimizer, 0.0, fed_cfg.seed, progress)
    if fed.catalogue is None:
        return result
    users = np.arange(len(fed.catalogue.user_rows))
    real = fed.train.timestamps != NEGATIVE_TIMESTAMP
    seen = {"validation": _items_by_user(fed.train.groups[real], fed.train.values["item"][real])}
    val_real = fed.validation.timestamps != NEGATIVE_TIMESTAMP
    seen["test"] = _items_by_user(np.r_[fed.train.groups[real], fed.validation.groups[val_real]],
                                  np.r_[fed.train.values["item"][real], fed.validation.values["item"][val_real]])
    for split, examples in (("validation", fed.validation), ("test", fed.test)):
        r = rank_clients(np.unique(examples.groups).tolist(), users, lambda ex: predict(model, ex.iter_batches(8192))[0].numpy(),
                         fed.catalogue, examples, examples.groups, lambda u, s=seen[split]: s.get(u, np.zeros(0, np.int64)))
        if r["users"]:
            if split == "test":
                result.test_hr_at_10, result.test_ndcg_at_10 = r["hr_sum"] / r["users"], r["ndcg_sum"] / r["users"]
            else:
                result.validation_ndcg_at_10 = r["ndcg_sum"] / r["users"]
    return result


def _items_by_user(users: np.ndarray, items: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    return {int(users[s]): np.unique(items[s:e]) for s, e in zip(starts, np.r_[starts[1:], len(users)])}


def _fit(data: SplitExamples, model_cfg: ModelConfig, epochs: int, batch_size: int, lr: float, optimizer: str,
         weight_decay: float, seed: int, progress: bool):
    """The training loop; returns the model restored to the epoch of best validation AUC, and the result."""
    torch.manual_seed(seed)
    train = data.train
    model = build_model(train.spec, model_cfg, seed=seed)
    opt = make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    history = []
    test_batches = list(data.test.iter_batches(4096))
    val_batches = list(data.validation.iter_batches(4096)) if len(data.validation) else []
    best = (-1.0, 0, None)
    seconds = 0.0
    steps_per_epoch = -(-len(train) // batch_size)
    bar = tqdm(total=epochs * steps_per_epoch, desc="central", unit="step", disable=not progress)
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        total = 0.0
        for batch in train.iter_batches(batch_size, shuffle=True, seed=seed * 1000 + epoch):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(forward_logits(model, batch), batch.labels)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch.labels)
            bar.update(1)
        seconds += time.perf_counter() - start
        metrics = _scores(model, test_batches)
        val = _scores(model, val_batches)["auc"] if val_batches else metrics["auc"]
        history.append({"epoch": epoch + 1, "train_loss": total / len(train), "validation_auc": val, **metrics})
        if val > best[0]:
            best = (val, epoch + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})
        bar.set_postfix(val_auc=f"{val:.4f}")
    bar.close()
    model.load_state_dict(best[2])
    chosen = history[best[1] - 1]
    return model, CentralResult(
        auc=chosen["auc"], logloss=chosen["logloss"], ne=chosen["ne"], validation_auc=best[0], best_epoch=best[1],
        train_seconds=seconds, samples_per_second=epochs * len(train) / seconds if seconds else 0.0,
        epochs=epochs, train_rows=len(train), validation_rows=len(data.validation), test_rows=len(data.test),
        history=history,
    )


def save_checkpoint(model: torch.nn.Module, path: str | Path, meta: dict | None = None) -> None:
    with atomic_path(path, None, "--checkpoint") as tmp:
        torch.save({"state_dict": model.state_dict(), "meta": meta or {}}, tmp)


def load_checkpoint(model: torch.nn.Module, path: str | Path) -> dict:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(blob["state_dict"])
    return blob.get("meta", {})
