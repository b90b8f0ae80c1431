"""The preprocessing service without Ray: work units, transforms, the in-process stream (which
runs the same unit function as the Ray workers), stall accounting and the report."""

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from data_pipeline.errors import ConfigError, DataFormatError
from data_pipeline.preprocess.batches import arrow_to_batch, rebatch
from data_pipeline.preprocess.config import make_config
from data_pipeline.preprocess.run import StallStats, TrainerOptions, run_preprocess, train_on_stream
from data_pipeline.preprocess.stream import InProcessStream
from data_pipeline.preprocess.transforms import bucketize_dense
from data_pipeline.preprocess.units import aligned, line_at_offset, shard_units, split_ranges
from data_pipeline.readers.criteo import CriteoOptions, iter_criteo
from data_pipeline.synth import SynthConfig, write_synthetic
from fedrec.cli import main


@pytest.fixture(scope="module")
def criteo_file(tmp_path_factory):
    return write_synthetic(SynthConfig(rows=3_000, max_cardinality=500, seed=5), tmp_path_factory.mktemp("c") / "c.tsv")


@pytest.mark.parametrize("range_bytes", [1, 97, 1000, 10**9])
def test_byte_ranges_own_every_line_exactly_once(tmp_path, range_bytes):
    lines = [b"a" * n + b"\n" for n in (0, 5, 300, 1, 2000, 7)] + [b"last-without-newline"]
    f = tmp_path / "f.txt"
    f.write_bytes(b"".join(lines))
    pieces = []
    with open(f, "rb") as fh:
        for rng in split_ranges(f, range_bytes):
            start, end = aligned(fh, rng)
            fh.seek(start)
            pieces.append(fh.read(end - start))
            if start < end:
                assert line_at_offset(f, start) == b"".join(lines).count(b"\n", 0, start) + 1
    assert b"".join(pieces) == b"".join(lines)
    assert all(p == b"" or p.endswith(b"\n") or p.endswith(b"newline") for p in pieces)


def test_shards_give_each_unit_to_one_consumer(criteo_file):
    units = split_ranges(criteo_file, 10_000)
    shards = shard_units(units, 3)
    assert len(shards) == 3 and sorted(u.index for s in shards for u in s) == [u.index for u in units]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_in_process_stream_matches_the_criteo_reader(criteo_file):
    # small units and blocks: 3,000 rows cut into many units, each into several blocks
    cfg = make_config(input=str(criteo_file), format="criteo", min_workers=0, max_workers=0, buckets=97,
                      range_bytes=40_000, block_rows=70)  # fmt: skip
    stream = InProcessStream(cfg)
    assert len(stream.units) > 5
    got = pa.concat_tables(list(stream.tables()))
    expected = pa.Table.from_batches(list(iter_criteo(criteo_file, CriteoOptions(num_buckets=97))))
    assert got.equals(expected) and stream.report.rows == 3_000


def test_bucketize_is_floor_log2_with_a_missing_bucket():
    raw = pl.DataFrame({n: [0, 1, 2, 3, 1022, 1024, None, -5, 2**40] for n in [f"I{i}" for i in range(1, 14)]})
    b1 = bucketize_dense(raw)[0].to_list()
    assert b1 == [0, 1, 1, 2, 9, 10, 32, 0, 31]


def test_interactions_hashing_labels_and_negatives(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item,rating\n" + "".join(f"u{i % 7},{i},{1 + i % 5}\n" for i in range(200)))
    cfg = make_config(input=str(f), format="csv", min_workers=0, max_workers=0, columns="user,item,rating",
                      buckets=1000, negatives=3, label_threshold=4.0, seed=1)  # fmt: skip
    stream = InProcessStream(cfg)
    out = pa.concat_tables(list(stream.tables())).to_pydict()
    assert stream.report.header == "user,item,rating" and len(out["user"]) == 200 * 4
    assert out["item"][0::4] == list(range(200))  # integer ids modulo 1000: themselves
    assert out["label"][0::4] == [float(1 + i % 5 >= 4) for i in range(200)]
    for j in (1, 2, 3):  # negatives follow their row: same user, label 0, items in range
        assert out["user"][j::4] == out["user"][0::4] and set(out["label"][j::4]) == {0.0}
        assert all(0 <= x < 1000 for x in out["item"][j::4])
    users = out["user"][0::4]
    assert len(set(users)) == 7 and all(0 <= u < 1000 for u in users)
    again = pa.concat_tables(list(InProcessStream(cfg).tables())).to_pydict()
    assert again == out  # negatives are seeded by (seed, unit, block)
    other = make_config(**{**cfg.model_dump(), "seed": 2})
    assert pa.concat_tables(list(InProcessStream(other).tables())).to_pydict()["item"] != out["item"]


def test_a_bad_line_in_a_later_unit_is_named_with_its_file_line(criteo_file, tmp_path):
    lines = criteo_file.read_bytes().split(b"\n")
    lines[2_499] = b"1\t\t\tnot-hex" + b"\t" * 36
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"\n".join(lines))
    cfg = make_config(input=str(bad), format="criteo", min_workers=0, max_workers=0, range_bytes=50_000, block_rows=100)
    with pytest.raises(DataFormatError, match=r"bad.tsv, line 2500, field 'I3'"):
        list(InProcessStream(cfg).tables())
    skip = make_config(**{**cfg.model_dump(), "on_bad_lines": "skip"})
    stream = InProcessStream(skip)
    assert sum(t.num_rows for t in stream.tables()) == 2_999
    assert stream.report.skipped == 1 and stream.report.examples[0].line == 2500


