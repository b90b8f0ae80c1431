"""The row-agreement gate against hand-computed cases: per-row cosines to the other touchers'
unit-vector sum (rows one client touched, and zero rows, are not scored), a flipped client dropped
and the rest handed to the inner rule unchanged, the running mean cosine across rounds (saved and
restored by ``state_dict``), non-finite uploads kept out of the references, and the config."""

from __future__ import annotations

import io
import math

import pytest
import torch

from fedrec.pipeline import ServerContext
from fedrec.pipeline.mean import WeightedMean
from fedrec.pipeline.robust import AggregatorConfig, AgreementGate, FoolsGold, make_aggregator, row_agreement
from fedrec.updates import AggregatedUpdate
from tests.factories import toy_update

CTX = ServerContext(1, 0, 10)
T = "emb"
R = 1 / math.sqrt(2)


def upd(client, rows, dense=(0.0,), weight=1.0):
    return toy_update(client, list(dense), rows, weight, T)


def test_row_agreement_by_hand():
    ups = [
        upd(0, {1: [1.0, 0.0], 2: [5.0, 5.0], 4: [0.0, 0.0]}),
        upd(1, {1: [2.0, 0.0], 3: [0.0, 1.0], 4: [1.0, 0.0]}),
        upd(2, {1: [0.0, -1.0], 3: [0.0, 3.0]}),
    ]
    sums, counts = row_agreement(ups, [T])
    # row 1: units e1, e1, -e2 (sum (2, -1)); 0 and 1 see (1, -1): cos 1/sqrt2; 2 sees (2, 0): cos 0.
    # row 3: 1 and 2 both e2: cos 1 each. Row 2 has one toucher, row 4 a zero row: neither scored
    # (client 0's zero row has no direction; client 1's only other toucher there sent nothing).
    assert sums.tolist() == pytest.approx([R, R + 1.0, 1.0])
    assert counts.tolist() == [1.0, 2.0, 2.0]


def test_a_flipped_client_is_dropped_and_the_rest_go_to_the_inner_rule_unchanged():
    honest = [upd(0, {1: [1.0, 0.2], 2: [0.5, 0.5]}, [1.0]), upd(1, {1: [0.8, -0.1], 2: [0.4, 0.6]}, [2.0], 2.0),
              upd(2, {1: [1.2, 0.0], 3: [1.0, 1.0]}, [3.0])]
    flipped = upd(3, {1: [-4.0, -0.4], 2: [-2.0, -2.0]}, [-40.0])
    gate = AgreementGate(WeightedMean(), [T])
    got = gate.aggregate([*honest, flipped], CTX)
    want = AggregatedUpdate.from_clients(honest)
    assert got.clients == 4
    assert torch.equal(got.mean().dense["w"], want.mean().dense["w"])
    assert torch.equal(got.mean().sparse[T][1], want.mean().sparse[T][1])
    assert gate.report()["agreement"]["dropped_share"] == 0.25
    assert gate.score[3][0] < 0 < min(gate.score[c][0] for c in range(3))


def test_the_score_runs_over_every_round_and_survives_a_checkpoint():
    agree = {i: [1.0, 0.0] for i in range(4)}
    r1 = [upd(0, agree), upd(1, agree), upd(2, agree)]
    # round 2: client 0 disagrees on one row (cosine -1 to the others' e1 + e1)
    r2 = [upd(0, {9: [-1.0, 0.0]}), upd(1, {9: [1.0, 0.0]}), upd(2, {9: [1.0, 0.0]})]
    gate = AgreementGate(WeightedMean(), [T])
    gate.aggregate(r1, CTX)
    assert gate.score[0] == pytest.approx([4.0, 4.0])
    buf = io.BytesIO()
    torch.save(gate.state_dict(), buf)
    buf.seek(0)
    restored = AgreementGate(WeightedMean(), [T])
    restored.load_state_dict(torch.load(buf, weights_only=False))
    for g in (gate, restored):
        assert g.kept(r2) == [True, True, True]  # (4 - 1) / 5 >= 0: its record outweighs one row
        assert g.score[0] == pytest.approx([3.0, 5.0])
    fresh = AgreementGate(WeightedMean(), [T])
    assert fresh.kept(r2) == [False, True, True]  # on this round alone it disagrees


def test_a_client_without_a_scored_row_is_kept_and_an_all_dropped_round_is_empty():
    gate = AgreementGate(WeightedMean(), [T])
    # rows nobody else touched: no evidence, kept
    assert gate.kept([upd(0, {1: [1.0, 0.0]}), upd(1, {2: [1.0, 0.0]})]) == [True, True]
    # two clients exactly opposed on their one shared row: each disagrees with the only other
    gate = AgreementGate(WeightedMean(), [T])
    got = gate.aggregate([upd(0, {1: [1.0, 0.0]}), upd(1, {1: [-1.0, 0.0]})], CTX)
    assert got.clients == 0


def test_non_finite_uploads_take_no_part_and_are_left_to_the_inner_rule():
    ups = [upd(0, {1: [1.0, 0.0]}), upd(1, {1: [1.0, 0.1]}), upd(2, {1: [0.9, 0.0]})]
    bad = upd(3, {1: [float("nan"), 0.0]})
    with_bad, without = AgreementGate(FoolsGold(history=False), [T]), AgreementGate(FoolsGold(history=False), [T])
    assert with_bad.kept([*ups, bad]) == [True, True, True, True]
    without.kept(ups)
    assert with_bad.score == without.score  # the NaN row is no one's reference
    agg = AgreementGate(FoolsGold(history=False), [T]).aggregate([*ups, bad], CTX)
    assert torch.isfinite(agg.mean().sparse[T][1]).all()  # FoolsGold gives it weight 0


def test_config_puts_the_gate_in_front_of_any_rule():
    gate = make_aggregator(AggregatorConfig(name="foolsgold", features=["item"], norm_bound="tensor", agreement=["item"]))
    assert isinstance(gate, AgreementGate) and isinstance(gate.inner, FoolsGold)
    assert gate.features == ("item",) and gate.inner.norm_bound == "tensor"
    cfg = AggregatorConfig(agreement=["item"])
    assert cfg.robust and isinstance(make_aggregator(cfg).inner, WeightedMean)
    assert not isinstance(make_aggregator(AggregatorConfig(name="median")), AgreementGate)
    with pytest.raises(ValueError, match="agreement features"):
        AgreementGate(WeightedMean(), ["genre"]).kept([upd(0, {1: [1.0, 0.0]}), upd(1, {1: [1.0, 0.0]})])
    with pytest.raises(ValueError, match="at least one feature"):
        AgreementGate(WeightedMean(), [])
