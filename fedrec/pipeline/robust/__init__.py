"""Byzantine-robust aggregators: coordinate-wise median and trimmed mean, Krum and Multi-Krum,
centered clipping, bucketing around any of them, FoolsGold (weights clients by how unlike the
others their updates are; optionally it then drops clients whose embedding rows disagree with the
trusted other touchers', and holds still the rows the trusted push in concert: item promotion).
Each needs the individual updates (the pipeline's per-client path); ``stack`` says how each treats
embedding rows a client did not touch."""

from __future__ import annotations

from fedrec.lazy import exports_of, lazy_exports

# Exports resolve on first use (``fedrec.lazy``): the run config imports ``AggregatorConfig`` without torch.
_LAZY = exports_of({
    "agreement": ("RowAgreement", "row_agreement"), "bucketing": ("Bucketing", "bucket_means"),
    "clipping": ("CenteredClipping",), "config": ("AggregatorConfig",),
    "coordinated": ("CoordinatedRows", "row_coordination"),
    "foolsgold": ("FoolsGold", "bound_norms", "foolsgold_weights", "similarity_weights"),
    "coordinate": ("CoordinateMedian", "TrimmedMean", "median", "trimmed_mean"),
    "krum": ("Krum", "MultiKrum", "krum_scores"), "stacking": ("Stacked", "is_finite", "stack", "stack_tables", "tables_of", "to_aggregate"),
})
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = sorted([*_LAZY, "make_aggregator"])


def make_aggregator(cfg, name: str | None = None):
    """The aggregator ``cfg`` (an ``AggregatorConfig``) names, or the rule ``name`` with its settings."""
    from fedrec.pipeline.mean import WeightedMean
    from fedrec.pipeline.robust.bucketing import Bucketing
    from fedrec.pipeline.robust.clipping import CenteredClipping
    from fedrec.pipeline.robust.coordinate import CoordinateMedian, TrimmedMean
    from fedrec.pipeline.robust.foolsgold import FoolsGold
    from fedrec.pipeline.robust.krum import Krum, MultiKrum

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
    if name == "foolsgold":
        return FoolsGold(cfg.history, cfg.norm_bound, cfg.kappa, cfg.features, cfg.agreement, cfg.promotion_guard,
                         cfg.promotion_threshold, cfg.bound_among, cfg.agreement_passes, cfg.row_median,
                         cfg.agreement_weighting, cfg.agreement_memory)
    return Bucketing(make_aggregator(cfg, cfg.inner), cfg.bucket_size)
