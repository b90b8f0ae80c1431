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


def test_gossip_compressed_update_messages(pool, cfg, fed_data):
    """``compression`` in gossip mode encodes the update messages a trained node sends its
    neighbours: only those bytes shrink (the exchange's are the same), the uncompressed
    reference is the same, and the model still trains from the decoded updates."""
    plain = run_config(cfg.with_(compression={"method": "none"}), fed_data, pool).to_dict()
    packed = run_config(cfg.with_(compression={"method": "int8"}), fed_data, pool).to_dict()
    assert packed["dense_bytes_up"] == plain["dense_bytes_up"]
    assert packed["bytes_up"] - packed["update_bytes"] == plain["bytes_up"] - plain["update_bytes"]  # the exchange's
    # int8 rows: 16 one-byte values, a float scale and bias and an int32 id, against 16 floats and an int64 id
    assert 0 < packed["update_bytes"] < plain["update_bytes"] / 2
    assert abs(packed["final_auc"] - plain["final_auc"]) < 0.01


def test_gossip_compressed_resume_is_bit_identical(pool, cfg, fed_data, tmp_path):
    """Top-k update messages with error feedback: what a node's message left out lives on its actor
    and is checkpointed, so a resumed run sends the same messages as an uninterrupted one."""
    c = cfg.with_(rounds=3, eval_every=3, checkpoint_every=1, clients_per_round=20,
                  compression={"method": "topk", "fraction": 0.1})

    def nodes(config, where, resume=False):
        result = run_config(config.with_(checkpoint_dir=str(where)), fed_data, pool, resume=resume)
        return result, torch.load(where / "checkpoint.pt", weights_only=False)["runs"]["default"]["nodes"]["x"]

    straight, x = nodes(c, tmp_path / "a")
    nodes(c.with_(rounds=2), tmp_path / "b")
    resumed, again = nodes(c, tmp_path / "b", resume=True)
    assert resumed.resumed_from_round == 2 and resumed.update_bytes == straight.update_bytes
    for name in x:
        assert torch.equal(x[name], again[name]), name
