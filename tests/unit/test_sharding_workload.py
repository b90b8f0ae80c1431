import json

import numpy as np
import pytest

from data_pipeline.synth import CRITEO_TERABYTE_CARDINALITIES
from sharding.errors import WorkloadError
from sharding.topology import GB
from sharding.workload import TableWorkload, Workload, synthetic_model, synthetic_workload, table_from_counts


def test_json_round_trip(tmp_path):
    w = synthetic_workload("criteo-kaggle", zipf=(1.0, 1.2), dim=(32, 128), seed=3)
    path = tmp_path / "w.json"
    w.to_json(path)
    back = Workload.from_json(path)
    assert [t.to_dict() for t in back] == [t.to_dict() for t in w]
    assert json.loads(path.read_text())["tables"][0]["name"] == "C1"


def test_defaults_fill_optional_keys():
    w = Workload.from_dict({"tables": [{"name": "a", "rows": 10, "dim": 8}]})
    t = w.tables[0]
    assert (t.bytes_per_value, t.pooling_factor, t.coverage) == (4, 1.0, 1.0)
    assert t.hot_access_fraction(5) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rows": -1}, "field 'rows': Input should be greater than or equal to 0"),
        ({"rows": 2.5}, "field 'rows': Input should be a valid integer (got 2.5)"),
        ({"rows": "10"}, "field 'rows': Input should be a valid integer (got '10')"),
        ({"rows": True}, "field 'rows': Input should be a valid integer (got True)"),
        ({"dim": 0}, "field 'dim'"),
        ({"dim": False}, "field 'dim': Input should be a valid integer"),
        ({"coverage": 1.5}, "field 'coverage': Input should be less than or equal to 1"),
        ({"pooling_factor": -2}, "field 'pooling_factor'"),
        ({"pooling_factor": "3"}, "field 'pooling_factor': Input should be a valid number"),
        ({"pooling_factor": float("nan")}, "field 'pooling_factor': Input should be a finite number"),
        ({"zipf": 0}, "field 'zipf': Input should be greater than 0"),
        ({"access_cdf": [[0, 0], [0.5, 0.7], [0.4, 0.8], [1, 1]]}, "not monotone"),
        ({"access_cdf": [[0, 0], [0.5, 0.7], [0.6, 0.6], [1, 1]]}, "not monotone"),
        ({"access_cdf": [[0.1, 0], [1, 1]]}, "start at (0, 0)"),
        ({"access_cdf": [[0, 0], [1, 0.9]]}, "end at (1, 1)"),
        ({"access_cdf": [[0, 0], [0.5, 0.2], [1, 1]]}, "not concave"),
        ({"access_cdf": [[0, 0], [0.5, 0.2], [0.5, 0.6], [1, 1]]}, "jumps"),
        ({"access_cdf": "hot"}, "access_cdf"),
        ({"pooling": 3}, "field 'pooling': unknown key"),
    ],
)
def test_validation_names_table_and_problem(change, message):
    d = {"name": "C7", "rows": 100, "dim": 16, **change}
    with pytest.raises(WorkloadError) as err:
        Workload.from_dict({"tables": [d]})
    assert "C7" in str(err.value) and message in str(err.value)


def test_missing_key_and_unnamed_table():
    with pytest.raises(WorkloadError, match=r"table 'C1': field 'dim': .*required"):
        Workload.from_dict({"tables": [{"name": "C1", "rows": 3}]})
    with pytest.raises(WorkloadError, match=r"table '#1': field 'name'"):
        Workload.from_dict({"tables": [{"name": "a", "rows": 1, "dim": 1}, {"rows": 1, "dim": 1}]})


@pytest.mark.parametrize(
    "content, message",
    [
        (bytes(range(256)) * 3, "binary file (NUL byte at offset 0)"),
        (b"{\"tables\": [\xff\xfe]}", "not UTF-8 text (byte offset 12)"),
        (b"\x7fELF garbage", "not JSON"),
    ],
)
def test_garbage_workload_file_is_one_error(tmp_path, content, message):
    path = tmp_path / "w.json"
    path.write_bytes(content)
    with pytest.raises(WorkloadError) as err:
        Workload.from_json(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_duplicate_and_empty():
    with pytest.raises(WorkloadError, match="more than once"):
        Workload([TableWorkload("a", 1, 1), TableWorkload("a", 2, 1)])
    with pytest.raises(WorkloadError, match="no tables"):
        Workload.from_dict({"tables": []})
    with pytest.raises(WorkloadError, match="not JSON"):
        Workload.from_json("{bad")


def test_table_from_counts_sorts_and_downsamples():
    rng = np.random.default_rng(0)
    counts = rng.zipf(1.5, 5000).astype(np.int64)
    t = table_from_counts("item", counts, 32, 2.0, 0.5)
    assert t.rows == 5000 and t.dim == 32 and t.lookups_per_sample == pytest.approx(1.0)
    assert len(t.access_cdf) <= 64
    top = np.sort(counts)[::-1]
    exact = top[:500].sum() / top.sum()
    # the downsampled curve is a chord of the exact one: never above it, and close
    assert t.hot_access_fraction(500) <= exact + 1e-9
    assert t.hot_access_fraction(500) > exact - 0.05
    empty = table_from_counts("none", np.zeros(10), 8, 1.0, 1.0)
    assert empty.hot_access_fraction(5) == pytest.approx(0.5)
    with pytest.raises(WorkloadError, match="'neg'"):
        table_from_counts("neg", np.array([1, -1]), 8, 1.0, 1.0)


def test_synthetic_workloads():
    w = synthetic_workload("criteo-terabyte", zipf=(1.05, 1.2), dim=128, total_bytes=100 * GB)
    assert len(w) == 26 and w.total_bytes == pytest.approx(100 * GB, rel=1e-3)
    assert all(1.05 <= t.zipf <= 1.2 for t in w)
    ratio = [t.rows / c for t, c in zip(w, CRITEO_TERABYTE_CARDINALITIES) if c > 1000]
    assert max(ratio) / min(ratio) < 1.01  # scaled uniformly
    m = synthetic_model(1000, total_bytes=500 * GB)
    assert len(m) == 1000 and m.total_bytes == pytest.approx(500 * GB, rel=1e-2)
    assert len({t.dim for t in m}) > 2 and min(t.coverage for t in m) < 0.2 < max(t.pooling_factor for t in m)
    with pytest.raises(WorkloadError, match="unknown profile"):
        synthetic_workload("nope", 1.1, 16)
