"""Federated building blocks without Ray: aggregation, strategies (exact values), the update
pipeline, local training, configs, the clock and client facts."""

import math

import numpy as np
import pytest
import torch

from data_pipeline.errors import ConfigError
from data_pipeline.features import interaction_examples
from data_pipeline.partition import natural_partition
from fedrec.client.clock import ClockConfig, client_seconds
from fedrec.client.config import ClientTrainConfig
from fedrec.client.data import ClientData
from fedrec.client.local import LocalTrainer, upload_bytes
from fedrec.client.tiers import Tier, TierSpec
from fedrec.config import config_from_dict
from fedrec.model import ModelConfig
from fedrec.pipeline import ServerContext, UpdatePipeline
from fedrec.strategies import FedAdagrad, FedAdam, FedAvg, FedAvgM, FedProx, FedYogi, StrategyConfig
from fedrec.updates import AggregatedUpdate, ClientUpdate, StateChange
from tests.unit.test_data_core import _toy


def _update(client, weight, w=None, rows=None):
    dense = {"w": torch.tensor(w, dtype=torch.float32)} if w is not None else {}
    sparse = {"emb": (torch.tensor(rows[0]), torch.tensor(rows[1], dtype=torch.float32))} if rows else {}
    return ClientUpdate(client, float(weight), dense, sparse)


def test_rows_are_averaged_over_the_clients_that_touched_them():
    agg = AggregatedUpdate.from_clients([
        _update(0, 1, [1.0, 1.0, 1.0], ([0, 1], [[2.0, 2.0], [4.0, 4.0]])),
        _update(1, 3, [4.0, 4.0, 4.0], ([1], [[1.0, 1.0]])),
    ])
    mean = agg.mean()
    ids, rows = mean.sparse["emb"]
    assert ids.tolist() == [0, 1]
    assert rows[0].tolist() == [2.0, 2.0]  # only client 0 touched row 0: not diluted
    assert rows[1].tolist() == [1.75, 1.75]  # (1*4 + 3*1) / 4
    assert torch.allclose(mean.dense["w"], torch.full((3,), 3.25))  # (1*1 + 3*4) / 4
    assert agg.clients == 2 and agg.weight == 4.0


def test_cohort_row_mean_divides_every_row_by_the_whole_cohorts_weight():
    """``row_mean: cohort`` is dense FedAvg's average: a client that left a row alone counts a zero
    change, so row 0 (one client of weight 1 out of 4) moves a quarter as far as under ``touchers``."""
    agg = AggregatedUpdate.from_clients([
        _update(0, 1, [1.0, 1.0, 1.0], ([0, 1], [[2.0, 2.0], [4.0, 4.0]])),
        _update(1, 3, [4.0, 4.0, 4.0], ([1], [[1.0, 1.0]])),
    ])
    cohort, touchers = agg.mean("cohort"), agg.mean()
    ids, rows = cohort.sparse["emb"]
    assert ids.tolist() == [0, 1]
    assert rows[0].tolist() == [0.5, 0.5]  # 1*2 / 4
    assert rows[1].tolist() == [1.75, 1.75]  # touched by the whole cohort: the same either way
    assert torch.equal(cohort.dense["w"], touchers.dense["w"])
    state = {"w": torch.zeros(3), "emb": torch.zeros(3, 2)}
    FedAvg(StrategyConfig(row_mean="cohort", server_lr=2.0), ClientTrainConfig()).aggregate_fit(state, agg)
    assert state["emb"].tolist() == [[1.0, 1.0], [3.5, 3.5], [0.0, 0.0]]  # the strategy takes the config's average


def test_pre_aggregation_equals_flat_aggregation():
    rng = np.random.default_rng(0)
    ups = [_update(c, int(rng.integers(1, 9)), rng.normal(size=3).tolist(),
                   (sorted(rng.choice(5, 2, replace=False).tolist()), rng.normal(size=(2, 2)).tolist())) for c in range(6)]
    flat = AggregatedUpdate.from_clients(ups).mean()
    parts = AggregatedUpdate.combine([AggregatedUpdate.from_clients(ups[:2]), AggregatedUpdate.from_clients(ups[2:])]).mean()
    assert torch.allclose(flat.dense["w"], parts.dense["w"], atol=1e-6)
    assert torch.equal(flat.sparse["emb"][0], parts.sparse["emb"][0])
    assert torch.allclose(flat.sparse["emb"][1], parts.sparse["emb"][1], atol=1e-6)


