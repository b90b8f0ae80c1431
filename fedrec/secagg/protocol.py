"""One round of secure aggregation, simulated message by message (Bonawitz et al., "Practical
Secure Aggregation for Privacy-Preserving Machine Learning", CCS 2017; SecAgg+ neighbourhoods of
Bell et al., CCS 2020), honest-but-curious version (no signatures or consistency round).

``SecAggClient`` holds a client's secrets; ``SecAggServer`` sees only what clients send it. The
four rounds:

0. advertise keys: each client makes two X25519 key pairs (``c`` to encrypt shares, ``s`` to agree
   masks) and sends the public halves; the server forwards each client its neighbours' keys.
1. share keys: each client draws a self-mask seed ``b_u`` and Shamir-shares ``b_u`` and its ``s``
   private key among its neighbours (threshold ``t``), each pair of shares encrypted (AES-GCM)
   under the key it agrees with that neighbour, and relayed by the server.
2. masked input: ``y_u = x_u + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)`` modulo
   2^k, where ``s_uv`` is the key u and v agree from their ``s`` keys. Clients that drop out now
   (after masking) never deliver ``y_u``.
3. unmasking: each survivor sends, for each neighbour, its share of ``b_u`` if u survived and of
   u's ``s`` key if u dropped. The server rebuilds each survivor's ``b_u`` and each dropped
   client's ``s`` key from ``t`` shares, strips the self masks and the pairwise masks the dropped
   clients left in their survivors' inputs, and is left with ``sum_{u survived} x_u``, exactly.

Bytes are the serialized sizes of the messages each client sends and receives; masked vectors
count ``k`` bits per value. With ``vectors=None`` (``dry``) the masks are not computed, only the
messages: the byte counts of a round too large to mask on two cores.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from fedrec.secagg import primitives as cr
from fedrec.secagg.fixed_point import FixedPoint
from fedrec.secagg.shamir import SHARE_BYTES, reconstruct, share, share_bytes, share_from_bytes

ID_BYTES = 4
KEYS_MESSAGE = ID_BYTES + 2 * cr.KEY_BYTES  # id, c and s public keys
SHARES_PLAINTEXT = 2 * ID_BYTES + 2 * SHARE_BYTES  # from, to, share of s key, share of b seed
CIPHERTEXT = cr.NONCE_BYTES + SHARES_PLAINTEXT + cr.TAG_BYTES
RELAYED_CIPHERTEXT = 2 * ID_BYTES + CIPHERTEXT  # with its routing header
UNMASK_SHARE = ID_BYTES + 1 + SHARE_BYTES  # whose secret, which secret, the share


def client_bytes(degree: int, dim: int, fp: FixedPoint, survived: bool = True) -> tuple[int, int]:
    """(sent, received) bytes of one client with ``degree`` neighbours, all of whom survive: the
    same message sizes ``run_round`` counts (a test checks the two agree), for rounds too large
    to run here."""
    sent = KEYS_MESSAGE + degree * RELAYED_CIPHERTEXT
    received = degree * (KEYS_MESSAGE + RELAYED_CIPHERTEXT)
    if survived:
        sent += fp.wire_bytes(dim) + degree * UNMASK_SHARE
        received += ID_BYTES * degree
    return sent, received


class SecAggAbort(Exception):
    """Too few shares survived to unmask some client: the round's sum is lost."""


def _mask_info(rnd: int) -> bytes:
    return b"fedrec secagg mask round %d" % rnd


def _enc_info(rnd: int) -> bytes:
    return b"fedrec secagg shares round %d" % rnd


def threshold_for(degree: int, fraction: float) -> int:
    return max(1, min(degree, math.ceil(fraction * degree)))


@dataclass
class RoundStats:
    clients: int = 0
    dropped: int = 0  # after masking
    recovered: int = 0  # dropped clients whose masks were removed from the sum
    bytes_sent: dict = field(default_factory=dict)
    bytes_received: dict = field(default_factory=dict)
    client_seconds: float = 0.0
    server_seconds: float = 0.0

    def add(self, table: dict, client: int, n: int) -> None:
        table[client] = table.get(client, 0) + int(n)

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_sent.values()) + sum(self.bytes_received.values())


