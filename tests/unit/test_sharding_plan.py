"""plan.json v1/v2, shard coverage and capacity, the row-wise layout and the per-shard cost model."""

import json

import numpy as np
import pytest

from sharding.cost import CostModel
from sharding.errors import InfeasiblePlanError
from sharding.plan import Plan, Shard, TablePlacement
from sharding.replay import Replay
from sharding.shards import COLUMN_WISE, ROW_WISE, deal, hotness_of, row_blocks, table_parts
from sharding.topology import GB, Topology
from sharding.workload import TableWorkload, Workload

CDF = [[0, 0], [0.1, 0.5], [1, 1]]


def _workload():
    return Workload([TableWorkload("a", 100, 8, access_cdf=CDF), TableWorkload("b", 40, 4)])


def test_v1_plan_loads_as_table_wise_shards(tmp_path):
    v1 = {
        "planner": "recshard",
        "tables": [
            {"name": "a", "rank": 1, "rows": 100, "hbm_rows": 10, "uvm_rows": 90, "kind": "split"},
            {"name": "b", "rank": 0, "rows": 40, "hbm_rows": 40, "uvm_rows": 0},
        ],
        "topology": {"gpus": 2, "hbm_gb": 1.0},
    }
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(v1))
    plan, topo = Plan.from_json(path)
    w = _workload()
    plan.check(w, topo)
    a = plan.by_name()["a"]
    assert a.shards == [Shard(1, 0, 100, 0, None, 10, 90)] and a.sharding(100, 8, 2) == "table_wise"
    # the same costs as the table-wise cost model with those hot rows
    model = CostModel(w, topo)
    expected = np.zeros(2)
    expected[1] += model.table_cost(0, 10)
    expected[0] += model.table_cost(1, 40)
    np.testing.assert_allclose(plan.gpu_costs(w, topo), expected)
    d = plan.to_dict(w, topo)
    assert d["version"] == 2 and d["tables"][0]["shards"][0]["col_end"] == 8


def test_v2_round_trip_and_derived_table_keys():
    w = _workload()
    topo = Topology(gpus=2, hbm_gb=1.0)
    plan = Plan(
        "hand",
        [
            TablePlacement("a", [Shard(1, 0, 100, 0, 4, 10, 90), Shard(0, 0, 100, 4, 8, 10, 90)]),
            TablePlacement("b", [Shard(0, 0, 20, 0, 4, 5, 15), Shard(1, 20, 40, 0, 4, 5, 15)]),
        ],
    )
    plan.check(w, topo)
    d = json.loads(json.dumps(plan.to_dict(w, topo)))
    back = Plan.from_dict(d)
    assert [p.shards for p in back.tables] == [p.shards for p in plan.tables]
    a, b = d["tables"]
    assert (a["sharding"], a["rank"], a["hbm_rows"], a["uvm_rows"]) == ("column_wise", 1, 10, 90)
    assert (b["sharding"], b["rank"], b["hbm_rows"], b["uvm_rows"]) == ("row_wise", 0, 10, 30)
    assert a["hbm_bytes"] == 2 * 10 * 4 * 4 and b["uvm_bytes"] == 30 * 4 * 4
    assert set(a["shards"][0]) == {"rank", "row_start", "row_end", "col_start", "col_end", "hbm_rows", "uvm_rows"}
    assert d["gpu_hbm_bytes"] == [10 * 16 + 5 * 16, 10 * 16 + 5 * 16]
    assert Workload.from_dict(d["workload"]).tables[0].access_cdf == w.tables[0].access_cdf