def test_arrow_to_batch_makes_missing_categories_empty_bags():
    table = pa.table({"label": pa.array([1, 0, 1], pa.int8()), "user": [3, 4, 5], "item": pa.array([7, None, 9])})
    from data_pipeline.batches import FeatureSpec, SparseFeature

    spec = FeatureSpec((SparseFeature("user", 10), SparseFeature("item", 10)), ("bias",))
    batch = arrow_to_batch(table, spec)
    assert batch.dense_features.tolist() == [[1.0]] * 3 and batch.labels.tolist() == [1.0, 0.0, 1.0]
    kjt = batch.sparse_features.to_dict()
    assert kjt["item"].lengths().tolist() == [1, 0, 1] and kjt["item"].values().tolist() == [7, 9]
    assert kjt["user"].values().tolist() == [3, 4, 5]


def test_rebatch_gives_exact_sizes_in_order():
    tables = [pa.table({"x": list(range(a, b))}) for a, b in [(0, 3), (3, 4), (4, 11), (11, 12)]]
    out = list(rebatch(tables, 5))
    assert [t.num_rows for t in out] == [5, 5, 2]
    assert sum((t.column("x").to_pylist() for t in out), []) == list(range(12))


class _FakeClock:
    """Time that moves only when the fake stream or trainer says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stall_fraction_is_wait_over_wait_plus_step_after_the_first_batch():
    clock = _FakeClock()

    def batches():
        waits = [5.0, 0.2, 0.0, 0.3]  # the first is start-up
        for w in waits:
            clock.now += w
            yield torch.zeros(1)

    class Trainer:
        def step(self, batch):
            clock.now += 1.0
            return 0.5

    class Batchy:  # the loop reads len(batch.labels) for its row count
        def __init__(self, t):
            self.labels = t

    stats = train_on_stream((Batchy(b) for b in batches()), Trainer(), steps=10, clock=clock)
    assert stats.steps == 4 and stats.first_batch_seconds == 5.0
    assert stats.stall_fraction == pytest.approx(0.5 / (0.5 + 3.0))
    assert stats.stall_fraction_with_startup == pytest.approx(5.5 / (5.5 + 4.0))
    assert StallStats().stall_fraction is None


def test_cli_in_process_report_with_training(criteo_sample_path, tmp_path, capsys):
    out, report = tmp_path / "o" / "s.parquet", tmp_path / "r.json"
    code = main(["data", "preprocess", "--input", str(criteo_sample_path), "--format", "criteo", "--workers", "0",
                 "--out", str(out), "--json", str(report), "--train-steps", "4", "--batch-size", "100",
                 "--buckets", "1000"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    r = json.loads(report.read_text())
    assert r["rows"] == 1000 and pq.read_metadata(out).num_rows == 1000 and r["workers"] == 0 and r["complete"]
    assert r["train_steps"] == 4 and 0 <= r["trainer_stall_fraction"] <= 1
    assert r["trainer_stall_fraction"] == pytest.approx(
        r["trainer_wait_seconds"] / (r["trainer_wait_seconds"] + r["trainer_step_seconds"])
    )
    assert np.isfinite(r["first_loss"]) and r["rows_per_second"] > 0
    # the Parquet holds what the reader gives for the same transforms
    expected = pa.Table.from_batches(list(iter_criteo(criteo_sample_path, CriteoOptions(num_buckets=1000))))
    assert pq.read_table(out).equals(expected)


def test_training_stops_the_stream_early_without_out(criteo_sample_path):
    from fedrec.stream_train import make_stream_trainer

    cfg = make_config(input=str(criteo_sample_path), format="criteo", min_workers=0, max_workers=0,
                      batch_size=100, buckets=100, block_rows=200)  # fmt: skip
    result = run_preprocess(cfg, train_steps=3, trainer_factory=make_stream_trainer, trainer_options=TrainerOptions())
    assert result.train_steps == 3 and not result.complete and 300 <= result.rows < 1000


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--workers", "2-1"], "max_workers 1 < min_workers 2"),
        (["--workers", "x"], "'x': expected N or MIN-MAX"),
        (["--workers", "0-2"], "0 workers"),
        (["--negatives", "2"], "for interaction formats, not criteo"),
        (["--batch-size", "0"], "'batch_size': Input should be greater than or equal to 1"),
        (["--out", "o.csv"], "'--out'.*expected one of .parquet"),
        (["--train-steps", "-1"], "'--train-steps': must be >= 0"),
    ],
)
def test_bad_options_are_one_line(criteo_sample_path, tmp_path, capsys, argv, match):
    argv = [a.replace("o.csv", str(tmp_path / "o.csv")) for a in argv]
    code = main(["data", "preprocess", "--input", str(criteo_sample_path), "--format", "criteo", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    import re

    assert re.search(match, err), err
    assert list(tmp_path.iterdir()) == []


def test_config_error_type():
    with pytest.raises(ConfigError, match="--input"):
        make_config(input="/no/such/file", format="criteo")
