"""FoolsGold against hand-computed cases: identical sybils get weight 0 and orthogonal clients full
weight, pardoning, the rescaling and logit, norm bounding to the median (whole uploads or each
tensor), embedding rows averaged over their trusted touchers (a row only zero-weight clients
touched does not move), the similarity over chosen features' rows only, and the per-client
history across rounds (saved and restored by ``state_dict``)."""

from __future__ import annotations

import io
import math

import pytest
import torch

from fedrec.attacks.omniscient import ALIE
from fedrec.pipeline import ServerContext
from fedrec.pipeline.robust import (
    AggregatorConfig,
    FoolsGold,
    bound_norms,
    foolsgold_weights,
    make_aggregator,
    stack,
)
from fedrec.updates import AggregatedUpdate, ClientUpdate
from tests.factories import toy_update

CTX = ServerContext(1, 0, 10)
T = "emb"
C = math.sqrt(0.5)


def upd(client, dense, rows=None, weight=1.0):
    return toy_update(client, dense, rows, weight, T)


def rows_of(mean, table=T):
    ids, vals = mean.sparse[table]
    return {int(i): v.tolist() for i, v in zip(ids, vals)}


def weights(vectors, **kw):
    return foolsgold_weights(torch.tensor(vectors, dtype=torch.float64), **kw).tolist()


def test_identical_sybils_get_zero_and_orthogonal_clients_full_weight():
    assert weights([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]) == [1.0, 1.0, 0.0, 0.0]
    # a scaled copy is as much a sybil as an exact one (cosine ignores length)
    assert weights([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 7]]) == [1.0, 1.0, 0.0, 0.0]


def test_pardoning_and_logit_by_hand():
    # sybils s1 = s2 = e1; h has cosine sqrt(1/2) with them, g is orthogonal to everyone.
    # v = (1, 1, C, 0). Pardoning: cs(h, s) *= v_h / v_s -> 1/2, so alpha_h = 1/2, g's alpha 1
    # (-> 0.99); logit: ln(0.5 / 0.5) + 0.5 = 0.5 for h, ln(99) + 0.5 > 1 -> 1 for g.
    x = [[1, 0, 0], [1, 0, 0], [C, C, 0], [0, 0, 1]]
    assert weights(x) == pytest.approx([0.0, 0.0, 0.5, 1.0])
    assert weights(x, kappa=1.5) == pytest.approx([0.0, 0.0, 0.75, 1.0])
    # without pardoning h's alpha would be 1 - C = 0.29, below the logit's cut (0.38): weight 0.
    # A sybil is not pardoned by the honest client it resembles (v_s > v_h): still 0.


def test_alphas_are_rescaled_by_the_largest():
    # pairwise cosines 0.6, 0.6, -0.28: every alpha is 0.4, which alone would give
    # ln(0.4 / 0.6) + 0.5 = 0.09; rescaled by the largest they are all 1 (-> 0.99) -> weight 1.
    assert weights([[1, 0], [0.6, 0.8], [0.6, -0.8]]) == pytest.approx([1.0, 1.0, 1.0])
    # and one client alone is trusted
    assert weights([[3, 4]]) == [1.0]


def test_all_alike_gives_an_empty_round():
    fg = FoolsGold(history=False)
    agg = fg.aggregate([upd(0, [1.0, 2.0]), upd(1, [2.0, 4.0]), upd(2, [0.5, 1.0])], CTX)
    assert agg.clients == 0  # the server then leaves the model as it is
    assert fg.last_weights == {0: 0.0, 1: 0.0, 2: 0.0}


def test_norm_bounding_to_the_median_norm_then_weighted_mean():
    ups = [upd(0, [1.0, 0.0, 0.0], weight=2.0), upd(1, [0.0, 2.0, 0.0]), upd(2, [0.0, 0.0, 100.0])]
    bounded = FoolsGold(history=False).aggregate(ups, CTX).mean().dense["w"]
    # norms 1, 2, 100 -> median 2: client 2 is scaled to norm 2; all orthogonal -> alpha 1
    assert bounded.tolist() == pytest.approx([2 / 4, 2 / 4, 2 / 4])
    plain = FoolsGold(history=False, norm_bound="none").aggregate(ups, CTX).mean().dense["w"]
    assert plain.tolist() == pytest.approx([2 / 4, 2 / 4, 100 / 4])
    want = AggregatedUpdate.from_clients(ups).mean().dense["w"]  # all trusted, no bound: FedAvg
    assert torch.allclose(plain, want)