@pytest.mark.parametrize(
    "shards, message",
    [
        ([Shard(0, 0, 100, 0, 8, 10, 90), Shard(1, 50, 100, 0, 8, 0, 50)], "overlap"),
        ([Shard(0, 0, 100, 0, 4, 10, 90)], "cover 400 of the table's 800 cells"),
        ([Shard(0, 0, 100, 0, 4, 10, 90), Shard(1, 0, 100, 4, 12, 10, 90)], "outside the table's 100 x 8"),
        ([Shard(0, 0, 100, 0, 8, 10, 80)], "hbm_rows 10 + uvm_rows 80 != the shard's 100 rows"),
        ([Shard(2, 0, 100, 0, 8, 10, 90)], "rank 2 is not in [0, 2)"),
        # row blocks that are not TorchRec's even ones (50/50): 30 + 70
        ([Shard(0, 0, 30, 0, 8, 0, 30), Shard(1, 30, 100, 0, 8, 0, 70)], "not table-wise, column-wise"),
        # a grid (rows and columns cut at once) is no type TorchRec trains here
        (
            [Shard(0, 0, 50, 0, 4, 0, 50), Shard(1, 50, 100, 0, 4, 0, 50), Shard(0, 0, 50, 4, 8, 0, 50), Shard(1, 50, 100, 4, 8, 0, 50)],
            "not table-wise, column-wise",
        ),
    ],
)
def test_bad_shards_are_named(shards, message):
    plan = Plan("hand", [TablePlacement("a", shards), TablePlacement.table_wise("b", 0, 40, 0)])
    with pytest.raises(InfeasiblePlanError) as err:
        plan.check(_workload(), Topology(gpus=2, hbm_gb=1.0))
    assert "plan table 'a'" in str(err.value) and message in str(err.value)


@pytest.mark.parametrize(
    "table, message",
    [
        ({"name": "a", "shards": [{"rank": 0, "row_start": 0, "row_end": 100, "col_start": 0, "col_end": 8, "hbm_rows": "10", "uvm_rows": 90}]},
         "field 'hbm_rows': Input should be a valid integer"),
        ({"name": "a", "shards": [{"rank": 0, "row_start": 0, "row_end": 100, "col_start": 0, "col_end": 8, "hbm_rows": 10, "uvm_rows": 90, "gpu": 1}]},
         "field 'gpu': unknown key"),
        ({"name": "a", "shards": []}, "'shards' must be a non-empty list"),
        ({"name": "a", "shards": ["x"]}, "each shard must be an object"),
        ({"name": "a", "rank": 0}, "'shards' must be a non-empty list"),
    ],
)
def test_malformed_v2_entries_are_one_error(table, message):
    with pytest.raises(InfeasiblePlanError) as err:
        Plan.from_dict({"version": 2, "tables": [table]})
    assert "plan table 'a'" in str(err.value) and message in str(err.value)
    with pytest.raises(InfeasiblePlanError, match="unknown version 3"):
        Plan.from_dict({"version": 3, "tables": []})
    with pytest.raises(InfeasiblePlanError, match="'rank' must be an integer >= 0, got 1.5"):
        Plan.from_dict({"tables": [{"name": "a", "rank": 1.5, "hbm_rows": 1, "uvm_rows": 0}]})


def test_capacity_is_checked_per_gpu_over_its_shards():
    w = _workload()
    # HBM budget of 0.5 GB * 0.85; make the budget tiny so one shard's hot rows exceed it
    topo = Topology(gpus=2, hbm_gb=400 / GB / 0.85 + 1e-12)  # 400 bytes of HBM per GPU
    ok = Plan("hand", [TablePlacement("a", [Shard(0, 0, 100, 0, 4, 25, 75), Shard(1, 0, 100, 4, 8, 25, 75)]),
                       TablePlacement.table_wise("b", 1, 0, 40)])
    ok.check(w, topo)  # 25 rows x 16 bytes = 400 bytes on each GPU
    over = Plan("hand", [TablePlacement("a", [Shard(0, 0, 100, 0, 4, 25, 75), Shard(1, 0, 100, 4, 8, 25, 75)]),
                         TablePlacement.table_wise("b", 1, 1, 39)])
    with pytest.raises(InfeasiblePlanError, match=r"GPU 1: .* exceed the HBM budget"):
        over.check(w, topo)
    over.check(w, topo, capacity=False)


