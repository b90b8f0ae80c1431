"""Gossip without Ray: graphs and the rule that connects a social graph, doubly stochastic mixing
weights, consensus of D-PSGD, CHOCO-SGD and PowerGossip on fixed vectors (no training), how local
updates reach the nodes (D-PSGD on the complete graph is FedAvg), the stacked node models, and the
batched node evaluation against TorchRec."""

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from data_pipeline.errors import ConfigError
from fedrec.config import config_from_dict
from fedrec.gossip import NodeModels, build_graph, make_exchange, mixing_matrix, select_nodes, spectral_gap
from fedrec.gossip.graphs import connect, torus_shape
from fedrec.gossip.mixing import as_torch
from fedrec.gossip.updates import apply_updates
from fedrec.pipeline.codec import make_codec, matrix_shape
from fedrec.pipeline.powersgd import orthonormalize
from fedrec.updates import AggregatedUpdate, ClientUpdate


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


HUB_EDGES = np.array([[0, i] for i in range(1, 8)] + [[7, 8], [8, 9], [9, 10], [10, 11], [11, 1]])  # degrees 7, 3, 2


def _exchange(algorithm, compression, gamma, models, w):
    cfg = config_from_dict({"mode": "gossip", "gossip": {"algorithm": algorithm, "consensus_lr": gamma,
                                                         **({"compression": compression} if compression else {})}})
    return make_exchange(cfg.gossip, w, np.asarray(w.getnnz(axis=1) - 1), models, seed=0)


def test_choco_topk_equals_the_textbook_update():
    """The kept s = (W - I) X_hat, updated from the messages alone, gives CHOCO's update:
    x_hat += topk(x - x_hat); x += gamma (W X_hat - X_hat), computed here in float64 in full."""
    models = _models()
    w = mixing_matrix(build_graph("social", 12, 0, HUB_EDGES)[0])
    exchange = _exchange("choco", {"method": "topk", "fraction": 0.1}, 0.3, models, w)
    x = {k: v.double().reshape(12, -1).clone() for k, v in models.x.items()}
    xhat = {k: v.clone() for k, v in x.items()}
    wd = torch.from_numpy(w.toarray())
    codec = make_codec("topk", fraction=0.1)
    for rnd in range(1, 21):
        exchange.step(models, rnd)
        for k in x:
            diff = x[k] - xhat[k]
            keep = codec.k(*matrix_shape(models.x[k].shape[1:]))
            if 2 * keep < diff.shape[1]:  # the codec's rule: else the matrix goes raw
                top = diff.abs().topk(keep, dim=1).indices
                diff = torch.zeros_like(diff).scatter_(1, top, diff.gather(1, top))
            xhat[k] += diff
            x[k] += 0.3 * (wd @ xhat[k] - xhat[k])
    assert all(torch.allclose(models.flat(k).double(), x[k], atol=1e-5) for k in x)


@pytest.mark.parametrize("rank", [1, 2])
def test_powergossip_on_an_irregular_graph_equals_the_per_edge_update(rank):
    """Nodes grouped by degree (padded only to their block's largest) give the per-edge power
    step: for each edge e = (u, v): Q_e = (X_u - X_v)^T orth(P_e) (odd rounds; P_e from Q_e on even
    ones), then X_u -= gamma w_e P_e Q_e^T and X_v += gamma w_e P_e Q_e^T."""
    models = _models()
    g, _ = build_graph("social", 12, 0, HUB_EDGES)
    w = mixing_matrix(g)
    exchange = _exchange("powergossip", {"method": "powersgd", "rank": rank}, 0.5, models, w)
    x = {k: v.clone() for k, v in models.x.items()}
    p = {k: v.clone() for k, v in exchange.state_dict()["p"].items()}  # [edges + 1, rows, r]
    q = {k: v.clone() for k, v in exchange.state_dict()["q"].items()}
    coo = w.tocoo()
    edges = [(int(u), int(v), float(c)) for u, v, c in zip(coo.row, coo.col, coo.data) if u < v]
    for rnd in range(1, 7):
        exchange.step(models, rnd)
        for k in x:
            if k not in exchange.low_rank:
                flat = x[k].view(12, -1)
                flat += 0.5 * (torch.from_numpy(w.toarray()).float() @ flat - flat)
                continue
            for e, (u, v, _) in enumerate(edges):
                d = x[k][u] - x[k][v]
                if rnd % 2 == 1:
                    p[k][e] = orthonormalize(p[k][e : e + 1])[0]
                    q[k][e] = d.T @ p[k][e]
                else:
                    q[k][e] = orthonormalize(q[k][e : e + 1])[0]
                    p[k][e] = d @ q[k][e]
            for e, (u, v, c) in enumerate(edges):
                step = 0.5 * c * p[k][e] @ q[k][e].T
                x[k][u] -= step
                x[k][v] += step
    assert all(torch.allclose(models.x[k], x[k], atol=1e-5) for k in x)