def test_per_client_pipeline_path_gives_the_fast_paths_aggregate():
    ups = [_update(c, c + 1, [float(c), 1.0], ([c % 3, 4], [[1.0, c], [2.0, 2.0]])) for c in range(5)]
    ctx = ServerContext(1, 0, 5)
    fast, slow = UpdatePipeline(), UpdatePipeline(force_per_client=True)
    assert not fast.per_client and slow.per_client
    a = fast.server_side([fast.pack(ups[:2]), fast.pack(ups[2:])], ctx).mean()
    b = slow.server_side([slow.pack(ups[:2]), slow.pack(ups[2:])], ctx).mean()
    assert slow.pack(ups).updates is not None and fast.pack(ups).updates is None
    assert torch.allclose(a.dense["w"], b.dense["w"]) and torch.allclose(a.sparse["emb"][1], b.sparse["emb"][1])
    scaled = fast.server_side([fast.pack(ups).scaled(0.5)], ctx).mean()
    assert torch.allclose(scaled.dense["w"], 0.5 * a.dense["w"])  # a discount on deltas, not on weights


# --- strategies, against hand computation -------------------------------------------------------
def _state():
    return {"w": torch.zeros(2), "emb": torch.zeros(4, 2)}


def _round(strategy, state, d, rows):
    """Apply one round whose averaged update is dense ``d`` and table rows ``rows`` {id: [x, y]}."""
    ids = sorted(rows)
    strategy.aggregate_fit(state, AggregatedUpdate.from_clients([_update(0, 1, d, (ids, [rows[i] for i in ids]))]))
    return state


def test_fedavg_and_fedprox_add_the_averaged_delta_times_server_lr():
    for cls in (FedAvg, FedProx):
        s = _round(cls(StrategyConfig(server_lr=0.5), ClientTrainConfig()), _state(), [1.0, -2.0], {2: [4.0, 0.0]})
        assert s["w"].tolist() == [0.5, -1.0]
        assert s["emb"].tolist() == [[0, 0], [0, 0], [2.0, 0.0], [0, 0]]


def test_fedprox_sends_its_mu_to_the_clients_and_fedavg_does_not():
    base = ClientTrainConfig(lr=0.1)
    prox = FedProx(StrategyConfig(name="fedprox", proximal_mu=0.5), base)
    fit = prox.configure_fit(np.random.default_rng(0), np.arange(10), np.zeros(10, dtype=int), 3, "uniform")
    assert fit.config.proximal_mu == 0.5 and fit.config.lr == 0.1 and len(fit.clients) == 3
    assert FedAvg(StrategyConfig(proximal_mu=0.5), base).configure_fit(
        np.random.default_rng(0), np.arange(10), np.zeros(10, dtype=int), 3, "uniform").config.proximal_mu == 0.0


