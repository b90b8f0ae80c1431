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

Both directions run under ``torch.inference_mode``: nothing here is differentiated, and on the
small tensors of one client's update the autograd bookkeeping that every torch call otherwise
does is a fifth of the codec's time. What they return (decoded updates, error-feedback
residuals, PowerSGD's Q) are inference tensors: readable, copyable into parameters and usable as
operands anywhere, but not to be modified in place outside inference mode (clone first).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from fedrec.pipeline.codec import (
    Codec,
    Parts,
    PartSpec,
    index_dtype,
    matrix_shape,
    sizes_by_rows,
    spec_nbytes,
)
from fedrec.pipeline.topk import TopK
from fedrec.updates import AggregatedUpdate, ClientUpdate, SparseRows, State

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
        width = math.prod(shape) * dtype.itemsize
        chunk = np.ascontiguousarray(self.rows[:, self.at : self.at + width])
        self.at += width
        return torch.from_numpy(chunk.view(_NP[dtype]).copy()).view(len(self.rows), *shape)

    def parts(self, specs: list[PartSpec]) -> Parts:
        return {name: self.take(shape, dtype) for name, shape, dtype in specs}


def _addresses_table(codec: Codec, rows: int, dim: int) -> bool:
    """Top-k blocks carry table positions instead of row ids (unless the block travels raw)."""
    return isinstance(codec, TopK) and not codec.is_raw(rows, dim)


@dataclass
class _Section:
    """One stretch of a group's payloads: a codec part (or the row ids, ``"ids"``) as ``shape`` at
    the group's height, of which each item sends ``widths[j]`` bytes, a prefix of the padded part."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    widths: np.ndarray

    @property
    def nbytes(self) -> int:
        return spec_nbytes([(self.name, self.shape, self.dtype)])

    @property
    def counts(self) -> np.ndarray:
        """How many values each item sends."""
        return self.widths // self.dtype.itemsize


@dataclass
class _Group:
    """A table's items (non-empty blocks) that travel in the same form, so they encode (and
    decode) at once: ascending batch indices, the codec of the form, the tallest block, and the
    sections each item's payload holds for the table, in wire order."""

    codec: Codec
    items: np.ndarray
    height: int
    addressed: bool
    sections: list[_Section]


def _table_groups(codec: Codec, rows: list[int], table_rows: int, dim: int, whole_tables: bool) -> list[_Group]:
    """A table's items grouped by form (in the order of their first items), with each item's
    bytes per section; both ends derive this from the row counts alone. Memoized on the row
    counts: a table every sender touches in the same number of rows (a user's occupation, gender
    or age bucket: one row each) lays out the same way every round, at both ends. The groups are
    read, never written, by their users."""
    return _table_groups_of(codec, tuple(rows), table_rows, dim, whole_tables)


@functools.lru_cache(maxsize=256)
def _table_groups_of(codec: Codec, rows: tuple[int, ...], table_rows: int, dim: int,
                     whole_tables: bool) -> list[_Group]:
    """``_table_groups``. The codec is asked once per distinct row count, not once per sender (a
    plain dict: numpy's set routines cost more than they save on a few dozen senders)."""
    space = table_rows * dim
    forms: dict[int, tuple] = {}
    members: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        if r:
            if r not in forms:
                forms[r] = tuple(p[0] for p in codec.parts(r, dim, space))
            members.setdefault(forms[r], []).append(i)
    return [_group(codec, form, items, rows, table_rows, dim, whole_tables) for form, items in members.items()]


def _group(codec: Codec, form: tuple, items: list[int], rows: list[int], table_rows: int, dim: int,
           whole_tables: bool) -> _Group:
    """One form's items with their sections; byte sizes come from the codec once per distinct
    row count, and the section shapes from the tallest block (what zero-padding gives)."""
    space = table_rows * dim
    use = codec if form != ("raw",) else codec.raw_codec()
    valid = [rows[i] for i in items]
    height = max(valid)
    addressed = _addresses_table(codec, height, dim)
    sizes = {r: [spec_nbytes([spec]) for spec in use.parts(r, dim, space)] for r in set(valid)}
    sections = []
    if not addressed and not whole_tables:
        dtype = index_dtype(table_rows)
        sections.append(_Section("ids", dtype, (height,), np.array(valid) * dtype.itemsize))
    for k, (p, shape, dtype) in enumerate(use.parts(height, dim, space)):
        sections.append(_Section(p, dtype, shape, np.array([sizes[r][k] for r in valid])))
    return _Group(use, np.array(items), height, addressed, sections)


