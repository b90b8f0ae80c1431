"""A sharding plan: how each table is cut into shards, where each shard lives and how many of its
hottest rows sit in HBM.

``plan.json`` version 2 (written by ``fedrec plan --out``)::

    {"version": 2, "planner": "recshard",
     "tables": [{"name": "C1", "sharding": "column_wise",
                 "shards": [{"rank": 3, "row_start": 0, "row_end": 40000000, "col_start": 0,
                             "col_end": 64, "hbm_rows": 5120000, "uvm_rows": 34880000}, ...],
                 "rank": 3, "rows": 40000000, "dim": 128, "hbm_rows": 5120000,
                 "uvm_rows": 34880000, "kind": "split", "hot_access_fraction": 0.91,
                 "hbm_bytes": ..., "uvm_bytes": ..., "cost_ms": ...}, ...],
     "gpu_cost": [...],            # predicted ms per iteration, one per GPU
     "gpu_comm_cost": [...],       # the all-to-all and reduction part of it
     "gpu_hbm_bytes": [...], "gpu_uvm_bytes": [...],
     "max_gpu_cost": ..., "imbalance": ...,   # max / mean of gpu_cost
     "topology": {...}, "solver": {...},      # solver: status, lp_bound, gap, seconds, ...
     "workload": {"tables": [...]}}          # the workload planned for (fedrec plan run reads it)

Each shard covers rows ``[row_start, row_end)`` and columns ``[col_start, col_end)`` of its table;
the shards of a table cover every row and column exactly once. A shard's rows are sorted hottest
first and its ``hbm_rows`` hottest sit in HBM, the other ``uvm_rows`` in host memory
(``hbm_rows + uvm_rows == row_end - row_start``). How rows map to hotness per sharding type is in
``sharding.shards`` (row-wise blocks get the rows round-robin in hotness order). Only the ``name``
and ``shards`` of a table are read back; the rest is derived for people and for the v1 readers:
``rank`` is the first shard's rank, ``hbm_rows`` the rows held in HBM counted in whole rows
(a column slice counts for its share of the columns), ``uvm_rows = rows - hbm_rows``. ``kind`` is
``hbm`` (all in HBM), ``uvm`` (all in host memory), ``split`` (hot rows in HBM, the rest in UVM) or
``cache`` (TorchRec's UVM cache holding ``hbm_rows`` rows, evaluated as if it held the hottest).

Version 1 plans (no ``version``; one ``rank``, ``hbm_rows`` and ``uvm_rows`` per table, always
table-wise) still load: each table becomes one table-wise shard.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
from pydantic import Field, ValidationError
from pydantic.dataclasses import dataclass as strict_dataclass

from sharding.config import STRICT, StrictCount, read_json_file, validation_message
from sharding.cost import CostModel
from sharding.errors import InfeasiblePlanError
from sharding.shards import COLUMN_WISE, ROW_WISE, TABLE_WISE, Part, row_blocks
from sharding.topology import GB, Topology
from sharding.workload import Workload

VERSION = 2
NonNegative = Annotated[StrictCount, Field(ge=0)]


@strict_dataclass(frozen=True, config=STRICT)
class Shard:
    """One rectangle of a table on one rank. ``col_end`` None: all columns (v1 plans, which do
    not record the dim)."""

    rank: NonNegative
    row_start: NonNegative
    row_end: NonNegative
    col_start: NonNegative
    col_end: NonNegative | None
    hbm_rows: NonNegative
    uvm_rows: NonNegative

    @property
    def rows(self) -> int:
        return self.row_end - self.row_start

    def col_stop(self, dim: int) -> int:
        return dim if self.col_end is None else self.col_end

    def cols(self, dim: int) -> int:
        return self.col_stop(dim) - self.col_start

    def to_dict(self, dim: int) -> dict:
        return {
            "rank": self.rank,
            "row_start": self.row_start,
            "row_end": self.row_end,
            "col_start": self.col_start,
            "col_end": self.col_stop(dim),
            "hbm_rows": self.hbm_rows,
            "uvm_rows": self.uvm_rows,
        }


@dataclass
class TablePlacement:
    name: str
    shards: list[Shard]
    kind: str = ""  # hbm | uvm | split | cache; derived from the rows when empty

    def __post_init__(self) -> None:
        if not self.kind:
            hot = sum(s.hbm_rows for s in self.shards)
            cold = sum(s.uvm_rows for s in self.shards)
            self.kind = "uvm" if hot == 0 and cold else "hbm" if cold == 0 else "split"

    @classmethod
    def table_wise(cls, name: str, rank: int, hbm_rows: int, uvm_rows: int, kind: str = "") -> TablePlacement:
        """The v1 form: the whole table on ``rank``, its ``hbm_rows`` hottest rows in HBM."""
        rows = int(hbm_rows) + int(uvm_rows)
        return cls(name, [Shard(int(rank), 0, rows, 0, None, int(hbm_rows), int(uvm_rows))], kind)

    @property
    def rank(self) -> int:
        return self.shards[0].rank

    def sharding(self, rows: int, dim: int, gpus: int) -> str | None:
        """The sharding type the shards form, or None when they form none TorchRec trains."""
        s = self.shards
        full_rows = all(x.row_start == 0 and x.row_end == rows for x in s)
        full_cols = all(x.col_start == 0 and x.col_stop(dim) == dim for x in s)
        if len(s) == 1 and full_rows and full_cols:
            return TABLE_WISE
        if full_rows and len(s) > 1:
            return COLUMN_WISE
        if full_cols and len(s) == gpus:
            sizes = row_blocks(rows, gpus)
            offsets = np.r_[0, np.cumsum(sizes)]
            if all(x.rank == r and x.row_start == offsets[r] and x.row_end == offsets[r + 1] for r, x in enumerate(s)):
                return ROW_WISE
        return None

    def hbm_row_equivalents(self, dim: int) -> int:
        """Rows held in HBM, a column slice counting for its share of the columns."""
        return int(round(sum(s.hbm_rows * s.cols(dim) for s in self.shards) / max(dim, 1)))


@dataclass
class Plan:
    planner: str
    tables: list[TablePlacement]
    solver: dict = field(default_factory=dict)

    @classmethod
    def from_arrays(cls, planner: str, model: CostModel, ranks, hot_rows, solver: dict | None = None) -> Plan:
        """The plan of a cost model's items (one per shard) given their ranks and hot rows."""
        shards: dict[int, list[Shard]] = {}
        for p, r, h in zip(model.parts, ranks, hot_rows):
            shards.setdefault(p.table, []).append(
                Shard(int(r), p.row_start, p.row_end, p.col_start, p.col_end, int(h), int(p.rows - h))
            )
        tables = [TablePlacement(t.name, shards[i]) for i, t in enumerate(model.workload.tables)]
        return cls(planner, tables, solver or {})

    def by_name(self) -> dict[str, TablePlacement]:
        return {p.name: p for p in self.tables}

    def layout(self, workload: Workload, topology: Topology) -> tuple[list[Part], np.ndarray, np.ndarray]:
        """(parts, ranks, hot rows): the plan's shards as cost-model items, workload order."""
        by_name = self.by_name()
        parts, ranks, hot = [], [], []
        for i, t in enumerate(workload.tables):
            p = by_name[t.name]
            sharding = p.sharding(t.rows, t.dim, topology.gpus)
            gang = -1 if sharding == TABLE_WISE else i
            for s in p.shards:
                share = s.rows / t.rows if sharding == ROW_WISE and t.rows else 1.0
                fixed = s.rank if sharding == ROW_WISE else -1
                parts.append(Part(i, sharding, s.row_start, s.row_end, s.col_start, s.col_stop(t.dim), share, gang, fixed))
                ranks.append(s.rank)
                hot.append(s.hbm_rows)
        return parts, np.asarray(ranks, dtype=np.int64), np.asarray(hot, dtype=np.int64)

    def cost_model(self, workload: Workload, topology: Topology) -> tuple[CostModel, np.ndarray, np.ndarray]:
        """The cost model of this plan's shards, with their ranks and hot rows."""
        parts, ranks, hot = self.layout(workload, topology)
        return CostModel(workload, topology, parts), ranks, hot

    def gpu_costs(self, workload: Workload, topology: Topology) -> np.ndarray:
        """Predicted ms per iteration of each GPU (``sharding.cost``)."""
        model, ranks, hot = self.cost_model(workload, topology)
        return model.gpu_costs(ranks, hot)

    def check(self, workload: Workload, topology: Topology, capacity: bool = True) -> None:
        """Raise ``InfeasiblePlanError`` unless every table is placed once, every row and column of
        it in exactly one shard, each shard on a real GPU in a form TorchRec trains (and, with
        ``capacity``, every GPU's HBM and host-memory budgets hold)."""
        known = {t.name: t for t in workload.tables}
        seen: set[str] = set()
        for p in self.tables:
            if p.name not in known:
                raise InfeasiblePlanError(f"plan table '{p.name}' is not in the workload")
            if p.name in seen:
                raise InfeasiblePlanError(f"plan table '{p.name}' is placed more than once")
            seen.add(p.name)
            _check_shards(p, known[p.name].rows, known[p.name].dim, topology.gpus)
        missing = sorted(set(known) - seen)
        if missing:
            raise InfeasiblePlanError(f"plan misses workload tables {missing[:5]}")
        if capacity:
            hbm, uvm = self.memory(workload, topology)
            for g in range(topology.gpus):
                if hbm[g] > topology.hbm_budget_bytes:
                    raise InfeasiblePlanError(
                        f"GPU {g}: {hbm[g] / GB:.3f} GB of hot rows exceed the HBM budget of "
                        f"{topology.hbm_budget_bytes / GB:.3f} GB"
                    )
                if uvm[g] > topology.uvm_budget_bytes:
                    raise InfeasiblePlanError(
                        f"GPU {g}: {uvm[g] / GB:.3f} GB of cold rows exceed the host-memory budget of "
                        f"{topology.uvm_budget_bytes / GB:.3f} GB"
                    )

    def memory(self, workload: Workload, topology: Topology) -> tuple[np.ndarray, np.ndarray]:
        """HBM and host-memory bytes per GPU."""
        hbm = np.zeros(topology.gpus, dtype=np.int64)
        uvm = np.zeros(topology.gpus, dtype=np.int64)
        tables = {t.name: t for t in workload.tables}
        for p in self.tables:
            t = tables[p.name]
            for s in p.shards:
                row_bytes = s.cols(t.dim) * t.bytes_per_value
                hbm[s.rank] += s.hbm_rows * row_bytes
                uvm[s.rank] += s.uvm_rows * row_bytes
        return hbm, uvm

    def to_dict(self, workload: Workload, topology: Topology) -> dict:
        model, ranks, hot = self.cost_model(workload, topology)
        costs = model.table_costs(hot)
        gpu = np.zeros(topology.gpus)
        np.add.at(gpu, ranks, costs)
        comm = np.zeros(topology.gpus)
        np.add.at(comm, ranks, model.comm_ms + model.reduce_ms)
        access = np.array([model.access_fraction(i, h) for i, h in enumerate(hot)])
        hbm, uvm = self.memory(workload, topology)
        by_name = self.by_name()
        tables = []
        for i, t in enumerate(workload.tables):
            p = by_name[t.name]
            items = model.table == i
            lookups = model.lookup_bytes[items]
            hot_rows = p.hbm_row_equivalents(t.dim)
            tables.append(
                {
                    "name": p.name,
                    "sharding": p.sharding(t.rows, t.dim, topology.gpus),
                    "shards": [s.to_dict(t.dim) for s in p.shards],
                    "rank": p.rank,
                    "rows": t.rows,
                    "dim": t.dim,
                    "hbm_rows": hot_rows,
                    "uvm_rows": t.rows - hot_rows,
                    "kind": p.kind,
                    "hot_access_fraction": round(float((lookups * access[items]).sum() / lookups.sum()), 6)
                    if lookups.sum() > 0
                    else 1.0,
                    "hbm_bytes": int(sum(s.hbm_rows * s.cols(t.dim) * t.bytes_per_value for s in p.shards)),
                    "uvm_bytes": int(sum(s.uvm_rows * s.cols(t.dim) * t.bytes_per_value for s in p.shards)),
                    "cost_ms": round(float(costs[items].sum()), 6),
                }
            )
        mean = float(gpu.mean())
        return {
            "version": VERSION,
            "planner": self.planner,
            "tables": tables,
            "gpu_cost": [round(float(c), 6) for c in gpu],
            "gpu_comm_cost": [round(float(c), 6) for c in comm],
            "gpu_hbm_bytes": [int(b) for b in hbm],
            "gpu_uvm_bytes": [int(b) for b in uvm],
            "max_gpu_cost": round(float(gpu.max()), 6),
            "imbalance": round(float(gpu.max()) / mean, 6) if mean > 0 else 1.0,
            "cost_unit": "ms per iteration",
            "topology": topology.to_dict(),
            "solver": self.solver,
            "workload": workload.to_dict(),
        }

    def to_json_text(self, workload: Workload, topology: Topology) -> tuple[str, dict]:
        d = self.to_dict(workload, topology)
        return json.dumps(d, indent=1) + "\n", d

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        """A v1 or v2 plan; malformed entries are one ``InfeasiblePlanError`` naming the table."""
        if not isinstance(d, dict) or not isinstance(d.get("tables"), list):
            raise InfeasiblePlanError('plan: expected an object {"tables": [...]}')
        version = d.get("version", 1)
        if version not in (1, VERSION):
            raise InfeasiblePlanError(f"plan: unknown version {version!r}; expected 1 or {VERSION}")
        tables = []
        for i, t in enumerate(d["tables"]):
            name = t.get("name") if isinstance(t, dict) else None
            label = name if isinstance(name, str) else f"#{i}"
            if not isinstance(name, str) or not name:
                raise InfeasiblePlanError(f"plan table '{label}': 'name' must be a non-empty string")
            try:
                if version == 1:
                    tables.append(
                        TablePlacement.table_wise(name, _count(t, "rank"), _count(t, "hbm_rows"), _count(t, "uvm_rows"), t.get("kind", ""))
                    )
                else:
                    if not isinstance(t.get("shards"), list) or not t["shards"]:
                        raise ValueError("'shards' must be a non-empty list")
                    shards = [Shard(**s) if isinstance(s, dict) else _not_object(s) for s in t["shards"]]
                    tables.append(TablePlacement(name, shards, t.get("kind", "")))
            except ValidationError as exc:
                raise InfeasiblePlanError(f"plan table '{label}': shard {validation_message(exc)}") from None
            except (KeyError, TypeError, ValueError) as exc:
                raise InfeasiblePlanError(f"plan table '{label}': {exc}") from None
        return cls(d.get("planner", "?"), tables, d.get("solver", {}) if isinstance(d.get("solver"), dict) else {})

    @classmethod
    def from_json(cls, path: str | os.PathLike, with_workload: bool = False):
        """The plan and, when recorded, the topology it was made for (and, with
        ``with_workload``, the workload it records: v2 plans carry theirs)."""
        d = read_json_file(path, "plan", InfeasiblePlanError)
        plan = cls.from_dict(d)
        topo = Topology.from_dict(d["topology"], where="plan topology") if isinstance(d.get("topology"), dict) else None
        if not with_workload:
            return plan, topo
        workload = Workload.from_dict(d["workload"]) if isinstance(d.get("workload"), dict) else None
        return plan, topo, workload


