"""The model zoo: every model fits, scores every item, learns something, and is seed-deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from data_pipeline.errors import ConfigError
from sampling.models import MODEL_NAMES, ZOO, interaction_matrix, make_model
from sampling.models.base import binary
from sampling.models.closed_form import ntk_relu
from sampling.synthetic import zipf_interactions

FAST = {"mf": {"epochs": 4}, "neumf": {"epochs": 30}, "dlrm": {"epochs": 30}}  # small data: one batch an epoch


@pytest.fixture(scope="module")
def matrices():
    d = zipf_interactions("models", users=300, items=120, density=0.08, seed=5)
    u, i, r = d.column("user") - 1, d.column("item") - 1, d.column("rating")
    rng = np.random.default_rng(0)
    test = rng.random(u.size) < 0.2
    shape = (d.num_users, d.num_items)
    return interaction_matrix(u[~test], i[~test], r[~test], *shape), interaction_matrix(u[test], i[test], r[test], *shape)


def _hit_rate(model, train, test) -> float:
    users = np.flatnonzero(np.diff(test.indptr))
    scores = model.score(users)
    scores[train[users].toarray() > 0] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :10]
    return float(np.mean(np.take_along_axis(test[users].toarray() > 0, top, axis=1).any(axis=1)))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_fits_scores_and_beats_chance(name, matrices):
    train, test = matrices
    model = make_model(name, seed=0, **FAST.get(name, {})).fit(train)
    scores = model.score(np.arange(5))
    assert scores.shape == (5, train.shape[1]) and np.isfinite(scores).all()
    if name == "bias-only":  # ranks by predicted rating, not for retrieval: only its ordering is checked
        coo = train.tocoo()
        mean_rating = np.bincount(coo.col, coo.data, train.shape[1]) / np.maximum(np.bincount(coo.col, minlength=train.shape[1]), 1)
        assert np.corrcoef(scores[0], mean_rating)[0, 1] > 0.5
        return
    chance = 10 / train.shape[1] * np.mean(np.diff(test.indptr)[np.diff(test.indptr) > 0])
    assert _hit_rate(model, train, test) > chance, name


@pytest.mark.parametrize("name", [n for n, cls in ZOO.items() if cls.seeded])
def test_seeded_models_are_deterministic(name, matrices):
    train, _ = matrices
    a = make_model(name, seed=3, epochs=2).fit(train).score(np.arange(4))
    b = make_model(name, seed=3, epochs=2).fit(train).score(np.arange(4))
    np.testing.assert_array_equal(a, b)


def test_cold_items_score_lowest(matrices):
    train, _ = matrices
    x = train.tolil()
    x[:, 0] = 0
    x = sp.csr_matrix(x)
    x.eliminate_zeros()
    for name in ("mf", "ease", "infinity-ae"):
        s = make_model(name, **FAST.get(name, {})).fit(x).score(np.arange(3))
        assert np.all(s[:, 0] < s[:, 1:].min(axis=1)), name


def test_ease_matches_its_closed_form():
    x = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.float32))
    model = make_model("ease", l2=2.0).fit(x)
    p = np.linalg.inv(x.T.toarray() @ x.toarray() + 2.0 * np.eye(3))
    b = np.eye(3) - p / np.diag(p)
    np.testing.assert_allclose(model.score(np.arange(4)), x.toarray() @ b, atol=1e-5)


def test_ntk_is_symmetric_psd():
    rng = np.random.default_rng(0)
    x = (rng.random((20, 15)) < 0.3).astype(float)
    k = ntk_relu(x @ x.T)
    np.testing.assert_allclose(k, k.T, atol=1e-10)
    assert np.linalg.eigvalsh(k).min() > -1e-8


def test_unknown_model_and_unfitted():
    with pytest.raises(ConfigError, match="models"):
        make_model("gpt")
    with pytest.raises(ConfigError, match="fit"):
        make_model("ease").score(np.arange(2))


def test_large_catalogue_caps(matrices):
    train, _ = matrices
    ease = make_model("ease")
    ease.max_items = 50  # keep the 50 most popular items only; the rest score as cold
    s = ease.fit(train).score(np.arange(3))
    popular = np.argsort(-np.bincount(train.indices, minlength=train.shape[1]), kind="stable")[:50]
    others = np.setdiff1d(np.arange(train.shape[1]), popular)
    assert np.isfinite(s).all() and (s[:, others] <= s[:, popular].min(axis=1, keepdims=True)).all()
    full = make_model("infinity-ae").fit(train).score(np.arange(3))
    nystrom = make_model("infinity-ae")
    nystrom.max_users = 150  # kernel support: half the users
    approx = nystrom.fit(train).score(np.arange(3))
    assert approx.shape == full.shape and np.corrcoef(approx.ravel(), full.ravel())[0, 1] > 0.8


def test_adam_first_step_and_descent():
    """Our Adam (torch.optim's update without importing torch._dynamo): the first step moves each
    weight by lr against the sign of its gradient, and repeated steps reduce the loss."""
    import torch

    from sampling.models.neural import Adam

    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = Adam([w], lr=0.1)
    loss = lambda: ((w - torch.tensor([0.0, 0.0, 5.0])) ** 2).sum()  # noqa: E731
    loss().backward()
    opt.step()
    np.testing.assert_allclose(w.detach().numpy(), [0.9, -1.9, 3.1], atol=1e-6)
    for _ in range(200):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < 0.05


def test_adam_matches_torch_optim_adam():
    """Our Adam against ``torch.optim.Adam`` (with L2 weight decay) over 30 steps of a small MF:
    the same parameters to float rounding. Ours exists because torch.optim's first step imports
    torch._dynamo (measured on torch 2.13: +2.3-3 s per process)."""
    import torch

    from sampling.models.neural import Adam

    torch.manual_seed(0)
    users, items = torch.randint(0, 20, (64,)), torch.randint(0, 30, (64,))
    target = torch.rand(64)
    start = [torch.randn(20, 4), torch.randn(30, 4)]
    runs = []
    for make in (lambda p: Adam(p, lr=0.05, weight_decay=0.01), lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.01)):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        opt = make(params)
        for _ in range(30):
            opt.zero_grad()
            loss = (((params[0][users] * params[1][items]).sum(-1) - target) ** 2).mean()
            loss.backward()
            opt.step()
        runs.append([p.detach().numpy().copy() for p in params])
    for ours, theirs in zip(*runs):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert not np.allclose(runs[0][0], start[0].numpy())


@pytest.mark.parametrize("name", ["ease", "item-knn", "infinity-ae"])
def test_predict_from_histories_equals_scores_of_fitted_users(name, matrices):
    train, _ = matrices
    model = make_model(name).fit(train)
    users = np.arange(5)
    np.testing.assert_allclose(model.predict(train[users]), model.score(users), rtol=1e-4, atol=1e-4)
    dense = make_model(name).fit(binary(train).toarray())  # a 0/1 dense matrix learns the same model
    np.testing.assert_allclose(dense.predict(train[users]), model.score(users), rtol=1e-4, atol=1e-4)
    with pytest.raises(NotImplementedError):
        make_model("mf", epochs=1).fit(train).predict(train[users])
