"""A sharding plan: where each table lives and how many of its hottest rows sit in HBM.

``plan.json`` (written by ``fedrec plan --out``)::

    {"planner": "recshard",
     "tables": [{"name": "C1", "rank": 3, "rows": 40000000, "hbm_rows": 5120000,
                 "uvm_rows": 34880000, "kind": "split", "hot_access_fraction": 0.91,
                 "hbm_bytes": ..., "uvm_bytes": ..., "cost_ms": ...}, ...],
     "gpu_cost": [...],            # predicted ms per iteration, one per GPU
     "gpu_hbm_bytes": [...], "gpu_uvm_bytes": [...],
     "max_gpu_cost": ..., "imbalance": ...,   # max / mean of gpu_cost
     "topology": {...}, "solver": {...}}      # solver: status, lp_bound, gap, seconds, ...

Every workload table appears exactly once, with ``0 <= rank < gpus`` and
``hbm_rows + uvm_rows == rows``; the ``hbm_rows`` are the table's hottest rows. ``kind`` is
``hbm`` (whole table in HBM), ``uvm`` (whole table in host memory), ``split`` (hot rows in HBM,
the rest in UVM) or ``cache`` (TorchRec's UVM cache holding ``hbm_rows`` rows, evaluated as if it
held the hottest rows).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sharding.cost import CostModel
from sharding.errors import InfeasiblePlanError
from sharding.topology import GB, Topology
from sharding.workload import Workload


@dataclass
class TablePlacement:
    name: str
    rank: int
    hbm_rows: int
    uvm_rows: int
    kind: str = ""  # hbm | uvm | split | cache; derived from the rows when empty

    def __post_init__(self) -> None:
        self.rank, self.hbm_rows, self.uvm_rows = int(self.rank), int(self.hbm_rows), int(self.uvm_rows)
        if not self.kind:
            self.kind = "uvm" if self.hbm_rows == 0 and self.uvm_rows else "hbm" if self.uvm_rows == 0 else "split"


@dataclass
class Plan:
    planner: str
    tables: list[TablePlacement]
    solver: dict = field(default_factory=dict)

    @classmethod
    def from_arrays(cls, planner: str, model: CostModel, ranks, hot_rows, solver: dict | None = None) -> Plan:
        tables = [
            TablePlacement(name, int(r), int(h), int(n - h))
            for name, r, h, n in zip(model.names, ranks, hot_rows, model.rows)
        ]
        return cls(planner, tables, solver or {})

    def arrays(self, workload: Workload) -> tuple[np.ndarray, np.ndarray]:
        """(ranks, hbm_rows) in workload order."""
        by_name = {p.name: p for p in self.tables}
        ranks = np.array([by_name[t.name].rank for t in workload.tables])
        hot = np.array([by_name[t.name].hbm_rows for t in workload.tables])
        return ranks, hot

    def check(self, workload: Workload, topology: Topology, capacity: bool = True) -> None:
        """Raise ``InfeasiblePlanError`` unless every table is placed once, whole, on a real GPU
        (and, with ``capacity``, every GPU's HBM and host-memory budgets hold)."""
        names = [p.name for p in self.tables]
        known = {t.name: t for t in workload.tables}
        for p in self.tables:
            if p.name not in known:
                raise InfeasiblePlanError(f"plan table '{p.name}' is not in the workload")
            if names.count(p.name) > 1:
                raise InfeasiblePlanError(f"plan table '{p.name}' is placed more than once")
            if not 0 <= p.rank < topology.gpus:
                raise InfeasiblePlanError(f"plan table '{p.name}': rank {p.rank} is not in [0, {topology.gpus})")
            rows = known[p.name].rows
            if p.hbm_rows < 0 or p.uvm_rows < 0 or p.hbm_rows + p.uvm_rows != rows:
                raise InfeasiblePlanError(
                    f"plan table '{p.name}': hbm_rows {p.hbm_rows} + uvm_rows {p.uvm_rows} != rows {rows}"
                )
        missing = sorted(set(known) - set(names))
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
        hbm = np.zeros(topology.gpus, dtype=np.int64)
        uvm = np.zeros(topology.gpus, dtype=np.int64)
        row_bytes = {t.name: t.row_bytes for t in workload.tables}
        for p in self.tables:
            hbm[p.rank] += p.hbm_rows * row_bytes[p.name]
            uvm[p.rank] += p.uvm_rows * row_bytes[p.name]
        return hbm, uvm

    def to_dict(self, workload: Workload, topology: Topology) -> dict:
        model = CostModel(workload, topology)
        ranks, hot = self.arrays(workload)
        costs = model.table_costs(hot)
        gpu = np.zeros(topology.gpus)
        np.add.at(gpu, ranks, costs)
        hbm, uvm = self.memory(workload, topology)
        by_name = {p.name: p for p in self.tables}
        tables = []
        for i, t in enumerate(workload.tables):
            p = by_name[t.name]
            tables.append(
                {
                    "name": p.name,
                    "rank": p.rank,
                    "rows": t.rows,
                    "hbm_rows": p.hbm_rows,
                    "uvm_rows": p.uvm_rows,
                    "kind": p.kind,
                    "hot_access_fraction": round(model.access_fraction(i, p.hbm_rows), 6),
                    "hbm_bytes": p.hbm_rows * t.row_bytes,
                    "uvm_bytes": p.uvm_rows * t.row_bytes,
                    "cost_ms": round(float(costs[i]), 6),
                }
            )
        mean = float(gpu.mean())
        return {
            "planner": self.planner,
            "tables": tables,
            "gpu_cost": [round(float(c), 6) for c in gpu],
            "gpu_hbm_bytes": [int(b) for b in hbm],
            "gpu_uvm_bytes": [int(b) for b in uvm],
            "max_gpu_cost": round(float(gpu.max()), 6),
            "imbalance": round(float(gpu.max()) / mean, 6) if mean > 0 else 1.0,
            "cost_unit": "ms per iteration",
            "topology": topology.to_dict(),
            "solver": self.solver,
        }

    def to_json(self, path: str | os.PathLike, workload: Workload, topology: Topology) -> dict:
        d = self.to_dict(workload, topology)
        Path(path).write_text(json.dumps(d, indent=1) + "\n")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        try:
            tables = [
                TablePlacement(t["name"], t["rank"], t["hbm_rows"], t["uvm_rows"], t.get("kind", ""))
                for t in d["tables"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise InfeasiblePlanError(f"plan: malformed tables entry ({exc})") from None
        return cls(d.get("planner", "?"), tables, d.get("solver", {}))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> tuple[Plan, Topology | None]:
        """The plan and, when recorded, the topology it was made for."""
        try:
            d = json.loads(Path(path).read_text())
        except OSError as exc:
            raise InfeasiblePlanError(f"cannot read plan {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise InfeasiblePlanError(f"plan {path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        topo = Topology.from_dict(d["topology"]) if isinstance(d.get("topology"), dict) else None
        return cls.from_dict(d), topo

