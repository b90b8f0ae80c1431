"""Compression without Ray: each codec (exact where its settings are lossless, fbgemm's int8 format
reused as is), the wire format (the bytes counted are the bytes parsed, and nothing else is
needed to decode them), error feedback, compressed downloads, and the config rules."""

import pickle

import numpy as np
import pytest
import torch

from data_pipeline.errors import ConfigError
from fedrec.config import config_from_dict
from fedrec.pipeline import ClientContext, Compress, Decompress, ServerContext, build_pipeline
from fedrec.pipeline.codec import Codec, make_codec
from fedrec.pipeline.downlink import DeltaDownloads
from fedrec.pipeline.mean import WeightedMean
from fedrec.pipeline.powersgd import PowerSGD
from fedrec.pipeline.quantize import RowwiseQuantizer
from fedrec.pipeline.topk import TopK
from fedrec.pipeline.wire import (
    CompressionPlan,
    EncodedUpdate,
    WireSchema,
    decode_sum,
    decode_updates,
    encode_updates,
    update_nbytes,
)
from fedrec.updates import AggregatedUpdate, ClientUpdate

TABLES = ("t_item", "t_user")


def _state(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"t_item": torch.randn(300, 16, generator=g), "t_user": torch.randn(5, 16, generator=g),
            "w0": torch.randn(16, 1, generator=g), "w1": torch.randn(16, 26, generator=g),
            "b1": torch.randn(16, generator=g), "w2": torch.randn(1, 16, generator=g)}


def _updates(n=6, seed=0, state=None):
    """Clients with different numbers of touched item rows (one empty), random deltas."""
    state = state or _state()
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in range(n):
        rows = [0, 1, 7, 40, 120, 3][c % 6]
        ids = torch.randperm(300, generator=g)[:rows].sort().values
        dense = {k: torch.randn(state[k].shape, generator=g) for k in ("w0", "w1", "b1", "w2")}
        sparse = {"t_item": (ids, torch.randn(rows, 16, generator=g)), "t_user": (torch.tensor([c % 5]), torch.randn(1, 16, generator=g))}
        out.append(ClientUpdate(c, float(c + 1), dense, sparse))
    return out


def _dense_view(u: ClientUpdate, state) -> dict:
    """An update as full tensors (rows scattered into zero tables), to compare across layouts."""
    out = dict(u.dense)
    for name, (ids, rows) in u.sparse.items():
        full = torch.zeros_like(state[name])
        full[ids] = rows
        out[name] = full
    return out


def _close(a: dict, b: dict, atol=1e-5) -> bool:
    return set(a) == set(b) and all(torch.allclose(a[k], b[k], atol=atol) for k in a)


# --- codecs ---

def test_powersgd_reconstructs_a_low_rank_matrix_exactly_and_falls_back_to_raw_for_vectors():
    g = torch.Generator().manual_seed(1)
    m = (torch.randn(40, 2, generator=g) @ torch.randn(2, 16, generator=g)).unsqueeze(0)
    assert torch.allclose(PowerSGD(2).decode(PowerSGD(2).encode(m), 40, 16), m, atol=1e-4)
    assert not torch.allclose(PowerSGD(1).decode(PowerSGD(1).encode(m), 40, 16), m, atol=1e-2)  # rank 1 cannot
    assert PowerSGD(2).parts(40, 16)[0][1] == (40, 2)  # (P, Q): (40 + 16) x 2 floats instead of 40 x 16
    v = torch.randn(1, 1, 16, generator=g)
    assert PowerSGD(2).is_raw(1, 16) and torch.equal(PowerSGD(2).decode(PowerSGD(2).encode(v), 1, 16), v)


def test_powersgd_warm_start_converges_to_the_best_rank_r_approximation():
    g = torch.Generator().manual_seed(2)
    u, _ = torch.linalg.qr(torch.randn(60, 16, generator=g))
    v, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    m = (u * torch.linspace(1.0, 0.5, 16)) @ v.T  # slowly decaying spectrum: one power step from random is poor
    best = torch.linalg.norm(m - (u[:, :1] * 1.0) @ v[:, :1].T).item()
    codec, memory = PowerSGD(1), {}
    errors = [torch.linalg.norm(codec.decode(codec.encode(m[None], memory, 5), 60, 16)[0] - m).item() for _ in range(60)]
    cold = [torch.linalg.norm(codec.decode(codec.encode(m[None], None, s), 60, 16)[0] - m).item() for s in range(20)]
    assert errors[-1] <= best * 1.002 < min(cold)  # warm-started Q is power iteration across messages
    assert errors[-1] < errors[0]


