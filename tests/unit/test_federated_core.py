"""Federated building blocks without Ray: aggregation, strategies, local training, config, clock."""

import numpy as np
import pytest
import torch

from data_pipeline.errors import ConfigError
from data_pipeline.features import interaction_examples
from fedrec.client.clock import ClockConfig, client_seconds
from fedrec.client.local import ClientTrainConfig, LocalTrainer
from fedrec.client.tiers import Tier, TierSpec
from fedrec.config import config_from_dict
from fedrec.model import ModelConfig
from fedrec.strategies import FedAdam, FedAvg, FedAvgM, FedYogi, StrategyConfig, make_strategy
from fedrec.updates import UpdateAccumulator
from tests.unit.test_data_core import _toy


def _state():
    return {"emb": torch.zeros(5, 2), "w": torch.zeros(3)}


def test_rows_are_averaged_over_the_clients_that_touched_them():
    acc = UpdateAccumulator(_state(), {"emb"})
    acc.add_client({"w": torch.ones(3)}, {"emb": (torch.tensor([0, 1]), torch.tensor([[2.0, 2.0], [4.0, 4.0]]))}, weight=1)
    acc.add_client({"w": torch.full((3,), 4.0)}, {"emb": (torch.tensor([1]), torch.tensor([[1.0, 1.0]]))}, weight=3)
    agg = acc.result()
    assert agg.sparse["emb"].ids.tolist() == [0, 1]
    delta = agg.mean_delta(_state())
    assert delta["emb"][0].tolist() == [2.0, 2.0]  # only client 1 touched row 0: not diluted
    assert delta["emb"][1].tolist() == [1.75, 1.75]  # (1*4 + 3*1) / 4
    assert delta["emb"][2:].abs().sum() == 0
    assert torch.allclose(delta["w"], torch.full((3,), 3.25))  # (1*1 + 3*4) / 4


def test_pre_aggregation_equals_flat_aggregation():
    rng = np.random.default_rng(0)
    clients = [({"w": torch.randn(3)}, {"emb": (torch.tensor(sorted(rng.choice(5, 2, replace=False))), torch.randn(2, 2))}, float(rng.integers(1, 9))) for _ in range(6)]
    flat = UpdateAccumulator(_state(), {"emb"})
    for c in clients:
        flat.add_client(*c)
    server = UpdateAccumulator(_state(), {"emb"})
    for part in (clients[:2], clients[2:]):
        actor = UpdateAccumulator(_state(), {"emb"})
        for c in part:
            actor.add_client(*c)
        server.add_aggregate(actor.result())
    a, b = flat.result().mean_delta(_state()), server.result().mean_delta(_state())
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6)


def _agg(delta_w):
    acc = UpdateAccumulator({"w": torch.zeros(2)}, set())
    acc.add_client({"w": torch.tensor(delta_w)}, {}, 1.0)
    return acc.result()


def test_strategy_math():
    g = {"w": torch.zeros(2)}
    assert FedAvg(StrategyConfig(), ClientTrainConfig()).aggregate_fit(g, _agg([1.0, -2.0]))["w"].tolist() == [1.0, -2.0]
    m = FedAvgM(StrategyConfig(momentum=0.5), ClientTrainConfig())
    s1 = m.aggregate_fit(g, _agg([1.0, 1.0]))
    s2 = m.aggregate_fit(s1, _agg([1.0, 1.0]))
    assert s2["w"].tolist() == [2.5, 2.5]  # velocity 1 then 1.5
    adam = FedAdam(StrategyConfig(server_lr=0.1, beta1=0.0, beta2=0.0, tau=1e-9), ClientTrainConfig())
    step = adam.aggregate_fit(g, _agg([4.0, -0.01]))["w"]
    assert torch.allclose(step, torch.tensor([0.1, -0.1]), atol=1e-4)  # sign-like step of size lr
    yogi = FedYogi(StrategyConfig(server_lr=0.1), ClientTrainConfig())
    assert torch.isfinite(yogi.aggregate_fit(g, _agg([1.0, 1.0]))["w"]).all()
    with pytest.raises(ConfigError, match="strategy.name"):
        make_strategy(StrategyConfig(name="fedsgd"), ClientTrainConfig())


def test_tier_stratified_sampling_follows_tier_sizes():
    tiers = np.array([0] * 50 + [1] * 30 + [2] * 20)
    chosen, _ = FedAvg(StrategyConfig(), ClientTrainConfig()).configure_fit(np.random.default_rng(0), np.arange(100), tiers, 10, "tier-stratified")
    assert np.bincount(tiers[chosen], minlength=3).tolist() == [5, 3, 2]


