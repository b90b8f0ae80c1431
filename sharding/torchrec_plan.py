"""Our plan as a TorchRec ``ShardingPlan`` that ``DistributedModelParallel`` accepts.

Each table keeps its sharding type: ``TABLE_WISE`` on its rank, ``COLUMN_WISE`` with the plan's
column slices on their ranks, ``ROW_WISE`` with TorchRec's even blocks (block ``r`` on rank ``r``).
The hot/cold split is per shard, in one of two forms:

* ``split="remap"`` (the default): the table becomes two TorchRec tables, ``{name}__hot`` with the
  hot rows of every shard as ``FUSED`` (HBM) and ``{name}__cold`` with the rest as ``FUSED_UVM``
  (host memory), both sharded like the table (same ranks and column slices; for row-wise, block
  ``r`` of each holds the hot or cold rows of the table's block ``r``). This needs the shards of a
  table to hold the same number of hot rows, which our planners guarantee, so the hot rows form
  one band. ``HotColdRemapper`` sends each id to its table and row (built from the table's
  hotness order: ``sharding.shards`` says where each row lives) and ``SplitEmbeddingBagCollection``
  adds the two sum-pooled results back into the original feature. It is exactly what the planner
  costed: the hot rows are fixed, never evicted, and HBM holds nothing but them.
* ``split="cache"``: one ``FUSED_UVM_CACHING`` table per split table, load factor = the hot share
  of each shard's rows. No id remapping and it follows drifting popularity, but an LRU/LFU cache
  only approximates "the hottest rows" (misses while it warms up and on every eviction of a hot
  row), spends prefetch work per batch, and keeps the whole table in host memory besides the cache.

Whole tables are ``FUSED`` (all rows in HBM) or ``FUSED_UVM`` (none). On ``device_type="cpu"``
(``fedrec plan run`` on this machine) every part is ``FUSED``: TorchRec's CPU path has no UVM
kernels, so it keeps the plan's layout (tables, bands, slices, blocks, ranks) but not its memory
tiers. Sum pooling is assumed (the hot and cold partial sums add up); fedrec's DLRM uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from sharding.errors import InfeasiblePlanError
from sharding.plan import Plan, TablePlacement
from sharding.shards import COLUMN_WISE, ROW_WISE, TABLE_WISE, deal, row_blocks
from sharding.topology import Topology
from sharding.workload import TableWorkload, Workload

HOT, COLD = "__hot", "__cold"
SPLITS = ("remap", "cache")
_TYPES = {TABLE_WISE: "table_wise", ROW_WISE: "row_wise", COLUMN_WISE: "column_wise"}


@dataclass
class TorchRecTable:
    """One TorchRec table of the exported model: a whole plan table, or its hot or cold band."""

    name: str
    table: str  # the workload table it comes from
    band: str  # whole | hot | cold
    rows: int
    dim: int
    sharding: str
    shards: list[tuple[int, int, int, int, int]] = field(default_factory=list)  # rank, row0, rows, col0, cols
    kernel: str = "fused"
    load_factor: float | None = None


def table_layout(t: TableWorkload, p: TablePlacement, gpus: int, split: str = "remap") -> list[TorchRecTable]:
    """The TorchRec tables that hold one plan table."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if t.rows == 0:
        raise InfeasiblePlanError(f"table '{t.name}' has no rows; TorchRec cannot hold an empty table")
    sharding = p.sharding(t.rows, t.dim, gpus)
    if sharding is None:
        raise InfeasiblePlanError(f"table '{t.name}': its shards form no sharding type TorchRec trains")
    hot = [s.hbm_rows for s in p.shards]
    all_hot = all(s.uvm_rows == 0 for s in p.shards)
    none_hot = all(h == 0 for h in hot)
    if all_hot or none_hot or split == "cache":
        if all_hot:
            kernel, clf = "fused", None
        elif none_hot:
            kernel, clf = "fused_uvm", None
        else:
            kernel, clf = "fused_uvm_caching", max(h / max(s.rows, 1) for h, s in zip(hot, p.shards))
        shards = [(s.rank, s.row_start, s.rows, s.col_start, s.cols(t.dim)) for s in p.shards]
        return [TorchRecTable(t.name, t.name, "whole", t.rows, t.dim, sharding, shards, kernel, clf)]
    # remap: one hot band and one cold band, each sharded like the table
    if sharding == ROW_WISE:
        h = hot[0]
        if any(x != min(h, s.rows) for x, s in zip(hot, p.shards)):
            raise InfeasiblePlanError(
                f"table '{t.name}': its row-wise blocks hold different numbers of hot rows ({sorted(set(hot))}); "
                "--split remap needs one hot band (use --split cache)"
            )
        parts = []
        for band, sizes in (("hot", [min(h, s.rows) for s in p.shards]), ("cold", [s.rows - min(h, s.rows) for s in p.shards])):
            total = sum(sizes)
            if sizes != row_blocks(total, gpus):
                raise InfeasiblePlanError(
                    f"table '{t.name}': the {band} rows of its blocks ({sizes}) are not TorchRec's even row-wise "
                    "blocks; --split remap cannot shard them row-wise (use --split cache)"
                )
            offsets = np.r_[0, np.cumsum(sizes)]
            shards = [(r, int(offsets[r]), sizes[r], 0, t.dim) for r in range(gpus)]
            parts.append((band, total, shards))
    else:
        if len(set(hot)) != 1:
            raise InfeasiblePlanError(
                f"table '{t.name}': its column slices hold different numbers of hot rows ({sorted(set(hot))}); "
                "--split remap needs one hot band (use --split cache)"
            )
        h = hot[0]
        parts = [
            (band, rows, [(s.rank, 0, rows, s.col_start, s.cols(t.dim)) for s in p.shards])
            for band, rows in (("hot", h), ("cold", t.rows - h))
        ]
    kernels = {"hot": "fused", "cold": "fused_uvm"}
    suffix = {"hot": HOT, "cold": COLD}
    return [
        TorchRecTable(t.name + suffix[band], t.name, band, rows, t.dim, sharding, shards, kernels[band])
        for band, rows, shards in parts
    ]


