"""scripts/bench_planner_measured.py: the least-squares fit of the cost model's constants, and a
--quick run end to end (plans through DMP on 2 CPU ranks, calibration, Spearman)."""

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from tests.unit.test_bench_scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_planner_measured")


def test_fit_recovers_known_constants(bench):
    rng = np.random.default_rng(0)
    theta = np.array([2e-7, 3e-5, 4e-7, 0.8, 5.0])  # ms per byte, per id, per comm byte, per shard; per step
    feats = []
    for _ in range(12):
        f = np.c_[rng.uniform(1e6, 5e7, 2), rng.uniform(1e4, 1e5, 2), rng.uniform(1e5, 5e6, 2), rng.integers(5, 30, 2), [1, 1]]
        feats.append(f)
    per_rank = [list(f[:, :-1] @ theta[:-1] + theta[-1]) for f in feats]
    slowest = [max(r) for r in per_rank]
    got = bench.fit(feats, slowest, per_rank)
    np.testing.assert_allclose([got["theta"][k] for k in bench.PARAMS], theta, rtol=1e-6)
    assert got["r2"] == pytest.approx(1.0) and got["rmse_ms"] == pytest.approx(0.0, abs=1e-9)
    # from the slowest rank alone, the predictions still match
    maxfit = bench.fit(feats, slowest)
    np.testing.assert_allclose(maxfit["predicted_ms"], slowest, rtol=1e-3)
    profile = bench.profile_of(got["theta"])
    assert profile["hbm_gbps"] == pytest.approx(1000 / (2e-7 * 2**30))
    assert profile["table_fixed_us"] == pytest.approx(800.0) and profile["id_ns"] == pytest.approx(30.0)


def test_quick_run(bench, tmp_path):
    assert bench.main(["--quick", "--out-dir", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
    calib = out["calibration"]
    theta = np.array([calib["fit"]["theta"][k] for k in bench.PARAMS])
    (entry,) = out["workloads"]
    planners = [r["planner"] for r in entry["rows"]]
    assert planners == ["recshard", "recshard-tw", "size", "random-0"]
    rows = [r for r in entry["rows"] if r["same_plan_as"] is None]
    assert entry["distinct_plans"] == len(rows) >= 2
    for r in entry["rows"]:
        # predictions are the calibrated cost model's, and a plan's time is its slowest rank's
        assert r["predicted_ms"] == pytest.approx(bench.predicted(theta, np.array(r["features"])))
        assert r["max_cpu_ms"] == max(r["rank_cpu_ms"]) and r["max_step_ms"] == max(r["rank_step_ms"])
    expected = spearmanr([r["predicted_ms"] for r in rows], [r["max_cpu_ms"] for r in rows]).statistic
    assert entry["spearman"] == pytest.approx(expected, nan_ok=True)
