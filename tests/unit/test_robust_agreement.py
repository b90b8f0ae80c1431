"""Row agreement against hand-computed cases: per-row cosines to the other trusted touchers'
unit-vector sum (rows without another trusted toucher, and zero rows, are not scored), the running
mean across rounds (saved and restored by ``state_dict``), and FoolsGold's option: a flipped client
dropped, colluders given weight 0 never the reference, non-finite uploads left out, the config."""

from __future__ import annotations

import io
import math

import pytest
import torch

from data_pipeline.errors import ConfigError
from fedrec.config import config_from_dict
from fedrec.pipeline import ServerContext
from fedrec.pipeline.robust import AggregatorConfig, FoolsGold, RowAgreement, make_aggregator, row_agreement
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
    # only client 2 as a reference: 0 and 1 score 0 on row 1 (e1 against -e2), 1 scores 1 on row
    # 3; client 2 has no other trusted toucher anywhere
    sums, counts = row_agreement(ups, [T], reference=torch.tensor([False, False, True]))
    assert sums.tolist() == pytest.approx([0.0, 1.0, 0.0]) and counts.tolist() == [1.0, 2.0, 0.0]


def test_the_record_runs_over_every_round_and_survives_a_checkpoint():
    agree = {i: [1.0, 0.0] for i in range(4)}
    r1 = [upd(0, agree), upd(1, agree), upd(2, agree)]
    # round 2: client 0 disagrees on one row (cosine -1 to the others' e1 + e1)
    r2 = [upd(0, {9: [-1.0, 0.0]}), upd(1, {9: [1.0, 0.0]}), upd(2, {9: [1.0, 0.0]})]
    record = RowAgreement([T])
    assert record.kept(r1) == [True, True, True]
    assert record.score[0] == pytest.approx([4.0, 4.0])
    buf = io.BytesIO()
    torch.save(record.state_dict(), buf)
    buf.seek(0)
    restored = RowAgreement([T])
    restored.load_state_dict(torch.load(buf, weights_only=False))
    for r in (record, restored):
        assert r.kept(r2) == [True, True, True]  # (4 - 1) / 5 >= 0: its record outweighs one row
        assert r.score[0] == pytest.approx([3.0, 5.0])
    fresh = RowAgreement([T])
    assert fresh.kept(r2) == [False, True, True]  # on this round alone it disagrees
    assert fresh.report() == {"agreement": {"dropped_share": 1 / 3}}
    # no scored row yet: kept
    assert RowAgreement([T]).kept([upd(0, {1: [1.0, 0.0]}), upd(1, {2: [1.0, 0.0]})]) == [True, True]
    with pytest.raises(ValueError, match="agreement features"):
        RowAgreement(["genre"]).kept(r1)
    with pytest.raises(ValueError, match="at least one feature"):
        RowAgreement([])


def test_a_second_pass_takes_the_clients_that_failed_the_first_out_of_the_reference():
    # round 1 gives flippers 5, 6, 7 a record of -1: each sends -e1 on a row of its own (7, 8, 9)
    # that three honest clients move by e1
    e1, m1, e2 = [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]
    r1 = [upd(c, {7: e1, 8: e1, 9: e1}) for c in (10, 11, 12)] + [upd(c, {c + 2: m1}) for c in (5, 6, 7)]
    # round 2: A (0) and B (1) send e1 on row 1 beside the three flippers' -e1; B and C (2) agree on
    # row 2. One pass: A's others on row 1 sum to -e1 (cosine -1: dropped), B scores -1 and +1
    # (mean 0: kept), C +1; the flippers' others sum to 0 on row 1 (not scored), their record -1.
    # Second pass, with only B and C as references: A sees B's e1 (+1) and is kept; B has no other
    # reference on row 1 and scores +1 on row 2; each flipper sees B's e1 (-1).
    r2 = [upd(0, {1: e1}), upd(1, {1: e1, 2: e2}), upd(2, {2: e2})] + [upd(c, {1: m1}) for c in (5, 6, 7)]
    results = {}
    for passes in (1, 2):
        record = RowAgreement([T], passes=passes)
        record.kept(r1)
        results[passes] = record.kept(r2), record
    assert results[1][0] == [False, True, True, False, False, False]
    assert results[2][0] == [True, True, True, False, False, False]
    # the record keeps the last pass's scores: A +1 over one row, B +1 over one, a flipper -2 over 2
    assert results[1][1].score[0] == pytest.approx([-1.0, 1.0]) and results[2][1].score[0] == pytest.approx([1.0, 1.0])
    assert results[2][1].score[1] == pytest.approx([1.0, 1.0]) and results[2][1].score[5] == pytest.approx([-2.0, 2.0])
    # every client fails the first pass (two against two on row 9: each sees the other side's two
    # and its own side's one, a sum pointing away): no reference is left, the first pass's scores stand
    r3 = [upd(c, {9: e1}) for c in (20, 21)] + [upd(c, {9: m1}) for c in (22, 23)]
    record = RowAgreement([T], passes=2)
    assert record.kept(r3) == [False] * 4 and record.score[20] == pytest.approx([-1.0, 1.0])
    with pytest.raises(ValueError, match="passes"):
        RowAgreement([T], passes=0)
    fg = make_aggregator(AggregatorConfig(name="foolsgold", features=[T], agreement=[T], agreement_passes=2))
    assert fg.agreement.passes == 2


