"""Every sampler's invariants: rate kept, subset of the input, deterministic by seed, whole users."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipeline.errors import ConfigError, DataFormatError
from sampling.samplers import SAMPLER_NAMES, SAMPLERS, make_sampler
from sampling.samplers.svp import inverse_propensity
from sampling.synthetic import zipf_interactions

RATES = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0)


@pytest.fixture(scope="module")
def data():
    return zipf_interactions("unit", users=800, items=150, density=0.05, seed=3)


@pytest.fixture(scope="module")
def fitted(data):
    return {name: make_sampler(name, seed=7).fit(data) for name in SAMPLER_NAMES}





@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_rate_subset_and_no_duplicates(name, data, fitted):
    for rate in RATES:
        idx = fitted[name].sample_indices(rate)
        assert abs(idx.size / data.num_rows - rate) <= 0.01, (name, rate, idx.size)
        assert np.unique(idx).size == idx.size and idx.min() >= 0 and idx.max() < data.num_rows
        kept = fitted[name].sample(rate)
        assert kept.num_rows == idx.size
        # The kept rows are the input's rows at those positions, ids unchanged.
        for col in ("user", "item", "rating", "timestamp"):
            np.testing.assert_array_equal(kept.column(col), data.column(col)[idx])
        assert kept.vocabs is data.vocabs


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_deterministic_by_seed(name, data, fitted):
    again = make_sampler(name, seed=7).fit(data).sample_indices(0.3)
    np.testing.assert_array_equal(again, fitted[name].sample_indices(0.3))


@pytest.mark.parametrize("name", ["random", "stratified", "user", "centrality", "random-walk", "forest-fire"])
def test_seed_changes_random_samplers(name, data, fitted):
    other = make_sampler(name, seed=8).fit(data).sample_indices(0.3)
    assert not np.array_equal(other, fitted[name].sample_indices(0.3))


@pytest.mark.parametrize("name", [n for n, cls in SAMPLERS.items() if cls.level == "user"] + ["svp-cf-user"])
def test_user_samplers_keep_whole_users(name, data):
    sampler = make_sampler("svp-cf", seed=1, level="user") if name == "svp-cf-user" else make_sampler(name, seed=1)
    idx = sampler.fit(data).sample_indices(0.3)
    users = data.column("user")
    kept_users = np.unique(users[idx])
    assert np.isin(users, kept_users).sum() == idx.size  # every row of a kept user is kept


def test_samples_are_nested_across_rates(data, fitted):
    for name in SAMPLER_NAMES:
        if SAMPLERS[name].level == "interaction":
            small, large = fitted[name].sample_indices(0.2), fitted[name].sample_indices(0.6)
            assert np.isin(small, large).all(), name


def test_semantics_of_simple_samplers(data, fitted):
    ts = data.column("timestamp")
    kept = fitted["temporal"].sample_indices(0.2)
    assert ts[kept].min() >= np.sort(ts)[::-1][kept.size - 1]  # the most recent rows
    users = data.column("user")
    deg = np.bincount(users)
    head = np.unique(users[fitted["head-user"].sample_indices(0.2)])
    assert deg[head].min() >= np.sort(deg[deg > 0])[::-1][head.size - 1]
    strat = fitted["stratified"].sample_indices(0.5)
    kept_per_user = np.bincount(users[strat], minlength=deg.size)
    assert np.all(np.abs(kept_per_user - 0.5 * deg) <= 1.0)  # every user keeps half, give or take one


def test_svp_prop_weights_rare_entries_more():
    w = inverse_propensity(np.array([1, 10, 100, 1000]), 10_000)
    assert np.all(np.diff(w) < 0) and w.min() > 1.0


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5, float("nan"), "x", None])
def test_bad_rate(rate, fitted):
    with pytest.raises(ConfigError, match="rate"):
        fitted["random"].sample(rate)


def test_rate_too_small_for_dataset(data):
    tiny = data.take(np.arange(30))
    with pytest.raises(ConfigError, match="too small"):
        make_sampler("random").fit(tiny).sample(0.01)


def test_unknown_method_and_params(data):
    with pytest.raises(ConfigError, match="method"):
        make_sampler("nope")
    with pytest.raises(ConfigError, match="level"):
        make_sampler("svp-cf", level="item").fit(data)


def test_sample_before_fit_and_bad_input(data):
    with pytest.raises(ConfigError, match="fit"):
        make_sampler("random").sample(0.5)
    with pytest.raises(ConfigError, match="interactions"):
        make_sampler("random").fit("not data")
    with pytest.raises(DataFormatError, match="no interactions"):
        make_sampler("random").fit(data.take(np.array([], dtype=np.int64)))
    broken = data.take(np.arange(10))
    broken.interactions = broken.interactions.drop_columns(["timestamp"])
    with pytest.raises(DataFormatError, match="timestamp"):
        make_sampler("temporal").fit(broken)
