"""Which tables to cut, and how: the step before placement (TorchRec's planner calls it the
enumerator and proposer; here it is one rule, tried at a few thresholds).

A table is worth cutting when it alone is a large piece of a GPU's work: with pieces much larger
than a GPU's fair share, no placement can balance the GPUs (one 79M-row table set the slowest
GPU of every table-wise plan of the Criteo-Terabyte workload). The work of a table is read off the
fluid relaxation (``CostModel.fluid``): its cost when all HBM is shared perfectly, plus the HBM it
would take there priced at the marginal saving per byte. That is the same weight the greedy
placement balances. For a threshold ``beta``, every table whose weight exceeds ``beta`` times the
mean GPU load is cut into the fewest pieces that bring each under it, choosing among

* column-wise into ``k`` equal slices (``sharding.shards.column_splits``): each slice carries
  ``1/k`` of the lookups and memory, and repeats the table's ids (extra input all-to-all);
* row-wise into one block per GPU: each carries its share of the rows and lookups, and sends a
  partial output for every sample (extra output all-to-all and the reduction),

the one that adds the least overhead (``CostModel.overhead``). Tables too big for any single GPU
are always cut (into the fewest pieces that fit). Planners try several thresholds and keep the
plan the cost model rates best, table-wise included, so a cut is kept only where it lowers the
slowest GPU.
"""

from __future__ import annotations

import numpy as np

from sharding.cost import CostModel
from sharding.errors import InfeasiblePlanError
from sharding.shards import COLUMN_WISE, ROW_WISE, TABLE_WISE, Part, can_row_split, column_splits, table_parts
from sharding.topology import GB

THRESHOLDS = (1.0, 0.5, 0.25)


def fluid_weights(model: CostModel) -> np.ndarray:
    """Each item's share of the work in the fluid relaxation (cost + priced HBM bytes)."""
    topo = model.topology
    budget = topo.hbm_budget_bytes
    acc, price = model.fluid(topo.gpus * budget)
    frac = np.array([np.interp(a, ys, xs) for a, (xs, ys) in zip(acc, model.cdf)])
    hot_bytes = np.minimum(frac * model.bytes, budget)
    return model.cold_cost - model.gain * acc + price * hot_bytes


def split_parts(model: CostModel, beta: float | None) -> list[Part]:
    """The parts of every table for threshold ``beta`` (None: table-wise unless a table must be cut
    to fit). ``model`` is the table-wise model of the workload."""
    topo = model.topology
    workload = model.workload
    weight = fluid_weights(model)
    cap = np.inf if beta is None else beta * weight.sum() / topo.gpus
    per_gpu = topo.hbm_budget_bytes + topo.uvm_budget_bytes
    parts: list[Part] = []
    for i, t in enumerate(workload.tables):
        too_big = model.bytes[i] > per_gpu
        if topo.gpus == 1 or (weight[i] <= cap and not too_big):
            parts += table_parts(i, t)
            continue
        divisible = weight[i] - model.overhead[i]
        options = []
        for sharding, k in [(COLUMN_WISE, k) for k in column_splits(t.dim, topo.gpus)] + (
            [(ROW_WISE, topo.gpus)] if can_row_split(t, topo.gpus) else []
        ):
            cand = table_parts(i, t, sharding, k, topo.gpus)
            sub = CostModel(workload, topo, cand)
            share = sub.lookup_bytes / max(sub.lookup_bytes.sum(), 1e-300) if sub.lookup_bytes.sum() > 0 else np.full(len(cand), 1 / len(cand))
            piece = float((divisible * share + sub.overhead).max())
            fits = bool(sub.bytes.max() <= per_gpu)
            extra = float(sub.overhead.sum() - model.overhead[i])
            options.append((not fits, piece > cap, extra if piece <= cap else piece, len(cand), cand))
        if not options:
            if too_big:
                raise InfeasiblePlanError(
                    f"table '{t.name}' needs {model.bytes[i] / GB:.3f} GB but one GPU holds at most "
                    f"{per_gpu / GB:.3f} GB and it cannot be split (dim {t.dim}, {t.rows} rows)"
                )
            parts += table_parts(i, t)
            continue
        best = min(options, key=lambda o: o[:4])
        if not too_big and best[1] and best[2] >= weight[i]:  # no cut brings it under: keep it whole
            parts += table_parts(i, t)
        else:
            parts += best[4]
    return parts


def split_variants(model: CostModel, allow_splits: bool = True) -> list[tuple[str, list[Part]]]:
    """Distinct ways to cut the tables: table-wise first, then one per threshold."""
    if not allow_splits:
        return [("table-wise", [p for i, t in enumerate(model.workload.tables) for p in table_parts(i, t)])]
    out: list[tuple[str, list[Part]]] = []
    seen = set()
    for beta in (None, *THRESHOLDS):
        parts = split_parts(model, beta)  # an unsplittable table too big for a GPU raises here
        key = tuple((p.table, p.sharding, p.col_start, p.row_start) for p in parts)
        if key in seen:
            continue
        seen.add(key)
        if all(p.sharding == TABLE_WISE for p in parts):
            label = "table-wise"
        else:
            label = "cut to fit" if beta is None else f"cut above {beta:g} x mean GPU load"
        out.append((label, parts))
    return out
