"""The benchmark scripts run end to end in ``--quick`` mode and write the JSON that README numbers
come from; their hand-written pieces (vectorised hex parsing for pandas and pyarrow, the table)
agree with plain Python."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name: str):
    """Import scripts/NAME.py as a module (scripts/ is not a package; its helpers import by name)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_test_{name}", SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / name), "--quick", *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_bench_data_quick(tmp_path):
    rows = 20_000
    proc = run_script("bench_data.py", "--rows", str(rows), "--chunk-rows", "6000", "--out", str(tmp_path))
    record = json.loads((tmp_path / "bench_data.json").read_text())

    assert list(record["engines"]) == ["ours", "pandas", "pyarrow", "polars"]
    assert record["file"]["rows"] == rows and record["file"]["bytes"] > rows * 100
    for name, r in record["engines"].items():
        assert r["rows"] == rows, name
        assert r["seconds"] > 0 and r["rows_per_second"] == pytest.approx(rows / r["seconds"])
        assert r["cpu_seconds"] > 0
        assert 20 < r["rss_after_import_mb"] <= r["peak_rss_mb"] < 4096, name
        t = r["totals"]
        assert 0.1 * rows < t["positives"] < 0.5 * rows  # generated at a 25% positive rate
        assert 0 < t["sparse_missing"] < 0.5 * rows * 26
        assert t["dense_sum"] > 0 and t["sparse_sum"] > 0
    # Every engine produced the same labels, dense values, ids and missing ids.
    assert record["outputs_agree"] is True
    goals = record["targets"]
    assert goals["speedup"]["target"] == 3.0 and goals["memory"]["target"] == 0.5
    assert goals["speedup"]["pass"] == (goals["speedup"]["value"] >= 3.0) and goals["speedup"]["value"] > 0
    assert goals["memory"]["pass"] == (goals["memory"]["value"] <= 0.5) and goals["memory"]["value"] > 0
    assert (tmp_path / "bench_data.png").stat().st_size > 5_000
    assert "target rows/s >= 3x pandas" in proc.stdout and "outputs agree across engines: yes" in proc.stdout


def test_bench_central_quick(tmp_path, ml100k_path):
    proc = run_script("bench_central.py", "--data", str(ml100k_path), "--out", str(tmp_path))
    record = json.loads((tmp_path / "bench_central.json").read_text())

    assert record["config"]["epochs"] == 1 and len(record["history"]) == 1
    assert record["train_rows"] + record["validation_rows"] + record["test_rows"] == record["max_ratings"] == 20_000
    epoch = record["history"][0]
    assert record["validation_rows"] > 0 and epoch["validation_auc"] != epoch["auc"]
    assert 0.55 < epoch["auc"] < 1.0  # measured 0.64 after one epoch on 16k ratings
    assert 0 < epoch["logloss"] < 1.0 and 0 < epoch["ne"] < 1.2
    assert record["final"]["auc"] == epoch["auc"] and record["final"]["epoch"] == 1
    assert record["samples_per_second"] == pytest.approx(record["train_rows"] / record["train_seconds"])
    assert (tmp_path / "bench_central.png").stat().st_size > 5_000
    assert "test AUC" in proc.stdout and "samples/s" in proc.stdout


def test_hex_parsers_match_python_int():
    bench = load_script("bench_data")
    import pyarrow as pa

    rng = np.random.default_rng(0)
    values = [format(int(v), "08x") for v in rng.integers(0, 2**32, 500)] + [
        "0",
        "Ff",
        "7fffffff",
        "00000000",
    ]
    expected = np.array([int(v, 16) for v in values])

    digits = np.array(values, dtype="S8").view(np.uint8).reshape(len(values), 8)
    assert (bench.hex_digits_to_int(digits) == expected).all()

    arr = pa.array(values + [None])[1:]  # a slice: exercises the array offset
    got = bench._arrow_hex(arr, 1000)
    assert got.null_count == 1
    assert got.to_pylist()[:-1] == (expected[1:] % 1000).tolist()


