"""How a table is cut into shards, the way TorchRec cuts it, and where each of its rows lands.

Three sharding types, each one TorchRec runs in training (``torchrec.distributed``):

* ``table_wise``: one shard, the whole table on one rank.
* ``column_wise``: ``k`` shards, each all rows and a slice of the columns (a multiple of 4, as
  FBGEMM's kernels need), on ``k`` different ranks. Each shard looks up every id of the table (the
  ids travel to every shard: the extra all-to-all) and sends its slice of the pooled output.
* ``row_wise``: one shard per rank, TorchRec's even blocks (``ceil(rows / gpus)`` rows each, the
  last one shorter), block ``r`` on rank ``r``. Ids go only to the block that holds them, but every
  block sends a partial pooled output for every sample, which the receiver sums (the output
  reduction). TorchRec trains only this even layout (uneven ``row_wise`` sizes are inference-only).

Row order. A table's rows are ranked hottest first (rank 0 = most accessed), as in plan v1. In a
``table_wise`` or ``column_wise`` shard the row with hotness rank ``k`` is row ``k``, so its
``hbm_rows`` hottest rows are rows ``0 .. hbm_rows - 1``. For ``row_wise`` the rows are dealt to the
blocks round-robin in hotness order (the hottest row to block 0, the next to block 1, ...; once the
shorter last block is full, among the others): every block then sees the table's access curve
scaled by its share of the rows, and each block's rows are again sorted hottest first, its
``hbm_rows`` hottest being its first rows. ``deal`` maps hotness ranks to (block, position).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sharding.workload import TableWorkload

TABLE_WISE, ROW_WISE, COLUMN_WISE = "table_wise", "row_wise", "column_wise"
SHARDING_TYPES = (TABLE_WISE, ROW_WISE, COLUMN_WISE)
COLUMN_MULTIPLE = 4  # FBGEMM's table-batched kernels need dims that are multiples of 4


@dataclass(frozen=True)
class Part:
    """One shard-to-be of a table, before its rank (unless fixed) and hot rows are chosen.

    ``lookup_share``: the fraction of the table's lookups this part serves (1 for column slices).
    ``gang``: parts of one split table share it (they go to distinct ranks and keep the same number
    of hot rows, so the hot rows of the whole table form one band TorchRec can shard the same way);
    -1 for a table-wise part. ``fixed_rank``: row-wise block ``r`` must sit on rank ``r``."""

    table: int
    sharding: str
    row_start: int
    row_end: int
    col_start: int
    col_end: int
    lookup_share: float = 1.0
    gang: int = -1
    fixed_rank: int = -1

    @property
    def rows(self) -> int:
        return self.row_end - self.row_start

    @property
    def cols(self) -> int:
        return self.col_end - self.col_start


def row_blocks(rows: int, gpus: int) -> list[int]:
    """TorchRec's even row-wise block sizes: ``ceil(rows / gpus)`` rows per rank, the last shorter."""
    block = -(-rows // gpus) if rows else 0
    sizes = []
    left = rows
    for _ in range(gpus):
        take = min(block, left)
        sizes.append(take)
        left -= take
    return sizes


def can_row_split(t: TableWorkload, gpus: int) -> bool:
    """Row-wise needs every rank to hold a non-empty block, true from ``gpus * (gpus - 1)`` rows on."""
    return gpus > 1 and t.rows >= gpus * gpus


def column_splits(dim: int, gpus: int) -> list[int]:
    """Shard counts ``k`` (2 .. gpus) that cut ``dim`` into equal slices of a multiple of 4 columns."""
    return [k for k in range(2, gpus + 1) if dim % k == 0 and (dim // k) % COLUMN_MULTIPLE == 0]


def table_parts(index: int, t: TableWorkload, sharding: str = TABLE_WISE, k: int = 1, gpus: int = 1) -> list[Part]:
    """The parts of table ``index`` under a sharding type (``k`` column slices for column-wise;
    one block per GPU for row-wise)."""
    if sharding == TABLE_WISE:
        return [Part(index, TABLE_WISE, 0, t.rows, 0, t.dim)]
    if sharding == COLUMN_WISE:
        width = t.dim // k
        return [Part(index, COLUMN_WISE, 0, t.rows, i * width, (i + 1) * width, 1.0, index) for i in range(k)]
    if sharding == ROW_WISE:
        sizes = row_blocks(t.rows, gpus)
        offsets = np.r_[0, np.cumsum(sizes)]
        return [
            Part(index, ROW_WISE, int(offsets[r]), int(offsets[r + 1]), 0, t.dim, sizes[r] / max(t.rows, 1), index, r)
            for r in range(gpus)
        ]
    raise ValueError(f"unknown sharding type {sharding!r}; expected one of {SHARDING_TYPES}")


def deal(ranks: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise layout: (block, position in block) of each hotness rank, dealt round-robin over the
    blocks that still have room (block sizes non-increasing, as ``row_blocks`` makes them)."""
    sizes_arr = np.asarray(sizes, dtype=np.int64)
    if np.any(np.diff(sizes_arr) > 0):
        raise ValueError("row-wise block sizes must be non-increasing")
    ranks = np.asarray(ranks, dtype=np.int64)
    block = np.zeros(len(ranks), dtype=np.int64)
    pos = np.zeros(len(ranks), dtype=np.int64)
    # Levels j = 0, 1, ...: at level j the blocks with more than j rows each take one row. Between
    # two distinct block sizes the number of active blocks is constant.
    level, dealt = 0, 0
    for size in sorted(set(sizes_arr[sizes_arr > 0].tolist())):
        active = int((sizes_arr >= size).sum())
        span = (size - level) * active  # rows dealt while this many blocks are active
        sel = (ranks >= dealt) & (ranks < dealt + span)
        off = ranks[sel] - dealt
        block[sel] = off % active
        pos[sel] = level + off // active
        level, dealt = size, dealt + span
    return block, pos


def hotness_of(sizes: list[int]) -> list[np.ndarray]:
    """Row-wise layout, inverse of ``deal``: for each block, the hotness ranks of its rows in order."""
    total = int(sum(sizes))
    block, pos = deal(np.arange(total), sizes)
    out = []
    for r, size in enumerate(sizes):
        ranks = np.flatnonzero(block == r)
        out.append(ranks[np.argsort(pos[ranks])] if size else ranks)
    return out
