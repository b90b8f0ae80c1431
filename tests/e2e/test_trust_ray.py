"""Robustness, privacy and secure aggregation end to end on ML-100K with Ray: the shipped configs'
JSON contracts, epsilon equal to Opacus's, a securely aggregated model equal to the plain one on
the same survivors, and the three benchmarks' --quick modes. One Ray and one pool for the module."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fedrec.algorithms import run_config
from fedrec.algorithms.common import drive, make_loop, session
from fedrec.attacks import choose_attackers
from fedrec.config import load_config
from fedrec.pipeline import Aggregator, UpdatePipeline
from fedrec.privacy import epsilon_after
from fedrec.runtime import load_federated_data
from fedrec.runtime.result import TRUST_KEYS, FederatedResult
from fedrec.runtime.run import FederatedRun
from fedrec.updates import AggregatedUpdate
from tests.unit.test_bench_scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(ml100k_path):
    return load_federated_data(_cfg("ml100k_fedyogi_tuned.yaml", ml100k_path))


def _cfg(name, ml100k_path, **more):
    return load_config(ROOT / "configs" / name, rounds=2, clients_per_round=20, eval_every=2, num_actors=2,
                       **{"data.path": str(ml100k_path)}, **more)


def _json(result, tmp_path):
    result.to_json(tmp_path / "r.json")
    return json.loads((tmp_path / "r.json").read_text())


def _train(cfg, data, pool, pipeline=None):
    with session(cfg, data, pool) as s:
        run = FederatedRun(cfg, s.data, s.pool, pipeline=pipeline)
        drive(make_loop(cfg, s.pool, [run], progress=False, desc="test"), False)
        return FederatedResult.from_run(run, s.wall()), run


def test_dp_config_reports_opacus_epsilon_and_noises_every_row(pool, data, ml100k_path, tmp_path):
    cfg = _cfg("ml100k_dp.yaml", ml100k_path)
    result, run = _train(cfg, data, pool)
    d = _json(result, tmp_path)
    p = cfg.privacy
    assert d["delta"] == 1 / 943 and d["epsilon"] > 0
    assert d["epsilon"] == epsilon_after(2, p.noise_multiplier, 20 / 943, 1 / 943, "rdp")  # the same steps in Opacus
    assert d["privacy"]["rounds"] == 2 and "secagg" not in d and "attack" not in d
    start = FederatedRun(cfg, data, None).state
    item = next(n for n in run.layout.tables if run.layout.tables[n] == "item")
    moved = (run.state[item] != start[item]).any(dim=1)
    assert moved.all()  # noise reached every row, not only the ~1k rows 40 users touched


class SameDropouts(Aggregator):
    """The plain weighted sum over the clients secure aggregation keeps (same seeded draw)."""

    def __init__(self, rate):
        self.rate = rate

    def aggregate(self, updates, ctx):
        updates = sorted(updates, key=lambda u: u.client)
        r = np.random.default_rng([ctx.seed, ctx.round, 0x5EC]).random(len(updates))
        return AggregatedUpdate.from_clients([u for u, x in zip(updates, r) if x >= self.rate])


def test_secure_aggregation_equals_plain_on_the_same_survivors(pool, data, ml100k_path, tmp_path):
    cfg = _cfg("ml100k_secagg.yaml", ml100k_path)
    secure, run = _train(cfg, data, pool)
    d = _json(secure, tmp_path)
    s = d["secagg"]
    assert s["dropouts"] > 0 and s["dropouts_recovered"] == s["dropouts"] and s["rounds_failed"] == 0
    assert s["bytes_overhead"] == s["bytes_secagg"] - s["bytes_plain"] > 0 and s["seconds"] > 0
    plain, plain_run = _train(cfg.with_(**{"secure_aggregation.enabled": False}), data, pool,
                              UpdatePipeline(aggregator=SameDropouts(cfg.secure_aggregation.dropout), force_per_client=True))
    for name, t in run.state.items():
        assert torch.allclose(t, plain_run.state[name], atol=1e-5), name
    assert secure.final_auc == pytest.approx(plain.final_auc, abs=1e-4)
    assert not set(TRUST_KEYS) & set(plain.to_dict())  # a plain run's JSON has none of the new keys


def test_robust_config_reports_its_attack(pool, data, ml100k_path, tmp_path):
    cfg = _cfg("ml100k_robust.yaml", ml100k_path)
    d = _json(run_config(cfg, data, pool), tmp_path)
    a = d["attack"]
    assert a["kind"] == "alie" and a["fraction"] == 0.2
    assert a["attackers"] == choose_attackers(943, 0.2, cfg.seed).tolist()
    assert 0.3 < d["final_auc"] < 1 and "epsilon" not in d
    assert {"foolsgold", "agreement", "promotion_guard"} <= set(d["pipeline"])  # the chosen rule, both options on


def test_bench_quick_modes(pool, tmp_path):
    rob = load_script("bench_robust").main(["--quick", "--out", str(tmp_path / "r")], pool=pool)
    cells = {(c["attack"], c["aggregator"]): c for c in rob["cells"]}
    assert set(cells) == {(a, g) for a in ("none", "sign_flip", "item_promotion") for g in ("mean", "median")}
    assert cells[("item_promotion", "mean")]["exposure"] > cells[("none", "mean")]["exposure"]
    assert (tmp_path / "r" / "robust.png").stat().st_size > 0
    # the fresh seed (1 in quick mode) is reported on its own and pooled with seed 0
    assert rob["check"]["fresh"]["seeds"] == [1] and rob["check"]["all"]["seeds"] == [0, 1]
    assert rob["check"]["all"]["summary"]["0.2/none/mean"]["seeds"] == [0, 1]
    assert set(rob["check"]["fresh"]["targets"]["best_within_0.01"]) == {"sign_flip"}
    priv = load_script("bench_privacy").main(["--quick", "--out", str(tmp_path / "p")], pool=pool)
    for name in ("ml100k", "synthetic"):
        rows = priv["results"][name]["rows"]
        private = [r for k, r in rows.items() if k != "non-private"]
        assert rows["non-private"]["epsilon"] is None and all(r["epsilon"] > 0 for r in private)
    assert priv["results"]["synthetic"]["rows"]["eps=8.0"]["epsilon"] <= 8.0
    sec = load_script("bench_secagg").main(["--quick", "--out", str(tmp_path / "s")])
    assert all(r["exact"] and r["formula_matches"] for r in sec["rows"])
    assert 1.5 < sec["paper_check"]["complete"]["expansion"] < 2.0


def test_bench_robust_records_a_diverged_arm_and_reruns_the_others(pool, data, ml100k_path, tmp_path, monkeypatch):
    """An attack that drives the plain mean to non-finite weights is that attack winning: the arm is
    recorded at chance with its round, and the arms trained beside it get the numbers of a run
    without it (the group is trained again). A second call reads the cached cells."""
    bench = load_script("bench_robust")
    monkeypatch.setitem(bench.ATTACK_SETTINGS, "scaling", {"scale": 1e38})  # float32 overflows within the 2 rounds
    base = _cfg("ml100k_fedyogi_tuned.yaml", ml100k_path)
    target = bench.pick_target_item(data, 0)
    arms = [("none", "mean", {"name": "mean"}), ("scaling", "mean", {"name": "mean"})]
    both = bench.run_arms(base, data, pool, arms, 0.2, 0, target)
    alone = bench.run_arms(base, data, pool, arms[:1], 0.2, 0, target)
    assert 1 <= both[1]["diverged_round"] <= 2 and both[1]["test_auc"] == 0.5 and np.isnan(both[1]["exposure"])
    assert "diverged_round" not in both[0] and both[0]["test_auc"] == alone[0]["test_auc"]
    cells = [(0.2, 0, a, g) for a, g, _ in arms]
    first = bench.run_cells(base, pool, cells, bench.AGGREGATORS, tmp_path / "cells")
    monkeypatch.setattr(bench, "run_arms", lambda *a, **k: pytest.fail("trained again despite the cache"))
    again = bench.run_cells(base, pool, cells, bench.AGGREGATORS, tmp_path / "cells")
    assert [c["test_auc"] for c in again] == [c["test_auc"] for c in first] and len(first) == 2
