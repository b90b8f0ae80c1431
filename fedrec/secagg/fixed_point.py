"""Fixed-point encoding into the integers modulo 2^k, where masks are added and cancel exactly.

A real ``x`` becomes ``round(x * 2^f) mod 2^k`` (two's complement). Sums are taken in uint64,
which wraps modulo 2^64, and reduced modulo 2^k at the end: since 2^k divides 2^64, masks that
cancel modulo 2^64 cancel modulo 2^k too, and a sum whose true value lies in ``(-2^(k-1),
2^(k-1)) / 2^f`` decodes exactly (up to the rounding of each input, at most ``2^-(f+1)``).
The wire carries ``k`` bits per value. ``bound(n)`` is the largest magnitude each of ``n`` inputs
may have so that their sum cannot wrap; larger inputs are clipped to it (and counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FixedPoint:
    frac_bits: int = 24
    modulus_bits: int = 48

    @property
    def mask(self) -> np.uint64:
        return np.uint64((1 << self.modulus_bits) - 1) if self.modulus_bits < 64 else np.uint64(2**64 - 1)

    def bound(self, n: int) -> float:
        return (2.0 ** (self.modulus_bits - 1) - 1) / 2.0**self.frac_bits / max(n, 1)

    def encode(self, x: np.ndarray, n: int) -> tuple[np.ndarray, int]:
        """(encoded uint64 values, how many were clipped to ``bound(n)``)."""
        b = self.bound(n)
        x = np.asarray(x, dtype=np.float64)
        clipped = int((np.abs(x) > b).sum())
        q = np.rint(np.clip(x, -b, b) * 2.0**self.frac_bits).astype(np.int64)
        return q.view(np.uint64) & self.mask, clipped

    def decode(self, s: np.ndarray) -> np.ndarray:
        """Reals from a sum modulo 2^k (read as a signed k-bit integer)."""
        s = np.asarray(s, dtype=np.uint64) & self.mask
        signed = s.astype(np.int64) if self.modulus_bits == 64 else \
            np.where(s >= np.uint64(1 << (self.modulus_bits - 1)), s.astype(np.int64) - (1 << self.modulus_bits), s.astype(np.int64))
        return signed.astype(np.float64) / 2.0**self.frac_bits

    def wire_bytes(self, values: int) -> int:
        """Bytes of ``values`` k-bit values packed on the wire."""
        return -(-values * self.modulus_bits // 8)
