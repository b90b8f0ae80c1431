"""Shamir secret sharing (t-out-of-n) of 32-byte secrets over the prime field GF(2^31 - 1).

The ``cryptography`` package has no secret sharing, so it is written here. The field is the
Mersenne prime p = 2^31 - 1 so that a product of two elements fits in int64 and a secret can be
shared with numpy, vectorised over its chunks and over every recipient at once: a 32-byte secret
(an X25519 private key, a mask seed) is cut into nine 30-bit chunks, each below p, and each chunk
is shared with its own random polynomial of degree ``t - 1``. Any ``t`` shares give back every
chunk by Lagrange interpolation at 0; fewer reveal nothing about it (information-theoretically, per
chunk, hence for the whole secret). A big-integer field (say 2^256 - 189) would need Python ints
and be hundreds of times slower at a thousand users.

Randomness comes from the operating system (``secrets``), as it must for real shares.
"""

from __future__ import annotations

import secrets

import numpy as np

P = 2**31 - 1
CHUNK_BITS = 30
SECRET_BYTES = 32
CHUNKS = -(-SECRET_BYTES * 8 // CHUNK_BITS)  # 9
SHARE_BYTES = 4 * CHUNKS  # one field element (uint32) per chunk


def to_chunks(secret: bytes) -> np.ndarray:
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"secrets are {SECRET_BYTES} bytes, got {len(secret)}")
    value = int.from_bytes(secret, "big")
    mask = (1 << CHUNK_BITS) - 1
    return np.array([(value >> (CHUNK_BITS * i)) & mask for i in range(CHUNKS)], dtype=np.int64)


def from_chunks(chunks: np.ndarray) -> bytes:
    value = sum(int(c) << (CHUNK_BITS * i) for i, c in enumerate(chunks))
    if value >> (SECRET_BYTES * 8):
        raise ValueError("shares do not reconstruct a valid secret (too few or inconsistent shares)")
    return value.to_bytes(SECRET_BYTES, "big")


def _random_field(shape: tuple[int, ...]) -> np.ndarray:
    raw = np.frombuffer(secrets.token_bytes(8 * int(np.prod(shape))), dtype=np.uint64).reshape(shape)
    return (raw % np.uint64(P)).astype(np.int64)  # bias below 2^-32: negligible


def share(secret: bytes, xs: list[int], t: int) -> np.ndarray:
    """Shares ``[len(xs), CHUNKS]`` of ``secret`` at the distinct non-zero points ``xs``; any ``t``
    of them reconstruct it."""
    if not 1 <= t <= len(xs):
        raise ValueError(f"threshold {t} must be between 1 and the number of shares {len(xs)}")
    x = np.asarray(xs, dtype=np.int64)
    if (x <= 0).any() or (x >= P).any() or len(set(xs)) != len(xs):
        raise ValueError("share points must be distinct and in [1, p)")
    coeffs = _random_field((t - 1, CHUNKS))
    y = np.zeros((len(x), CHUNKS), dtype=np.int64)
    for c in coeffs[::-1]:  # Horner, highest degree first
        y = (y * x[:, None] + c[None, :]) % P
    return (y * x[:, None] + to_chunks(secret)[None, :]) % P


def reconstruct(xs: list[int], shares: np.ndarray) -> bytes:
    """The secret from shares ``[k, CHUNKS]`` at points ``xs`` (k >= t; all are used)."""
    xs = [int(v) for v in xs]
    total = np.zeros(CHUNKS, dtype=np.int64)
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * xj % P
                den = den * (xj - xi) % P
        lam = num * pow(den, P - 2, P) % P
        total = (total + np.asarray(shares[i], dtype=np.int64) * lam) % P
    return from_chunks(total)


def share_bytes(shares: np.ndarray) -> bytes:
    return np.asarray(shares, dtype="<u4").tobytes()


def share_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u4").astype(np.int64)