class SecAggClient:
    def __init__(self, cid: int, rnd: int, neighbours: list[int]) -> None:
        self.cid, self.rnd, self.neighbours = cid, rnd, neighbours
        self.c_key = cr.new_private_key()
        self.s_key = cr.new_private_key()
        self.b_seed = b""
        self.peer_keys: dict[int, tuple[bytes, bytes]] = {}

    def advertise(self) -> tuple[bytes, bytes]:
        return cr.public_bytes(self.c_key), cr.public_bytes(self.s_key)

    def share_keys(self, peer_keys: dict[int, tuple[bytes, bytes]], t: int) -> dict[int, bytes]:
        """Encrypted shares of this client's ``s`` key and self-mask seed, one per neighbour."""
        self.peer_keys = peer_keys
        self.b_seed = os.urandom(32)
        xs = [v + 1 for v in self.neighbours]
        s_shares = share(cr.private_bytes(self.s_key), xs, t)
        b_shares = share(self.b_seed, xs, t)
        out = {}
        for i, v in enumerate(self.neighbours):
            key = cr.agree(self.c_key, peer_keys[v][0], _enc_info(self.rnd))
            plain = self.cid.to_bytes(ID_BYTES, "little") + v.to_bytes(ID_BYTES, "little") + \
                share_bytes(s_shares[i]) + share_bytes(b_shares[i])
            out[v] = cr.encrypt(key, plain, _enc_info(self.rnd))
        return out

    def masked_input(self, x: np.ndarray) -> np.ndarray:
        y = x.astype(np.uint64) + cr.prg(self.b_seed, len(x))
        for v in self.neighbours:
            m = cr.prg(cr.agree(self.s_key, self.peer_keys[v][1], _mask_info(self.rnd)), len(x))
            y = y + m if self.cid < v else y - m  # uint64 wraps: arithmetic modulo 2^64
        return y

    def unmask(self, survivors: set[int], received: dict[int, bytes]) -> dict[int, tuple[str, np.ndarray]]:
        """For each neighbour whose shares it holds: the share of ``b`` (survivor) or of ``s`` (dropped)."""
        out = {}
        for u, ct in received.items():
            key = cr.agree(self.c_key, self.peer_keys[u][0], _enc_info(self.rnd))
            plain = cr.decrypt(key, ct, _enc_info(self.rnd))
            frm, to = int.from_bytes(plain[:ID_BYTES], "little"), int.from_bytes(plain[ID_BYTES:2 * ID_BYTES], "little")
            if (frm, to) != (u, self.cid):
                raise SecAggAbort(f"share from {frm} to {to} relayed as {u} -> {self.cid}")
            body = plain[2 * ID_BYTES:]
            s_share, b_share = share_from_bytes(body[:SHARE_BYTES]), share_from_bytes(body[SHARE_BYTES:])
            out[u] = ("b", b_share) if u in survivors else ("s", s_share)
        return out


def run_round(clients: list[int], vectors: dict[int, np.ndarray] | None, dropped: set[int], rnd: int,
              neighbours: dict[int, list[int]], threshold: float, fp: FixedPoint, dim: int | None = None
              ) -> tuple[np.ndarray | None, RoundStats]:
    """The sum modulo 2^k of the survivors' ``vectors`` (uint64, already encoded), and the round's
    statistics. ``vectors=None``: messages only (``dim`` values per vector)."""
    st = RoundStats(clients=len(clients), dropped=len(dropped))
    dim = len(next(iter(vectors.values()))) if vectors is not None else int(dim)
    tick = time.perf_counter

    # 0. advertise keys
    t0 = tick()
    cl = {c: SecAggClient(c, rnd, neighbours[c]) for c in clients}
    public = {c: cl[c].advertise() for c in clients}
    st.client_seconds += tick() - t0
    for c in clients:
        st.add(st.bytes_sent, c, KEYS_MESSAGE)
        st.add(st.bytes_received, c, KEYS_MESSAGE * len(neighbours[c]))

    # 1. share keys (the server relays each ciphertext to its recipient)
    t0 = tick()
    inbox: dict[int, dict[int, bytes]] = {c: {} for c in clients}
    thresholds = {c: threshold_for(len(neighbours[c]), threshold) for c in clients}
    for c in clients:
        for v, ct in cl[c].share_keys({v: public[v] for v in neighbours[c]}, thresholds[c]).items():
            inbox[v][c] = ct
            st.add(st.bytes_sent, c, RELAYED_CIPHERTEXT)
            st.add(st.bytes_received, v, RELAYED_CIPHERTEXT)
    st.client_seconds += tick() - t0

    # 2. masked input; clients in ``dropped`` go silent after masking
    survivors = [c for c in clients if c not in dropped]
    t0 = tick()
    masked = {c: cl[c].masked_input(vectors[c]) for c in survivors} if vectors is not None else {}
    st.client_seconds += tick() - t0
    for c in survivors:
        st.add(st.bytes_sent, c, fp.wire_bytes(dim))

    # 3. unmasking: survivors hand over shares; the server rebuilds and strips the masks
    alive = set(survivors)
    t0 = tick()
    held: dict[int, list[tuple[int, np.ndarray]]] = {c: [] for c in clients}
    for v in survivors:
        st.add(st.bytes_received, v, ID_BYTES * len(neighbours[v]))  # which neighbours survived
        for u, (_, sh) in cl[v].unmask(alive, inbox[v]).items():
            held[u].append((v + 1, sh))
            st.add(st.bytes_sent, v, UNMASK_SHARE)
    st.client_seconds += tick() - t0

    t0 = tick()
    total = None
    if vectors is not None:
        total = np.zeros(dim, dtype=np.uint64)
        for c in survivors:
            total += masked[c]
    for u in clients:
        t = thresholds[u]
        if len(held[u]) < t:
            raise SecAggAbort(f"client {u}: {len(held[u])} shares survived, {t} needed")
        xs, shares = zip(*held[u][:t])
        secret = reconstruct(list(xs), np.stack(shares))
        if total is None:
            continue
        if u in alive:
            total -= cr.prg(secret, dim)
        else:
            s_key = cr.private_from_bytes(secret)
            for v in neighbours[u]:
                if v in alive:
                    m = cr.prg(cr.agree(s_key, public[v][1], _mask_info(rnd)), dim)
                    total = total - m if v < u else total + m  # undo what v added for the pair (v, u)
    st.recovered = sum(1 for u in clients if u not in alive)
    st.server_seconds += tick() - t0
    return (total & fp.mask if total is not None else None), st
