"""The Data-Genie sweep and training in --quick mode (what CI runs), the LORO machinery on a table
whose answer is known, and the benchmark's data-needed interpolation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sampling.genie import FEATURE_NAMES, DataGenie
from sampling.train_genie import evaluate_candidates, held_out_regret
from tests.unit.test_bench_scripts import load_script

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _records():
    """Four 'real' datasets: where feature log_rows is high, user sampling is best, else random;
    a synthetic dataset of each kind. A dataset-blind estimator must be wrong on half of them."""
    out = []
    for k, (name, group, big) in enumerate((("a", "real", 1), ("b", "real", 0), ("c", "real", 1), ("d", "real", 0),
                                            ("s1", "synthetic", 1), ("s2", "synthetic", 0))):  # fmt: skip
        features = {f: 0.0 for f in FEATURE_NAMES} | {"log_rows": 10.0 * big + 0.1 * k}
        for rate in (0.2, 0.6):
            for method, good in (("random", not big), ("user", big)):
                tau = (0.8 if good else 0.3) + 0.1 * rate + (0.05 if name in "ab" else 0.0)
                out.append({"dataset": name, "group": group, "features": features, "method": method, "rate": rate, "tau": tau})
    return out


def test_leave_one_real_out_on_a_known_table():
    records = _records()
    knn = held_out_regret(records, "a", {"estimator": "knn", "n_neighbors": 1})
    assert knn["regret"] == 0.0 and knn["picks"]["0.2"]["pick"] == "user"
    result = evaluate_candidates(records, {"mean": {"estimator": "mean"}, "knn-1": {"estimator": "knn", "n_neighbors": 1}})
    assert result["real_datasets"] == 4  # synthetic datasets train, never judge
    assert result["mean_regret"]["knn-1"] == 0.0 and result["mean_regret"]["mean"] > 0.2
    assert result["chosen"] == "knn-1" and result["wins_over_mean"] >= 2 and result["nested_regret"] == 0.0
    assert result["shipped"] == "knn-1"  # its nested regret (0) beats the mean's
    tie = evaluate_candidates([r for r in records if r["method"] == "user"], {"mean": {"estimator": "mean"},
                              "knn-1": {"estimator": "knn", "n_neighbors": 1}})  # fmt: skip
    assert tie["chosen"] == "mean"  # one sampler: every estimator ties, and a tie keeps the mean


def test_a_learned_estimator_ships_only_when_its_nested_regret_beats_the_mean():
    from sampling.train_genie import shipped_candidate

    assert shipped_candidate("knn-1", 0.150, 0.165) == "knn-1"
    assert shipped_candidate("knn-1", 0.196, 0.165) == "mean"  # best leave-one-out, worse once nested
    assert shipped_candidate("knn-1", 0.165, 0.165) == "mean"  # a tie keeps the mean


def _run(*args, timeout=600):
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_sweep_and_training_quick(tmp_path):
    records = tmp_path / "records.json"
    _run(SCRIPTS / "sweep_genie.py", "--quick", "--quiet", "--out", records, "--cache", tmp_path / "cache")
    blob = json.loads(records.read_text())
    names = {r["dataset"] for r in blob["records"]}
    assert {"coat-train", "amazon-Appliances_5"} <= names and blob["bounds"]["max_eval_users"] == 200
    assert {r["group"] for r in blob["records"]} == {"real", "synthetic"}
    model = tmp_path / "genie.json"
    proc = _run("-m", "sampling.train_genie", "--quick", "--records", records, "--out", model,
                "--report", tmp_path / "lodo.json", "--png", tmp_path / "lodo.png")  # fmt: skip
    genie = DataGenie.load(model)
    evaluation = genie.info_["evaluation"]
    assert f"chosen: {evaluation['chosen']}" in proc.stdout and f"shipped: {evaluation['shipped']}" in proc.stdout
    assert genie.estimator == {"mean": "mean", "knn-1": "knn"}[evaluation["shipped"]]
    assert set(genie.table_) == names and (tmp_path / "lodo.png").stat().st_size > 0


@pytest.mark.parametrize(
    "curve, tau, expected",
    [({0.2: 0.5, 0.4: 0.9}, 0.7, 0.3), ({0.2: 0.5, 0.4: 0.9}, 0.4, 0.2), ({0.2: 0.5, 0.4: 0.9}, 0.95, None),
     ({0.2: 0.9, 0.4: 0.6, 0.8: 1.0}, 0.8, 0.2)],
)  # fmt: skip
def test_rate_needed_interpolates(curve, tau, expected):
    got = load_script("bench_sampling").rate_needed(curve, tau)
    assert got == (pytest.approx(expected) if expected is not None else None)