def test_norm_bound_per_tensor_bounds_each_row_not_a_clients_table():
    # client 0 rated three items (row norms 1), client 1 one (norm 1), client 2 one with norm 10:
    # the median row norm is 1, so only client 2's row shrinks (a bound on each client's whole
    # table would shrink client 0's rows, norm sqrt(3) against a median of sqrt(3))
    ups = [upd(0, [0.0], {1: [1.0], 2: [-1.0], 3: [1.0]}), upd(1, [0.0], {1: [1.0]}), upd(2, [0.0], {4: [10.0]})]
    per = bound_norms(ups, per_tensor=True)
    assert per[0].sparse[T][1].flatten().tolist() == [1.0, -1.0, 1.0] and per[2].sparse[T][1].flatten().tolist() == [1.0]


def test_row_median_over_clients_gives_a_client_with_many_rows_one_say():
    # client 0 uploads five rows of norm 10, clients 1 and 2 one row each (norms 1 and 2): over the
    # rows the median is 10 and nothing is bounded; over the clients' medians (10, 1, 2) it is 2
    ups = [upd(0, [0.0], {i: [10.0] for i in range(5)}), upd(1, [0.0], {7: [1.0]}), upd(2, [0.0], {8: [-2.0]})]
    rows = bound_norms(ups, per_tensor=True)
    assert rows[0].sparse[T][1].flatten().tolist() == [10.0] * 5
    clients = bound_norms(ups, per_tensor=True, row_median="clients")
    assert clients[0].sparse[T][1].flatten().tolist() == pytest.approx([2.0] * 5)
    assert [u.sparse[T][1].item() for u in clients[1:]] == [1.0, -2.0]
    assert FoolsGold(row_median="clients").row_median == "clients"
    with pytest.raises(ValueError, match="row_median"):
        FoolsGold(row_median="items")
    cfg = AggregatorConfig(name="foolsgold", norm_bound="tensor", row_median="clients")
    assert make_aggregator(cfg).row_median == "clients"


def test_norm_bound_per_tensor():
    # dense norms 0.1, 0.1, 0.1 (no change); row norms 5, 1, 100 -> median 5: client 2's row to norm 5
    ups = [upd(0, [0.1], {1: [3.0, 4.0]}), upd(1, [0.1], {2: [0.6, 0.8]}), upd(2, [-0.1], {3: [60.0, 80.0]})]
    per = bound_norms(ups, per_tensor=True)
    assert [u.dense["w"].item() for u in per] == pytest.approx([0.1, 0.1, -0.1])
    assert per[2].sparse[T][1].tolist() == [pytest.approx([3.0, 4.0])] and per[0].sparse[T][1].tolist() == [[3.0, 4.0]]
    # the whole upload: norms ~5, ~1, ~100 -> median ~5 scales client 2's dense part too
    whole = bound_norms(ups, per_tensor=False)
    s = math.sqrt(0.01 + 25) / math.sqrt(0.01 + 10000)
    assert whole[2].dense["w"].item() == pytest.approx(-0.1 * s) and whole[1].sparse[T][1].tolist() == [pytest.approx([0.6, 0.8])]
    agg = FoolsGold(history=False, norm_bound="tensor").aggregate(ups, CTX).mean()
    assert rows_of(agg)[3] == pytest.approx([3.0, 4.0])


def test_bound_among_trusted_takes_the_median_over_the_trusted_uploads_only():
    # sybils 2 and 3 upload ten rows of norm 10 each (as IPM's colluders upload every row that
    # moves): over every upload the median row norm is 10 and no honest row is bounded; over the
    # trusted (the sybils get weight 0) the row norms are 1, 3, 2 -> median 2: client 0's row 2 -> 2
    sybil = {i: [-10.0] for i in range(1, 11)}
    ups = [upd(0, [0.0], {1: [1.0], 2: [3.0]}), upd(1, [0.0], {1: [-2.0]}), upd(2, [0.0], sybil), upd(3, [0.0], sybil)]
    for among, row2 in (("all", 3.0), ("trusted", 2.0)):
        fg = FoolsGold(history=False, norm_bound="tensor", features=[T], bound_among=among)
        mean = fg.aggregate(ups, CTX).mean()
        assert fg.last_weights == {0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0}
        assert rows_of(mean) == {1: pytest.approx([-0.5]), 2: pytest.approx([row2])}
    with pytest.raises(ValueError, match="bound_among"):
        FoolsGold(bound_among="benign")