def test_format_table_aligns_and_formats():
    common = load_script("_bench_common")
    text = common.format_table(
        ["engine", "rows", "rows/s", "auc"],
        [["ours", 2_000_000, 123456.7, 0.78123], ["pandas", 5, 99.5, 0.5]],
    )
    lines = text.splitlines()
    assert lines[0].split() == ["engine", "rows", "rows/s", "auc"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["ours", "2,000,000", "123,457", "0.7812"]
    assert lines[3].split() == ["pandas", "5", "100", "0.5000"]
    assert len({len(line) for line in lines}) == 1  # right-aligned numbers: every line is as wide


def _run_json(total_split: tuple[float, float, float], co2e: tuple[float, float]) -> dict:
    client, server, network = total_split
    return {"final_auc": 0.7, "energy": {"client_joules": client, "server_joules": server, "network_joules": network,
                                         "total_joules": client + server + network, "host_joules": 10.0},
            "co2e_grams": sum(co2e), "co2e": {"operational_grams": co2e[0], "embodied_grams": co2e[1]},
            "energy_source": "estimated"}


def test_energy_table_groups_seeds_and_skips_runs_without_energy(tmp_path):
    energy_table = load_script("energy_table")
    runs = tmp_path / "bench_x" / "runs"
    runs.mkdir(parents=True)
    (runs / "topk-5-s0.json").write_text(json.dumps(_run_json((100.0, 300.0, 600.0), (1.0, 0.5))))
    (runs / "topk-5-s1.json").write_text(json.dumps(_run_json((300.0, 300.0, 400.0), (3.0, 0.5))))
    (runs / "topk-5-s2.json").write_text(json.dumps({"final_auc": 0.7}))  # predates energy accounting
    (runs / "none-s0.json").write_text(json.dumps({"final_auc": 0.7}))
    rows = energy_table.main(["--results", str(tmp_path), "--out", str(tmp_path / "out")])
    assert [(r.bench, r.setting, r.runs, r.without_energy) for r in rows] == [("bench_x", "topk-5", 2, 1)]
    row = rows[0]
    assert row.total_kj == pytest.approx(1.0)
    assert (row.client_pct, row.server_pct, row.network_pct) == pytest.approx((20.0, 30.0, 50.0))
    assert row.co2e_grams == pytest.approx(2.5) and row.embodied_grams == pytest.approx(0.5)
    assert json.loads((tmp_path / "out" / "energy_table.json").read_text())["rows"][0]["setting"] == "topk-5"
    assert (tmp_path / "out" / "energy_table.png").stat().st_size > 0


def _history(aucs, sim_step=10.0, bytes_per_round=1_000_000):
    return [{"round": i + 1, "sim_seconds": sim_step * (i + 1), "auc": a, "validation_auc": a - 0.01,
             "bytes_up": bytes_per_round // 2, "bytes_down": bytes_per_round // 2} for i, a in enumerate(aucs)]


def test_fedbench_mean_std_leaves_out_seeds_that_never_got_there():
    fedbench = load_script("_fedbench")
    assert fedbench.mean_std([2.0, None, 4.0]) == (3.0, pytest.approx(2 ** 0.5))
    assert fedbench.mean_std([None, None]) == (None, None)
    assert fedbench.mean_std([5.0]) == (5.0, None)
    assert fedbench.pm(0.5, 0.25, ".2f") == "0.50 ± 0.25" and fedbench.pm(None, None) == "-"


def test_bench_async_summary_is_per_seed_against_the_same_seeds_sync_run():
    bench = load_script("bench_async")
    # seed 0: method reaches 0.6 in round 2 (20 s), sync in round 4 (40 s): 2x; seed 1: 3 vs 3 rounds: 1x.
    runs = [{"history": _history([0.5, 0.6, 0.62]), "staleness": 2.0},
            {"history": _history([0.5, 0.55, 0.6]), "staleness": 4.0}]
    refs = [{"history": _history([0.5, 0.55, 0.58, 0.6])}, {"history": _history([0.5, 0.55, 0.6])}]
    row = bench.summarize("m", runs, refs, [0.6, 0.7])
    assert row["final_auc"] == pytest.approx(0.61) and row["final_auc_std"] == pytest.approx(0.02 / 2 ** 0.5)
    assert row["validation_auc"] == pytest.approx(0.60)
    assert row["staleness"] == 3.0
    assert row["t@0.6"] == pytest.approx(25.0) and row["reached@0.6"] == "2/2"
    assert row["speedup@0.6"] == pytest.approx(1.5)  # mean of 2x and 1x, not 40+30 / 20+30
    assert row["comm@0.6"] == pytest.approx(1.5) and row["MB@0.6"] == pytest.approx(2.5)
    assert row["reached@0.7"] == "0/2" and row["t@0.7"] is None and row["t@0.7_pm"] == "-"


def test_bench_fel_summary_averages_each_clustering_over_its_feasible_seeds():
    bench = load_script("bench_fel")
    rows = [{"run": "ml100k/tier", "seed": 0, "ensemble": 0.70, "ensemble_validation": 0.69, "base": 0.68,
             "gain_auc": 2.0, "ctl_auc": 1.0, "gain_ne": 3.0},
            {"run": "ml100k/tier", "seed": 1, "ensemble": 0.72, "ensemble_validation": 0.71, "base": 0.70,
             "gain_auc": 4.0, "ctl_auc": 3.0, "gain_ne": 5.0},
            {"run": "criteo/data", "seed": 0, "subs": "infeasible: too big"}]
    summary = bench.summarize(rows)
    assert [s["run"] for s in summary] == ["ml100k/tier"]
    s = summary[0]
    assert s["seeds"] == 2 and s["ensemble"] == pytest.approx(0.71) and s["gain_auc"] == pytest.approx(3.0)
    assert s["gain_auc_std"] == pytest.approx(2 ** 0.5) and s["gain_auc_pm"] == "+3.00 ± +1.41"


def test_bench_async_summary_counts_a_diverged_seed_without_a_final_auc():
    bench = load_script("bench_async")
    runs = [{"history": _history([0.5, 0.6, 0.62]), "staleness": 2.0},
            {"history": _history([0.5, 0.61]), "staleness": None, "diverged": 7}]
    refs = [{"history": _history([0.5, 0.6])}, {"history": _history([0.5, 0.6])}]
    row = bench.summarize("m", runs, refs, [0.6])
    assert row["final_auc"] == pytest.approx(0.62) and row["final_auc_std"] is None  # the diverged seed has none
    assert row["diverged"] == "1/2 (steps 7)" and row["staleness"] == 2.0
    assert row["reached@0.6"] == "2/2"  # it reached 0.6 before diverging


def test_bench_robust_cache_keys_survive_each_compatible_addition():
    """Every field in bench_robust's COMPATIBLE_ADDITIONS is in its workload's config at the listed
    value (else a renamed field or changed default silently drops the cells cached before it), and
    the key without all of them differs from the current one."""
    from fedrec.config import config_to_dict, load_config

    robust = load_script("bench_robust")
    base = load_config(SCRIPTS.parent / "configs" / "ml100k_fedyogi_tuned.yaml")
    doc = config_to_dict(base)
    for group in robust.COMPATIBLE_ADDITIONS:
        assert robust._without(doc, group) is not None, group
    docs = robust.config_docs(base)
    assert docs[0] == json.loads(json.dumps(doc, default=str))
    assert len(docs) == 2 ** len(robust.COMPATIBLE_ADDITIONS)  # every combination dropped, all distinct


def test_bench_compression_chooses_each_methods_lr_on_validation_and_a_diverged_run_loses():
    bench = load_script("bench_compression")
    assert bench.choose_lr({1.0: 0.5, 0.5: 0.64, 0.3: 0.61}) == 0.5  # 0.5: lr 1.0 diverged (scored at chance)
    assert bench.choose_lr({1.0: 0.63, 0.5: 0.59}) == 1.0
    assert bench.choose_lr({1.0: 0.6, 0.5: 0.6}) == 1.0  # a tie keeps the larger, the configs' lr


def test_tune_private_chooses_on_the_mean_over_seeds_and_skips_a_point_that_diverged_on_one():
    tune = load_script("tune_private")
    from types import SimpleNamespace as R

    points = [{"strategy.row_mean": "touchers"}, {"strategy.row_mean": "cohort"}, {"strategy.server_lr": 1.0}]
    t, c, big = (tune.point_name(p) for p in points)

    def res(auc, ndcg):
        return R(validation_auc=auc, validation_ndcg_at_10=ndcg)

    by_seed = {0: ({t: res(0.80, 0.041), c: res(0.81, 0.058), big: res(0.70, 0.090)}, {}),
               1: ({t: res(0.80, 0.043), c: res(0.60, 0.011)}, {big: 12}),
               2: ({t: res(0.81, 0.047), c: res(0.81, 0.054)}, {big: 7})}
    rows, best = tune.summarize(points, by_seed, "validation_ndcg_at_10")
    assert best == t  # cohort's best seed is not its mean (0.041 < 0.0437); the diverged point is out
    assert rows[0]["validation_ndcg_at_10"] == pytest.approx(0.131 / 3)
    assert rows[1]["validation_ndcg_at_10_by_seed"] == [0.058, 0.011, 0.054]
    assert rows[2]["validation_ndcg_at_10"] is None and rows[2]["diverged_round"] == [12, 7]
    assert tune.summarize(points, by_seed, "validation_auc")[1] == t  # 0.8033 against 0.74
    by_seed[1][0][c] = res(0.79, 0.050)  # cohort now leads on the mean (0.054); its lowest AUC is 0.79
    assert tune.summarize(points, by_seed, "validation_ndcg_at_10", min_auc=0.79)[1] == c
    rows, best = tune.summarize(points, by_seed, "validation_ndcg_at_10", min_auc=0.795)
    assert best == t and rows[1]["below_min_auc"] and not rows[0]["below_min_auc"]  # touchers' lowest is 0.80


def test_comma_lists_parse_or_stop_with_a_usage_error_naming_the_option(capsys):
    import argparse

    sys.path.insert(0, str(SCRIPTS))
    try:
        from _fedbench import comma_list
    finally:
        sys.path.remove(str(SCRIPTS))
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=comma_list(int))
    ap.add_argument("--lrs", type=comma_list(float))
    assert ap.parse_args(["--seeds", "0,1,2", "--lrs", "1,0.5"]) == argparse.Namespace(seeds=[0, 1, 2], lrs=[1.0, 0.5])
    with pytest.raises(SystemExit) as exit_:
        ap.parse_args(["--seeds", "0,x"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--seeds" in err and "'0,x'" in err and "ints" in err


def test_bench_distill_rank_reference_is_puresvd_as_a_fraction_of_full_data():
    """On data made of 4 disjoint user/item blocks (each user holds out one item of its own block),
    rank 4 spans every block and ranks each user's own block first; rank 1 spans one block only."""
    import scipy.sparse as sp

    bench = load_script("bench_distill")
    rng = np.random.default_rng(0)
    blocks, users, items = 4, 12, 10
    x = np.zeros((blocks * users, blocks * items))
    held = np.zeros_like(x)
    for b in range(blocks):
        x[b * users:(b + 1) * users, b * items:(b + 1) * items] = rng.random((users, items)) < 0.5
    for u in range(blocks * users):
        out = rng.choice(np.flatnonzero(x[u]))
        held[u, out], x[u, out] = 1.0, 0.0
    inputs, targets = sp.csr_matrix(x), sp.csr_matrix(held)
    full = {"infinity-ae": {"val": 0.5, "test": 0.25}}
    r4 = bench.rank_reference(4, inputs, targets, inputs, targets, full)
    r1 = bench.rank_reference(1, inputs, targets, inputs, targets, full)
    assert r4["test"] == pytest.approx(2 * r4["val"])  # each split over its own full-data score
    # rank 4 ranks the unseen items of the user's block (about 6) above the other blocks' 30, so the
    # held-out item sits about 6th at worst: mean nDCG@10 at least 1/log2(7)
    assert r4["val"] * 0.5 >= 1 / np.log2(7) and r4["val"] > r1["val"] + 0.3
    assert bench.rank_reference(40, inputs, targets, inputs, targets, full) is None  # m >= users


def test_bench_distill_tune_scores_finalists_at_every_budget_and_learns_each_start_once(monkeypatch):
    """A stand-in Distill-CF whose validation scores are set by hand: the whole grid runs at the
    first budget, only settings within the margin of its best run at the second, the mean over
    budgets decides, and ``best`` reuses the users and nmf runs (keeping the higher own score)."""
    bench = load_script("bench_distill")
    # validation fraction of each (init, reg) per budget; own early-stopping score decides "best"
    val = {(0.01, "users", 1): 0.80, (0.01, "nmf", 1): 0.85, (0.01, "users", 2): 0.70, (0.01, "nmf", 2): 0.849,
           (0.1, "users", 1): 0.95, (0.1, "nmf", 1): 0.90, (0.1, "nmf", 2): 0.99}  # fmt: skip
    own = {"users": 0.2, "nmf": 0.1}  # users wins Distill-CF's own validation: "best" keeps it
    fits = []

    class FakeDistill:
        def __init__(self, budget, seed, init, reg):
            self.key, self.init_ = (budget, init, reg), init

        def fit(self, log):
            fits.append(self.key)
            self.summary_, self.val_ndcg_, self.best_step_ = self.key, own[self.init_], 0
            return self

    monkeypatch.setattr(bench, "TUNE_GRID", {"init": ("users", "nmf", "best"), "reg": (1, 2)})
    monkeypatch.setattr(bench, "DistillCF", FakeDistill)
    monkeypatch.setattr(bench, "matrices", lambda data: (None, "fit", None, None, None, "log"))
    monkeypatch.setattr(bench, "validated", lambda name, rows, fit, v: (None, 1.0 if rows == "fit" else val[rows]))
    result = bench.tune(None, budgets=(0.01, 0.1), seeds=(0,), margin=0.002)
    first = {(r["init"], r["reg"]): r["budgets"]["0.01"]["val_fraction"] for r in result["grid"]}
    assert first[("best", 1)] == 0.80 and first[("best", 2)] == 0.70  # the users run, its own score higher
    finalists = {(r["init"], r["reg"]) for r in result["grid"] if "0.1" in r["budgets"]}
    assert finalists == {("nmf", 1), ("nmf", 2)} and result["finalists"] == 2  # 0.85 and 0.849 (margin 0.002)
    assert (result["best"]["init"], result["best"]["reg"]) == ("nmf", 2)  # mean (0.849 + 0.99) / 2 beats 0.875
    assert sorted(set(fits)) == sorted(fits)  # every (budget, start, reg) learned once, "best" included