def test_reference_weighting_counts_a_row_by_its_reference_length():
    ups = [
        upd(0, {1: [1.0, 0.0], 2: [5.0, 5.0], 4: [0.0, 0.0]}),
        upd(1, {1: [2.0, 0.0], 3: [0.0, 1.0], 4: [1.0, 0.0]}),
        upd(2, {1: [0.0, -1.0], 3: [0.0, 3.0]}),
    ]
    sums, counts = row_agreement(ups, [T], weighting="reference")
    # the rows of test_row_agreement_by_hand, each cosine times its reference's length: row 1's
    # references (1, -1) for 0 and 1 (length sqrt2, cosine 1/sqrt2: 1 each) and (2, 0) for 2
    # (length 2, cosine 0); row 3's e2 for 1 and 2 (length 1, cosine 1)
    assert sums.tolist() == pytest.approx([1.0, 2.0, 1.0])
    assert counts.tolist() == pytest.approx([math.sqrt(2), math.sqrt(2) + 1.0, 3.0])
    # client 0 goes against four agreeing others on row 1 and agrees with a lone other on rows 2, 3:
    # counted once per row it is kept ((-1 + 1 + 1) / 3), weighted by reference it is dropped
    # ((-4 + 1 + 1) / 6)
    e1, m1 = [1.0, 0.0], [-1.0, 0.0]
    r = [upd(0, {1: m1, 2: e1, 3: e1}), upd(1, {1: e1, 2: e1}), upd(2, {1: e1, 3: e1})] + [upd(c, {1: e1}) for c in (3, 4)]
    assert RowAgreement([T]).kept(r)[0] and not RowAgreement([T], weighting="reference").kept(r)[0]
    with pytest.raises(ValueError, match="weighting"):
        RowAgreement([T], weighting="pairs")


def test_memory_scores_a_lone_toucher_against_the_directions_kept_before():
    e1, m1 = [1.0, 0.0], [-1.0, 0.0]
    record = RowAgreement([T], memory=0.5)
    # round 1: 0 and 1 agree on row 5; 2 agrees with them and passes, but FoolsGold gave it weight 0
    # (a colluder): nothing of it is remembered, on row 5 or on its own row 6
    assert record.kept([upd(0, {5: e1}), upd(1, {5: e1}), upd(2, {5: e1, 6: e1})],
                       reference=torch.tensor([True, True, False])) == [True, True, True]
    assert record.remembered[T][5].tolist() == [2.0, 0.0] and record.remembered[T][6].tolist() == [0.0, 0.0]
    restored = RowAgreement([T], memory=0.5)
    buf = io.BytesIO()
    torch.save(record.state_dict(), buf)
    buf.seek(0)
    restored.load_state_dict(torch.load(buf, weights_only=False))
    # round 2: client 3 is alone on row 5 and goes against what was kept there (cosine -1 to 2 e1):
    # dropped, where without memory its row has no reference and it would be kept
    for r in (record, restored):
        assert r.kept([upd(3, {5: m1})]) == [False]
        assert r.score[3] == pytest.approx([-1.0, 1.0])
        # the row was touched: its memory is discounted by 0.5, and 3 (dropped) adds nothing
        assert r.remembered[T][5].tolist() == [1.0, 0.0]
    assert RowAgreement([T]).kept([upd(3, {5: m1})]) == [True]
    # a row id past the memory's end grows it
    record.kept([upd(4, {40: e1})])
    assert record.remembered[T][40].tolist() == [1.0, 0.0] and record.remembered[T][5].tolist() == [1.0, 0.0]
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="memory"):
            RowAgreement([T], memory=bad)
    fg = make_aggregator(AggregatorConfig(name="foolsgold", features=[T], agreement=[T], agreement_weighting="reference",
                                          agreement_memory=0.8))
    assert fg.agreement.weighting == "reference" and fg.agreement.decay == 0.8