def test_local_trainer_sparse_delta_and_restore():
    data = _toy()
    ex = interaction_examples(data, features=("user", "item"))
    trainer = LocalTrainer(ex.spec, ModelConfig(embedding_dim=4), ex)
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.load_global(state)
    rows = np.flatnonzero(ex.groups == ex.groups[0])
    r = trainer.train(0, rows, state, ClientTrainConfig(lr=0.5, batch_size=4), seed=1)
    item_table = next(n for n in r.sparse_delta if n.endswith("t_item.weight"))
    ids, delta = r.sparse_delta[item_table]
    assert set(ids.tolist()) == set(np.unique(ex.values["item"][rows]).tolist())
    assert delta.abs().sum() > 0
    for name, p in trainer.model.state_dict().items():  # model restored to the global weights
        assert torch.equal(p, state[name]), name
    again = trainer.train(0, rows, state, ClientTrainConfig(lr=0.5, batch_size=4), seed=1)
    assert torch.equal(again.sparse_delta[item_table][1], delta)  # deterministic by seed
    assert r.bytes_up < sum(t.numel() * 4 for t in state.values())


def test_clock_and_tiers():
    t = Tier("low", 1.0, speed=0.5, up_mbps=1.0, down_mbps=8.0)
    s = client_seconds(t, local_steps=10, bytes_down=1_000_000, bytes_up=125_000, clock=ClockConfig(step_seconds=0.1))
    assert s == pytest.approx(10 * 0.1 / 0.5 + 1.0 + 1.0)
    spec = TierSpec.default()
    assert spec.names == ["low", "mid", "high"] and sum(spec.shares) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "doc, field",
    [
        ({"strategy": {"name": "nope"}}, "strategy.name"),
        ({"tiers": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}]}, "tiers.share"),
        ({"client": {"lr": -1}}, "client.lr"),
        ({"tiers": [{"name": "a", "share": 1.0, "dropout": 1.5}]}, "tiers[0].dropout"),
        ({"roundz": 3}, "roundz"),
        ({"client": {"lrr": 0.1}}, "client.lrr"),
        ({"rounds": 0}, "rounds"),
    ],
)
def test_bad_configs_name_the_field(doc, field):
    with pytest.raises(ConfigError) as err:
        config_from_dict(doc)
    assert f"'{field}'" in str(err.value)


def test_synthetic_federated_data_partitions_every_row_once():
    from fedrec.synthetic import synthetic_federated_data

    d = synthetic_federated_data(200, rows_per_client=5, max_cardinality=500, seed=1)
    rows = np.concatenate(d.partitions)
    assert len(d.partitions) == 200 and min(map(len, d.partitions)) >= 1
    assert np.array_equal(np.sort(rows), np.arange(len(d.train)))
    assert len(d.test) > 0 and d.train.spec.sparse_names[0] == "C1"
    assert all(f.cardinality <= 500 for f in d.train.spec.sparse)


def test_vectorised_upload_bytes_match_what_clients_upload():
    from data_pipeline.partition import natural_partition
    from fedrec.config import FederatedConfig
    from fedrec.server import FederatedData, FederatedServer

    ex = interaction_examples(_toy(n_users=4, per_user=12), features=("user", "item"))
    parts = natural_partition(ex.groups)
    data = FederatedData(ex, ex.take(np.arange(5)), parts, np.arange(len(parts)), np.zeros(5, dtype=np.int64))
    server = FederatedServer(FederatedConfig(model=ModelConfig(embedding_dim=4)), data)
    trainer = LocalTrainer(ex.spec, ModelConfig(embedding_dim=4), ex)
    trainer.load_global(server.state)
    for c, rows in enumerate(parts):
        uploaded = trainer.train(c, rows, server.state, ClientTrainConfig(), seed=0).bytes_up
        assert server.upload_bytes(c) == uploaded


def test_sparse_downloads_count_the_clients_rows_and_shorten_their_time():
    from dataclasses import replace

    from data_pipeline.partition import natural_partition
    from fedrec.config import FederatedConfig
    from fedrec.server import FederatedData, FederatedServer

    ex = interaction_examples(_toy(n_users=4, per_user=12), features=("user", "item"))
    parts = natural_partition(ex.groups)
    data = FederatedData(ex, ex.take(np.arange(5)), parts, np.arange(len(parts)), np.zeros(5, dtype=np.int64))
    whole = FederatedConfig(model=ModelConfig(embedding_dim=4))
    sparse = replace(whole, client=replace(whole.client, sparse_downloads=True))
    dense_server, sparse_server = FederatedServer(whole, data), FederatedServer(sparse, data)
    for c in range(len(parts)):
        assert dense_server.download_bytes(c) == dense_server.model_bytes
        assert sparse_server.download_bytes(c) == sparse_server.upload_bytes(c) < sparse_server.model_bytes
        assert sparse_server.client_time(c) < dense_server.client_time(c)
    assert config_from_dict({"client": {"sparse_downloads": True}}).client.sparse_downloads is True
