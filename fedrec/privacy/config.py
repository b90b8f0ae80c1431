"""The ``privacy`` section of a run config: user-level DP-FedAvg."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fedrec.configbase import StrictModel


class PrivacyConfig(StrictModel):
    noise_multiplier: float | None = Field(None, ge=0)  # z: noise std on the sum is z * clip_norm
    target_epsilon: float | None = Field(None, gt=0)  # instead of noise_multiplier: the z that spends this over `rounds`
    clip_norm: float = Field(1.0, gt=0)  # C: every client's whole update (rows included) is scaled to norm <= C
    delta: float | None = Field(None, gt=0, lt=1)  # default 1 / number of clients
    accountant: Literal["rdp", "prv"] = "rdp"  # Opacus's RDPAccountant or PRVAccountant
    adaptive_clipping: bool = False  # Andrew et al. 2021: C follows a quantile of the update norms
    target_quantile: float = Field(0.5, gt=0, lt=1)  # adaptive: the share of updates left unclipped
    clip_lr: float = Field(0.2, gt=0)  # adaptive: geometric step of C per round
    count_noise: float | None = Field(None, gt=0)  # adaptive: std of the noise on the unclipped count (default clients/20)
    local_noise: float = Field(0.0, ge=0)  # optional: each client adds N(0, (local_noise * C)^2) to what it uploads

    @model_validator(mode="after")
    def _one_noise_source(self):
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError("give exactly one of noise_multiplier and target_epsilon")
        return self
