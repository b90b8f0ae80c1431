"""Gossip (decentralized) training on Ray, end to end on ML-100K: the JSON contract (node AUCs,
consensus distance per round, bytes per node), bytes against D-PSGD's whole-model messages, and a
bit-identical resume of every node's model and the exchange's state. One pool, one data load."""

from pathlib import Path

import numpy as np
import pytest
import torch

from fedrec.algorithms import run_config
from fedrec.config import load_config
from fedrec.runtime import load_federated_data
from tests.e2e.energy_contract import assert_energy_contract

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cfg(ml100k_path):
    """The shipped ML-100K gossip config on 40 nodes (ratings split among 40 clients) to keep it short."""
    return load_config(ROOT / "configs" / "ml100k_gossip.yaml", rounds=2, clients_per_round=8, eval_every=2, num_actors=2,
                       **{"data.path": str(ml100k_path), "data.partition": "quantity", "data.num_clients": 40,
                          "gossip.node_eval_rows": 2000})


@pytest.fixture(scope="module")
def fed_data(cfg):
    return load_federated_data(cfg)


def test_gossip_json_contract_and_bytes(pool, cfg, fed_data, tmp_path):
    result = run_config(cfg, fed_data, pool)
    result.to_json(tmp_path / "g.json")
    d = result.to_dict()
    for key in ("node_auc_mean", "node_auc_worst", "bytes_per_node", "final_auc", "validation_auc", "compression_ratio_up"):
        assert key in d
    assert [h["round"] for h in d["history"]] == [1, 2] and all(h["consensus_distance"] > 0 for h in d["history"])
    assert d["node_auc_worst"] <= d["node_auc_mean"] and np.isfinite(d["final_auc"])
    n = d["graph"]["nodes"]
    assert n == len(fed_data.partitions) and d["bytes_per_node"] * n == pytest.approx(d["bytes_up"])
    assert d["client_updates"] == 16
    assert d["compression_ratio_up"] == pytest.approx(d["dense_bytes_up"] / d["bytes_up"])  # vs D-PSGD's whole models
    # The update messages (each trained node's delta to its neighbours) are the same for every
    # algorithm; CHOCO's top-k exchange is what must be far below D-PSGD's whole models.
    assert 0 < d["update_bytes"] < d["bytes_up"]
    assert (d["dense_bytes_up"] - d["update_bytes"]) > 40 * (d["bytes_up"] - d["update_bytes"])
    assert_energy_contract(d)


def test_gossip_resume_is_bit_identical(pool, cfg, fed_data, tmp_path):
    c = cfg.with_(rounds=3, eval_every=3, checkpoint_every=1)

    def trained(config, where, resume=False):
        result = run_config(config.with_(checkpoint_dir=str(where)), fed_data, pool, resume=resume)
        return result, torch.load(where / "checkpoint.pt", weights_only=False)["runs"]["default"]

    straight, blob = trained(c, tmp_path / "a")
    trained(c.with_(rounds=2), tmp_path / "b")
    resumed, again = trained(c, tmp_path / "b", resume=True)
    assert resumed.resumed_from_round == 2
    for name, x in blob["nodes"]["x"].items():
        assert torch.equal(x, again["nodes"]["x"][name]), name
    assert resumed.node_auc_mean == straight.node_auc_mean