def _honest(client, shared):
    """A client FoolsGold trusts: one shared row and a large row of its own (unlike everyone)."""
    return upd(client, {1: shared, 10 + client: [3.0, 3.0]})


def test_foolsgold_drops_a_flipper_that_its_similarity_cannot_see():
    ups = [_honest(0, [1.0, 0.0]), _honest(1, [1.0, 0.1]), _honest(2, [0.9, -0.1]), _honest(3, [-1.0, 0.0])]
    plain = FoolsGold(history=False, features=[T])
    plain.aggregate(ups, CTX)
    assert plain.last_weights == {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}  # no one alike: all trusted
    gated = FoolsGold(history=False, features=[T], agreement=[T])
    gated.aggregate(ups, CTX)
    assert gated.last_weights == {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.0}
    assert gated.report()["agreement"]["dropped_share"] == 0.25


def test_colluders_given_weight_zero_are_never_the_reference():
    # the honest client is alone on row 1 with two colluders that send minus its update (IPM's
    # "minus the benign mean" on a row one benign client touched)
    ups = [_honest(0, [1.0, 0.0]), _honest(1, [0.0, 1.0]), upd(2, {1: [-1.0, 0.0], 5: [2.0, 2.0]}),
           upd(3, {1: [-1.0, 0.0], 5: [2.0, 2.0]})]
    sums, _ = row_agreement(ups, [T])
    assert sums[0] < 0  # with everyone as the reference the colluders outvote it
    fg = FoolsGold(history=False, features=[T], agreement=[T])
    fg.aggregate(ups, CTX)
    assert fg.last_weights == {0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0}


def test_non_finite_uploads_take_no_part():
    ups = [_honest(0, [1.0, 0.0]), _honest(1, [1.0, 0.1]), _honest(2, [0.9, 0.0])]
    bad = upd(3, {1: [float("nan"), 0.0]})
    with_bad, without = FoolsGold(history=False, features=[T], agreement=[T]), FoolsGold(history=False, features=[T], agreement=[T])
    agg = with_bad.aggregate([*ups, bad], CTX)
    without.aggregate(ups, CTX)
    assert with_bad.agreement.score == without.agreement.score  # the NaN row is no one's reference
    assert with_bad.last_weights[3] == 0.0 and torch.isfinite(agg.mean().sparse[T][1]).all()


def test_config_builds_the_option_and_checkpoints_it():
    fg = make_aggregator(AggregatorConfig(name="foolsgold", features=["item"], norm_bound="tensor", agreement=["item"]))
    assert isinstance(fg, FoolsGold) and fg.agreement.features == ("item",) and fg.guard is None
    assert make_aggregator(AggregatorConfig(name="foolsgold")).agreement is None
    with pytest.raises(ValueError, match="only for foolsgold"):
        AggregatorConfig(name="median", agreement=["item"])
    # a feature the model does not have is refused when the run config loads, not mid-run
    for field in ("features", "agreement", "promotion_guard"):
        with pytest.raises(ConfigError, match=f"aggregator.{field}.*'genre'"):
            config_from_dict({"data": {"features": ["item"]}, "aggregator": {"name": "foolsgold", field: ["genre"]}})
    config_from_dict({"data": {"features": ["item"]}, "aggregator": {"name": "foolsgold", "agreement": ["item"],
                                                                       "promotion_guard": ["item"]}})
    src = FoolsGold(history=False, features=[T], agreement=[T])
    src.aggregate([_honest(0, [1.0, 0.0]), _honest(1, [-1.0, 0.0])], CTX)
    dst = FoolsGold(history=False, features=[T], agreement=[T])
    dst.load_state_dict(src.state_dict())
    assert dst.agreement.score == src.agreement.score and dst.agreement.score
