"""``fedrec data`` outputs appear whole or not at all: parent folders made, unknown extensions
refused before any work, nothing half-written when the input turns out bad late."""

import json

import pyarrow.parquet as pq
import pytest

from data_pipeline.synth import SynthConfig, write_synthetic
from fedrec.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def criteo_60k(tmp_path_factory):
    """60k rows with a bad line at 55,000: after the first 50k-row block was already written."""
    folder = tmp_path_factory.mktemp("criteo")
    path = write_synthetic(SynthConfig(rows=60_000, max_cardinality=1_000, seed=3), folder / "day.tsv")
    lines = path.read_bytes().split(b"\n")
    lines[54_999] = b"1\tnot-a-count" + b"\t" * 38
    bad = folder / "bad.tsv"
    bad.write_bytes(b"\n".join(lines))
    return path, bad


def test_convert_bad_line_late_leaves_no_partial_parquet(tmp_path, capsys, criteo_60k):
    _, bad = criteo_60k
    out = tmp_path / "out" / "day.parquet"
    code, stdout, err = _run(capsys, "data", "convert", str(bad), "--format", "criteo", "--out", str(out))
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and "line 55000, field 'I1'" in err and "Traceback" not in err
    assert _files(tmp_path) == []  # neither the final name nor a temporary file
    assert not (tmp_path / "out").exists()  # nor the folder made for it


def test_convert_keeps_an_existing_file_when_it_fails(tmp_path, capsys, criteo_60k):
    good, bad = criteo_60k
    out = tmp_path / "day.parquet"
    assert _run(capsys, "data", "convert", str(good), "--format", "criteo", "--out", str(out))[0] == 0
    assert pq.read_metadata(out).num_rows == 60_000
    before = out.read_bytes()
    assert _run(capsys, "data", "convert", str(bad), "--format", "criteo", "--out", str(out))[0] == 2
    assert out.read_bytes() == before and _files(tmp_path) == ["day.parquet"]


def test_every_row_skipped_exits_2_without_a_file(tmp_path, capsys):
    src = tmp_path / "junk.tsv"
    src.write_text("x\ty\n" * 5)
    out = tmp_path / "o.parquet"
    code, _, err = _run(
        capsys, "data", "convert", str(src), "--format", "criteo", "--on-bad-lines", "skip", "--out", str(out)
    )
    assert code == 2 and "no valid rows: all 5 rows are malformed" in err and not out.exists()


@pytest.mark.parametrize(
    "argv, option, accepted",
    [
        (["data", "convert", "{src}", "--format", "csv", "--columns", "user,item", "--out", "{d}/o.csv"], "--out", ".parquet"),
        (["data", "synth", "--rows", "10", "--out", "{d}/s.xyz"], "--out", ".tsv, .txt, .parquet"),
        (["data", "stats", "{src}", "--format", "csv", "--columns", "user,item", "--plot", "{d}/p.jpg"], "--plot", ".png, .svg, .pdf"),
        (["data", "stats", "{src}", "--format", "csv", "--columns", "user,item", "--workload", "{d}/w.yaml"], "--workload", ".json"),
    ],
)
def test_unknown_extension_names_the_accepted_ones(tmp_path, capsys, argv, option, accepted):
    src = tmp_path / "log.csv"
    src.write_text("u1,i1\nu2,i2\n")
    out_dir = tmp_path / "out"
    code, _, err = _run(capsys, *[a.format(src=src, d=out_dir) for a in argv])
    assert code == 2 and f"'{option}'" in err and f"expected one of {accepted}" in err and err.count("\n") == 1
    assert not out_dir.exists()


def test_outputs_create_their_parent_folders(tmp_path, capsys, criteo_sample_path):
    deep = tmp_path / "a" / "b"
    code, stdout, _ = _run(
        capsys, "data", "stats", str(criteo_sample_path), "--format", "criteo", "--json",
        "--workload", str(deep / "w.json"), "--plot", str(deep / "cdf.png"),
    )  # fmt: skip
    assert code == 0 and json.loads(stdout)["rows"] == 1000
    assert json.loads((deep / "w.json").read_text())["tables"] and (deep / "cdf.png").stat().st_size > 0
    code, _, _ = _run(capsys, "data", "convert", str(criteo_sample_path), "--format", "criteo", "--out", str(deep / "c" / "s.parquet"))
    assert code == 0 and pq.read_metadata(deep / "c" / "s.parquet").num_rows == 1000
    code, _, _ = _run(capsys, "data", "synth", "--rows", "100", "--max-cardinality", "50", "--out", str(deep / "d" / "s.tsv"))
    assert code == 0 and (deep / "d" / "s.tsv").read_bytes().count(b"\n") == 100
    assert _files(tmp_path) == ["a/b/c/s.parquet", "a/b/cdf.png", "a/b/d/s.tsv", "a/b/w.json"]


def test_a_failing_plot_leaves_no_workload(tmp_path, capsys, monkeypatch):
    import data_pipeline.cli as data_cli

    def broken_plot(stats, out):
        raise data_cli.ConfigError("--plot", "cannot draw")

    import data_pipeline.stats

    monkeypatch.setattr(data_pipeline.stats, "plot_stats", broken_plot)  # the command imports it when it runs
    src = tmp_path / "log.csv"
    src.write_text("u1,i1\nu2,i2\n")
    code, stdout, err = _run(
        capsys, "data", "stats", str(src), "--format", "csv", "--columns", "user,item", "--json",
        "--workload", str(tmp_path / "w.json"), "--plot", str(tmp_path / "p.png"),
    )  # fmt: skip
    assert code == 2 and "cannot draw" in err and stdout == ""
    assert _files(tmp_path) == ["log.csv"]


def test_data_help_has_examples_and_the_input_options(capsys):
    with pytest.raises(SystemExit):
        main(["data", "--help"])
    assert "examples:\n  fedrec data stats" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["data", "stats", "--help"])
    text = capsys.readouterr().out
    assert "--encoding" in text and "--header, --no-header" in text


def test_detected_header_is_said_on_stderr_and_in_json(tmp_path, capsys):
    src = tmp_path / "log.csv"
    src.write_text("user,item,rating\nu1,i1,4\nu2,i2,5\n")
    code, stdout, err = _run(capsys, "data", "stats", str(src), "--format", "csv", "--columns", "user,item,rating", "--json")
    assert code == 0 and "line 1 taken as a header: 'user,item,rating'" in err
    assert json.loads(stdout)["header"] == "user,item,rating" and json.loads(stdout)["rows"] == 2
    code, _, err = _run(capsys, "data", "stats", str(src), "--format", "csv", "--columns", "user,item,rating", "--no-header")
    assert code == 2 and "line 1, field 'rating'" in err
