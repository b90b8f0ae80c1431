"""Fuzzed inputs to ``fedrec data stats``, ``data convert``, ``data preprocess`` and ``data synth``.

Each case damages a valid file (truncation, byte flips, wrong separators, empty or header-only
files, huge numbers, NaN/inf, non-UTF-8 bytes, wrong column counts, binary junk) and runs the
commands on it. Beyond the exit contract, the commands must agree with each other, and a run that
exits 0 must account for every line: each non-blank line is a row, a skipped malformed row
(``--on-bad-lines skip``), or the one header line the report names. Nothing is dropped silently.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import require_dataset
from tests.fuzz.harness import case_folder, check_contract, mutated, non_blank_lines, run_cli

CRITEO_LINES = 40


def _criteo_base() -> bytes:
    lines = require_dataset("criteo-sample/train.tsv").read_bytes().split(b"\n")[:CRITEO_LINES]
    return b"\n".join(lines) + b"\n"


def _interaction_base(sep: bytes) -> bytes:
    return b"".join(sep.join([b"u%d" % (i % 7), b"i%d" % (i % 11), b"%d" % (1 + i % 5), b"%d" % (1000 + i)]) + b"\n"
                    for i in range(30))  # fmt: skip


TEXT_FORMATS = {
    "criteo": (b"\t", None),
    "tsv": (b"\t", b"user\titem\trating\ttimestamp"),
    "csv": (b",", b"user,item,rating,timestamp"),
}


def _accounted(stats: dict, data: bytes, policy: str) -> None:
    """Every non-blank line is a row, a skipped row or the reported header."""
    lines = non_blank_lines(data)
    header = 1 if stats.get("header") else 0
    skipped = stats.get("skipped_rows", 0)
    if policy == "error":
        assert skipped == 0
    assert stats["rows"] + skipped + header == lines, (stats["rows"], skipped, header, lines)


@pytest.mark.parametrize("fmt", sorted(TEXT_FORMATS))
@given(data=st.data())
def test_text_inputs_keep_the_contract_and_every_line(fmt, data):
    sep, header = TEXT_FORMATS[fmt]
    base = _criteo_base() if fmt == "criteo" else _interaction_base(sep)
    if fmt != "criteo" and data.draw(st.booleans(), label="with header"):
        base = header + b"\n" + base
    kind, content = data.draw(mutated(base, sep=sep, header=header), label="mutation")
    policy = data.draw(st.sampled_from(["error", "skip"]), label="on-bad-lines")
    with case_folder() as folder:
        src = folder / f"in.{fmt if fmt != 'criteo' else 'tsv'}"
        src.write_bytes(content)
        common = ["--format", fmt, "--on-bad-lines", policy]
        stats_argv = ["data", "stats", str(src), *common, "--json"]
        stats = run_cli(stats_argv, folder)
        check_contract(stats, [], stats_argv)
        out = folder / "out" / "c.parquet"
        convert_argv = ["data", "convert", str(src), *common, "--out", str(out)]
        convert = run_cli(convert_argv, folder)
        check_contract(convert, ["out/c.parquet"], convert_argv)
        pre_out = folder / "p.parquet"
        pre_argv = ["data", "preprocess", "--input", str(src), *common, "--workers", "0", "--out", str(pre_out)]
        pre = run_cli(pre_argv, folder)
        check_contract(pre, ["p.parquet"], pre_argv)
        # the three commands read with the same rules: they agree on the outcome and on the error
        assert stats.code == convert.code == pre.code, (kind, stats.err, convert.err, pre.err)
        if stats.code == 2:
            assert stats.error_line == convert.error_line, (stats.error_line, convert.error_line)
            return
        report = json.loads(stats.out)
        _accounted(report, content, policy)
        assert pq.read_metadata(out).num_rows == report["rows"]
        assert pq.read_metadata(pre_out).num_rows == report["rows"]


@given(data=st.data())
def test_jsonl_inputs_keep_the_contract_and_every_line(data):
    rows = [{"user": f"u{i % 5}", "item": i % 9, "rating": 1 + i % 5, "timestamp": 100 + i} for i in range(20)]
    base = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    kind, content = data.draw(mutated(base, sep=b", "), label="mutation")
    policy = data.draw(st.sampled_from(["error", "skip"]), label="on-bad-lines")
    with case_folder() as folder:
        src = folder / "in.jsonl"
        src.write_bytes(content)
        stats_argv = ["data", "stats", str(src), "--format", "jsonl", "--on-bad-lines", policy, "--json"]
        stats = run_cli(stats_argv, folder)
        check_contract(stats, [], stats_argv)
        convert_argv = ["data", "convert", str(src), "--format", "jsonl", "--on-bad-lines", policy, "--out", str(folder / "o.parquet")]
        convert = run_cli(convert_argv, folder)
        check_contract(convert, ["o.parquet"], convert_argv)
        assert stats.code == convert.code
        if stats.code == 0:
            report = json.loads(stats.out)
            _accounted(report, content, policy)
            assert pq.read_metadata(folder / "o.parquet").num_rows == report["rows"]


@given(data=st.data())
def test_parquet_inputs_keep_the_contract(data, tmp_path_factory):
    import pandas as pd

    frame = pd.DataFrame({"user": [f"u{i % 4}" for i in range(25)], "item": list(range(25)), "rating": [4.0] * 25})
    drop = data.draw(st.sampled_from([None, "user", "item", "rating"]), label="dropped column")
    if drop:
        frame = frame.drop(columns=[drop])
    with case_folder() as folder:
        good = folder / "good.parquet"
        frame.to_parquet(good)
        kind, content = data.draw(
            st.one_of(st.just(("none", good.read_bytes())), mutated(good.read_bytes(), sep=b"\x00")), label="mutation"
        )
        good.unlink()
        src = folder / "in.parquet"
        src.write_bytes(content)
        argv = ["data", "stats", str(src), "--format", "parquet", "--json"]
        run = run_cli(argv, folder)
        check_contract(run, [], argv)
        if drop in ("user", "item") and kind == "none":
            assert run.code == 2 and f"missing column '{drop}'" in run.error_line and "in.parquet" in run.error_line
        if run.code == 0:
            assert json.loads(run.out)["rows"] == 25


@given(data=st.data())
def test_movielens_folder_keeps_the_contract(data):
    base = _interaction_base(b"\t").replace(b"u", b"").replace(b"i", b"")
    kind, content = data.draw(mutated(base, sep=b"\t"), label="mutation")
    with case_folder() as folder:
        (folder / "ml").mkdir()
        (folder / "ml" / "u.data").write_bytes(content)
        argv = ["data", "stats", str(folder / "ml"), "--format", "movielens", "--json"]
        run = run_cli(argv, folder)
        check_contract(run, [], argv)
        if run.code == 0:
            _accounted(json.loads(run.out), content, "error")


EXTENSIONS = [".tsv", ".txt", ".parquet", ".csv", ".xyz", "", ".TSV", ".parquet.tmp"]


@given(data=st.data())
def test_synth_options_keep_the_contract(data):
    valid = data.draw(st.booleans(), label="valid options")  # half the cases: every option valid

    def option(good, bad, label: str):
        return data.draw(good if valid else st.one_of(good, bad), label=label)

    rows = option(st.integers(1, 400), st.one_of(st.integers(-3, 0), st.sampled_from(["1e3", "x", "", "0x10"])), "rows")
    zipf = option(st.floats(0.01, 3.0), st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just("abc")), "zipf")
    card = option(st.one_of(st.none(), st.integers(2, 60)), st.integers(-2, 1), "max cardinality")
    ext = option(st.sampled_from([".tsv", ".txt", ".parquet", ".TSV"]), st.sampled_from(EXTENSIONS), "extension")
    profile = option(st.sampled_from(["criteo-kaggle", "criteo-terabyte"]), st.just("criteo-nope"), "profile")
    depth = data.draw(st.integers(0, 2), label="folder depth")
    with case_folder() as folder:
        rel = "/".join(["d"] * depth + [f"s{ext}"])
        argv = ["data", "synth", "--rows", str(rows), "--zipf", str(zipf), "--profile", profile, "--out", str(folder / rel)]
        if card is not None:
            argv += ["--max-cardinality", str(card)]
        run = run_cli(argv, folder)
        check_contract(run, [rel], argv)
        if run.code == 0:
            path = folder / rel
            if ext.lower() == ".parquet":
                assert pq.read_metadata(path).num_rows == int(rows)
            else:
                assert path.read_bytes().count(b"\n") == int(rows)
                assert all(line.count(b"\t") == 39 for line in path.read_bytes().splitlines())


@given(data=st.data())
def test_preprocess_options_keep_the_contract(data):
    """Interaction transforms with fuzzed options on a damaged log; rows = kept rows x (1 + negatives)."""
    base = _interaction_base(b",")
    kind, content = data.draw(mutated(base, sep=b","), label="mutation")
    valid = data.draw(st.booleans(), label="valid options")  # half the cases: only the input is damaged

    def option(good: list, bad: list, label: str):
        return data.draw(st.sampled_from(good if valid else good + bad), label=label)

    negatives = option(["0", "2"], ["-1", "x"], "negatives")
    buckets = option(["1", "1000"], ["0", "-5", "1e3"], "buckets")
    batch = option(["1", "7", "4096"], ["0"], "batch size")
    threshold = option([None, "4"], ["nan", "x"], "label threshold")
    workers = option(["0", "0-0"], ["-1", "1-0", "a"], "workers")
    steps = option(["0", "2"], ["-3"], "train steps")
    with case_folder() as folder:
        src = folder / "log.csv"
        src.write_bytes(content)
        argv = ["data", "preprocess", "--input", str(src), "--format", "csv", "--workers", workers,
                "--negatives", negatives, "--buckets", buckets, "--batch-size", batch, "--train-steps", steps,
                "--out", str(folder / "o.parquet"), "--json", str(folder / "r.json")]  # fmt: skip
        if threshold is not None:
            argv += ["--label-threshold", threshold]
        run = run_cli(argv, folder)
        check_contract(run, ["o.parquet", "r.json"], argv)
        if run.code == 0:
            report = json.loads((folder / "r.json").read_text())
            assert report["rows"] == pq.read_metadata(folder / "o.parquet").num_rows
            kept = non_blank_lines(content) - (1 if report["header"] else 0)
            assert report["rows"] == kept * (1 + int(negatives))
            table = pq.read_table(folder / "o.parquet")
            assert table.column("item").to_pylist() and max(table.column("item").to_pylist()) < int(buckets)
