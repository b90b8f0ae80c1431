import numpy as np
import pytest
import torch

from data_pipeline.batches import gather_jagged
from data_pipeline.errors import ConfigError
from data_pipeline.features import interaction_examples
from data_pipeline.partition import (
    assign_tiers,
    dirichlet_partition,
    natural_partition,
    quantity_skew_partition,
)
from data_pipeline.schema import OOV_INDEX, Vocabulary
from data_pipeline.splits import leave_one_out_split, random_split, temporal_user_split
from data_pipeline.stats import access_cdf, gini
from data_pipeline.synth import SynthConfig, generate_chunks, write_synthetic, zipf_ranks
from tests.factories import toy_interactions


def _toy(n_users=5, per_user=10, seed=0):
    return toy_interactions(n_users, per_user, seed)


def test_vocabulary_roundtrip_and_oov():
    v = Vocabulary.fit("item", np.array(["b", "a", "c", "a"]))
    codes = v.encode(["a", "c", "zzz"])
    assert codes.tolist() == [1, 3, OOV_INDEX] and len(v) == 4
    assert v.decode(codes).tolist() == ["a", "c", None]


def test_temporal_split_holds_out_latest_per_user():
    data = _toy()
    s = temporal_user_split(data, 0.2)
    user, ts = data.column("user"), data.column("timestamp")
    for u in np.unique(user):
        train_ts = ts[s.train][user[s.train] == u]
        test_ts = ts[s.test][user[s.test] == u]
        assert len(test_ts) == 2 and train_ts.max() < test_ts.min()
    assert len(s.train) + len(s.test) == data.num_rows


def test_random_and_loo_splits():
    data = _toy()
    r = random_split(data, 0.3, seed=1)
    assert len(r.test) == 15 and np.array_equal(np.sort(np.r_[r.train, r.test]), np.arange(50))
    loo = leave_one_out_split(data)
    assert len(loo.test) == 5
    with pytest.raises(ConfigError, match="test_fraction"):
        temporal_user_split(data, 1.5)


def test_gini_and_cdf():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.r_[np.zeros(99), 1.0]) == pytest.approx(0.99)
    cdf = access_cdf(np.array([1, 1, 8]))
    assert cdf[0] == [0.0, 0.0] and cdf[-1] == [1.0, 1.0]
    assert cdf[1] == pytest.approx([1 / 3, 0.8])


def test_gather_jagged_matches_loop():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 4, 50)
    offsets = np.r_[0, np.cumsum(lengths)]
    values = rng.integers(0, 100, offsets[-1])
    rows = rng.integers(0, 50, 20)
    v, o = gather_jagged(values, offsets, rows)
    expect = np.concatenate([values[offsets[r] : offsets[r + 1]] for r in rows])
    assert np.array_equal(v, expect) and np.array_equal(np.diff(o), lengths[rows])


def test_examples_to_kjt_batch():
    data = _toy()
    ex = interaction_examples(data, features=("user", "item"), label_threshold=4)
    b = ex.batch(np.array([0, 3, 7]))
    assert b.dense_features.shape == (3, 1) and b.labels.shape == (3,)
    d = b.sparse_features.to_dict()
    assert torch.equal(d["item"].values(), torch.from_numpy(ex.values["item"][[0, 3, 7]]))


def _concat(chunks):
    chunks = list(chunks)
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}, [len(c["label"]) for c in chunks]


def test_synthetic_rows_do_not_depend_on_chunk_size():
    # 150k rows span three internal blocks; chunk sizes that split blocks unevenly, one larger than
    # a block and one larger than the whole run must all give the same rows, chunked as asked.
    cfg = SynthConfig(rows=150_000, max_cardinality=10_000, zipf=1.2, seed=7)
    expected, sizes = _concat(generate_chunks(cfg, 150_000))
    assert sizes == [150_000]
    for chunk_rows in (4_999, 65_536, 100_000, 1_000_000):
        got, sizes = _concat(generate_chunks(cfg, chunk_rows))
        assert sizes == [chunk_rows] * (150_000 // chunk_rows) + ([150_000 % chunk_rows] if 150_000 % chunk_rows else [])
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{key}, chunk_rows={chunk_rows}")
    other, _ = _concat(generate_chunks(SynthConfig(rows=1_000, max_cardinality=10_000, zipf=1.2, seed=8)))
    assert not np.array_equal(other["C3"], expected["C3"][:1_000])
    assert 0.2 < expected["label"].mean() < 0.3  # calibrated to the default positive rate 0.25


def test_synthetic_file_bytes_do_not_depend_on_chunk_size(tmp_path):
    cfg = SynthConfig(rows=3_000, max_cardinality=500, seed=2)
    a = write_synthetic(cfg, tmp_path / "a.tsv", chunk_rows=3_000).read_bytes()
    b = write_synthetic(cfg, tmp_path / "b.tsv", chunk_rows=701).read_bytes()
    assert a == b and a.count(b"\n") == 3_000


def test_synthetic_ids_are_zipf_skewed():
    ranks = zipf_ranks(np.random.default_rng(0), 100_000, 10_000, 1.2)
    top_share = np.mean(ranks < 100)  # 1% of rows
    assert top_share > 0.5


def test_partitions_cover_rows_once():
    groups = np.array([3, 1, 3, 2, 1, 1])
    parts = natural_partition(groups)
    assert [p.tolist() for p in parts] == [[1, 4, 5], [3], [0, 2]]
    d = dirichlet_partition(np.arange(100) % 5, num_clients=7, alpha=0.3)
    assert np.array_equal(np.sort(np.concatenate(d)), np.arange(100))
    q = quantity_skew_partition(100, 10, 0.5)
    assert np.array_equal(np.sort(np.concatenate(q)), np.arange(100)) and min(map(len, q)) >= 1


def test_tier_assignment_random_and_correlated():
    t = assign_tiers(10_000, [0.5, 0.3, 0.2], seed=0)
    assert np.bincount(t, minlength=3) / 10_000 == pytest.approx([0.5, 0.3, 0.2], abs=0.02)
    stat = np.arange(3000)
    corr = assign_tiers(3000, [1 / 3] * 3, statistic=stat, alpha=0.5, seed=0)
    assert np.corrcoef(stat, corr)[0, 1] > 0.5
    with pytest.raises(ConfigError, match="sum to 1"):
        assign_tiers(10, [0.5, 0.6])


def test_criteo_stats_with_a_column_missing_in_every_row(tmp_path):
    # one row whose I12 is empty: the accumulator meets an empty block (found by tests/fuzz)
    from data_pipeline.readers.criteo import CriteoOptions, iter_criteo
    from data_pipeline.stats import criteo_stats
    from data_pipeline.synth import DENSE_NAMES, SPARSE_NAMES

    f = tmp_path / "one.tsv"
    f.write_text("0\t1\t1\t5\t0\t1382\t4\t15\t2\t181\t1\t2\t\t2" + "\tab12" * 26 + "\n")
    st = criteo_stats(iter_criteo(f, CriteoOptions(transform=False)), DENSE_NAMES, SPARSE_NAMES)
    by_name = {x["name"]: x for x in st.features}
    assert st.rows == 1 and by_name["I12"] == {"name": "I12", "cardinality": 0, "missing_fraction": 1.0}
    assert by_name["I1"]["cardinality"] == 1 and by_name["C1"]["cardinality"] == 1
