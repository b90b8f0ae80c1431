"""The bytes a compressed update is: how a client writes its update and how the server reads it.

An ``EncodedUpdate`` carries the update as one ``bytes`` object, and its ``nbytes()`` is that
object's length: what the run reports as uploaded is exactly what the actor hands to Ray and the
server parses (``tests/unit/test_compression.py`` rebuilds the update from those bytes alone).
The example weight and the client id ride beside the payload, as they do in the uncompressed
count (``ClientUpdate.nbytes``).

Layout, in the model's order (``WireSchema``; both ends derive it from the model):

1. one uint32 per embedding table: how many rows the client touched (absent for whole tables);
2. each dense tensor as a matrix (``codec.as_matrix``), encoded by the dense codec, or raw float32;
3. each table's block of touched rows: their ids (int32 below 2^31 rows) and the block encoded by
   the table codec. Top-k sends no ids: its positions address the whole table (row x dim + col).

The shapes a receiver needs to split the bytes follow from the schema, the row counts and the
codec (``Codec.parts``); nothing else is sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from fedrec.pipeline.codec import Codec, Parts, PartSpec, index_dtype, matrix_shape, sizes_by_rows
from fedrec.pipeline.topk import TopK
from fedrec.updates import ClientUpdate, State

_NP = {torch.float32: np.float32, torch.float16: np.float16, torch.uint8: np.uint8, torch.int32: np.int32,
       torch.int64: np.int64}


@dataclass(frozen=True)
class WireSchema:
    """The model as the wire sees it: dense tensors (name, shape) and tables (name, rows, dim),
    in state order; ``whole_tables``: uploads carry every row (sparse updates off)."""

    dense: tuple[tuple[str, tuple[int, ...]], ...]
    tables: tuple[tuple[str, int, int], ...]
    whole_tables: bool = False

    @staticmethod
    def of(state: State, tables, whole_tables: bool = False) -> WireSchema:
        tables = set(tables)
        dense = tuple((n, tuple(t.shape)) for n, t in state.items() if n not in tables)
        tabs = tuple((n, int(t.shape[0]), int(t.shape[1])) for n, t in state.items() if n in tables)
        return WireSchema(dense, tabs, whole_tables)


@dataclass(frozen=True)
class CompressionPlan:
    """Which codec each kind of tensor goes through (``apply_to``); the other kind travels raw."""

    dense: Codec
    tables: Codec

    @staticmethod
    def of(codec: Codec, apply_to: str) -> CompressionPlan:
        raw = Codec()
        return CompressionPlan(codec if apply_to in ("dense", "all") else raw,
                               codec if apply_to in ("embeddings", "all") else raw)


@dataclass
class EncodedUpdate:
    """A client's update as sent: ``wire`` is the payload. ``scale`` is a factor the server applies
    after decoding (FedBuff's staleness discount), ``encode_seconds`` the client's encoding time
    (simulation bookkeeping, not sent)."""

    client: int
    weight: float
    wire: bytes
    scale: float = 1.0
    encode_seconds: float = 0.0

    def nbytes(self) -> int:
        return len(self.wire)

    def scaled(self, w: float) -> EncodedUpdate:
        return replace(self, scale=self.scale * w)


def _as_bytes(t: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """[B, ...] tensor -> [B, nbytes] uint8 array of each message's raw bytes."""
    if t.dtype != dtype:
        t = t.to(dtype)
    arr = t.detach().contiguous().numpy()
    return arr.reshape(arr.shape[0], -1).view(np.uint8)


class _Reader:
    """Splits [B, nbytes] uint8 rows (B messages with the same layout) into parts."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows, self.at = rows, 0

    def take(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        width = math.prod(shape) * np.dtype(_NP[dtype]).itemsize
        chunk = np.ascontiguousarray(self.rows[:, self.at : self.at + width])
        self.at += width
        return torch.from_numpy(chunk.view(_NP[dtype]).copy()).view(len(self.rows), *shape)

    def parts(self, specs: list[PartSpec]) -> Parts:
        return {name: self.take(shape, dtype) for name, shape, dtype in specs}


def _addresses_table(codec: Codec, rows: int, dim: int) -> bool:
    """Top-k blocks carry table positions instead of row ids (unless the block travels raw)."""
    return isinstance(codec, TopK) and not codec.is_raw(rows, dim)


def _groups(codec: Codec, rows: list[int], dim: int, space: int) -> dict[tuple, list[int]]:
    """Items (non-empty blocks) grouped by the form they travel in, so each group encodes at once."""
    out: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        if r:
            out.setdefault(tuple(p[0] for p in codec.parts(r, dim, space)), []).append(i)
    return out


@dataclass
class Encoded:
    """Encoded messages: each sender's payload, what the receiver decodes from it (rows aligned
    to the sender's ids: the sender's view), and, when asked for, what the encoding left out
    (message - decoded: the next error-feedback residual)."""

    wires: list[bytes]
    decoded: list[ClientUpdate]
    left: list[dict] | None = None


def encode_update(update: ClientUpdate, schema: WireSchema, plan: CompressionPlan, memory: dict,
                  seed: int) -> tuple[bytes, ClientUpdate]:
    """One update's payload and the update the server will decode from it (``encode_updates``)."""
    enc = encode_updates([update], schema, plan, [memory], [seed])
    return enc.wires[0], enc.decoded[0]


