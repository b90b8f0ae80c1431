"""Inputs that are not what the format says: binary data, other encodings, headers, missing
columns, non-finite numbers. Each is named (file, line or byte offset, field) in one error."""

import json

import pandas as pd
import pytest

from data_pipeline.errors import ConfigError, DataFormatError
from data_pipeline.readers import load_interactions
from data_pipeline.readers.criteo import CriteoOptions, iter_criteo
from data_pipeline.synth import SynthConfig, write_synthetic

ELF_HEAD = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 2  # what the head of an executable looks like


@pytest.mark.parametrize("fmt", ["criteo", "csv", "tsv", "jsonl"])
def test_binary_file_is_named_with_its_byte_offset(tmp_path, fmt):
    f = tmp_path / "a.out"
    f.write_bytes(ELF_HEAD)
    with pytest.raises(DataFormatError) as err:
        if fmt == "criteo":
            list(iter_criteo(f))
        else:
            load_interactions(f, fmt, columns="user,item" if fmt != "jsonl" else None)
    msg = str(err.value)
    assert msg.startswith(str(f)) and "line 1" in msg and "binary data" in msg
    assert "byte 0x02 at byte offset 4 (column 5)" in msg  # the first control byte of the ELF header


def test_binary_data_past_the_sniffed_head_names_its_line(tmp_path):
    # 70k lines push the bad line past the 64 KiB checked up front; the line check still finds it.
    lines = [f"u{i},i{i},4\n" for i in range(70_000)]
    lines[65_000] = "u1,i\x001,4\n"
    f = tmp_path / "log.csv"
    f.write_text("".join(lines))
    with pytest.raises(DataFormatError, match=r"line 65001: binary data.*byte 0x00 at column 5"):
        load_interactions(f, "csv", columns="user,item,rating")


def test_binary_block_in_a_criteo_stream_names_line_and_offset(tmp_path):
    path = write_synthetic(SynthConfig(rows=2_000, max_cardinality=100, seed=1), tmp_path / "s.tsv")
    data = bytearray(path.read_bytes())
    line_starts = [0] + [i + 1 for i, b in enumerate(data) if b == 0x0A]
    offset = line_starts[1_499] + 3  # line 1500, 4th byte
    data[offset] = 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match=rf"line 1500: binary data.*byte 0x01 at byte offset {offset}"):
        list(iter_criteo(path, CriteoOptions(chunk_rows=300)))