def test_fedavgm_momentum_by_hand():
    m = FedAvgM(StrategyConfig(momentum=0.5, server_lr=1.0), ClientTrainConfig())
    s = _round(m, _state(), [1.0, 1.0], {1: [2.0, 2.0]})
    s = _round(m, s, [1.0, 1.0], {3: [1.0, 1.0]})
    assert s["w"].tolist() == [2.5, 2.5]  # velocity 1, then 0.5 * 1 + 1 = 1.5
    assert s["emb"][1].tolist() == [2.0, 2.0]  # row 1 untouched in round 2: its velocity does not move it
    assert s["emb"][3].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("cls, v_next", [
    (FedAdagrad, lambda v, d, b2: v + d * d),
    (FedAdam, lambda v, d, b2: b2 * v + (1 - b2) * d * d),
    (FedYogi, lambda v, d, b2: v - (1 - b2) * d * d * math.copysign(1.0, v - d * d) if v != d * d else v),
])
def test_fedopt_steps_by_hand_with_lazy_rows(cls, v_next):
    lr, b1, b2, tau = 0.5, 0.9, 0.99, 0.1
    opt = cls(StrategyConfig(server_lr=lr, beta1=b1, beta2=b2, tau=tau), ClientTrainConfig())
    s = _state()
    rounds = [([1.0, -2.0], {1: [3.0, 0.5]}), ([0.5, 0.5], {2: [-1.0, 1.0]})]
    w, m, v = [0.0, 0.0], [0.0, 0.0], [tau**2, tau**2]
    row = {1: ([0.0, 0.0], [0.0, 0.0], [tau**2, tau**2]), 2: ([0.0, 0.0], [0.0, 0.0], [tau**2, tau**2])}
    for d, rows in rounds:
        s = _round(opt, s, d, rows)
        for k in range(2):  # dense: moments every round
            m[k] = b1 * m[k] + (1 - b1) * d[k]
            v[k] = v_next(v[k], d[k], b2)
            w[k] += lr * m[k] / (math.sqrt(v[k]) + tau)
        for r, x in rows.items():  # rows: only those touched this round
            rw, rm, rv = row[r]
            for k in range(2):
                rm[k] = b1 * rm[k] + (1 - b1) * x[k]
                rv[k] = v_next(rv[k], x[k], b2)
                rw[k] += lr * rm[k] / (math.sqrt(rv[k]) + tau)
        assert s["w"].tolist() == pytest.approx(w, rel=1e-5)
        for r, (rw, _, _) in row.items():
            assert s["emb"][r].tolist() == pytest.approx(rw, rel=1e-5)
        assert s["emb"][0].tolist() == [0.0, 0.0] and s["emb"][3].tolist() == [0.0, 0.0]  # never touched
    assert opt.m["emb"][1].tolist() == pytest.approx(row[1][1], rel=1e-5)  # row 1's moments kept through round 2
    assert opt.v["emb"][0].tolist() == pytest.approx([tau**2, tau**2])


def test_state_change_carries_exactly_what_the_step_wrote():
    before = {"w": torch.randn(2), "emb": torch.randn(5, 2)}
    after = {k: t.clone() for k, t in before.items()}
    update = AggregatedUpdate.from_clients([_update(0, 1, [1.0, 1.0], ([1, 4], [[1.0, 1.0], [2.0, 2.0]]))])
    FedAvg(StrategyConfig(), ClientTrainConfig()).aggregate_fit(after, update)
    change = StateChange.of(after, update, {"emb"})
    assert change.rows["emb"][0].tolist() == [1, 4]
    replica = {k: t.clone() for k, t in before.items()}
    change.apply_to(replica)
    for k in before:
        assert torch.equal(replica[k], after[k]), k
    assert change.nbytes() == 2 * 4 + 2 * 8 + 2 * 2 * 4  # dense w, two ids, two rows


def test_empty_round_leaves_the_model_alone():
    s = _state()
    s["w"] += 1
    FedYogi(StrategyConfig(), ClientTrainConfig()).aggregate_fit(s, AggregatedUpdate())
    assert s["w"].tolist() == [1.0, 1.0]


def test_tier_stratified_sampling_follows_tier_sizes():
    tiers = np.array([0] * 50 + [1] * 30 + [2] * 20)
    fit = FedAvg(StrategyConfig(), ClientTrainConfig()).configure_fit(np.random.default_rng(0), np.arange(100), tiers, 10,
                                                                      "tier-stratified")
    assert np.bincount(tiers[fit.clients], minlength=3).tolist() == [5, 3, 2]


# --- local training -------------------------------------------------------------------------------
def _client_data(n_users=4, per_user=12):
    ex = interaction_examples(_toy(n_users=n_users, per_user=per_user), features=("user", "item"))
    return ClientData(ex, natural_partition(ex.groups))


def test_local_trainer_sparse_delta_and_restore():
    data = _client_data()
    trainer = LocalTrainer(data, ModelConfig(embedding_dim=4))
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.load_global(state)
    r = trainer.train(0, state, ClientTrainConfig(lr=0.5, batch_size=4), seed=1)
    item_table = next(n for n in r.update.sparse if n.endswith("t_item.weight"))
    ids, delta = r.update.sparse[item_table]
    rows = data.partitions[0]
    assert set(ids.tolist()) == set(np.unique(data.examples.values["item"][rows]).tolist())
    assert delta.abs().sum() > 0 and r.update.weight == len(rows)
    for name, p in trainer.model.state_dict().items():  # model restored to the global weights
        assert torch.equal(p, state[name]), name
    again = trainer.train(0, state, ClientTrainConfig(lr=0.5, batch_size=4), seed=1)
    assert torch.equal(again.update.sparse[item_table][1], delta)  # deterministic by seed
    assert r.update.nbytes() < sum(t.numel() * 4 for t in state.values())
    whole = trainer.train(0, state, ClientTrainConfig(lr=0.5, batch_size=4, sparse_updates=False), seed=1)
    assert whole.update.nbytes() == sum(t.numel() * 4 for t in state.values())  # whole tables, no ids
    assert torch.equal(whole.update.sparse[item_table][1][ids], delta)