def test_topk_sends_the_largest_entries_and_is_exact_when_it_keeps_them_all():
    g = torch.Generator().manual_seed(3)
    m = torch.randn(2, 10, 16, generator=g)
    codec = TopK(0.1)
    out = codec.decode(codec.encode(m), 10, 16)
    k = codec.k(10, 16)
    assert k == 16 and (out != 0).sum(dim=(1, 2)).tolist() == [k, k]
    for b in range(2):
        kept = out[b] != 0
        assert torch.equal(out[b][kept], m[b][kept])
        assert m[b][kept].abs().min() >= m[b][~kept].abs().max()  # nothing dropped is larger than what was sent
    full = TopK(1.0)
    assert full.is_raw(10, 16) and torch.equal(full.decode(full.encode(m), 10, 16), m)


def test_int8_is_fbgemms_fused_rowwise_format_and_fp16_is_exact_on_half_values():
    g = torch.Generator().manual_seed(4)
    m = torch.randn(1, 12, 16, generator=g)
    int8 = RowwiseQuantizer("int8")
    parts = int8.encode(m)
    assert torch.equal(parts["q"][0], torch.ops.fbgemm.FloatToFused8BitRowwiseQuantized(m[0]))  # fbgemm's own bytes
    assert int8.parts(12, 16)[0][1] == (12, 24)  # 16 codes + float32 scale and bias per row
    err = (int8.decode(parts, 12, 16) - m).abs()
    step = (m.amax(-1) - m.amin(-1)) / 255
    assert (err <= step.unsqueeze(-1) / 2 + 1e-6).all()
    half = m.half().float()
    fp16 = RowwiseQuantizer("fp16")
    assert torch.equal(fp16.decode(fp16.encode(half), 12, 16), half)
    assert int8.is_raw(16, 1)  # a [16, 1] weight: scale and bias would outweigh one code per row


# --- the wire ---

@pytest.mark.parametrize("method,apply_to", [("powersgd", "all"), ("topk", "all"), ("int8", "all"), ("fp16", "all"),
                                             ("powersgd", "dense"), ("topk", "embeddings")])
def test_counted_bytes_are_the_payload_and_the_payload_alone_decodes(method, apply_to):
    state = _state()
    updates = _updates(state=state)
    plan = CompressionPlan.of(make_codec(method, rank=2, fraction=0.05), apply_to)
    schema = WireSchema.of(state, TABLES)
    enc = encode_updates(updates, schema, plan, [{} for _ in updates], list(range(len(updates))))
    rows = {t: np.array([u.sparse[t][0].numel() for u in updates]) for t in TABLES}
    predicted = update_nbytes(schema, plan, rows)
    sent = [EncodedUpdate(u.client, u.weight, bytes(w)) for u, w in zip(updates, enc.wires)]
    assert [e.nbytes() for e in sent] == [len(w) for w in enc.wires] == predicted.tolist()
    assert all(len(pickle.dumps(e)) - e.nbytes() < 200 for e in sent)  # what crosses to the driver is the payload
    # The receiver knows only the model (a fresh state of the same shapes) and the config.
    other = WireSchema.of(_state(seed=9), TABLES)
    got = decode_updates(sent, other, plan)
    for u, g, mine in zip(updates, got, enc.decoded):
        assert _close(_dense_view(g, state), _dense_view(mine, state))
        assert g.client == u.client and g.weight == u.weight
    assert all(p < u.nbytes() for p, u in zip(predicted, updates))  # and each is smaller than the float32 update


def test_batched_encoding_equals_encoding_each_client_alone():
    state = _state()
    updates = _updates(state=state)
    schema = WireSchema.of(state, TABLES)
    for method in ("powersgd", "topk", "int8"):
        plan = CompressionPlan.of(make_codec(method, rank=2, fraction=0.05), "all")
        together = encode_updates(updates, schema, plan, [{} for _ in updates], list(range(6)))
        for i, u in enumerate(updates):
            alone = encode_updates([u], schema, plan, [{}], [i])
            assert len(alone.wires[0]) == len(together.wires[i])
            if method != "powersgd":  # QR of a zero-padded block may flip signs of P and Q, not P Q^T
                assert alone.wires[0] == together.wires[i]
            assert _close(_dense_view(alone.decoded[0], state), _dense_view(together.decoded[i], state), atol=1e-4)