def test_other_encodings_read_with_encoding_and_are_named_without(tmp_path):
    f = tmp_path / "latin.csv"
    f.write_bytes("user,item,rating\ncaf\xe9,i1,4\nna\xefve,i2,5\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"line 2: expected UTF-8 text \(pass the file's encoding with --encoding"):
        load_interactions(f, "csv", columns="user,item,rating")
    data = load_interactions(f, "csv", columns="user,item,rating", encoding="latin-1")
    assert sorted(data.vocabs["user"].values) == ["café", "naïve"]
    j = tmp_path / "latin.jsonl"
    j.write_bytes('{"user": "caf\xe9", "item": 1}\n'.encode("latin-1"))
    with pytest.raises(DataFormatError, match="line 1: expected UTF-8 text"):
        load_interactions(j, "jsonl")
    assert load_interactions(j, "jsonl", encoding="cp1252").vocabs["user"].values.tolist() == ["café"]
    for bad in ("utf-16", "no-such-codec"):
        with pytest.raises(ConfigError, match="--encoding"):
            load_interactions(f, "csv", columns="user,item,rating", encoding=bad)


def test_criteo_in_latin1_is_transcoded_per_block(tmp_path):
    path = write_synthetic(SynthConfig(rows=500, max_cardinality=50, seed=4), tmp_path / "s.tsv")
    utf8 = [b.num_rows for b in iter_criteo(path, CriteoOptions(chunk_rows=100))]
    latin = [b.num_rows for b in iter_criteo(path, CriteoOptions(chunk_rows=100, encoding="latin-1"))]
    assert sum(utf8) == sum(latin) == 500


def test_detected_header_is_reported_and_a_data_line_is_never_dropped(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("userId,movieId,rating\n1,10,4\n2,11,5\n")
    data = load_interactions(f, "csv", columns="user,item,rating")
    assert data.num_rows == 2 and data.report.header == "userId,movieId,rating"
    assert "line 1 taken as a header: 'userId,movieId,rating'" in data.report.summary()
    # a malformed first row (a number among its fields) is data: an error on line 1, not a header
    f.write_text("1,10,five\n2,11,5\n")
    with pytest.raises(DataFormatError, match="line 1, field 'rating'"):
        load_interactions(f, "csv", columns="user,item,rating")
    # --no-header forces line 1 to be data; --header drops it without guessing
    f.write_text("user,item,rating\nu1,i1,4\n")
    with pytest.raises(DataFormatError, match="line 1, field 'rating'"):
        load_interactions(f, "csv", columns="user,item,rating", header=False)
    f.write_text("a,b,5\nu1,i1,4\n")
    data = load_interactions(f, "csv", columns="user,item,rating", header=True)
    assert data.num_rows == 1 and data.report.header is None
    # columns without numbers: a header is recognised only when it repeats the column names
    f.write_text("user,item\nu1,i1\n")
    assert load_interactions(f, "csv", columns="user,item").num_rows == 1
    f.write_text("alice,book\nbob,film\n")
    assert load_interactions(f, "csv", columns="user,item").num_rows == 2


def test_missing_parquet_and_jsonl_columns_name_column_and_file(tmp_path):
    f = tmp_path / "noitem.parquet"
    pd.DataFrame({"user": [1, 2], "rating": [1.0, 2.0]}).to_parquet(f)
    with pytest.raises(DataFormatError, match=r"noitem.parquet: missing column 'item'"):
        load_interactions(f, "parquet")
    j = tmp_path / "r.jsonl"
    j.write_text(json.dumps({"user": 1, "item": 2}) + "\n" + json.dumps({"user": 1}) + "\n")
    with pytest.raises(DataFormatError, match=r"r.jsonl, line 2: expected a JSON object with key 'item'"):
        load_interactions(j, "jsonl")
    j.write_text(json.dumps({"user": 1, "item": 2}) + "\n")
    data = load_interactions(j, "jsonl")  # rating and timestamp are optional without a mapping
    assert data.num_rows == 1 and data.column("rating").tolist() == [1.0]


@pytest.mark.parametrize(
    "fmt, columns, match",
    [
        ("csv", "user=,item", "csv/tsv columns are names in file order"),
        ("jsonl", "user=,item", "expected name=source pairs"),
        ("jsonl", "user=a,item", "expected name=source pairs"),
        ("csv", "user,user,item", r"\['user'\] named more than once"),
        ("csv", "user,rating", "lacks 'item'"),
        ("parquet", "user=a,thing=b", r"unknown names \['thing'\]"),
    ],
)
def test_bad_columns_option_is_one_config_error(tmp_path, fmt, columns, match):
    f = tmp_path / f"x.{fmt}"
    if fmt == "parquet":
        pd.DataFrame({"a": [1], "b": [2]}).to_parquet(f)
    else:
        f.write_text('{"a": 1}\n' if fmt == "jsonl" else "1,2\n")
    with pytest.raises(ConfigError, match=match):
        load_interactions(f, fmt, columns=columns)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e39"])
def test_non_finite_ratings_are_bad_fields(tmp_path, value):
    f = tmp_path / "r.csv"
    f.write_text(f"u1,i1,4\nu2,i2,{value}\n")
    with pytest.raises(DataFormatError, match=rf"line 2, field 'rating': expected a finite numeric rating, found '{value}'"):
        load_interactions(f, "csv", columns="user,item,rating")
    assert load_interactions(f, "csv", columns="user,item,rating", on_bad_lines="skip").num_rows == 1


@pytest.mark.parametrize("value, field", [("NaN", "rating"), (1.5, "timestamp"), (1e30, "timestamp"), ("x", "timestamp")])
def test_jsonl_numbers_are_checked_not_cast_into_garbage(tmp_path, value, field):
    j = tmp_path / "r.jsonl"
    row = {"user": 1, "item": 2, "rating": 4.0, "timestamp": 5}
    j.write_text(json.dumps(row) + "\n" + json.dumps({**row, field: value}) + "\n")
    with pytest.raises(DataFormatError, match=rf"r.jsonl, line 2, field '{field}'"):
        load_interactions(j, "jsonl")
    if isinstance(value, str):
        return  # a Parquet column has one type: strings among numbers cannot be written
    pd.DataFrame([row, {**row, field: value}]).to_parquet(tmp_path / "r.parquet")
    with pytest.raises(DataFormatError, match=rf"r.parquet, row 2, field '{field}'"):
        load_interactions(tmp_path / "r.parquet", "parquet")


def test_every_row_skipped_is_an_error_not_an_empty_result(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("u1,i1,x\nu2,i2,y\n")
    with pytest.raises(DataFormatError, match=r"no valid rows: all 2 rows are malformed \(first: line 1"):
        load_interactions(f, "csv", columns="user,item,rating", on_bad_lines="skip")
    c = tmp_path / "c.tsv"
    c.write_text("x\ty\n" * 3)
    with pytest.raises(DataFormatError, match="no valid rows: all 3 rows are malformed"):
        list(iter_criteo(c, CriteoOptions(on_bad_lines="skip")))


def test_parquet_with_corrupt_pandas_metadata_is_named_not_a_traceback(tmp_path):
    """The fuzz suite's find: a byte flip in the footer's pandas metadata reads fine with pyarrow and
    fails only when converted (JSONDecodeError)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(pd.DataFrame({"user": [1, 2], "item": [3, 4]}), preserve_index=False)
    path = tmp_path / "log.parquet"
    pq.write_table(table.replace_schema_metadata({b"pandas": b"{not json"}), path)
    with pytest.raises(DataFormatError, match="log.parquet.*not a readable Parquet file"):
        load_interactions(path, "parquet", columns="user,item")


def test_parquet_strings_that_are_not_utf8_are_named(tmp_path):
    """The fuzz suite's second Parquet find: a flipped byte inside string data."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": ["u1", "u2"], "item": ["i1", "i2"]}), path, compression="none",
                   use_dictionary=False)
    raw = path.read_bytes()
    at = raw.index(b"u2", raw.index(b"u2") + 1)  # the value itself (the first copy is the page's max statistic)
    path.write_bytes(raw[:at] + b"\xff" + raw[at + 1:])
    with pytest.raises(DataFormatError, match="log.parquet.*not a readable Parquet file"):
        load_interactions(path, "parquet", columns="user,item")
