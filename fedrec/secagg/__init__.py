"""Secure aggregation (Bonawitz et al. 2017; SecAgg+ neighbourhoods, Bell et al. 2020) with real
primitives: X25519, HKDF, AES-CTR masks in fixed-point modular arithmetic, AES-GCM relayed shares,
and Shamir sharing over a prime field so the server recovers from clients that drop after masking."""

from fedrec.secagg.aggregator import SecureAggregator, UpdateCodec
from fedrec.secagg.config import SecureAggregationConfig
from fedrec.secagg.fixed_point import FixedPoint
from fedrec.secagg.graph import neighbours
from fedrec.secagg.protocol import (
    RoundStats,
    SecAggAbort,
    SecAggClient,
    client_bytes,
    run_round,
    threshold_for,
)
from fedrec.secagg.shamir import reconstruct, share

__all__ = [
    "FixedPoint", "RoundStats", "SecAggAbort", "SecAggClient", "SecureAggregationConfig", "SecureAggregator",
    "UpdateCodec", "client_bytes", "neighbours", "reconstruct", "run_round", "share", "threshold_for",
]
