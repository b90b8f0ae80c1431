"""The driver's TorchRec-free initial DLRM state is TorchRec's DLRM's, value for value."""

import pytest
import torch

from data_pipeline.batches import FeatureSpec, SparseFeature
from fedrec.client.layout import ModelLayout
from fedrec.model import ModelConfig, build_model, dlrm_initial_state


def _spec(n_dense: int) -> FeatureSpec:
    sparse = tuple(SparseFeature(name, card) for name, card in (("user", 7), ("item", 31), ("genres", 5)))
    return FeatureSpec(sparse, tuple(f"d{i}" for i in range(n_dense)))


@pytest.mark.parametrize("cfg, n_dense", [
    (ModelConfig(), 1),
    (ModelConfig(embedding_dim=8, dense_arch=(16, 4), over_arch=(32, 8, 4)), 3),
    (ModelConfig(embedding_dim=4, features=("item", "genres")), 2),
])
def test_initial_state_is_torchrecs_and_draws_the_same_randomness(cfg, n_dense):
    spec = _spec(n_dense)
    expected = {k: v.detach() for k, v in build_model(spec, cfg, seed=3).state_dict().items()}
    after_module = torch.random.get_rng_state()
    got = dlrm_initial_state(spec, cfg, seed=3)
    assert torch.equal(torch.random.get_rng_state(), after_module)  # later draws are unchanged too
    assert list(got) == list(expected)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name
    module = build_model(spec, cfg, seed=3)
    assert ModelLayout.of(got, spec.select(cfg.features) if cfg.features else spec) == ModelLayout.of_module(module, spec)