def torchrec_tables(workload: Workload, plan: Plan, topology: Topology, split: str = "remap") -> list[TorchRecTable]:
    """Every TorchRec table of the exported model, in workload order."""
    plan.check(workload, topology, capacity=False)
    by_name = plan.by_name()
    return [x for t in workload.tables for x in table_layout(t, by_name[t.name], topology.gpus, split)]


def split_table_configs(workload: Workload, plan: Plan, split: str = "remap", topology: Topology | None = None) -> list:
    """The ``EmbeddingBagConfig``s of the model the plan shards (split tables as hot + cold)."""
    from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType

    topology = topology or Topology(gpus=max(s.rank for p in plan.tables for s in p.shards) + 1)
    return [
        EmbeddingBagConfig(name=x.name, embedding_dim=x.dim, num_embeddings=x.rows, feature_names=[x.name], pooling=PoolingType.SUM)
        for x in torchrec_tables(workload, plan, topology, split)
    ]


def to_torchrec_plan(
    workload: Workload,
    plan: Plan,
    topology: Topology,
    module_path: str = "",
    split: str = "remap",
    device_type: str = "cuda",
):
    """A ``ShardingPlan`` for an ``EmbeddingBagCollection`` of ``split_table_configs`` at ``module_path``."""
    from torch.distributed._shard.sharding_spec import EnumerableShardingSpec, ShardMetadata
    from torchrec.distributed.sharding_plan import placement
    from torchrec.distributed.types import CacheParams, ParameterSharding, ShardingPlan

    module_plan = {}
    for x in torchrec_tables(workload, plan, topology, split):
        spec = EnumerableShardingSpec(
            [
                ShardMetadata(
                    shard_offsets=[row0, col0],
                    shard_sizes=[rows, cols],
                    placement=placement(device_type, rank, topology.gpus),
                )
                for rank, row0, rows, col0, cols in x.shards
            ]
        )
        kernel = x.kernel if device_type == "cuda" else "fused"
        module_plan[x.name] = ParameterSharding(
            sharding_type=_TYPES[x.sharding],
            compute_kernel=kernel,
            ranks=[s[0] for s in x.shards],
            sharding_spec=spec,
            cache_params=CacheParams(load_factor=x.load_factor) if kernel == "fused_uvm_caching" else None,
        )
    from torchrec.distributed.types import EmbeddingModuleShardingPlan

    return ShardingPlan({module_path: EmbeddingModuleShardingPlan(module_plan)})


