"""PowerSGD (Vogels, Karimireddy & Jaggi, NeurIPS 2019): a rank-r approximation of each matrix by
one step of power iteration, warm-started from the previous message's Q.

For a matrix M [rows, cols] and the sender's last Q [cols, r]: P = M Q, P is orthonormalised
(reduced QR), Q = M^T P; the message is (P, Q) and the receiver reconstructs P Q^T. Starting from
the last Q makes one iteration per message enough, because consecutive updates share their
leading directions (the paper's key observation); the first Q is Gaussian from the sender's seed.
Error feedback (the caller adds the last residual before encoding) recovers what the low rank
dropped. A matrix whose rank-r factors would not be smaller than itself (a vector, a 16 x 1
weight) travels raw, as in the paper.

``precision="fp16"`` sends the factors (and the matrices that travel raw) as float16, halving the
bytes. The sender rounds them before it reconstructs what the receiver will, so error feedback
keeps the rounding error too and both ends agree bit for bit.

Why our own: ``torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook`` runs only as a DDP
communication hook on a ``GradBucket`` inside an all-reduce; federated clients and gossip nodes
encode one update at a time, outside DDP. This is the published algorithm, batched over messages.
"""

from __future__ import annotations

import torch

from fedrec.pipeline.codec import Codec, Memory, Parts, PartSpec, Seeds

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def orthonormalize(p: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns spanning each P's columns ([B, rows, r]; reduced QR, which is
    Gram-Schmidt done stably)."""
    return torch.linalg.qr(p, mode="reduced").Q


class PowerSGD(Codec):
    name = "powersgd"

    def __init__(self, rank: int, precision: str = "fp32") -> None:
        if rank < 1:
            raise ValueError(f"rank must be at least 1, got {rank}")
        if precision not in _DTYPES:
            raise ValueError(f"precision must be one of {sorted(_DTYPES)}, got {precision!r}")
        self.rank = rank
        self.raw_dtype = _DTYPES[precision]  # the factors' format too

    def low_rank(self, rows: int, cols: int) -> bool:
        return self.rank * (rows + cols) < rows * cols

    def parts(self, rows: int, cols: int, space: int | None = None) -> list[PartSpec]:
        if not self.low_rank(rows, cols):
            return self.raw(rows, cols)
        return [("p", (rows, self.rank), self.raw_dtype), ("q", (cols, self.rank), self.raw_dtype)]

    def encode(self, m: torch.Tensor, memory: Memory = None, seeds: Seeds = 0, valid: list[int] | None = None) -> Parts:
        batch, rows, cols = m.shape
        if not self.low_rank(rows, cols):
            return {"raw": self.as_sent(m)}
        p = self.as_sent(orthonormalize(torch.bmm(m, self._start(memory, seeds, batch, cols))))
        q = self.as_sent(torch.bmm(m.transpose(1, 2), p))
        if isinstance(memory, list):
            for mem, own in zip(memory, q.unbind(0)):  # one unbind, not an index per message
                mem["q"] = own.clone()  # its own storage: a view would carry the whole batch into checkpoints
        elif memory is not None:
            memory["q"] = q
        return {"p": p, "q": q}

    def _start(self, memory: Memory, seeds: Seeds, batch: int, cols: int) -> torch.Tensor:
        """The Q each message's power iteration starts from: the last one (warm start), or
        Gaussian from the sender's seed on its first message."""
        shape = (cols, self.rank)
        if isinstance(memory, list):
            seeds = seeds if isinstance(seeds, list) else [seeds + i for i in range(batch)]
            gen = torch.Generator()  # reseeded per message (same draws as a fresh one), built once per batch
            return torch.stack([mem["q"] if mem.get("q") is not None and mem["q"].shape == shape
                                else torch.randn(shape, generator=gen.manual_seed(int(s)))
                                for mem, s in zip(memory, seeds)])
        q = memory.get("q") if memory is not None else None
        if q is None or q.shape != (batch, *shape):
            q = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(int(seeds)))
        return q

    def decode(self, parts: Parts, rows: int, cols: int) -> torch.Tensor:
        if "raw" in parts:
            return parts["raw"].float()
        return torch.bmm(parts["p"].float(), parts["q"].float().transpose(1, 2))
