"""Federated training on Ray, end to end on ML-100K: the JSON contract, the Strategy contract
(FedProx's mu reaches the actors), fault tolerance, resume, and a real ``ray job submit`` against a
head started on loopback. The tests share one actor pool and one load of the data."""

import json
from pathlib import Path

import numpy as np
import pytest
import ray
import torch

from fedrec.algorithms import run_config
from fedrec.config import load_config
from fedrec.runtime import ClientPool, load_federated_data
from tests.e2e.energy_contract import assert_energy_contract

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "ml100k_fedavg.yaml"


@pytest.fixture(scope="module")
def small_cfg(ml100k_path):
    return load_config(CONFIG, rounds=3, clients_per_round=20, eval_every=1, num_actors=2, **{"data.path": str(ml100k_path)})


@pytest.fixture(scope="module")
def fed_data(small_cfg):
    return load_federated_data(small_cfg)


def _trained(cfg, fed_data, pool, ckpt: Path, resume: bool = False):
    """Train (or resume) with checkpoints in ``ckpt``; returns the result and the final global
    model, read back from the last checkpoint."""
    result = run_config(cfg.with_(checkpoint_dir=str(ckpt)), fed_data, pool, resume=resume)
    blob = torch.load(ckpt / "checkpoint.pt", weights_only=False)
    return result, blob["runs"]["default"]["state"]


def test_contract_keys_and_sparse_bytes(pool, small_cfg, fed_data, tmp_path):
    result = run_config(small_cfg.with_(plot=str(tmp_path / "auc.png"), tensorboard=str(tmp_path / "tb")), fed_data, pool)
    out = tmp_path / "r.json"
    result.to_json(out)
    d = json.loads(out.read_text())
    for key in ("final_auc", "validation_auc", "rounds", "client_updates", "wall_seconds", "client_updates_per_second",
                "bytes_up", "bytes_down", "history", "resumed_from_round"):
        assert key in d
    assert d["rounds"] == 3 and 0 < d["client_updates"] <= 60 and d["resumed_from_round"] == 0
    assert len(d["history"]) == 3 and all("auc" in h and "validation_auc" in h for h in d["history"])
    assert d["validation_auc"] == d["history"][-1]["validation_auc"] != d["final_auc"]  # two splits, two numbers
    assert d["bytes_up"] < d["dense_bytes_up"]
    assert set(d["per_tier_auc"]) <= {"low", "mid", "high"}
    assert_energy_contract(d)
    assert sum(h["energy_joules"] for h in d["history"]) == pytest.approx(d["energy"]["total_joules"])
    assert (tmp_path / "auc.png").stat().st_size > 0
    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_fedprox_mu_reaches_the_actors_and_is_the_only_difference(pool, small_cfg, fed_data, monkeypatch, tmp_path):
    sent = []
    real_submit = ClientPool.submit
    monkeypatch.setattr(ClientPool, "submit", lambda self, key, clients, cfg, *a: sent.append(cfg) or real_submit(self, key, clients, cfg, *a))
    base = small_cfg.with_(rounds=1, **{"client.lr": 0.3, "client.local_epochs": 3})
    _, fedavg = _trained(base, fed_data, pool, tmp_path / "avg")
    _, prox0 = _trained(base.with_(**{"strategy.name": "fedprox", "strategy.proximal_mu": 0.0}), fed_data, pool, tmp_path / "p0")
    sent.clear()
    _, prox = _trained(base.with_(**{"strategy.name": "fedprox", "strategy.proximal_mu": 1.0}), fed_data, pool, tmp_path / "p1")
    assert sent and all(c.proximal_mu == 1.0 for c in sent)  # what configure_fit returned is what was sent
    for name in fedavg:  # mu = 0 is FedAvg exactly: the proximal term is the only difference
        assert torch.equal(fedavg[name], prox0[name]), name
    assert max((fedavg[n] - prox[n]).abs().max().item() for n in fedavg) > 1e-4  # and mu changes the update
    start = _initial(base, fed_data)
    drift = sum((fedavg[n] - start[n]).norm() for n in start)
    pulled = sum((prox[n] - start[n]).norm() for n in start)
    assert pulled < drift  # the proximal pull keeps the clients, so the model, closer to where the round began


def _initial(cfg, fed_data):
    from fedrec.model import build_model

    return {k: v.detach() for k, v in build_model(fed_data.train.spec, cfg.model, seed=cfg.seed).state_dict().items()}


def test_actor_killed_mid_round_does_not_stop_the_run(pool, small_cfg, fed_data):
    def kill_first_actor(rnd, p):
        if rnd == 2:
            ray.kill(p.actors[0], no_restart=True)

    cfg = small_cfg.with_(clients_per_round=10, eval_every=3)
    result = run_config(cfg, fed_data, pool, after_submit=[kill_first_actor])
    r1, r2, r3 = result.history
    assert r2["failed_updates"] > 0 and r2["client_updates"] > 0  # survivors finished round 2
    assert r3["failed_updates"] == 0 and r3["client_updates"] > 0  # the actor came back
    assert result.rounds == 3 and result.failed_updates == r2["failed_updates"]


