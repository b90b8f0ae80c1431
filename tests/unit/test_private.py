"""Private tables: never uploaded, kept per client between rounds, the same on the batched and the
per-client path, stored in memory or memory-mapped, exported and imported whole; client-side
scoring equals the driver's; ranking metrics by hand."""

import numpy as np
import pytest
import torch

from data_pipeline.errors import ConfigError
from fedrec.client.batched import BatchedTrainer, dlrm_probs
from fedrec.client.config import ClientTrainConfig
from fedrec.client.data import ClientData
from fedrec.client.evaluate import ranking_metrics
from fedrec.client.local import LocalTrainer
from fedrec.client.private import PrivateRows, check_single_owner, owned_rows
from fedrec.config import config_from_dict
from fedrec.model import ModelConfig
from fedrec.pipeline import UpdatePipeline
from fedrec.runtime.actor import ActorData, ClientActorImpl, ModelSync
from tests.factories import toy_federated_data

MODEL = ModelConfig(embedding_dim=4, dense_arch=(4,), over_arch=(4,), private=("user",))


@pytest.fixture(scope="module")
def fed():
    return toy_federated_data(n_users=12, per_user=15, features=("user", "item"))


def _actor(fed, n_actors=1, index=0, **kw):
    actor = ClientActorImpl(index, **kw)
    actor.set_data(ActorData.shard(fed, index, n_actors))
    trainer = LocalTrainer(ClientData(fed.train, fed.partitions), MODEL)
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    actor.sync("m", ModelSync("full", 0, MODEL), state)
    return actor, state, trainer.layout


def _user_table(layout):
    return layout.table_of_feature["user"]


@pytest.mark.parametrize("per_client", [False, True])
@pytest.mark.parametrize("batched", [True, False])
def test_no_private_row_leaves_the_actor(fed, batched, per_client):
    actor, state, layout = _actor(fed)
    cfg = ClientTrainConfig(lr=0.5, batch_size=4, batched=batched)
    arrivals, stats = actor.train("m", None, None, list(range(12)), cfg, list(range(12)), UpdatePipeline(force_per_client=per_client), 1)
    sent = arrivals.updates if per_client else [arrivals.aggregate]
    for u in sent:
        assert _user_table(layout) not in u.sparse and _user_table(layout) not in u.dense
        assert layout.table_of_feature["item"] in u.sparse  # the shared table still travels
    assert all(s.bytes_up > 0 for s in stats)


def test_private_rows_persist_between_participations(fed):
    actor, state, layout = _actor(fed)
    cfg = ClientTrainConfig(lr=0.5, batch_size=4)
    user = _user_table(layout)
    store = actor.slots["m"].private
    ids = fed.train.values["user"][fed.partitions[3]][:1]
    init = store.get(user, ids)
    assert torch.equal(init, state[user][torch.from_numpy(ids)])  # untrained: the initial row
    assert not store.is_trained(user, ids).any()
    actor.train("m", None, None, [3], cfg, [7], UpdatePipeline(), 1)
    first = store.get(user, ids)
    assert not torch.equal(first, init) and store.is_trained(user, ids).all()
    actor.train("m", None, None, [3], cfg, [7], UpdatePipeline(), 2)  # same seed, same global model
    second = store.get(user, ids)
    assert not torch.equal(second, first)  # it continued from its first participation, not from init
    assert torch.equal(actor.slots["m"].state[user], state[user])  # the actor's copy of the global table is untouched


def test_batched_and_per_client_paths_agree_with_private_rows(fed):
    data = ClientData(fed.train, fed.partitions)
    local = LocalTrainer(data, MODEL)
    state = {k: v.detach().clone() for k, v in local.model.state_dict().items()}
    local.load_global(state)
    user = _user_table(local.layout)
    owned = np.arange(12)
    init = {user: (owned_rows(fed.train, fed.partitions, "user", owned), None)}
    init[user] = (init[user][0], state[user][torch.from_numpy(init[user][0])].numpy())
    a, b = PrivateRows(init), PrivateRows(init)
    cfg = ClientTrainConfig(lr=0.3, batch_size=5, local_epochs=2, private_lr=0.9, proximal_mu=0.1)
    expected = [local.train(c, state, cfg, 10 + c, a) for c in range(12)]
    got = BatchedTrainer(data, local.layout, group_size=5).train_many(list(range(12)), state, cfg, [10 + c for c in range(12)], b)
    for e, g in zip(expected, got):
        for n in e.update.dense:
            assert torch.allclose(e.update.dense[n], g.update.dense[n], atol=1e-5)
        for n, (ids, d) in e.update.sparse.items():
            assert torch.equal(ids, g.update.sparse[n][0]) and torch.allclose(d, g.update.sparse[n][1], atol=1e-5)
    assert np.allclose(a.rows[user], b.rows[user], atol=1e-5) and not np.allclose(a.rows[user], init[user][1])


