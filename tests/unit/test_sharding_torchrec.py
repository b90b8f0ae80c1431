import numpy as np
import pytest
import torch

from sharding.plan import Plan, Shard, TablePlacement
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
    routers,
    split_table_configs,
    to_torchrec_plan,
    torchrec_tables,
)
from sharding.workload import TableWorkload, Workload, synthetic_workload

TOPO = Topology(gpus=3, hbm_gb=1)


def _workload():
    return Workload(
        [
            TableWorkload("a", 100, 8, access_cdf=[[0, 0], [0.1, 0.6], [1, 1]]),  # column-wise
            TableWorkload("b", 50, 8),  # table-wise, all in HBM
            TableWorkload("c", 30, 4),  # table-wise, all in host memory
            TableWorkload("d", 31, 4, access_cdf=[[0, 0], [0.2, 0.5], [1, 1]]),  # row-wise, blocks 11, 11, 9
        ]
    )


def _plan():
    return Plan(
        "test",
        [
            TablePlacement("a", [Shard(1, 0, 100, 0, 4, 10, 90), Shard(0, 0, 100, 4, 8, 10, 90)]),
            TablePlacement.table_wise("b", 0, 50, 0),
            TablePlacement.table_wise("c", 2, 0, 30),
            TablePlacement("d", [Shard(0, 0, 11, 0, 4, 3, 8), Shard(1, 11, 22, 0, 4, 3, 8), Shard(2, 22, 31, 0, 4, 3, 6)]),
        ],
    )


@pytest.mark.parametrize("split", ["remap", "cache"])
def test_torchrec_plan_passes_torchrec_validation(split):
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.planner.planners import (
        validate_modules_inclusion_in_sharding_plan,
        validate_rank_assignment,
    )
    from torchrec.distributed.sharding_plan import (
        column_wise,
        construct_module_sharding_plan,
        row_wise,
        table_wise,
    )
    from torchrec.distributed.types import ShardingPlan
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    w, plan = _workload(), _plan()
    plan.check(w, TOPO)
    sp = to_torchrec_plan(w, plan, TOPO, split=split)
    assert isinstance(sp, ShardingPlan)
    configs = split_table_configs(w, plan, split, TOPO)
    ebc = EmbeddingBagCollection(tables=configs, device=torch.device("meta"))
    sharder = EmbeddingBagCollectionSharder()
    validate_modules_inclusion_in_sharding_plan(sp, ebc, [sharder])
    validate_rank_assignment(sp, torchrec_topology(TOPO))
    module_plan = sp.plan[""]
    assert set(module_plan) == set(sharder.shardable_parameters(ebc))
    if split == "remap":
        expected = {
            "a" + HOT: ("column_wise", "fused", [1, 0]),
            "a" + COLD: ("column_wise", "fused_uvm", [1, 0]),
            "b": ("table_wise", "fused", [0]),
            "c": ("table_wise", "fused_uvm", [2]),
            "d" + HOT: ("row_wise", "fused", [0, 1, 2]),
            "d" + COLD: ("row_wise", "fused_uvm", [0, 1, 2]),
        }
        rows = {"a" + HOT: 10, "a" + COLD: 90, "b": 50, "c": 30, "d" + HOT: 9, "d" + COLD: 22}
    else:
        expected = {
            "a": ("column_wise", "fused_uvm_caching", [1, 0]),
            "b": ("table_wise", "fused", [0]),
            "c": ("table_wise", "fused_uvm", [2]),
            "d": ("row_wise", "fused_uvm_caching", [0, 1, 2]),
        }
        rows = {"a": 100, "b": 50, "c": 30, "d": 31}
        assert module_plan["a"].cache_params.load_factor == pytest.approx(0.1)
        assert module_plan["d"].cache_params.load_factor == pytest.approx(3 / 9)  # the largest per-shard share
    assert {n: (ps.sharding_type, ps.compute_kernel, ps.ranks) for n, ps in module_plan.items()} == expected
    assert {c.name: c.num_embeddings for c in configs} == rows
    for ps in module_plan.values():
        assert ps.compute_kernel in sharder.compute_kernels(ps.sharding_type, "cuda")
        assert ps.sharding_type in sharder.sharding_types("cuda")
    # the same shard metadata TorchRec's own helpers build for these placements
    helper = {"table_wise": lambda ps: table_wise(rank=ps.ranks[0]), "row_wise": lambda ps: row_wise(),
              "column_wise": lambda ps: column_wise(ranks=ps.ranks)}
    reference = construct_module_sharding_plan(
        ebc, {n: helper[ps.sharding_type](ps) for n, ps in module_plan.items()}, local_size=3, world_size=3, device_type="cuda"
    )
    for n, ps in module_plan.items():
        assert reference[n].sharding_spec == ps.sharding_spec, n


def test_rows_routed_to_the_right_band_and_block():
    w, plan = _workload(), _plan()
    route = routers(w, plan, TOPO)
    # 'd' (31 rows, blocks 11/11/9, 3 hot rows per block): hotness ranks dealt round-robin
    which, row = route["d"].route(np.arange(31))
    assert route["d"].names == ["d" + HOT, "d" + COLD]
    # ranks 0..8 are the 3 hottest of each block: hot table rows block*3 + position
    np.testing.assert_array_equal(which[:9], 0)
    np.testing.assert_array_equal(row[:9], [0, 3, 6, 1, 4, 7, 2, 5, 8])
    # cold blocks hold 8, 8, 6 rows at offsets 0, 8, 16; rank 9 is block 0 position 3 -> cold row 0
    assert (which[9], row[9]) == (1, 0) and (which[10], row[10]) == (1, 8) and (which[11], row[11]) == (1, 16)
    # every row of both bands is used exactly once
    for j, size in enumerate((9, 22)):
        assert sorted(row[which == j].tolist()) == list(range(size))
    which, row = route["a"].route(np.arange(100))
    assert (which[:10] == 0).all() and (which[10:] == 1).all() and row[10] == 0 and row[99] == 89


