"""The sharding planner on workloads measured from the real data in $FEDREC_DATA (MovieLens 100K,
Last.fm, the Criteo sample) and from a synthetic Criteo-like file."""

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


def _plan_and_check(tmp_path, capsys, w):
    p, tw = tmp_path / "p.json", tmp_path / "tw.json"
    argv = ["plan", "--workload", str(w), "--gpus", "2", "--hbm-gb", "0.001", "--planner", "recshard"]
    assert main([*argv, "--out", str(p)]) == 0
    assert main([*argv, "--no-split", "--out", str(tw)]) == 0
    tables = {t["name"]: t for t in json.loads(w.read_text())["tables"]}
    plan, whole = json.loads(p.read_text()), json.loads(tw.read_text())
    # table-wise, the MILP closes the gap to its bounds; cutting tables may only do better
    assert whole["solver"]["gap"] <= 0.02 and all(t["sharding"] == "table_wise" for t in whole["tables"])
    # (plan.json rounds costs to 1e-6 ms)
    assert plan["solver"]["lp_bound"] - 1e-6 <= plan["max_gpu_cost"] <= whole["max_gpu_cost"] + 1e-6
    assert {t["name"] for t in plan["tables"]} == set(tables)
    for t in plan["tables"]:
        assert 0 <= t["rank"] < 2 and t["hbm_rows"] + t["uvm_rows"] == tables[t["name"]]["rows"]
        cells = sum((s["row_end"] - s["row_start"]) * (s["col_end"] - s["col_start"]) for s in t["shards"])
        assert cells == tables[t["name"]]["rows"] * tables[t["name"]]["dim"]
    capsys.readouterr()
    assert main(["plan", "evaluate", "--plan", str(p)]) == 0
    replayed = json.loads(capsys.readouterr().out)
    # the replay draws ids from the same measured CDFs the planner priced
    assert replayed["max_gpu_ms"] == pytest.approx(plan["max_gpu_cost"], rel=0.05)
    return tables


@pytest.mark.parametrize(
    "name, argv",
    [
        ("criteo-sample/train.tsv", ["--format", "criteo"]),
        ("ml-100k", ["--format", "movielens"]),
        ("hetrec2011-lastfm-2k/user_artists.dat", ["--format", "tsv", "--columns", "user,item,rating", "--header"]),
    ],
)
def test_stats_workload_then_plan(tmp_path, capsys, name, argv):
    src = _need(DATA / name)
    w = tmp_path / "w.json"
    assert main(["data", "stats", str(src), *argv, "--workload", str(w)]) == 0
    tables = _plan_and_check(tmp_path, capsys, w)
    if name.startswith("hetrec"):  # 1,892 users and 17,632 artists, plus the model's reserved row 0
        assert (tables["user"]["rows"], tables["item"]["rows"]) == (1893, 17633)


def test_synthetic_criteo_like_file(tmp_path, capsys):
    tsv, w = tmp_path / "synth.tsv", tmp_path / "w.json"
    assert main(["data", "synth", "--rows", "5000", "--profile", "criteo-kaggle", "--max-cardinality", "2000",
                 "--seed", "0", "--out", str(tsv)]) == 0
    assert main(["data", "stats", str(tsv), "--format", "criteo", "--workload", str(w)]) == 0
    tables = _plan_and_check(tmp_path, capsys, w)
    assert len(tables) == 26 and max(t["rows"] for t in tables.values()) <= 2000