def test_client_upload_bytes_match_the_serialized_update():
    data = _client_data()
    trainer = LocalTrainer(data, ModelConfig(embedding_dim=4))
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.load_global(state)
    for c in range(len(data.partitions)):
        measured = trainer.train(c, state, ClientTrainConfig(), seed=0).update.nbytes()
        assert upload_bytes(state, trainer.layout.tables, data.client(c)[1]) == measured


def test_clock_and_tiers():
    t = Tier(name="low", share=1.0, speed=0.5, up_mbps=1.0, down_mbps=8.0)
    s = client_seconds(t, local_steps=10, bytes_down=1_000_000, bytes_up=125_000, clock=ClockConfig(step_seconds=0.1))
    assert s == pytest.approx(10 * 0.1 / 0.5 + 1.0 + 1.0)
    spec = TierSpec.default()
    assert spec.names == ["low", "mid", "high"] and sum(spec.shares) == pytest.approx(1.0)


# --- configs: every bad value gets one error naming its field --------------------------------------
@pytest.mark.parametrize(
    "doc, field",
    [
        ({"strategy": {"name": "nope"}}, "strategy.name"),
        ({"tiers": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}]}, "tiers"),
        ({"client": {"lr": -1}}, "client.lr"),
        ({"tiers": [{"name": "a", "share": 1.0, "dropout": 1.5}]}, "tiers[0].dropout"),
        ({"roundz": 3}, "roundz"),
        ({"client": {"lrr": 0.1}}, "client.lrr"),
        ({"rounds": 0}, "rounds"),
        ({"client": {"batched": "false"}}, "client.batched"),  # a truthy string is not a bool
        ({"rounds": 2.5}, "rounds"),
        ({"rounds": True}, "rounds"),
        ({"rounds": "three"}, "rounds"),
        ({"data": {"features": "item"}}, "data.features"),  # not split into characters
        ({"seed": "abc"}, "seed"),
        ({"model": {"dense_arch": 16}}, "model.dense_arch"),
        ({"model": {"dense_arch": [16, 0]}}, "model.dense_arch[1]"),
        ({"data": {"partition": "dirichlet", "num_clients": 0}}, "data.num_clients"),
        ({"data": {"partition": "quantity"}}, "data.num_clients"),
        ({"data": {"num_clients": 5}}, "data.num_clients"),  # natural partition: one client per user
        ({"ensemble": {"clustering": "tier"}}, "ensemble"),  # a FEL section in a sync run
        ({"mode": "fel", "async": {"buffer_size": 3}}, "async"),
        ({"mode": "fedbuff", "async": {"buffer_size": 30, "concurrency": 10}}, "async"),
        ({"mode": "fel", "ensemble": {"submodels": [{"embedding_dim": 8}]}}, "ensemble.submodels"),
        ({"data": {"validation_fraction": 0.5, "test_fraction": 0.5}}, "data.test_fraction"),
        ({"sampling": "everyone"}, "sampling"),
        ({"strategy": {"row_mean": "clients"}}, "strategy.row_mean"),
        ({"mode": "gossip", "strategy": {"row_mean": "cohort"}}, "strategy.row_mean"),  # nodes, no server
    ],
)
def test_bad_configs_name_the_field(doc, field):
    with pytest.raises(ConfigError) as err:
        config_from_dict(doc)
    assert str(err.value).startswith(f"config field '{field}':"), str(err.value)


def test_label_threshold_outside_the_ratings_is_named(ml100k_path):
    from fedrec.runtime.data import load_federated_data

    cfg = config_from_dict({"data": {"path": str(ml100k_path), "label_threshold": 9}})
    with pytest.raises(ConfigError, match="'data.label_threshold'"):
        load_federated_data(cfg)