@pytest.mark.parametrize("method,setting", [("none", {}), ("powersgd", {"rank": 16}), ("topk", {"fraction": 1.0})])
def test_lossless_settings_are_exact(method, setting):
    state = _state()
    updates = _updates(state=state)
    plan = CompressionPlan.of(make_codec(method, **setting), "all")
    schema = WireSchema.of(state, TABLES)
    enc = encode_updates(updates, schema, plan, [{} for _ in updates], [0] * 6)
    got = decode_updates([EncodedUpdate(u.client, u.weight, w) for u, w in zip(updates, enc.wires)], schema, plan)
    for u, g in zip(updates, got):
        view_u, view_g = _dense_view(u, state), _dense_view(g, state)
        assert all(torch.equal(view_u[k], view_g[k]) for k in view_u)


def test_server_scales_decoded_updates_for_fedbuff_discounts():
    state = _state()
    u = _updates(1, state=state)[0]
    plan = CompressionPlan.of(make_codec("int8"), "all")
    schema = WireSchema.of(state, TABLES)
    e = EncodedUpdate(0, 1.0, encode_updates([u], schema, plan, [{}], [0]).wires[0])
    full, half = decode_updates([e, e.scaled(0.5)], schema, plan)
    assert _close({k: v * 0.5 for k, v in _dense_view(full, state).items()}, _dense_view(half, state), atol=1e-6)


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.view(torch.int32), b.view(torch.int32)) if a.is_floating_point() else torch.equal(a, b)


def _same_sum(a: AggregatedUpdate, b: AggregatedUpdate) -> bool:
    return (a.weight == b.weight and a.clients == b.clients and list(a.dense) == list(b.dense)
            and list(a.sparse) == list(b.sparse) and all(_bits_equal(a.dense[k], b.dense[k]) for k in a.dense)
            and all(_bits_equal(getattr(a.sparse[k], f), getattr(b.sparse[k], f))
                    for k in a.sparse for f in ("ids", "delta_sum", "weight")))


@pytest.mark.parametrize("method,apply_to,whole", [("powersgd", "all", False), ("powersgd", "dense", False),
                                                   ("topk", "all", False), ("int8", "all", False),
                                                   ("powersgd", "all", True), ("none", "all", False)])
def test_decoding_into_a_sum_is_the_aggregators_sum_bit_for_bit(method, apply_to, whole):
    """``decode_sum`` skips building each client's update; the server's sum must not move by a bit
    (fractional weights, FedBuff scales, an empty block, raw and compressed blocks of one table)."""
    state = _state()
    updates = _updates(9, state=state)
    if whole:
        updates = [ClientUpdate(u.client, u.weight, u.dense, {t: (torch.arange(len(state[t])), torch.randn(state[t].shape))
                                                             for t in TABLES}, True) for u in updates]
    plan = CompressionPlan.of(make_codec(method, rank=2, fraction=0.05), apply_to)
    schema = WireSchema.of(state, TABLES, whole_tables=whole)
    enc = encode_updates(updates, schema, plan, [{} for _ in updates], list(range(9)), keep_decoded=False)
    sent = [EncodedUpdate(u.client, u.weight * (0.37 if i % 2 else 1.0), w, scale=1.0 if i % 3 else 0.5 + 0.1 * i)
            for i, (u, w) in enumerate(zip(updates, enc.wires))]
    for some in (sent, sent[:1], sent[2:5]):
        assert _same_sum(decode_sum(some, schema, plan), AggregatedUpdate.from_clients(decode_updates(some, schema, plan)))


def test_a_pipeline_that_only_averages_sums_the_decoded_batch_and_the_same_sum_otherwise():
    state = _state()
    updates = _updates(6, state=state)
    ctx = ServerContext(1, 0, 6)
    fused = build_pipeline(_cfg(method="powersgd", rank=2), state=state, tables=TABLES)
    calls = []
    server = fused.server_steps[0]
    server.on_clients = lambda u, c: calls.append(len(u)) or Decompress.on_clients(server, u, c)
    arrivals = [fused.pack(fused.client_side_many(updates[:3], [ClientContext(i, 1, i) for i in range(3)])),
                fused.pack(fused.client_side_many(updates[3:], [ClientContext(i, 1, i) for i in range(3, 6)]))]
    total = fused.server_side(arrivals, ctx)
    assert calls == []  # nothing built the individual updates

    class Summing(WeightedMean):  # the same sum, but asks for the individual updates
        needs_per_client = True

    plain = build_pipeline(_cfg(method="powersgd", rank=2), state=state, tables=TABLES)
    plain.aggregator = Summing()
    assert _same_sum(plain.server_side(arrivals, ctx), total)
    assert server.report()["decode_seconds"] > 0


