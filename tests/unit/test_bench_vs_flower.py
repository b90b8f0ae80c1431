"""The pure parts of scripts/bench_vs_flower.py and scripts/_flower_app.py: one config source for both
frameworks, Flower's sampling and FedAvg matching fedrec's whole-table FedAvg, and the table maths.
Nothing here creates the Flower venv or imports flwr."""

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from data_pipeline.features import interaction_examples
from data_pipeline.partition import natural_partition
from fedrec.client.config import ClientTrainConfig
from fedrec.client.data import ClientData
from fedrec.client.local import LocalTrainer
from fedrec.config import config_from_dict, config_to_dict
from fedrec.model import ModelConfig
from fedrec.runtime.run import FederatedRun
from fedrec.updates import AggregatedUpdate
from tests.factories import toy_interactions

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import _flower_app as fa  # noqa: E402
import bench_vs_flower as bench  # noqa: E402

CONFIG = ROOT / "configs" / "ml100k_tuned.yaml"


def _cfg(rounds=30, clients=50):
    return bench.bench_config(CONFIG, rounds, clients)


def test_bench_config_is_the_yaml_workload_with_the_benchmark_rounds():
    from fedrec.config import load_config

    tuned = load_config(CONFIG)
    cfg = _cfg(7, 12)
    assert (cfg.rounds, cfg.clients_per_round, cfg.eval_every) == (7, 12, 7)
    assert cfg.client == tuned.client and cfg.strategy == tuned.strategy and cfg.model == tuned.model
    assert cfg.data == tuned.data and cfg.client.proximal_mu == 0.0
    assert tuple(cfg.data.features) == ("item", "occupation", "gender", "age_bucket")
    assert all(t.dropout == 0 for t in cfg.tiers.tiers)  # every selected client reports, as in Flower
    assert cfg.deadline is None and cfg.over_selection == 0


def test_flower_gets_the_same_config_through_the_spec_file():
    cfg = _cfg()
    spec = json.loads(json.dumps({"config": config_to_dict(cfg), "cpus": 2}, default=str))
    flower_cfg = config_from_dict(spec["config"])  # what _flower_app reconstructs
    bench.check_same_workload(cfg, flower_cfg)
    bench.check_same_workload(cfg, {**spec["config"], "a_newer_field": 1})  # the dict Flower reports back
    assert flower_cfg.client == cfg.client and flower_cfg.model == cfg.model and flower_cfg.data == cfg.data


def test_fedrec_variants_change_execution_not_the_workload():
    cfg = _cfg()
    for overrides in bench.FEDREC_VARIANTS.values():
        v = bench.variant(cfg, overrides)
        assert bench.workload(v) == bench.workload(cfg)
    assert bench.variant(cfg, {"sparse_updates": False}).client.sparse_updates is False
    assert bench.variant(cfg, {"batched": False}).client.batched is False


def test_a_different_hyper_parameter_is_caught():
    cfg = _cfg()
    with pytest.raises(ValueError, match="client"):
        bench.check_same_workload(cfg, cfg.with_(**{"client.lr": cfg.client.lr * 2}))
    with pytest.raises(ValueError, match="rounds"):
        bench.check_same_workload(cfg, cfg.with_(rounds=3))


@pytest.mark.parametrize("change, word", [
    (lambda c: c.with_(**{"strategy.name": "fedavgm"}), "strategy"),
    (lambda c: c.with_(**{"strategy.name": "fedavg", "strategy.server_lr": 0.5}), "server_lr"),
    (lambda c: c.with_(**{"client.proximal_mu": 0.01}), "proximal_mu"),
    (lambda c: c.with_(deadline=5.0), "dropout"),
    (lambda c: c.with_(sampling="tier-stratified"), "sampling"),
])
def test_configs_flower_cannot_run_the_same_way_are_refused(change, word):
    with pytest.raises(ValueError, match=word):
        bench.check_flower_expressible(change(_cfg()))


def test_flower_samples_exactly_clients_per_round():
    n = 943
    for k in range(1, n + 1):
        fraction, minimum = fa.flower_sampling(n, k)
        assert max(int(n * fraction), minimum) == k  # flwr FedAvg.num_fit_clients / configure_train
    with pytest.raises(ValueError):
        fa.flower_sampling(n, n + 1)


