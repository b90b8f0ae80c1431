"""The coordinated-row guard against hand-computed cases: a row's mean pairwise cosine among its
touchers (too few touchers, and zero rows, not scored), the running mean over rounds deciding
(saved and restored by ``state_dict``), and FoolsGold's option: a row the trusted push in concert
held out of the aggregate, colluders given weight 0 not counted, the config."""

from __future__ import annotations

import io

import pytest
import torch

from fedrec.pipeline import ServerContext
from fedrec.pipeline.robust import (
    AggregatorConfig,
    CoordinatedRows,
    FoolsGold,
    make_aggregator,
    row_coordination,
    stack,
)
from tests.factories import toy_update

CTX = ServerContext(1, 0, 10)
T = "emb"
S3 = 0.75 ** 0.5


def upd(client, rows, dense=(0.0,)):
    return toy_update(client, list(dense), rows, 1.0, T)


def test_row_coordination_by_hand():
    ups = [upd(0, {1: [1.0, 0.0], 2: [1.0, 0.0], 3: [0.0, 0.0]}), upd(1, {1: [3.0, 0.0], 2: [0.0, 1.0], 3: [1.0, 0.0]}),
           upd(2, {1: [0.0, 2.0], 3: [0.0, 1.0]})]
    r = stack(ups).rows[T]
    mean_cos, scored = row_coordination(r, min_touchers=3)
    # row 1: units e1, e1, e2: pairs 1, 0, 0 -> 1/3. Row 2: two touchers. Row 3: client 0's zero row
    # is no toucher, so two remain.
    assert scored.tolist() == [True, False, False]
    assert mean_cos[0].item() == pytest.approx(1 / 3)
    mean_cos, scored = row_coordination(r, min_touchers=2)
    assert scored.tolist() == [True, True, True] and mean_cos.tolist() == pytest.approx([1 / 3, 0.0, 0.0])


def test_the_running_mean_over_rounds_decides_and_survives_a_checkpoint():
    concert = [upd(c, {5: [1.0, 0.0]}) for c in range(3)]
    guard = CoordinatedRows([T], threshold=0.5)
    assert guard.held_rows(concert)[T].tolist() == [5]
    buf = io.BytesIO()
    torch.save(guard.state_dict(), buf)
    buf.seek(0)
    restored = CoordinatedRows([T], threshold=0.5)
    restored.load_state_dict(torch.load(buf, weights_only=False))
    # a row held before stays held in a round too few clients touch it to score it
    assert restored.held_rows([upd(0, {5: [1.0, 0.0]}), upd(1, {6: [1.0, 0.0]})])[T].tolist() == [5]
    # three touchers at 120 degrees (mean pairwise cosine -1/2): the running mean (1 - 1/2) / 2 = 1/4
    disagree = [upd(0, {5: [1.0, 0.0]}), upd(1, {5: [-0.5, S3]}), upd(2, {5: [-0.5, -S3]})]
    for g in (guard, restored):
        assert g.held_rows(disagree)[T].tolist() == []
        assert g.record[T][5] == pytest.approx([0.5, 2.0])
    assert CoordinatedRows([T], threshold=-0.6).held_rows(disagree)[T].tolist() == [5]  # -1/2 > -0.6
    assert guard.report()["promotion_guard"] == {"held_share": 0.5, "rows_held_at_end": 0}
    with pytest.raises(ValueError, match="at least one feature"):
        CoordinatedRows([])


def _fan(client, target):
    """A client FoolsGold trusts (a large row of its own) that also pushes the ``target`` row."""
    return upd(client, {5: target, 10 + client: [3.0, 3.0]}, [float(client)])


def test_foolsgold_holds_a_row_the_trusted_push_in_concert():
    ups = [_fan(0, [1.0, 0.1]), _fan(1, [2.0, 0.1]), _fan(2, [0.5, 0.0])]
    fg = FoolsGold(history=False, features=[T], promotion_guard=[T])
    got = fg.aggregate(ups, CTX).mean()
    assert fg.last_weights == {0: 1.0, 1: 1.0, 2: 1.0}  # weighted on the whole uploads, row 5 included
    plain = FoolsGold(history=False, features=[T]).aggregate(ups, CTX).mean()
    ids, rows = got.sparse[T]
    assert plain.sparse[T][0].tolist() == [5, 10, 11, 12]
    assert ids.tolist() == [10, 11, 12]  # row 5 does not move; every other row does, as without the guard
    assert torch.equal(rows, plain.sparse[T][1][1:]) and torch.equal(got.dense["w"], plain.dense["w"])
    assert fg.report()["promotion_guard"]["held_share"] == 1.0


def test_colluders_given_weight_zero_do_not_make_a_row_look_coordinated():
    # three honest clients disagree on row 5 (120 degrees apart); three colluders upload one vector
    # there (and one over another row), so FoolsGold gives them weight 0
    honest = [_fan(0, [1.0, 0.0]), _fan(1, [-0.5, S3]), _fan(2, [-0.5, -S3])]
    colluders = [upd(c, {5: [1.0, 1.0], 7: [2.0, 2.0]}) for c in (3, 4, 5)]
    # among the trusted three row 5's mean pairwise cosine is -1/2; counting the colluders it would
    # be (|sum of units|^2 - 6) / 30 = (9 - 6) / 30 = 0.1, above this threshold
    fg = FoolsGold(history=False, features=[T], promotion_guard=[T], promotion_threshold=0.05)
    got = fg.aggregate([*honest, *colluders], CTX).mean()
    assert [fg.last_weights[c] for c in (3, 4, 5)] == [0.0, 0.0, 0.0]
    assert 5 in got.sparse[T][0].tolist()
    assert fg.guard.record[T][5] == pytest.approx([-0.5, 1.0])


def test_config_builds_the_option():
    fg = make_aggregator(AggregatorConfig(name="foolsgold", features=["item"], agreement=["item"],
                                          promotion_guard=["item"], promotion_threshold=0.6))
    assert isinstance(fg, FoolsGold) and fg.guard.threshold == 0.6 and fg.guard.features == ("item",)
    assert fg.agreement is not None
    assert {"foolsgold", "agreement", "promotion_guard"} <= set(fg.report())
    with pytest.raises(ValueError, match="only for foolsgold"):
        AggregatorConfig(promotion_guard=["item"])
    with pytest.raises(ValueError):
        AggregatorConfig(name="foolsgold", promotion_threshold=1.0)
