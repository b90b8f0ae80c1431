"""Top-k sparsification: keep the k = ceil(fraction x entries) largest-magnitude entries of each
matrix (each dense tensor, each block of touched embedding rows), send their positions and values.

With error feedback (the caller adds the last residual before encoding) the dropped entries are
not lost but delayed: they grow in the residual until they are large enough to be sent (Stich et
al. 2018; Karimireddy et al. 2019). Positions travel as int32 while the addressed space (a
matrix, or for row blocks the whole table) has fewer than 2^31 entries. When k entries with
their positions would not be smaller than the matrix, the matrix travels raw (exact).
"""

from __future__ import annotations

import math

import torch

from fedrec.pipeline.codec import Codec, Memory, Parts, PartSpec, Seeds, index_dtype


class TopK(Codec):
    name = "topk"

    def __init__(self, fraction: float) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction

    def k(self, rows: int, cols: int) -> int:
        return min(rows * cols, max(1, math.ceil(self.fraction * rows * cols)))

    def parts(self, rows: int, cols: int, space: int | None = None) -> list[PartSpec]:
        k = self.k(rows, cols)
        if 2 * k >= rows * cols:  # k (int32 position, float32 value) pairs are no smaller than the matrix
            return self.raw(rows, cols)
        return [("idx", (k,), index_dtype(rows * cols if space is None else space)), ("val", (k,), torch.float32)]

    def encode(self, m: torch.Tensor, memory: Memory = None, seeds: Seeds = 0, valid: list[int] | None = None) -> Parts:
        """``valid``: real rows of each zero-padded matrix (row blocks of different sizes encoded
        together); each keeps its own k, and padding is never chosen."""
        batch, rows, cols = m.shape
        flat = m.reshape(batch, -1)
        if valid is None:
            if self.is_raw(rows, cols):
                return {"raw": m.float()}
            return self._select(flat, self.k(rows, cols))
        magnitude = flat.abs()
        pad = torch.arange(rows).repeat_interleave(cols).unsqueeze(0) >= torch.tensor(valid).unsqueeze(1)
        magnitude[pad] = -1.0
        return self._select(flat, max(self.k(r, cols) for r in valid), magnitude)

    @staticmethod
    def _select(flat: torch.Tensor, k: int, magnitude: torch.Tensor | None = None) -> Parts:
        """The k largest-magnitude entries of each row of ``flat``, largest first (so the first
        k_i of them are item i's own top k_i)."""
        idx = (flat.abs() if magnitude is None else magnitude).topk(k, dim=1, sorted=True).indices
        return {"idx": idx, "val": flat.gather(1, idx).float()}

    def decode(self, parts: Parts, rows: int, cols: int) -> torch.Tensor:
        if "raw" in parts:
            return parts["raw"].float()
        batch = parts["val"].shape[0]
        out = torch.zeros(batch, rows * cols)
        out.scatter_(1, parts["idx"].long(), parts["val"].float())
        return out.view(batch, rows, cols)