def test_resume_reaches_the_same_model(pool, small_cfg, fed_data, tmp_path):
    cfg = small_cfg.with_(clients_per_round=10, eval_every=3, checkpoint_every=1,
                          **{"strategy.name": "fedyogi", "strategy.server_lr": 0.03})
    straight_result, straight = _trained(cfg, fed_data, pool, tmp_path / "straight")
    _trained(cfg.with_(rounds=2), fed_data, pool, tmp_path / "ck")
    result, resumed = _trained(cfg, fed_data, pool, tmp_path / "ck", resume=True)
    assert result.rounds == 3 and len(result.history) == 3 and result.resumed_from_round == 2
    for name in straight:  # server moments, state and client seeds all carried over: bit-identical
        assert torch.equal(straight[name], resumed[name]), name
    assert result.final_auc == straight_result.final_auc
    assert result.energy["total_joules"] == pytest.approx(straight_result.energy["total_joules"])  # kept across resume
    from data_pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="'rounds'.*already finished round 3"):
        run_config(cfg.with_(checkpoint_dir=str(tmp_path / "ck")), fed_data, pool, resume=True)
    with pytest.raises(ConfigError, match="'client.lr': differs from the checkpoint"):
        run_config(cfg.with_(rounds=4, checkpoint_dir=str(tmp_path / "ck"), **{"client.lr": 0.5}), fed_data, pool, resume=True)


@pytest.fixture(scope="module")
def private_cfg(ml100k_path):
    return load_config(ROOT / "configs" / "ml100k_private_user.yaml", rounds=3, clients_per_round=30, eval_every=3,
                       num_actors=2, checkpoint_every=1, **{"data.path": str(ml100k_path)})


@pytest.fixture(scope="module")
def private_data(private_cfg):
    return load_federated_data(private_cfg)


def test_private_user_rows_never_uploaded_and_resume_restores_them(pool, private_cfg, private_data, tmp_path):
    straight, _ = _trained(private_cfg, private_data, pool, tmp_path / "straight")
    d = straight.to_dict()
    assert d["private_tables"] == ["user"] and "user" not in d["uploaded_tables"] and "item" in d["uploaded_tables"]
    assert 0 <= d["test_hr_at_10"] <= 1 and d["test_ndcg_at_10"] <= d["test_hr_at_10"]
    assert d["auc_trained_clients"] is not None and d["auc_untrained_clients"] is not None
    _trained(private_cfg.with_(rounds=2), private_data, pool, tmp_path / "ck")
    resumed, _ = _trained(private_cfg, private_data, pool, tmp_path / "ck", resume=True)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["runs"]["default"]
    b = torch.load(tmp_path / "ck" / "checkpoint.pt", weights_only=False)["runs"]["default"]
    for x, y in zip(a["private"], b["private"]):  # every client's device rows, bit for bit
        table = next(iter(x))
        assert np.array_equal(x[table]["rows"], y[table]["rows"])
    assert resumed.final_auc == straight.final_auc and resumed.test_ndcg_at_10 == straight.test_ndcg_at_10


def test_a_lost_actor_gets_its_clients_private_rows_back_from_the_checkpoint(pool, private_cfg, private_data, tmp_path):
    ckpt = tmp_path / "ck"
    seen = {}

    def kill_in_round_3(rnd, p):
        if rnd == 3:
            seen["before"] = torch.load(ckpt / "checkpoint.pt", weights_only=False)["runs"]["default"]["private"][0]
            ray.kill(p.actors[0], no_restart=True)

    result = run_config(private_cfg.with_(checkpoint_dir=str(ckpt)), private_data, pool, after_submit=[kill_in_round_3])
    assert result.history[2]["failed_updates"] > 0
    after = pool.export_private("default")[0]  # actor 0 was replaced; its clients lost round 3's training
    table = next(iter(after))
    assert np.array_equal(after[table]["rows"], seen["before"][table]["rows"])
    assert np.array_equal(after[table]["trained"], seen["before"][table]["trained"]) and after[table]["trained"].any()


def test_bench_selection_quick(pool, fed_data, tmp_path):
    """scripts/bench_selection.py --quick on the module's pool: every policy's contract keys, the
    per-seed values, and its plot."""
    from tests.unit.test_bench_scripts import load_script

    out = tmp_path / "sel.json"
    load_script("bench_selection").main(["--quick", "--out", str(tmp_path), "--json", str(out)], pool=pool, data=fed_data)
    d = json.loads(out.read_text())
    assert set(d["policies"]) == {"random", "oort", "autofl"}
    for r in d["policies"].values():
        assert {"sim_seconds_to_target", "joules_to_target", "final_auc"} <= set(r)
        assert len(r["per_seed"]["final_auc"]) == 1 and r["final_auc"] == r["per_seed"]["final_auc"][0]
        assert r["per_seed"]["total_joules"][0] > 0
    assert out.with_suffix(".png").stat().st_size > 0
