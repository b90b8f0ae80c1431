"""Federated Reconstruction's refit of private rows: a pass moves only the private rows (the shared
weights frozen), training keeps it, evaluation refits a copy once per model version and never
writes it back; the batched and per-client paths refit alike."""

import numpy as np
import pytest
import torch

from data_pipeline.errors import ConfigError
from fedrec.client.batched import BatchedTrainer
from fedrec.client.config import ClientTrainConfig
from fedrec.client.data import ClientData
from fedrec.client.local import LocalTrainer
from fedrec.client.private import PrivateRows, owned_rows
from fedrec.config import config_from_dict
from fedrec.model import ModelConfig
from fedrec.pipeline import UpdatePipeline
from fedrec.runtime.actor import REFIT_SEED, ActorData, ClientActorImpl, ModelSync
from tests.factories import toy_federated_data

MODEL = ModelConfig(embedding_dim=4, dense_arch=(4,), over_arch=(4,), private=("user",))


@pytest.fixture(scope="module")
def fed():
    return toy_federated_data(n_users=12, per_user=15, features=("user", "item"))


def _actor(fed):
    actor = ClientActorImpl(0)
    actor.set_data(ActorData.shard(fed, 0, 1))
    trainer = LocalTrainer(ClientData(fed.train, fed.partitions), MODEL)
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    actor.sync("m", ModelSync("full", 0, MODEL), state)
    return actor, state, trainer.layout.table_of_feature["user"]


def _stores(fed, state, user, n=2):
    ids = owned_rows(fed.train, fed.partitions, "user", np.arange(12))
    return [PrivateRows({user: (ids, state[user][torch.from_numpy(ids)].numpy())}) for _ in range(n)]


def test_private_only_config_freezes_shared_weights():
    cfg = ClientTrainConfig(lr=0.3, private_lr=2.0, local_epochs=2, proximal_mu=0.5, sparse_updates=False)
    refit = cfg.private_only(3)
    assert (refit.lr, refit.lr_private, refit.local_epochs, refit.proximal_mu, refit.sparse_updates) == (0.0, 2.0, 3, 0.0, True)
    assert ClientTrainConfig(lr=0.3).private_only(1).lr_private == 0.3  # no private lr: the client lr, not 0


@pytest.mark.parametrize("batched", [True, False])
def test_a_refit_pass_moves_only_private_rows(fed, batched):
    data = ClientData(fed.train, fed.partitions)
    local = LocalTrainer(data, MODEL)
    state = {k: v.detach().clone() for k, v in local.model.state_dict().items()}
    user = local.layout.table_of_feature["user"]
    (store,) = _stores(fed, state, user, 1)
    before = np.array(store.rows[user])
    cfg = ClientTrainConfig(lr=0.3, batch_size=5, private_lr=1.0).private_only(2)
    if batched:
        results = BatchedTrainer(data, local.layout).train_many(list(range(12)), state, cfg, list(range(12)), store)
    else:
        local.load_global(state)
        results = [local.train(c, state, cfg, c, store) for c in range(12)]
    for r in results:
        assert all(torch.count_nonzero(d) == 0 for d in r.update.dense.values())
        assert all(torch.count_nonzero(rows) == 0 for _, rows in r.update.sparse.values())
    assert not np.allclose(store.rows[user], before) and store.trained[user].all()


def test_batched_and_per_client_refits_agree(fed):
    data = ClientData(fed.train, fed.partitions)
    local = LocalTrainer(data, MODEL)
    state = {k: v.detach().clone() for k, v in local.model.state_dict().items()}
    user = local.layout.table_of_feature["user"]
    a, b = _stores(fed, state, user)
    cfg = ClientTrainConfig(lr=0.3, batch_size=5, private_lr=1.0).private_only(2)
    local.load_global(state)
    for c in range(12):
        local.train(c, state, cfg, c, a)
    BatchedTrainer(data, local.layout, group_size=5).train_many(list(range(12)), state, cfg, list(range(12)), b)
    assert np.allclose(a.rows[user], b.rows[user], atol=1e-5)


def test_training_refit_runs_before_local_training_and_is_kept(fed):
    cfg = ClientTrainConfig(lr=0.3, batch_size=4, private_lr=1.0)
    plain, _, user = _actor(fed)
    refit, state, _ = _actor(fed)
    clients, seeds = [1, 4, 7], [11, 12, 13]
    plain.train("m", None, None, clients, cfg, seeds, UpdatePipeline(force_per_client=True), 1)
    got, _ = refit.train("m", None, None, clients, cfg.model_copy(update={"refit_private_epochs": 2}), seeds,
                         UpdatePipeline(force_per_client=True), 1)
    # By hand: the private-only pass (its own seeds), then local training from the refitted rows.
    (store,) = _stores(fed, state, user, 1)
    trainer = BatchedTrainer(ClientData(fed.train, fed.partitions), refit.slots["m"].layout)
    trainer.train_many(clients, state, cfg.private_only(2), [s + REFIT_SEED for s in seeds], store)
    expected = trainer.train_many(clients, state, cfg, seeds, store)
    assert np.allclose(refit.slots["m"].private.rows[user], store.rows[user], atol=1e-6)
    assert not np.allclose(refit.slots["m"].private.rows[user], plain.slots["m"].private.rows[user])
    for e, g in zip(expected, got.updates):
        for n, (_, d) in e.update.sparse.items():
            assert torch.allclose(d, g.sparse[n][1], atol=1e-6)  # shared updates start from the refitted rows


def test_evaluation_refits_a_copy_once_per_version(fed):
    actor, state, user = _actor(fed)
    cfg = ClientTrainConfig(lr=0.3, batch_size=4, private_lr=1.0, eval_refit_private_epochs=3)
    actor.train("m", None, None, [0, 1, 2], cfg, [1, 2, 3], UpdatePipeline(), 1)
    slot = actor.slots["m"]
    stored = np.array(slot.private.rows[user]), slot.private.trained[user].copy()
    plain = actor.evaluate("m", "test")
    refitted = actor.evaluate("m", "test", refit=cfg)
    assert np.array_equal(slot.private.rows[user], stored[0])  # training's rows are untouched
    assert np.array_equal(refitted["trained"], plain["trained"])  # "trained" still means trained in a round
    assert not np.allclose(refitted["probs"], plain["probs"])
    copy = slot.refitted[2]
    assert actor.evaluate("m", "validation", refit=cfg) is not None and slot.refitted[2] is copy  # reused
    assert actor.evaluate("m", "test", refit=cfg.model_copy(update={"eval_refit_private_epochs": 1}))
    assert slot.refitted[2] is not copy  # another setting: refitted again
    again = slot.refitted[2]
    actor.evaluate("m", "test", refit=cfg.model_copy(update={"eval_refit_private_epochs": 1, "private_lr": 0.1}))
    assert slot.refitted[2] is not again  # another private lr too
    # Every client with training rows was refitted, including those that never trained in a round.
    assert slot.refitted[2].trained[user].all() and not stored[1].all()
    actor.import_private("m", slot.private.state_dict())  # rows restored from a checkpoint
    assert slot.refitted is None  # the copy came from the rows just replaced


@pytest.mark.parametrize("field", ["refit_private_epochs", "eval_refit_private_epochs"])
def test_a_refit_without_private_tables_is_a_config_error(field):
    with pytest.raises(ConfigError, match=f"client.{field}.*model.private"):
        config_from_dict({"client": {field: 3}})
    cfg = config_from_dict({"data": {"features": ["user", "item"]}, "model": {"private": ["user"]}, "client": {field: 3}})
    assert getattr(cfg.client, field) == 3
