"""Centralized DLRM training: the baseline every federated result is compared with."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data_pipeline.batches import Examples
from data_pipeline.datasets import resolve_data_path
from data_pipeline.errors import ConfigError
from data_pipeline.features import ML_FEATURES, available_features, criteo_examples, interaction_examples
from data_pipeline.readers import load_interactions
from data_pipeline.readers.criteo import CriteoOptions, read_criteo
from data_pipeline.splits import split as split_rows
from fedrec.metrics import binary_metrics
from fedrec.model import ModelConfig, build_dlrm, forward_logits, predict

OPTIMIZERS = ("adam", "adagrad", "sgd")


@dataclass
class CentralConfig:
    data: str
    format: str = "movielens"
    columns: str | None = None
    epochs: int = 3
    batch_size: int = 256
    lr: float = 0.003
    optimizer: str = "adam"
    weight_decay: float = 0.0
    split: str = "temporal"
    test_fraction: float = 0.2
    label_threshold: float = 4.0
    features: tuple[str, ...] | None = None  # None: the ML-100K feature set, or all available
    model: ModelConfig = field(default_factory=ModelConfig)
    seed: int = 0
    criteo_buckets: int = 100_000
    checkpoint: str | None = None  # save the trained model here

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError("epochs", f"must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError("batch_size", f"must be at least 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ConfigError("lr", f"must be positive, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError("optimizer", f"unknown {self.optimizer!r}; expected one of {OPTIMIZERS}")


@dataclass
class CentralResult:
    auc: float
    logloss: float
    ne: float
    train_seconds: float
    samples_per_second: float
    epochs: int
    train_rows: int
    test_rows: int
    history: list[dict]

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))


def load_examples(
    data: str, format: str, *, columns=None, split: str = "temporal", test_fraction: float = 0.2,
    label_threshold: float = 4.0, features=None, seed: int = 0, criteo_buckets: int = 100_000,
) -> tuple[Examples, Examples]:
    """Read a dataset and return (train, test) examples; both share one feature layout."""
    path = resolve_data_path(data)
    if format == "criteo":
        table, _ = read_criteo(path, CriteoOptions(num_buckets=criteo_buckets))
        examples = criteo_examples(table, criteo_buckets)
        perm = np.random.default_rng(seed).permutation(len(examples))
        n_test = int(len(examples) * test_fraction)
        return examples.take(np.sort(perm[n_test:])), examples.take(np.sort(perm[:n_test]))
    inter = load_interactions(path, format, columns=columns)
    if features is None:
        have = available_features(inter)
        features = tuple(f for f in ML_FEATURES if f in have)
    parts = split_rows(inter, split, test_fraction, seed)
    train = interaction_examples(inter, features, label_threshold, parts.train)
    test = interaction_examples(inter, features, label_threshold, parts.test)
    return train, test


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError("optimizer", f"unknown {name!r}; expected one of {OPTIMIZERS}")


def train_central(cfg: CentralConfig, progress: bool = True) -> CentralResult:
    torch.manual_seed(cfg.seed)
    train, test = load_examples(
        cfg.data, cfg.format, columns=cfg.columns, split=cfg.split, test_fraction=cfg.test_fraction,
        label_threshold=cfg.label_threshold, features=cfg.features, seed=cfg.seed, criteo_buckets=cfg.criteo_buckets,
    )
    model = build_dlrm(train.spec, cfg.model, seed=cfg.seed)
    opt = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    history = []
    test_batches = list(test.iter_batches(4096))
    seconds = 0.0
    steps_per_epoch = -(-len(train) // cfg.batch_size)
    bar = tqdm(total=cfg.epochs * steps_per_epoch, desc="central", unit="step", disable=not progress)
    for epoch in range(cfg.epochs):
        start = time.perf_counter()
        model.train()
        total = 0.0
        for batch in train.iter_batches(cfg.batch_size, shuffle=True, seed=cfg.seed * 1000 + epoch):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(forward_logits(model, batch), batch.labels)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch.labels)
            bar.update(1)
        seconds += time.perf_counter() - start
        probs, labels = predict(model, test_batches)
        metrics = binary_metrics(labels.numpy(), probs.numpy())
        history.append({"epoch": epoch + 1, "train_loss": total / len(train), **metrics})
        bar.set_postfix(auc=f"{metrics['auc']:.4f}")
    bar.close()
    if cfg.checkpoint:
        save_checkpoint(model, cfg.checkpoint, {"config": _jsonable(asdict(cfg)), "spec": repr(train.spec)})
    final = history[-1]
    return CentralResult(
        auc=final["auc"], logloss=final["logloss"], ne=final["ne"], train_seconds=seconds,
        samples_per_second=cfg.epochs * len(train) / seconds if seconds else 0.0, epochs=cfg.epochs,
        train_rows=len(train), test_rows=len(test), history=history,
    )


def save_checkpoint(model: torch.nn.Module, path: str | Path, meta: dict | None = None) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "meta": meta or {}}, path)


def load_checkpoint(model: torch.nn.Module, path: str | Path) -> dict:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(blob["state_dict"])
    return blob.get("meta", {})


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


