"""Our plan as a TorchRec ``ShardingPlan`` that ``DistributedModelParallel`` accepts.

Every table is sharded table-wise onto its ``rank`` (placement ``rank:{r}/cuda:{r % local}``):

* whole in HBM: ``FUSED``; whole in host memory: ``FUSED_UVM``;
* split (``split="remap"``, the default): two tables, ``{name}__hot`` with the ``hbm_rows``
  hottest rows as ``FUSED`` and ``{name}__cold`` with the rest as ``FUSED_UVM``, both on the
  table's rank. ``HotColdRemapper`` sends each id to its part (a per-id lookup built from the
  table's hotness order) and ``SplitEmbeddingBagCollection`` adds the two sum-pooled results
  back into the original feature. This is the default because it is exactly what the planner
  costed: the hot rows are fixed, never evicted, and HBM holds nothing but them.
* split (``split="cache"``): one ``FUSED_UVM_CACHING`` table with cache load factor
  ``hbm_rows / rows``. No id remapping and it follows drifting popularity, but a LRU/LFU cache
  only approximates "the hottest rows" (misses while it warms up and on every eviction of a hot
  row), spends prefetch work per batch, and keeps the whole table in host memory besides the
  cache. Prefer it when hotness is unknown in advance or drifts.

Sum pooling is assumed (the hot and cold partial sums add up); fedrec's DLRM uses it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sharding.errors import InfeasiblePlanError
from sharding.plan import Plan
from sharding.topology import Topology
from sharding.workload import Workload

HOT, COLD = "__hot", "__cold"


def split_table_configs(workload: Workload, plan: Plan, split: str = "remap") -> list:
    """The ``EmbeddingBagConfig``s of the model the plan shards (split tables as hot + cold)."""
    from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType

    by_name = {p.name: p for p in plan.tables}
    configs = []
    for t in workload.tables:
        p = by_name[t.name]
        if t.rows == 0:
            raise InfeasiblePlanError(f"table '{t.name}' has no rows; TorchRec cannot hold an empty table")
        parts = [(t.name, t.rows)]
        if split == "remap" and 0 < p.hbm_rows < t.rows:
            parts = [(t.name + HOT, p.hbm_rows), (t.name + COLD, p.uvm_rows)]
        for name, rows in parts:
            configs.append(
                EmbeddingBagConfig(
                    name=name, embedding_dim=t.dim, num_embeddings=rows, feature_names=[name], pooling=PoolingType.SUM
                )
            )
    return configs


def to_torchrec_plan(
    workload: Workload, plan: Plan, topology: Topology, module_path: str = "", split: str = "remap"
):
    """A ``ShardingPlan`` for an ``EmbeddingBagCollection`` of ``split_table_configs`` at ``module_path``."""
    from torchrec.distributed.embedding_types import EmbeddingComputeKernel as K
    from torchrec.distributed.sharding_plan import construct_module_sharding_plan, table_wise
    from torchrec.distributed.types import CacheParams, ShardingPlan
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    if split not in ("remap", "cache"):
        raise ValueError(f"split must be 'remap' or 'cache', got {split!r}")
    plan.check(workload, topology, capacity=False)
    configs = split_table_configs(workload, plan, split)
    by_name = {p.name: p for p in plan.tables}
    kernels, load_factors = {}, {}
    for t in workload.tables:
        p = by_name[t.name]
        if p.hbm_rows == t.rows:
            kernels[t.name] = K.FUSED.value
        elif p.hbm_rows == 0:
            kernels[t.name] = K.FUSED_UVM.value
        elif split == "remap":
            kernels[t.name + HOT], kernels[t.name + COLD] = K.FUSED.value, K.FUSED_UVM.value
        else:
            kernels[t.name] = K.FUSED_UVM_CACHING.value
            load_factors[t.name] = p.hbm_rows / t.rows
    rank_of = {c.name: by_name[c.name.removesuffix(HOT).removesuffix(COLD)].rank for c in configs}
    ebc = EmbeddingBagCollection(tables=configs, device=torch.device("meta"))
    module_plan = construct_module_sharding_plan(
        ebc,
        {c.name: table_wise(rank=rank_of[c.name], compute_kernel=kernels[c.name]) for c in configs},
        local_size=topology.gpus,
        world_size=topology.gpus,
        device_type="cuda",
    )
    for name, clf in load_factors.items():
        module_plan[name].cache_params = CacheParams(load_factor=clf)
    return ShardingPlan({module_path: module_plan})


class HotColdRemapper(nn.Module):
    """Rewrites a ``KeyedJaggedTensor`` of original ids into the split model's features: for each
    split table, ids among its ``hbm_rows`` hottest go to ``{name}__hot`` (renumbered by hotness),
    the others to ``{name}__cold``. ``hotness[name]`` lists the table's ids hottest first."""

    def __init__(self, workload: Workload, plan: Plan, hotness: dict[str, np.ndarray]) -> None:
        super().__init__()
        by_name = {p.name: p for p in plan.tables}
        self.split: list[str] = []
        for t in workload.tables:
            p = by_name[t.name]
            if 0 < p.hbm_rows < t.rows:
                order = np.asarray(hotness[t.name], dtype=np.int64)
                if sorted(order.tolist()) != list(range(t.rows)):
                    raise InfeasiblePlanError(f"table '{t.name}': hotness must list each of its {t.rows} ids once")
                index = np.empty(t.rows, dtype=np.int64)
                index[order] = np.r_[np.arange(p.hbm_rows), np.arange(t.rows - p.hbm_rows)]
                is_hot = np.zeros(t.rows, dtype=bool)
                is_hot[order[: p.hbm_rows]] = True
                self.register_buffer(f"index_{len(self.split)}", torch.from_numpy(index), persistent=False)
                self.register_buffer(f"hot_{len(self.split)}", torch.from_numpy(is_hot), persistent=False)
                self.split.append(t.name)

    def forward(self, features):
        from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

        keys, values, lengths = [], [], []
        jagged = features.to_dict()
        for key in features.keys():
            jt = jagged[key]
            if key not in self.split:
                keys.append(key)
                values.append(jt.values())
                lengths.append(jt.lengths())
                continue
            k = self.split.index(key)
            index, is_hot = getattr(self, f"index_{k}"), getattr(self, f"hot_{k}")
            v, lens = jt.values(), jt.lengths()
            bag = torch.repeat_interleave(torch.arange(len(lens), device=lens.device), lens)
            hot = is_hot[v]
            for suffix, mask in ((HOT, hot), (COLD, ~hot)):
                keys.append(key + suffix)
                values.append(index[v[mask]])
                lengths.append(torch.bincount(bag[mask], minlength=len(lens)).to(lens.dtype))
        return KeyedJaggedTensor.from_lengths_sync(keys, torch.cat(values), torch.cat(lengths))


class SplitEmbeddingBagCollection(nn.Module):
    """Remapper + the split ``EmbeddingBagCollection`` (attribute ``ebc``: shard it with the plan
    at module path ``<this module's path>.ebc``); returns a ``KeyedTensor`` of the original features."""

    def __init__(self, workload: Workload, plan: Plan, hotness: dict[str, np.ndarray], device=None) -> None:
        super().__init__()
        from torchrec.modules.embedding_modules import EmbeddingBagCollection

        self.remap = HotColdRemapper(workload, plan, hotness)
        self.ebc = EmbeddingBagCollection(tables=split_table_configs(workload, plan), device=device)
        self.features = [t.name for t in workload.tables]

    def forward(self, features):
        from torchrec.sparse.jagged_tensor import KeyedTensor

        pooled = self.ebc(self.remap(features)).to_dict()
        tensors = [pooled[f] if f in pooled else pooled[f + HOT] + pooled[f + COLD] for f in self.features]
        return KeyedTensor.from_tensor_list(self.features, tensors)