@pytest.mark.parametrize("rows, gpus", [(10, 4), (31, 3), (64, 8), (17, 2), (100, 7)])
def test_round_robin_dealing_matches_a_simulation(rows, gpus):
    sizes = row_blocks(rows, gpus)
    assert sum(sizes) == rows and sizes == sorted(sizes, reverse=True)
    # simulate: hand out hotness ranks one at a time to the next block with room, cyclically
    expect_block, expect_pos, fill, b = [], [], [0] * gpus, 0
    for _ in range(rows):
        while fill[b] >= sizes[b]:
            b = (b + 1) % gpus
        expect_block.append(b)
        expect_pos.append(fill[b])
        fill[b] += 1
        b = (b + 1) % gpus
    block, pos = deal(np.arange(rows), sizes)
    assert block.tolist() == expect_block and pos.tolist() == expect_pos
    inverse = hotness_of(sizes)
    for r in range(gpus):
        assert inverse[r].tolist() == [k for k in range(rows) if expect_block[k] == r]


def test_cost_model_per_shard_by_hand():
    """One table priced whole, as two column slices and as two row blocks, against the formulas."""
    t = TableWorkload("a", 100, 8, pooling_factor=2.0, coverage=0.5, access_cdf=CDF)
    w = Workload([t])
    topo = Topology(gpus=2, hbm_gb=1, hbm_gbps=1, uvm_gbps=0.5, comm_gbps=0.25, batch_size=4, table_fixed_us=10)
    u = 1000 / GB  # ms per byte at 1 GB/s
    # global batch 8, lookups 8 * 0.5 * 2 = 8, 32-byte rows: 256 bytes; 10 hot rows: half the reads hit HBM
    whole = CostModel(w, topo)
    assert whole.table_cost(0, 10) == pytest.approx(0.01 + 256 * (0.5 * u + 0.5 * 2 * u) + (8 * 8 + 8 * 32) * 4 * u)
    cw = CostModel(w, topo, table_parts(0, t, COLUMN_WISE, 2))
    # each slice: 16-byte rows, every id (64 bytes of ids) and a 16-column output (8 x 16 bytes)
    for i in range(2):
        assert cw.table_cost(i, 10) == pytest.approx(0.01 + 128 * 1.5 * u + (64 + 128) * 4 * u)
    rw = CostModel(w, topo, table_parts(0, t, ROW_WISE, gpus=2))
    assert rw.rows.tolist() == [50, 50] and rw.fixed_rank.tolist() == [0, 1]
    # each block: half the lookups (4, 128 bytes), 5 of its 50 rows hot = the same CDF point;
    # a full partial output (8 x 32 bytes) out, half the ids in, and the reduction at HBM speed
    for i in range(2):
        assert rw.table_cost(i, 5) == pytest.approx(0.01 + 128 * 1.5 * u + (4 * 8 + 256) * 4 * u + 256 * u)
    # a cost per id (CPUs): 8 ids at 250 ns each, on top of the bytes
    per_id = CostModel(w, Topology(**{**topo.to_dict(), "id_ns": 250.0}))
    assert per_id.table_cost(0, 10) - whole.table_cost(0, 10) == pytest.approx(8 * 250e-6)


def test_replay_deals_row_wise_lookups_to_blocks():
    t = TableWorkload("a", 10, 4)
    w = Workload([t])
    topo = Topology(gpus=2, hbm_gb=1, batch_size=5, comm_gbps=1e6, table_fixed_us=0)
    # blocks of 5 rows; block 0 holds ranks 0, 2, 4, 6, 8 and keeps 2 hot rows (ranks 0 and 2)
    plan = Plan("hand", [TablePlacement("a", [Shard(0, 0, 5, 0, 4, 2, 3), Shard(1, 5, 10, 0, 4, 2, 3)])])
    trace = {"a": np.array([0, 0, 0, 1, 2, 3, 8, 9])}  # block 0: 0,0,0,2,8 (4 hot); block 1: 1,3,9 (2 hot)
    replay = Replay(w, topo, traces=trace)
    _, ranks, served, in_hbm = replay.shares(plan)
    np.testing.assert_allclose(served, [5 / 8, 3 / 8])
    np.testing.assert_allclose(in_hbm, [4 / 8, 2 / 8])
    metrics = replay.evaluate(plan)
    # 10 lookups per iteration (batch 5 x 2 GPUs); 6 of the 8 traced hit HBM rows
    assert metrics["hbm_accesses"] == pytest.approx(7.5) and metrics["uvm_accesses"] == pytest.approx(2.5)
