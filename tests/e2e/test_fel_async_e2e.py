"""FEL, FedBuff and the RF^2 fairness study end to end on ML-100K, through ``fedrec train --config``
with the shipped configs shrunk to a few rounds and clients."""

import json
from pathlib import Path

import pytest
import ray
import yaml

from fedrec.algorithms import run_fairness
from fedrec.cli import main
from fedrec.config import load_config
from tests.e2e.energy_contract import assert_energy_contract

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_local():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _shrunk(name: str, ml100k_path, tmp_path, **overrides) -> Path:
    doc = yaml.safe_load((ROOT / "configs" / name).read_text())
    doc["data"]["path"] = str(ml100k_path)
    doc.update({"num_actors": 2, "eval_every": 1, "eval_ranking": False, **overrides})  # ranking is tested elsewhere
    out = tmp_path / name
    out.write_text(yaml.safe_dump(doc))
    return out


def _train(config: Path, tmp_path) -> dict:
    out = tmp_path / "result.json"
    assert main(["train", "--config", str(config), "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_fel_cli(ray_local, ml100k_path, tmp_path):
    d = _train(_shrunk("ml100k_fel.yaml", ml100k_path, tmp_path, rounds=2, clients_per_round=12), tmp_path)
    for key in ("final_auc", "rounds", "client_updates", "wall_seconds", "client_updates_per_second", "bytes_up",
                "bytes_down", "history", "ensemble_auc", "submodel_auc", "per_tier_auc"):
        assert key in d
    assert set(d["submodel_auc"]) == {"low", "mid", "high"} and d["final_auc"] == d["ensemble_auc"]
    assert [d["submodels"][t]["embedding_dim"] for t in ("low", "mid", "high")] == [8, 16, 32]
    assert d["rounds"] == 2 and 0 < d["client_updates"] <= 24 and 0 < d["baseline"]["client_updates"] <= 24
    assert all(sum(s["tiers"]) == s["tiers"][i] for i, s in enumerate(d["submodels"].values()))  # a tier a cluster
    assert d["server_rows"] > 0 and 0 < d["ensemble_auc"] < 1
    assert_energy_contract(d)


def test_fedbuff_cli(ray_local, ml100k_path, tmp_path):
    cfg = _shrunk("ml100k_fedbuff.yaml", ml100k_path, tmp_path, rounds=6, target_auc=0.52,
                  **{"async": {"buffer_size": 3, "concurrency": 8}})
    d = _train(cfg, tmp_path)
    assert [h["client_updates_landed"] for h in d["history"]] == [3] * 6  # exactly K updates per server step
    # Clients that pulled one of the 6 versions all train (the schedule drains them, so a resumed run
    # finds their updates); those landing after step 6 are trained and counted, never applied.
    assert d["rounds"] == 6 and 18 < d["client_updates"] <= 18 + 8
    assert d["max_in_flight"] <= 8 and d["max_staleness"] >= 1
    aucs = [h["auc"] for h in d["history"]]
    first = next((i for i, a in enumerate(aucs) if a >= 0.52), None)  # the definition, whichever way it went
    if first is None:
        assert d["sim_seconds_to_target"] is None and d["rounds_to_target"] is None
    else:
        assert d["rounds_to_target"] == first + 1 and d["sim_seconds_to_target"] == d["history"][first]["sim_seconds"]
        assert d["bytes_to_target"] == sum(h["bytes_up"] + h["bytes_down"] for h in d["history"][: first + 1])
    assert d["bytes_up"] == sum(h["bytes_up"] for h in d["history"]) > 0 and d["bytes_down"] > d["bytes_up"]
    assert_energy_contract(d)


def test_fairness_study(ray_local, ml100k_path, tmp_path):
    cfg = load_config(_shrunk("ml100k_tiers_rf2.yaml", ml100k_path, tmp_path, rounds=2, clients_per_round=10,
                              fairness={"optimizations": ["deadline", "over_selection"]}))
    r = run_fairness(cfg, progress=False)
    assert set(r.runs) == {"correlated", "random"}
    assert set(r.mdac) == set(r.mdac_random) == set(r.understatement) == {"deadline", "over_selection"}
    for runs in r.runs.values():
        assert runs["deadline"]["deadline"] > 0 and set(runs["deadline"]["share_too_slow"]) == {"low", "mid", "high"}
        base, opt = runs["baseline"]["per_tier_auc"], runs["deadline"]["per_tier_auc"]
        assert len(base) == 3
        change = [(opt[t] - base[t]) / base[t] for t in base]  # MDAC by hand from the reported per-tier AUCs
        assert runs["deadline"]["mdac"] == pytest.approx(max(change) - min(change))
    assert r.mdac["deadline"] == r.runs["correlated"]["deadline"]["mdac"]
    assert r.understatement["deadline"] == pytest.approx(r.mdac["deadline"] / r.mdac_random["deadline"])
    assert r.final_auc == r.runs["correlated"]["baseline"]["auc"]
    assert_energy_contract(r.to_dict())


def test_client_pool_inside_a_placement_group(ray_local):
    """Inside a placement group that captures child tasks (a Ray Tune trial), the pool's actors go
    into the group's bundles: with SPREAD forced on them they waited forever for CPUs the group held."""
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg = placement_group([{"CPU": 1}, {"CPU": 1}])  # every CPU of ray_local
    ray.get(pg.ready(), timeout=60)

    @ray.remote(num_cpus=0)
    def trial():
        from fedrec.runtime import ClientPool

        pool = ClientPool(2, num_cpus=1).start()
        try:
            return sorted(pool.placement().values())
        finally:
            pool.stop()

    try:
        strategy = PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=True)
        assert ray.get(trial.options(scheduling_strategy=strategy).remote(), timeout=120) == [2]
    finally:
        remove_placement_group(pg)
