import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fedrec.cli import build_parser, main
from sharding.workload import synthetic_workload

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def workload_file(tmp_path):
    w = synthetic_workload([200_000, 50_000, 3000, 40, 7], zipf=(0.9, 1.2), dim=32, seed=2)
    path = tmp_path / "w.json"
    w.to_json(path)
    return path, w


def test_plan_and_evaluate(tmp_path, workload_file, capsys):
    wpath, w = workload_file
    out, pt, png = tmp_path / "p.json", tmp_path / "p.pt", tmp_path / "p.png"
    argv = ["plan", "--workload", str(wpath), "--gpus", "2", "--hbm-gb", "0.01", "--out", str(out)]
    assert main([*argv, "--torchrec-plan", str(pt), "--plot", str(png)]) == 0
    assert "recshard" in capsys.readouterr().out
    plan = json.loads(out.read_text())
    rows = {t.name: t.rows for t in w}
    assert {t["name"] for t in plan["tables"]} == set(rows)
    for t in plan["tables"]:
        assert 0 <= t["rank"] < 2 and t["hbm_rows"] + t["uvm_rows"] == rows[t["name"]]
    assert len(plan["gpu_cost"]) == 2 and plan["max_gpu_cost"] == max(plan["gpu_cost"])
    assert max(plan["gpu_hbm_bytes"]) <= 0.01 * 0.85 * 2**30
    assert plan["solver"]["gap"] >= 0 and "lp_bound" in plan["solver"]
    assert png.stat().st_size > 1000
    sp = torch.load(pt, weights_only=False)
    assert set(sp.plan[""]) >= {"t3", "t4"}

    assert main(["plan", "evaluate", "--plan", str(out), "--workload", str(wpath), "--samples", "5000"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["max_gpu_ms"] > 0 and metrics["imbalance"] >= 1 and metrics["fits_hbm_budget"]
    assert metrics["trace"] == {"zipf": 5}

    trace = tmp_path / "t.npz"
    import numpy as np

    np.savez(trace, **{t.name: np.zeros(10, dtype=np.int64) for t in w})
    assert main(["plan", "evaluate", "--plan", str(out), "--workload", str(wpath), "--trace", str(trace)]) == 0
    assert json.loads(capsys.readouterr().out)["uvm_accesses"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("planner", ["greedy", "size", "lookup", "size-lookup", "random"])
def test_every_fast_planner_from_cli(tmp_path, workload_file, planner):
    wpath, _ = workload_file
    out = tmp_path / "p.json"
    assert main(["plan", "--workload", str(wpath), "--gpus", "3", "--hbm-gb", "0.05", "--planner", planner, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["planner"] == planner


def test_errors_are_one_line_exit_2(tmp_path, workload_file, capsys):
    wpath, _ = workload_file
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tables": [{"name": "C9", "rows": 10, "dim": 4, "access_cdf": [[0, 0], [0.5, 0.9], [0.4, 1], [1, 1]]}]}))
    out = str(tmp_path / "p.json")
    cases = [
        (["plan", "--workload", str(bad), "--out", out], ["C9", "not monotone"]),
        (["plan", "--workload", str(wpath), "--gpus", "2", "--hbm-gb", "0.001", "--uvm-gb", "0.001", "--out", out], ["'t0'", "GB"]),
        (["plan", "--workload", str(wpath), "--gpus", "0", "--out", out], ["--gpus"]),
        (["plan", "--workload", str(wpath)], ["--out"]),
        (["plan", "evaluate", "--plan", str(tmp_path / "missing.json"), "--workload", str(wpath)], ["cannot read plan"]),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(w in err for w in words), err


def test_help_has_examples():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    plan = sub.choices["plan"]
    assert "example" in plan.epilog
    actions = next(a for a in plan._actions if a.__class__.__name__ == "_SubParsersAction")
    assert "example" in actions.choices["evaluate"].epilog
    with pytest.raises(SystemExit) as exit_:
        main(["plan", "evaluate", "--help"])
    assert exit_.value.code == 0


def test_bench_quick_smoke(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_planner.py"), "--quick", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        env={"PATH": "/usr/bin:/bin", "FEDREC_DATA": str(tmp_path / "no-data"), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "bench.json").read_text())
    names = [w["workload"] for w in results["workloads"]]
    assert names[0] == "criteo-tb" and len(names) == 2  # the real-data workloads are skipped without data
    tb = {r["planner"]: r for r in results["workloads"][0]["results"]}
    assert tb["recshard"]["max_gpu_ms"] < tb["torchrec"]["max_gpu_ms"]
    assert (tmp_path / "bench.png").exists()
