"""The ``secure_aggregation`` section of a run config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedrec.configbase import StrictModel


class SecureAggregationConfig(StrictModel):
    enabled: bool = False
    threshold: float = Field(0.6, gt=0, le=1)  # shares needed to unmask, as a share of a client's neighbours
    graph_degree: int | None = Field(None, ge=2)  # SecAgg+ neighbours per client; None: everyone (Bonawitz et al.)
    dropout: float = Field(0.0, ge=0, lt=1)  # share of each round's clients that drop out after masking
    padding: Literal["all", "union"] = "all"  # rows every client sends: every row of every table, or the round's union
    frac_bits: int = Field(24, ge=0, le=40)  # fixed-point fraction bits
    modulus_bits: int = Field(48, ge=16, le=64)  # values travel modulo 2^modulus_bits