def test_rows_over_trusted_touchers_and_a_row_only_sybils_touched_does_not_move():
    sybil = {1: [100.0], 9: [5.0]}
    ups = [upd(0, [10.0, 0.0], {1: [1.0]}, weight=1.0), upd(1, [0.0, 10.0], {1: [-1.0]}, weight=3.0),
           upd(2, [0.0, 0.0], sybil, weight=50.0), upd(3, [0.0, 0.0], sybil, weight=50.0)]
    fg = FoolsGold(history=False, norm_bound="none")
    agg = fg.aggregate(ups, CTX)
    assert fg.last_weights == {0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0}
    mean = agg.mean()
    assert mean.dense["w"].tolist() == pytest.approx([2.5, 7.5])  # (1 * [10, 0] + 3 * [0, 10]) / 4
    # row 1 over its trusted touchers by example count: (1 - 3) / 4; row 9 is absent, not zeroed
    assert rows_of(mean) == {1: pytest.approx([-0.5])}
    assert agg.clients == 4
    assert 9 in rows_of(AggregatedUpdate.from_clients(ups).mean())  # the plain mean would move it


def test_history_finds_sybils_whose_rounds_differ_and_survives_a_checkpoint():
    r1 = [upd(0, [1.0, 0, 0, 0]), upd(1, [0, 1.0, 0, 0]), upd(2, [0, 0, 0, 1.0])]
    r2 = [upd(0, [0, 1.0, 0, 0]), upd(1, [1.0, 0, 0, 0]), upd(2, [0, 0, 1.0, 0])]
    fg = FoolsGold(history=True)
    fg.aggregate(r1, CTX)
    assert fg.last_weights == {0: 1.0, 1: 1.0, 2: 1.0}
    buf = io.BytesIO()
    torch.save(fg.state_dict(), buf)  # checkpoints are torch.save'd
    buf.seek(0)
    restored = FoolsGold(history=True)
    restored.load_state_dict(torch.load(buf, weights_only=False))
    # round 2: this round's uploads of 0 and 1 are orthogonal, but both have sent e1 + e2 in all
    for f in (fg, restored):
        f.aggregate(r2, ServerContext(2, 0, 10))
        assert f.last_weights == {0: 0.0, 1: 0.0, 2: 1.0}
    fresh = FoolsGold(history=True)  # without the history they look unrelated
    fresh.aggregate(r2, CTX)
    assert fresh.last_weights == {0: 1.0, 1: 1.0, 2: 1.0}
    no_history = FoolsGold(history=False)
    no_history.aggregate(r1, CTX)
    no_history.aggregate(r2, CTX)
    assert no_history.last_weights == {0: 1.0, 1: 1.0, 2: 1.0}


def test_with_history_colluders_identical_this_round_still_get_zero():
    # round 1: three orthogonal clients; round 2: clients 0 and 1 send the same d. Their histories
    # e1 + d and e2 + d have cosine 1/2 only; this round's cosine 1 counts (the larger of the two)
    fg = FoolsGold(history=True, norm_bound="none")
    fg.aggregate([upd(0, [1.0, 0, 0, 0, 0]), upd(1, [0, 1.0, 0, 0, 0]), upd(2, [0, 0, 1.0, 0, 0])], CTX)
    fg.aggregate([upd(0, [0, 0, 0, 1.0, 0]), upd(1, [0, 0, 0, 1.0, 0]), upd(2, [0, 0, 0, 0, 1.0])], CTX)
    assert fg.last_weights == {0: 0.0, 1: 0.0, 2: 1.0}
    h = [fg.memory[c].dense["w"] for c in (0, 1)]
    assert float(torch.nn.functional.cosine_similarity(h[0], h[1], dim=0)) == pytest.approx(0.5)