# --- error feedback, as a pipeline step ---

def _cfg(**compression):
    return config_from_dict({"compression": {"method": "topk", "fraction": 0.02, **compression}})


def test_error_feedback_accumulates_what_was_dropped():
    state = _state()
    schema = WireSchema.of(state, TABLES)
    step, server = Compress(_cfg().compression, schema), Decompress(_cfg().compression, schema)
    ctx = ClientContext(0, 1, 7, {})
    sent_sum, got_sum = None, None
    first = _updates(5, state=state)[4]  # a client touches the same rows every round (its data)
    g = torch.Generator().manual_seed(11)
    rounds = [ClientUpdate(4, 5.0, {k: torch.randn(v.shape, generator=g) * scale for k, v in first.dense.items()},
                           {k: (ids, torch.randn(r.shape, generator=g) * scale) for k, (ids, r) in first.sparse.items()})
              for scale in (1.0, 1.0, 1.0, 0.0)]
    for r, u in enumerate(rounds):
        ctx.round = r
        got = server.on_clients(step.apply_many([u], [ctx]), ServerContext(r, 0, 1))[0]
        view_u, view_g = _dense_view(u, state), _dense_view(got, state)
        sent_sum = view_u if sent_sum is None else {k: sent_sum[k] + view_u[k] for k in view_u}
        got_sum = view_g if got_sum is None else {k: got_sum[k] + view_g[k] for k in view_g}
    residual = ctx.state["residual"]
    left = {"t_item": torch.zeros(300, 16), "t_user": torch.zeros(5, 16)}
    for name, (ids, rows) in residual["sparse"].items():
        left[name][ids] = rows
    at = 0
    for name, shape in schema.dense:
        n = int(np.prod(shape))
        left[name] = residual["dense"][at : at + n].view(shape)
        at += n
    # everything the client was asked to send is either delivered or still waiting in its residual
    assert _close({k: got_sum[k] + left[k] for k in got_sum}, sent_sum, atol=1e-4)
    assert sum(v.abs().sum() for v in left.values()) > 0  # and top-2% really did hold some back
    # the held-back part goes out in later rounds: zero updates drain the residual
    before = sum(v.abs().sum().item() for v in left.values())
    for _ in range(40):
        step.apply_many([rounds[-1]], [ctx])
    after = ctx.state["residual"]
    assert after["dense"].abs().sum() + sum(rows.abs().sum() for _, rows in after["sparse"].values()) < before / 2


def test_without_error_feedback_nothing_is_kept():
    state = _state()
    step = Compress(_cfg(error_feedback=False).compression, WireSchema.of(state, TABLES))
    ctx = ClientContext(0, 1, 7, {})
    step.apply_many(_updates(1, state=state), [ctx])
    assert "residual" not in ctx.state


def test_build_pipeline_puts_compression_last_and_decompression_first():
    state = _state()
    pipe = build_pipeline(_cfg(), state=state, tables=TABLES)
    assert isinstance(pipe.client_steps[-1], Compress) and isinstance(pipe.server_steps[0], Decompress)
    assert pipe.per_client and pipe.stateful_clients
    plain = build_pipeline(config_from_dict({}), state=state, tables=TABLES)
    assert not plain.client_steps and not plain.per_client


# --- compressed downloads ---

def test_compressed_downloads_track_the_global_model_and_cost_what_facts_say():
    from fedrec.client.layout import ModelLayout
    from fedrec.model import build_model
    from fedrec.runtime.facts import touched_rows_per_client
    from tests.factories import toy_federated_data

    data = toy_federated_data()
    cfg = config_from_dict({"client": {"sparse_downloads": True},
                            "compression": {"method": "powersgd", "rank": 1, "downlink": "same"}})
    state = {k: v.detach().clone() for k, v in build_model(data.train.spec, cfg.model, seed=0).state_dict().items()}
    layout = ModelLayout.of(state, data.train.spec)
    downloads = DeltaDownloads(cfg, state, layout.tables, data)
    counts = touched_rows_per_client(data, layout, state)
    predicted = update_nbytes(WireSchema.of(state, layout.tables), downloads.plan, counts)
    g = torch.Generator().manual_seed(0)
    target = {k: v + torch.randn(v.shape, generator=g) for k, v in state.items()}  # the server moved on
    gaps = []
    for _ in range(40):
        copy = downloads.download(3, target)
        assert downloads.last_nbytes == predicted[3]
        ids = downloads.ids(3)
        gaps.append(sum((copy.dense[n] - target[n]).norm().item() for n in copy.dense)
                    + sum((copy.rows[n] - target[n][ids[n]]).norm().item() for n in copy.rows))
    assert gaps[-1] < 0.05 * gaps[0]  # each download sends the rest of the gap (no error is lost)
    exact = DeltaDownloads(config_from_dict({"client": {"sparse_downloads": True},
                                             "compression": {"method": "none", "downlink": "same"}}), state, layout.tables, data)
    copy = exact.download(3, target)
    assert all(torch.equal(copy.dense[n], target[n]) for n in copy.dense)


