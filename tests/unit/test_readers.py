import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from data_pipeline.errors import DataFormatError, DatasetNotFoundError, ReadReport
from data_pipeline.readers import load_interactions, read_movielens
from data_pipeline.readers.criteo import CriteoOptions, iter_criteo, read_criteo
from data_pipeline.synth import SynthConfig, write_synthetic


def _ml_folder(tmp_path, lines):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.data").write_text("".join(lines))
    return folder


GOOD = ["1\t10\t5\t881250949\n", "1\t11\t3\t881250950\n", "2\t10\t4\t881250951\n"]


def test_movielens_reads_and_encodes(tmp_path):
    data = read_movielens(_ml_folder(tmp_path, GOOD))
    assert (data.num_rows, data.num_users, data.num_items) == (3, 2, 2)
    assert data.vocabs["item"].decode(data.column("item")).tolist() == [10, 11, 10]
    assert data.column("rating").tolist() == [5.0, 3.0, 4.0]


@pytest.mark.parametrize(
    "bad_line, field, found",
    [
        ("2\t11\tx\t881250952\n", "rating", "'x'"),
        ("2\t11\t4\n", None, "3 fields"),
        ("two\t11\t4\t881250952\n", "user", "'two'"),
        ("2\t11\t4\t\n", "timestamp", "an empty value"),
    ],
)
def test_movielens_bad_line_names_file_line_field(tmp_path, bad_line, field, found):
    folder = _ml_folder(tmp_path, [*GOOD, bad_line])
    with pytest.raises(DataFormatError) as err:
        read_movielens(folder)
    msg = str(err.value)
    assert "u.data" in msg and "line 4" in msg and found in msg
    if field:
        assert f"field '{field}'" in msg


def test_skip_mode_reports_count_and_examples(tmp_path):
    folder = _ml_folder(tmp_path, [*GOOD, "2\t11\tx\t1\n", "3\t12\t4\t2\n", "bad\n"])
    data = read_movielens(folder, on_bad_lines="skip")
    assert data.num_rows == 4
    assert data.report.skipped == 2
    assert [b.line for b in data.report.examples] == [4, 6]
    assert "2 malformed rows skipped" in data.report.summary()


def test_blank_lines_keep_line_numbers(tmp_path):
    folder = _ml_folder(tmp_path, [GOOD[0], "\n", GOOD[1], "1\t2\t3\tz\n"])
    with pytest.raises(DataFormatError, match="line 4"):
        read_movielens(folder)


def test_missing_empty_and_encoding_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError):
        read_movielens(tmp_path / "nope")
    folder = _ml_folder(tmp_path, [])
    with pytest.raises(DataFormatError, match="empty"):
        read_movielens(folder)
    (folder / "u.data").write_bytes(b"1\t2\t3\t4\n1\t\xe9\t3\t4\n")
    with pytest.raises(DataFormatError, match="line 2.*UTF-8"):
        read_movielens(folder)


def test_csv_without_header_amazon_order(tmp_path):
    f = tmp_path / "amazon.csv"
    f.write_text("B001,A1,5.0,1400000000\nB002,A1,3.0,1400000001\nB001,A2,4.0,1400000002\n")
    data = load_interactions(f, "csv", columns="item,user,rating,timestamp")
    assert (data.num_rows, data.num_users, data.num_items) == (3, 2, 2)
    assert set(data.vocabs["user"].values) == {"A1", "A2"}