def test_memory_mapped_store_behaves_like_the_in_memory_one(tmp_path):
    ids = np.array([2, 5, 9])
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    ram, disk = PrivateRows({"t": (ids, rows)}), PrivateRows({"t": (ids, rows)}, max_bytes=0, spill_dir=str(tmp_path))
    assert not ram.mapped and disk.mapped and len(list(tmp_path.iterdir())) == 1
    for store in (ram, disk):
        store.put("t", np.array([5]), torch.full((1, 4), 7.0))
        assert store.get("t", np.array([5, 9])).tolist() == [[7.0] * 4, [8.0, 9.0, 10.0, 11.0]]
        assert store.is_trained("t", ids).tolist() == [False, True, False]
        with pytest.raises(KeyError):
            store.get("t", np.array([3]))  # not a row this actor owns
    blob = disk.state_dict()
    fresh = PrivateRows({"t": (ids, rows)})
    fresh.load_state_dict(blob)
    assert np.array_equal(fresh.rows["t"], ram.rows["t"]) and fresh.trained["t"].tolist() == [False, True, False]
    disk.close()
    assert not list(tmp_path.iterdir())  # the spill file goes with the store


def test_private_table_needs_one_owner_per_row(fed):
    check_single_owner(fed.train, fed.partitions, "user")
    with pytest.raises(ConfigError, match="model.private.*'item'"):
        check_single_owner(fed.train, fed.partitions, "item")
    with pytest.raises(ConfigError, match="model.private"):
        config_from_dict({"data": {"features": ["item"]}, "model": {"private": ["user"]}})


def test_clients_score_their_rows_like_the_driver_when_nothing_is_private(fed):
    actor, state, layout = _actor(fed, n_actors=2, index=1)
    from fedrec.model import build_model, predict

    out = actor.evaluate("m", "test")
    model = build_model(fed.train.spec, ModelConfig(embedding_dim=4, dense_arch=(4,), over_arch=(4,)), seed=0)
    model.load_state_dict(state)
    probs, _ = predict(model, [fed.test.batch()])
    assert np.all(fed.test_client[out["rows"]] % 2 == 1)  # only this actor's clients' rows
    assert np.allclose(out["probs"], probs.numpy()[out["rows"]], atol=1e-6)  # untrained: initial user rows
    assert not out["trained"].any()
    tables = {_user_table(layout): actor.slots["m"].private.table(_user_table(layout), state[_user_table(layout)])}
    assert np.allclose(dlrm_probs(fed.test, state, layout, tables), probs.numpy(), atol=1e-6)


def test_ranking_metrics_by_hand():
    items = np.array([10, 11, 12, 13, 14])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    assert ranking_metrics(scores, items, np.array([12]), np.array([]), k=2) == (0.0, 0.0)
    hr, ndcg = ranking_metrics(scores, items, np.array([12]), np.array([10]), k=2)  # 10 seen: 12 ranks 2nd
    assert hr == 1.0 and ndcg == pytest.approx(1 / np.log2(3))
    hr, ndcg = ranking_metrics(scores, items, np.array([11, 13]), np.array([10]), k=3)  # ranks 1 and 3 of 3
    assert ndcg == pytest.approx((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)))


def test_each_actor_receives_only_its_clients_rows(fed):
    shards = [ActorData.shard(fed, i, 3) for i in range(3)]
    assert sum(len(s.train) for s in shards) == len(fed.train)
    for i, shard in enumerate(shards):
        assert set(shard.partitions) == set(range(i, fed.num_clients, 3))
        for c, rows in shard.partitions.items():  # the same examples, re-indexed into the shard
            assert np.array_equal(shard.train.take(rows).labels, fed.train.take(fed.partitions[c]).labels)
            assert np.array_equal(shard.train.take(rows).values["item"], fed.train.take(fed.partitions[c]).values["item"])
        test, clients, pos = shard.heldout["test"]
        assert np.all(clients % 3 == i) and np.array_equal(fed.test_client[pos], clients)
    assert sorted(np.concatenate([s.heldout["test"][2] for s in shards]).tolist()) == np.flatnonzero(fed.test_client >= 0).tolist()