# --- config ---

def test_compression_and_gossip_sections_belong_to_their_modes():
    with pytest.raises(ConfigError, match="compression"):
        config_from_dict({"mode": "fel", "compression": {"method": "topk"}})
    with pytest.raises(ConfigError, match="gossip"):
        config_from_dict({"mode": "sync", "gossip": {"algorithm": "dpsgd"}})
    with pytest.raises(ConfigError, match="sparse_downloads"):
        config_from_dict({"compression": {"method": "topk", "downlink": "same"}})
    with pytest.raises(ConfigError, match="compression.method"):
        config_from_dict({"mode": "gossip", "gossip": {"algorithm": "dpsgd", "compression": {"method": "topk"}}})
    with pytest.raises(ConfigError, match="compression.method"):
        config_from_dict({"mode": "gossip", "gossip": {"algorithm": "powergossip"}})
    with pytest.raises(ConfigError, match="compression.rank"):
        config_from_dict({"compression": {"method": "powersgd", "rank": 0}})
    ok = config_from_dict({"mode": "fedbuff", "compression": {"method": "int8"}})
    assert ok.compression.method == "int8" and isinstance(make_codec("none"), Codec)


def test_powersgd_fp16_halves_its_floats_and_both_ends_read_the_same_update():
    """``precision: fp16``: every factor (and raw matrix) PowerSGD sends is half as wide, the bytes
    counted are still the bytes parsed, and the receiver decodes bit for bit what the sender
    reconstructed (so error feedback keeps the rounding error, not a guess of it)."""
    state = _state()
    updates = _updates(state=state)
    schema = WireSchema.of(state, TABLES)
    half, full = PowerSGD(2, "fp16"), PowerSGD(2)
    for rows, cols in [(16, 1), (16, 26), (1, 16), (120, 16), (7, 16)]:
        assert 2 * half.nbytes(rows, cols) == full.nbytes(rows, cols)
    plan = CompressionPlan.of(make_codec("powersgd", rank=2, precision="fp16"), "all")
    enc = encode_updates(updates, schema, plan, [{} for _ in updates], list(range(len(updates))))
    rows = {t: np.array([u.sparse[t][0].numel() for u in updates]) for t in TABLES}
    assert [len(w) for w in enc.wires] == update_nbytes(schema, plan, rows).tolist()
    got = decode_updates([EncodedUpdate(u.client, u.weight, w) for u, w in zip(updates, enc.wires)], schema, plan)
    wide = encode_updates(updates, schema, CompressionPlan.of(PowerSGD(2), "all"), [{} for _ in updates],
                          list(range(len(updates))))
    for mine, theirs, ref in zip(enc.decoded, got, wide.decoded):
        a, b, r = _dense_view(mine, state), _dense_view(theirs, state), _dense_view(ref, state)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert all(torch.allclose(a[k], r[k], rtol=1e-2, atol=1e-2) for k in a)  # fp16 rounding, not another update
    assert any(not torch.equal(_dense_view(m, state)["w1"], _dense_view(r, state)["w1"])
               for m, r in zip(enc.decoded, wide.decoded))  # and it did round
    with pytest.raises(ConfigError, match="compression.precision"):
        config_from_dict({"compression": {"method": "topk", "precision": "fp16"}})


def test_fp16_saturates_instead_of_overflowing():
    """A value beyond float16's range is sent as its largest finite value (error feedback keeps the
    rest), never as inf: an inf would make the aggregate, and the model, non-finite."""
    codec = PowerSGD(1, "fp16")
    m = torch.tensor([[[1e6, -2.0, 3.0]]])  # a vector travels raw
    got = codec.decode(codec.encode(m), 1, 3)
    assert torch.isfinite(got).all() and got[0, 0, 0] == torch.finfo(torch.float16).max and got[0, 0, 1] == -2.0
