"""Training examples in columnar form, and their conversion to TorchRec batches.

``Examples`` holds every row of a split once, as numpy arrays: a dense matrix, one jagged
(values, offsets) pair per sparse feature, labels, and the owning user of each row (the federated
partitioners group by it). Slicing rows and building a ``KeyedJaggedTensor`` from a slice are
vectorised, so a client's local batches cost microseconds to assemble and nothing is re-parsed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import IterableDataset

if TYPE_CHECKING:  # torchrec is imported where a batch is built: a process that never builds one
    # (a client actor on the batched path) does not pay its import time.
    from torchrec.datasets.utils import Batch
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor


NEGATIVE_TIMESTAMP = -1  # the timestamp of sampled negative rows (never real interactions)


@dataclass(frozen=True)
class SparseFeature:
    name: str
    cardinality: int  # embedding rows, including index 0 (OOV) where the vocabulary has one


@dataclass(frozen=True)
class FeatureSpec:
    sparse: tuple[SparseFeature, ...]
    dense: tuple[str, ...]

    @property
    def sparse_names(self) -> list[str]:
        return [f.name for f in self.sparse]

    def select(self, names: Sequence[str]) -> FeatureSpec:
        by_name = {f.name: f for f in self.sparse}
        return FeatureSpec(tuple(by_name[n] for n in names), self.dense)


def gather_jagged(values: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``rows`` of a jagged column: (values, offsets) of the slice, without a Python loop."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    new_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    total = int(new_offsets[-1])
    if total == len(rows) and np.all(lengths == 1):  # one id per row: plain fancy indexing
        return values[starts], new_offsets
    positions = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(total)
    return values[positions], new_offsets


@dataclass
class Examples:
    spec: FeatureSpec
    dense: np.ndarray  # [N, D] float32
    values: dict[str, np.ndarray]  # per sparse feature: all ids, row after row (int64)
    offsets: dict[str, np.ndarray]  # per sparse feature: [N+1] row boundaries into values
    labels: np.ndarray  # [N] float32
    groups: np.ndarray  # [N] int64: the user (client key) each row belongs to
    timestamps: np.ndarray  # [N] int64

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.dense.shape[0] != n or len(self.groups) != n:
            raise ValueError("dense, labels and groups must have one entry per row")
        for f in self.spec.sparse:
            if len(self.offsets[f.name]) != n + 1:
                raise ValueError(f"feature {f.name}: offsets must have {n + 1} entries")
            v = self.values[f.name]
            if v.size and (v.min() < 0 or v.max() >= f.cardinality):
                raise ValueError(f"feature {f.name}: ids outside [0, {f.cardinality})")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray) -> Examples:
        rows = np.asarray(rows, dtype=np.int64)
        values, offsets = {}, {}
        for name in self.spec.sparse_names:
            values[name], offsets[name] = gather_jagged(self.values[name], self.offsets[name], rows)
        return Examples(
            self.spec,
            self.dense[rows],
            values,
            offsets,
            self.labels[rows],
            self.groups[rows],
            self.timestamps[rows],
        )

    def kjt(self, rows: np.ndarray | None = None) -> KeyedJaggedTensor:
        """Sparse features of ``rows`` (all rows if None) as a TorchRec ``KeyedJaggedTensor``
        (feature-major: all lengths of feature 0, then feature 1, ...)."""
        from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

        vals, lens = [], []
        for name in self.spec.sparse_names:
            if rows is None:
                v, o = self.values[name], self.offsets[name]
            else:
                v, o = gather_jagged(self.values[name], self.offsets[name], np.asarray(rows, dtype=np.int64))
            vals.append(v)
            lens.append(np.diff(o))
        return KeyedJaggedTensor(
            keys=self.spec.sparse_names,
            values=torch.from_numpy(np.concatenate(vals).astype(np.int64)),
            lengths=torch.from_numpy(np.concatenate(lens).astype(np.int32)),
        )

    def batch(self, rows: np.ndarray | None = None) -> Batch:
        from torchrec.datasets.utils import Batch

        sel = slice(None) if rows is None else np.asarray(rows, dtype=np.int64)
        return Batch(
            dense_features=torch.from_numpy(np.ascontiguousarray(self.dense[sel])),
            sparse_features=self.kjt(rows),
            labels=torch.from_numpy(np.ascontiguousarray(self.labels[sel])),
        )

    def iter_batches(self, batch_size: int, shuffle: bool = False, seed: int = 0) -> Iterator[Batch]:
        order = np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        for start in range(0, len(self), batch_size):
            yield self.batch(order[start : start + batch_size])


class ExamplesDataset(IterableDataset):
    """An ``IterableDataset`` of ready TorchRec batches (use with ``DataLoader(batch_size=None)``);
    a new shuffle each epoch via ``set_epoch``."""

    def __init__(self, examples: Examples, batch_size: int, shuffle: bool = True, seed: int = 0) -> None:
        self.examples, self.batch_size, self.shuffle, self.seed = examples, batch_size, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.examples) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        return self.examples.iter_batches(self.batch_size, self.shuffle, self.seed + self.epoch)


def concat_examples(parts: Sequence[Examples]) -> Examples:
    first = parts[0]
    values, offsets = {}, {}
    for name in first.spec.sparse_names:
        values[name] = np.concatenate([p.values[name] for p in parts])
        lengths = np.concatenate([np.diff(p.offsets[name]) for p in parts])
        offsets[name] = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    return Examples(
        first.spec,
        np.concatenate([p.dense for p in parts]),
        values,
        offsets,
        np.concatenate([p.labels for p in parts]),
        np.concatenate([p.groups for p in parts]),
        np.concatenate([p.timestamps for p in parts]),
    )
