"""The sharding planner on workloads measured from the real data in $FEDREC_DATA."""

import json
import os
from pathlib import Path

import pytest

from fedrec.cli import main

DATA = Path(os.environ.get("FEDREC_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "datasets"))


def _need(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing (FEDREC_DATA={DATA}) and CI=true")
        pytest.skip(f"{path} not found; set FEDREC_DATA")
    return path


@pytest.mark.parametrize("name, fmt", [("criteo-sample/train.tsv", "criteo"), ("ml-100k", "movielens")])
def test_stats_workload_then_plan(tmp_path, capsys, name, fmt):
    src = _need(DATA / name)
    w, p = tmp_path / "w.json", tmp_path / "p.json"
    assert main(["data", "stats", str(src), "--format", fmt, "--workload", str(w)]) == 0
    assert main(["plan", "--workload", str(w), "--gpus", "2", "--hbm-gb", "0.001", "--planner", "recshard", "--out", str(p)]) == 0
    tables = {t["name"]: t for t in json.loads(w.read_text())["tables"]}
    plan = json.loads(p.read_text())
    assert {t["name"] for t in plan["tables"]} == set(tables)
    for t in plan["tables"]:
        assert 0 <= t["rank"] < 2 and t["hbm_rows"] + t["uvm_rows"] == tables[t["name"]]["rows"]
    assert plan["solver"]["gap"] <= 0.02
    capsys.readouterr()
    assert main(["plan", "evaluate", "--plan", str(p), "--workload", str(w)]) == 0
    assert json.loads(capsys.readouterr().out)["max_gpu_ms"] > 0
