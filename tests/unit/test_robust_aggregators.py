"""Robust aggregators against hand-computed cases, including embedding rows only some clients
touched (statistics per row over the clients that touched it; Krum's distances with untouched rows
as zeros)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedrec.pipeline import ServerContext
from fedrec.pipeline.robust import (
    AggregatorConfig,
    Bucketing,
    CenteredClipping,
    CoordinateMedian,
    Krum,
    MultiKrum,
    TrimmedMean,
    bucket_means,
    krum_scores,
    make_aggregator,
    stack,
)
from fedrec.updates import AggregatedUpdate
from tests.factories import toy_update

CTX = ServerContext(1, 0, 10)
T = "emb"


def upd(client, dense, rows=None, weight=1.0):
    return toy_update(client, dense, rows, weight, T)


def rows_of(mean, table=T):
    ids, vals = mean.sparse[table]
    return {int(i): v.tolist() for i, v in zip(ids, vals)}


def test_stack_lines_clients_up_on_the_union_of_rows():
    s = stack([upd(0, [1.0], {2: [1.0], 5: [2.0]}), upd(1, [2.0], {5: [3.0]})])
    assert s.rows[T].ids.tolist() == [2, 5]
    assert s.rows[T].touched.tolist() == [[True, True], [False, True]]
    assert s.rows[T].values[1, 0].item() == 0.0  # untouched: zero in the flat vector ...
    assert torch.isnan(s.rows[T].values_or_nan()[1, 0]).all()  # ... and no opinion for per-row statistics
    assert s.flat().tolist() == [[1.0, 1.0, 2.0], [2.0, 0.0, 3.0]]


def test_median_dense_odd_and_even_and_rows_over_touchers():
    agg = CoordinateMedian().aggregate([upd(0, [1.0, 0.0], {1: [1.0], 2: [4.0]}), upd(1, [5.0, 0.0], {1: [3.0]}),
                                        upd(2, [2.0, 9.0], {2: [10.0], 3: [7.0]}), upd(3, [10.0, 1.0])], CTX)
    mean = agg.mean()
    assert mean.dense["w"].tolist() == [3.5, 0.5]  # (2+5)/2 and (0+1)/2
    # row 1: touched by clients 0 and 1 -> (1+3)/2; row 2: 0 and 2 -> 7; row 3: client 2 alone -> 7.
    # Counting the others as zeros would give 0 for every row here.
    assert rows_of(mean) == {1: [2.0], 2: [7.0], 3: [7.0]}
    assert agg.clients == 4


def test_rows_all_counts_untouched_as_zero():
    ups = [upd(0, [1.0], {1: [1.0], 2: [4.0]}), upd(1, [5.0], {1: [3.0]}), upd(2, [2.0], {2: [10.0], 3: [7.0]})]
    mean = CoordinateMedian(rows="all").aggregate(ups, CTX).mean()
    # row 1: (1, 3, 0) -> 1; row 2: (4, 0, 10) -> 4; row 3: (0, 0, 7) -> 0: a lone toucher cannot move it
    assert rows_of(mean) == {1: [1.0], 2: [4.0], 3: [0.0]} and mean.dense["w"].item() == 2.0
    trimmed = TrimmedMean(0.34, rows="all").aggregate(ups, CTX).mean()
    assert rows_of(trimmed) == {1: [1.0], 2: [4.0], 3: [0.0]}  # three values, one trimmed at each end


def test_trimmed_mean_trims_per_coordinate_by_its_own_count():
    ups = [upd(0, [1.0], {1: [1.0], 2: [5.0]}), upd(1, [2.0], {1: [2.0]}), upd(2, [3.0], {1: [3.0]}),
           upd(3, [100.0], {1: [100.0], 2: [7.0]})]
    mean = TrimmedMean(0.25).aggregate(ups, CTX).mean()
    assert mean.dense["w"].item() == pytest.approx(2.5)  # drop 1 and 100, mean of 2 and 3
    # row 1: four touchers, trim one each side -> 2.5; row 2: two touchers, floor(0.5) = 0 trimmed -> 6
    assert rows_of(mean) == {1: [2.5], 2: [6.0]}
    assert TrimmedMean(0.0).aggregate(ups, CTX).mean().dense["w"].item() == pytest.approx(106 / 4)


def test_trimmed_mean_keeps_at_least_one_value():
    mean = TrimmedMean(0.49).aggregate([upd(0, [1.0]), upd(1, [4.0])], CTX).mean()
    assert mean.dense["w"].item() == pytest.approx(2.5)  # floor(0.98) = 0: nothing trimmed
    mean = TrimmedMean(0.49).aggregate([upd(0, [1.0]), upd(1, [4.0]), upd(2, [9.0])], CTX).mean()
    assert mean.dense["w"].item() == pytest.approx(4.0)  # floor(1.47) = 1 each side: the middle one


def test_krum_scores_by_hand():
    x = torch.tensor([[0.0], [0.1], [0.2], [10.0]])
    # f = 1, n - f - 2 = 1 nearest neighbour: 0.01, 0.01, 0.01, 9.8^2
    assert krum_scores(x, 1).tolist() == pytest.approx([0.01, 0.01, 0.01, 96.04])
    # f = 0: two nearest: 0.01+0.04, 0.01+0.01, 0.01+0.04, 9.8^2+9.9^2
    assert krum_scores(x, 0).tolist() == pytest.approx([0.05, 0.02, 0.05, 96.04 + 98.01])


def test_krum_selects_one_and_multi_krum_averages_the_kept_by_weight():
    ups = [upd(0, [0.0], weight=1.0), upd(1, [0.1], {4: [1.0]}, weight=3.0), upd(2, [0.2], weight=1.0),
           upd(3, [10.0], {4: [50.0]}, weight=100.0)]
    k = Krum(0.25)
    assert k.aggregate(ups, CTX).mean().dense["w"].item() == pytest.approx(0.0) and k.last_selected == [0]
    mk = MultiKrum(0.25)  # keeps n - f = 3: all but the outlier
    mean = mk.aggregate(ups, CTX).mean()
    assert sorted(mk.last_selected) == [0, 1, 2]
    assert mean.dense["w"].item() == pytest.approx((0.0 + 0.3 + 0.2) / 5)
    assert rows_of(mean) == {4: [1.0]}  # the row over the kept clients that touched it


def test_krum_distance_counts_untouched_rows_as_zero():
    # identical dense parts; client 2 uploads a huge row nobody else touched: it is the outlier
    ups = [upd(0, [1.0]), upd(1, [1.0]), upd(2, [1.0], {7: [30.0]}), upd(3, [1.0])]
    mk = MultiKrum(0.25)
    mk.aggregate(ups, CTX)
    assert 2 not in mk.last_selected


def test_centered_clipping_by_hand_with_history():
    cc = CenteredClipping(tau=1.0)
    ups = [upd(0, [0.5, 0.0]), upd(1, [3.0, 4.0]), upd(2, [-4.0, 0.0])]
    # reference 0: deviations of norm 0.5, 5, 4 are scaled by 1, 0.2, 0.25
    v1 = cc.aggregate(ups, CTX).mean().dense["w"]
    assert v1.tolist() == pytest.approx([(0.5 + 0.6 - 1.0) / 3, 0.8 / 3])
    # the next round starts from v1
    v2 = cc.aggregate([upd(0, [v1[0].item() + 2.0, v1[1].item()])], CTX).mean().dense["w"]
    assert v2.tolist() == pytest.approx([v1[0].item() + 1.0, v1[1].item()])


def test_centered_clipping_rows_norm_over_own_coordinates_mean_over_touchers():
    cc = CenteredClipping(tau=1.0)
    # client 0: dense 0, row 1 = [3, 4] -> norm 5, scale 0.2; client 1: dense 0.5, no rows -> scale 1
    mean = cc.aggregate([upd(0, [0.0], {1: [3.0, 4.0]}), upd(1, [0.5])], CTX).mean()
    assert mean.dense["w"].item() == pytest.approx(0.25)
    assert rows_of(mean) == {1: pytest.approx([0.6, 0.8])}  # over its one toucher, not halved


def test_bucket_means_and_bucketing_with_buckets_of_one_is_the_inner_rule():
    ups = [upd(i, [float(v)], {1: [float(v)]}) for i, v in enumerate([5, 1, 9, 3, 7])]
    rng = np.random.default_rng(0)
    order = np.random.default_rng(0).permutation(5)
    means = bucket_means(ups, 2, rng)
    assert len(means) == 3
    expected = [np.mean([[5, 1, 9, 3, 7][i] for i in order[s:s + 2]]) for s in (0, 2, 4)]
    assert [m.dense["w"].item() for m in means] == pytest.approx(expected)
    b = Bucketing(CoordinateMedian(), 1).aggregate(ups, CTX).mean()
    assert b.dense["w"].item() == 5.0 and rows_of(b) == {1: [5.0]}


def test_config_builds_each_rule_and_mean_is_fedavg():
    for name, cls in [("median", CoordinateMedian), ("trimmed_mean", TrimmedMean), ("krum", Krum),
                      ("multi_krum", MultiKrum), ("centered_clipping", CenteredClipping), ("bucketing", Bucketing)]:
        assert isinstance(make_aggregator(AggregatorConfig(name=name)), cls)
    ups = [upd(0, [1.0], {1: [2.0]}, weight=1.0), upd(1, [3.0], weight=3.0)]
    got = make_aggregator(AggregatorConfig()).aggregate(ups, CTX)
    want = AggregatedUpdate.from_clients(ups)
    assert torch.equal(got.mean().dense["w"], want.mean().dense["w"])