def test_scheduled_rounds_hand_each_sampled_node_a_partition():
    schedule = [[3, 9, 11], [0, 1, 2]]
    assert fa.round_partitions(schedule, 2, 3) == [0, 1, 2]
    assert fa.round_partitions(None, 1, 3) is None  # Flower's own sampling: nodes train their own
    with pytest.raises(ValueError, match="sampled 2 nodes"):
        fa.round_partitions(schedule, 1, 2)


def test_flower_clients_use_fedrecs_training_seeds():
    run = SimpleNamespace(cfg=SimpleNamespace(seed=3))
    for rnd, client in [(1, 0), (7, 942), (30, 17)]:
        assert fa.client_seed(3, rnd, client) == FederatedRun.seed_of(run, rnd, client)


def test_flower_strategy_settings_are_the_configs():
    cfg = _cfg()
    s = cfg.strategy
    assert fa.STRATEGY_CLASSES[s.name] == "FedAdam"  # the tuned config's server optimizer
    assert fa.STRATEGY_CLASSES["fedyogi"] == "FedYogi"
    assert fa.flower_strategy_kwargs(cfg, "message") == {"eta": s.server_lr, "tau": s.tau, "beta_1": s.beta1, "beta_2": s.beta2}
    assert fa.flower_strategy_kwargs(cfg, "numpy")["eta_l"] == cfg.client.lr
    assert fa.flower_strategy_kwargs(cfg.with_(**{"strategy.name": "fedavg", "strategy.server_lr": 1.0}), "numpy") == {}


def test_flower_fedavg_of_full_parameters_equals_fedrec_whole_table_fedavg():
    ex = interaction_examples(toy_interactions(), features=("user", "item"))
    data = ClientData(ex, natural_partition(ex.groups))
    trainer = LocalTrainer(data, ModelConfig(embedding_dim=4, dense_arch=(4,), over_arch=(4,)))
    names = list(trainer.model.state_dict())
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    cfg = ClientTrainConfig(lr=0.5, batch_size=4, sparse_updates=False)
    updates, flower_sum, weights = [], None, 0.0
    for client in range(3):
        trainer.load_global(state)
        r = trainer.train(client, state, cfg, seed=client)
        updates.append(r.update)
        full = fa.updated_params(names, state, r.update)  # what the Flower client uploads
        weights += r.examples
        flower_sum = [a * r.examples for a in full] if flower_sum is None else [s + a * r.examples for s, a in zip(flower_sum, full)]
    mean = AggregatedUpdate.from_clients(updates).mean()
    for name, flower in zip(names, flower_sum):
        if name in mean.dense:
            ours = state[name] + mean.dense[name]
        else:  # whole tables: every row, each averaged over all clients
            ids, rows = mean.sparse[name]
            assert torch.equal(ids, torch.arange(state[name].shape[0]))
            ours = state[name] + rows
        assert np.allclose(flower / weights, ours.numpy(), atol=1e-6), name


def _rounds(per_round):
    return [{"round": i + 1, "client_updates": u, "wall_seconds": s} for i, (u, s) in enumerate(per_round)]


def test_summarize_gives_both_clocks():
    s = bench.summarize(_rounds([(50, 20.0), (50, 1.0), (50, 1.0)]), process_seconds=40.0)
    assert s["client_updates"] == 150 and s["steady_seconds"] == 2.0 and s["first_round_seconds"] == 20.0
    assert s["steady_updates_per_second"] == 50.0  # rounds 2..R over their own wall time
    assert s["whole_updates_per_second"] == pytest.approx(150 / 40)  # every update over the process's life
    assert "client_busy" not in s
    timed = [{**r, "client_seconds": c} for r, c in zip(_rounds([(50, 20.0), (50, 1.0), (50, 1.0)]), (9.0, 0.5, 0.7))]
    assert bench.summarize(timed, 40.0, workers=2)["client_busy"] == pytest.approx(1.2 / 4)
    assert math.isnan(bench.summarize(_rounds([(10, 2.0)]), 3.0)["steady_updates_per_second"])


def _run(steady, whole, auc, updates=1500):
    return {"rounds": 30, "client_updates": updates, "process_seconds": updates / whole, "first_round_seconds": 1.0,
            "steady_seconds": updates / steady, "steady_updates_per_second": steady, "whole_updates_per_second": whole,
            "auc": auc, "logloss": 0.69}