def encode_updates(updates: list[ClientUpdate], schema: WireSchema, plan: CompressionPlan, memories: list[dict],
                   seeds: list[int], carry: list[dict] | None = None, keep_left: bool = False) -> Encoded:
    """Each sender's message (its update plus ``carry[i]``, its error-feedback residual:
    ``{"dense": flat tensor of every dense entry in schema order, "sparse": {name: (ids, rows)}}``,
    or empty) encoded. ``memories``
    hold each sender's codec state per tensor (PowerSGD's Q) between messages. All senders are
    encoded together: dense tensors stacked, each table's row blocks zero-padded to one batch."""
    n = len(updates)
    carry = carry or [{}] * n
    pieces: list[list[np.ndarray]] = [[] for _ in updates]
    shared: list[np.ndarray] = []  # [n, bytes] sections, the same size in every message
    if not schema.whole_tables:
        counts = torch.tensor([[u.sparse[t][0].numel() for t, _, _ in schema.tables] for u in updates], dtype=torch.int32)
        shared.append(_as_bytes(counts, torch.int32))
    dense: list[dict] = [{} for _ in updates]
    left: list[dict] = [{"dense": None, "sparse": {}} for _ in updates]
    carried = _carried_dense(schema, carry)
    rests, at = [], 0
    for name, shape in schema.dense:
        rows, cols = matrix_shape(shape)
        m = torch.stack([u.dense[name] for u in updates]).reshape(n, rows, cols)
        if carried is not None:
            m = m + carried[:, at : at + rows * cols].view(n, rows, cols)
        at += rows * cols
        parts = plan.dense.encode(m, [mem.setdefault(name, {}) for mem in memories], seeds)
        shared.extend(_as_bytes(parts[p], dtype) for p, _, dtype in plan.dense.parts(rows, cols))
        values = plan.dense.decode(parts, rows, cols)
        for d, value in zip(dense, values.reshape(n, *shape)):
            d[name] = value
        rests.append((m - values).reshape(n, -1))
    if keep_left and rests:
        flat = torch.cat(rests, dim=1)
        for i, lf in enumerate(left):
            lf["dense"] = flat[i].clone()  # one tensor per sender: all its dense residuals, in schema order
    if shared:
        joined = np.concatenate(shared, axis=1)
        for i in range(n):
            pieces[i].append(joined[i])
    sparse: list[dict] = [{} for _ in updates]
    for name, table_rows, dim in schema.tables:
        blocks = [(u.sparse[name][0], _aligned(u.sparse[name], c.get("sparse", {}).get(name) if c else None))
                  for u, c in zip(updates, carry)]
        for i, (ids, block) in enumerate(blocks):
            if ids.numel() == 0:
                sparse[i][name] = (ids, block)
                left[i]["sparse"][name] = (ids, block)
        _encode_table(name, blocks, table_rows, dim, schema, plan.tables,
                      [mem.setdefault(name, {}) for mem in memories], seeds, pieces, sparse, left if keep_left else None)
    wires = [b"".join(a.tobytes() for a in own) for own in pieces]
    decoded = [ClientUpdate(u.client, u.weight, dense[i], sparse[i], u.whole_tables) for i, u in enumerate(updates)]
    return Encoded(wires, decoded, left if keep_left else None)


def _carried_dense(schema: WireSchema, carry: list[dict]) -> torch.Tensor | None:
    """The senders' carried dense residuals as one [senders, dense entries] tensor (None: none)."""
    if not any(c and c.get("dense") is not None for c in carry):
        return None
    width = sum(math.prod(shape) for _, shape in schema.dense)
    return torch.stack([c["dense"] if c and c.get("dense") is not None else torch.zeros(width) for c in carry])