def test_csv_header_detected_and_bad_value_named(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item,rating\nu1,i1,5\nu2,i2,five\n")
    with pytest.raises(DataFormatError) as err:
        load_interactions(f, "csv", columns="user,item,rating")
    assert "line 3" in str(err.value) and "rating" in str(err.value)
    f.write_text("user,item,rating\nu1,i1,5\nu2,i2,4\n")
    assert load_interactions(f, "csv", columns="user,item,rating").num_rows == 2


def test_jsonl_with_mapping_and_bad_line(tmp_path):
    f = tmp_path / "reviews.jsonl"
    rows = [{"reviewerID": "A", "asin": "X", "overall": 5.0, "unixReviewTime": 1}, {"reviewerID": "B", "asin": "X", "overall": 2.0, "unixReviewTime": 2}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cols = "user=reviewerID,item=asin,rating=overall,timestamp=unixReviewTime"
    assert load_interactions(f, "jsonl", columns=cols).num_rows == 2
    f.write_text(f.read_text() + '{"reviewerID": "C"}\n')
    with pytest.raises(DataFormatError, match="line 3"):
        load_interactions(f, "jsonl", columns=cols)


def test_parquet_roundtrip_and_missing_column(tmp_path):
    f = tmp_path / "i.parquet"
    pd.DataFrame({"u": [1, 2], "i": [3, 3], "r": [1.0, 2.0]}).to_parquet(f)
    data = load_interactions(f, "parquet", columns={"user": "u", "item": "i", "rating": "r"})
    assert data.num_rows == 2 and data.num_items == 1
    with pytest.raises(DataFormatError, match="i.parquet: missing column 'nope'"):
        load_interactions(f, "parquet", columns={"user": "u", "item": "nope"})


def test_criteo_roundtrip_from_synthetic(tmp_path):
    path = write_synthetic(SynthConfig(rows=5000, max_cardinality=1000, seed=3), tmp_path / "s.tsv")
    table, report = read_criteo(path, CriteoOptions(num_buckets=97))
    assert table.num_rows == 5000 and report.skipped == 0
    c = table.column("C1").to_numpy(zero_copy_only=False)
    assert np.nanmax(c) < 97
    assert table.column("I1").null_count == 0  # dense missing -> 0 after transform
    assert table.column("C22").null_count > 0  # categorical missing stays missing


def test_criteo_streams_in_bounded_chunks(tmp_path):
    path = write_synthetic(SynthConfig(rows=3000, max_cardinality=100), tmp_path / "s.tsv")
    sizes = [b.num_rows for b in iter_criteo(path, CriteoOptions(chunk_rows=1000))]
    assert sum(sizes) == 3000 and max(sizes) <= 1000 and len(sizes) >= 3


@pytest.mark.parametrize(
    "mutate, line, found",
    [
        (lambda f: f[:-1], 2, "39 fields"),
        (lambda f: ["2"] + f[1:], 2, "'2'"),
        (lambda f: f[:20] + ["zzzz"] + f[21:], 2, "'zzzz'"),
    ],
)
def test_criteo_bad_rows(tmp_path, mutate, line, found):
    good = ["0"] + ["1"] * 13 + ["68fd1e64"] * 26
    path = tmp_path / "c.tsv"
    path.write_text("\t".join(good) + "\n" + "\t".join(mutate(list(good))) + "\n")
    with pytest.raises(DataFormatError) as err:
        read_criteo(path)
    assert f"line {line}" in str(err.value) and found in str(err.value)


def test_criteo_bad_label_is_a_bad_line_under_skip(tmp_path):
    good = ["0"] + ["1"] * 13 + ["68fd1e64"] * 26
    path = tmp_path / "c.tsv"
    path.write_text("\n".join("\t".join([label] + good[1:]) for label in ("1", "2", "0", "")) + "\n")
    report = ReadReport(str(path))
    table = pa.Table.from_batches(list(iter_criteo(path, CriteoOptions(on_bad_lines="skip"), report)))
    assert table.column("label").to_pylist() == [1, 0]
    assert report.skipped == 2 and [b.line for b in report.examples] == [2, 4]


def _criteo_table(path, **kw):
    return pa.Table.from_batches(list(iter_criteo(path, CriteoOptions(num_buckets=97, **kw))))


def test_criteo_fast_and_careful_paths_agree(tmp_path):
    """CRLF endings and a blank line force the careful path for the blocks that hold them; the
    rows must come out exactly as the fast path reads the clean file."""
    clean = write_synthetic(SynthConfig(rows=3000, max_cardinality=500, seed=5), tmp_path / "clean.tsv")
    lines = clean.read_bytes().splitlines()
    crlf = tmp_path / "crlf.tsv"
    crlf.write_bytes(b"\r\n".join(lines) + b"\r\n")
    blank = tmp_path / "blank.tsv"
    blank.write_bytes(b"\n".join(lines[:1500] + [b""] + lines[1500:]) + b"\n")
    expected = _criteo_table(clean, chunk_rows=700)
    assert expected.num_rows == 3000
    for other in (crlf, blank):
        assert _criteo_table(other, chunk_rows=700).equals(expected), other.name
    assert _criteo_table(clean, chunk_rows=100_000).equals(expected)  # batch size does not change rows


def test_criteo_bad_row_in_a_later_block_names_its_line(tmp_path):
    path = write_synthetic(SynthConfig(rows=2000, max_cardinality=100, seed=1), tmp_path / "s.tsv")
    lines = path.read_text().splitlines()
    fields = lines[1733].split("\t")
    fields[5] = "x7"
    lines[1733] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as err:
        list(iter_criteo(path, CriteoOptions(chunk_rows=300)))
    assert "line 1734" in str(err.value) and "I5" in str(err.value) and "'x7'" in str(err.value)
    report = ReadReport(str(path))
    rows = sum(b.num_rows for b in iter_criteo(path, CriteoOptions(chunk_rows=300, on_bad_lines="skip"), report))
    assert rows == 1999 and report.skipped == 1 and report.examples[0].line == 1734


def test_movielens_1m_dat_release(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    (folder / "movies.dat").write_bytes("1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation|Children's|Musical\n".encode("latin-1"))
    data = read_movielens(folder)
    assert data.name == "ml-1m" and (data.num_rows, data.num_users, data.num_items) == (3, 2, 2)
    assert set(data.user_features.column_names) == {"user", "gender", "occupation", "age_bucket"}
    genres = dict(zip(data.vocabs["item"].decode(data.item_features.column("item").to_numpy()), data.item_features.column("genres").to_pylist()))
    assert len(genres[661]) == 3 and len(genres[1193]) == 1
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3\n")
    with pytest.raises(DataFormatError, match="ratings.dat, line 2"):
        read_movielens(folder)


def test_movielens_20m_csv_release(tmp_path):
    folder = tmp_path / "ml-20m"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n7,2,4.0,1112484819\n")
    (folder / "movies.csv").write_text('movieId,title,genres\n2,"Jumanji, The (1995)",Adventure|Children|Fantasy\n29,City (1995),Drama\n')
    data = read_movielens(folder)
    assert (data.num_rows, data.num_users, data.num_items) == (3, 2, 2)
    assert data.column("rating").tolist() == [3.5, 3.5, 4.0]
    assert data.item_features is not None


def test_convert_to_parquet_keeps_original_ids(tmp_path, capsys):
    from fedrec.cli import main

    folder = _ml_folder(tmp_path, GOOD)
    out = tmp_path / "o.parquet"
    assert main(["data", "convert", str(folder), "--format", "movielens", "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert df["item"].tolist() == [10, 11, 10] and len(df) == 3


def test_examples_dataset_with_dataloader():
    from torch.utils.data import DataLoader

    from data_pipeline.batches import ExamplesDataset
    from data_pipeline.features import interaction_examples
    from tests.unit.test_data_core import _toy

    ex = interaction_examples(_toy(), features=("user", "item"))
    ds = ExamplesDataset(ex, batch_size=16, shuffle=True, seed=0)
    batches = list(DataLoader(ds, batch_size=None))
    assert len(batches) == len(ds) == 4
    assert sum(len(b.labels) for b in batches) == len(ex)
    ds.set_epoch(1)  # a new epoch reshuffles: the first batch holds other rows
    first_items = batches[0].sparse_features.to_dict()["item"].values()
    assert not np.array_equal(next(iter(ds)).sparse_features.to_dict()["item"].values().numpy(), first_items.numpy())