def test_rows_ratios_and_verdicts():
    rows = [
        bench.median_row("Flower A", "flower", [_run(80, 30, 0.70), _run(100, 50, 0.70)]),
        bench.median_row("Flower B", "flower", [_run(60, 45, 0.71)]),
        bench.median_row("fedrec", "fedrec", [_run(1000, 250, 0.705), _run(800, 150, 0.695)]),
        bench.median_row("fedrec slow", "fedrec", [_run(950, 150, 0.70)]),
        bench.median_row("fedrec off", "fedrec", [_run(3000, 500, 0.60)]),
    ]
    assert rows[0]["steady_updates_per_second"] == 90 and rows[2]["auc"] == pytest.approx(0.70)
    ref = bench.add_ratios(rows)
    assert ref["label"] == "Flower A"  # the faster Flower row in steady state is the reference
    assert rows[2]["x_flower_steady"] == pytest.approx(900 / 90) and rows[2]["x_flower_whole"] == pytest.approx(200 / 40)
    vs = {v["label"]: v for v in bench.verdicts(rows)}
    assert set(vs) == {"fedrec", "fedrec slow", "fedrec off"}
    assert vs["fedrec"]["met_steady"] and vs["fedrec"]["met_whole"] and vs["fedrec"]["same_auc"]
    assert vs["fedrec slow"]["met_steady"] and not vs["fedrec slow"]["met_whole"]  # 950/90 >= 10, 150/40 < 5
    assert not vs["fedrec off"]["same_auc"]  # AUC off by 0.10
    table = bench.format_table(rows)
    assert table.splitlines()[0].split()[:2] == ["framework", "rounds"] and "10.0x" in table
    text = bench.format_verdicts(rows, list(vs.values()), ref)
    assert "fedrec slow: steady 10.6x (target 10x: met), whole process 3.8x (target 5x: NOT met)" in text


def test_median_row_refuses_repeats_with_different_update_counts():
    with pytest.raises(ValueError, match="different"):
        bench.median_row("x", "fedrec", [_run(1, 1, 0.5, updates=1500), _run(1, 1, 0.5, updates=1450)])


def test_no_flower_rows_no_ratios():
    rows = [bench.median_row("fedrec", "fedrec", [_run(700, 800, 0.52)])]
    assert bench.add_ratios(rows) is None and bench.verdicts(rows) == []
    assert "x Flower" not in bench.format_table(rows)


def test_flower_venv_pins_come_from_the_project_constraints():
    text = (ROOT / "requirements" / "constraints.txt").read_text()
    pins = bench.model_constraints(text)
    names = {p.split("==")[0].lower().replace("_", "-") for p in pins}
    assert {"torch", "fbgemm-gpu-cpu", "torchrec", "numpy", "polars"} <= names
    assert not names & {"ray", "protobuf", "packaging"}  # flwr[simulation] pins its own
    assert "torch==2.13.0" in pins
    assert bench.venv_marker(pins) != bench.venv_marker([*pins[:-1], "numpy==0.0.1"])


def test_quick_flags():
    args = bench.parse_args(["--quick"])
    assert (args.rounds, args.clients_per_round, args.repeats) == (3, 10, 1) and not args.skip_flower
    assert args.client_sampling == "same"
    assert bench.parse_args([]).rounds == 30 and bench.parse_args([]).clients_per_round == 50
    with pytest.raises(SystemExit):
        bench.parse_args(["--flower-apis", "grpc"])


def test_flower_venv_is_reused_while_its_marker_matches(tmp_path, monkeypatch):
    pins = bench.model_constraints((ROOT / "requirements" / "constraints.txt").read_text())
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").touch()
    (tmp_path / bench.MARKER).write_text(json.dumps(bench.venv_marker(pins)))
    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: pytest.fail("must not rebuild a matching venv"))
    assert bench.ensure_flower_venv(tmp_path) == tmp_path / "bin" / "python"


def test_flower_venv_failure_is_one_clear_message(tmp_path, monkeypatch):
    def fake_run(cmd, **kwargs):  # venv creation works, pip cannot reach an index (offline)
        failed = "pip" in cmd
        if "venv" in cmd:
            Path(cmd[-1]).mkdir(parents=True)
        return subprocess.CompletedProcess(cmd, int(failed), "", "ERROR: No matching distribution found for flwr" if failed else "")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    with pytest.raises(SystemExit, match="(?s)could not create the Flower venv.*No matching distribution.*--skip-flower"):
        bench.ensure_flower_venv(tmp_path / "flower")
    assert not (tmp_path / "flower" / bench.MARKER).exists()