def _count(d: dict, key: str) -> int:
    if key not in d:
        raise KeyError(f"missing key '{key}'")
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"'{key}' must be an integer >= 0, got {value!r}")
    return value


def _not_object(value) -> Shard:
    raise ValueError(f"each shard must be an object, found {type(value).__name__}")


def _check_shards(p: TablePlacement, rows: int, dim: int, gpus: int) -> None:
    """Ranks, row counts, exact coverage of the table, and a sharding type TorchRec trains."""
    where = f"plan table '{p.name}'"
    for s in p.shards:
        if not 0 <= s.rank < gpus:
            raise InfeasiblePlanError(f"{where}: rank {s.rank} is not in [0, {gpus})")
        if not (s.row_start <= s.row_end <= rows and s.col_start < s.col_stop(dim) <= dim):
            raise InfeasiblePlanError(
                f"{where}: shard rows [{s.row_start}, {s.row_end}) x columns [{s.col_start}, "
                f"{s.col_stop(dim)}) is outside the table's {rows} x {dim}"
            )
        if s.hbm_rows + s.uvm_rows != s.rows:
            raise InfeasiblePlanError(
                f"{where}: hbm_rows {s.hbm_rows} + uvm_rows {s.uvm_rows} != the shard's {s.rows} rows"
                + (f" (the table has {rows})" if len(p.shards) == 1 else "")
            )
    # Exact cover: the areas add up to the table and no two rectangles overlap.
    area = sum(s.rows * s.cols(dim) for s in p.shards)
    for a in range(len(p.shards)):
        for b in range(a + 1, len(p.shards)):
            x, y = p.shards[a], p.shards[b]
            if (
                x.row_start < y.row_end
                and y.row_start < x.row_end
                and x.col_start < y.col_stop(dim)
                and y.col_start < x.col_stop(dim)
            ):
                raise InfeasiblePlanError(f"{where}: shards {a} and {b} overlap (a row and column placed twice)")
    if area != rows * dim:
        raise InfeasiblePlanError(f"{where}: the shards cover {area} of the table's {rows * dim} cells (rows x columns)")
    if p.sharding(rows, dim, gpus) is None:
        raise InfeasiblePlanError(
            f"{where}: the shards are not table-wise, column-wise (all rows, column slices) or row-wise "
            f"(TorchRec's even blocks, block r on rank r of {gpus})"
        )
