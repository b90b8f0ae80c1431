"""Kendall's tau against scipy, and the ranking metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sampling.metrics import kendall_tau, mean_metrics, user_metrics


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([1, 2, 3, 4], [10, 20, 30, 40], 1.0),
        ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
        ([1, 2, 3], [1, 3, 2], 1 / 3),
        ([1, 1, 2, 3], [1, 2, 3, 4], 5 / np.sqrt(5 * 6)),  # tau-b with a tie
    ],
)
def test_kendall_known_cases(a, b, expected):
    assert kendall_tau(a, b) == pytest.approx(expected)


def test_kendall_constant_ranking_is_nan_and_shapes_checked():
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        kendall_tau([1, 2], [1, 2, 3])


def _case():
    # user 0: item 0 seen in training; items 2 and 3 held out. user 1: nothing held out.
    scores = np.array([[0.9, 0.8, 0.7, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]])
    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]]))
    test = sp.csr_matrix(np.array([[0, 0, 1, 1, 0], [0, 0, 0, 0, 0]]))
    weight = np.array([1.0, 1.0, 2.0, 4.0, 1.0])
    return scores, train, test, weight


def test_metrics_hand_computed():
    # Unseen items ranked: 1 (0.8), 2 (0.7, hit), 4 (0.5), 3 (0.1, hit); top-2 = [1, 2].
    m = user_metrics(*_case(), k=2)
    assert m["auc"][0] == pytest.approx(1 / 4)  # of (2,1) (2,4) (3,1) (3,4) only (2,4) is ordered right
    assert m["hr@2"][0] == 1.0
    assert m["ndcg@2"][0] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert m["psp@2"][0] == pytest.approx(2 / (4 + 2))  # gained w[2]; the best top-2 is w[3] + w[2]
    assert m["valid"].tolist() == [True, False]
    means = mean_metrics([m])
    assert means["hr@2"] == 1.0 and means["auc"] == pytest.approx(0.25)  # user 1 (no test items) left out


def test_auc_ties_count_half_and_perfect_ranking():
    scores = np.array([[0.5, 0.5, 0.9, 0.1]])
    test = sp.csr_matrix(np.array([[1, 0, 0, 0]]))
    train = sp.csr_matrix((1, 4))
    m = user_metrics(scores, train, test, np.ones(4), k=1)
    assert m["auc"][0] == pytest.approx((0.5 + 0 + 1) / 3)
    assert m["hr@1"][0] == 0.0
    perfect = user_metrics(np.array([[0.9, 0.5, 0.4, 0.1]]), train, test, np.ones(4), k=1)
    assert perfect["auc"][0] == 1.0 and perfect["ndcg@1"][0] == 1.0 and perfect["psp@1"][0] == 1.0


def _reference_metrics(scores, train, test, weight, k):
    """Per user, by definition: candidates are the unseen items; AUC from sklearn (ties count half);
    the top k by a full stable sort."""
    from sklearn.metrics import roc_auc_score

    out = {"auc": [], "hr": [], "ndcg": [], "psp": []}
    for u in range(scores.shape[0]):
        cand = np.flatnonzero(train[u].toarray().ravel() == 0)
        rel = test[u].toarray().ravel()[cand] > 0
        s = scores[u, cand]
        out["auc"].append(roc_auc_score(rel, s))
        top = np.argsort(-s, kind="stable")[:k]
        gains = rel[top] / np.log2(np.arange(2, top.size + 2))
        out["ndcg"].append(gains.sum() / (1 / np.log2(np.arange(2, min(rel.sum(), k) + 2))).sum())
        out["hr"].append(float(rel[top].any()))
        w = weight[cand]
        out["psp"].append((w[top] * rel[top]).sum() / np.sort(w[rel])[::-1][:k].sum())
    return out


def test_metrics_match_their_definitions_on_random_blocks():
    rng = np.random.default_rng(7)
    for trial in range(10):
        n_users, n_items = 30, 200
        train = sp.csr_matrix(rng.random((n_users, n_items)) < 0.1)
        test = sp.csr_matrix((rng.random((n_users, n_items)) < 0.05) & (train.toarray() == 0))
        test[np.flatnonzero(np.diff(test.indptr) == 0), 0] = 1  # every user holds out something
        test = sp.csr_matrix(test.toarray() & (train.toarray() == 0))
        scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
        if trial % 2:
            scores = np.round(scores, 1)  # ties: AUC counts them half (the top-k order is then arbitrary)
        weight = 1 + 3 * rng.random(n_items)
        ours = user_metrics(scores, train, test, weight, k=10)
        ref = _reference_metrics(scores, train, test, weight, 10)
        ok = ours["valid"]
        assert ok.sum() >= n_users - 2
        np.testing.assert_allclose(ours["auc"][ok], np.array(ref["auc"])[ok], atol=1e-9)
        if trial % 2 == 0:
            np.testing.assert_allclose(ours["ndcg@10"][ok], np.array(ref["ndcg"])[ok], atol=1e-9)
            np.testing.assert_allclose(ours["hr@10"][ok], np.array(ref["hr"])[ok])
            np.testing.assert_allclose(ours["psp@10"][ok], np.array(ref["psp"])[ok], atol=1e-9)
