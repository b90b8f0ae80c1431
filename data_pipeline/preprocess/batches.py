"""Arrow tables from the preprocessing stream -> TorchRec batches.

The conversion is the collate step of ``Dataset.iter_torch_batches`` (Ray Data runs it in its
prefetch thread, off the trainer's critical path) and the last step of the in-process path, so
both paths end in the same function. A null category is an empty bag (length 0), not a fake id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import torch
from torchrec.datasets.utils import Batch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from data_pipeline.batches import FeatureSpec


def arrow_to_batch(table: pa.Table, spec: FeatureSpec) -> Batch:
    n = table.num_rows
    if spec.dense == ("bias",) and "bias" not in table.column_names:
        dense = np.ones((n, 1), dtype=np.float32)  # DLRM needs a dense input; a constant adds no information
    else:
        dense = np.stack([_numpy(table.column(c), np.float32) for c in spec.dense], axis=1)
    values, lengths = [], []
    for name in spec.sparse_names:
        col = table.column(name)
        if col.null_count:
            present = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False))
            values.append(_numpy(col.drop_null(), np.int64))
            lengths.append(present.astype(np.int32))
        else:
            values.append(_numpy(col, np.int64))
            lengths.append(np.ones(n, dtype=np.int32))
    return Batch(
        dense_features=torch.from_numpy(np.ascontiguousarray(dense)),
        sparse_features=KeyedJaggedTensor(
            keys=spec.sparse_names,
            values=torch.from_numpy(np.concatenate(values)),
            lengths=torch.from_numpy(np.concatenate(lengths)),
        ),
        labels=torch.from_numpy(_numpy(table.column("label"), np.float32)),
    )


def _numpy(col: pa.ChunkedArray | pa.Array, dtype) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)


def rebatch(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``rows`` rows (the last may be shorter), in order, whatever the input
    table sizes: what ``iter_batches(batch_size=rows)`` does on the Ray Data path."""
    pending: list[pa.Table] = []
    held = 0
    for table in tables:
        pending.append(table)
        held += table.num_rows
        while held >= rows:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, rows)
            rest = whole.slice(rows)
            pending, held = ([rest] if rest.num_rows else []), rest.num_rows
    if held:
        yield pa.concat_tables(pending)
