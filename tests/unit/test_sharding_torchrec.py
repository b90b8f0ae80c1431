import numpy as np
import pytest
import torch

from sharding.cost import CostModel
from sharding.plan import Plan, TablePlacement
from sharding.planners.torchrec_baseline import (
    TorchRecPlanner,
    from_torchrec_plan,
    meta_ebc,
    torchrec_topology,
)
from sharding.topology import Topology
from sharding.torchrec_plan import (
    COLD,
    HOT,
    SplitEmbeddingBagCollection,
    split_table_configs,
    to_torchrec_plan,
)
from sharding.workload import TableWorkload, Workload, synthetic_workload


def _workload():
    return Workload(
        [
            TableWorkload("a", 100, 8, access_cdf=[[0, 0], [0.1, 0.6], [1, 1]]),
            TableWorkload("b", 50, 8),
            TableWorkload("c", 30, 4),
        ]
    )


def _plan():
    return Plan(
        "test",
        [TablePlacement("a", 1, 10, 90), TablePlacement("b", 0, 50, 0), TablePlacement("c", 2, 0, 30)],
    )


@pytest.mark.parametrize("split", ["remap", "cache"])
def test_torchrec_plan_passes_torchrec_validation(split):
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.planner.planners import (
        validate_modules_inclusion_in_sharding_plan,
        validate_rank_assignment,
    )
    from torchrec.distributed.sharding_plan import construct_module_sharding_plan, table_wise
    from torchrec.distributed.types import ShardingPlan, ShardingType
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    w, plan, topo = _workload(), _plan(), Topology(gpus=3, hbm_gb=1)
    sp = to_torchrec_plan(w, plan, topo, split=split)
    assert isinstance(sp, ShardingPlan)
    configs = split_table_configs(w, plan, split)
    ebc = EmbeddingBagCollection(tables=configs, device=torch.device("meta"))
    sharder = EmbeddingBagCollectionSharder()
    validate_modules_inclusion_in_sharding_plan(sp, ebc, [sharder])
    validate_rank_assignment(sp, torchrec_topology(topo))
    module_plan = sp.plan[""]
    assert set(module_plan) == set(sharder.shardable_parameters(ebc))
    expected_kernel = {"b": "fused", "c": "fused_uvm"}
    if split == "remap":
        expected_kernel.update({"a" + HOT: "fused", "a" + COLD: "fused_uvm"})
    else:
        expected_kernel["a"] = "fused_uvm_caching"
        assert module_plan["a"].cache_params.load_factor == pytest.approx(0.1)
    rank = {"a": 1, "b": 0, "c": 2}
    for name, ps in module_plan.items():
        base = name.removesuffix(HOT).removesuffix(COLD)
        assert ps.sharding_type == ShardingType.TABLE_WISE.value
        assert ps.compute_kernel == expected_kernel[name]
        assert ps.compute_kernel in sharder.compute_kernels(ps.sharding_type, "cuda")
        assert ps.ranks == [rank[base]]
        (shard,) = ps.sharding_spec.shards
        assert str(shard.placement) == f"rank:{rank[base]}/cuda:{rank[base]}"
        cfg = next(c for c in configs if c.name == name)
        assert shard.shard_sizes == [cfg.num_embeddings, cfg.embedding_dim] and shard.shard_offsets == [0, 0]
    # the same as TorchRec's own helpers build for these placements
    reference = construct_module_sharding_plan(
        ebc,
        {n: table_wise(rank=ps.ranks[0], compute_kernel=ps.compute_kernel) for n, ps in module_plan.items()},
        local_size=3,
        world_size=3,
        device_type="cuda",
    )
    for n, ps in module_plan.items():
        assert reference[n].sharding_spec == ps.sharding_spec


def test_split_collection_matches_the_unsplit_one():
    from torchrec.modules.embedding_configs import EmbeddingBagConfig
    from torchrec.modules.embedding_modules import EmbeddingBagCollection
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    w, plan = _workload(), _plan()
    rng = np.random.default_rng(0)
    hotness = {t.name: rng.permutation(t.rows) for t in w}
    split = SplitEmbeddingBagCollection(w, plan, hotness)
    full = EmbeddingBagCollection(
        tables=[EmbeddingBagConfig(name=t.name, embedding_dim=t.dim, num_embeddings=t.rows, feature_names=[t.name]) for t in w]
    )
    weights = {k.split(".")[0]: v for k, v in full.embedding_bags.state_dict().items()}
    with torch.no_grad():
        order = hotness["a"]
        split.ebc.embedding_bags["a" + HOT].weight.copy_(weights["a"][order[:10]])
        split.ebc.embedding_bags["a" + COLD].weight.copy_(weights["a"][order[10:]])
        for name in ("b", "c"):
            split.ebc.embedding_bags[name].weight.copy_(weights[name])
    lengths = torch.tensor([2, 0, 3, 1, 1, 2, 4, 0, 1], dtype=torch.int64)
    values = torch.cat([torch.randint(0, t.rows, (int(lengths[3 * i : 3 * i + 3].sum()),)) for i, t in enumerate(w)])
    kjt = KeyedJaggedTensor.from_lengths_sync(["a", "b", "c"], values, lengths)
    got, want = split(kjt).to_dict(), full(kjt).to_dict()
    for name in ("a", "b", "c"):
        torch.testing.assert_close(got[name], want[name])


def test_torchrec_baseline_runs_and_converts():
    w = synthetic_workload([2_000_000, 500_000, 1000, 50], zipf=1.1, dim=64, seed=1)
    topo = Topology(gpus=2, hbm_gb=0.5)
    plan = TorchRecPlanner("default")(w, topo)
    by_name = {p.name: p for p in plan.tables}
    # t0 (0.48 GB) does not fit a 0.425 GB budget; TorchRec caches it at its default load factor 0.2
    assert by_name["t0"].kind == "cache" and by_name["t0"].hbm_rows == 400_000
    assert by_name["t3"].kind == "hbm"
    hbm, _ = plan.memory(w, topo)
    assert (hbm <= topo.hbm_budget_bytes).all()
    best = TorchRecPlanner("best", sweep=(0.05, 0.2, 0.5))(w, topo)
    sweep = best.solver["sweep"]
    assert any("scaleup" in s["variant"] for s in sweep) and any("free" in s["variant"] for s in sweep)
    rated = [s["max_gpu_cost"] for s in sweep if "max_gpu_cost" in s]
    default = next(s["max_gpu_cost"] for s in sweep if s["variant"] == "default")
    assert min(rated) == pytest.approx(CostModel(w, topo).gpu_costs(*best.arrays(w)).max())
    assert min(rated) <= default


def test_from_torchrec_plan_cache_rows():
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.planner import EmbeddingShardingPlanner

    w = synthetic_workload([100_000, 10], zipf=1.0, dim=16)
    sp = EmbeddingShardingPlanner(topology=torchrec_topology(Topology(gpus=1, hbm_gb=1)), debug=False).plan(
        meta_ebc(w), [EmbeddingBagCollectionSharder()]
    )
    plan = from_torchrec_plan(sp, w)
    assert all(p.hbm_rows + p.uvm_rows == t.rows for p, t in zip(plan.tables, w))
    assert plan.tables[0].hbm_rows == 100_000 and plan.tables[0].kind == "hbm"