class RowRouter:
    """Where each hotness rank of a table lives in the exported model: (TorchRec table, row)."""

    def __init__(self, t: TableWorkload, p: TablePlacement, parts: list[TorchRecTable]) -> None:
        self.names = [x.name for x in parts]
        self.sharding = parts[0].sharding
        self.rows = t.rows
        self.hot = p.shards[0].hbm_rows if len(parts) == 2 else None
        self.blocks = [s.rows for s in p.shards] if self.sharding == ROW_WISE else None
        self.offsets = {x.band: np.r_[0, np.cumsum([s[2] for s in x.shards])] for x in parts} if self.blocks else {}

    def route(self, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index into ``names``, row in that table) of each hotness rank."""
        ranks = np.asarray(ranks, dtype=np.int64)
        if self.blocks is None:  # table-wise or column-wise: row k is hotness rank k
            if self.hot is None:
                return np.zeros(len(ranks), dtype=np.int64), ranks
            cold = ranks >= self.hot
            return cold.astype(np.int64), np.where(cold, ranks - self.hot, ranks)
        block, pos = deal(ranks, self.blocks)
        if self.hot is None:
            return np.zeros(len(ranks), dtype=np.int64), self.offsets["whole"][block] + pos
        cold = pos >= self.hot
        row = np.where(cold, self.offsets["cold"][block] + pos - self.hot, self.offsets["hot"][block] + pos)
        return cold.astype(np.int64), row


def routers(workload: Workload, plan: Plan, topology: Topology, split: str = "remap") -> dict[str, RowRouter]:
    by_name = plan.by_name()
    return {
        t.name: RowRouter(t, by_name[t.name], table_layout(t, by_name[t.name], topology.gpus, split))
        for t in workload.tables
    }


class HotColdRemapper(nn.Module):
    """Rewrites a ``KeyedJaggedTensor`` of original ids into the exported model's features: each id
    goes to the TorchRec table and row that holds it (``RowRouter``). ``hotness[name]`` lists the
    table's ids hottest first."""

    def __init__(self, workload: Workload, plan: Plan, hotness: dict[str, np.ndarray], topology: Topology, split: str = "remap") -> None:
        super().__init__()
        self.names: dict[str, list[str]] = {}
        plan.check(workload, topology, capacity=False)
        all_routers = routers(workload, plan, topology, split)
        for t in workload.tables:
            router = all_routers[t.name]
            order = np.asarray(hotness[t.name], dtype=np.int64)
            if len(order) != t.rows or not np.array_equal(np.sort(order), np.arange(t.rows)):
                raise InfeasiblePlanError(f"table '{t.name}': hotness must list each of its {t.rows} ids once")
            rank_of_id = np.empty(t.rows, dtype=np.int64)
            rank_of_id[order] = np.arange(t.rows)
            which, row = router.route(rank_of_id)
            k = len(self.names)
            self.register_buffer(f"which_{k}", torch.from_numpy(which), persistent=False)
            self.register_buffer(f"row_{k}", torch.from_numpy(row), persistent=False)
            self.names[t.name] = router.names

    def forward(self, features):
        from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

        keys, values, lengths = [], [], []
        jagged = features.to_dict()
        for k, (name, targets) in enumerate(self.names.items()):
            jt = jagged[name]
            v, lens = jt.values(), jt.lengths()
            which, row = getattr(self, f"which_{k}")[v], getattr(self, f"row_{k}")[v]
            bag = torch.repeat_interleave(torch.arange(len(lens), device=lens.device), lens)
            for j, target in enumerate(targets):
                mask = which == j
                keys.append(target)
                values.append(row[mask])
                lengths.append(torch.bincount(bag[mask], minlength=len(lens)).to(lens.dtype))
        return KeyedJaggedTensor.from_lengths_sync(keys, torch.cat(values), torch.cat(lengths))


class SplitEmbeddingBagCollection(nn.Module):
    """Remapper + the exported ``EmbeddingBagCollection`` (attribute ``ebc``: shard it with the
    plan at module path ``<this module's path>.ebc``); returns a ``KeyedTensor`` of the original
    features (hot and cold partial sums added)."""

    def __init__(
        self,
        workload: Workload,
        plan: Plan,
        hotness: dict[str, np.ndarray],
        topology: Topology,
        split: str = "remap",
        device=None,
    ) -> None:
        super().__init__()
        from torchrec.modules.embedding_modules import EmbeddingBagCollection

        self.remap = HotColdRemapper(workload, plan, hotness, topology, split)
        self.ebc = EmbeddingBagCollection(tables=split_table_configs(workload, plan, split, topology), device=device)
        self.parts = dict(self.remap.names)

    def forward(self, features):
        from torchrec.sparse.jagged_tensor import KeyedTensor

        pooled = self.ebc(self.remap(features)).to_dict()
        names = list(self.parts)
        tensors = [sum(pooled[x] for x in self.parts[f][1:]) + pooled[self.parts[f][0]] for f in names]
        return KeyedTensor.from_tensor_list(names, tensors)
