"""End-to-end on the real datasets (../shared/datasets): the CLI contract and the AUC target."""

import json
import subprocess
import sys

from data_pipeline.splits import official_fold
from fedrec.central import CentralConfig, train_central
from fedrec.cli import main


def test_stats_contract_movielens(ml100k_path, capsys):
    assert main(["data", "stats", str(ml100k_path), "--format", "movielens", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["rows"], d["users"], d["items"]) == (100000, 943, 1682)
    assert d["rating_counts"] == {"1": 6110, "2": 11370, "3": 27145, "4": 34174, "5": 21201}


def test_stats_contract_criteo(criteo_sample_path, capsys):
    assert main(["data", "stats", str(criteo_sample_path), "--format", "criteo", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["rows"], d["positives"], len(d["features"])) == (1000, 205, 39)
    c22 = next(f for f in d["features"] if f["name"] == "C22")
    assert abs(c22["missing_fraction"] - 0.815) < 1e-9


def test_bad_row_line_57_exit_2_no_traceback(ml100k_path, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    lines = (ml100k_path / "u.data").read_text().splitlines()
    fields = lines[56].split("\t")
    fields[2] = "x"
    lines[56] = "\t".join(fields)
    (bad / "u.data").write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "fedrec.cli", "data", "stats", str(bad), "--format", "movielens", "--json"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "u.data" in proc.stderr and "line 57" in proc.stderr


def test_official_fold_u1(ml100k_path):
    data, split = official_fold(ml100k_path, "u1")
    assert (len(split.train), len(split.test)) == (80000, 20000)
    assert data.num_rows == 100000


def test_central_dlrm_reaches_auc_070(ml100k_path, tmp_path):
    result = train_central(CentralConfig(data=str(ml100k_path), epochs=2, checkpoint=str(tmp_path / "m.pt")), progress=False)
    assert result.auc >= 0.70, result.history
    assert 0 < result.ne < 1 and result.samples_per_second > 0
    assert (tmp_path / "m.pt").exists()
