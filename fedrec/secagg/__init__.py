"""Secure aggregation (Bonawitz et al. 2017; SecAgg+ neighbourhoods, Bell et al. 2020) with real
primitives: X25519, HKDF, AES-CTR masks in fixed-point modular arithmetic, AES-GCM relayed shares,
and Shamir sharing over a prime field so the server recovers from clients that drop after masking."""

from fedrec.lazy import exports_of, lazy_exports

# Exports resolve on first use (``fedrec.lazy``): the run config imports the section's config without torch.
_LAZY = exports_of({
    "aggregator": ("SecureAggregator", "UpdateCodec"), "config": ("SecureAggregationConfig",),
    "fixed_point": ("FixedPoint",), "graph": ("neighbours",),
    "protocol": ("RoundStats", "SecAggAbort", "SecAggClient", "client_bytes", "run_round", "threshold_for"),
    "shamir": ("reconstruct", "share"),
})
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