def _pad(tensors: list[torch.Tensor], lengths: list[int]) -> torch.Tensor:
    """``pad_sequence(tensors, batch_first=True)``, but a plain stack when no padding is needed
    (one-row tables, whole tables): ``pad_sequence`` costs ten times a stack on small blocks."""
    if min(lengths) == max(lengths):
        return torch.stack(tensors)
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True)


def _unpad(padded: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
    """Each item's rows of a zero-padded batch (views, as ``padded[j, :r]``): unbound in one call,
    and only the shorter items sliced, instead of a two-level index per item."""
    height = padded.shape[1]
    return [t if r == height else t[:r] for t, r in zip(padded.unbind(0), lengths)]


class _Packer:
    """Every sender's payload, built at once: each section added is a [items, width] byte array of
    which item j sends the first ``widths[j]`` bytes; a payload is its sender's prefixes in the
    order added. Vectorized: one masked copy of all sections replaces a slice and a ``tobytes``
    per sender and part."""

    def __init__(self, n: int) -> None:
        self.n, self.sections = n, []

    def add(self, items: np.ndarray, data: np.ndarray, widths: np.ndarray) -> None:
        self.sections.append((items, data, widths))

    def wires(self) -> list[bytes]:
        total = sum(data.shape[1] for _, data, _ in self.sections)
        out = np.zeros((self.n, total), dtype=np.uint8)
        sent = np.zeros((self.n, total), dtype=bool)
        at = 0
        for items, data, widths in self.sections:
            width = data.shape[1]
            rows = slice(None) if len(items) == self.n else items  # plain slicing where every sender has the section
            out[rows, at : at + width] = data
            sent[rows, at : at + width] = True if widths.min() == width else np.arange(width) < widths[:, None]
            at += width
        flat = out[sent].tobytes()  # row-major: each sender's bytes in order, one sender after another
        ends = np.cumsum(sent.sum(axis=1)).tolist()
        return [flat[a:b] for a, b in zip([0, *ends[:-1]], ends)]


@dataclass
class Encoded:
    """Encoded messages: each sender's payload, what the receiver decodes from it (rows aligned
    to the sender's ids: the sender's view), and, when asked for, what the encoding left out
    (message - decoded: the next error-feedback residual). ``decoded`` is None when not asked for.
    """

    wires: list[bytes]
    decoded: list[ClientUpdate] | None
    left: list[dict] | None = None


def encode_update(update: ClientUpdate, schema: WireSchema, plan: CompressionPlan, memory: dict,
                  seed: int) -> tuple[bytes, ClientUpdate]:
    """One update's payload and the update the server will decode from it (``encode_updates``)."""
    enc = encode_updates([update], schema, plan, [memory], [seed])
    return enc.wires[0], enc.decoded[0]


@torch.inference_mode()
def encode_updates(updates: list[ClientUpdate], schema: WireSchema, plan: CompressionPlan, memories: list[dict],
                   seeds: list[int], carry: list[dict] | None = None, keep_left: bool = False,
                   keep_decoded: bool = True) -> Encoded:
    """Each sender's message (its update plus ``carry[i]``, its error-feedback residual:
    ``{"dense": flat tensor of every dense entry in schema order, "sparse": {name: (ids, rows)}}``,
    or empty) encoded. ``memories``
    hold each sender's codec state per compressed tensor (PowerSGD's Q) between messages. All senders are
    encoded together: dense tensors stacked, each table's row blocks zero-padded to one batch.
    ``keep_decoded=False`` skips building the decoded updates, which a client that only sends
    (``Compress``) never reads: one tensor view per sender and tensor fewer."""
    n = len(updates)
    carry = carry or [{}] * n
    packer = _Packer(n)
    shared: list[np.ndarray] = []  # [n, bytes] sections, the same size in every message
    counts = [[u.sparse[t][0].numel() for u in updates] for t, _, _ in schema.tables]  # rows, per table
    if not schema.whole_tables:
        shared.append(np.ascontiguousarray(np.array(counts, dtype=np.int32).T).view(np.uint8).reshape(n, -1))
    dense: list[dict] = [{} for _ in updates]
    left: list[dict] = [{"dense": None, "sparse": {}} for _ in updates]
    carried = _carried_dense(schema, carry)
    if schema.dense:
        _encode_dense(updates, schema, plan.dense, memories, seeds, carried, shared,
                      dense if keep_decoded else None, left if keep_left else None)
    if shared:
        joined = np.concatenate(shared, axis=1)
        packer.add(np.arange(n), joined, np.full(n, joined.shape[1]))
    sparse: list[dict] = [{} for _ in updates]
    kept = sparse if keep_decoded else None
    carried_rows = [c.get("sparse") or {} if c else {} for c in carry]
    for (name, table_rows, dim), rows in zip(schema.tables, counts):
        blocks = [_with_carry(u.sparse[name], c.get(name)) for u, c in zip(updates, carried_rows)]
        for i in (i for i, r in enumerate(rows) if r == 0):
            ids, delta, old = blocks[i]
            block = delta if old is None else delta + old
            sparse[i][name] = (ids, block)
            left[i]["sparse"][name] = (ids, block)
        _encode_table(name, blocks, rows, table_rows, dim, schema, plan.tables,
                      [mem.setdefault(name, {}) for mem in memories], seeds, packer, kept, left if keep_left else None)
    wires = packer.wires()
    decoded = ([ClientUpdate(u.client, u.weight, dense[i], sparse[i], u.whole_tables) for i, u in enumerate(updates)]
               if keep_decoded else None)
    return Encoded(wires, decoded, left if keep_left else None)


def _encode_dense(updates: list[ClientUpdate], schema: WireSchema, codec: Codec, memories: list[dict],
                  seeds: list[int], carried: torch.Tensor | None, shared: list[np.ndarray], dense: list[dict] | None,
                  left: list[dict] | None) -> None:
    """Every sender's dense tensors (plus its carried residual): their sections appended to
    ``shared`` in schema order, decoded into ``dense`` and what was left out into ``left`` (each
    skipped when None). Vectorized: all dense entries are one [senders, entries] matrix, and the
    tensors that travel raw (biases, thin weights: most of them, and tiny) are written in one
    elementwise conversion of that matrix, whose slices are their sections, instead of one
    encode, byte conversion and decode each; only the compressed tensors go through the codec."""
    n = len(updates)
    m_all = torch.cat([torch.stack([u.dense[name] for u in updates]).reshape(n, -1) for name, _ in schema.dense], dim=1)
    if carried is not None:
        m_all = m_all + carried
    raw = codec.raw_codec()
    wire_all = raw.as_wire(m_all)  # every entry as a raw section writes it (wasted on the compressed few)
    raw_bytes = _as_bytes(wire_all, raw.raw_dtype)
    sent_all = wire_all.float()
    itemsize = raw.raw_dtype.itemsize
    values, at = [], 0
    for name, shape in schema.dense:
        rows, cols = matrix_shape(shape)
        width = rows * cols
        if codec.is_raw(rows, cols):  # what ``codec.encode`` sends for it: the entries, in the raw format
            shared.append(raw_bytes[:, at * itemsize : (at + width) * itemsize])
            values.append(sent_all[:, at : at + width])
        else:  # only a compressed tensor has codec state (a memory per sender)
            mems = [mem.setdefault(name, {}) for mem in memories]
            parts = codec.encode(m_all[:, at : at + width].reshape(n, rows, cols).contiguous(), mems, seeds)
            shared.extend(_as_bytes(parts[p], dtype) for p, _, dtype in codec.parts(rows, cols))
            if dense is not None or left is not None:
                values.append(codec.decode(parts, rows, cols).reshape(n, width))
        at += width
    if dense is None and left is None:
        return  # nothing reads what the receiver will decode (a client without error feedback)
    if dense is not None:
        for (name, shape), value in zip(schema.dense, values):
            for d, v in zip(dense, value.reshape(n, *shape)):
                d[name] = v
    if left is not None:
        flat = m_all - torch.cat(values, dim=1)
        for lf, rest in zip(left, flat.unbind(0)):
            lf["dense"] = rest.clone()  # one tensor per sender: all its dense residuals, in schema order


def _carried_dense(schema: WireSchema, carry: list[dict]) -> torch.Tensor | None:
    """The senders' carried dense residuals as one [senders, dense entries] tensor (None: none)."""
    if not any(c and c.get("dense") is not None for c in carry):
        return None
    width = sum(math.prod(shape) for _, shape in schema.dense)
    return torch.stack([c["dense"] if c and c.get("dense") is not None else torch.zeros(width) for c in carry])


def _with_carry(delta: tuple[torch.Tensor, torch.Tensor],
                carried: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A block's ids, its rows and the carried rows to add to them (None: nothing to add, or
    already added). A client's ids are fixed by its data, so the carried ids normally match and
    the sum is left to ``_encode_table``, which adds a table's blocks in one batched add;
    otherwise the carried rows of ids still present are added here and the rest dropped."""
    ids, rows = delta
    if carried is None:
        return ids, rows, None
    old_ids, old_rows = carried
    if old_ids is ids or torch.equal(old_ids, ids):
        return ids, rows, old_rows
    out = rows.clone()
    if len(ids) and len(old_ids):
        pos = torch.searchsorted(ids, old_ids).clamp_max(len(ids) - 1)
        hit = ids[pos] == old_ids
        out.index_add_(0, pos[hit], old_rows[hit])
    return ids, out, None


def _summed(blocks: list, items: list[int], valid: list[int]) -> torch.Tensor:
    """The items' blocks plus their carried rows, zero-padded to one batch. Vectorized: where
    every item has carried rows, rows and carried rows are padded apart and added once (the same
    sums, element by element, and 0 + 0 in the padding) instead of one add per item."""
    olds = [blocks[i][2] for i in items]
    if all(o is not None for o in olds):
        return _pad([blocks[i][1] for i in items], valid) + _pad(olds, valid)
    return _pad([blocks[i][1] if o is None else blocks[i][1] + o for i, o in zip(items, olds)], valid)


def _encode_table(name: str, blocks: list, rows: list[int], table_rows: int, dim: int, schema: WireSchema,
                  codec: Codec, memories: list[dict], seeds: list[int], packer: _Packer, sparse: list[dict] | None,
                  left: list[dict] | None) -> None:
    """One table's row blocks of all senders (``rows``: how many each has): added to their
    payloads (``packer``), decoded into ``sparse``, and what was left out into ``left`` (each
    skipped when None)."""
    for group in _table_groups(codec, rows, table_rows, dim, schema.whole_tables):
        items, use = group.items.tolist(), group.codec
        valid = [rows[i] for i in items]
        padded = _summed(blocks, items, valid)
        parts = use.encode(padded, [memories[i] for i in items], [seeds[i] for i in items], valid=valid)
        if group.addressed or group.sections[0].name == "ids":
            ids_padded = _pad([blocks[i][0] for i in items], valid)
        sent = parts
        if group.addressed:  # positions in the table
            sent = {**parts, "idx": ids_padded.gather(1, parts["idx"] // dim) * dim + parts["idx"] % dim}
        elif group.sections[0].name == "ids":
            sent = {**parts, "ids": ids_padded}
        for section in group.sections:
            # parts padded along their first dimension (ids, P, raw rows, top-k's largest-first
            # entries) keep each sender's bytes as a prefix
            packer.add(group.items, _as_bytes(sent[section.name], section.dtype), section.widths)
        if sparse is None and left is None:
            continue  # nothing reads what the receiver will decode
        if group.addressed:  # top-k: each sender's own k_i of the largest-first entries, scattered back
            local = parts["idx"]
            keep = torch.arange(local.shape[1]).unsqueeze(0) < torch.tensor([codec.k(r, dim) for r in valid]).unsqueeze(1)
            decoded = torch.zeros(len(items), group.height * dim).scatter_(1, local, parts["val"] * keep)
            decoded = decoded.view(-1, group.height, dim)
        else:
            decoded = use.decode(parts, group.height, dim)
        if sparse is not None:
            for i, rows_i in zip(items, _unpad(decoded, valid)):
                sparse[i][name] = (blocks[i][0], rows_i)
        if left is not None:
            for i, rest in zip(items, _unpad(padded - decoded, valid)):
                left[i]["sparse"][name] = (blocks[i][0], rest.clone())


def decode_update(enc: EncodedUpdate, schema: WireSchema, plan: CompressionPlan) -> ClientUpdate:
    return decode_updates([enc], schema, plan)[0]


@dataclass
class _Blocks:
    """One form's decoded blocks of a table: the items' batch indices (ascending), their row ids
    zero-padded [items, height] (None: whole tables, every row in order), the blocks [items,
    height, dim] times each payload's scale, and each item's real row count."""

    items: list[int]
    ids: torch.Tensor | None
    rows: torch.Tensor
    valid: list[int]


@dataclass
class DecodedBatch:
    """Payloads decoded, still batched: dense tensors [payloads, *shape] in schema order (times
    each payload's scale), and per table its batched blocks, the blocks decoded one item at a time
    (top-k's: ``(item, ids, rows)``) and the items that sent no rows. ``updates()`` splits it into
    one update per payload; ``weighted_sum()`` sums it as the aggregator would, without them."""

    encs: list[EncodedUpdate]
    schema: WireSchema
    dense: list[torch.Tensor]
    blocks: list[list[_Blocks]] = field(default_factory=list)
    singles: list[list[tuple[int, torch.Tensor, torch.Tensor]]] = field(default_factory=list)
    empty: list[list[int]] = field(default_factory=list)

    @torch.inference_mode()
    def updates(self) -> list[ClientUpdate]:
        """The update each payload carries."""
        schema = self.schema
        dense: list[dict] = [{} for _ in self.encs]
        for (name, _), values in zip(schema.dense, self.dense):
            for d, v in zip(dense, values):
                d[name] = v
        sparse: list[dict] = [{} for _ in self.encs]
        for t, (name, table_rows, dim) in enumerate(schema.tables):
            for i in self.empty[t]:
                sparse[i][name] = (torch.zeros(0, dtype=torch.int64), torch.zeros(0, dim))
            for b in self.blocks[t]:
                ids = _unpad(b.ids, b.valid) if b.ids is not None else None
                for j, (i, rows) in enumerate(zip(b.items, _unpad(b.rows, b.valid))):
                    sparse[i][name] = (torch.arange(table_rows) if ids is None else ids[j], rows)
            for i, ids, rows in self.singles[t]:
                sparse[i][name] = (ids, rows)
        return [ClientUpdate(e.client, e.weight, dense[i], sparse[i], schema.whole_tables)
                for i, e in enumerate(self.encs)]

    @torch.inference_mode()
    def weighted_sum(self) -> AggregatedUpdate:
        """``AggregatedUpdate.from_clients(self.updates())`` bit for bit, without building the
        updates: one multiply-and-sum per dense tensor, and each table's rows gathered from their
        padded blocks in payload order and coalesced as ``combine`` does. A server that only
        averages needs no more: no tensor view per client and tensor, no per-client sums."""
        if len(self.encs) < 2:  # ``combine`` returns a lone client's sum as it is, uncoalesced
            return AggregatedUpdate.from_clients(self.updates())
        w = torch.tensor([float(e.weight) for e in self.encs], dtype=torch.float32)
        dense = {name: (values * w.view(-1, *([1] * (values.dim() - 1)))).sum(0)
                 for (name, _), values in zip(self.schema.dense, self.dense)}
        sparse = {name: self._table_sum(t, table_rows, dim, w)
                  for t, (name, table_rows, dim) in enumerate(self.schema.tables)}
        return AggregatedUpdate(sum(float(e.weight) for e in self.encs), len(self.encs), dense, sparse)

    def _table_sum(self, t: int, table_rows: int, dim: int, w: torch.Tensor) -> SparseRows:
        ids, rows, owner = [torch.zeros(0, dtype=torch.int64)], [torch.zeros(0, dim)], [torch.zeros(0, dtype=torch.int64)]
        for b in self.blocks[t]:
            real = torch.arange(b.rows.shape[1]) < torch.tensor(b.valid).unsqueeze(1)  # [items, height]
            ids.append(b.ids[real] if b.ids is not None else torch.arange(table_rows).repeat(len(b.items)))
            rows.append(b.rows[real])
            owner.append(torch.tensor(b.items).repeat_interleave(torch.tensor(b.valid)))
        for i, item_ids, item_rows in self.singles[t]:
            ids.append(item_ids)
            rows.append(item_rows)
            owner.append(torch.full((len(item_ids),), i, dtype=torch.int64))
        owner_all = torch.cat(owner)
        order = torch.argsort(owner_all, stable=True)  # payload order, each payload's rows in its order
        by = owner_all[order]
        distinct, inverse = torch.unique(torch.cat(ids)[order], sorted=True, return_inverse=True)
        delta = torch.zeros(len(distinct), dim).index_add_(0, inverse, torch.cat(rows)[order] * w[by].unsqueeze(1))
        weight = torch.zeros(len(distinct)).index_add_(0, inverse, w[by])
        return SparseRows(distinct, delta, weight)


def decode_updates(encs: list[EncodedUpdate], schema: WireSchema, plan: CompressionPlan) -> list[ClientUpdate]:
    """The updates the server reads from the payloads (each times its ``scale``), one per payload."""
    return decode_batch(encs, schema, plan).updates() if encs else []


def decode_sum(encs: list[EncodedUpdate], schema: WireSchema, plan: CompressionPlan) -> AggregatedUpdate:
    """``AggregatedUpdate.from_clients(decode_updates(...))``, bit for bit (``DecodedBatch.weighted_sum``)."""
    return decode_batch(encs, schema, plan).weighted_sum() if encs else AggregatedUpdate()


@torch.inference_mode()
def decode_batch(encs: list[EncodedUpdate], schema: WireSchema, plan: CompressionPlan) -> DecodedBatch:
    """The payloads (at least one) decoded, batched. Dense sections, laid out alike in every
    payload, are decoded together, and each table's blocks are decoded together (zero-padded), as
    on the sending side. All payloads are read as one buffer: each section of every payload is located
    from the row counts first (a payload of the wrong length is refused before anything is read
    from it), then gathered at once."""
    n, tables = len(encs), len(schema.tables)
    head = 0 if schema.whole_tables else 4 * tables
    width = head + sum(plan.dense.nbytes(*matrix_shape(shape)) for _, shape in schema.dense)
    lengths = np.array([len(e.wire) for e in encs], dtype=np.int64)
    if (lengths < width).any():
        raise ValueError(f"a payload is shorter than its fixed part ({width} bytes)")
    # zero bytes past the end: no section is wider than the longest payload, so ``_gather``'s
    # windows never run off the buffer
    buf = np.frombuffer(b"".join([*(e.wire for e in encs), bytes(int(lengths.max()))]), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    reader = _Reader(_gather(buf, starts, width, np.full(n, width)))
    counts = (reader.take((tables,), torch.int32).numpy().astype(np.int64) if not schema.whole_tables
              else np.tile(np.array([rows for _, rows, _ in schema.tables], dtype=np.int64), (n, 1)))
    if (counts < 0).any():
        raise ValueError("a payload has a negative row count")
    scale = torch.tensor([e.scale for e in encs], dtype=torch.float32)
    dense = []
    for _, shape in schema.dense:
        rows, cols = matrix_shape(shape)
        values = plan.dense.decode(reader.parts(plan.dense.parts(rows, cols)), rows, cols)
        dense.append(values.reshape(n, *shape) * scale.view(-1, *([1] * len(shape))))
    layouts, at = [], starts + width
    for t, (_, table_rows, dim) in enumerate(schema.tables):
        groups = _table_groups(plan.tables, counts[:, t].tolist(), table_rows, dim, schema.whole_tables)
        layouts.append((groups, _locate(groups, at)))
    _check_lengths(encs, at - starts, lengths)
    batch = DecodedBatch(encs, schema, dense)
    for t, (_, _, dim) in enumerate(schema.tables):
        rows = counts[:, t].tolist()
        batch.empty.append([i for i, r in enumerate(rows) if r == 0])
        blocks, singles = _decode_table(scale, rows, dim, *layouts[t], buf)
        batch.blocks.append(blocks)
        batch.singles.append(singles)
    return batch


def _locate(groups: list[_Group], at: np.ndarray) -> list[list[np.ndarray]]:
    """Where each section of each group starts in the joined buffer, for each of its items;
    ``at`` (each payload's read position) moves past them."""
    out = []
    for group in groups:
        starts = []
        for section in group.sections:
            starts.append(at[group.items].copy())
            at[group.items] += section.widths
        out.append(starts)
    return out


def _check_lengths(encs: list[EncodedUpdate], used: np.ndarray, lengths: np.ndarray) -> None:
    """Every payload must be exactly as long as the update its row counts describe."""
    for i in np.flatnonzero(used != lengths).tolist():
        left = int(lengths[i] - used[i])
        if left > 0:
            raise ValueError(f"client {encs[i].client}: {left} bytes left after decoding its update")
        raise ValueError(f"client {encs[i].client}: payload {-left} bytes shorter than its update")


def _gather(buf: np.ndarray, starts: np.ndarray, width: int, widths: np.ndarray) -> np.ndarray:
    """[items, width] uint8: item j's ``widths[j]`` bytes from ``buf[starts[j]:]``, zero-padded
    (what zero-padding the items' parts to the tallest gives). Vectorized: each item's bytes are
    one contiguous run, so one fancy-indexed read of a strided window view copies every run at
    once (a row-wise memcpy, twice as fast as gathering byte by byte), and a mask multiply
    clears what lies past each item's own width. ``buf`` must extend at least ``width`` bytes
    past the last start (``decode_batch`` pads it)."""
    # the window view built directly: numpy's ``as_strided`` wrapper costs more than the read
    out = np.ndarray((len(buf) - width + 1, width), dtype=np.uint8, buffer=buf, strides=(1, 1))[starts]
    if widths.min() < width:
        out *= np.arange(width) < widths[:, None]
    return out


def _decode_table(scales: torch.Tensor, rows: list[int], dim: int, groups: list[_Group],
                  located: list[list[np.ndarray]], buf: np.ndarray) -> tuple[list[_Blocks], list[tuple]]:
    """One table's groups decoded: batched blocks, and top-k's blocks one item at a time (each
    item's own positions, coalesced into rows). ``scales``: every payload's scale, float32."""
    blocks, singles = [], []
    for group, starts in zip(groups, located):
        items = group.items.tolist()
        parts = {s.name: torch.from_numpy(_gather(buf, at, s.nbytes, s.widths).view(_NP[s.dtype])).view(len(items), *s.shape)
                 for s, at in zip(group.sections, starts)}
        if group.addressed:
            sent = next(s for s in group.sections if s.name == "idx").counts.tolist()  # each item's k
            for j, i in enumerate(items):
                k = sent[j]
                pos = parts["idx"][j, :k].long()
                ids, where = torch.unique(pos // dim, sorted=True, return_inverse=True)
                block = torch.zeros(len(ids), dim)
                block[where, pos % dim] = parts["val"][j, :k]
                singles.append((i, ids, block * scales[i]))
            continue
        ids = parts.pop("ids").long() if "ids" in parts else None
        decoded = group.codec.decode(parts, group.height, dim) * scales[torch.from_numpy(group.items)].view(-1, 1, 1)
        blocks.append(_Blocks(items, ids, decoded, [rows[i] for i in items]))
    return blocks, singles


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
