"""Each attack does what its definition says: which clients attack, what they upload or train on,
and how item promotion's exposure is measured."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
import torch

from data_pipeline.errors import ConfigError
from fedrec.attacks import (
    ALIE,
    IPM,
    AttackConfig,
    BoostRows,
    GaussianUpdate,
    Scaling,
    SignFlip,
    add_fake_positives,
    alie_z,
    choose_attackers,
    flip_labels,
    pick_target_item,
    target_exposure,
)
from fedrec.model import ModelConfig, build_model
from fedrec.pipeline import ClientContext, ServerContext
from tests.factories import toy_federated_data, toy_update

T = "emb"


def upd(client, dense, rows=None, weight=2.0):
    return toy_update(client, dense, rows, weight, T)


def ctx(client, seed=7):
    return ClientContext(client, 1, seed)


def test_attackers_are_a_fixed_seeded_subset():
    a = choose_attackers(943, 0.2, 0)
    assert len(a) == 189 and len(set(a.tolist())) == 189 and (np.diff(a) > 0).all() and a.max() < 943
    assert np.array_equal(a, choose_attackers(943, 0.2, 0))
    assert not np.array_equal(a, choose_attackers(943, 0.2, 1))
    assert len(choose_attackers(943, 0.1, 0)) == 94


def test_sign_flip_scaling_gaussian_change_only_attackers():
    honest = upd(3, [1.0, -2.0], {4: [0.5]})
    for step, check in [
        (SignFlip([3], 4.0), lambda u: u.dense["w"].tolist() == [-4.0, 8.0] and u.sparse[T][1].tolist() == [[-2.0]]),
        (Scaling([3], 10.0), lambda u: u.dense["w"].tolist() == [10.0, -20.0] and u.sparse[T][1].tolist() == [[5.0]]),
    ]:
        out = step.apply(honest, ctx(3))
        assert check(out) and out.weight == 2.0 and out.sparse[T][0].tolist() == [4]
        assert step.apply(honest, ctx(5)) is honest  # a benign client passes through
    big = upd(3, [0.0] * 20000)
    g = GaussianUpdate([3], 3.0).apply(big, ctx(3))
    assert g.dense["w"].std().item() == pytest.approx(3.0, rel=0.03) and abs(g.dense["w"].mean().item()) < 0.1
    assert torch.equal(g.dense["w"], GaussianUpdate([3], 3.0).apply(big, ctx(3)).dense["w"])  # seeded
    assert not torch.equal(g.dense["w"], GaussianUpdate([3], 3.0).apply(big, ctx(3, seed=8)).dense["w"])


def test_boost_rows_multiplies_only_the_target_row():
    out = BoostRows([3], 10.0, T, [4]).apply(upd(3, [1.0], {2: [1.0], 4: [0.5]}), ctx(3))
    assert out.sparse[T][1].tolist() == [[1.0], [5.0]] and out.dense["w"].tolist() == [1.0]


def test_alie_z_is_the_papers_z_max():
    # n = 50, m = 10: s = floor(26) - 10 = 16, z = Phi^-1(34 / 50)
    assert alie_z(50, 10) == pytest.approx(NormalDist().inv_cdf(0.68))
    assert alie_z(3, 1) == pytest.approx(NormalDist().inv_cdf(2 / 3))


def test_alie_and_ipm_replace_attackers_with_benign_statistics():
    ups = [upd(0, [1.0], {1: [2.0]}), upd(1, [3.0], {1: [4.0], 2: [6.0]}), upd(9, [100.0], {5: [100.0]}, weight=7.0)]
    c = ServerContext(1, 0, 10)
    out = ALIE([9]).on_clients(ups, c)
    z = NormalDist().inv_cdf(2 / 3)  # n = 3, m = 1
    bad = out[2]
    assert bad.client == 9 and bad.weight == 7.0 and out[:2] == ups[:2]
    assert bad.dense["w"].item() == pytest.approx(2.0 - z * 1.0)  # mean 2, population std 1
    # rows: every row a benign client touched; row 1 mean 3 std 1, row 2 one toucher: std 0
    assert bad.sparse[T][0].tolist() == [1, 2]
    assert bad.sparse[T][1].flatten().tolist() == pytest.approx([3.0 - z, 6.0])
    assert ALIE([9], z=2.0).on_clients(ups, c)[2].dense["w"].item() == pytest.approx(0.0)
    ipm = IPM([9], scale=0.5).on_clients(ups, c)[2]
    assert ipm.dense["w"].item() == pytest.approx(-1.0) and ipm.sparse[T][1].flatten().tolist() == pytest.approx([-1.5, -3.0])
    assert ALIE([42]).on_clients(ups, c) is ups  # no attacker this round


def test_attack_config_checks_fields_against_kind():
    with pytest.raises(ValueError, match="target_item"):
        AttackConfig(kind="item_promotion")
    with pytest.raises(ValueError, match="only for alie"):
        AttackConfig(kind="ipm", z=1.0)
    from fedrec.config import config_from_dict

    with pytest.raises(ConfigError, match="attack"):
        config_from_dict({"mode": "fedbuff", "attack": {"kind": "sign_flip"}})


def test_label_flip_flips_only_attacker_rows():
    data = toy_federated_data()
    bad = np.array([2, 5])
    out = flip_labels(data, bad)
    rows = np.concatenate([data.partitions[a] for a in bad])
    others = np.setdiff1d(np.arange(len(data.train)), rows)
    assert np.array_equal(out.train.labels[rows], 1 - data.train.labels[rows])
    assert np.array_equal(out.train.labels[others], data.train.labels[others])


def test_fake_positives_rows_rate_the_target_for_attackers_only():
    data = toy_federated_data()
    out = add_fake_positives(data, np.array([2, 5]), "item", 7, rows=4)
    assert len(out.train) == len(data.train) + 8
    for a in (2, 5):
        new = out.partitions[a][len(data.partitions[a]):]
        assert len(new) == 4 and (out.train.values["item"][new] == 7).all() and (out.train.labels[new] == 1).all()
        assert (out.train.groups[new] == data.train.groups[data.partitions[a][0]]).all()  # its own user's features
    assert all(np.array_equal(out.partitions[c], data.partitions[c]) for c in range(data.num_clients) if c not in (2, 5))
    with pytest.raises(ConfigError, match="target_item"):
        add_fake_positives(data, np.array([2]), "item", 10_000, rows=1)


def _brute_force_exposure(model, data, clients, item, k=10):
    from fedrec.model import predict

    card = data.train.spec.sparse[0].cardinality
    hits = users = 0
    for c in clients:
        rows = data.partitions[c]
        seen = set(data.train.values["item"][rows].tolist())
        if item in seen:
            continue
        cand = [i for i in range(1, card) if i not in seen]
        ex = data.train.take(np.full(len(cand), rows[0]))
        ex.values["item"] = np.array(cand, dtype=np.int64)
        ex.offsets["item"] = np.arange(len(cand) + 1, dtype=np.int64)
        probs = predict(model, ex.iter_batches(1024))[0].numpy()
        rank = int((probs > probs[cand.index(item)]).sum())
        users += 1
        hits += rank < k
    return hits / users


def test_exposure_is_hit_rate_at_10_over_benign_users_who_have_not_rated_the_target():
    data = toy_federated_data()
    model = build_model(data.train.spec, ModelConfig(embedding_dim=4, dense_arch=(4,), over_arch=(4,)), seed=0)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    clients = list(range(data.num_clients))
    item = pick_target_item(data, 0, max_count=30)
    got = target_exposure(model, state, data, clients, item)
    assert got == pytest.approx(_brute_force_exposure(model, data, clients, item))
    # give the target the best item's embedding: it ties for first, so every eligible user is a hit
    table = next(n for n in state if n.endswith("weight") and "embedding" in n)
    model.load_state_dict(state)
    scores = _scores(model, data)
    state[table][item] = state[table][int(np.argmax(scores)) + 1]
    assert target_exposure(model, state, data, clients, item) == 1.0


def _scores(model, data):
    from fedrec.model import predict

    card = data.train.spec.sparse[0].cardinality
    ex = data.train.take(np.zeros(card - 1, dtype=np.int64))
    ex.values["item"] = np.arange(1, card)
    ex.offsets["item"] = np.arange(card, dtype=np.int64)
    return predict(model, ex.iter_batches(1024))[0].numpy()