@pytest.mark.parametrize("algorithm,compression", [("choco", {"method": "topk", "fraction": 0.1}),
                                                   ("powergossip", {"method": "powersgd", "rank": 1})])
def test_exchange_state_round_trips_bit_for_bit(algorithm, compression):
    """Three rounds, a checkpoint (through torch.save), three more on a fresh exchange: the same
    models as six straight (CHOCO's kept s and PowerGossip's factors are state)."""
    import io

    w = mixing_matrix(build_graph("social", 12, 0, HUB_EDGES)[0])
    straight, resumed = _models(), _models()
    a, b = (_exchange(algorithm, compression, 0.3, m, w) for m in (straight, resumed))
    for rnd in range(1, 7):
        a.step(straight, rnd)
    for rnd in range(1, 4):
        b.step(resumed, rnd)
    buf = io.BytesIO()
    torch.save({"nodes": resumed.state_dict(), "exchange": b.state_dict()}, buf)
    buf.seek(0)
    blob = torch.load(buf, weights_only=False)
    again = _models(seed=1)
    again.load_state_dict(blob["nodes"])
    c = _exchange(algorithm, compression, 0.3, again, w)
    c.load_state_dict(blob["exchange"])
    for rnd in range(4, 7):
        c.step(again, rnd)
    assert all(torch.equal(again.x[k], straight.x[k]) for k in straight.x)


def test_node_aucs_match_binary_metrics_with_ties_and_clipping():
    from fedrec.gossip.evaluate import aucs
    from fedrec.metrics import binary_metrics

    rng = np.random.default_rng(0)
    labels = rng.random(500) < 0.3
    probs = rng.random((6, 500)).astype(np.float32)
    probs[1] = np.round(probs[1], 1)  # many ties
    probs[2, :50] = 1e-9  # below the clip: ties at 1e-7
    probs[3] = labels * 0.5 + probs[3] * 0.6
    expected = [binary_metrics(labels, p)["auc"] for p in probs]
    assert np.allclose(aucs(labels, probs), expected, rtol=0, atol=1e-12)
    assert np.isnan(aucs(np.ones(500), probs)).all()


def test_node_starts_and_updates_cross_pickle_bit_for_bit():
    import pickle

    from fedrec.gossip.transport import PortableStart, PortableUpdate

    g = torch.Generator().manual_seed(0)
    start = PortableStart({"w": torch.randn(8, 6, generator=g), "b": torch.randn(8, generator=g)},
                          {"t_item": torch.randn(5, 8, generator=g)})
    back = pickle.loads(pickle.dumps(start, protocol=5))
    assert all(torch.equal(back.dense[k], start.dense[k]) for k in start.dense)
    assert torch.equal(back.rows["t_item"], start.rows["t_item"])
    back.rows["t_item"] += 1  # writable, and not aliasing the sender's tensors
    assert not torch.equal(back.rows["t_item"], start.rows["t_item"])
    update = PortableUpdate.of(ClientUpdate(3, 2.5, {"w": torch.randn(8, 6, generator=g)},
                                            {"t_item": (torch.tensor([1, 4, 7]), torch.randn(3, 8, generator=g))}))
    got = pickle.loads(pickle.dumps(update, protocol=5))
    assert type(got) is ClientUpdate and (got.client, got.weight, got.whole_tables) == (3, 2.5, False)
    assert torch.equal(got.dense["w"], update.dense["w"])
    ids, rows = got.sparse["t_item"]
    assert ids.dtype == torch.int64 and torch.equal(ids, update.sparse["t_item"][0]) and torch.equal(rows, update.sparse["t_item"][1])


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


def _updates(trainers, seed=0, rows=40):
    """Random updates of ``trainers``: example weights, a few touched rows of t_item each, dense deltas."""
    g = np.random.default_rng(seed)
    out = []
    for c in trainers:
        ids = np.sort(g.choice(rows, int(g.integers(1, 6)), replace=False))
        out.append(ClientUpdate(int(c), float(g.integers(1, 50)),
                                {"w": torch.from_numpy(g.normal(size=(8, 6)).astype(np.float32)),
                                 "b": torch.from_numpy(g.normal(size=8).astype(np.float32))},
                                {"t_item": (torch.from_numpy(ids), torch.from_numpy(g.normal(size=(len(ids), 8)).astype(np.float32)))}))
    return out


