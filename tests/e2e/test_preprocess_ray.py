"""The preprocessing service on Ray Data: the worker pool gives the same batches as the
in-process path, the report contract holds on the Criteo sample, and a bad line found by a worker
is named with its file line. One Ray instance for the module (its start-up is the slow part)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from data_pipeline.preprocess.config import make_config
from data_pipeline.preprocess.ray_stream import RayDataStream
from data_pipeline.preprocess.stream import InProcessStream
from data_pipeline.synth import SynthConfig, write_synthetic
from fedrec.cli import main


@pytest.fixture(scope="module", autouse=True)
def ray_for_module():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def criteo_file(tmp_path_factory):
    return write_synthetic(SynthConfig(rows=6_000, max_cardinality=800, seed=9), tmp_path_factory.mktemp("c") / "c.tsv")


def _same_batch(a, b) -> bool:
    ka, kb = a.sparse_features, b.sparse_features
    return (
        torch_equal(a.dense_features, b.dense_features)
        and torch_equal(a.labels, b.labels)
        and ka.keys() == kb.keys()
        and torch_equal(ka.values(), kb.values())
        and torch_equal(ka.lengths(), kb.lengths())
    )


def torch_equal(x, y) -> bool:
    import torch

    return x.shape == y.shape and bool(torch.equal(x, y))


def test_ray_data_batches_equal_the_in_process_batches(criteo_file):
    # 2 workers, ~10 units, several blocks each; ordered so batch k is the same rows on both paths
    cfg = make_config(input=str(criteo_file), format="criteo", min_workers=2, max_workers=2, buckets=333,
                      bucketize=True, batch_size=512, range_bytes=120_000, block_rows=250, ordered=True)  # fmt: skip
    local = make_config(**{**cfg.model_dump(), "min_workers": 0, "max_workers": 0})
    ray_stream = RayDataStream(cfg)
    assert len(ray_stream.units) >= 8
    got = list(ray_stream.batches())
    expected = list(InProcessStream(local).batches())
    assert [len(b.labels) for b in got] == [len(b.labels) for b in expected] == [512] * 11 + [368]
    assert all(_same_batch(a, b) for a, b in zip(got, expected))
    assert ray_stream.rows_out == 6_000 and ray_stream.report.rows == 6_000


def test_unordered_autoscaled_pool_gives_the_same_rows_and_skip_report(tmp_path):
    # interactions with negatives and two bad lines, a pool autoscaled between 1 and 2 workers
    lines = [f"u{i % 13},i{i % 101},{1 + i % 5},{i}\n" for i in range(4_000)]
    lines[10], lines[3_210] = "u1,i2,x,5\n", "u3,i4\n"
    f = tmp_path / "log.csv"
    f.write_text("".join(lines))
    cfg = make_config(input=str(f), format="csv", min_workers=1, max_workers=2, negatives=2, buckets=5_000,
                      on_bad_lines="skip", range_bytes=9_000, block_rows=300)  # fmt: skip
    stream = RayDataStream(cfg)
    got = pa.concat_tables(list(stream.tables()))
    local = InProcessStream(make_config(**{**cfg.model_dump(), "min_workers": 0, "max_workers": 0}))
    expected = pa.concat_tables(list(local.tables()))
    key = ["user", "item", "label"]
    assert got.num_rows == expected.num_rows == 3 * 3_998
    assert got.sort_by([(k, "ascending") for k in key]).equals(expected.sort_by([(k, "ascending") for k in key]))
    assert stream.report.skipped == 2 and [b.line for b in stream.report.examples] == [11, 3211]


def test_cli_report_contract_on_the_criteo_sample(criteo_sample_path, tmp_path, capsys):
    out, report = tmp_path / "X.parquet", tmp_path / "R.json"
    code = main(["data", "preprocess", "--input", str(criteo_sample_path), "--format", "criteo",
                 "--workers", "1", "--out", str(out), "--json", str(report)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    r = json.loads(report.read_text())
    assert r["rows"] == 1000 and r["workers"] == 1 and r["rows_per_second"] > 0
    assert pq.read_metadata(out).num_rows == 1000
    local = make_config(input=str(criteo_sample_path), format="criteo", min_workers=0, max_workers=0)
    assert pq.read_table(out).equals(pa.concat_tables(list(InProcessStream(local).tables())))


def test_cli_trains_the_dlrm_on_the_worker_stream(criteo_file, tmp_path, capsys):
    report = tmp_path / "r.json"
    code = main(["data", "preprocess", "--input", str(criteo_file), "--format", "criteo", "--workers", "1",
                 "--train-steps", "5", "--batch-size", "256", "--buckets", "800", "--json", str(report)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    r = json.loads(report.read_text())
    assert r["train_steps"] == 5 and np.isfinite(r["last_loss"]) and r["first_batch_seconds"] > 0
    assert r["trainer_stall_fraction"] == pytest.approx(
        r["trainer_wait_seconds"] / (r["trainer_wait_seconds"] + r["trainer_step_seconds"])
    )


def test_a_bad_line_found_by_a_worker_is_one_line_with_its_file_line(criteo_file, tmp_path, capsys):
    lines = criteo_file.read_bytes().split(b"\n")
    lines[4_443] = b"7" + lines[4_443][1:]  # label 7 on line 4444, in a later unit
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"\n".join(lines))
    out = tmp_path / "out.parquet"
    code = main(["data", "preprocess", "--input", str(bad), "--format", "criteo", "--workers", "2",
                 "--range-mb", "0.1", "--out", str(out), "--json", str(tmp_path / "r.json")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"fedrec: error: {bad}, line 4444, field 'label': expected a label 0 or 1, found '7'"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv"]