def test_similarity_over_chosen_features_rows_only():
    item, user = "sparse_arch.embedding_bag_collection.embedding_bags.t_item.weight", "emb"

    def u(client, dense, items, users=None):
        def rows(d):
            ids = sorted(d or {})
            return (torch.tensor(ids, dtype=torch.int64), torch.tensor([d[i] for i in ids]).reshape(len(ids), 2))
        return ClientUpdate(client, 1.0, {"w": torch.tensor(dense)}, {item: rows(items), user: rows(users or {0: [1.0, 0.0]})})

    # clients 0 and 1 move the dense part alike (cosine 0.99 on whole uploads: weight 0 there) but
    # rated different items; on the item rows nobody resembles anybody
    ups = [u(0, [10.0, 0.0], {1: [1.0, 0.0]}), u(1, [10.0, 0.0], {2: [1.0, 0.0]}), u(2, [0.0, 10.0], {3: [0.0, 1.0]})]
    whole = FoolsGold(history=False, norm_bound="none")
    whole.aggregate(ups, CTX)
    assert whole.last_weights == {0: 0.0, 1: 0.0, 2: 1.0}
    items = FoolsGold(history=True, norm_bound="none", features=["item"])
    items.aggregate(ups, CTX)
    assert items.last_weights == {0: 1.0, 1: 1.0, 2: 1.0}
    assert set(items.memory[0].sparse) == {item} and not items.memory[0].dense  # history keeps only what is compared
    # sybils pushing one item row alike are found there even when their dense parts differ
    ups = [u(0, [1.0, 0.0], {1: [1.0, 0.0]}), u(1, [0.0, 1.0], {2: [0.0, 1.0]}),
           u(2, [-1.0, 0.0], {9: [5.0, 5.0]}), u(3, [0.0, -1.0], {9: [5.0, 5.0], 4: [0.1, 0.0]})]
    items.aggregate(ups, CTX)
    assert items.last_weights[2] == 0.0 and items.last_weights[3] == 0.0 and items.last_weights[0] == 1.0
    with pytest.raises(ValueError, match="match none"):
        FoolsGold(features=["movie"]).aggregate(ups, CTX)


def test_history_compares_with_clients_of_earlier_rounds():
    # client 3 sends in round 2 what client 0 sent in round 1: alike over the clients seen so far,
    # though nobody in its own round resembles it
    r1 = [upd(0, [1.0, 1.0, 0, 0, 0, 0]), upd(1, [0, 0, 1.0, 0, 0, 0]), upd(2, [0, 0, 0, 1.0, 0, 0])]
    r2 = [upd(3, [1.0, 1.0, 0, 0, 0, 0]), upd(4, [0, 0, 0, 0, 1.0, 0]), upd(5, [0, 0, 0, 0, 0, 1.0])]
    fg, no_history = FoolsGold(history=True), FoolsGold(history=False)
    for f in (fg, no_history):
        f.aggregate(r1, CTX)
        f.aggregate(r2, CTX)
    assert fg.last_weights == {3: 0.0, 4: 1.0, 5: 1.0}
    assert no_history.last_weights == {3: 1.0, 4: 1.0, 5: 1.0}


@pytest.mark.parametrize("features", [(), (T,)])
def test_inner_products_kept_up_to_date_match_a_recomputation(features):
    g = torch.Generator().manual_seed(1)
    fg = FoolsGold(history=True, norm_bound="none", features=features)
    for rnd in range(6):  # clients recur, new ones arrive (past 64: the slots grow), row ids grow
        clients = torch.randperm(90, generator=g)[:30].tolist()
        ups = []
        for c in clients:
            ids = torch.randperm(10 + 20 * rnd, generator=g)[:5].sort().values
            ups.append(ClientUpdate(c, 1.0, {"w": torch.randn(2, generator=g)}, {T: (ids, torch.randn(5, 3, generator=g))}))
        fg.aggregate(ups, ServerContext(rnd, 0, 90))
    clients, cs = fg._gram.cosines()
    direct = stack([fg.memory[c] for c in clients]).flat().to(torch.float64)
    unit = direct / direct.norm(dim=1, keepdim=True)
    want = unit @ unit.T
    want.fill_diagonal_(0.0)
    assert len(clients) > 64 and torch.allclose(cs, want, atol=1e-12)


