"""A quick harness run: taus, noise ceiling, cache resume, JSON and heat map; Data-Genie basics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_pipeline.errors import ConfigError
from sampling import DataGenie, evaluate, meta_features
from sampling.genie import FEATURE_NAMES
from sampling.synthetic import zipf_interactions

MODELS = ["popularity", "item-knn", "ease"]


@pytest.fixture(scope="module")
def data():
    return zipf_interactions("harness", users=300, items=150, density=0.06, seed=11)


def test_harness_smoke_and_resume(data, tmp_path):
    kwargs = dict(methods=["random", "head-user"], rates=[0.3, 0.8], models=MODELS, seeds=[0, 1], progress=False)
    first = evaluate(data, cache_dir=tmp_path, **kwargs)
    assert first.trained_runs == 2 * len(MODELS) + 2 * 2 * 2 * len(MODELS)  # full runs + samples
    assert len(first.taus) == 2 * 2 * 2 * 4
    assert all(np.isnan(t["tau"]) or -1 <= t["tau"] <= 1 for t in first.taus)
    assert first.noise_ceiling["auc"] == pytest.approx(1.0)  # these models ignore the seed
    mean, spread = first.tau("random", 0.8)
    assert -1 <= mean <= 1 and spread >= 0
    again = evaluate(data, cache_dir=tmp_path, **kwargs)
    assert again.trained_runs == 0 and again.taus == first.taus  # resumed entirely from the cache
    first.write_json(tmp_path / "r.json")
    first.plot(tmp_path / "r.png")
    blob = json.loads((tmp_path / "r.json").read_text())
    assert blob["tau"]["head-user"]["0.3"]["ndcg@10"]["mean"] is None or -1 <= blob["tau"]["head-user"]["0.3"]["ndcg@10"]["mean"] <= 1
    assert "random" in first.format_table()


def test_harness_bad_arguments(data):
    with pytest.raises(ConfigError, match="rates"):
        evaluate(data, rates=[0.0], progress=False)
    with pytest.raises(ConfigError, match="models"):
        evaluate(data, models=["nope"], progress=False)
    with pytest.raises(ConfigError, match="methods"):
        evaluate(data, methods="random,bogus", progress=False)


def test_meta_features_are_finite(data):
    f = meta_features(data)
    assert list(f) == list(FEATURE_NAMES) and all(np.isfinite(v) for v in f.values())


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
