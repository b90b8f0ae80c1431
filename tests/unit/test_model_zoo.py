"""The model zoo and custom models: every model trains on the per-client path with sparse row
updates and private tables, and the clients score with it exactly as the module does."""

import numpy as np
import pytest
import torch

from fedrec.model import ModelConfig, build_model, predict, table_name
from fedrec.pipeline import UpdatePipeline
from fedrec.runtime.actor import ActorData, ClientActorImpl, ModelSync
from tests.factories import toy_federated_data


@pytest.fixture(scope="module")
def fed():
    return toy_federated_data(n_users=8, per_user=15, features=("user", "item"))


class TinyModel(torch.nn.Module):
    """A user's own model: one EmbeddingBagCollection, a linear head on the pooled features."""

    def __init__(self, spec, dim: int) -> None:
        super().__init__()
        from torchrec.modules.embedding_configs import EmbeddingBagConfig
        from torchrec.modules.embedding_modules import EmbeddingBagCollection

        self.features = spec.sparse_names
        self.ebc = EmbeddingBagCollection(tables=[EmbeddingBagConfig(name=f"my_{f.name}", embedding_dim=dim,
                                                                     num_embeddings=f.cardinality, feature_names=[f.name])
                                                  for f in spec.sparse])
        self.head = torch.nn.Linear(dim * len(self.features), 1)

    def forward(self, dense, sparse):
        pooled = self.ebc(sparse)
        return self.head(torch.cat([pooled[f] for f in self.features], dim=1))


def tiny_model_fn(spec, cfg, seed=None):
    if seed is not None:
        torch.manual_seed(seed)
    return TinyModel(spec, cfg.embedding_dim)


CASES = [(ModelConfig(name=n, embedding_dim=4, dense_arch=(4,), over_arch=(4,), private=("user",)), None)
         for n in ("dlrm_dcn", "deepfm", "two_tower")]
CASES.append((ModelConfig(embedding_dim=4, private=("user",)), tiny_model_fn))


@pytest.mark.parametrize("model_cfg, model_fn", CASES, ids=["dlrm_dcn", "deepfm", "two_tower", "model_fn"])
def test_every_model_trains_sparse_and_private_on_the_client(fed, model_cfg, model_fn):
    model = (model_fn or build_model)(fed.train.spec, model_cfg, seed=0)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    actor = ClientActorImpl(0)
    actor.set_data(ActorData.shard(fed, 0, 1))
    actor.sync("m", ModelSync("full", 0, model_cfg, model_fn), state)
    slot = actor.slots["m"]
    assert not slot.batched  # only TorchRec's DLRM has the stacked fast path
    user = slot.layout.table_of_feature["user"]
    item = slot.layout.table_of_feature["item"]
    if model_fn is not None:
        assert item.endswith("embedding_bags.my_item.weight")  # tables found through the collection's configs
    else:
        assert item.endswith(f"embedding_bags.{table_name('item')}.weight")
    from fedrec.client.config import ClientTrainConfig

    arrivals, stats = actor.train("m", None, None, [0, 1, 2], ClientTrainConfig(lr=0.5, batch_size=4, batched=True),
                                  [1, 2, 3], UpdatePipeline(force_per_client=True), 1)
    for u in arrivals.updates:
        assert user not in u.sparse and user not in u.dense  # the private table never travels
        ids, rows = u.sparse[item]
        seen = np.unique(fed.train.values["item"][fed.partitions[u.client]])
        assert ids.tolist() == seen.tolist() and rows.abs().sum() > 0  # only the rows the client touched
    assert slot.private.is_trained(user, fed.train.values["user"][fed.partitions[1]][:1]).all()
    out = actor.evaluate("m", "test")
    model.load_state_dict({**state, user: slot.private.table(user, state[user])})
    probs, _ = predict(model, [fed.test.batch()])
    assert np.allclose(out["probs"], probs.numpy()[out["rows"]], atol=1e-6)  # the client scores with its own rows


def test_deepfm_returns_logits_not_probabilities(fed):
    model = build_model(fed.train.spec, ModelConfig(name="deepfm", embedding_dim=4, dense_arch=(4,)), seed=0)
    with torch.no_grad():
        for p in model.over_arch.parameters():
            p.fill_(3.0)  # a large output: a sigmoid would squash it into (0, 1)
        out = model(fed.test.batch().dense_features, fed.test.batch().sparse_features)
    assert (out > 1).any()