def _aligned(delta: tuple[torch.Tensor, torch.Tensor], carried: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """A block of rows plus the carried rows with the same ids (a client's ids are fixed by its
    data, so they match; rows of ids no longer present are dropped)."""
    ids, rows = delta
    if carried is None:
        return rows
    old_ids, old_rows = carried
    if torch.equal(old_ids, ids):
        return rows + old_rows
    out = rows.clone()
    if len(ids) and len(old_ids):
        pos = torch.searchsorted(ids, old_ids).clamp_max(len(ids) - 1)
        hit = ids[pos] == old_ids
        out.index_add_(0, pos[hit], old_rows[hit])
    return out


def _encode_table(name: str, blocks: list, table_rows: int, dim: int, schema: WireSchema, codec: Codec,
                  memories: list[dict], seeds: list[int], pieces: list[list[np.ndarray]], sparse: list[dict],
                  left: list[dict] | None) -> None:
    """One table's row blocks of all senders: appended to each one's pieces, decoded into
    ``sparse``, and what was left out into ``left``."""
    rows = [ids.numel() for ids, _ in blocks]
    space = table_rows * dim
    for form, items in _groups(codec, rows, dim, space).items():
        use = codec if form != ("raw",) else codec.raw_codec()
        valid = [rows[i] for i in items]
        padded = torch.nn.utils.rnn.pad_sequence([blocks[i][1] for i in items], batch_first=True)
        height = padded.shape[1]
        parts = use.encode(padded, [memories[i] for i in items], [seeds[i] for i in items], valid=valid)
        addressed = _addresses_table(codec, valid[0], dim)
        ids_padded = torch.nn.utils.rnn.pad_sequence([blocks[i][0] for i in items], batch_first=True)
        if addressed:  # top-k: each sender's own k_i of the largest-first entries, scattered back
            local = parts["idx"]
            keep = torch.arange(local.shape[1]).unsqueeze(0) < torch.tensor([codec.k(r, dim) for r in valid]).unsqueeze(1)
            decoded = torch.zeros(len(items), height * dim).scatter_(1, local, parts["val"] * keep).view(-1, height, dim)
            parts = {**parts, "idx": ids_padded.gather(1, local // dim) * dim + local % dim}  # positions in the table
        else:
            decoded = use.decode(parts, height, dim)
            if not schema.whole_tables:
                ids_bytes = _as_bytes(ids_padded, index_dtype(table_rows))
        specs = use.parts(valid[0], dim, space)
        arrays = {p: _as_bytes(parts[p], dtype) for p, _, dtype in specs}
        rest = (padded - decoded) if left is not None else None
        for j, i in enumerate(items):
            r = valid[j]
            if not addressed and not schema.whole_tables:
                pieces[i].append(ids_bytes[j, : r * ids_bytes.shape[1] // height])
            for p, shape, dtype in use.parts(r, dim, space):
                # parts padded along their first dimension (P, raw rows, top-k's largest-first
                # entries) keep this sender's bytes as a prefix
                pieces[i].append(arrays[p][j, : math.prod(shape) * np.dtype(_NP[dtype]).itemsize])
            sparse[i][name] = (blocks[i][0], decoded[j, :r])
            if rest is not None:
                left[i]["sparse"][name] = (blocks[i][0], rest[j, :r].clone())


def decode_update(enc: EncodedUpdate, schema: WireSchema, plan: CompressionPlan) -> ClientUpdate:
    return decode_updates([enc], schema, plan)[0]


def decode_updates(encs: list[EncodedUpdate], schema: WireSchema, plan: CompressionPlan) -> list[ClientUpdate]:
    """The updates the server reads from the payloads (each times its ``scale``). Dense
    sections, laid out alike in every payload, are decoded together, and each table's blocks
    are decoded together (zero-padded), as on the sending side."""
    if not encs:
        return []
    n, tables = len(encs), len(schema.tables)
    head = 0 if schema.whole_tables else 4 * tables
    width = head + sum(plan.dense.nbytes(*matrix_shape(shape)) for _, shape in schema.dense)
    if any(len(e.wire) < width for e in encs):
        raise ValueError(f"a payload is shorter than its fixed part ({width} bytes)")
    fixed = np.frombuffer(b"".join(e.wire[:width] for e in encs), dtype=np.uint8).reshape(n, width)
    reader = _Reader(fixed)
    counts = (reader.take((tables,), torch.int32).tolist() if not schema.whole_tables
              else [[rows for _, rows, _ in schema.tables]] * n)
    scale = torch.tensor([e.scale for e in encs], dtype=torch.float32)
    dense: list[dict] = [{} for _ in encs]
    for name, shape in schema.dense:
        rows, cols = matrix_shape(shape)
        values = plan.dense.decode(reader.parts(plan.dense.parts(rows, cols)), rows, cols)
        values = values.reshape(n, *shape) * scale.view(-1, *([1] * len(shape)))
        for d, v in zip(dense, values):
            d[name] = v
    cursors = [width] * n
    sparse: list[dict] = [{} for _ in encs]
    for t, (name, table_rows, dim) in enumerate(schema.tables):
        rows = [c[t] for c in counts]
        _decode_table(name, encs, rows, table_rows, dim, schema, plan.tables, cursors, sparse)
    for e, at in zip(encs, cursors):
        if at != len(e.wire):
            raise ValueError(f"client {e.client}: {len(e.wire) - at} bytes left after decoding its update")
    return [ClientUpdate(e.client, e.weight, dense[i], sparse[i], schema.whole_tables) for i, e in enumerate(encs)]


def _decode_table(name: str, encs: list[EncodedUpdate], rows: list[int], table_rows: int, dim: int,
                  schema: WireSchema, codec: Codec, cursors: list[int], sparse: list[dict]) -> None:
    space = table_rows * dim
    for i, r in enumerate(rows):
        if r == 0:
            sparse[i][name] = (torch.zeros(0, dtype=torch.int64), torch.zeros(0, dim))
    for form, items in _groups(codec, rows, dim, space).items():
        use = codec if form != ("raw",) else codec.raw_codec()
        addressed = _addresses_table(codec, rows[items[0]], dim)
        ids_list, parts_list = [], []
        for i in items:
            r, wire = rows[i], encs[i].wire
            if not addressed and not schema.whole_tables:
                dtype = index_dtype(table_rows)
                count = r * np.dtype(_NP[dtype]).itemsize
                ids_list.append(torch.from_numpy(np.frombuffer(wire, _NP[dtype], r, cursors[i]).astype(np.int64)))
                cursors[i] += count
            specs = use.parts(r, dim, space)
            own = {}
            for p, shape, dtype in specs:
                size = math.prod(shape)
                own[p] = torch.from_numpy(np.frombuffer(wire, _NP[dtype], size, cursors[i]).copy()).view(shape)
                cursors[i] += size * np.dtype(_NP[dtype]).itemsize
            parts_list.append(own)
        scale = [encs[i].scale for i in items]
        if addressed:
            for j, i in enumerate(items):
                pos = parts_list[j]["idx"].long()
                ids, where = torch.unique(pos // dim, sorted=True, return_inverse=True)
                block = torch.zeros(len(ids), dim)
                block[where, pos % dim] = parts_list[j]["val"]
                sparse[i][name] = (ids, block * scale[j])
            continue
        padded = {p: torch.nn.utils.rnn.pad_sequence([own[p] for own in parts_list], batch_first=True) for p in parts_list[0]}
        height = max(rows[i] for i in items)
        blocks = use.decode(padded, height, dim) * torch.tensor(scale).view(-1, 1, 1)
        for j, i in enumerate(items):
            ids = torch.arange(table_rows) if schema.whole_tables else ids_list[j]
            sparse[i][name] = (ids, blocks[j, : rows[i]])


def update_nbytes(schema: WireSchema, plan: CompressionPlan, rows: dict[str, np.ndarray]) -> np.ndarray:
    """Payload bytes for every client at once, from the rows each touches per table (the
    simulated clock prices uploads and downloads with it; equal to ``len(wire)``)."""
    n = len(next(iter(rows.values()))) if rows else 1
    total = np.zeros(n, dtype=np.int64)
    if not schema.whole_tables:
        total += 4 * len(schema.tables)
    total += sum(plan.dense.nbytes(*matrix_shape(shape)) for _, shape in schema.dense)
    for name, table_rows, dim in schema.tables:
        r = np.full(n, table_rows) if schema.whole_tables else np.asarray(rows[name], dtype=np.int64)
        codec, space = plan.tables, table_rows * dim
        total += sizes_by_rows(codec, r, dim, space)
        if not schema.whole_tables:
            id_bytes = 4 if index_dtype(table_rows) == torch.int32 else 8
            distinct, inverse = np.unique(r, return_inverse=True)
            ids_sent = np.array([0 if k == 0 or _addresses_table(codec, int(k), dim) else k * id_bytes
                                 for k in distinct], dtype=np.int64)
            total += ids_sent[inverse]
    return total
