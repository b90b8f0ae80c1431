"""The coordinated-row guard against hand-computed cases: a row's mean pairwise cosine among its
touchers (too few touchers, and zero rows, not scored), a row pushed in concert held still while
the rest reach the inner rule unchanged, the running mean over rounds deciding (saved and restored
by ``state_dict``), and the config's order of gate, guard and rule."""

from __future__ import annotations

import io

import pytest
import torch

from fedrec.pipeline import ServerContext
from fedrec.pipeline.mean import WeightedMean
from fedrec.pipeline.robust import (
    AggregatorConfig,
    AgreementGate,
    CoordinatedRowGuard,
    FoolsGold,
    make_aggregator,
    row_coordination,
    stack,
)
from fedrec.updates import AggregatedUpdate
from tests.factories import toy_update

CTX = ServerContext(1, 0, 10)
T = "emb"


def upd(client, rows, dense=(0.0,)):
    return toy_update(client, list(dense), rows, 1.0, T)


def test_row_coordination_by_hand():
    ups = [upd(0, {1: [1.0, 0.0], 2: [1.0, 0.0], 3: [0.0, 0.0]}), upd(1, {1: [3.0, 0.0], 2: [0.0, 1.0], 3: [1.0, 0.0]}),
           upd(2, {1: [0.0, 2.0], 3: [0.0, 1.0]})]
    r = stack(ups).rows[T]
    mean_cos, scored = row_coordination(r.values, r.touched, min_touchers=3)
    # row 1: units e1, e1, e2: pairs 1, 0, 0 -> 1/3. Row 2: two touchers. Row 3: client 0's zero row
    # is no toucher, so two remain.
    assert scored.tolist() == [True, False, False]
    assert mean_cos[0].item() == pytest.approx(1 / 3)
    mean_cos, scored = row_coordination(r.values, r.touched, min_touchers=2)
    assert scored.tolist() == [True, True, True] and mean_cos.tolist() == pytest.approx([1 / 3, 0.0, 0.0])


def test_a_row_pushed_in_concert_is_held_and_the_rest_reach_the_inner_rule_unchanged():
    ups = [upd(0, {5: [1.0, 0.1], 6: [1.0, 0.0], 7: [2.0, 2.0]}, [1.0]), upd(1, {5: [2.0, 0.1], 6: [-1.0, 0.0]}, [2.0]),
           upd(2, {5: [0.5, 0.0], 6: [0.0, 1.0]}, [3.0])]
    guard = CoordinatedRowGuard(WeightedMean(), [T], threshold=0.5)
    got = guard.aggregate(ups, CTX).mean()
    want = AggregatedUpdate.from_clients(ups).mean()
    ids, rows = got.sparse[T]
    assert ids.tolist() == [6, 7]  # row 5 (pairwise cosines ~1) does not move; row 6 (mean -1/3) does
    assert torch.equal(rows, want.sparse[T][1][1:])
    assert torch.equal(got.dense["w"], want.dense["w"])
    assert guard.report()["promotion_guard"] == {"held_share": 0.5, "rows_held_at_end": 1}


def test_the_running_mean_over_rounds_decides_and_survives_a_checkpoint():
    concert = [upd(c, {5: [1.0, 0.0]}) for c in range(3)]
    guard = CoordinatedRowGuard(WeightedMean(), [T], threshold=0.5)
    assert guard.held_rows(concert)[T].tolist() == [5]
    buf = io.BytesIO()
    torch.save(guard.state_dict(), buf)
    buf.seek(0)
    restored = CoordinatedRowGuard(WeightedMean(), [T], threshold=0.5)
    restored.load_state_dict(torch.load(buf, weights_only=False))
    # a row held before stays held in a round too few clients touch it to score it
    assert restored.held_rows([upd(0, {5: [1.0, 0.0]}), upd(1, {6: [1.0, 0.0]})])[T].tolist() == [5]
    # three touchers in perfect disagreement (units at 120 degrees: mean cosine -1/2): (1 - 1/2) / 2 = 1/4
    disagree = [upd(0, {5: [1.0, 0.0]}), upd(1, {5: [-0.5, 0.75 ** 0.5]}), upd(2, {5: [-0.5, -(0.75 ** 0.5)]})]
    for g in (guard, restored):
        assert g.held_rows(disagree)[T].tolist() == []
        assert g.record[T][5] == pytest.approx([0.5, 2.0])
    fresh = CoordinatedRowGuard(WeightedMean(), [T], threshold=-0.6)
    assert fresh.held_rows(disagree)[T].tolist() == [5]  # -1/2 > -0.6


def test_config_orders_gate_guard_and_rule():
    cfg = AggregatorConfig(name="foolsgold", features=["item"], agreement=["item"], promotion_guard=["item"],
                           promotion_threshold=0.6)
    rule = make_aggregator(cfg)
    assert isinstance(rule, AgreementGate) and isinstance(rule.inner, CoordinatedRowGuard)
    assert isinstance(rule.inner.inner, FoolsGold) and rule.inner.threshold == 0.6
    guard = make_aggregator(AggregatorConfig(promotion_guard=["item"]))
    assert isinstance(guard, CoordinatedRowGuard) and isinstance(guard.inner, WeightedMean)
    assert AggregatorConfig(promotion_guard=["item"]).robust and not AggregatorConfig().robust
    report = AgreementGate(CoordinatedRowGuard(FoolsGold(), [T]), [T]).report()
    assert {"agreement", "promotion_guard", "foolsgold"} <= set(report)
    with pytest.raises(ValueError):
        AggregatorConfig(promotion_threshold=1.0)
    with pytest.raises(ValueError, match="at least one feature"):
        CoordinatedRowGuard(WeightedMean(), [])