@pytest.mark.parametrize("weights", ["uniform", "metropolis"])
@pytest.mark.parametrize("budget", [1, 1 << 22])  # one receiving node per block, and all at once
def test_dpsgd_on_the_complete_graph_is_fedavg(weights, budget):
    """Every node starts from the same model; 9 of 12 train (few embedding rows each, uneven
    example counts); the updates reach the nodes and D-PSGD mixes once on the complete graph:
    every node holds FedAvg's model (dense deltas weighted by examples, each row averaged over the
    clients that touched it). Adding each node's own delta and averaging whole models gave the
    rows 1/12 of the clients that touched them, and the dense weights 9/12 of the mean."""
    state = {"t_item": torch.randn(40, 8), "w": torch.randn(8, 6), "b": torch.randn(8)}
    models = NodeModels(state, 12, {"t_item": "item"})
    w = mixing_matrix(build_graph("complete", 12, 0)[0], weights)
    degree = np.asarray(w.getnnz(axis=1) - 1)
    updates = _updates([0, 1, 2, 4, 5, 7, 8, 10, 11])
    sent = apply_updates(models, updates, as_torch(w), degree, budget=budget)
    _exchange("dpsgd", {}, 1.0, models, w).step(models, 1)
    fedavg = {k: v.clone() for k, v in state.items()}
    mean = AggregatedUpdate.from_clients(updates).mean()
    for k, d in mean.dense.items():
        fedavg[k] += d
    for k, (ids, rows) in mean.sparse.items():
        fedavg[k].index_add_(0, ids, rows)
    for k in state:
        assert torch.allclose(models.x[k], fedavg[k].expand_as(models.x[k]), atol=1e-5), k
    assert (sent[[u.client for u in updates]] == [11 * (u.nbytes() + 8) for u in updates]).all()
    assert (sent[[3, 6, 9]] == 0).all()


def test_each_node_applies_its_neighbourhoods_mean_update_row_by_row():
    """On an irregular graph: node i's row r moves by sum_j w_ij n_j d_j[r] / sum_j w_ij n_j over
    its neighbours j (itself included) that touched r, and stays where none did; dense tensors
    likewise over the neighbours that trained (a brute-force loop in float64)."""
    models = _models()
    before = {k: v.clone().double() for k, v in models.x.items()}
    w = mixing_matrix(build_graph("social", 12, 0, HUB_EDGES)[0])
    updates = _updates([0, 3, 4, 9], seed=1)
    apply_updates(models, updates, as_torch(w), np.asarray(w.getnnz(axis=1) - 1))
    wd = w.toarray()
    by = {u.client: u for u in updates}
    for i in range(12):
        for k in ("w", "b"):
            near = [j for j in by if wd[i, j] > 0]
            step = (sum(wd[i, j] * by[j].weight * by[j].dense[k].double() for j in near)
                    / sum(wd[i, j] * by[j].weight for j in near)) if near else 0
            assert torch.allclose(models.x[k][i].double(), before[k][i] + step, atol=1e-5)
        for r in range(40):
            near = [(j, rows[list(ids).index(r)].double()) for j in by if wd[i, j] > 0
                    for ids, rows in [by[j].sparse["t_item"]] if r in set(ids.tolist())]
            step = (sum(wd[i, j] * by[j].weight * d for j, d in near)
                    / sum(wd[i, j] * by[j].weight for j, _ in near)) if near else 0
            assert torch.allclose(models.x["t_item"][i, r].double(), before["t_item"][i, r] + step, atol=1e-5)


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
    alone = sp.identity(n := data.num_clients, format="csr")  # no neighbours: each node applies its own delta
    assert (apply_updates(models, [delta], as_torch(alone), np.zeros(n, dtype=np.int64)) == 0).all()
    assert torch.equal(models.x[table][2, ids[table]], state[table][ids[table]] + 1)
    assert torch.equal(models.x[table][3], state[table])  # other nodes untouched
    assert models.consensus_distance() > 0
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


def test_gossip_update_compression_config():
    """``compression`` compresses gossip's update messages; nodes download nothing, so a compressed
    downlink is refused with the field named."""
    cfg = config_from_dict({"mode": "gossip", "compression": {"method": "int8"}})
    assert cfg.compression.method == "int8"
    with pytest.raises(ConfigError, match="compression.downlink.*download nothing"):
        config_from_dict({"mode": "gossip", "client": {"sparse_downloads": True},
                          "compression": {"method": "int8", "downlink": "same"}})


def test_apply_updates_counts_the_sizes_as_sent():
    """With ``sizes`` (encoded messages), each trainer's bytes are degree x (its size + weight)."""
    n = 6
    models = _models(n)
    w = mixing_matrix(build_graph("ring", n, 0)[0])
    degree = np.asarray(w.getnnz(axis=1) - 1)
    updates = _updates([1, 4])
    sent = apply_updates(models, updates, as_torch(w), degree, sizes={1: 100, 4: 7})
    assert sent.tolist() == [0, 2 * 108, 0, 0, 2 * 15, 0]
