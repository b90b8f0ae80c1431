"""DP-FedAvg's steps: whole-update clipping, noise on every coordinate with a fixed denominator,
adaptive clipping's rule, and an epsilon that is exactly Opacus's for the same steps."""

from __future__ import annotations

import math

import pytest
import torch

from fedrec.pipeline import ClientContext, ModelShapes, ServerContext
from fedrec.privacy import (
    AdaptiveClipping,
    CentralGaussianNoise,
    ClipUpdate,
    FixedClip,
    LocalGaussianNoise,
    PrivacyConfig,
    clip,
    epsilon_after,
    noise_for_epsilon,
    update_norm,
)
from fedrec.updates import AggregatedUpdate, ClientUpdate

T = "emb"
MODEL = ModelShapes({"w": (2,), T: (1000, 2)}, {T: "item"})


def upd(client, dense, rows, weight=5.0):
    ids = torch.tensor(sorted(rows), dtype=torch.int64)
    vals = torch.tensor([rows[i] for i in sorted(rows)], dtype=torch.float32)
    return ClientUpdate(client, weight, {"w": torch.tensor(dense)}, {T: (ids, vals)})


def test_clip_covers_embedding_rows_and_sets_weight_one():
    u = upd(0, [3.0, 0.0], {4: [0.0, 4.0]})
    assert update_norm(u) == pytest.approx(5.0)  # rows count towards the norm
    c, norm = clip(u, 1.0)
    assert norm == pytest.approx(5.0) and update_norm(c) == pytest.approx(1.0) and c.weight == 1.0
    assert c.dense["w"].tolist() == pytest.approx([0.6, 0.0]) and c.sparse[T][1].tolist() == [pytest.approx([0.0, 0.8])]
    small = ClipUpdate(10.0).apply(u, ClientContext(0, 1, 0))
    assert small.dense["w"].tolist() == [3.0, 0.0] and small.weight == 1.0


def test_central_noise_covers_every_row_and_divides_by_the_expected_clients():
    agg = AggregatedUpdate.from_clients([clip(upd(0, [3.0, 0.0], {4: [0.0, 4.0]}), 1.0)[0]])
    step = CentralGaussianNoise(MODEL, 0.0, FixedClip(1.0), denominator=50, sample_rate=0.05, delta=1e-3, accountant="rdp")
    out = step.on_aggregate(agg, ServerContext(1, 0, 1000))
    rows = out.sparse[T]
    assert rows.ids.tolist() == list(range(1000)) and (rows.weight == 50).all() and out.weight == 50
    mean = out.mean()
    assert mean.dense["w"].tolist() == pytest.approx([0.6 / 50, 0.0])
    assert mean.sparse[T][1][4].tolist() == pytest.approx([0.0, 0.8 / 50]) and mean.sparse[T][1][5].abs().sum() == 0
    noisy = CentralGaussianNoise(MODEL, 2.0, FixedClip(0.5), 50, 0.05, 1e-3, "rdp").on_aggregate(agg, ServerContext(1, 0, 1000))
    untouched = torch.cat([noisy.sparse[T].delta_sum[:4], noisy.sparse[T].delta_sum[5:]]).flatten()
    assert untouched.std().item() == pytest.approx(2.0 * 0.5, rel=0.05)  # z * C, on rows nobody touched too
    assert (untouched != 0).all()


def test_reported_epsilon_is_opacus_for_the_same_steps():
    from opacus.accountants import PRVAccountant, RDPAccountant

    for kind, cls in (("rdp", RDPAccountant), ("prv", PRVAccountant)):
        step = CentralGaussianNoise(MODEL, 1.1, FixedClip(1.0), 50, 50 / 943, 1 / 943, kind)
        agg = AggregatedUpdate.from_clients([upd(0, [0.1, 0.1], {1: [0.1, 0.1]})])
        for r in range(7):
            step.on_aggregate(agg, ServerContext(r + 1, 0, 943))
        ref = cls()
        for _ in range(7):
            ref.step(noise_multiplier=1.1, sample_rate=50 / 943)
        rep = step.report()
        assert rep["epsilon"] == ref.get_epsilon(delta=1 / 943) and rep["delta"] == 1 / 943
        assert rep["privacy"]["rounds"] == 7
        assert rep["epsilon"] == pytest.approx(epsilon_after(7, 1.1, 50 / 943, 1 / 943, kind))
        state = step.state_dict()  # resumes with the same budget spent
        again = CentralGaussianNoise(MODEL, 1.1, FixedClip(1.0), 50, 50 / 943, 1 / 943, kind)
        again.load_state_dict(state)
        assert again.report()["epsilon"] == rep["epsilon"]


def test_target_epsilon_gives_opacus_noise_that_spends_at_most_it():
    z = noise_for_epsilon(8.0, 1e-5, 0.01, 100, "rdp")
    eps = epsilon_after(100, z, 0.01, 1e-5, "rdp")
    assert eps <= 8.0 and eps > 7.8
    assert epsilon_after(100, z * 1.2, 0.01, 1e-5, "rdp") < eps


def test_adaptive_clipping_follows_the_geometric_rule():
    ad = AdaptiveClipping(clip_norm=2.0, target_quantile=0.5, lr=0.2, count_noise=1e-9)
    ups = [upd(0, [1.0, 0.0], {1: [0.0, 0.0]}), upd(1, [0.5, 0.0], {1: [0.0, 0.0]}), upd(2, [30.0, 0.0], {1: [0.0, 0.0]})]
    out = ad.on_clients(ups, ServerContext(1, 0, 10))
    assert [u.weight for u in out] == [1.0] * 3 and update_norm(out[2]) == pytest.approx(2.0)
    assert ad.round_clip_norm == 2.0  # this round clipped at the old norm
    assert ad.clip_norm == pytest.approx(2.0 * math.exp(-0.2 * (2 / 3 - 0.5)), rel=1e-6)
    # Andrew et al., Theorem 1: the update noise that keeps the pair at z
    ad2 = AdaptiveClipping(1.0, 0.5, 0.2, count_noise=2.5)
    assert ad2.update_noise_multiplier(1.0) == pytest.approx((1.0 - 5.0**-2) ** -0.5)
    with pytest.raises(Exception, match="count_noise"):
        ad.update_noise_multiplier(1.0)  # almost no count noise: nothing left for the update


def test_local_noise_perturbs_what_the_client_uploads():
    u = upd(0, [0.0, 0.0], {i: [0.0, 0.0] for i in range(5000)})
    out = LocalGaussianNoise(0.3).apply(u, ClientContext(0, 1, 11))
    assert out.sparse[T][1].std().item() == pytest.approx(0.3, rel=0.05)
    assert out.sparse[T][0].tolist() == u.sparse[T][0].tolist()


def test_privacy_config_needs_one_noise_source():
    with pytest.raises(ValueError, match="exactly one"):
        PrivacyConfig()
    with pytest.raises(ValueError, match="exactly one"):
        PrivacyConfig(noise_multiplier=1.0, target_epsilon=3.0)