def test_configs_round_trip_and_overrides():
    from fedrec.config import config_to_dict, load_config

    for name in ("ml100k_fedavg", "ml100k_fedbuff", "ml100k_fel", "ml100k_tiers_rf2", "ml100k_fedprox", "ml100k_compressed",
                 "ml100k_gossip", "lastfm_gossip_social"):
        cfg = load_config(f"configs/{name}.yaml")
        assert config_from_dict(config_to_dict(cfg)) == cfg
    cfg = load_config("configs/ml100k_fedavg.yaml", rounds=3, **{"client.lr": 0.2})
    assert (cfg.rounds, cfg.client.lr) == (3, 0.2)
    with pytest.raises(ConfigError, match="'client.lr'"):
        cfg.with_(**{"client.lr": "fast"})


def test_synthetic_federated_data_partitions_every_row_once():
    from fedrec.synthetic import synthetic_federated_data

    d = synthetic_federated_data(200, rows_per_client=5, max_cardinality=500, seed=1)
    rows = np.concatenate(d.partitions)
    assert len(d.partitions) == 200 and min(map(len, d.partitions)) >= 1
    assert np.array_equal(np.sort(rows), np.arange(len(d.train)))
    assert len(d.test) > 0 and len(d.validation) > 0 and d.train.spec.sparse_names[0] == "C1"
    assert all(f.cardinality <= 500 for f in d.train.spec.sparse)


def _facts(**client):
    from fedrec.client.layout import ModelLayout
    from fedrec.runtime.data import FederatedData
    from fedrec.runtime.facts import ClientFacts, client_tiers

    data = _client_data()
    fd = FederatedData(data.examples, data.examples.take(np.arange(5)), data.partitions, np.arange(4), np.zeros(5, dtype=np.int64))
    cfg = config_from_dict({"model": {"embedding_dim": 4}, "client": client})
    trainer = LocalTrainer(data, cfg.model)
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.load_global(state)
    facts = ClientFacts(cfg, fd, state, ModelLayout.of(state, data.spec), client_tiers(cfg, fd))
    return facts, trainer, state, cfg


def test_vectorised_client_facts_match_what_clients_upload():
    facts, trainer, state, cfg = _facts()
    for c in range(4):
        assert facts.upload_bytes(c) == trainer.train(c, state, cfg.client, seed=0).update.nbytes()
        assert facts.download_bytes(c) == facts.model_bytes


def test_sparse_downloads_count_the_clients_rows_and_shorten_their_time():
    dense, _, _, _ = _facts()
    sparse, _, _, _ = _facts(sparse_downloads=True)
    for c in range(4):
        assert sparse.download_bytes(c) == sparse.upload_bytes(c) < sparse.model_bytes
        assert sparse.client_time(c) < dense.client_time(c)


def test_model_diverged_is_a_config_error_that_survives_pickling():
    import pickle

    from data_pipeline.errors import ConfigError
    from fedrec.runtime.run import ModelDiverged

    exc = pickle.loads(pickle.dumps(ModelDiverged("sign_flip/mean", "sign_flip/mean", 47, 0.3, 2)))
    assert isinstance(exc, ConfigError) and exc.field == "client.lr"
    assert (exc.key, exc.round) == ("sign_flip/mean", 47)
    assert str(exc) == ("config field 'client.lr': model 'sign_flip/mean' diverged (non-finite weights) in round 47; "
                        "lower client.lr (0.3) or client.local_epochs (2)")


def test_finite_weights_with_overflowing_predictions_count_as_diverged():
    """Weights can stay finite while the activations overflow (inf - inf in the interaction): the
    evaluation names the divergence instead of handing NaN probabilities to the metrics."""
    from fedrec.runtime.run import FederatedRun, ModelDiverged
    from fedrec.synthetic import synthetic_federated_data

    data = synthetic_federated_data(20, rows_per_client=8, max_cardinality=50, seed=1)
    run = FederatedRun(config_from_dict({"model": {"embedding_dim": 4}}), data, None)
    assert math.isfinite(run.evaluate()["auc"])
    run.round = 7
    for name, t in run.state.items():
        t.fill_(1e30 if "weight" in name else 0.0)
    assert all(torch.isfinite(t).all() for t in run.state.values())
    with pytest.raises(ModelDiverged) as err:
        run.evaluate()
    assert err.value.round == 7