def test_split_collection_matches_the_unsplit_one():
    from torchrec.modules.embedding_configs import EmbeddingBagConfig
    from torchrec.modules.embedding_modules import EmbeddingBagCollection
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    w, plan = _workload(), _plan()
    rng = np.random.default_rng(0)
    hotness = {t.name: rng.permutation(t.rows) for t in w}
    split = SplitEmbeddingBagCollection(w, plan, hotness, TOPO)
    full = EmbeddingBagCollection(
        tables=[EmbeddingBagConfig(name=t.name, embedding_dim=t.dim, num_embeddings=t.rows, feature_names=[t.name]) for t in w]
    )
    weights = {k.split(".")[0]: v for k, v in full.embedding_bags.state_dict().items()}
    route = routers(w, plan, TOPO)
    with torch.no_grad():
        for t in w:
            rank_of_id = np.empty(t.rows, dtype=np.int64)
            rank_of_id[hotness[t.name]] = np.arange(t.rows)
            which, row = route[t.name].route(rank_of_id)
            for j, name in enumerate(route[t.name].names):
                ids = np.flatnonzero(which == j)
                split.ebc.embedding_bags[name].weight[torch.from_numpy(row[ids])] = weights[t.name][torch.from_numpy(ids)]
    lengths = torch.tensor([2, 0, 3, 1, 1, 2, 4, 0, 1, 3, 2, 2], dtype=torch.int64)
    values = torch.cat([torch.randint(0, t.rows, (int(lengths[3 * i : 3 * i + 3].sum()),)) for i, t in enumerate(w)])
    kjt = KeyedJaggedTensor.from_lengths_sync([t.name for t in w], values, lengths)
    got, want = split(kjt).to_dict(), full(kjt).to_dict()
    for t in w:
        torch.testing.assert_close(got[t.name], want[t.name])


def test_remap_refuses_uneven_hot_rows():
    from sharding.errors import InfeasiblePlanError

    w, plan = _workload(), _plan()
    plan.tables[0] = TablePlacement("a", [Shard(1, 0, 100, 0, 4, 10, 90), Shard(0, 0, 100, 4, 8, 20, 80)])
    with pytest.raises(InfeasiblePlanError, match="'a'.*different numbers of hot rows.*--split cache"):
        torchrec_tables(w, plan, TOPO, "remap")
    assert [x.kernel for x in torchrec_tables(w, plan, TOPO, "cache")][0] == "fused_uvm_caching"


def test_torchrec_baseline_runs_and_converts():
    w = synthetic_workload([2_000_000, 500_000, 1000, 50], zipf=1.1, dim=64, seed=1)
    topo = Topology(gpus=2, hbm_gb=0.5)
    plan = TorchRecPlanner("default")(w, topo)  # __call__ checks coverage and budgets
    by_name = plan.by_name()
    # t0 (0.48 GB) does not fit one GPU's 0.425 GB budget: TorchRec cuts it row-wise, half per GPU,
    # which fits in HBM
    t0 = by_name["t0"]
    assert t0.sharding(2_000_000, 64, 2) == "row_wise" and t0.kind == "hbm"
    assert [(s.rank, s.row_start, s.row_end, s.hbm_rows) for s in t0.shards] == [
        (0, 0, 1_000_000, 1_000_000),
        (1, 1_000_000, 2_000_000, 1_000_000),
    ]
    assert by_name["t3"].kind == "hbm"
    whole = TorchRecPlanner("default", table_wise_only=True)(w, topo).by_name()["t0"]
    assert len(whole.shards) == 1 and whole.kind == "cache"  # kept whole, it must be cached
    # restricted to one GPU's worth, TorchRec caches it at its default load factor 0.2
    one = TorchRecPlanner("default")(w, Topology(gpus=1, hbm_gb=0.5, uvm_gb=1))
    c0 = one.by_name()["t0"]
    assert c0.kind == "cache" and c0.shards[0].hbm_rows == 400_000
    hbm, _ = plan.memory(w, topo)
    assert (hbm <= topo.hbm_budget_bytes).all()
    best = TorchRecPlanner("best", sweep=(0.05, 0.2, 0.5))(w, topo)
    sweep = best.solver["sweep"]
    assert any("scaleup" in s["variant"] for s in sweep) and any("free" in s["variant"] for s in sweep)
    rated = [s["max_gpu_cost"] for s in sweep if "max_gpu_cost" in s]
    default = next(s["max_gpu_cost"] for s in sweep if s["variant"] == "default")
    assert min(rated) == pytest.approx(best.gpu_costs(w, topo).max())
    assert min(rated) <= default


def test_from_torchrec_plan_cache_rows():
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.planner import EmbeddingShardingPlanner

    w = synthetic_workload([100_000, 10], zipf=1.0, dim=16)
    sp = EmbeddingShardingPlanner(topology=torchrec_topology(Topology(gpus=1, hbm_gb=1)), debug=False).plan(
        meta_ebc(w), [EmbeddingBagCollectionSharder()]
    )
    plan = from_torchrec_plan(sp, w)
    plan.check(w, Topology(gpus=1, hbm_gb=1))
    assert plan.tables[0].shards[0].hbm_rows == 100_000 and plan.tables[0].kind == "hbm"
