"""Gossip without Ray: graphs and the rule that connects a social graph, doubly stochastic mixing
weights, consensus of D-PSGD, CHOCO-SGD and PowerGossip on fixed vectors (no training), the
stacked node models, and the batched node evaluation against TorchRec."""

import networkx as nx
import numpy as np
import pytest
import torch

from fedrec.config import config_from_dict
from fedrec.gossip import NodeModels, build_graph, make_exchange, mixing_matrix, select_nodes, spectral_gap
from fedrec.gossip.graphs import connect, torus_shape
from fedrec.pipeline.codec import make_codec
from fedrec.updates import ClientUpdate


@pytest.mark.parametrize("topology", ["ring", "torus", "exponential", "complete"])
@pytest.mark.parametrize("weights", ["metropolis", "uniform"])
def test_mixing_weights_are_symmetric_doubly_stochastic_on_every_topology(topology, weights):
    g, report = build_graph(topology, 24, seed=0)
    assert nx.is_connected(g) and report.nodes == 24 and report.edges == g.number_of_edges()
    w = mixing_matrix(g, weights).toarray()
    assert np.allclose(w.sum(0), 1) and np.allclose(w.sum(1), 1) and np.allclose(w, w.T) and (w >= 0).all()
    assert ((w > 0) == (nx.to_numpy_array(g) + np.eye(24) > 0)).all()  # only neighbours (and self) mix
    assert 0 < spectral_gap(mixing_matrix(g, weights)) <= 1


def test_topologies_have_their_degrees():
    assert torus_shape(943) == (23, 41) and torus_shape(24) == (4, 6)
    deg = lambda t: {d for _, d in build_graph(t, 24, 0)[0].degree()}  # noqa: E731
    assert deg("ring") == {2} and deg("torus") == {4} and deg("complete") == {23}
    assert deg("exponential") == {8}  # i +- 1, 2, 4, 8; i + 16 is i - 8 (mod 24) again
    assert spectral_gap(mixing_matrix(build_graph("exponential", 64, 0)[0])) > 10 * spectral_gap(
        mixing_matrix(build_graph("ring", 64, 0)[0]))  # log-degree graphs mix much faster than a ring


def test_a_social_graph_is_connected_by_the_documented_rule():
    g = nx.empty_graph(10)
    g.add_edges_from([(0, 1), (1, 2), (2, 3), (4, 5)])  # main component {0..3}, pair {4,5}, isolated 6..9
    out, done = connect(g, seed=0)
    assert nx.is_connected(out)
    assert done == {"isolated": 4, "components": 6, "added_edges": 5}
    assert out.number_of_edges() == g.number_of_edges() + 5
    added = set(map(frozenset, out.edges())) - set(map(frozenset, g.edges()))
    assert all(len(e & {0, 1, 2, 3}) == 1 for e in added)  # each new edge reaches into the largest component
    g2, report = build_graph("social", 10, 0, np.array([[0, 1], [1, 2], [2, 3], [4, 5], [3, 3]]), "friends.dat")
    assert report.isolated == 4 and report.added_edges == 5 and report.source == "friends.dat"


