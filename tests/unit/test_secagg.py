"""Secure aggregation: Shamir recovery, fixed point, masks that cancel exactly (with and without
dropouts, complete graph and SecAgg+), and the securely aggregated update equal to the plain one."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from fedrec.pipeline import ModelShapes, ServerContext
from fedrec.secagg import (
    FixedPoint,
    SecAggAbort,
    SecureAggregationConfig,
    SecureAggregator,
    neighbours,
    reconstruct,
    run_round,
    share,
)
from fedrec.secagg import protocol as proto
from fedrec.updates import AggregatedUpdate, ClientUpdate


def test_shamir_any_t_shares_recover_and_fewer_do_not():
    secret = os.urandom(32)
    xs = [3, 8, 11, 20, 21]
    shares = share(secret, xs, 3)
    for pick in ([0, 1, 2], [4, 2, 0], [1, 3, 4], [0, 1, 2, 3, 4]):
        assert reconstruct([xs[i] for i in pick], shares[pick]) == secret
    wrong = 0
    for pick in ([0, 1], [2, 4], [1, 3]):
        try:
            wrong += reconstruct([xs[i] for i in pick], shares[pick]) != secret
        except ValueError:
            wrong += 1
    assert wrong == 3
    assert not np.array_equal(share(secret, xs, 3), shares)  # fresh randomness every time


def test_fixed_point_round_trip_and_wrap():
    fp = FixedPoint(frac_bits=16, modulus_bits=32)
    x = np.array([0.0, 1.5, -2.25, 1e-6, -100.0])
    enc, clipped = fp.encode(x, 1)
    assert clipped == 0 and np.allclose(fp.decode(enc), x, atol=2**-17)
    total = (enc + enc + enc) & fp.mask  # modular sum
    assert np.allclose(fp.decode(total), 3 * x, atol=3 * 2**-17)
    big, clipped = fp.encode(np.array([1e9]), 4)
    assert clipped == 1 and fp.decode(big)[0] == pytest.approx(fp.bound(4), rel=1e-6)
    assert fp.wire_bytes(10) == 40


def _vectors(clients, dim, fp, rng):
    return {c: fp.encode(rng.normal(size=dim), len(clients))[0] for c in clients}


@pytest.mark.parametrize("degree", [None, 4])
@pytest.mark.parametrize("dropped", [set(), {3, 7}])
def test_masks_cancel_exactly(degree, dropped):
    fp = FixedPoint(24, 48)
    rng = np.random.default_rng(0)
    clients = list(range(2, 12))
    vecs = _vectors(clients, 257, fp, rng)
    graph = neighbours(clients, degree, rng)
    total, st = run_round(clients, vecs, dropped, 1, graph, 0.5, fp)
    plain = np.zeros(257, dtype=np.uint64)
    for c in clients:
        if c not in dropped:
            plain += vecs[c]
    assert np.array_equal(total, plain & fp.mask)  # bit for bit: the masks cancel exactly
    assert st.recovered == len(dropped) and st.dropped == len(dropped)


def test_masked_input_hides_the_input():
    fp = FixedPoint(24, 48)
    clients = [0, 1, 2]
    graph = neighbours(clients, None, np.random.default_rng(0))
    cl = {c: proto.SecAggClient(c, 1, graph[c]) for c in clients}
    pub = {c: cl[c].advertise() for c in clients}
    for c in clients:
        cl[c].share_keys({v: pub[v] for v in graph[c]}, 2)
    x = np.zeros(1000, dtype=np.uint64)
    y = cl[0].masked_input(x) & fp.mask
    assert (y != 0).mean() > 0.99  # a zero input leaves as noise


def test_too_many_dropouts_abort():
    fp = FixedPoint(24, 48)
    clients = list(range(6))
    vecs = _vectors(clients, 8, fp, np.random.default_rng(1))
    with pytest.raises(SecAggAbort):
        run_round(clients, vecs, {0, 1, 2, 3}, 1, neighbours(clients, None, np.random.default_rng(1)), 0.6, fp)


def test_harary_graph_is_regular_and_symmetric():
    g = neighbours(list(range(30)), 6, np.random.default_rng(3))
    assert all(len(v) == 6 for v in g.values())
    assert all(c in g[v] for c, vs in g.items() for v in vs)
    assert neighbours([1, 2, 3], 6, np.random.default_rng(0)) == {1: [2, 3], 2: [1, 3], 3: [1, 2]}


def test_bytes_counted_match_the_message_sizes():
    fp = FixedPoint(24, 48)
    clients = list(range(8))
    graph = neighbours(clients, None, np.random.default_rng(0))
    _, st = run_round(clients, None, {5}, 1, graph, 0.5, fp, dim=1000)
    k = 7
    survivor = proto.KEYS_MESSAGE + k * proto.RELAYED_CIPHERTEXT + fp.wire_bytes(1000) + k * proto.UNMASK_SHARE
    assert st.bytes_sent[0] == survivor and st.bytes_sent[5] == proto.KEYS_MESSAGE + k * proto.RELAYED_CIPHERTEXT
    assert st.bytes_received[0] == k * proto.KEYS_MESSAGE + k * proto.RELAYED_CIPHERTEXT + proto.ID_BYTES * k
    assert proto.client_bytes(k, 1000, fp) == (st.bytes_sent[0], st.bytes_received[0])
    assert proto.client_bytes(k, 1000, fp, survived=False)[0] == st.bytes_sent[5]


def _update(client, rng, rows=1000, dim=4, touched=30, weight=None):
    ids = torch.from_numpy(np.sort(rng.choice(rows, touched, replace=False)))
    return ClientUpdate(client, float(weight or rng.integers(1, 100)),
                        {"a": torch.randn(3, 5, generator=torch.Generator().manual_seed(client)), "b": torch.randn(5)},
                        {"emb": (ids, torch.from_numpy(rng.normal(size=(touched, dim)).astype(np.float32)))})


@pytest.mark.parametrize("padding", ["all", "union"])
def test_secure_aggregate_equals_plain_sum_of_survivors(padding):
    rng = np.random.default_rng(0)
    model = ModelShapes({"a": (3, 5), "b": (5,), "emb": (1000, 4)}, {"emb": "item"})
    ups = [_update(c, rng) for c in range(12)]
    cfg = SecureAggregationConfig(enabled=True, dropout=0.25, graph_degree=6, padding=padding, threshold=0.5)
    agg = SecureAggregator(model, cfg)
    ctx = ServerContext(3, 0, 100)
    got = agg.aggregate(ups, ctx)
    dropped = {c for c, r in zip(range(12), np.random.default_rng([0, 3, 0x5EC]).random(12)) if r < 0.25}
    assert dropped and agg.totals["dropouts_recovered"] == len(dropped)
    want = AggregatedUpdate.from_clients([u for u in ups if u.client not in dropped])
    tol = 12 * 2.0**-24 * 100  # per-value rounding, times the weights
    assert got.clients == want.clients and got.weight == pytest.approx(want.weight, abs=1e-6)
    for n in want.dense:
        assert torch.allclose(got.dense[n], want.dense[n], atol=tol)
    assert torch.equal(got.sparse["emb"].ids, want.sparse["emb"].ids)
    assert torch.allclose(got.sparse["emb"].delta_sum, want.sparse["emb"].delta_sum, atol=tol)
    assert torch.allclose(got.sparse["emb"].weight, want.sparse["emb"].weight, atol=1e-5)
    rep = agg.report()["secagg"]
    assert rep["bytes_overhead"] == rep["bytes_secagg"] - rep["bytes_plain"] > 0 and rep["seconds"] > 0
