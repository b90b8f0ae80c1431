"""The vectorised trainer computes what the per-client TorchRec path computes."""

import numpy as np
import pandas as pd
import pytest
import torch

from data_pipeline.features import interaction_examples
from data_pipeline.partition import natural_partition
from data_pipeline.schema import build_interactions
from fedrec.client.batched import BatchedTrainer
from fedrec.client.config import ClientTrainConfig
from fedrec.client.data import ClientData
from fedrec.client.local import LocalTrainer
from fedrec.model import ModelConfig
from tests.unit.test_data_core import _toy


@pytest.mark.parametrize("mu, epochs, skewed", [(0.0, 1, False), (0.1, 2, False), (0.0, 2, True)])
def test_batched_matches_per_client_torchrec(mu, epochs, skewed):
    """``skewed``: clients of 1 to 23 rows, so most of a group finishes before its largest client
    and later steps train only the clients still going."""
    toy = _toy(n_users=6, per_user=23, seed=3)
    raw = toy.raw_interactions()
    items = pd.DataFrame({"item": np.arange(30), "genres": [list(range(i % 3)) for i in range(30)]})  # bags of 0-2 ids
    data = build_interactions("toy", raw, item_features=items)
    ex = interaction_examples(data, features=("user", "item", "genres"))
    assert (np.diff(ex.offsets["genres"]) == 0).any() and (np.diff(ex.offsets["genres"]) == 2).any()
    parts = natural_partition(ex.groups)
    if skewed:
        parts = [p[:n] for p, n in zip(parts, (3, 23, 9, 17, 1, 12))]
    data = ClientData(ex, parts)
    local = LocalTrainer(data, ModelConfig(embedding_dim=4, dense_arch=(8,), over_arch=(8,)))
    state = {k: v.detach().clone() for k, v in local.model.state_dict().items()}
    local.load_global(state)
    cfg = ClientTrainConfig(lr=0.3, batch_size=5, local_epochs=epochs, proximal_mu=mu)
    clients = list(range(6))
    seeds = [11 * c + 1 for c in clients]
    expected = [local.train(c, state, cfg, s) for c, s in zip(clients, seeds)]
    got = BatchedTrainer(data, local.layout, group_size=4).train_many(clients, state, cfg, seeds)
    for e, g in zip(expected, got):
        eu, gu = e.update, g.update
        assert (eu.client, e.examples, e.steps, eu.nbytes(), eu.weight) == (gu.client, g.examples, g.steps, gu.nbytes(), gu.weight)
        assert e.loss == pytest.approx(g.loss, rel=1e-4)
        for n in eu.dense:
            assert torch.allclose(eu.dense[n], gu.dense[n], atol=1e-5), n
        for n, (ids, d) in eu.sparse.items():
            gids, gd = gu.sparse[n]
            assert torch.equal(ids, gids) and torch.allclose(d, gd, atol=1e-5), n


def test_training_from_own_starts_is_training_from_that_model():
    """A client given its own starting weights (a gossip node, a client's compressed copy) trains
    exactly as if that were the global model, and its update is the change from its start."""
    from fedrec.updates import ClientStart

    toy = _toy(n_users=5, per_user=20, seed=4)
    ex = interaction_examples(toy, features=("user", "item"))
    data = ClientData(ex, natural_partition(ex.groups))
    local = LocalTrainer(data, ModelConfig(embedding_dim=4, dense_arch=(8,), over_arch=(8,)))
    state = {k: v.detach().clone() for k, v in local.model.state_dict().items()}
    trainer = BatchedTrainer(data, local.layout, group_size=3)
    cfg = ClientTrainConfig(lr=0.3, batch_size=4, local_epochs=2)
    g = torch.Generator().manual_seed(0)
    own = [{k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in state.items()} for _ in range(5)]
    starts = []
    for c in range(5):
        touched = data.client(c)[1]
        ids = {n: torch.from_numpy(touched[f]) for n, f in local.layout.tables.items()}
        starts.append(ClientStart({k: v for k, v in own[c].items() if k not in ids}, {n: own[c][n][i] for n, i in ids.items()}))
    together = trainer.train_many(list(range(5)), None, cfg, [7] * 5, starts=starts)
    for c in range(5):
        alone = trainer.train_many([c], own[c], cfg, [7])[0].update
        got = together[c].update
        for n in alone.dense:
            assert torch.allclose(alone.dense[n], got.dense[n], atol=1e-6), n
        for n, (ids, d) in alone.sparse.items():
            assert torch.equal(ids, got.sparse[n][0]) and torch.allclose(d, got.sparse[n][1], atol=1e-6), n
