"""A quick harness run: taus, noise ceiling, cache resume, JSON and heat map; Data-Genie basics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_pipeline.errors import ConfigError
from data_pipeline.schema import build_interactions
from sampling import DataGenie, evaluate, kendall_tau, meta_features
from sampling.genie import FEATURE_NAMES
from sampling.harness import has_times, user_split
from sampling.synthetic import zipf_interactions

MODELS = ["popularity", "item-knn", "ease"]


@pytest.fixture(scope="module")
def data():
    return zipf_interactions("harness", users=300, items=150, density=0.06, seed=11)


def test_harness_values_and_resume(data, tmp_path):
    """A sample that keeps everything ranks the models exactly as the full data (tau 1); a
    deterministic sampler with deterministic models has zero spread over seeds while random
    interactions at 5% do not; the noise ceiling comes from full-data runs on other random splits;
    a second run trains nothing."""
    kwargs = dict(methods=["random", "temporal"], rates=[0.05, 1.0], models=MODELS, seeds=[0, 1], progress=False)
    first = evaluate(data, cache_dir=tmp_path, **kwargs)
    assert first.trained_runs == 2 * len(MODELS) + 2 * 2 * 2 * len(MODELS) + 2 * len(MODELS)  # full, samples, ceiling
    assert first.tau("random", 1.0) == (1.0, 0.0) and first.tau("temporal", 1.0) == (1.0, 0.0)
    assert first.tau("temporal", 0.05)[1] == 0.0  # the seed changes neither the sample nor these models
    assert first.tau("random", 0.05)[1] > 0.1
    for seed in (0, 1):  # ceiling runs: same models, other splits, so other metric values
        assert first.ceiling_runs[seed]["ease"]["auc"] != first.full[seed]["ease"]["auc"]
    assert first.ceiling_runs[0]["ease"]["auc"] != first.ceiling_runs[1]["ease"]["auc"]
    assert first.noise_ceiling["auc"] == pytest.approx(
        kendall_tau([first.ceiling_runs[0][m]["auc"] for m in MODELS], [first.ceiling_runs[1][m]["auc"] for m in MODELS])
    )
    again = evaluate(data, cache_dir=tmp_path, **kwargs)
    assert again.trained_runs == 0 and again.taus == first.taus  # resumed entirely from the cache
    first.write_json(tmp_path / "r.json")
    first.plot(tmp_path / "r.png")
    blob = json.loads((tmp_path / "r.json").read_text())
    assert blob["tau"]["random"]["1"]["ndcg@10"]["mean"] == 1.0 and blob["split"] == "temporal"
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_user_split_random_and_auto(data):
    temporal = user_split(data, 0.2, "temporal")
    a, b = user_split(data, 0.2, "random", seed=0), user_split(data, 0.2, "random", seed=1)
    users = data.column("user")
    for part in (a, b):  # the same number held out per user as the temporal split, other rows
        assert np.array_equal(np.bincount(users[part.test]), np.bincount(users[temporal.test]))
        assert np.array_equal(np.sort(np.r_[part.train, part.test]), np.arange(data.num_rows))
    assert not np.array_equal(a.test, b.test) and not np.array_equal(a.test, temporal.test)
    assert np.array_equal(user_split(data, 0.2, "auto").test, temporal.test)  # the log has times
    timeless = build_interactions("t", data.raw_interactions()[["user", "item"]])  # readers number rows instead
    assert not has_times(timeless) and has_times(data)
    assert np.array_equal(user_split(timeless, 0.2, "auto", seed=3).test, user_split(timeless, 0.2, "random", seed=3).test)


def test_harness_bad_arguments(data):
    with pytest.raises(ConfigError, match="rates"):
        evaluate(data, rates=[0.0], progress=False)
    with pytest.raises(ConfigError, match="models"):
        evaluate(data, models=["nope"], progress=False)
    with pytest.raises(ConfigError, match="methods"):
        evaluate(data, methods="random,bogus", progress=False)


def test_meta_features_known_values(data):
    f = meta_features(data)
    assert list(f) == list(FEATURE_NAMES) and all(np.isfinite(v) for v in f.values())
    user_deg = np.bincount(data.column("user"))[1:]
    assert f["log_rows"] == pytest.approx(np.log10(data.num_rows))
    assert f["log_density"] == pytest.approx(np.log10(data.num_rows / (data.num_users * data.num_items)))
    assert f["user_deg_median"] == pytest.approx(np.log10(np.median(user_deg)))
    assert f["giant_component"] == pytest.approx(1.0)  # a generated log is one connected graph


def test_genie_fit_predict_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    feats = [{k: float(rng.normal()) for k in FEATURE_NAMES} for _ in range(4)]
    records = [
        {"features": f, "method": m, "rate": r, "tau": (0.9 if m == "user" else 0.3) * r + 0.05 * i}
        for i, f in enumerate(feats) for m in ("random", "user") for r in (0.1, 0.2, 0.4, 0.8)
    ]  # fmt: skip
    genie = DataGenie(n_neighbors=2).fit(records)
    assert genie.choose(feats[0], 0.4)[0] == "user"
    assert genie.predict(feats[0], "user", 0.8) > genie.predict(feats[0], "user", 0.1)
    found = genie.min_rate(feats[0], 0.3)
    assert found is not None and found[1] == "user" and found[2] >= 0.3
    assert genie.min_rate(feats[0], 0.99) is None
    genie.save(tmp_path / "g.json")
    loaded = DataGenie.load(tmp_path / "g.json")
    assert loaded.predict(feats[1], "random", 0.4) == pytest.approx(genie.predict(feats[1], "random", 0.4))


def test_genie_tree_export_matches_sklearn():
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(1)
    feats = {k: 0.0 for k in FEATURE_NAMES}
    records = [{"features": {**feats, "log_rows": float(rng.normal())}, "method": "random", "rate": float(rng.random()),
                "tau": float(rng.normal())} for _ in range(60)]  # fmt: skip
    genie = DataGenie(estimator="gbr", n_estimators=20, max_depth=2).fit(records)
    x = np.array([genie._row(r["features"], r["method"], r["rate"]) for r in records])
    ref = GradientBoostingRegressor(n_estimators=20, max_depth=2, learning_rate=0.05, subsample=0.8, random_state=0)
    ref.fit(x, [r["tau"] for r in records])
    ours = [genie.predict(r["features"], "random", r["rate"]) for r in records]
    np.testing.assert_allclose(ours, np.clip(ref.predict(x), -1, 1), atol=1e-4)


def test_genie_estimators_on_a_known_table():
    """``mean`` averages every dataset's tau curve; ``knn`` follows the nearest dataset; curves are
    interpolated between rates; the tree ensembles fit and round-trip too."""
    near = {k: 0.0 for k in FEATURE_NAMES}
    far = {k: 10.0 for k in FEATURE_NAMES}
    records = [
        {"dataset": name, "features": f, "method": m, "rate": r, "tau": base + (0.5 if m == "user" else 0.0) * r}
        for name, f, base in (("near", near, 0.2), ("far", far, -0.2)) for m in ("random", "user") for r in (0.2, 0.6)
    ]  # fmt: skip
    assert DataGenie(estimator="mean").fit(records).predict(near, "random", 0.2) == pytest.approx(0.0)
    knn = DataGenie(estimator="knn", n_neighbors=1).fit(records)
    assert knn.predict(near, "random", 0.2) == pytest.approx(0.2)
    assert knn.predict(near, "user", 0.4) == pytest.approx(0.2 + 0.5 * 0.4)  # halfway between 0.2 and 0.6
    assert sorted(map(str, knn.records())) == sorted(map(str, records))
    for name in ("gbr", "forest"):
        genie = DataGenie(estimator=name, n_estimators=10).fit(records)
        assert genie.choose(near, 0.6)[0] == "user"
    with pytest.raises(ConfigError, match="estimator"):
        DataGenie(estimator="svm").fit(records)
    # shrunk toward the mean: 1 - p on the nearest dataset's tau, p on the mean of all (0.2 and -0.2)
    shrunk = DataGenie(estimator="knn", n_neighbors=1, prior_weight=0.25).fit(records)
    assert shrunk.predict(near, "random", 0.2) == pytest.approx(0.75 * 0.2 + 0.25 * 0.0)
    assert shrunk.predict(far, "user", 0.6) == pytest.approx(0.75 * 0.1 + 0.25 * 0.3)  # far: -0.2 + 0.3
    assert DataGenie(estimator="knn", n_neighbors=1, prior_weight=1.0).fit(records).predict(near, "user", 0.2) == (
        pytest.approx(DataGenie(estimator="mean").fit(records).predict(near, "user", 0.2)))  # fmt: skip
    with pytest.raises(ConfigError, match="prior_weight"):
        DataGenie(prior_weight=1.5).fit(records)


def test_keep_whole_users_caps_rows_and_keeps_a_timeless_log_timeless(data):
    from sampling.synthetic import keep_whole_users

    rng = np.random.default_rng(0)
    capped = keep_whole_users(data, 1000, rng)
    assert 800 < capped.num_rows <= 1000
    users = data.vocabs["user"].values
    kept_users = set(capped.vocabs["user"].values.tolist())
    full_deg = dict(zip(users.tolist(), np.bincount(data.column("user"))[1:].tolist()))
    capped_deg = np.bincount(capped.column("user"))[1:]
    assert all(full_deg[u] == d for u, d in zip(capped.vocabs["user"].values.tolist(), capped_deg))  # whole users
    assert keep_whole_users(data, data.num_rows, rng) is data  # nothing to cut
    timeless = build_interactions("t", data.raw_interactions()[["user", "item"]])
    assert not has_times(keep_whole_users(timeless, 1000, rng)) and len(kept_users) < data.num_users
