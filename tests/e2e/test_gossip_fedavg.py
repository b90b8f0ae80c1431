"""D-PSGD on the complete graph with uniform weights, every node training each round, is FedAvg:
end to end on Ray and ML-100K (its first 100 users, one node each), the gossip run's averaged
model and every node's model equal sync FedAvg's after the same rounds of the same local
training, and so do their test AUCs. (Each node adding its own delta before whole models were
averaged gave each embedding row a fraction of its update: every gossip method stayed at chance
AUC where FedAvg learned.)"""

from pathlib import Path

import numpy as np
import pytest
import torch

from fedrec.algorithms import run_config
from fedrec.config import load_config
from fedrec.runtime import load_federated_data
from fedrec.runtime.data import FederatedData

ROOT = Path(__file__).resolve().parents[2]
USERS = 100


@pytest.fixture(scope="module")
def cfg(ml100k_path):
    """The shipped gossip config as D-PSGD on the complete graph, all nodes training, and no
    client dropping out (sync FedAvg would lose some to the tiers' dropout; gossip never does)."""
    c = load_config(ROOT / "configs" / "ml100k_gossip.yaml", rounds=2, clients_per_round=USERS, eval_every=2,
                    num_actors=2, checkpoint_every=2, eval_ranking=False, **{"data.path": str(ml100k_path)})
    return c.with_(tiers=[{**t, "dropout": 0.0} for t in c.tiers.to_list()],
                   gossip={"algorithm": "dpsgd", "topology": "complete", "weights": "uniform",
                           "compression": {"method": "none"}},
                   compression={"method": "none"})  # the shipped int8 update messages would round the updates


@pytest.fixture(scope="module")
def fed_data(cfg):
    """The first ``USERS`` clients of the natural partition and their held-out rows."""
    full = load_federated_data(cfg)
    test, val = (np.flatnonzero((c >= 0) & (c < USERS)) for c in (full.test_client, full.validation_client))
    return FederatedData(full.train, full.test.take(test), full.partitions[:USERS], full.client_users[:USERS],
                         full.test_client[test], full.validation.take(val), full.validation_client[val], full.catalogue)


def test_dpsgd_on_the_complete_graph_equals_fedavg(pool, cfg, fed_data, tmp_path):
    def run(c, where):
        result = run_config(c.with_(checkpoint_dir=str(where)), fed_data, pool)
        return result, torch.load(where / "checkpoint.pt", weights_only=False)["runs"]["default"]

    gossip, g = run(cfg, tmp_path / "gossip")
    fedavg, f = run(cfg.with_(mode="sync"), tmp_path / "sync")
    assert fedavg.client_updates == gossip.client_updates == 2 * USERS
    for name, x in g["nodes"]["x"].items():
        assert torch.allclose(g["state"][name], f["state"][name], atol=1e-4), name
        assert torch.allclose(x, f["state"][name].expand_as(x), atol=1e-4), name  # every node on the FedAvg model
    assert gossip.final_auc == pytest.approx(fedavg.final_auc, abs=1e-4)
    assert gossip.node_auc_worst == pytest.approx(gossip.node_auc_mean, abs=1e-4)  # the nodes agree
