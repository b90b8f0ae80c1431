"""Dataset statistics: they feed the sharding planner (row access CDFs) and the sampler
(degree distributions, skew), and ``fedrec data stats`` prints them as JSON.

Criteo statistics are computed in one streaming pass (bounded memory: per-feature distinct ids and
their counts, nothing per row), so they work on files larger than memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from data_pipeline.schema import InteractionData


def gini(values: np.ndarray) -> float:
    """Gini coefficient of a non-negative distribution (0 = equal, ->1 = concentrated)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    if v.size == 0 or v.sum() == 0:
        return 0.0
    n = v.size
    cum = np.cumsum(v)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)


def access_cdf(counts: np.ndarray, points: int = 64) -> list[list[float]]:
    """[row_fraction, access_fraction] with rows sorted hottest first, from (0,0) to (1,1),
    sampled at geometrically spaced row fractions (the head is where the shape matters)."""
    c = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    if c.size == 0 or c.sum() == 0:
        return [[0.0, 0.0], [1.0, 1.0]]
    cum = np.r_[0.0, np.cumsum(c) / c.sum()]
    idx = np.unique(np.r_[0, np.geomspace(1, c.size, points - 1).astype(np.int64), c.size])
    return [[float(i / c.size), float(cum[i])] for i in idx]


def degree_summary(degrees: np.ndarray) -> dict:
    d = np.asarray(degrees)
    q = np.percentile(d, [50, 90, 99]) if d.size else [0, 0, 0]
    return {
        "min": int(d.min()) if d.size else 0,
        "max": int(d.max()) if d.size else 0,
        "mean": float(d.mean()) if d.size else 0.0,
        "median": float(q[0]),
        "p90": float(q[1]),
        "p99": float(q[2]),
        "gini": gini(d),
    }


@dataclass
class InteractionStats:
    name: str
    rows: int
    users: int
    items: int
    density: float
    user_degree: dict
    item_degree: dict
    rating_counts: dict
    time_span: tuple[int, int]
    item_access_cdf: list
    user_access_cdf: list
    side_features: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def interaction_stats(data: InteractionData) -> InteractionStats:
    user = data.column("user")
    item = data.column("item")
    rating = data.column("rating")
    ts = data.column("timestamp")
    user_deg = np.bincount(user, minlength=len(data.vocabs["user"]))[1:]
    item_deg = np.bincount(item, minlength=len(data.vocabs["item"]))[1:]
    values, counts = np.unique(rating, return_counts=True)
    side = {}
    for table in (data.user_features, data.item_features):
        if table is None:
            continue
        for name in table.column_names[1:]:
            col = table.column(name)
            if pa.types.is_list(col.type):
                flat = col.combine_chunks().flatten().to_numpy()
                side[name] = {
                    "cardinality": int(np.unique(flat).size),
                    "mean_pooling": float(flat.size / max(len(col), 1)),
                }
            else:
                side[name] = {"cardinality": int(np.unique(col.to_numpy()).size), "mean_pooling": 1.0}
    return InteractionStats(
        name=data.name,
        rows=data.num_rows,
        users=int((user_deg > 0).sum()),
        items=int((item_deg > 0).sum()),
        density=float(data.num_rows / max(1, (user_deg > 0).sum() * (item_deg > 0).sum())),
        user_degree=degree_summary(user_deg[user_deg > 0]),
        item_degree=degree_summary(item_deg[item_deg > 0]),
        rating_counts=_rating_counts(values, counts),
        time_span=(int(ts.min()), int(ts.max())),
        item_access_cdf=access_cdf(item_deg),
        user_access_cdf=access_cdf(user_deg),
        side_features=side,
    )


MAX_RATING_VALUES = 50


def _rating_counts(values: np.ndarray, counts: np.ndarray) -> dict:
    """Count per rating value; for implicit weights with many distinct values (Last.fm play
    counts) a summary instead, which is what a reader of the statistics can use."""
    if values.size <= MAX_RATING_VALUES:
        return {_key(v): int(c) for v, c in zip(values, counts)}
    expanded = np.repeat(values, counts)
    q = np.percentile(expanded, [50, 90, 99])
    return {"distinct_values": int(values.size), "min": float(values[0]), "median": float(q[0]),
            "p90": float(q[1]), "p99": float(q[2]), "max": float(values[-1])}  # fmt: skip


def _key(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(float(v))


class _CountAccumulator:
    """Distinct values of one column and how often each occurs, merged chunk by chunk."""

    def __init__(self) -> None:
        self.values = np.empty(0, dtype=np.int64)
        self.counts = np.empty(0, dtype=np.int64)

    def add(self, chunk: np.ndarray) -> None:
        if chunk.size == 0:  # a block where this column is all missing (found by tests/fuzz)
            return
        v, c = np.unique(chunk, return_counts=True)
        allv = np.concatenate([self.values, v])
        allc = np.concatenate([self.counts, c])
        order = np.argsort(allv, kind="stable")
        allv, allc = allv[order], allc[order]
        starts = np.flatnonzero(np.r_[True, allv[1:] != allv[:-1]])
        self.values = allv[starts]
        self.counts = np.add.reduceat(allc, starts) if allc.size else allc


@dataclass
class CriteoStats:
    rows: int
    positives: int
    features: list[dict]
    counts: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # per categorical feature

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "positives": self.positives,
            "positive_rate": self.positives / self.rows if self.rows else 0.0,
            "features": self.features,
        }


def criteo_stats(
    batches: Iterable[pa.RecordBatch], dense: Iterable[str], sparse: Iterable[str]
) -> CriteoStats:
    """One pass over raw (untransformed) batches: cardinality and missing fraction per feature,
    and per-id access counts of each categorical feature (for access CDFs)."""
    dense, sparse = list(dense), list(sparse)
    acc = {n: _CountAccumulator() for n in dense + sparse}
    missing = dict.fromkeys(dense + sparse, 0)
    rows = positives = 0
    for batch in batches:
        rows += batch.num_rows
        positives += int(np.asarray(batch.column("label")).sum())
        for name in dense + sparse:
            col = batch.column(name)
            missing[name] += col.null_count
            present = col.drop_null().to_numpy() if col.null_count else col.to_numpy()
            acc[name].add(present.astype(np.int64))
    features = [
        {
            "name": n,
            "cardinality": int(acc[n].values.size),
            "missing_fraction": missing[n] / rows if rows else 0.0,
        }
        for n in dense + sparse
    ]
    return CriteoStats(rows, positives, features, {n: acc[n].counts for n in sparse})


def plot_stats(stats: InteractionStats | CriteoStats, out: str | os.PathLike) -> None:
    """Degree distributions (interactions) or access CDFs (both), log-scaled, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if isinstance(stats, InteractionStats):
        curves = {"items": stats.item_access_cdf, "users": stats.user_access_cdf}
        title = f"{stats.name}: {stats.rows:,} interactions"
    else:
        curves = {n: access_cdf(c) for n, c in list(stats.counts.items())[:8]}
        title = f"Criteo: {stats.rows:,} rows (first 8 categorical features)"
    for label, cdf in curves.items():
        pts = np.asarray(cdf)
        ax.plot(np.maximum(pts[:, 0], 1e-6), pts[:, 1], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("fraction of rows (hottest first)")
    ax.set_ylabel("fraction of accesses")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
