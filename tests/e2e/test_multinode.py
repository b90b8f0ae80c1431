"""Beyond one machine, on a local multi-node Ray (``ray.cluster_utils.Cluster``: a head and two
worker nodes on this machine): actors spread over the nodes, the same final model as on one node
for the same seed, and a node lost mid-round survived (its clients' updates lost that round,
counted; the pool re-formed on the surviving nodes; private rows restored from the checkpoint)."""

import time
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fedrec.algorithms import run_config
from fedrec.config import load_config
from fedrec.runtime import ClientPool, load_federated_data

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c, workers
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def cfg(ml100k_path):
    return load_config(ROOT / "configs" / "ml100k_private_user.yaml", rounds=3, clients_per_round=15, eval_every=3,
                       num_actors=3, actor_num_cpus=0.3, checkpoint_every=1, **{"data.path": str(ml100k_path)})


@pytest.fixture(scope="module")
def data(cfg):
    return load_federated_data(cfg)


def _state(ckpt: Path) -> dict:
    return torch.load(ckpt / "checkpoint.pt", weights_only=False)["runs"]["default"]


def _wait_for_free_cpus(cpus: float, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0.0) < cpus - 1e-6:
        assert time.monotonic() < deadline, f"CPUs not released: {ray.available_resources()}"
        time.sleep(0.1)


def test_spread_over_nodes_gives_the_one_node_model(cluster, cfg, data, tmp_path):
    head = ray.get_runtime_context().get_node_id()
    one = ClientPool(3, num_cpus=0.3, scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False)).start()
    r1 = run_config(cfg.with_(checkpoint_dir=str(tmp_path / "one")), data, one)
    one.stop()
    _wait_for_free_cpus(3.0)  # SPREAD places by free resources: the killed actors' must be back first
    many = ClientPool(3, num_cpus=0.3).start()
    r3 = run_config(cfg.with_(checkpoint_dir=str(tmp_path / "many")), data, many)
    many.stop()
    assert (r1.nodes, r1.actors_per_node) == (1, [3]) and (r3.nodes, r3.actors_per_node) == (3, [1, 1, 1])
    a, b = _state(tmp_path / "one"), _state(tmp_path / "many")
    for name in a["state"]:  # client-to-actor assignment is by client id: placement does not change the math
        assert torch.equal(a["state"][name], b["state"][name]), name
    for x, y in zip(a["private"], b["private"]):
        table = next(iter(x))
        assert np.array_equal(x[table]["rows"], y[table]["rows"])
    assert r1.final_auc == r3.final_auc


def test_a_node_lost_mid_round_is_survived(cluster, cfg, data, tmp_path):
    c, workers = cluster
    pool = ClientPool(3, num_cpus=0.3).start()
    ckpt = tmp_path / "ck"
    lost = {}

    node = workers[0]
    # Asked before training: an actor answers its calls in order, so asking mid-round would wait for the round.
    lost["actors"] = [i for i, n in enumerate(ray.get([a.node_id.remote() for a in pool.actors])) if n == node.node_id]

    def remove_a_node(rnd, p):
        if rnd == 2:  # the round-1 checkpoint is on disk; the node goes while round 2 trains
            c.remove_node(node, allow_graceful=False)  # killed at once, before its actor's round-2 work is done
            lost["before"] = _state(ckpt)["private"]  # (round 2's checkpoint is written only after it ends)

    result = run_config(cfg.with_(rounds=2, clients_per_round=45, checkpoint_dir=str(ckpt)), data, pool, after_submit=[remove_a_node])
    assert lost["actors"], "no actor was on the removed node"
    r2 = result.history[1]
    assert r2["failed_updates"] > 0 and r2["client_updates"] > 0  # the survivors' clients trained
    assert result.failed_updates == r2["failed_updates"] and result.rounds == 2
    assert result.nodes == 2 and sum(result.actors_per_node) == 3  # re-formed on the surviving nodes
    # The lost actors' clients lost round 2's training; their private rows came back from round 1's checkpoint.
    now = pool.export_private("default")
    for i in lost["actors"]:
        table = next(iter(now[i]))
        assert np.array_equal(now[i][table]["rows"], lost["before"][i][table]["rows"])
        assert now[i][table]["trained"].any()  # (they had trained in round 1: not a restart from scratch)
    pool.stop()