def test_history_sums_uploads_scaled_whole_to_the_median_norm_rows_by_id():
    # round 1: norms 5, 1, 2 -> median 2: client 0's upload is scaled by 0.4 as a whole (its shape
    # kept, whatever norm_bound does to what enters the mean); round 2: norms 2, 1, 3 -> median 2
    fg = FoolsGold(history=True, norm_bound="tensor")
    fg.aggregate([upd(0, [0.0], {2: [3.0], 5: [4.0]}), upd(1, [0.0], {3: [1.0]}), upd(2, [0.0], {4: [2.0]})], CTX)
    fg.aggregate([upd(0, [0.0], {5: [1.2], 7: [1.6]}), upd(1, [0.0], {3: [1.0]}), upd(2, [0.0], {4: [3.0]})], CTX)
    ids, vals = fg.memory[0].sparse[T]
    assert ids.tolist() == [2, 5, 7] and vals.flatten().tolist() == pytest.approx([1.2, 2.8, 1.6])
    assert fg.memory[2].sparse[T][1].flatten().tolist() == pytest.approx([4.0])  # 2 + 3 scaled to 2


def test_non_finite_upload_gets_zero_weight():
    fg = FoolsGold(history=True)
    agg = fg.aggregate([upd(0, [1.0, 0.0]), upd(1, [0.0, 1.0]), upd(2, [float("inf"), 0.0])], CTX)
    assert fg.last_weights[2] == 0.0 and 2 not in fg.memory
    assert torch.isfinite(agg.mean().dense["w"]).all()


def test_alie_colluders_get_zero_weight():
    """ALIE's attackers upload one identical vector covering every row the benign touched; the
    benign clients here touch random rows with random values."""
    g = torch.Generator().manual_seed(0)
    benign = []
    for c in range(8):
        ids = torch.randperm(200, generator=g)[:20].sort().values
        benign.append(ClientUpdate(c, 1.0 + c, {"w": torch.randn(4, generator=g)},
                                   {T: (ids, torch.randn(20, 4, generator=g))}))
    attackers = [ClientUpdate(c, 30.0, {"w": torch.zeros(4)}, {T: (torch.tensor([0]), torch.zeros(1, 4))}) for c in (8, 9)]
    ups = ALIE({8, 9}, z=1.5).on_clients(benign + attackers, CTX)
    fg = FoolsGold(history=False)
    agg = fg.aggregate(ups, CTX)
    assert fg.last_weights[8] == 0.0 and fg.last_weights[9] == 0.0
    assert all(fg.last_weights[c] > 0 for c in range(8))
    # only benign clients' rows move
    assert set(agg.sparse[T].ids.tolist()) == set(torch.cat([u.sparse[T][0] for u in benign]).tolist())


def test_config_builds_foolsgold_and_validates():
    fg = make_aggregator(AggregatorConfig(name="foolsgold"))
    assert isinstance(fg, FoolsGold) and fg.history and fg.norm_bound == "median" and fg.kappa == 1.0
    fg = make_aggregator(AggregatorConfig(name="foolsgold", history=False, norm_bound="tensor", kappa=2.0, features=["item"]))
    assert not fg.history and fg.norm_bound == "tensor" and fg.kappa == 2.0 and fg.features == ("item",)
    assert AggregatorConfig(name="foolsgold").robust
    with pytest.raises(ValueError):
        AggregatorConfig(name="foolsgold", norm_bound="mean")
    with pytest.raises(ValueError):
        AggregatorConfig(name="foolsgold", kappa=0.0)
    with pytest.raises(ValueError, match="only for foolsgold"):
        AggregatorConfig(name="krum", features=["item"])
    assert make_aggregator(AggregatorConfig(name="foolsgold", bound_among="trusted")).bound_among == "trusted"
    with pytest.raises(ValueError):
        AggregatorConfig(name="foolsgold", bound_among="benign")
    # options that would do nothing are refused
    with pytest.raises(ValueError, match="only for foolsgold"):
        AggregatorConfig(name="median", row_median="clients")
    with pytest.raises(ValueError, match="row_median applies to norm_bound: tensor"):
        AggregatorConfig(name="foolsgold", row_median="clients")
    with pytest.raises(ValueError, match="bound_among needs a norm_bound"):
        AggregatorConfig(name="foolsgold", bound_among="trusted", norm_bound="none")
    for option in ({"agreement_passes": 2}, {"agreement_weighting": "reference"}, {"agreement_memory": 0.5}):
        with pytest.raises(ValueError, match="need agreement"):
            AggregatorConfig(name="foolsgold", **option)
    with pytest.raises(ValueError):
        AggregatorConfig(name="foolsgold", agreement=["item"], agreement_memory=1.0)
