"""Byzantine-robust aggregators: coordinate-wise median and trimmed mean, Krum and Multi-Krum,
centered clipping, and bucketing around any of them. Each needs the individual updates (the
pipeline's per-client path); ``stack`` says how each treats embedding rows a client did not touch."""

from __future__ import annotations

from fedrec.pipeline.base import Aggregator
from fedrec.pipeline.mean import WeightedMean
from fedrec.pipeline.robust.bucketing import Bucketing, bucket_means
from fedrec.pipeline.robust.clipping import CenteredClipping
from fedrec.pipeline.robust.config import AggregatorConfig
from fedrec.pipeline.robust.coordinate import CoordinateMedian, TrimmedMean, median, trimmed_mean
from fedrec.pipeline.robust.krum import Krum, MultiKrum, krum_scores
from fedrec.pipeline.robust.stack import Stacked, stack, to_aggregate

__all__ = [
    "AggregatorConfig", "Bucketing", "CenteredClipping", "CoordinateMedian", "Krum", "MultiKrum", "Stacked",
    "TrimmedMean", "bucket_means", "krum_scores", "make_aggregator", "median", "stack", "to_aggregate", "trimmed_mean",
]


def make_aggregator(cfg: AggregatorConfig, name: str | None = None) -> Aggregator:
    name = name or cfg.name
    if name == "mean":
        return WeightedMean()
    if name == "median":
        return CoordinateMedian(cfg.rows)
    if name == "trimmed_mean":
        return TrimmedMean(cfg.trim_fraction, cfg.rows)
    if name == "krum":
        return Krum(cfg.byzantine_fraction)
    if name == "multi_krum":
        return MultiKrum(cfg.byzantine_fraction, cfg.keep)
    if name == "centered_clipping":
        return CenteredClipping(cfg.clip_radius, cfg.clip_iterations)
    return Bucketing(make_aggregator(cfg, cfg.inner), cfg.bucket_size)
