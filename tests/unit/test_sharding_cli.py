import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fedrec.cli import build_parser, main
from sharding.cost import CostModel
from sharding.plan import Plan
from sharding.topology import Topology
from sharding.workload import TableWorkload, Workload, synthetic_workload

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def workload_file(tmp_path):
    w = synthetic_workload([200_000, 50_000, 3000, 40, 7], zipf=(0.9, 1.2), dim=32, seed=2)
    path = tmp_path / "w.json"
    w.to_json(path)
    return path, w


def test_plan_and_evaluate(tmp_path, workload_file, capsys):
    wpath, w = workload_file
    out, pt, png = tmp_path / "new" / "p.json", tmp_path / "new" / "p.pt", tmp_path / "img" / "p.png"
    argv = ["plan", "--workload", str(wpath), "--gpus", "2", "--hbm-gb", "0.01", "--out", str(out)]
    assert main([*argv, "--torchrec-plan", str(pt), "--plot", str(png)]) == 0  # folders are made
    assert "recshard" in capsys.readouterr().out
    plan = json.loads(out.read_text())
    rows = {t.name: t.rows for t in w}
    assert plan["version"] == 2 and {t["name"] for t in plan["tables"]} == set(rows)
    for t in plan["tables"]:
        assert 0 <= t["rank"] < 2 and t["hbm_rows"] + t["uvm_rows"] == rows[t["name"]]
    assert len(plan["gpu_cost"]) == 2 and plan["max_gpu_cost"] == max(plan["gpu_cost"])
    assert max(plan["gpu_hbm_bytes"]) <= 0.01 * 0.85 * 2**30
    topo = Topology.from_dict(plan["topology"])
    solver = plan["solver"]
    assert solver["lp_bound"] == pytest.approx(CostModel(w, topo).fluid_bound())
    assert plan["max_gpu_cost"] >= solver["lp_bound"] - 1e-9
    assert solver["gap"] == pytest.approx((solver["objective"] - solver["best_bound"]) / solver["objective"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sp = torch.load(pt, weights_only=False)
    assert set(sp.plan[""]) >= {"t3", "t4"}

    assert main(["plan", "evaluate", "--plan", str(out), "--samples", "20000"]) == 0  # workload read from the plan
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["max_gpu_ms"] == max(metrics["gpu_ms"])
    assert metrics["imbalance"] == pytest.approx(max(metrics["gpu_ms"]) / np.mean(metrics["gpu_ms"]))
    # the replay samples Zipf ids, the planner saw the 64-point CDF: they agree to a few percent
    assert metrics["max_gpu_ms"] == pytest.approx(plan["max_gpu_cost"], rel=0.05)
    assert metrics["trace"] == {"zipf": 5} and metrics["fits_hbm_budget"]

    trace = tmp_path / "t.npz"
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
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"tables": [{"name": "C3", "rows": 2.5, "dim": 4}]}))
    binary = tmp_path / "bin.json"
    binary.write_bytes(Path(sys.executable).resolve().read_bytes()[:600])
    out = str(tmp_path / "p.json")
    cases = [
        (["plan", "--workload", str(bad), "--out", out], ["C9", "not monotone"]),
        (["plan", "--workload", str(strict), "--out", out], ["'C3'", "field 'rows'", "valid integer"]),
        (["plan", "--workload", str(binary), "--out", out], [str(binary), "binary file"]),
        (["plan", "--workload", str(wpath), "--gpus", "2", "--hbm-gb", "0.001", "--uvm-gb", "0.001", "--out", out], ["'t0'", "GB"]),
        (["plan", "--workload", str(wpath), "--gpus", "0", "--out", out], ["--gpus"]),
        (["plan", "--workload", str(wpath)], ["--out"]),
        (["plan", "--workload", str(wpath), "--out", out, "--plot", str(tmp_path / "p.gif")], ["--plot", ".png, .pdf, .svg"]),
        (["plan", "--workload", str(wpath), "--out", str(tmp_path / "p.txt")], ["--out", ".json"]),
        (["plan", "evaluate", "--plan", str(tmp_path / "missing.json"), "--workload", str(wpath)], ["cannot read plan"]),
        (["plan", "evaluate", "--plan", str(binary)], [str(binary), "binary file"]),
        (["plan", "run", "--plan", str(binary)], [str(binary), "binary file"]),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(w in err for w in words), err
        assert not Path(out).exists(), argv  # nothing half-written


def test_failing_extra_output_leaves_no_plan(tmp_path, workload_file, monkeypatch, capsys):
    import sharding.plot

    def broken(*args, **kwargs):
        raise OSError("disk full")

    wpath, _ = workload_file
    out = tmp_path / "p.json"
    monkeypatch.setattr(sharding.plot, "plot_plan", broken)
    with pytest.raises(OSError):
        main(["plan", "--workload", str(wpath), "--out", str(out), "--plot", str(tmp_path / "p.png")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json"]  # no plan.json, no temporaries


def test_help_has_examples():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    plan = sub.choices["plan"]
    assert "example" in plan.epilog
    actions = next(a for a in plan._actions if a.__class__.__name__ == "_SubParsersAction")
    assert "example" in actions.choices["evaluate"].epilog and "--world-size 2" in actions.choices["run"].epilog
    with pytest.raises(SystemExit) as exit_:
        main(["plan", "run", "--help"])
    assert exit_.value.code == 0


def test_plan_run_two_ranks_under_dmp(tmp_path, capsys):
    """A 2-rank DistributedModelParallel run on CPU/gloo of a plan with every sharding type and
    hot/cold bands: table-wise 't' on rank 1, column-wise 'c' on both, row-wise 'r'."""
    from sharding.run import CPU_PROFILE, RunConfig, predict, scale_plan

    w = Workload(
        [
            TableWorkload("t", 400, 8, access_cdf=[[0, 0], [0.1, 0.7], [1, 1]]),
            TableWorkload("c", 600, 16, access_cdf=[[0, 0], [0.05, 0.5], [1, 1]]),
            TableWorkload("r", 1000, 8, access_cdf=[[0, 0], [0.2, 0.8], [1, 1]]),
        ]
    )
    topo = Topology(gpus=2, hbm_gb=1.0)
    d = {
        "version": 2,
        "planner": "hand",
        "topology": topo.to_dict(),
        "workload": w.to_dict(),
        "tables": [
            {"name": "t", "shards": [{"rank": 1, "row_start": 0, "row_end": 400, "col_start": 0, "col_end": 8, "hbm_rows": 40, "uvm_rows": 360}]},
            {"name": "c", "shards": [
                {"rank": 0, "row_start": 0, "row_end": 600, "col_start": 0, "col_end": 8, "hbm_rows": 60, "uvm_rows": 540},
                {"rank": 1, "row_start": 0, "row_end": 600, "col_start": 8, "col_end": 16, "hbm_rows": 60, "uvm_rows": 540}]},
            {"name": "r", "shards": [
                {"rank": 0, "row_start": 0, "row_end": 500, "col_start": 0, "col_end": 8, "hbm_rows": 100, "uvm_rows": 400},
                {"rank": 1, "row_start": 500, "row_end": 1000, "col_start": 0, "col_end": 8, "hbm_rows": 100, "uvm_rows": 400}]},
        ],
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(d))
    out = tmp_path / "runs" / "run.json"
    argv = ["plan", "run", "--plan", str(path), "--world-size", "2", "--steps", "3", "--warmup", "1",
            "--batch-size", "16", "--scale", "0.5", "--json", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    assert r["world_size"] == 2 and r["device"] == "cpu" and len(r["rank_step_ms"]) == 2
    assert r["max_step_ms"] == max(r["rank_step_ms"]) and min(r["rank_step_ms"]) > 0
    plan = Plan.from_dict(d)
    small, scaled = scale_plan(w, plan, topo, 0.5)
    assert [t.rows for t in small] == [200, 300, 500]
    assert scaled.by_name()["r"].shards[1].hbm_rows == 50  # the hot share of each block is kept
    config = RunConfig(world_size=2, batch_size=16)
    assert r["predicted_max_ms"] == pytest.approx(predict(small, scaled, topo, config, CPU_PROFILE).max(), rel=1e-5)
    # every sample has one id per table (coverage 1, pooling 1): 32 ids per table and step
    lookups = r["rank_lookups"]
    assert sum(lookups) == pytest.approx(32 * (1 + 2 + 1))  # t, two slices of c, r's blocks together
    assert 32 < lookups[0] < 64 and 64 < lookups[1] < 96  # rank 0: c's slice + part of r; rank 1: t, c, rest of r


def test_plan_run_refuses_a_mismatched_world_size(tmp_path, workload_file, capsys):
    wpath, _ = workload_file
    out = tmp_path / "p.json"
    assert main(["plan", "--workload", str(wpath), "--gpus", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["plan", "run", "--plan", str(out), "--world-size", "3"]) == 2
    assert "--world-size 2" in capsys.readouterr().err
    assert main(["plan", "run", "--plan", str(out), "--scale", "2"]) == 2
    assert "--scale" in capsys.readouterr().err


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
