"""Codecs: how one matrix (or a batch of them) becomes the tensors that go on the wire, and back.

Every tensor a client or a gossip node sends is viewed as a matrix (``as_matrix``: a weight
[out, in...] as [out, prod(in)], a vector as one row) and handed to a codec as a batch
``[B, rows, cols]``: one message in federated uploads (B = 1), one per node in gossip (B = nodes),
so the same arithmetic serves both. A codec declares the parts one message encodes to
(``parts``: name, shape, dtype), which fixes its size in bytes before anything is encoded (the
simulated clock prices uploads with it) and lets a receiver parse the bytes back.

Where a compressed form would not be smaller than the raw float32 matrix (PowerSGD of a vector,
top-k keeping half the entries, int8 rows of one value), a codec sends the raw matrix instead;
both ends apply the same rule, so the receiver knows which form arrives.
"""

from __future__ import annotations

import math

import numpy as np
import torch

Parts = dict[str, torch.Tensor]  # part name -> [B, *shape]
PartSpec = tuple[str, tuple[int, ...], torch.dtype]
Memory = dict | list[dict] | None
Seeds = int | list[int]

_ITEMSIZE = {torch.float32: 4, torch.float16: 2, torch.uint8: 1, torch.int32: 4, torch.int64: 8}


def as_matrix(t: torch.Tensor) -> torch.Tensor:
    """A tensor as the matrix codecs compress: [d0, prod(rest)]; a vector or scalar as one row."""
    if t.dim() >= 2:
        return t.reshape(t.shape[0], -1)
    return t.reshape(1, -1)


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) >= 2:
        return int(shape[0]), int(math.prod(shape[1:]))
    return 1, int(math.prod(shape))


def index_dtype(space: int) -> torch.dtype:
    """Positions below 2^31 travel as int32, larger ones as int64."""
    return torch.int32 if space < 2**31 else torch.int64


def spec_nbytes(specs: list[PartSpec]) -> int:
    return sum(math.prod(shape) * _ITEMSIZE[dtype] for _, shape, dtype in specs)


class Codec:
    """The identity: a matrix travels as float32. Subclasses compress."""

    name = "none"
    raw_dtype = torch.float32  # how a matrix that travels raw is written (PowerSGD at fp16: float16)

    def parts(self, rows: int, cols: int, space: int | None = None) -> list[PartSpec]:
        """What one ``rows x cols`` message encodes to; ``space`` is the number of positions an
        index part must address (default rows * cols; a table's size for row blocks)."""
        del space
        return self.raw(rows, cols)

    def prepare(self) -> None:
        """One-time set-up kept out of the timed encoding (loading kernels)."""

    def nbytes(self, rows: int, cols: int, space: int | None = None) -> int:
        return spec_nbytes(self.parts(rows, cols, space))

    def encode(self, m: torch.Tensor, memory: Memory = None, seeds: Seeds = 0, valid: list[int] | None = None) -> Parts:
        """``m`` [B, rows, cols] -> parts. ``memory`` is the senders' state for this tensor
        between messages (PowerSGD's warm-started Q): one dict for the whole batch (gossip
        nodes, stacked) or one per message (clients); ``seeds`` likewise (an int, or one each).
        ``valid``: the real rows of each matrix when blocks of different heights were zero-padded
        to one batch (exact for codecs that treat zero rows as absent)."""
        del memory, seeds, valid
        return {"raw": self.as_sent(m)}

    def decode(self, parts: Parts, rows: int, cols: int) -> torch.Tensor:
        """Parts -> [B, rows, cols] float32."""
        return parts["raw"].float()

    def raw(self, rows: int, cols: int) -> list[PartSpec]:
        return [("raw", (rows, cols), self.raw_dtype)]

    def as_wire(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` as a raw-format part is written: in ``raw_dtype``, saturated. The wire writes
        these bytes directly, so the values are not rounded, widened and narrowed again."""
        if self.raw_dtype == torch.float32:
            return t.float()
        big = torch.finfo(self.raw_dtype).max  # saturate, not inf: error feedback keeps the excess
        return t.clamp(-big, big).to(self.raw_dtype)

    def as_sent(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` as the receiver reads it back from a raw-format part (rounded to ``raw_dtype``), in
        float32: the sender reconstructs from this, so error feedback keeps any rounding."""
        return self.as_wire(t).float()

    def raw_codec(self) -> Codec:
        """The codec of a block this codec sends raw: the identity, in this codec's raw format."""
        out = Codec()
        out.raw_dtype = self.raw_dtype
        return out

    def is_raw(self, rows: int, cols: int) -> bool:
        """Whether a ``rows x cols`` matrix travels uncompressed (the same at both ends)."""
        return [p[0] for p in self.parts(rows, cols)] == ["raw"]


def make_codec(method: str, *, rank: int = 2, fraction: float = 0.01, precision: str = "fp32") -> Codec:
    """The codec a ``compression.method`` names (``precision``: PowerSGD's factors on the wire)."""
    if method == "none":
        return Codec()
    if method == "powersgd":
        from fedrec.pipeline.powersgd import PowerSGD

        return PowerSGD(rank, precision)
    if method == "topk":
        from fedrec.pipeline.topk import TopK

        return TopK(fraction)
    if method in ("int8", "fp16"):
        from fedrec.pipeline.quantize import RowwiseQuantizer

        return RowwiseQuantizer(method)
    raise ValueError(f"unknown compression method {method!r}")


def sizes_by_rows(codec: Codec, rows: np.ndarray, cols: int, space: int | None = None) -> np.ndarray:
    """``codec.nbytes`` for many row counts at once (clients' touched-row blocks): computed once
    per distinct count."""
    rows = np.asarray(rows, dtype=np.int64)
    distinct, inverse = np.unique(rows, return_inverse=True)
    table = np.array([codec.nbytes(int(r), cols, space) if r > 0 else 0 for r in distinct], dtype=np.int64)
    return table[inverse].reshape(rows.shape)