def _models(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {"t_item": torch.zeros(40, 8), "w": torch.zeros(8, 6), "b": torch.zeros(8)}
    models = NodeModels(state, n, {"t_item": "item"})
    for k in models.x:
        models.x[k].normal_(generator=g)
    return models


@pytest.mark.parametrize("algorithm,compression,gamma,rounds", [
    ("dpsgd", {}, 1.0, 300),
    ("choco", {"method": "topk", "fraction": 0.1}, 0.2, 300),  # CHOCO needs a small gamma for strong compression (0.3 diverges)
    ("choco", {"method": "int8"}, 0.8, 150),
    ("choco", {"method": "powersgd", "rank": 1}, 0.1, 300),
    ("powergossip", {"method": "powersgd", "rank": 1}, 1.0, 600),
])
def test_consensus_on_fixed_vectors_converges_and_keeps_the_average(algorithm, compression, gamma, rounds):
    models = _models()
    g, _ = build_graph("torus", 12, 0)
    w = mixing_matrix(g)
    cfg = config_from_dict({"mode": "gossip", "gossip": {"algorithm": algorithm, "consensus_lr": gamma,
                                                         **({"compression": compression} if compression else {})}})
    exchange = make_exchange(cfg.gossip, w, np.asarray(w.getnnz(axis=1) - 1), models, seed=0)
    mean = {k: v.clone() for k, v in models.mean().items()}
    start = models.consensus_distance()
    sent = 0
    for rnd in range(1, rounds + 1):
        sent += exchange.step(models, rnd)
    assert models.consensus_distance() < 1e-4 * start
    assert all(torch.allclose(models.mean()[k], mean[k], atol=1e-4) for k in mean)  # mixing never moves the mean
    assert (sent > 0).all()


def test_compressed_gossip_sends_fewer_bytes_per_round_than_dpsgd():
    models = _models()
    g, _ = build_graph("ring", 12, 0)
    w = mixing_matrix(g)
    deg = np.asarray(w.getnnz(axis=1) - 1)

    def per_round(algorithm, compression=None):
        cfg = config_from_dict({"mode": "gossip", "gossip": {"algorithm": algorithm, **({"compression": compression} if compression else {})}})
        return make_exchange(cfg.gossip, w, deg, _models(), 0).step(models, 1)

    full = per_round("dpsgd")
    assert (full == 2 * 4 * (40 * 8 + 8 * 6 + 8)).all()  # two neighbours, the whole float32 model each
    topk = per_round("choco", {"method": "topk", "fraction": 0.05})
    codec = make_codec("topk", fraction=0.05)
    assert (topk == 2 * (codec.nbytes(40, 8) + codec.nbytes(8, 6) + codec.nbytes(1, 8))).all()
    power = per_round("powergossip", {"method": "powersgd", "rank": 1})
    assert (power == 2 * 4 * (8 + 6 + 8)).all()  # odd round: Q factors (cols x rank) of both matrices, the bias exactly


def test_node_models_start_add_and_mean():
    from fedrec.client.layout import ModelLayout
    from fedrec.model import build_model
    from tests.factories import toy_federated_data

    data = toy_federated_data()
    cfg = config_from_dict({})
    state = {k: v.detach() for k, v in build_model(data.train.spec, cfg.model, seed=0).state_dict().items()}
    layout = ModelLayout.of(state, data.train.spec)
    models = NodeModels(state, data.num_clients, layout.tables, data)
    start = models.start(2)
    ids = models.ids(2)
    table = next(iter(layout.tables))
    assert torch.equal(start.rows[table], state[table][ids[table]])
    delta = ClientUpdate(2, 1.0, {k: torch.ones_like(v) for k, v in start.dense.items()},
                         {table: (ids[table], torch.ones_like(start.rows[table]))})
    models.add([delta])
    assert torch.equal(models.x[table][2, ids[table]], state[table][ids[table]] + 1)
    assert torch.equal(models.x[table][3], state[table])  # other nodes untouched
    assert models.consensus_distance() > 0
    n = data.num_clients
    assert torch.allclose(models.mean()[table][ids[table]], state[table][ids[table]] + 1 / n)
    assert len(select_nodes(n, 5, 0, 1)) == 5 and (select_nodes(n, 10**6, 0, 1) == np.arange(n)).all()


def test_batched_node_evaluation_equals_torchrec_prediction():
    from fedrec.client.layout import ModelLayout
    from fedrec.gossip.evaluate import node_probabilities
    from fedrec.model import build_model, predict
    from tests.factories import toy_federated_data

    data = toy_federated_data(features=("item", "user"))
    cfg = config_from_dict({})
    model = build_model(data.train.spec, cfg.model, seed=0)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    layout = ModelLayout.of(state, data.train.spec)
    models = NodeModels(state, 5, layout.tables)
    g = torch.Generator().manual_seed(0)
    for v in models.x.values():
        v.add_(torch.randn(v.shape, generator=g) * 0.1)
    probs = node_probabilities(models, layout, data.test, group=2, batch=7)
    for node in (0, 4):
        model.load_state_dict(models.node_state(node))
        ref, _ = predict(model, list(data.test.iter_batches(64)))
        assert np.allclose(probs[node], ref.numpy(), atol=1e-5)


def test_social_topology_reads_the_lastfm_friends_graph(tmp_path):
    from fedrec.gossip.graphs import social_edges
    from fedrec.runtime import load_federated_data
    from tests.conftest import require_dataset

    folder = require_dataset("hetrec2011-lastfm-2k")
    cfg = config_from_dict({"mode": "gossip", "data": {"path": str(folder), "format": "lastfm", "split": "user_random",
                                                       "negatives": 1, "features": ["item"]},
                            "gossip": {"topology": "social"}})
    data = load_federated_data(cfg)
    pairs, source = social_edges(None, cfg.data, data.client_users)
    assert source.endswith("user_friends.dat") and len(pairs) > 10_000
    assert pairs.min() >= 0 and pairs.max() < data.num_clients
    g, report = build_graph("social", data.num_clients, 0, pairs, source)
    assert nx.is_connected(g) and report.edges == len(pairs) + report.added_edges
